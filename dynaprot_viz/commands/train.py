"""``dynaprot-viz train CONFIG.yaml``: train DynaProt-M/J from a label store (resumable)."""

from __future__ import annotations

import os

HELP = "train DynaProt-M/J or ResAxial from a label store (YAML config; resumes from out_dir)"


def add_arguments(p) -> None:
    p.add_argument("config", help="YAML training config (see training/configs/)")
    p.add_argument("--device", default=None, help="override the config's device: auto, cpu, cuda, cuda:K")
    p.add_argument("--max-steps", type=int, default=None, help="override the config's max_steps")
    p.add_argument("--export", default=None, metavar="FILE.safetensors",
                   help="after training, write the weights as safetensors (+ .json config)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..core.errors import InputError
    try:
        from ..training.train import export_weights, load_config, train
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise InputError(f"training needs the [train] extra: pip install 'dynaprot-viz[train]' ({exc})") from None

    from ..training.train_resaxial import is_resaxial_config, load_resaxial_config, train_resaxial

    if is_resaxial_config(args.config):  # `model: resaxial` in the YAML
        import dataclasses

        cfg = load_resaxial_config(args.config)
        overrides = {"progress": False} if args.no_progress else {}
        if args.max_steps is not None:
            if args.max_steps < 1:
                raise InputError(f"--max-steps must be >= 1, got {args.max_steps}")
            overrides["max_steps"] = args.max_steps
        if args.device:
            overrides["device"] = args.device
        train_resaxial(None, dataclasses.replace(cfg, **overrides))
        return 0
    cfg = load_config(args.config)
    if args.device:
        cfg.device = args.device
    if args.max_steps is not None:
        if args.max_steps < 1:
            raise InputError(f"--max-steps must be >= 1, got {args.max_steps}")
        cfg.max_steps = args.max_steps
    if args.no_progress:
        cfg.progress = False
    result = train(cfg)
    if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 reports and exports
        return 0
    val = result.last("val")
    print(f"trained to step {result.step} (resumed from {result.resumed_from}); "
          f"{result.n_parameters} parameters; checkpoint {result.checkpoint}")
    if val:
        print(f"validation loss {val['loss']:.4f} at step {val['step']}")
    print(f"metrics: {result.out_dir / 'metrics.csv'}")
    if args.export:
        path = export_weights(result.checkpoint, args.export)
        print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0
