"""``dynaprot-viz figure``: a multi-panel publication figure of one prediction (headless)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import add_anm_scale_argument, add_weights_argument, model_help, predictor_options
from ..core.errors import InputError
from ..core.predictors import resolve_model

HELP = "make a multi-panel figure (PNG/SVG/PDF): ellipsoids, coupling map, RMSF profile"


def _float_in(lo, hi, what):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not lo < value < hi:
            raise argparse.ArgumentTypeError(f"{what} must be between {lo:g} and {hi:g}, got {text!r}")
        return value

    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..figure import RENDERERS

    p.add_argument("input", help="PDB or mmCIF file, plain or gzipped")
    p.add_argument("--model", default=None, help=model_help())
    add_weights_argument(p)
    p.add_argument("--chain", default=None, help="chain name (default: first protein chain); several chains (a complex): A,B or all (ANM couples them as one network)")
    p.add_argument("--dynamics", default=None, metavar="NPZ",
                   help="use this saved prediction (.dynamics.npz) instead of predicting")
    out = p.add_argument_group("outputs (at least one; written atomically)")
    out.add_argument("--png", default=None, metavar="OUT.png", help="raster figure at --dpi")
    out.add_argument("--svg", default=None, metavar="OUT.svg", help="vector figure (structure panel embedded)")
    out.add_argument("--pdf", default=None, metavar="OUT.pdf", help="vector figure (structure panel embedded)")
    p.add_argument("--reference", default=None, metavar="MD.npz",
                   help="reference Dynamics (e.g. from MD, `dynaprot-viz ingest`): adds its RMSF and "
                        "the band-wise coupling panel")
    p.add_argument("--probability", type=_float_in(0, 1, "--probability"), default=0.5,
                   help="probability enclosed by each ellipsoid (default 0.5, PyMOL's convention)")
    p.add_argument("--cmap", default="viridis", help="matplotlib colour map for RMSF (default viridis)")
    p.add_argument("--rmsf-max", type=_float_in(0, 1e6, "--rmsf-max"), default=None, metavar="RMSF",
                   help="top of the RMSF colour range in Å (default: robust, the 2nd-98th percentile "
                        "as on the page; the colour bar states the true range)")
    p.add_argument("--heatmap", choices=["correlation", "slow", "coupling"], default="correlation",
                   help="panel b: DCCM correlation (unitless, default), the correlation of the --slow-modes "
                        "slowest modes, or coupling C_ij (Å²)")
    p.add_argument("--heatmap-range", choices=["auto", "full", "robust"], default="auto",
                   help="colour range of a correlation map: full -1..1, robust ±98th percentile of |C_ij| "
                        "(i≠j, beyond clamped), or auto (default: robust when fewer than 2%% of entries reach "
                        "|C| = 0.5, as ANM's DCCM on long chains); the colour bar says which")
    p.add_argument("--slow-modes", type=int, default=10, metavar="K",
                   help="modes kept by --heatmap slow (default 10)")
    p.add_argument("--renderer", choices=list(RENDERERS), default="auto",
                   help="structure panel: PyMOL ray tracing, a 2D projection, or none "
                        "(default auto: PyMOL when installed)")
    p.add_argument("--no-pockets", action="store_true", help="do not mark pocket patches on the RMSF profile")
    p.add_argument("--width-mm", type=_float_in(19, 601, "--width-mm"), default=180.0,
                   help="figure width in mm (default 180, a double column)")
    p.add_argument("--height-mm", type=_float_in(19, 601, "--height-mm"), default=None,
                   help="figure height in mm (default 0.72 x width, 0.80 with --reference)")
    p.add_argument("--dpi", type=_float_in(49, 1201, "--dpi"), default=300.0, help="PNG resolution (default 300)")
    p.add_argument("--font-size", type=_float_in(3.9, 24.1, "--font-size"), default=8.0,
                   help="base font size in pt (default 8)")
    p.add_argument("--title", default=None, help="figure title (default none)")
    add_anm_scale_argument(p)


def run(args) -> int:
    from ..api import predict
    from ..core.gaussian import Dynamics
    from ..figure import make_figure, save_figure

    if not (args.png or args.svg or args.pdf):
        raise InputError("give at least one output: --png, --svg or --pdf")
    from ._outputs import check_output_file

    for option, path in (("--png", args.png), ("--svg", args.svg), ("--pdf", args.pdf)):
        if path:
            check_output_file(path, option, create_folder=True)  # before predicting: a bad path costs no work
    source = Path(args.input)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file")
    if args.dynamics:
        dyn = Dynamics.load(args.dynamics)
    else:
        args.model = resolve_model(args.model)
        options = predictor_options(args)
        dyn = predict(source, model=args.model, chain=args.chain, **options)
    reference = Dynamics.load(args.reference) if args.reference else None
    result = make_figure(
        dyn, source, reference=reference, pockets=[] if args.no_pockets else None,
        probability=args.probability, cmap=args.cmap, heatmap=args.heatmap, renderer=args.renderer,
        heatmap_range=args.heatmap_range, slow_modes=args.slow_modes,
        rmsf_max=args.rmsf_max, width_mm=args.width_mm, height_mm=args.height_mm, dpi=args.dpi,
        font_size=args.font_size, title=args.title,
    )
    for path in save_figure(result, png=args.png, svg=args.svg, pdf=args.pdf):
        print(f"wrote {path}")
    if result.bandwise is not None:
        import numpy as np

        b = result.bandwise
        print(f"band-wise coupling r: k=1 {b[0]:.3f}, peak {np.nanmax(b):.3f} at k={int(np.nanargmax(b)) + 1}")
    return 0
