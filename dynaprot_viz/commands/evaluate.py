"""``dynaprot-viz evaluate``: predictors vs MD labels (DESIGN.md section 4)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import nonneg_int
from ..core.errors import InputError
from ..core.predictors import available_models

HELP = "evaluate predictors against MD labels (RMSF r, RMWD, sym-KL, band-wise coupling, ensembles)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", required=True, metavar="STORE.h5", help="label store written by `ingest`")
    p.add_argument("--model", action="append", metavar="M",
                   help="predictor to evaluate, repeatable: " + ", ".join(available_models()) + " (default anm)")
    p.add_argument("--key", action="append", metavar="KEY", help="only these chains (repeatable; default all)")
    p.add_argument("--samples", type=nonneg_int, default=250,
                   help="samples per prediction for the ensemble metrics (default 250; 0 skips them)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--max-band", type=int, default=50, help="band-wise coupling up to k (default 50)")
    p.add_argument("--mdcath-rmsf", metavar="DIR", default=None,
                   help="also compare RMSF with mdCATH (default ../shared/data/mdcath_rmsf when present)")
    p.add_argument("--no-mdcath", action="store_true", help="skip the mdCATH RMSF comparison")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="writes evaluation_summary.csv, evaluation_per_protein.csv, evaluation_bandwise.csv, "
                        "evaluation_table.txt, evaluation.png (and mdcath_rmsf.csv)")


def run(args) -> int:
    from ..training.evaluate import default_mdcath_rmsf_dir, evaluate

    labels = Path(args.labels)
    if not labels.exists():
        raise FileNotFoundError(f"{labels}: no such file")
    mdcath = None
    if args.no_mdcath and args.mdcath_rmsf:
        raise InputError("--no-mdcath and --mdcath-rmsf exclude each other")
    if args.mdcath_rmsf:
        mdcath = Path(args.mdcath_rmsf)
        if not mdcath.is_dir():
            raise InputError(f"--mdcath-rmsf {mdcath}: not a folder")
    elif not args.no_mdcath:
        mdcath = default_mdcath_rmsf_dir()
    result = evaluate(labels, args.model or ["anm"], keys=args.key, max_band=args.max_band,
                      n_samples=args.samples, seed=args.seed, mdcath_rmsf_dir=mdcath,
                      progress=not args.no_progress)
    written = result.write(args.out)
    print(result.table())
    for path in written:
        print(f"wrote {path}")
    return 0
