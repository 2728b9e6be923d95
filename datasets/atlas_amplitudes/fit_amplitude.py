"""Fit the ANM amplitude model: ANM's relative fluctuations -> absolute Å (ATLAS MD).

    .venv/bin/python datasets/atlas_amplitudes/fit_amplitude.py

Deterministic (no random state except a fixed-seed fold assignment).  Steps:

1. Chains: ``atlas_promod3.tsv`` (``build_table.py``) rows with sequence identity to
   ATLAS >= 0.95 and coverage >= ``--min-coverage`` (0.9: ATLAS's avg_RMSF covers the
   whole simulated chain, our backbone only the deposited gap-free stretch).
2. Family-aware exclusion: drop every ATLAS chain with >= 30% sequence identity to
   one of the seven held-out mdCATH domains (``mdcath_rmsf/pdbs``) or the DANCE test
   proteins (first record of ``alignments/<ID>_aln.fa``, gaps removed); identity =
   identical pairs of the best local alignment (Smith-Waterman, BLOSUM62, gaps 11/1)
   / length of the shorter sequence.
3. Features (``dynaprot_viz.core.anm.amplitude_features``) of the ANM (15 Å, gamma 1)
   on the ProMod3 C-alphas; written to ``features.tsv``.
4. Candidate linear models of ln(avg_RMSF Å) by ordinary least squares, compared by
   10-fold cross-validation grouped by family (CATH C.A.T.H / ECOD X.H, see
   ``build_table.py``): the smallest model whose CV mean squared error is within one
   standard error of the best is chosen, refitted on all chains, and written to
   ``dynaprot_viz/weights/anm-amplitude.json`` with provenance.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from build_table import BACKBONES, TABLE, load_backbones  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
MDCATH = SHARED / "mdcath_rmsf"
DANCE = SHARED / "dance"
FEATURES = HERE / "features.tsv"
MODEL_OUT = ROOT / "dynaprot_viz" / "weights" / "anm-amplitude.json"
CUTOFF_A = 15.0
EXCLUDE_IDENTITY = 0.30
N_FOLDS = 10
SEED = 0

#: candidate models (feature lists); "constant" ignores the structure entirely,
#: "global-factor" is one scale for every chain (slope 1 on ln mean RMSF_rel, fixed)
CANDIDATES = {
    "constant": [],
    "global-factor": ["offset:ln_mean_rmsf_rel"],
    "rmsf": ["ln_mean_rmsf_rel"],
    "rmsf+n": ["ln_mean_rmsf_rel", "ln_n_residues"],
    "rmsf+n+rg": ["ln_mean_rmsf_rel", "ln_n_residues", "ln_radius_of_gyration"],
    "rmsf+n+contacts": ["ln_mean_rmsf_rel", "ln_n_residues", "ln_mean_contacts"],
    "rmsf+n+rg+contacts": ["ln_mean_rmsf_rel", "ln_n_residues", "ln_radius_of_gyration", "ln_mean_contacts"],
}


def one_letter(path: Path) -> str:
    """One-letter sequence of the first chain of a structure (CHARMM histidines mapped)."""
    import gemmi

    his = {"HSD", "HSE", "HSP", "HID", "HIE", "HIP"}
    st = gemmi.read_structure(str(path))
    out = []
    for res in st[0][0]:
        if res.find_atom("CA", "*") is None:
            continue
        info = gemmi.find_tabulated_residue("HIS" if res.name in his else res.name)
        out.append(info.one_letter_code.upper() if info is not None else "X")
    return "".join(out)


def held_out_sequences() -> dict[str, str]:
    """``{name: sequence}`` of the seven mdCATH domains and the DANCE test proteins."""
    seqs = {}
    for pdb in sorted((MDCATH / "pdbs").glob("*.pdb")):
        seqs["mdcath:" + pdb.stem] = one_letter(pdb)
    for line in (DANCE / "test_list.txt").read_text().split():
        fa = (DANCE / "alignments" / f"{line}_aln.fa").read_text().split(">")[1]
        seqs["dance:" + line] = "".join(fa.splitlines()[1:]).replace("-", "")
    if len(seqs) < 17:
        raise SystemExit(f"expected 7 mdCATH + 10 DANCE held-out sequences, found {len(seqs)}")
    return seqs


_ALIGNER = None


def short_identity(a: str, b: str) -> float:
    """Local sequence identity: identical pairs of the best local alignment / length of the shorter.

    Smith-Waterman (Biopython's PairwiseAligner, BLOSUM62, gap open -11, extend -1, as
    BLAST).  A global alignment is not used here: between sequences of different
    lengths it scatters the shorter one over the longer and finds ~30% identity in
    unrelated pairs.
    """
    global _ALIGNER
    if _ALIGNER is None:
        from Bio import Align
        from Bio.Align import substitution_matrices

        _ALIGNER = Align.PairwiseAligner(mode="local", open_gap_score=-11, extend_gap_score=-1)
        _ALIGNER.substitution_matrix = substitution_matrices.load("BLOSUM62")
    clean = lambda s: "".join(c if c in "ACDEFGHIKLMNPQRSTVWY" else "X" for c in s.upper())  # noqa: E731
    a, b = clean(a), clean(b)
    aln = _ALIGNER.align(a, b)[0]
    matches = int(aln.counts().identities)
    return matches / min(len(a), len(b))


def read_table(path: Path = TABLE) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def compute_features(rows: list[dict], atlas_seqs: dict[str, str], held: dict[str, str]) -> list[dict]:
    """ANM features and the held-out identity of each chain of ``rows``."""
    from dynaprot_viz.core.anm import amplitude_features, anm_covariance
    from dynaprot_viz.core.gaussian import marginals_from_joint

    bb = load_backbones(BACKBONES)
    out = []
    for r in tqdm(rows, desc="ANM features", unit="chain"):
        _, ca, _, _ = bb[r["promod3_entry"]]
        marg = marginals_from_joint(anm_covariance(ca, cutoff=CUTOFF_A, gamma=1.0))
        feats = amplitude_features(ca, marg, cutoff=CUTOFF_A, gamma=1.0)
        ident = {k: short_identity(atlas_seqs[r["chain"]], s) for k, s in held.items()}
        closest = max(ident, key=ident.get)
        out.append({"chain": r["chain"], "family": r["family"], "avg_rmsf_A": float(r["avg_rmsf_A"]),
                    **{k: round(v, 6) for k, v in feats.items()},
                    "max_heldout_identity": round(ident[closest], 4), "closest_heldout": closest})
    return out


def design(rows: list[dict], feats: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(X with an intercept column, offset) for a candidate's feature list."""
    cols = [np.ones(len(rows))]
    offset = np.zeros(len(rows))
    for f in feats:
        if f.startswith("offset:"):
            offset += np.array([float(r[f[7:]]) for r in rows])
        else:
            cols.append(np.array([float(r[f]) for r in rows]))
    return np.stack(cols, axis=1), offset


def group_folds(groups: list[str], k: int = N_FOLDS, seed: int = SEED) -> np.ndarray:
    """Fold index per row; all rows of a group share a fold (fixed-seed shuffle of sorted groups)."""
    uniq = sorted(set(groups))
    perm = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = {uniq[p]: i % k for i, p in enumerate(perm)}
    return np.array([fold_of[g] for g in groups])


def cross_validate(rows: list[dict], feats: list[str], folds: np.ndarray) -> dict:
    x, off = design(rows, feats)
    y = np.log([r["avg_rmsf_A"] for r in rows])
    pred = np.empty_like(y)
    fold_mse = []
    for f in range(folds.max() + 1):
        test = folds == f
        beta, *_ = np.linalg.lstsq(x[~test], y[~test] - off[~test], rcond=None)
        pred[test] = x[test] @ beta + off[test]
        fold_mse.append(float(np.mean((pred[test] - y[test]) ** 2)))
    return {**scores(pred, y), "cv_mse_ln_se": float(np.std(fold_mse, ddof=1) / np.sqrt(len(fold_mse)))}


def scores(pred: np.ndarray, y: np.ndarray) -> dict:
    """Error of predicted ln(mean RMSF) ``pred`` against the true ``y`` (both (n,), ln Å)."""
    err = pred - y
    ratio = np.exp(np.abs(err))
    a_true, a_pred = np.exp(y), np.exp(pred)
    return {
        "cv_rmse_ln": float(np.sqrt(np.mean(err ** 2))),
        "cv_mse_ln": float(np.mean(err ** 2)),
        "cv_mae_A": float(np.mean(np.abs(a_pred - a_true))),
        "cv_median_abs_error_A": float(np.median(np.abs(a_pred - a_true))),
        "cv_median_abs_rel_error": float(np.median(np.abs(a_pred / a_true - 1))),
        "cv_within_factor_1.5": float(np.mean(ratio <= 1.5)),
        "cv_within_factor_2": float(np.mean(ratio <= 2.0)),
        "cv_pearson_ln": float(np.corrcoef(pred, y)[0, 1]) if np.std(pred) > 0 else float("nan"),
    }


def fit(rows: list[dict], feats: list[str]) -> tuple[float, dict, float]:
    """OLS on all rows: (intercept, {feature: coefficient}, residual SD of ln)."""
    x, off = design(rows, feats)
    y = np.log([r["avg_rmsf_A"] for r in rows])
    beta, *_ = np.linalg.lstsq(x, y - off, rcond=None)
    resid = y - off - x @ beta
    coefs = {}
    k = 1
    for f in feats:
        if f.startswith("offset:"):
            coefs[f[7:]] = 1.0
        else:
            coefs[f] = float(beta[k])
            k += 1
    return float(beta[0]), coefs, float(np.sqrt(np.sum(resid ** 2) / (len(y) - x.shape[1])))


def _write_tsv(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--min-coverage", type=float, default=0.9, help="minimum ProMod3/ATLAS coverage (0.9)")
    ap.add_argument("--out", type=Path, default=MODEL_OUT, help="model JSON")
    ap.add_argument("--date", default=None, help="provenance date (default today, UTC)")
    args = ap.parse_args(argv)
    for need in (TABLE, BACKBONES, MDCATH / "pdbs", DANCE / "test_list.txt"):
        if not need.exists():
            print(f"error: {need} missing (run build_table.py; shared data in ../shared/data)", file=sys.stderr)
            return 2
    import gemmi  # noqa: F401  (fail early if absent)
    from build_table import DEFAULT_ATLAS, read_atlas

    table = read_table()
    atlas_seqs = {r["PDB"]: r["sequence"] for r in read_atlas(DEFAULT_ATLAS)}
    held = held_out_sequences()
    n_table = len(table)
    table = [r for r in table if int(r["seq_ok"])]
    n_seq = len(table)
    table = [r for r in table if float(r["coverage"]) >= args.min_coverage]
    n_cov = len(table)
    rows = compute_features(table, atlas_seqs, held)
    _write_tsv(FEATURES, rows)
    excluded = [r for r in rows if r["max_heldout_identity"] >= EXCLUDE_IDENTITY]
    rows = [r for r in rows if r["max_heldout_identity"] < EXCLUDE_IDENTITY]
    groups = [r["family"] for r in rows]
    folds = group_folds(groups)
    results = {name: cross_validate(rows, feats, folds) for name, feats in CANDIDATES.items()}
    # reference, not a candidate: raw ANM at gamma = 1 read as Å (what the views showed before)
    raw = scores(np.array([r["ln_mean_rmsf_rel"] for r in rows], dtype=float),
                 np.log([r["avg_rmsf_A"] for r in rows]))
    best = min(results, key=lambda k: results[k]["cv_mse_ln"])
    bound = results[best]["cv_mse_ln"] + results[best]["cv_mse_ln_se"]
    order = list(CANDIDATES)  # candidates are listed from small to large
    chosen = next(k for k in order if results[k]["cv_mse_ln"] <= bound and k != "constant") \
        if results["constant"]["cv_mse_ln"] > bound else "constant"
    intercept, coefs, resid_sd = fit(rows, CANDIDATES[chosen])
    print(f"chains: {n_table} in table, {n_seq} identity >= 0.95, {n_cov} coverage >= {args.min_coverage}, "
          f"{len(excluded)} within 30% of held-out, {len(rows)} fitted, {len(set(groups))} families")
    print(f"{'model':22s} {'CV RMSE ln':>10s} {'MAE Å':>7s} {'median AE Å':>11s} {'x1.5':>5s} {'x2':>5s}")
    for name, r in [("raw ANM (no fit)", raw), *results.items()]:
        print(f"{name:22s} {r['cv_rmse_ln']:10.3f} {r['cv_mae_A']:7.3f} {r['cv_median_abs_error_A']:11.3f} "
              f"{r['cv_within_factor_1.5']:5.2f} {r['cv_within_factor_2']:5.2f}"
              f"{'  <- chosen' if name == chosen else ''}")
    print(f"chosen {chosen}: ln(avg_RMSF) = {intercept:.4f} + " +
          " + ".join(f"{c:.4f} {k}" for k, c in coefs.items()))
    date = args.date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    model = {
        "model": "anm-amplitude",
        "version": 1,
        "target": "ln of the chain's mean C-alpha RMSF in Å (ATLAS avg_RMSF: 300 K, CHARMM36m, 3 x 100 ns)",
        "formula": "ln(R) = intercept + sum_k coefficients[k] * features[k]; scale s = (R / mean_i RMSF_rel_i)^2",
        "intercept": intercept,
        "coefficients": coefs,
        "features_doc": "dynaprot_viz.core.anm.amplitude_features (natural logs; RMSF_rel at gamma = 1)",
        "anm": {"cutoff_A": CUTOFF_A, "gamma_fit": 1.0},
        "residual_sd_ln": resid_sd,
        "cross_validation": {
            "folds": N_FOLDS, "grouping": "family: first CATH domain C.A.T.H, else first ECOD X.H, else chain",
            "seed": SEED, "selection": "smallest candidate within one standard error of the lowest CV MSE (ln)",
            "chosen": chosen, "candidates": {k: {"features": CANDIDATES[k], **v} for k, v in results.items()},
            "raw_anm_as_angstrom": raw,
        },
        "provenance": {
            "data": "ATLAS_info.tsv avg_RMSF (Vander Meersche et al., NAR 2024; via the Flexpert repository) "
                    "paired with ProMod3 StructureDB backbones (Debian promod3-data 3.2.1)",
            "table": "datasets/atlas_amplitudes/atlas_promod3.tsv",
            "filters": {
                "atlas_chains_in_promod3": n_table, "sequence_identity_min": 0.95, "after_identity": n_seq,
                "coverage_min": args.min_coverage, "after_coverage": n_cov,
                "heldout_identity_max": EXCLUDE_IDENTITY,
                "heldout_sets": "7 mdCATH domains (mdcath_rmsf/pdbs), 10 DANCE test proteins",
                "excluded_heldout": sorted(r["chain"] for r in excluded),
            },
            "n_chains": len(rows), "n_families": len(set(groups)),
            "command": ".venv/bin/python datasets/atlas_amplitudes/build_table.py && "
                       ".venv/bin/python datasets/atlas_amplitudes/fit_amplitude.py",
            "date": date,
            "caveat": "calibrated on 300 K CHARMM36m (ATLAS); mdCATH labels are 320 K CHARMM22*",
        },
    }
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(model, indent=1) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
