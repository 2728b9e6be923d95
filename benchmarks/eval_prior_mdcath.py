"""RMSF Pearson r of ANM vs the physics-prior DynaProt on held-out mdCATH domains.

Two held-out sets, never trained on:

- the family-aware mdCATH split's held-out domains (``datasets/mdcath_split/heldout.txt``,
  RMSF labels read from the label store, kind ``md-rmsf``);
- the seven domains of ``../shared/data/mdcath_rmsf`` (320 K replica average; the
  tables are in nm and are converted to Å here).

For each domain: calibrated ANM (the prior's own ANM input, s_A Sigma^ANM), the
untrained prior model (zero last layers: must equal ANM) and the trained prior model
(a checkpoint of ``training/configs/prior_mdcath.yaml``).  RMSF from M's marginals,
sqrt(tr Sigma_i).  Writes one JSON (per-domain rows + medians)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/eval_prior_mdcath.py \\
        --checkpoint runs/prior_mdcath/run/checkpoints/last.pt --out runs/prior_mdcath/eval.json
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dynaprot_viz.core import metrics as M
from dynaprot_viz.core.models.dynaprot import DynaProt, DynaProtConfig, collate, featurize_arrays
from dynaprot_viz.training.evaluate import _mdcath_chain, _read_rmsf_csv
from dynaprot_viz.training.rmsf_labels import NM_TO_ANGSTROM
from dynaprot_viz.training.store import LabelStore

ROOT = Path(__file__).resolve().parent.parent


def _predict_rmsf(model, item) -> np.ndarray:
    with torch.no_grad():
        out = model(collate([item]))
    marg = out["marginals"][0].double().numpy()
    return np.sqrt(np.trace(marg, axis1=1, axis2=2))


def _anm_rmsf(item) -> np.ndarray:
    marg = item["anm_marginals"].numpy() * float(np.exp(item["anm_log_scale"][0].item()))
    return np.sqrt(np.trace(marg, axis1=1, axis2=2))


def _row(domain, dataset, true, preds) -> dict:
    ok = np.isfinite(true) & (true > 0)
    row = {"domain": domain, "set": dataset, "n_residues": int(ok.sum())}
    for name, p in preds.items():
        row[f"{name}_r"] = float(M.rmsf_pearson(p[ok], true[ok]))
        row[f"{name}_mean_rmsf_err_A"] = float(abs(p[ok].mean() - true[ok].mean()))
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a prior_mdcath.yaml checkpoint (last.pt)")
    ap.add_argument("--store", default=str(ROOT / "runs/prior_mdcath/labels.h5"))
    ap.add_argument("--heldout", default=str(ROOT / "datasets/mdcath_split/heldout.txt"))
    ap.add_argument("--mdcath7", default=str(ROOT.parent / "shared/data/mdcath_rmsf"))
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    ck = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    cfg = DynaProtConfig.from_dict(ck["model_config"])
    if cfg.prior != "anm":
        print(f"{args.checkpoint}: not a physics-prior checkpoint (prior={cfg.prior!r})", file=sys.stderr)
        return 2
    # RMSF comes from DynaProt-M alone: J (pair blocks, O(N^3)) is not built
    trained = DynaProt(cfg, use_m=True, use_j=False).double().eval()
    trained.load_state_dict({k: v for k, v in ck["model"].items() if k.startswith("m.")})
    untrained = DynaProt(cfg, use_m=True, use_j=False).double().eval()  # zero last layers = ANM

    # (domain, set, sequence, backbone, true RMSF Å)
    items = []
    heldout = [line.split()[0] for line in Path(args.heldout).read_text().splitlines() if line.strip()]
    with LabelStore(args.store) as store:
        for k in heldout:
            lab = store.get(k)
            items.append((k, "mdcath_heldout", lab.sequence, np.array(lab.backbone), np.array(lab.rmsf)))
    folder = Path(args.mdcath7)
    if folder.is_dir():
        avg = _read_rmsf_csv(folder / "rmsf" / "replica_average_320K.csv", "rmsf_320")
        for domain in sorted(avg):
            chain = _mdcath_chain(folder / "pdbs" / f"{domain}.pdb")
            # the tables hold nm (../shared/data/README.md), whatever _read_rmsf_csv's docstring says
            true = NM_TO_ANGSTROM * np.array([avg[domain][r.number] for r in chain.residues])
            items.append((domain, "mdcath7", chain.sequence, chain.backbone, true))
    else:
        warnings.warn(f"{folder}: absent, the seven mdCATH domains are skipped", stacklevel=1)

    rows = []
    for domain, dataset, seq, bb, true in tqdm(items, desc="evaluate", unit="domain"):
        item = featurize_arrays(seq, bb, anm=True)
        preds = {"anm": _anm_rmsf(item), "prior_untrained": _predict_rmsf(untrained, item),
                 "prior_trained": _predict_rmsf(trained, item)}
        rows.append(_row(domain, dataset, true, preds))
    summary = {}
    for dataset in sorted({r["set"] for r in rows}):
        sel = [r for r in rows if r["set"] == dataset]
        summary[dataset] = {"n_domains": len(sel), **{
            f"median_{k}": float(np.median([r[k] for r in sel])) for k in sel[0] if k.endswith(("_r", "_err_A"))}}
        summary[dataset]["frac_prior_trained_beats_anm"] = float(np.mean(
            [r["prior_trained_r"] > r["anm_r"] for r in sel]))
    result = {"checkpoint": str(args.checkpoint), "step": int(ck["step"]), "summary": summary, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({"step": result["step"], "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
