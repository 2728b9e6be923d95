"""``dynaprot-viz compare A B``: differential dynamics of two structures (or two models, or a
prediction and an MD label) as a page, a figure and/or files."""

from __future__ import annotations

from pathlib import Path

from ._args import add_anm_scale_argument, model_help, predictor_options
from ..core.errors import InputError
from ..core.predictors import resolve_model

HELP = "compare the dynamics of two structures (apo/holo, open/closed, two models): page, figure, files"


def add_arguments(p) -> None:
    p.add_argument("a", metavar="A", help="first structure (PDB/mmCIF, gzipped or not) or a .dynamics.npz")
    p.add_argument("b", metavar="B", help="second structure or .dynamics.npz; changes are reported as B - A")
    p.add_argument("--model", default=None, help=model_help())
    p.add_argument("--model-b", default=None, metavar="M",
                   help="another predictor for B (two predictors on one structure; default: --model)")
    add_anm_scale_argument(p)
    p.add_argument("--chain-a", default=None, help="chain of A (default: first protein chain)")
    p.add_argument("--chain-b", default=None, help="chain of B (default: first protein chain)")
    p.add_argument("--structure-a", default=None, help="with a .npz A: the structure it was predicted from")
    p.add_argument("--structure-b", default=None, help="with a .npz B: the structure it was predicted from")
    out = p.add_argument_group("outputs (at least one; all written only when every one succeeds)")
    out.add_argument("--html", default=None, metavar="OUT.html", help="offline comparison page")
    out.add_argument("--png", default=None, metavar="OUT.png", help="four-panel comparison figure")
    out.add_argument("--out", default=None, metavar="DIR",
                     help="folder for <a>_vs_<b>.compare.npz and <a>_vs_<b>.delta_rmsf.pdb (A's structure, "
                          "B-factor column = delta RMSF, 0 on unaligned residues)")


def _side(path: str, model: str, chain, structure, options: dict):
    from ..api import predict
    from ..core.gaussian import Dynamics

    src = Path(path)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file")
    if src.name.endswith(".npz"):
        return Dynamics.load(src), (Path(structure) if structure else None)
    return predict(src, model=model, chain=chain, **options), src


def run(args) -> int:
    from .._io import AtomicOutputs, atomic_write_bytes
    from ..compare_figure import delta_rmsf_structure, make_compare_figure
    from ..compare_view import compare_html
    from ..core.compare import compare
    from ..export import pdb_string
    from ._outputs import check_output_file, check_output_folder
    from .predict import stem_of

    if not (args.html or args.png or args.out):
        raise InputError("give at least one output: --html, --png or --out")
    if args.html:
        if Path(args.html).suffix.lower() not in (".html", ".htm"):
            raise InputError(f"--html {args.html}: the output name must end in .html")
        check_output_file(args.html, "--html")
    if args.png:
        if Path(args.png).suffix.lower() != ".png":
            raise InputError(f"--png {args.png}: the output name must end in .png")
        check_output_file(args.png, "--png")
    if args.out:
        check_output_folder(args.out)
    args.model = resolve_model(args.model)
    options = predictor_options(args)
    model_b = resolve_model(args.model_b) if args.model_b else args.model
    if args.model_b and args.anm_scale is not None and model_b != "anm":
        raise InputError("--anm-scale applies only to --model anm")
    dyn_a, st_a = _side(args.a, args.model, args.chain_a, args.structure_a, options)
    dyn_b, st_b = _side(args.b, model_b, args.chain_b, args.structure_b,
                        options if model_b == args.model else {})
    name_a, name_b = Path(args.a).name, Path(args.b).name
    if name_a == name_b:
        name_a, name_b = f"{name_a} [{dyn_a.model_name}]", f"{name_b} [{dyn_b.model_name}]"
    cmp = compare(dyn_a, dyn_b, name_a=name_a, name_b=name_b)
    # everything is computed before anything is written: a failure leaves no file
    page = compare_html(cmp, dyn_a, dyn_b, st_a, st_b) if args.html else None
    png = None
    if args.png:
        import io

        result = make_compare_figure(cmp, dyn_a, dyn_b)
        buf = io.BytesIO()
        result.figure.savefig(buf, format="png", dpi=result.dpi)
        png = buf.getvalue()
    pdb_text = None
    if args.out:
        pdb_text = pdb_string(delta_rmsf_structure(cmp, dyn_a, st_a))
    written = []
    if args.out:
        out = Path(args.out)
        stem = f"{stem_of(args.a)}_vs_{stem_of(args.b)}"
        with AtomicOutputs(out) as outputs:
            npz = out / f"{stem}.compare.npz"
            cmp.save(outputs.path(npz))
            pdb = out / f"{stem}.delta_rmsf.pdb"
            outputs.path(pdb).write_text(pdb_text, encoding="utf-8")
            written += [npz, pdb]
    if page is not None:
        from .._io import atomic_write_text

        written.append(atomic_write_text(Path(args.html), page))
    if png is not None:
        written.append(atomic_write_bytes(Path(args.png), png))
    print(cmp.summary())
    for path in written:
        print(f"wrote {path}")
    return 0
