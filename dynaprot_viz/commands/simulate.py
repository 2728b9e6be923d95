"""``dynaprot-viz simulate``: implicit-solvent MD of single chains (OpenMM) -> training labels."""

from __future__ import annotations

import argparse
import sys

from ._args import nonneg_float, nonneg_int, positive_float, positive_int
from ..core.errors import InputError

HELP = "run implicit-solvent MD (OpenMM, amber14 + OBC2) of protein chains and store C-alpha trajectories"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("structures", nargs="*", metavar="STRUCTURE",
                   help="PDB/mmCIF files (gzipped or not); FILE:CHAIN picks a chain (default: the first "
                        "protein chain)")
    p.add_argument("--out", metavar="DIR", help="output folder, one sub-folder per chain (resumable)")
    p.add_argument("--ns", type=positive_float, help="production nanoseconds per chain")
    p.add_argument("--platform", choices=["auto", "CPU", "CUDA"], default="auto",
                   help="OpenMM platform (default auto: CUDA when it works, else CPU)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="chains simulated in parallel processes (default 1)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU platform threads per chain")
    p.add_argument("--store", metavar="STORE.h5", help="also write labels into this label store")
    p.add_argument("--temperature", type=positive_float, default=300.0, help="kelvin (default 300)")
    p.add_argument("--save-ps", type=positive_float, default=10.0,
                   help="ps between saved C-alpha frames (default 10)")
    p.add_argument("--equilibration-ps", type=nonneg_float, default=100.0,
                   help="unrecorded equilibration after minimisation (default 100 ps)")
    p.add_argument("--minimize-iterations", type=nonneg_int, default=0,
                   help="energy minimisation iterations (default 0: until converged)")
    p.add_argument("--seed", type=int, default=None, help="base random seed (default: random)")
    p.add_argument("--max-wall-minutes", type=positive_float, default=None,
                   help="stop a chain after this long (checkpointed; a rerun continues)")
    p.add_argument("--list-sources", action="store_true",
                   help="instead of simulating: collect offline starting structures (30-400 residues, "
                        "<= 40%% identity, held-out mdCATH excluded) into --out (structures/, sources.json, "
                        "manifest) and list them")
    p.add_argument("--atlas-dir", metavar="DIR", help="--list-sources: ATLAS chains folder")
    p.add_argument("--bioemu", metavar="WHEEL_OR_DIR",
                   help="--list-sources: bioemu-benchmarks wheel or folder (default: the installed package)")
    p.add_argument("--held-out", metavar="DIR", help="--list-sources: mdcath_rmsf folder (held-out domains)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _list_sources(args) -> int:
    from ..training.sources import build_sources, write_manifest

    if not args.out:
        raise InputError("--list-sources needs --out DIR")
    kept, dropped = build_sources(args.out, atlas_dir=args.atlas_dir, bioemu=args.bioemu,
                                  mdcath_dir=args.held_out)
    write_manifest(args.out)
    for c in sorted(kept, key=lambda c: c.n_residues):
        print(f"{c.key}\t{c.n_residues}\t{c.source}\t{c.file}:{c.chain}")
    print(f"{len(kept)} chains kept, {len(dropped)} dropped; see {args.out}/sources.json", file=sys.stderr)
    return 0


def run(args) -> int:
    if args.list_sources:
        return _list_sources(args)
    from ..training.simulate import SimulationConfig, simulate

    if not args.structures:
        raise InputError("give at least one STRUCTURE (or --list-sources)")
    if not args.out:
        raise InputError("--out DIR is required")
    if args.ns is None:
        raise InputError("--ns X is required")
    from ._outputs import check_output_file, check_output_folder

    check_output_folder(args.out)  # before any MD: a bad path costs no simulation
    if args.store:
        check_output_file(args.store, "--store")
    cfg = SimulationConfig(ns=args.ns, temperature_K=args.temperature, save_interval_ps=args.save_ps,
                           equilibration_ps=args.equilibration_ps,
                           minimize_iterations=args.minimize_iterations, platform=args.platform,
                           threads=args.threads, seed=args.seed,
                           max_wall_s=args.max_wall_minutes * 60 if args.max_wall_minutes else None)
    result = simulate(args.structures, args.out, cfg, workers=args.workers, store=args.store,
                      progress=not args.no_progress)
    print(result.summary())
    if not result.ok:
        # one line; finished MD is never lost: say where it is and how to finish the job
        parts = []
        if result.failed:
            key, reason = next(iter(result.failed.items()))
            parts.append(f"{len(result.failed)} chain(s) failed (first: {key}: {reason})")
        unstored = result.unstored()
        if unstored:
            key, reason = next(iter(unstored.items()))
            parts.append(f"the labels of {len(unstored)} chain(s) were not stored (first: {key}: {reason}); "
                         f"their MD is kept (e.g. {result.trajectory(key)}): rerun the same command to "
                         "store them, finished MD is not repeated")
        elif result.store_error is not None:
            parts.append(f"storing labels failed: {result.store_error}")
        elif result.ingest is not None and result.ingest.failed:
            key, reason = next(iter(result.ingest.failed.items()))
            parts.append(f"the labels of {len(result.ingest.failed)} chain(s) were not stored "
                         f"(first: {key}: {reason})")
        print(f"dynaprot-viz simulate: error: {'; '.join(parts)}; finished chains are in {args.out}",
              file=sys.stderr)
        return 2
    return 0
