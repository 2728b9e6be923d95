"""``dynaprot-viz predict``: structure -> dynamics.npz, annotated PDB, ensemble."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import add_anm_scale_argument, add_weights_argument, model_help, nonneg_int, predictor_options
from ..core.predictors import resolve_model

HELP = "predict residue dynamics of one chain or a complex and write annotated files"


def stem_of(path) -> str:
    """File name without structure suffixes: ``1abc.cif.gz`` -> ``1abc``."""
    name = Path(path).name
    for suffix in (".gz", ".pdb", ".ent", ".cif", ".mmcif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or "structure"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="PDB or mmCIF file, plain or gzipped")
    p.add_argument("--model", default=None, help=model_help())
    p.add_argument("--chain", default=None, help="chain name (default: first protein chain); several chains (a complex): A,B or all (ANM couples them as one network)")
    p.add_argument("--samples", type=nonneg_int, default=0, metavar="K",
                   help="also write an ensemble of K sampled conformations (default 0: none)")
    p.add_argument("--seed", type=int, default=0, help="random seed for --samples (default 0)")
    p.add_argument("--cif", action="store_true", help="also write <stem>.annotated.cif (mmCIF)")
    add_anm_scale_argument(p)
    p.add_argument("--device", default=None,
                   help="learned models only: auto, cpu, cuda or cuda:K (default: DynaProt on CUDA "
                        "when available, ResAxial on CPU)")
    add_weights_argument(p)
    p.add_argument("--out", required=True, help="output folder (created if needed)")


def run(args) -> int:
    from ..api import predict
    from ..export import write_annotated, write_ensemble
    from .._io import AtomicOutputs
    from ._outputs import check_output_folder

    source = Path(args.input)
    args.model = resolve_model(args.model)
    options = predictor_options(args)
    check_output_folder(args.out)  # before predicting: a bad --out costs no work
    dyn = predict(source, model=args.model, chain=args.chain, **options)
    out = Path(args.out)
    stem = stem_of(source)
    written = []
    with AtomicOutputs(out) as outputs:
        npz = out / f"{stem}.dynamics.npz"
        dyn.save(outputs.path(npz))
        written.append(npz)
        pdb = out / f"{stem}.annotated.pdb"
        write_annotated(dyn, source, outputs.path(pdb))
        written.append(pdb)
        if args.cif:
            cif = out / f"{stem}.annotated.cif"
            write_annotated(dyn, source, outputs.path(cif))
            written.append(cif)
        if args.samples:
            ens = out / f"{stem}.ensemble.pdb"
            write_ensemble(dyn, dyn.sample(args.samples, seed=args.seed), outputs.path(ens))
            written.append(ens)
    print(dyn.summary())
    for path in written:
        print(f"wrote {path}")
    return 0
