"""The learned models' ablation on the four held-out sets (the model card's table).

    python -m dynaprot_viz.training.ablation              # -> runs/ablation/ablation.json + .md

Variants (rows), all trained by this project's code on the same mdCATH train split
(``datasets/mdcath_split/train.txt``, kind ``md-rmsf``) for the same 1,500 steps unless
said otherwise:

======================== =====================================================================
``anm``                  the physics baseline (ATLAS-calibrated amplitude, Å)
``anm-gbm``              ANM x per-residue gradient-boosted correction on simple features
``dynaprot-pure``        the paper's DynaProt (no prior): ``training/configs/pure_mdcath.yaml``
``dynaprot-prior``       physics-prior DynaProt, no pretraining: ``prior_mdcath.yaml``
``dynaprot-prior-pt``    physics-prior DynaProt pretrained on teacher labels (5,000 PDB
                         backbones, ``pretrain_teacher.yaml``) then ``finetune_mdcath.yaml``
``resaxial-mdcath``      ResAxial on the same labels (``resaxial_mdcath.yaml``, loss_mode rmsf)
``dynaprot-preview``     the first shipped DynaProt (pure, 2.7 M parameters, 2.3 ns campaign MD)
``resaxial-preview``     the shipped ResAxial (registry name ``resaxial``; campaign MD)
======================== =====================================================================

Columns, per held-out set (never trained on), medians over proteins as in the paper:

- RMSF Pearson r on all four sets (:mod:`.model_selection`'s cases);
- mean-RMSF error |mean predicted - mean MD| in Å on the two mdCATH sets (320 K);
- DANCE test (10 experimental ensembles): band-wise coupling r peak over k = 1..50
  (:func:`.evaluate.evaluate`, kind ``experimental-ensemble``) and the overlap of the
  top predicted mode with the ensemble's top principal component;
- campaign held-out chains: RMWD and sym-KL of the variance terms, band-wise coupling
  r peak (:func:`.evaluate.evaluate`).

A variant whose checkpoint is missing is left out with a warning.  Checkpoints are
exported to ``runs/ablation/weights/`` first (safetensors).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np

from dynaprot_viz._io import atomic_write_text

__all__ = ["VARIANTS", "register_variants", "run_ablation", "markdown_table", "main"]

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs"

#: name -> (kind, checkpoint or weights path relative to the repo, description)
VARIANTS = {
    "dynaprot-pure": ("dynaprot", "runs/ablation/pure/checkpoints/last.pt",
                      "pure DynaProt, mdCATH train split, 1,500 steps"),
    "dynaprot-prior": ("dynaprot", "runs/ablation/prior_nopretrain/checkpoints/last.pt",
                       "physics-prior DynaProt, no pretraining, 1,500 steps"),
    "dynaprot-prior-pt": ("dynaprot", "runs/finetune/run/checkpoints/last.pt",
                          "physics-prior DynaProt, pretrained 1,500 steps on teacher labels, fine-tuned 1,500"),
    "resaxial-mdcath": ("resaxial", "runs/ablation/resaxial/resaxial-mdcath.safetensors",
                        "ResAxial, mdCATH train split, 1,500 steps (RMSF loss)"),
    "dynaprot-prior-pt-multi": ("dynaprot", "runs/multisource/run/checkpoints/last.pt",
                                "as dynaprot-prior-pt, fine-tuned on mdCATH RMSF + DANCE train ensembles + "
                                "campaign MD with a learned scale per source (finetune_multisource.yaml)"),
    "dynaprot-preview": ("dynaprot", "dynaprot_viz/weights/dynaprot-preview.safetensors",
                         "the first preview: pure DynaProt (2.7 M parameters), 2.3 ns of campaign MD"),
}
#: shipped models evaluated under their registry names, and the names they get in the table
SHIPPED = {"anm": "anm", "anm-gbm": "anm-gbm", "resaxial": "resaxial-preview"}


def _weights_of(name: str, path: Path) -> Path | None:
    """The safetensors file of a variant (a DynaProt checkpoint is exported once)."""
    if not path.exists():
        return None
    if path.suffix == ".safetensors":
        return path
    from .train import export_weights

    out = RUNS / "ablation" / "weights" / f"{name}.safetensors"
    if not out.exists() or out.stat().st_mtime < path.stat().st_mtime:
        out.parent.mkdir(parents=True, exist_ok=True)
        export_weights(path, out, {"checkpoint": str(path)})
    return out


def register_variants(variants=None) -> list:
    """Register each variant whose weights exist as a predictor (this process only);
    return the names registered."""
    from dynaprot_viz.core.predictors import get_predictor, register_predictor

    names = []
    for name, (kind, rel, desc) in (variants or VARIANTS).items():
        w = _weights_of(name, ROOT / rel)
        if w is None:
            warnings.warn(f"ablation: {name} left out ({rel} not found)", stacklevel=2)
            continue
        register_predictor(name, functools.partial(get_predictor(kind), weights=str(w)), desc)
        names.append(name)
    return names


def _median(values) -> float:
    v = np.array([x for x in values if x is not None and isinstance(x, (int, float)) and math.isfinite(x)])
    return float(np.median(v)) if v.size else math.nan


def _store_metrics(store, models, keys, kind) -> dict:
    """Medians per model of evaluate()'s per-protein metrics on ``keys`` of ``store``."""
    from .evaluate import evaluate

    res = evaluate(store, models, keys=keys, n_samples=0, kind=kind, progress=False)
    out = {}
    for m in models:
        rows = [r for r in res.rows if r["model"] == m]
        out[m] = {k: _median([r.get(k) for r in rows])
                  for k in ("rmsf_r", "rmwd_var", "sym_kl_var", "coupling_r_peak",
                            "coupling_r_k1", "coupling_r_k10", "coupling_r_k50")}
    return out


def _dance_extras(models) -> dict:
    """Band-wise coupling peak and top-mode overlap per model on the DANCE test split."""
    from .evaluate import shared_data_dir
    from .store import LabelStore

    out = {m: {} for m in models}
    store = RUNS / "labels" / "labels.h5"
    if store.exists():
        with LabelStore(store, "r") as s:
            kinds = s.kinds()
            keys = [k for k, v in kinds.items()
                    if v == "experimental-ensemble" and s.metadata(k)["provenance"].get("split") == "test"]
        if keys:
            for m, vals in _store_metrics(store, models, keys, "experimental-ensemble").items():
                out[m].update({k: v for k, v in vals.items() if k.startswith("coupling_r_")})
    else:
        warnings.warn(f"{store}: no DANCE label store (dynaprot-viz ingest --ensembles); "
                      "band-wise coupling on DANCE left out", stacklevel=2)
    try:
        from .ensembles import dance_mode_overlap_cases
    except ImportError:
        return out
    shared = shared_data_dir()
    if shared is None or not (shared / "dance").is_dir():
        return out
    from dynaprot_viz.core.predictors import get_predictor

    per = {m: [] for m in models}
    for case in dance_mode_overlap_cases(shared / "dance", split="test"):
        for m in models:
            try:
                per[m].append(case.overlap(get_predictor(m)(case.chain)))
            except Exception as exc:  # one protein must not stop the table
                warnings.warn(f"{m} on DANCE {case.key}: {exc}", stacklevel=2)
    for m in models:
        out[m]["top_mode_overlap"] = _median(per[m])
    return out


def run_ablation(models) -> dict:
    """Everything the table needs, as one JSON-able dict."""
    import yaml

    from .model_selection import held_out_sets

    sets = held_out_sets(models)
    extras = {"dance-test": _dance_extras(models)}
    camp = RUNS / "campaign" / "labels.h5"
    keys = yaml.safe_load((ROOT / "training" / "configs" / "campaign.yaml").read_text()).get("val_keys") or []
    if camp.exists() and keys:
        extras["campaign-heldout"] = _store_metrics(camp, models, keys, "md")
    return {"sets": sets, "extras": extras, "models": list(models),
            "descriptions": {**{v: k for k, v in SHIPPED.items()}, **{k: v[2] for k, v in VARIANTS.items()}},
            "command": "python -m dynaprot_viz.training.ablation"}


def merge_results(old: dict, new: dict) -> dict:
    """``old`` with the models of ``new`` added or replaced (per set, per protein, extras)."""
    out = json.loads(json.dumps(old))
    for name, s in new["sets"].items():
        dst = out["sets"].setdefault(name, {"n": s["n"], "models": {}, "per_protein": {}})
        for key in ("models", "mean_rmsf_abs_err_A"):
            if key in s:
                dst.setdefault(key, {}).update(s[key])
        for key in ("per_protein", "per_protein_err_A"):
            for prot, row in s.get(key, {}).items():
                dst.setdefault(key, {}).setdefault(prot, {}).update(row)
    for name, per_model in new["extras"].items():
        out["extras"].setdefault(name, {}).update(per_model)
    out["models"] = list(dict.fromkeys(out["models"] + new["models"]))
    out["descriptions"].update(new["descriptions"])
    return out


def markdown_table(result: dict) -> str:
    """The model card's ablation table (one row per model)."""
    sets, ex = result["sets"], result["extras"]
    cols = [("mdCATH split r", lambda m: sets.get("mdcath-split-heldout", {}).get("models", {}).get(m)),
            ("split mean-RMSF err Å", lambda m: sets.get("mdcath-split-heldout", {}).get("mean_rmsf_abs_err_A", {}).get(m)),
            ("mdCATH-7 r", lambda m: sets.get("mdcath-7", {}).get("models", {}).get(m)),
            ("mdCATH-7 err Å", lambda m: sets.get("mdcath-7", {}).get("mean_rmsf_abs_err_A", {}).get(m)),
            ("DANCE r", lambda m: sets.get("dance-test", {}).get("models", {}).get(m)),
            ("DANCE coupling peak", lambda m: ex.get("dance-test", {}).get(m, {}).get("coupling_r_peak")),
            ("DANCE mode overlap", lambda m: ex.get("dance-test", {}).get(m, {}).get("top_mode_overlap")),
            ("campaign r", lambda m: sets.get("campaign-heldout", {}).get("models", {}).get(m)),
            ("campaign RMWD", lambda m: ex.get("campaign-heldout", {}).get(m, {}).get("rmwd_var")),
            ("campaign sym-KL", lambda m: ex.get("campaign-heldout", {}).get(m, {}).get("sym_kl_var")),
            ("campaign coupling peak", lambda m: ex.get("campaign-heldout", {}).get(m, {}).get("coupling_r_peak"))]
    n = {k: v.get("n") for k, v in sets.items()}
    head = "| model | " + " | ".join(c for c, _ in cols) + " |"
    lines = [f"Proteins: mdCATH split {n.get('mdcath-split-heldout')}, mdCATH-7 {n.get('mdcath-7')}, "
             f"DANCE test {n.get('dance-test')}, campaign {n.get('campaign-heldout')}.", "", head,
             "|" + "---|" * (len(cols) + 1)]
    for m in result["models"]:
        name = SHIPPED.get(m, m)
        vals = []
        for _, f in cols:
            v = f(m)
            vals.append("" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}")
        lines.append(f"| {name} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(RUNS / "ablation" / "ablation.json"))
    ap.add_argument("--models", nargs="*", help="only these (default: the shipped models and every variant found)")
    ap.add_argument("--merge", action="store_true", help="add the --models to the existing --out instead of replacing it")
    args = ap.parse_args(argv)
    names = register_variants()
    models = args.models or [*SHIPPED, *names]
    result = run_ablation(models)
    out = Path(args.out)
    if args.merge and out.exists():
        result = merge_results(json.loads(out.read_text()), result)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=1, default=float) + "\n")
    table = markdown_table(result)
    atomic_write_text(out.with_suffix(".md"), table)
    print(table)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
