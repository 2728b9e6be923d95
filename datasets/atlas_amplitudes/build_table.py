"""ATLAS chains paired with real PDB backbones from ProMod3: the amplitude table.

One command (project venv; it calls the system python for the ProMod3 step):

    .venv/bin/python datasets/atlas_amplitudes/build_table.py

1. Every ATLAS chain id of ``ATLAS_info.tsv`` (1,390) goes to
   ``datasets/pdb_backbones/extract.py`` (run by ``/usr/bin/python3``, where promod3 is
   importable); the chains found in ProMod3's structure database are written to
   ``atlas_backbones.npz`` (compact format of that script: N, CA, C, O at 0.01 Å).
   Skipped when the npz exists (delete it to rebuild).
2. Each ProMod3 sequence is aligned to the ATLAS sequence (gemmi, BLOSUM62, global):
   ``identity`` = identical pairs / aligned pairs, ``coverage`` = aligned pairs /
   ATLAS length (ProMod3 keeps the longest gap-free stretch of the deposited chain;
   ATLAS simulated the full chain with missing residues modelled).
3. ``atlas_promod3.tsv``: one row per ATLAS chain found in ProMod3, columns
   ``chain, promod3_entry, db_index, n_residues, start_resnum, atlas_length,
   avg_rmsf_A, avg_gyration_A, resolution_A, identity, coverage, family,
   seq_ok`` (``seq_ok`` = identity >= 0.95).  ``family`` is the first CATH domain's
   C.A.T.H code (``cath:...``), else the first ECOD domain's X.H (``ecod:...``), else the
   chain itself: the grouping of the cross-validation in ``fit_amplitude.py``.

ATLAS (Vander Meersche et al., NAR 2024): 3 x 100 ns, CHARMM36m, 300 K; ``avg_RMSF`` is
the C-alpha RMSF averaged over the chain and the three replicas, Å.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_ATLAS = ROOT.parent / "shared" / "data" / "atlas_chains" / "ATLAS_info.tsv"
EXTRACTOR = ROOT / "datasets" / "pdb_backbones" / "extract.py"
BACKBONES = HERE / "atlas_backbones.npz"
TABLE = HERE / "atlas_promod3.tsv"
MIN_IDENTITY = 0.95

COLUMNS = ("chain", "promod3_entry", "db_index", "n_residues", "start_resnum", "atlas_length",
           "avg_rmsf_A", "avg_gyration_A", "resolution_A", "identity", "coverage", "family", "seq_ok")

__all__ = ["read_atlas", "align_identity", "family_of", "load_backbones", "build_table", "main"]


def read_atlas(path: Path) -> list[dict]:
    """Rows of ATLAS_info.tsv (dicts of strings)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    need = {"PDB", "length", "avg_RMSF", "avg_gyration", "PDB_resolution", "sequence", "CATH_ID", "ECOD_ID"}
    if not rows or not need <= set(rows[0]):
        raise ValueError(f"{path}: expected ATLAS_info.tsv columns {sorted(need)}")
    return rows


def align_identity(query: str, target: str) -> tuple[float, int, int]:
    """Global BLOSUM62 alignment of two one-letter sequences.

    Returns
    -------
    (identity, aligned, matches): identical pairs / aligned pairs, the number of aligned
    (M) columns and of identical ones.
    """
    import gemmi

    q = gemmi.expand_one_letter_sequence(query, gemmi.ResidueKind.AA)
    t = gemmi.expand_one_letter_sequence(target, gemmi.ResidueKind.AA)
    res = gemmi.align_string_sequences(q, t, [], gemmi.AlignmentScoring("b"))
    aligned = sum(int(n) for n, op in _cigar(res.cigar_str()) if op == "M")
    return (res.match_count / aligned if aligned else 0.0), aligned, int(res.match_count)


def _cigar(cigar: str):
    num = ""
    for ch in cigar:
        if ch.isdigit():
            num += ch
        else:
            yield int(num), ch
            num = ""


def family_of(row: dict) -> str:
    """Grouping key: first CATH domain C.A.T.H, else first ECOD X.H, else the chain."""
    cath = row["CATH_ID"].split(",")[0].strip().strip('"')
    if cath and cath != "-":
        return "cath:" + cath
    ecod = row["ECOD_ID"].split(",")[0].strip().strip('"')
    if ecod and ecod != "-":
        return "ecod:" + ".".join(ecod.split(".")[:2])
    return "chain:" + row["PDB"]


def load_backbones(path: Path = BACKBONES) -> dict:
    """``{"1ABC_A": (sequence str, CA (L, 3) float64 Å, N/CA/C/O (L, 4, 3) float64 Å, start_resnum)}``."""
    with np.load(path, allow_pickle=False) as z:
        off, origin, coords, unit = z["offset"], z["origin"], z["coords"], float(z["coord_unit_A"])
        seq = z["sequence"]
        out = {}
        for c, key in enumerate(z["ids"]):
            lo, hi = off[c], off[c + 1]
            xyz = origin[c].astype(np.float64) + unit * coords[lo:hi].astype(np.float64)
            out[str(key)] = (seq[lo:hi].tobytes().decode(), xyz[:, 1], xyz, int(z["start_resnum"][c]))
    return out


def extract_backbones(atlas_rows: list[dict], out: Path, python: str = "/usr/bin/python3") -> None:
    """Run the ProMod3 extractor (system python) on the ATLAS chain ids."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("".join(r["PDB"] + "\n" for r in atlas_rows))
        ids = fh.name
    try:
        subprocess.run([python, str(EXTRACTOR), "--ids", ids, "--format", "npz", "--out", str(out)], check=True)
    finally:
        os.unlink(ids)
    missing = out.with_name(out.name + ".missing.txt")
    if missing.exists():  # the ATLAS chains that are not in ProMod3: not needed in the repo
        missing.unlink()


def build_table(atlas_path: Path = DEFAULT_ATLAS, backbones: Path = BACKBONES) -> list[dict]:
    """Rows of the table (module docstring), ATLAS order."""
    atlas = read_atlas(atlas_path)
    bb = load_backbones(backbones)
    rows = []
    for r in atlas:
        pdb, chain = r["PDB"].split("_", 1)
        key = f"{pdb.upper()}_{chain}"
        if key not in bb:
            continue
        seq, ca, _, start = bb[key]
        ident, aligned, _ = align_identity(seq, r["sequence"])
        rows.append({
            "chain": r["PDB"], "promod3_entry": key, "db_index": -1, "n_residues": len(seq),
            "start_resnum": start, "atlas_length": int(r["length"]), "avg_rmsf_A": float(r["avg_RMSF"]),
            "avg_gyration_A": float(r["avg_gyration"]),
            "resolution_A": float(r["PDB_resolution"]) if r["PDB_resolution"] not in ("", "-") else float("nan"),
            "identity": round(ident, 4), "coverage": round(aligned / int(r["length"]), 4),
            "family": family_of(r), "seq_ok": int(ident >= MIN_IDENTITY),
        })
    with np.load(backbones, allow_pickle=False) as z:
        index = {str(k): int(d) for k, d in zip(z["ids"], z["db_index"])}
    for row in rows:
        row["db_index"] = index[row["promod3_entry"]]
    return rows


def write_table(rows: list[dict], path: Path = TABLE) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--atlas", type=Path, default=DEFAULT_ATLAS, help="ATLAS_info.tsv")
    ap.add_argument("--backbones", type=Path, default=BACKBONES, help="compact backbone npz (built if absent)")
    ap.add_argument("--out", type=Path, default=TABLE, help="table TSV")
    args = ap.parse_args(argv)
    if not args.atlas.exists():
        print(f"error: {args.atlas}: no such file (the shared ATLAS table)", file=sys.stderr)
        return 2
    if not args.backbones.exists():
        extract_backbones(read_atlas(args.atlas), args.backbones)
    rows = build_table(args.atlas, args.backbones)
    write_table(rows, args.out)
    ok = [r for r in rows if r["seq_ok"]]
    cov = np.array([r["coverage"] for r in ok])
    print(f"{len(rows)} ATLAS chains in ProMod3; {len(ok)} with identity >= {MIN_IDENTITY:.2f}; "
          f"coverage median {np.median(cov):.3f}, >= 0.9 for {int((cov >= 0.9).sum())}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
