"""Absolute amplitude (Å) on the seven held-out mdCATH domains: raw ANM, calibrated ANM,
DynaProt, ResAxial.

For each domain of ``../shared/data/mdcath_rmsf`` the label is the chain's mean C-alpha
RMSF (Å) of mdCATH's replica-average table at 320 K (nm x 10; CHARMM22*, 5 replicas);
each model's prediction is the mean of its ``Dynamics.rmsf`` on the simulated
structure.  Raw ANM = ``scale="relative"`` (kT/gamma, gamma = 1) read as Å, which is
what every view showed before the amplitude model; calibrated ANM =
``scale="amplitude"`` (``dynaprot_viz/weights/anm-amplitude.json``, fitted on ATLAS:
300 K CHARMM36m, so a 320 K label is expected to sit somewhat higher).  The learned
models run with their shipped weights, on CPU.

With ``--mdcath-train`` it also checks the transfer to 320 K on a large sample: the
1,046 domains of ``../shared/data/mdcath_train`` (ProMod3 crystal backbones, mean of the
320 K RMSF over the residues that have coordinates), raw and calibrated ANM only
(about 3 minutes on one core).

Run: .venv/bin/python benchmarks/bench_amplitude.py [--mdcath-train] [--json runs/bench_amplitude.json]
"""

from __future__ import annotations

from _common import measure  # noqa: F401  (first: sets BLAS threads before numpy loads)

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MDCATH = ROOT.parent / "shared" / "data" / "mdcath_rmsf"
MDCATH_TRAIN = ROOT.parent / "shared" / "data" / "mdcath_train"
NM_TO_A = 10.0
MODELS = {  # column -> (registered predictor, options)
    "raw ANM": ("anm", {"scale": "relative"}),
    "calibrated ANM": ("anm", {"scale": "amplitude"}),
    "DynaProt": ("dynaprot", {"device": "cpu"}),
    "ResAxial": ("resaxial", {"device": "cpu"}),
}


def mdcath_train_check(folder: Path) -> dict:
    """Raw and calibrated ANM mean RMSF against mdcath_train's 320 K labels (summary dict)."""
    import csv

    from tqdm import tqdm

    from dynaprot_viz.core.anm import amplitude_scale, predict_anm
    from dynaprot_viz.core.structure import load_chain

    labels: dict = {}
    with open(folder / "rmsf_320K.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["has_coordinates"] == "1":
                labels.setdefault(r["domain_id"], {})[int(r["resid"])] = NM_TO_A * float(r["rmsf_320_nm"])
    true, raw, cal = [], [], []
    for domain in tqdm(sorted(labels), desc="mdcath_train", unit="domain"):
        path = folder / "pdbs" / f"{domain}.pdb.gz"
        try:
            chain = load_chain(path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rel = predict_anm(chain)
        except Exception as exc:
            print(f"warning: {domain}: {exc}", file=sys.stderr)
            continue
        factor = amplitude_scale(chain.ca, rel.marginals)  # what scale="amplitude" multiplies by
        keep = [k for k, r in enumerate(chain.residues) if r.number in labels[domain]]
        true.append(np.mean([labels[domain][chain.residues[k].number] for k in keep]))
        raw.append(rel.rmsf[keep].mean())
        cal.append(np.sqrt(factor) * rel.rmsf[keep].mean())
    true, raw, cal = map(np.array, (true, raw, cal))
    res = {"n_domains": int(len(true)), "temperature_K": 320}
    for name, pred in (("raw ANM", raw), ("calibrated ANM", cal)):
        ratio = pred / true
        res[name] = {"mae_A": float(np.mean(np.abs(pred - true))),
                     "median_ae_A": float(np.median(np.abs(pred - true))),
                     "median_ratio": float(np.median(ratio)),
                     "within_factor_2": float(np.mean((ratio >= 0.5) & (ratio <= 2.0))),
                     "pearson_ln": float(np.corrcoef(np.log(pred), np.log(true))[0, 1])}
    print(f"\nmdcath_train ({res['n_domains']} domains, 320 K, mean RMSF over residues with coordinates):")
    print("| model | MAE (Å) | median AE (Å) | median pred/true | within 2x | Pearson r (ln) |")
    print("|---|---|---|---|---|---|")
    for name in ("raw ANM", "calibrated ANM"):
        r = res[name]
        print(f"| {name} | {r['mae_A']:.2f} | {r['median_ae_A']:.2f} | {r['median_ratio']:.2f} | "
              f"{r['within_factor_2']:.2f} | {r['pearson_ln']:.2f} |")
    print(f"true mean RMSF: median {np.median(true):.2f} Å")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=MDCATH, help="mdcath_rmsf folder")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--mdcath-train", action="store_true",
                    help="also check raw and calibrated ANM on the 1,046 mdcath_train domains")
    args = ap.parse_args(argv)
    if not (args.data / "rmsf" / "replica_average_320K.csv").exists():
        print(f"error: {args.data}: not the mdcath_rmsf layout (shared data absent?)", file=sys.stderr)
        return 2
    from dynaprot_viz.core.predictors import get_predictor
    from dynaprot_viz.training.evaluate import _mdcath_chain, _read_rmsf_csv

    table = _read_rmsf_csv(args.data / "rmsf" / "replica_average_320K.csv", "rmsf_320")
    rows = []
    for domain in sorted(table):
        pdb = args.data / "pdbs" / f"{domain}.pdb"
        chain = _mdcath_chain(pdb)
        resids = [r.number for r in chain.residues]
        true = NM_TO_A * np.array([table[domain][r] for r in resids])
        row = {"domain": domain, "n_residues": len(resids), "mdcath_mean_rmsf_A": float(true.mean())}
        for col, (name, opts) in MODELS.items():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    dyn = get_predictor(name)(chain, **opts)
                row[col] = float(dyn.rmsf.mean())
            except Exception as exc:  # a model that cannot run is reported, not fatal
                print(f"warning: {col} on {domain}: {exc}", file=sys.stderr)
                row[col] = float("nan")
        rows.append(row)
    cols = list(MODELS)
    print("| domain | N | mdCATH mean RMSF (Å) | " + " | ".join(f"{c} (Å)" for c in cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for r in rows:
        print(f"| {r['domain']} | {r['n_residues']} | {r['mdcath_mean_rmsf_A']:.2f} | "
              + " | ".join(f"{r[c]:.2f}" for c in cols) + " |")
    true = np.array([r["mdcath_mean_rmsf_A"] for r in rows])
    summary = {}
    for c in cols:
        pred = np.array([r[c] for r in rows])
        err = np.abs(pred - true)
        summary[c] = {"mae_A": float(np.nanmean(err)), "median_ae_A": float(np.nanmedian(err)),
                      "median_ratio": float(np.nanmedian(pred / true))}
    print("| **mean abs error (Å)** | | | " + " | ".join(f"**{summary[c]['mae_A']:.2f}**" for c in cols) + " |")
    print("| median abs error (Å) | | | " + " | ".join(f"{summary[c]['median_ae_A']:.2f}" for c in cols) + " |")
    print("| median predicted / true | | | " + " | ".join(f"{summary[c]['median_ratio']:.2f}" for c in cols) + " |")
    out = {"rows": rows, "summary": summary}
    if args.mdcath_train:
        out["mdcath_train"] = mdcath_train_check(MDCATH_TRAIN)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
