"""``dynaprot-viz ingest``: MD trajectories, experimental conformer ensembles or mdCATH RMSF
-> label store (DESIGN.md section 2; kinds "md", "experimental-ensemble", "md-rmsf")."""

from __future__ import annotations

import argparse
import sys

from ._args import nonneg_int, positive_int
from ..core.errors import InputError

HELP = ("turn MD trajectories (ATLAS, mdCATH, any topology + trajectory), experimental conformer "
        "ensembles (DANCE) or mdCATH RMSF tables into training labels")


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("inputs (one kind)")
    src.add_argument("--atlas", metavar="DIR",
                     help="ATLAS download: DIR/<chain>/<chain>.pdb + <chain>_prod_R{1,2,3}[_fit].xtc")
    src.add_argument("--mdcath", metavar="FILE", nargs="+", help="mdCATH h5 files (one domain each)")
    src.add_argument("--topology", metavar="T", help="any topology MDAnalysis reads (PDB, GRO, PSF, TPR, ...)")
    src.add_argument("--trajectory", metavar="X", nargs="+",
                     help="trajectory files for --topology, one per replica (concatenated)")
    src.add_argument("--ensembles", metavar="DIR",
                     help="experimental conformer ensembles (DANCE layout: DIR/coords, DIR/alignments, split "
                          "lists) -> records of kind 'experimental-ensemble', one per collection")
    src.add_argument("--mdcath-rmsf", metavar="DIR",
                     help="mdCATH RMSF table (DIR/rmsf_320K.csv + DIR/pdbs/<domain>.pdb.gz) -> records of "
                          "kind 'md-rmsf' (RMSF only), one per domain")
    p.add_argument("--split", metavar="S[,S]",
                   help="--ensembles only: keep these splits of the DANCE lists (train, val, test)")
    p.add_argument("--key", help="store key for --topology (default: the topology's file stem)")
    p.add_argument("--chain", help="--topology only: keep this chain (default: all protein residues)")
    p.add_argument("--reference", metavar="PDB",
                   help="--topology only: reference coordinates (default: the topology's, else frame 0)")
    p.add_argument("--temperature", type=int, nargs="+", default=[320], metavar="K",
                   help="--mdcath only: temperatures to read (default 320; several give <domain>_<T>K keys)")
    p.add_argument("--out", required=True, metavar="STORE.h5", help="label store (created or extended)")
    p.add_argument("--overwrite", action="store_true", help="recompute chains already in the store")
    p.add_argument("--chunk-frames", type=positive_int, default=256, help="frames read at a time (default 256)")
    p.add_argument("--keep-frames", type=nonneg_int, default=250,
                   help="MD conformations kept per chain for ensemble metrics (default 250)")
    p.add_argument("--ddof", type=int, choices=[0, 1], default=1,
                   help="covariance normalisation: 1 = sample covariance (default), 0 = population")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..training.ingest import ingest
    from ..training.readers import atlas_sources, mdcath_sources, trajectory_source

    given = [name for name, v in (("--atlas", args.atlas), ("--mdcath", args.mdcath),
                                  ("--topology", args.topology), ("--ensembles", args.ensembles),
                                  ("--mdcath-rmsf", args.mdcath_rmsf)) if v]
    if len(given) != 1:
        raise InputError("give exactly one of --atlas DIR, --mdcath FILE..., --topology T --trajectory X..., "
                         "--ensembles DIR, --mdcath-rmsf DIR")
    if args.split and not args.ensembles:
        raise InputError("--split applies only to --ensembles")
    if args.topology and not args.trajectory:
        raise InputError("--topology needs --trajectory X [X ...]")
    if args.trajectory and not args.topology:
        raise InputError("--trajectory needs --topology T")
    for opt in ("key", "chain", "reference"):
        if getattr(args, opt) and not args.topology:
            raise InputError(f"--{opt} applies only to --topology")
    if args.ensembles or args.mdcath_rmsf:
        return _run_labels(args)
    if args.atlas:
        sources = atlas_sources(args.atlas)
    elif args.mdcath:
        sources = mdcath_sources(args.mdcath, temperatures=args.temperature)
    else:
        sources = [trajectory_source(args.topology, args.trajectory, key=args.key,
                                     reference=args.reference, chain=args.chain)]
    result = ingest(sources, args.out, overwrite=args.overwrite, chunk_frames=args.chunk_frames,
                    keep_frames=args.keep_frames, ddof=args.ddof, progress=not args.no_progress)
    print(result.summary())
    if result.failed:
        n = len(result.failed)
        print(f"dynaprot-viz ingest: error: {n} of {len(sources)} chain(s) failed "
              f"(first: {next(iter(result.failed.items()))[0]}); the others are in {args.out}",
              file=sys.stderr)
        return 2
    return 0


def _run_labels(args) -> int:
    """--ensembles / --mdcath-rmsf: the same conventions as the MD kinds."""
    if args.ensembles:
        from ..training.ensembles import ingest_ensembles

        splits = [x.strip() for x in args.split.split(",")] if args.split else None
        result = ingest_ensembles(args.ensembles, args.out, splits=splits, overwrite=args.overwrite,
                                  progress=not args.no_progress)
        what = "collection(s)"
    else:
        from ..training.rmsf_labels import ingest_mdcath_rmsf

        result = ingest_mdcath_rmsf(args.mdcath_rmsf, args.out, overwrite=args.overwrite,
                                    progress=not args.no_progress)
        what = "domain(s)"
    print(result.summary())
    if result.failed:
        total = len(result.failed) + len(result.ingested) + len(result.skipped)
        print(f"dynaprot-viz ingest: error: {len(result.failed)} of {total} {what} failed "
              f"(first: {next(iter(result.failed))}); the others are in {args.out}", file=sys.stderr)
        return 2
    return 0
