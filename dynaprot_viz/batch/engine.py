"""Many structures on Dask distributed: :func:`predict_many`.

The client (this process) expands INPUTS into work items, skips those the store has
already committed, groups the rest into tasks of ``batch_size`` items (largest first,
so that the last tasks are the short ones) and keeps a bounded number of tasks in flight
on the Dask cluster: an embedded :class:`distributed.LocalCluster` of worker processes
sized to the machine, or an existing cluster (``scheduler="tcp://host:8786"``).

A task runs :func:`run_task` on a worker: it reads each item's chains, predicts them
with the model (resolved once per worker process and cached), writes all of the task's
chains into the Zarr store as one group (:class:`~.store.GroupWriter`; zarr's per-array
calls cost a few ms, too much to pay per chain) and returns the summary and failure
rows.  Only the client writes the tables (one committed part per task, see
:mod:`.store`), so a killed run loses at most the tasks in flight, and a rerun of the
same command redoes exactly those.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import sys
import threading
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.pockets import best_pocket_score
from .inputs import WorkItem, expand_inputs, read_chains
from .store import BatchStore, GroupWriter, StoreConfig, parse_coupling

__all__ = ["predict_many", "BatchResult", "run_task", "default_workers", "auto_batch_size"]

#: tasks in flight per worker thread (enough to hide the round trip, few enough to resume cheaply)
_IN_FLIGHT_PER_THREAD = 3
_MIN_AUTO_BATCH = 16
_MAX_AUTO_BATCH = 64


def _require():
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"dynaprot-viz batch needs Dask distributed ({exc}); "
                          "pip install 'dynaprot-viz[batch]'") from None


def default_workers() -> int:
    """Worker processes of the embedded cluster: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def auto_batch_size(n_items: int, n_threads: int) -> int:
    """Items per task: about 20 tasks per worker thread, at least 16 items (while every
    thread still gets two tasks) and at most 64.

    Enough tasks that the last ones (the smallest, as tasks are ordered largest first)
    leave little idle time at the end, and enough items per task that the per-task costs
    (the scheduler's few ms, and writing the task's group: about 10 ms plus the data)
    stay far below the task's compute time for ANM (about 40 ms a chain).
    """
    n_threads = max(1, n_threads)
    size = math.ceil(n_items / (20 * n_threads))
    size = max(size, min(_MIN_AUTO_BATCH, math.ceil(n_items / (2 * n_threads))))
    return int(max(1, min(_MAX_AUTO_BATCH, size)))


@dataclass
class BatchResult:
    """What one :func:`predict_many` call did.

    Attributes
    ----------
    store : Path
    n_inputs : int
        Work items given (files, npz entries, listed paths).
    n_skipped : int
        Items already committed by an earlier run, not redone.
    n_chains : int
        Chains predicted and written by this run.
    n_failed : int
        Failure rows written by this run.
    n_tasks, batch_size : int
        Dask tasks run and the items per task.
    n_workers, n_threads : int
        Worker processes and threads in all.
    startup_s : float
        Seconds to start (or reach) the cluster and load the model on every worker.
    compute_wall_s : float
        Seconds from the first task submitted to the last result committed.
    busy_s : float
        Sum over tasks of their run time on a worker.
    cpu_s : float
        Sum over tasks of the CPU time their worker process got meanwhile (busy_s minus
        the time other processes on a shared machine took).
    wall_s : float
        The whole call, seconds.
    worker_peak_rss_mb : dict
        ``{worker: peak resident memory (MB) of its process}``.
    model_loads : dict
        ``{worker: times its process loaded the model}`` (1 each: loaded once, cached).
    """

    store: Path
    n_inputs: int = 0
    n_skipped: int = 0
    n_chains: int = 0
    n_failed: int = 0
    n_tasks: int = 0
    batch_size: int = 0
    n_workers: int = 0
    n_threads: int = 0
    startup_s: float = 0.0
    compute_wall_s: float = 0.0
    busy_s: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    worker_peak_rss_mb: dict = field(default_factory=dict)
    model_loads: dict = field(default_factory=dict)

    @property
    def chains_per_s(self) -> float:
        """Chains predicted per second of compute wall time (cluster start-up excluded)."""
        return self.n_chains / self.compute_wall_s if self.compute_wall_s > 0 else float("nan")

    @property
    def overhead(self) -> float:
        """Fraction of worker-thread time not spent in tasks during the compute phase:
        1 - busy_s / (n_threads * compute_wall_s); scheduling, transfers, commits and
        idle threads at the end all count."""
        if self.compute_wall_s <= 0 or not self.n_threads:
            return float("nan")
        return 1.0 - self.busy_s / (self.n_threads * self.compute_wall_s)

    def open(self) -> BatchStore:
        """The store, for reading."""
        return BatchStore(self.store)

    def summary_line(self) -> str:
        return (f"{self.n_chains} chains predicted, {self.n_failed} failures, {self.n_skipped} inputs already "
                f"done; {self.chains_per_s:.2f} chains/s on {self.n_workers} workers x "
                f"{self.n_threads // max(1, self.n_workers)} threads ({self.n_tasks} tasks of "
                f"<= {self.batch_size}; overhead {100 * self.overhead:.1f}%; start-up {self.startup_s:.1f} s)")


# --------------------------------------------------------------------------- worker side

_MODEL_LOCK = threading.Lock()
_MODELS: dict = {}
_MODEL_LOADS: Counter = Counter()


def _model_key(config: dict) -> str:
    return json.dumps([config["model"], config["options"]], sort_keys=True)


def _worker_model(config: dict):
    """The predictor of ``config`` in this process, resolved (and its module imported)
    once per process; the learned predictors also cache their weights per process."""
    from ..core.predictors import get_predictor

    key = _model_key(config)
    with _MODEL_LOCK:
        if key not in _MODELS:
            _MODEL_LOADS[key] += 1
            _MODELS[key] = get_predictor(config["model"])
        return _MODELS[key]


def _options(config: dict) -> dict:
    opts = dict(config["options"])
    if opts.get("weights") is not None:
        opts["weights"] = Path(opts["weights"])
    return opts


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _peak_rss_mb() -> float:
    try:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20
    except Exception:  # pragma: no cover - not POSIX
        return float("nan")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    if isinstance(exc, InputError):
        return text or type(exc).__name__
    if isinstance(exc, FileNotFoundError) and exc.filename and str(exc.filename) not in text:
        return f"{exc.filename}: no such file"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _notes(caught) -> str:
    seen = []
    for w in caught:
        msg = str(w.message).strip().replace("\n", " ")
        if msg not in seen:
            seen.append(msg)
    return "; ".join(seen)


def _chain_stats(dyn) -> dict:
    rmsf = dyn.rmsf
    top = np.argsort(-rmsf, kind="stable")[:5]
    labels = ",".join(f"{dyn.residues[i].chain}:{dyn.residues[i].number}{dyn.residues[i].icode}" for i in top)
    return {"mean_rmsf": float(rmsf.mean()), "max_rmsf": float(rmsf.max()), "top5_mobile": labels,
            "best_pocket_score": best_pocket_score(dyn)}  # find_pockets(dyn)[0].score, NaN if none


def _process_item(item: dict, config: dict, writer: GroupWriter) -> tuple[list, list]:
    """Predict the chains of one work item into ``writer``: (summary rows, failure rows).
    The rows' ``seconds`` do not include the group's write yet (:func:`_flush` adds it)."""
    from ..api import predict

    worker = _worker_name()
    model_name = config["model"]
    entry_of = item["name"] if item["kind"] == "npz" else ""
    base = {"input": item["key"], "file": item["path"], "entry": entry_of}
    rows, fails = [], []
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            chains = read_chains(item)
        read_notes = _notes(caught)
    except Exception as exc:  # the whole input is bad: one row, the batch goes on
        fails.append({**base, "chain": "", "reason": _reason(exc), "model": model_name, "worker": worker,
                      "seconds": time.perf_counter() - t0})
        return rows, fails
    share = (time.perf_counter() - t0) / max(1, len(chains))  # reading time, shared among the chains
    predictor_options = _options(config)
    _worker_model(config)
    for entry, chain in chains:
        t1 = time.perf_counter()
        if isinstance(chain, Exception):
            fails.append({**base, "chain": entry, "reason": _reason(chain), "model": model_name,
                          "worker": worker, "seconds": share})
            continue
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                dyn = predict(chain, model=model_name, **predictor_options)
                stats = _chain_stats(dyn)
            where = writer.add(entry, dyn, {"file": item["path"], "chain": chain.chain_id, "entry": entry_of})
            note = "; ".join(n for n in (read_notes, _notes(caught)) if n)
            rows.append({**base, "chain": entry, "n_residues": len(dyn), "model": dyn.model_name, **stats,
                         "seconds": share + time.perf_counter() - t1, "status": "warning" if note else "ok",
                         "note": note, "worker": worker, **where})
        except Exception as exc:  # one bad chain never stops the batch
            fails.append({**base, "chain": entry, "reason": _reason(exc), "model": model_name, "worker": worker,
                          "seconds": share + time.perf_counter() - t1})
    return rows, fails


def _flush(writer: GroupWriter, pending: list, rows: list, fails: list, config: dict) -> None:
    """Write the buffered chains as one group; their rows move from ``pending`` to
    ``rows`` (each with its share of the write time), or to ``fails`` if the write fails."""
    if not pending:
        return
    t0 = time.perf_counter()
    try:
        writer.flush()
    except Exception as exc:
        reason = f"writing the store failed ({_reason(exc)})"
        fails.extend({"input": r["input"], "file": r["file"], "entry": r["entry"], "chain": r["chain"],
                      "reason": reason, "model": config["model"], "worker": r["worker"], "seconds": r["seconds"]}
                     for r in pending)
    else:
        share = (time.perf_counter() - t0) / len(pending)
        for r in pending:
            r["seconds"] += share
        rows.extend(pending)
    pending.clear()


def run_task(items: list[dict], config: dict) -> dict:
    """One Dask task: predict and store every chain of ``items`` (:meth:`WorkItem.as_dict`).

    The chains go into one group of the store (several when their arrays pass
    :data:`~.store.GROUP_BYTES`), written when the task ends; the client's commit of the
    returned rows is what makes them part of the store.

    Returns
    -------
    dict
        ``rows`` (summary rows), ``failures`` (failure rows), ``keys`` (the items' keys),
        ``seconds`` (wall time in this task), ``cpu_s`` (CPU time of the worker process meanwhile),
        ``worker``, ``peak_rss_mb`` and ``model_loads``
        (times this process loaded the model so far).
    """
    t0, cpu0 = time.perf_counter(), time.process_time()
    writer = GroupWriter(config["store"], config["coupling"])
    rows, fails, pending = [], [], []  # pending: rows of the chains in the writer's buffer
    for item in items:
        r, f = _process_item(item, config, writer)
        pending.extend(r)
        fails.extend(f)
        if writer.full:
            _flush(writer, pending, rows, fails, config)
    _flush(writer, pending, rows, fails, config)
    return {"rows": rows, "failures": fails, "keys": [i["key"] for i in items],
            "seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0, "worker": _worker_name(),
            "peak_rss_mb": _peak_rss_mb(),
            "model_loads": _MODEL_LOADS[_model_key(config)]}


def _warm_up(config: dict) -> dict:
    """Run on every worker before the tasks: load the model, check the store is writable."""
    t0 = time.perf_counter()
    root = Path(config["store"])
    probe = root / ".tmp" / f"probe-{uuid.uuid4().hex}"
    try:
        probe.mkdir(parents=True)
        probe.rmdir()
    except OSError as exc:
        return {"error": f"cannot write the store {root} ({exc.strerror or exc}); the workers need it on a "
                         "file system they share with this process"}
    try:
        import zarr  # noqa: F401

        _worker_model(config)
    except Exception as exc:
        return {"error": f"cannot load model {config['model']!r}: {_reason(exc)}"}
    return {"error": None, "seconds": time.perf_counter() - t0, "pid": os.getpid()}


# --------------------------------------------------------------------------- client side


@contextlib.contextmanager
def _dask_client(scheduler, workers: int, threads_per_worker: int):
    from distributed import Client, LocalCluster

    if scheduler is not None and not isinstance(scheduler, str):
        yield scheduler  # a distributed.Client given by the caller
        return
    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--scheduler {scheduler}: cannot connect ({_reason(exc)})") from None
        try:
            try:
                client.wait_for_workers(1, timeout=60)
            except TimeoutError:
                raise InputError(f"--scheduler {scheduler}: no worker joined within 60 s "
                                 f"(start some with `dask worker {scheduler}`)") from None
            yield client
        finally:
            client.close()
        return
    import dask

    # one BLAS thread per worker thread (as Dask's default), but not Dask's low
    # MALLOC_TRIM_THRESHOLD_: trimming after every large free slowed ANM's many
    # (3N, 3N) allocations by 15-25% in our measurements
    environ = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}
    with warnings.catch_warnings(), dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        warnings.simplefilter("ignore")  # the "port in use" chatter of a second local cluster
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _model_version(model: str, options: dict) -> str:
    import hashlib

    from .. import __version__

    text = f"dynaprot-viz {__version__}"
    w = options.get("weights")
    if w:
        h = hashlib.sha256(Path(w).read_bytes()).hexdigest()
        text += f", weights sha256 {h[:16]}"
    return text


def _normalise_options(model: str, options: dict) -> dict:
    """Options as JSON values, without those equal to the predictor's defaults (so that
    ``scale="relative"`` and no ``scale`` make the same store)."""
    import inspect

    from ..core.predictors import get_predictor

    params = inspect.signature(get_predictor(model)).parameters
    out = {}
    for k, v in options.items():
        if isinstance(v, os.PathLike):
            v = str(v)
        if k in params and params[k].default is not inspect.Parameter.empty and params[k].default == v:
            continue
        out[k] = v
    return out


def _batches(items: list[WorkItem], size: int) -> list[list[WorkItem]]:
    ordered = sorted(items, key=lambda it: -it.cost)  # largest first: short tasks fill the end
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def predict_many(inputs, model: str | None = None, store=None, *, coupling: str = "full",
                 workers: int | None = None, threads_per_worker: int = 1, scheduler=None,
                 batch_size: int | None = None, progress: bool = True, **options) -> BatchResult:
    """Predict every chain of many structures on Dask into one resumable store.

    Parameters
    ----------
    inputs : path or list of paths
        Structure files, directories (recursive), text files of paths, ProMod3 backbone
        npz files (:mod:`dynaprot_viz.batch.inputs`).
    model : str, optional
        Registered predictor; None: :func:`dynaprot_viz.default_model`.
    store : path
        The store folder (created; an existing store of the same model, options and
        coupling is resumed: committed inputs are skipped).
    coupling : {"full", "none", "band:K"}
        What to keep of each (N, N) coupling: all of it, nothing, or the K
        off-diagonals on each side.
    workers, threads_per_worker : int
        Size of the embedded LocalCluster (default: one single-threaded worker process
        per CPU).  Ignored with ``scheduler``.
    scheduler : str or distributed.Client, optional
        Address of an existing Dask scheduler (``tcp://host:8786``), or a Client.  The
        workers must import dynaprot_viz and see ``store`` and the inputs at the same paths.
    batch_size : int, optional
        Work items per task (default :func:`auto_batch_size`).
    progress : bool
        tqdm bar on stderr (chains/s, ETA).
    **options
        Predictor options (ANM ``cutoff``, ``gamma``, ``scale``; learned models ``weights``, ``device``).

    Returns
    -------
    BatchResult

    Raises
    ------
    InputError
        Bad INPUTS, model, coupling, store or scheduler (one line).  Inputs that cannot
        be predicted do not raise: they become rows of the failures table.

    Notes
    -----
    In a script, call this under ``if __name__ == "__main__":`` (the embedded cluster
    starts worker processes that import the main module).
    """
    from tqdm.auto import tqdm

    from ..core.predictors import accepts_option, get_predictor, resolve_model

    t_start = time.perf_counter()
    _require()
    if store is None:
        raise InputError("store: give the output store folder (store=... / --out STORE)")
    model = resolve_model(model)
    get_predictor(model)  # unknown names fail here, in one line
    coupling = parse_coupling(coupling)
    if workers is not None and int(workers) < 1:
        raise InputError(f"workers must be >= 1, got {workers!r}")
    if int(threads_per_worker) < 1:
        raise InputError(f"threads_per_worker must be >= 1, got {threads_per_worker!r}")
    if batch_size is not None and int(batch_size) < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size!r}")
    unknown = [k for k in options if not accepts_option(model, k)]
    if unknown:
        raise InputError(f"model {model!r} does not take option(s) {', '.join(sorted(unknown))}")
    options = _normalise_options(model, options)
    if options.get("weights") is not None and not Path(options["weights"]).is_file():
        raise InputError(f"--weights {options['weights']}: no such file")
    options = {k: (str(Path(v).resolve()) if k == "weights" and v is not None else v) for k, v in options.items()}

    items = expand_inputs(inputs)
    if not items:
        raise InputError("INPUTS: no structure files found (PDB/mmCIF, plain or .gz, or a backbone npz)")
    config_obj = StoreConfig(model=model, model_version=_model_version(model, options), model_options=options,
                             coupling=coupling)
    bstore = BatchStore.create_or_check(store, config_obj)
    result = BatchResult(store=bstore.path, n_inputs=len(items))
    with bstore.lock():
        bstore.recover()
        done = bstore.done_inputs()
        todo = [it for it in items if it.key not in done]
        result.n_skipped = len(items) - len(todo)
        if progress and result.n_skipped:
            print(f"{result.n_skipped} of {len(items)} inputs already in {bstore.path}: skipped", file=sys.stderr)
        if todo:
            config = {"store": str(bstore.path.resolve()), "model": model, "options": options, "coupling": coupling}
            try:
                _run(todo, config, bstore, result, scheduler,
                     default_workers() if workers is None else int(workers), int(threads_per_worker),
                     batch_size, progress, tqdm, t_start)
            finally:
                bstore.merge_parts()
        else:
            bstore.merge_parts()
    result.wall_s = time.perf_counter() - t_start
    return result


def _run(todo, config, bstore, result, scheduler, workers, threads_per_worker, batch_size, progress, tqdm,
         t_start):
    from distributed import as_completed

    with _dask_client(scheduler, workers, threads_per_worker) as client:
        try:
            client.wait_for_workers(1, timeout=60)
        except TimeoutError:
            raise InputError("the Dask cluster has no worker (none joined within 60 s)") from None
        info = client.scheduler_info(n_workers=-1) if _takes_n_workers(client) else client.scheduler_info()
        wk = info.get("workers", {})
        result.n_workers = len(wk)
        result.n_threads = int(sum(w.get("nthreads", 1) for w in wk.values())) or 1
        warm = client.run(_warm_up, config)
        errors = {w: r["error"] for w, r in warm.items() if r.get("error")}
        if errors:
            w, err = next(iter(errors.items()))
            raise InputError(f"worker {w}: {err}")
        result.startup_s = time.perf_counter() - t_start
        size = int(batch_size) if batch_size else auto_batch_size(len(todo), result.n_threads)
        result.batch_size = size
        pending = _batches(todo, size)
        pending.reverse()  # pop() from the end gives the largest first
        window = max(2, _IN_FLIGHT_PER_THREAD * result.n_threads)
        in_flight: dict = {}  # key -> the items of the task
        futures: dict = {}  # key -> its future
        ac = as_completed()
        run_id = uuid.uuid4().hex[:8]
        counter = [0]

        def submit(batch):
            counter[0] += 1
            fut = client.submit(run_task, [it.as_dict() for it in batch], config, pure=False,
                                key=f"dynaprot-viz-batch-{run_id}-{counter[0]}")
            in_flight[fut.key] = batch
            futures[fut.key] = fut
            ac.add(fut)

        bar = tqdm(total=len(todo), unit="chain", desc="batch", disable=not progress, file=sys.stderr,
                   dynamic_ncols=True, smoothing=0.05)
        t0 = time.perf_counter()
        try:
            while pending and len(in_flight) < window:
                submit(pending.pop())
            for fut in ac:
                batch = in_flight.pop(fut.key)
                futures.pop(fut.key, None)
                try:
                    res = fut.result()
                except Exception as exc:  # a worker died on this task (or the task itself broke)
                    if len(batch) > 1:
                        for it in batch:  # find the culprit: retry one item per task
                            submit([it])
                        fut.release()
                        continue
                    res = {"rows": [], "keys": [batch[0].key], "seconds": 0.0, "worker": "", "model_loads": 0,
                           "peak_rss_mb": float("nan"),
                           "failures": [{"input": batch[0].key, "file": batch[0].path,
                                         "entry": batch[0].name if batch[0].kind == "npz" else "", "chain": "",
                                         "reason": f"the worker failed on this input ({_reason(exc)})",
                                         "model": config["model"], "worker": "", "seconds": 0.0}]}
                fut.release()
                bstore.write_part(res["rows"], res["failures"])
                result.n_tasks += 1
                result.n_chains += len(res["rows"])
                result.n_failed += len(res["failures"])
                result.busy_s += res["seconds"]
                result.cpu_s += res.get("cpu_s", 0.0)
                if res["worker"]:
                    w = res["worker"]
                    result.worker_peak_rss_mb[w] = max(result.worker_peak_rss_mb.get(w, 0.0), res["peak_rss_mb"])
                    result.model_loads[w] = res["model_loads"]
                n_done = len(res["rows"]) + len(res["failures"])  # >= 1 per item
                bar.total += max(0, n_done - len(res["keys"]))  # files with several chains
                bar.update(n_done)
                if result.n_failed:
                    bar.set_postfix(failed=result.n_failed, refresh=False)
                while pending and len(in_flight) < window:
                    submit(pending.pop())
        except BaseException:
            with contextlib.suppress(Exception):
                client.cancel(list(futures.values()), force=True)
            raise
        finally:
            bar.close()
        result.compute_wall_s = time.perf_counter() - t0


def _takes_n_workers(client) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False
