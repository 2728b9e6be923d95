"""Viewer build times and page size: widget (both backends) and standalone HTML at N = 100 .. 2000.

Real chains' ANM dynamics (tests/data, MDAnalysisTests) side by side, cut to N residues.
Goal (issue 5): under 1 s and under 10 MB at N = 1000.  Prints a table with ratios to the goal
(ratio < 1 meets it).  Usage: python benchmarks/bench_viewer.py [N ...]
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

import dynaprot_viz as dv
from dynaprot_viz import Dynamics
from dynaprot_viz.html import standalone_html
from dynaprot_viz.widget import stack_dynamics

ROOT = Path(__file__).resolve().parents[1]
GOAL_S, GOAL_MB = 1.0, 10.0


def real_dynamics(n: int) -> Dynamics:
    from MDAnalysisTests.datafiles import CONECT, merge_protein

    data = ROOT / "tests" / "data"
    files = [(data / "1ake.cif", "A"), (data / "1ake.cif", "B"), (data / "1osm.pdb.gz", None),
             (merge_protein, None), (CONECT, "A"), (CONECT, "B"), (data / "1ubi.pdb", None)]
    parts, total, k = [], 0, 0
    while total < n:
        path, chain = files[k % len(files)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = dv.predict(path, model="anm", chain=chain)
        take = min(d.n_residues, n - total)
        idx = np.arange(take)
        parts.append(Dynamics(d.mean[idx] + [70.0 * (k % 6), 70.0 * (k // 6), 0], d.marginals[idx],
                              d.coupling[np.ix_(idx, idx)],
                              tuple(r._replace(chain=chr(65 + k)) for r in d.residues[:take]), "anm"))
        total += take
        k += 1
    return stack_dynamics(parts, "anm")


def timed(f, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(sizes):
    print(f"{'N':>6} {'widget py3dmol s':>17} {'widget nglview s':>17} {'html s':>8} {'html MB':>8}"
          f" {'ratio t (worst)':>16} {'ratio MB':>9}")
    dv.view(real_dynamics(50))  # warm imports
    for n in sizes:
        dyn = real_dynamics(n)
        t_py, _ = timed(lambda: dv.view(dyn, backend="py3dmol"))
        t_ngl, _ = timed(lambda: dv.view(dyn, backend="nglview"))
        t_html, page = timed(lambda: standalone_html(dyn, n_samples=20))
        mb = len(page.encode()) / 1e6
        worst = max(t_py, t_ngl, t_html)
        print(f"{n:>6} {t_py:>17.3f} {t_ngl:>17.3f} {t_html:>8.3f} {mb:>8.2f} {worst / GOAL_S:>16.2f}"
              f" {mb / GOAL_MB:>9.2f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 500, 1000, 2000])
