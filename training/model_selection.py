"""Which model is the default: the held-out evaluation shipped with the package.

    python -m dynaprot_viz.training.model_selection            # -> dynaprot_viz/weights/model-selection.json
    python -m dynaprot_viz.training.model_selection --check    # recompute, compare, write nothing

Every entry point (``predict``, the CLI, the widget, the page, the figure, the
plugins) uses :func:`dynaprot_viz.core.predictors.default_model`, which applies
:func:`~dynaprot_viz.core.predictors.select_default` to the ``sets`` this module
writes: per held-out set, the median over proteins of the RMSF Pearson r of each
registered model.  A learned model becomes the default only when it beats ANM on
every set; otherwise ANM stays the default.

Held-out sets (never trained on; each one is used only when its data is present):

``mdcath-7``
    The seven mdCATH domains of ``../shared/data/mdcath_rmsf`` (explicit-solvent MD,
    320 K, mean of five replicas; :func:`~.evaluate.evaluate_mdcath_rmsf`).
``campaign-heldout``
    The campaign chains held out by ``training/configs/campaign.yaml``'s ``val_keys``
    (our implicit-solvent MD; store from ``datasets/campaign/build_store.py``).
``dance-test``
    The ten proteins of the DANCE test split (``../shared/data/dance``): RMSF of the
    experimental conformer ensemble, the reference conformer as input
    (:mod:`~.ensembles`).
``mdcath-split-heldout``
    The held-out domains of the family-aware mdCATH split (``datasets/mdcath_split``,
    30% identity; ``../shared/data/mdcath_train``, 320 K RMSF; :func:`mdcath_split_set`).

The file also records the SHA-256 of every shipped weights file it evaluated, so a
test can tell when weights changed without the evaluation being rerun.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import sys
import warnings
from importlib import resources
from pathlib import Path

import numpy as np

from dynaprot_viz.core.predictors import (BASELINE_MODEL, MODEL_SELECTION_FILE, available_models,
                                          select_default)

from .evaluate import shared_data_dir

__all__ = ["held_out_sets", "build_selection", "weights_digests", "mdcath7_cases", "main"]

ROOT = Path(__file__).resolve().parents[1]
#: shipped weights files whose digests the selection records
WEIGHTS_FILES = {"dynaprot": "dynaprot.safetensors", "resaxial": "resaxial-preview.safetensors",
                 "anm-gbm": "anm-gbm.safetensors"}


def weights_digests() -> dict:
    """``{model: sha256 hex}`` of the shipped weights files present in the package."""
    out = {}
    for model, name in WEIGHTS_FILES.items():
        ref = resources.files("dynaprot_viz.weights").joinpath(name)
        try:
            out[model] = hashlib.sha256(ref.read_bytes()).hexdigest()
        except (FileNotFoundError, OSError):
            continue
    return out


def _median(values) -> float:
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    return float(np.median(v)) if v.size else math.nan


def _summary(per_protein: dict, models, per_protein_err: dict | None = None) -> dict:
    """``{"n": proteins, "models": {m: median r}, "per_protein": {key: {m: r}}}``, plus, when
    ``per_protein_err`` is given, ``"mean_rmsf_abs_err_A": {m: median over proteins of
    |mean predicted RMSF - mean true RMSF|}`` and ``"per_protein_err_A"`` (Å)."""
    out = {
        "n": len(per_protein),
        "models": {m: _median([row.get(m) for row in per_protein.values()]) for m in models},
        "per_protein": per_protein,
    }
    if per_protein_err is not None:
        out["mean_rmsf_abs_err_A"] = {m: _median([row.get(m) for row in per_protein_err.values()])
                                      for m in models}
        out["per_protein_err_A"] = per_protein_err
    return out


def _score(models, cases, set_name: str, amplitude: bool = True) -> dict:
    """RMSF r (and, with ``amplitude``, the error of the mean RMSF in Å) of every model on
    ``cases`` ((key, chain, kept residues, true RMSF (n,) Å)), summarised by
    :func:`_summary`; a model that fails on one protein gets NaN there."""
    from tqdm.auto import tqdm

    from dynaprot_viz.core.metrics import rmsf_pearson
    from dynaprot_viz.core.predictors import get_predictor

    per: dict = {}
    err: dict = {}
    for key, chain, keep, true_rmsf in tqdm(cases, desc=f"held-out {set_name}", unit="protein",
                                            dynamic_ncols=True):
        per[key], err[key] = {}, {}
        for m in models:
            try:
                pred = get_predictor(m)(chain).rmsf[keep]
                per[key][m] = float(rmsf_pearson(pred, true_rmsf))
                err[key][m] = float(abs(np.mean(pred) - np.mean(true_rmsf)))
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:  # one protein must not stop the selection
                warnings.warn(f"{m} on {set_name} {key} failed: {exc}", stacklevel=3)
                per[key][m] = err[key][m] = math.nan
    return _summary(per, models, err if amplitude else None)


def mdcath7_cases(folder, temperature: int = 320):
    """``(domain, chain, slice(None), true RMSF (N,) Å)`` of the seven held-out mdCATH
    domains (replica average at ``temperature``; the tables' nm converted to Å)."""
    from .evaluate import _read_rmsf_csv, mdcath_rmsf_domains
    from .rmsf_labels import NM_TO_ANGSTROM

    folder = Path(folder)
    avg = _read_rmsf_csv(folder / "rmsf" / f"replica_average_{int(temperature)}K.csv", f"rmsf_{int(temperature)}")
    for domain, chain, _, true_nm in mdcath_rmsf_domains(folder, avg):
        yield domain, chain, slice(None), NM_TO_ANGSTROM * true_nm


def mdcath7_set(models, folder=None) -> dict | None:
    """RMSF r (and mean-RMSF error, Å) on the seven held-out mdCATH domains, or None
    without the data."""
    from .evaluate import default_mdcath_rmsf_dir

    folder = folder or default_mdcath_rmsf_dir()
    if folder is None:
        return None
    return _score(models, mdcath7_cases(folder), "mdCATH-7")


def mdcath_split_set(models, folder=None, split_dir=None) -> dict | None:
    """RMSF r on the held-out domains of the family-aware mdCATH split
    (``datasets/mdcath_split/heldout.txt``, >= 30% identity families kept apart from
    ``train.txt``) of ``../shared/data/mdcath_train`` (explicit-solvent MD, 320 K, mean of
    five replicas; labelled residues only), or None without the data."""
    from .train_anm_gbm import SPLIT_DIR, mdcath_train_case, mdcath_train_labels, read_split

    if folder is None:
        shared = shared_data_dir()
        folder = shared / "mdcath_train" if shared is not None else None
    if folder is None or not (Path(folder) / "rmsf_320K.csv").exists():
        return None
    labels = mdcath_train_labels(folder)

    def cases():
        for domain in read_split(split_dir or SPLIT_DIR)["heldout"]:
            chain, keep, true_rmsf = mdcath_train_case(folder, domain, labels)
            yield domain, chain, keep, true_rmsf

    return _score(models, cases(), "mdCATH split")


def campaign_set(models, store=None, config=None) -> dict | None:
    """RMSF r on the campaign's held-out chains (``val_keys``), or None without the store."""
    import yaml

    from .evaluate import evaluate

    store = Path(store or ROOT / "runs" / "campaign" / "labels.h5")
    config = Path(config or ROOT / "training" / "configs" / "campaign.yaml")
    if not store.exists():
        return None
    keys = yaml.safe_load(config.read_text()).get("val_keys") or []
    if not keys:
        return None
    res = evaluate(store, models, keys=keys, n_samples=0, progress=False)
    per: dict = {}
    for row in res.rows:
        per.setdefault(row["key"], {})[row["model"]] = row["rmsf_r"]
    return _summary(per, models)


def dance_test_set(models, folder=None) -> dict | None:
    """RMSF r against the DANCE test ensembles (reference conformer as input), or None."""
    try:
        from .ensembles import dance_rmsf_cases
    except ImportError:
        return None
    if folder is None:
        shared = shared_data_dir()
        folder = shared / "dance" if shared is not None else None
    if folder is None or not Path(folder).is_dir():
        return None
    cases = ((key, chain, slice(None), true_rmsf)
             for key, chain, true_rmsf in dance_rmsf_cases(folder, split="test"))
    # experimental variability has no thermal scale: RMSF r only
    return _score(models, cases, "DANCE", amplitude=False)


def held_out_sets(models=None, *, campaign_store=None) -> dict:
    """``{set name: summary}`` for every held-out set whose data is present."""
    models = list(models or available_models())
    sets = {}
    for name, fn in (("mdcath-7", lambda: mdcath7_set(models)),
                     ("campaign-heldout", lambda: campaign_set(models, campaign_store)),
                     ("dance-test", lambda: dance_test_set(models)),
                     ("mdcath-split-heldout", lambda: mdcath_split_set(models))):
        got = fn()
        if got is not None:
            sets[name] = got
        else:
            warnings.warn(f"held-out set {name}: data not present, left out", stacklevel=2)
    return sets


def build_selection(models=None, *, campaign_store=None) -> dict:
    """The content of ``model-selection.json``: sets, the chosen default and why."""
    sets = held_out_sets(models, campaign_store=campaign_store)
    default, reason = select_default(sets, BASELINE_MODEL)
    return {
        "format": "dynaprot-viz-model-selection",
        "metric": "median over held-out proteins of the Pearson r of per-residue RMSF",
        "rule": "a learned model is the default only when its median beats ANM's on every set",
        "default": default,
        "reason": reason,
        "sets": sets,
        "weights_sha256": weights_digests(),
        "command": "python -m dynaprot_viz.training.model_selection",
        "date": _dt.date.today().isoformat(),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "dynaprot_viz" / "weights" / MODEL_SELECTION_FILE))
    p.add_argument("--campaign-store", default=None, help="campaign label store (default runs/campaign/labels.h5)")
    p.add_argument("--check", action="store_true", help="recompute and compare with --out; write nothing")
    args = p.parse_args(argv)
    sel = build_selection(campaign_store=args.campaign_store)
    for name, s in sel["sets"].items():
        print(f"{name} ({s['n']} proteins): " + ", ".join(f"{m} {v:.3f}" for m, v in s["models"].items()))
    print(f"default: {sel['default']} - {sel['reason']}")
    if args.check:
        old = json.loads(Path(args.out).read_text())
        same = old.get("default") == sel["default"]
        print("unchanged default" if same else f"default changed: {old.get('default')} -> {sel['default']}")
        return 0 if same else 1
    from dynaprot_viz._io import atomic_write_text

    atomic_write_text(args.out, json.dumps(sel, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
