"""``dynaprot-viz view``: structure -> one self-contained offline HTML page."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import InputError
from ..core.predictors import available_models

HELP = "predict dynamics and write an offline HTML page (3D ellipsoids, heatmap, pockets, animation)"


def _probability(text: str) -> float:
    import argparse

    try:
        p = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < p < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return p


def add_arguments(p) -> None:
    p.add_argument("input", help="PDB or mmCIF file (plain or gzipped), or a .dynamics.npz from `predict`")
    p.add_argument("--model", default="dynaprot",
                   help="predictor: " + ", ".join(available_models()) + " (default dynaprot)")
    p.add_argument("--chain", default=None, help="chain name (default: first protein chain)")
    p.add_argument("--structure", default=None,
                   help="with a .npz INPUT: the structure file it was predicted from (for the cartoon)")
    p.add_argument("--probability", type=_probability, default=0.5,
                   help="probability inside each ellipsoid (default 0.5, as PyMOL)")
    p.add_argument("--samples", type=int, default=20, help="ensemble samples to animate (default 20, 0: none)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the samples (default 0)")
    p.add_argument("--cmap", default="viridis", help="matplotlib colour map for RMSF (default viridis)")
    p.add_argument("--html", required=True, help="output page (.html), written atomically")


def run(args) -> int:
    from ..api import predict
    from ..core.gaussian import Dynamics
    from ..html import write_html

    source = Path(args.input)
    out = Path(args.html)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--html {out}: the output name must end in .html")
    if args.samples < 0:
        raise InputError(f"--samples must be >= 0, got {args.samples}")
    if source.name.endswith(".npz"):
        dyn = Dynamics.load(source)
        structure = Path(args.structure) if args.structure else None
    else:
        dyn = predict(source, model=args.model, chain=args.chain)
        structure = source
    write_html(dyn, out, structure, probability=args.probability, n_samples=args.samples, seed=args.seed,
               cmap=args.cmap)
    print(dyn.summary())
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0
