"""``dynaprot-viz view``: structure -> one self-contained offline HTML page."""

from __future__ import annotations

from pathlib import Path

from ._args import add_anm_scale_argument, add_weights_argument, model_help, nonneg_int, predictor_options
from ..core.errors import InputError
from ..core.predictors import resolve_model

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
    p.add_argument("input", nargs="?", help="PDB or mmCIF file (plain or gzipped), or a .dynamics.npz from "
                   "`predict` (omit with --store)")
    p.add_argument("--model", default=None, help=model_help())
    add_weights_argument(p)
    add_anm_scale_argument(p)
    p.add_argument("--chain", default=None, help="chain name (default: first protein chain); several chains (a complex): "
                   "A,B or all (ANM couples them as one network); with --store: "
                   "the entry id, e.g. 1abc_A")
    p.add_argument("--store", default=None, metavar="STORE",
                   help="show one entry (--chain ENTRY) of a `dynaprot-viz batch` store instead of INPUT")
    p.add_argument("--structure", default=None,
                   help="with a .npz INPUT: the structure file it was predicted from (for the cartoon)")
    p.add_argument("--probability", type=_probability, default=0.5,
                   help="probability inside each ellipsoid (default 0.5, as PyMOL)")
    p.add_argument("--samples", type=nonneg_int, default=20, metavar="K",
                   help="ensemble samples to animate (default 20, 0: none)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the samples (default 0)")
    p.add_argument("--cmap", default="viridis", help="matplotlib colour map for RMSF (default viridis)")
    p.add_argument("--heatmap-range", choices=["auto", "full", "robust"], default="auto",
                   help="colour range of the correlation heatmap: full -1..1, robust ±98th percentile of "
                        "|C_ij| (i≠j), or auto (default: robust when fewer than 2%% of entries reach |C| = 0.5)")
    p.add_argument("--html", required=True, help="output page (.html), written atomically")


def run(args) -> int:
    from ..api import predict
    from ..core.gaussian import Dynamics
    from ..html import write_html
    from ._outputs import check_output_file

    source = Path(args.input) if args.input is not None else None
    out = Path(args.html)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--html {out}: the output name must end in .html")
    check_output_file(out, "--html")  # before predicting: a bad path costs no work
    if args.store is not None or source is None:
        from ..batch.store import entry_for_view

        dyn, structure = entry_for_view(args.store, args.chain, args.input, args.structure)
    elif source.name.endswith(".npz"):
        dyn = Dynamics.load(source)
        structure = Path(args.structure) if args.structure else None
    else:
        args.model = resolve_model(args.model)
        dyn = predict(source, model=args.model, chain=args.chain, **predictor_options(args))
        structure = source
    write_html(dyn, out, structure, probability=args.probability, n_samples=args.samples, seed=args.seed,
               cmap=args.cmap, heatmap_range=args.heatmap_range,
               input_name=source.name if source is not None else args.chain)
    print(dyn.summary())
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0
