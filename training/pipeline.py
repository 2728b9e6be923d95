"""The shipped DynaProt's training pipeline, every step, on a 2-core CPU (about an hour).

    python -m dynaprot_viz.training.pipeline                 # all steps; rerun to resume
    python -m dynaprot_viz.training.pipeline --export dynaprot_viz/weights/dynaprot.safetensors

Steps (each resumable: a finished step is skipped, an interrupted one continues):

1. ``ingest-mdcath``: mdCATH RMSF of the 1,046 domains of ``../shared/data/mdcath_train``
   (kind ``md-rmsf``, 320 K) -> ``runs/prior_mdcath/labels.h5`` (~25 s).
2. ``teacher``: ANM-GBM RMSF on 5,000 real PDB backbones of ProMod3's structure database
   (kind ``teacher-rmsf``, :mod:`.teacher_labels`) -> ``runs/pretrain/teacher.h5`` (~5 min).
   Needs ``runs/pdb_backbones/promod3_backbones.npz`` (``datasets/pdb_backbones/extract.py``).
3. ``pretrain``: ``training/configs/pretrain_teacher.yaml``, the physics-prior DynaProt on
   the teacher labels, 1,500 steps (~25 min, one thread).
4. ``finetune``: ``training/configs/finetune_mdcath.yaml``, from the pretraining
   checkpoint, on the mdCATH family-aware train split, 1,500 steps (~25 min, one thread).
5. ``export``: the fine-tuned weights as safetensors + json (``--export``; default
   ``runs/finetune/dynaprot-prior-pretrained.safetensors``).

Two more steps, not run by default, make the source-aware variant of the ablation
(``--steps multisource-store finetune-multisource``): one store of every training label
source (mdCATH train RMSF, the DANCE train and validation ensembles, the campaign chains
not held out) and ``training/configs/finetune_multisource.yaml`` (a learned global scale
per source, :class:`~.train.SourceScales`).

Timings of every step go to ``runs/pipeline/timings.json``.  Nothing here reads a
held-out label: the split is ``datasets/mdcath_split`` (family-aware, 30% identity) and
the teacher (``anm-gbm``) was trained on its train part only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dynaprot_viz._io import atomic_write_text
from dynaprot_viz.core.errors import InputError

__all__ = ["STEPS", "run_pipeline", "main"]

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "training" / "configs"
STEPS = ("ingest-mdcath", "teacher", "pretrain", "finetune", "export")
#: the source-aware variant of the fine-tuning (an ablation row; not part of the default steps)
EXTRA_STEPS = ("multisource-store", "finetune-multisource")


def _shared() -> Path:
    return ROOT.parent / "shared" / "data"


def _step_ingest(args) -> str:
    from .rmsf_labels import ingest_mdcath_rmsf

    res = ingest_mdcath_rmsf(args.mdcath_train, ROOT / "runs" / "prior_mdcath" / "labels.h5")
    return res.summary().splitlines()[0]


def _step_teacher(args) -> str:
    from .teacher_labels import ingest_teacher_labels

    res = ingest_teacher_labels(args.backbones, ROOT / "runs" / "pretrain" / "teacher.h5", n_chains=args.teacher_chains)
    return res.summary().splitlines()[0]


def _train(config: Path) -> str:
    import torch

    from .train import load_config, train

    cfg = load_config(config)
    ckpt = Path(cfg.out_dir) / "checkpoints" / "last.pt"
    if ckpt.exists():  # finished: skip the set-up (featurising thousands of chains) altogether
        step = int(torch.load(ckpt, map_location="cpu", weights_only=False)["step"])
        if step >= cfg.max_steps:
            return f"{config.name}: finished earlier (step {step}, {ckpt})"
    res = train(cfg)
    val = res.last("val")
    return (f"{config.name}: step {res.step} (resumed from {res.resumed_from}); "
            f"last validation loss {val.get('loss', float('nan')):.4f}")


def _step_export(args) -> str:
    from .train import export_weights, load_config

    cfg = load_config(CONFIGS / "finetune_mdcath.yaml")
    ckpt = Path(cfg.out_dir) / "checkpoints" / "last.pt"
    if not ckpt.exists():
        raise InputError(f"{ckpt}: no fine-tuned checkpoint (run the finetune step)")
    meta = {"variant": "physics-prior DynaProt (prior: anm), pretrained on teacher-rmsf, fine-tuned on md-rmsf",
            "pipeline": "python -m dynaprot_viz.training.pipeline",
            "pretrain_config": "training/configs/pretrain_teacher.yaml",
            "finetune_config": "training/configs/finetune_mdcath.yaml"}
    out = export_weights(ckpt, args.export, meta)
    return f"wrote {out} and {out.with_suffix('.json').name}"


def build_multisource_store(out, *, mdcath_store, dance_store, campaign_store, campaign_config,
                            mdcath_keys) -> str:
    """One label store of every *training* label source, for the source-aware fine-tuning:
    mdCATH RMSF of the train split (``md-rmsf``), the DANCE train and validation ensembles
    (``experimental-ensemble``; the test split stays out) and the campaign chains that
    ``campaign.yaml`` does not hold out (``md``).  Records are copied as they are;
    existing keys are skipped (resumable)."""
    import yaml

    from .store import LabelStore
    from .train import _read_keys_file

    allowed = _read_keys_file(mdcath_keys)
    held = set(yaml.safe_load(Path(campaign_config).read_text()).get("val_keys") or [])
    counts = {}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with LabelStore(out, "a") as dst:
        have = set(dst.keys())
        # which records to copy is decided from the index and the attributes; only those are read
        for path, want in ((mdcath_store, lambda k, meta: meta["kind"] == "md-rmsf" and k in allowed),
                           (dance_store, lambda k, meta: meta["kind"] == "experimental-ensemble"
                            and meta["provenance"].get("split") != "test"),
                           (campaign_store, lambda k, meta: meta["kind"] == "md" and k not in held)):
            if not Path(path).exists():
                raise InputError(f"{path}: no such label store (see training/pipeline.py)")
            with LabelStore(path, "r") as src:
                for k in src.keys():
                    if k not in have and want(k, src.metadata(k)):
                        lab = src.get(k)
                        dst.put(lab)
                        counts[lab.kind] = counts.get(lab.kind, 0) + 1
        kinds = dst.kinds()
    total = {k: sum(1 for v in kinds.values() if v == k) for k in set(kinds.values())}
    return f"{out}: added {counts or 'nothing'}; holds {total}"


def _step_multisource(args) -> str:
    runs = ROOT / "runs"
    return build_multisource_store(
        runs / "multisource" / "labels.h5", mdcath_store=runs / "prior_mdcath" / "labels.h5",
        dance_store=runs / "labels" / "labels.h5", campaign_store=runs / "campaign" / "labels.h5",
        campaign_config=CONFIGS / "campaign.yaml", mdcath_keys=ROOT / "datasets" / "mdcath_split" / "train.txt")


_RUN = {"ingest-mdcath": _step_ingest, "teacher": _step_teacher,
        "pretrain": lambda a: _train(CONFIGS / "pretrain_teacher.yaml"),
        "finetune": lambda a: _train(CONFIGS / "finetune_mdcath.yaml"), "export": _step_export,
        "multisource-store": _step_multisource,
        "finetune-multisource": lambda a: _train(CONFIGS / "finetune_multisource.yaml")}


def run_pipeline(args) -> dict:
    """Run the steps ``args.steps`` in order; return ``{step: {"seconds", "result"}}``."""
    timings_path = ROOT / "runs" / "pipeline" / "timings.json"
    timings_path.parent.mkdir(parents=True, exist_ok=True)
    done = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    for step in args.steps:
        print(f"== {step}", flush=True)
        t0 = time.perf_counter()
        result = _RUN[step](args)
        seconds = time.perf_counter() - t0
        print(f"   {result} ({seconds:.0f} s)", flush=True)
        prev = done.get(step, {})
        # a resumed step adds its time to the earlier attempts'
        done[step] = {"seconds": round(prev.get("seconds", 0.0) + seconds, 1), "result": result}
        atomic_write_text(timings_path, json.dumps(done, indent=1) + "\n")
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", nargs="+", choices=STEPS + EXTRA_STEPS, default=list(STEPS))
    ap.add_argument("--mdcath-train", default=str(_shared() / "mdcath_train"))
    ap.add_argument("--backbones", default=str(ROOT / "runs" / "pdb_backbones" / "promod3_backbones.npz"))
    ap.add_argument("--teacher-chains", type=int, default=5000)
    ap.add_argument("--export", default=str(ROOT / "runs" / "finetune" / "dynaprot-prior-pretrained.safetensors"))
    args = ap.parse_args(argv)
    try:
        done = run_pipeline(args)
    except (InputError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = sum(v["seconds"] for v in done.values())
    print(f"pipeline: {total / 60:.1f} min in all steps so far (runs/pipeline/timings.json)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
