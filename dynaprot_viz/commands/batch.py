"""``dynaprot-viz batch``: many structures on Dask into one resumable store."""

from __future__ import annotations

from ._args import add_anm_scale_argument, add_weights_argument, model_help, positive_int

HELP = "predict every chain of many structures on Dask into a resumable Zarr store (+ Parquet tables)"


def add_arguments(p) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="structure files (PDB/mmCIF, plain or .gz), directories (searched recursively), "
                        "text files of paths (.txt/.list/.lst), or backbone npz files of "
                        "datasets/pdb_backbones/extract.py")
    p.add_argument("--model", default=None, help=model_help())
    add_weights_argument(p)
    add_anm_scale_argument(p)
    p.add_argument("--device", default=None, help="learned models only: auto, cpu, cuda or cuda:K on the workers")
    p.add_argument("--out", required=True, metavar="STORE",
                   help="store folder (created; an existing store made with the same options is resumed)")
    p.add_argument("--coupling", default="full", metavar="full|band:K|none",
                   help="what to keep of each N x N coupling: all of it (default), the K off-diagonals on each "
                        "side, or nothing (its N^2 values dominate the store's size)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="worker processes of the embedded Dask LocalCluster (default: one per CPU)")
    p.add_argument("--threads-per-worker", type=positive_int, default=1,
                   help="threads per worker process (default 1)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing Dask cluster (e.g. tcp://host:8786, from `dask scheduler`) instead "
                        "of the embedded one; its workers must see the store and inputs at the same paths")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="inputs per Dask task (default: about 20 tasks per worker thread, but at least 16 inputs "
                        "a task while every thread still gets two tasks, and at most 64)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import sys

    from ..batch import predict_many
    from ..core.errors import InputError
    from ..core.predictors import resolve_model
    from ._args import predictor_options

    args.model = resolve_model(args.model)
    options = predictor_options(args)
    if args.scheduler and (args.workers is not None or args.threads_per_worker != 1):
        raise InputError("--workers/--threads-per-worker size the embedded cluster; with --scheduler the "
                         "cluster's own workers are used")
    result = predict_many(args.inputs, model=args.model, store=args.out, coupling=args.coupling,
                          workers=args.workers, threads_per_worker=args.threads_per_worker,
                          scheduler=args.scheduler, batch_size=args.batch_size, progress=not args.no_progress,
                          **options)
    store = result.open()
    print(result.summary_line())
    print(f"store {store.path}: {len(store.summary)} chains, {len(store.failures)} failures "
          f"({store.size_bytes() / 1e6:.1f} MB); read it with dynaprot_viz.open_store({str(store.path)!r})")
    if len(store.failures):
        first = store.failures.iloc[0]
        what = f"{first['chain']}: {first['reason']}" if first["chain"] else first["reason"]
        print(f"failures table: {len(store.failures)} rows, e.g. {what}", file=sys.stderr)
    if len(store.summary) == 0 and len(store.failures):
        raise InputError(f"no chain could be predicted ({len(store.failures)} failures; see the failures table)")
    return 0
