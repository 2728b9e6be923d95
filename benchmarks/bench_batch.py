"""Benchmark: `dynaprot-viz batch` on Dask vs a plain Python loop over `predict`, on real PDB chains.

Run: .venv/bin/python benchmarks/bench_batch.py [--n-chains 2000] [--seed 0] [--out runs/batch/bench]

Inputs: a random subset (numpy default_rng(seed), without replacement) of the 21,119
non-redundant PDB chains of ProMod3's structure database, extracted by
datasets/pdb_backbones/extract.py into runs/ (git-ignored).  When no extract exists and
promod3 is importable by /usr/bin/python3, the extractor is run first (about 2 minutes);
otherwise the benchmark falls back to the real backbones of
/work/shared/data/mdcath_train/pdbs plus datasets/campaign/structures, and says so.

Measured side by side in one run, with ANM (the default model), every process using one
BLAS thread (benchmarks/_common.py):

- chains/s of a plain loop over ``dv.predict`` in one process (predict only), and of the
  same loop doing what the batch does per chain (summary numbers, best pocket, one
  ``Dynamics.save`` npz file per chain);
- chains/s of ``predict_many`` with 1 and 2 worker processes (embedded LocalCluster),
  compute phase and end to end (cluster start-up included);
- scheduling overhead: 1 - (time inside tasks) / (worker threads x compute wall time);
- peak resident memory per worker process;
- store size per 1,000 chains for --coupling full, band:16 and none (band and none
  written from the same predictions into the same task groups: the same chains, the
  same arrays);
- the per-chain cost by length (N) on one core, a power-law fit, and the projected
  core-hours for the 214 M entries of the AlphaFold database.

Results: a table on stdout and runs/batch/bench/bench_batch.json.
"""

from __future__ import annotations

import _common  # noqa: F401  (one BLAS thread per process; import before numpy)

import argparse
import glob
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXTRACTS = [REPO / "runs" / "pdb_backbones" / "promod3_backbones.npz", REPO / "runs" / "batch" / "promod3_backbones.npz"]
FALLBACK_DIRS = [Path("/work/shared/data/mdcath_train/pdbs"), REPO / "datasets" / "campaign" / "structures"]
#: entries of the AlphaFold Protein Structure Database (2022 release onwards)
AFDB_ENTRIES = 214e6


def _sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def backbone_source(out: Path) -> tuple[str, Path | list]:
    """('npz', path) of the ProMod3 extract, or ('files', [paths]) for the fallback."""
    from dynaprot_viz.batch.inputs import is_backbone_npz

    for p in EXTRACTS:
        if p.exists() and is_backbone_npz(p):
            return "npz", p
    if Path("/usr/bin/python3").exists() and _sh(["/usr/bin/python3", "-c", "import promod3"]).returncode == 0:
        target = EXTRACTS[1]
        print(f"extracting ProMod3's structure database into {target} (once, ~2 min)", flush=True)
        r = subprocess.run(["/usr/bin/python3", str(REPO / "datasets/pdb_backbones/extract.py"), "--all",
                            "--format", "npz", "--out", str(target)])
        if r.returncode == 0 and is_backbone_npz(target):
            return "npz", target
    files = sorted(f for d in FALLBACK_DIRS for f in glob.glob(str(d / "*.pdb.gz")))
    if not files:
        sys.exit("no inputs: neither a ProMod3 extract nor the fallback structure folders exist")
    print(f"ProMod3 extract not available: falling back to {len(files)} real backbones of "
          f"{', '.join(str(d) for d in FALLBACK_DIRS)}", flush=True)
    return "files", files


def make_subset(kind, source, n, seed, out: Path) -> tuple[list, str]:
    """INPUTS for the batch and a description of them."""
    from dynaprot_viz.batch.inputs import subset_backbones

    if kind == "npz":
        with np.load(source) as z:
            total = len(z["ids"])
        n = min(n, total)
        path = out / f"subset-{n}-seed{seed}.npz"
        if not path.exists():
            subset_backbones(source, path, n=n, seed=seed)
        return [path], (f"{n} chains drawn at random (seed {seed}) from the {total:,} PDB chains of ProMod3's "
                        f"structure database ({source.name})")
    files = list(source)
    n = min(n, len(files))
    pick = sorted(np.random.default_rng(seed).choice(len(files), n, replace=False))
    folder = out / f"files-{n}-seed{seed}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for k in pick:
        os.symlink(files[k], folder / Path(files[k]).name)
    return [folder], f"{n} real backbones (mdCATH training domains + campaign structures; ProMod3 extract absent)"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def plain_loop(inputs, with_outputs: Path | None):
    """Chains/s of a Python loop over dv.predict in this process (optionally + summary, pockets, npz)."""
    import dynaprot_viz as dv
    from dynaprot_viz.batch.engine import _chain_stats
    from dynaprot_viz.batch.inputs import expand_inputs, read_chains

    items = expand_inputs(inputs)
    if with_outputs is not None:
        shutil.rmtree(with_outputs, ignore_errors=True)
        with_outputs.mkdir(parents=True)
    n = 0
    t0, cpu0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for it in items:
            try:
                chains = read_chains(it.as_dict())
            except Exception:
                continue
            for entry, chain in chains:
                if isinstance(chain, Exception):
                    continue
                try:
                    dyn = dv.predict(chain)
                except dv.InputError:
                    continue
                if with_outputs is not None:
                    _chain_stats(dyn)
                    dyn.save(with_outputs / f"{entry}.dynamics.npz")
                n += 1
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return {"chains": n, "wall_s": wall, "cpu_s": cpu, "chains_per_s": n / wall, "chains_per_cpu_s": n / cpu,
            "cpu_share": cpu / wall, "peak_rss_mb": _rss_mb()}


def batch_run(inputs, store: Path, workers: int, coupling: str = "full"):
    from dynaprot_viz.batch import predict_many

    shutil.rmtree(store, ignore_errors=True)
    r = predict_many(inputs, store=store, workers=workers, coupling=coupling, progress=True)
    return {"chains": r.n_chains, "failures": r.n_failed, "workers": r.n_workers, "tasks": r.n_tasks,
            "batch_size": r.batch_size, "startup_s": r.startup_s, "compute_wall_s": r.compute_wall_s,
            "wall_s": r.wall_s, "chains_per_s": r.chains_per_s, "chains_per_s_end_to_end": r.n_chains / r.wall_s,
            "overhead": r.overhead, "peak_rss_mb_per_worker": r.worker_peak_rss_mb,
            "cpu_s": r.cpu_s, "busy_s": r.busy_s, "chains_per_cpu_s": r.n_chains / r.cpu_s,
            "cpu_share": r.cpu_s / r.busy_s,
            "model_loads": r.model_loads}


def _disk(path: Path) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of a folder."""
    apparent = allocated = 0
    for root, _, files in os.walk(path):
        for f in files:
            st = os.stat(os.path.join(root, f))
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return apparent, allocated


def store_sizes(full_store: Path, out: Path, modes=("band:16", "none")):
    """Bytes per 1,000 chains for each coupling mode (band/none written from the full store's
    arrays, in the same task groups: the same chains, the same arrays)."""
    from dynaprot_viz.batch import open_store
    from dynaprot_viz.batch.store import BatchStore, GroupWriter, StoreConfig

    src = open_store(full_store)
    n = len(src)
    sizes = {}
    groups_full = _disk(full_store / "tasks")
    sizes["full"] = {"chains": n, "apparent_MB_per_1000": groups_full[0] / n, "disk_MB_per_1000": groups_full[1] / n}
    for mode in modes:
        dst_path = out / f"store-{mode.replace(':', '')}"
        shutil.rmtree(dst_path, ignore_errors=True)
        cfg = StoreConfig(src.model, src.attrs.get("model_version", ""), src.attrs.get("model_options", {}), mode)
        BatchStore.create_or_check(dst_path, cfg)
        for _, rows in src.summary.groupby("group", sort=False):
            writer = GroupWriter(dst_path, mode)
            for name in rows["chain"]:
                info = src.info(name)
                writer.add(name, src[name], {k: info[k] for k in ("file", "chain", "entry")})  # full coupling
            writer.flush()
        a = _disk(dst_path / "tasks")
        sizes[mode] = {"chains": n, "apparent_MB_per_1000": a[0] / n, "disk_MB_per_1000": a[1] / n}
    for v in sizes.values():  # bytes per chain x 1000 / 1e6 = MB per 1000 chains
        v["apparent_MB_per_1000"] = v["apparent_MB_per_1000"] * 1000 / 1e6
        v["disk_MB_per_1000"] = v["disk_MB_per_1000"] * 1000 / 1e6
    return sizes


def long_chains(kind, source, out: Path, k: int = 6):
    """(N, seconds) of the per-chain pipeline on the ``k`` chains spread over N >= 800 of the
    extract (in this process, one core): the random subset has few long chains, and the
    O(N^3) term of the cost model needs them."""
    from dynaprot_viz.batch.engine import run_task
    from dynaprot_viz.batch.inputs import expand_inputs, subset_backbones
    from dynaprot_viz.batch.store import BatchStore, StoreConfig

    if kind != "npz":
        return np.zeros(0), np.zeros(0)
    with np.load(source) as z:
        ids, length = np.asarray(z["ids"]).astype(str), np.asarray(z["length"])
    order = np.argsort(length)
    long_ = order[length[order] >= 800]
    pick = long_[np.linspace(0, len(long_) - 1, k).round().astype(int)]
    path = subset_backbones(source, out / f"long-{k}.npz", ids=list(ids[pick]))
    store = out / "store-long"
    shutil.rmtree(store, ignore_errors=True)
    BatchStore.create_or_check(store, StoreConfig("anm", "bench", {}, "full"))
    cfg = {"store": str(store), "model": "anm", "options": {}, "coupling": "full"}
    n, cpu = [], []
    for it in expand_inputs([path]):
        r = run_task([it.as_dict()], cfg)
        n += [row["n_residues"] for row in r["rows"]]
        cpu += [r["cpu_s"]] * len(r["rows"])  # one chain per item: the task's CPU time is the chain's
    return np.array(n, float), np.array(cpu, float)


def cost_by_length(store: Path, all_lengths: np.ndarray | None, extra=(np.zeros(0), np.zeros(0)),
                   cpu_share: float = 1.0):
    """Per-chain CPU seconds (read + predict + summary + write) by N, a cost model and projections.

    The summary's per-chain wall seconds are scaled by the run's CPU share (CPU time the
    workers got / their wall time) to give core-seconds on a machine shared with others;
    ``extra`` holds (N, CPU seconds) of chains timed alone.
    """
    from dynaprot_viz.batch import open_store

    s = open_store(store).summary
    n = np.concatenate([s["n_residues"].to_numpy(float), extra[0]])
    t = np.concatenate([s["seconds"].to_numpy(float) * cpu_share, extra[1]])
    from scipy.optimize import nnls

    # t = c0 + c1 N + c2 N^2 + c3 N^3 with c >= 0: a fixed cost per chain, the O(N^2) contact
    # and pocket work, ANM's O(N^3) factorisation
    scale = np.array([1.0, 1e2, 1e4, 1e6])  # conditioning: powers of N / 100
    basis = np.stack([(n / 100.0) ** k for k in range(4)], axis=1)
    coef, _ = nnls(basis, t)  # absolute error: the long chains, which dominate the mean cost, weigh most
    coef_si = coef / scale

    def model(x):
        x = np.asarray(x, float)
        return sum(coef_si[k] * x**k for k in range(4))

    resid = np.median(np.abs(model(n) - t) / t)

    bins = [0, 100, 200, 300, 500, 800, 1200, 2000]
    table = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        m = (n >= lo) & (n < hi)
        if m.any():
            table.append({"N": f"{lo}-{hi - 1}", "chains": int(m.sum()), "median_s": float(np.median(t[m])),
                          "mean_s": float(np.mean(t[m]))})
    proj = {}
    sample_mean = float(np.mean(t[: len(s)]))  # the random sample only, not the long chains added
    proj["measured mean of the random PDB-chain sample"] = {"mean_s": sample_mean,
                                                            "core_hours": AFDB_ENTRIES * sample_mean / 3600}
    if all_lengths is not None:
        mean_fit = float(np.mean(model(np.minimum(all_lengths, 2700))))
        proj["PDB chain lengths (all ProMod3 chains), fitted cost"] = {
            "mean_s": mean_fit, "core_hours": AFDB_ENTRIES * mean_fit / 3600}
        longer = float(np.mean(model(np.minimum(1.5 * all_lengths, 2700))))
        proj["same lengths x 1.5 (sensitivity), capped at 2,700"] = {
            "mean_s": longer, "core_hours": AFDB_ENTRIES * longer / 3600}
    for length in (200, 400, 1000, 2700):
        proj[f"every entry N = {length}"] = {"mean_s": float(model(length)),
                                             "core_hours": AFDB_ENTRIES * float(model(length)) / 3600}
    formula = " + ".join(f"{c:.3g}" + ("" if k == 0 else " N" if k == 1 else f" N^{k}") for k, c in enumerate(coef_si))
    return {"fit": {"coefficients": [float(c) for c in coef_si], "median_relative_error": float(resid),
                    "formula": f"seconds = {formula} (non-negative least squares; median "
                               f"|error| {100 * resid:.0f}% per chain)"},
            "bins": table, "projection_afdb_214M": proj}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-chains", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(REPO / "runs" / "batch" / "bench"))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()

    kind, source = backbone_source(out)
    inputs, described = make_subset(kind, source, args.n_chains, args.seed, out)
    all_lengths = None
    if kind == "npz":
        with np.load(source) as z:
            all_lengths = np.asarray(z["length"], float)
    print(f"inputs: {described}", flush=True)

    res = {"inputs": described, "machine": f"{platform.processor() or platform.machine()}, "
                                           f"{os.cpu_count()} CPUs", "load_average_before": load0}
    print("plain loop over dv.predict (predict only) ...", flush=True)
    res["loop_predict"] = plain_loop(inputs, None)
    print("plain loop over dv.predict + summary, pockets, one npz per chain ...", flush=True)
    res["loop_outputs"] = plain_loop(inputs, out / "loop-npz")
    shutil.rmtree(out / "loop-npz", ignore_errors=True)
    for w in (1, 2):
        print(f"predict_many, {w} worker(s) ...", flush=True)
        res[f"batch_{w}w"] = batch_run(inputs, out / f"store-full-{w}w", w)
    res["load_average_after"] = os.getloadavg()
    print("store sizes per coupling mode ...", flush=True)
    res["store_size"] = store_sizes(out / "store-full-2w", out)
    print("long chains for the cost model ...", flush=True)
    extra = long_chains(kind, source, out)
    res["long_chains"] = {"N": extra[0].tolist(), "seconds": extra[1].tolist()}
    res["cost"] = cost_by_length(out / "store-full-2w", all_lengths, extra, res["batch_2w"]["cpu_share"])
    (out / "bench_batch.json").write_text(json.dumps(res, indent=1, default=float))

    lp, lo, b1, b2 = res["loop_predict"], res["loop_outputs"], res["batch_1w"], res["batch_2w"]
    print(f"\ninputs: {described}; ANM (default model), 1 BLAS thread per process; load average "
          f"{load0[0]:.1f} before, {res['load_average_after'][0]:.1f} after (2 cores, shared)")
    print("\n| run | chains | chains/s | vs loop (predict only) | vs loop (same outputs) | overhead | "
          "peak RSS per process | CPU share | chains per CPU-s |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| loop over predict, 1 process | {lp['chains']} | {lp['chains_per_s']:.1f} | 1.00x | | | "
          f"{lp['peak_rss_mb']:.0f} MB | {lp['cpu_share']:.2f} | {lp['chains_per_cpu_s']:.1f} |")
    print(f"| loop + summary, pockets, npz per chain | {lo['chains']} | {lo['chains_per_s']:.1f} | "
          f"{lo['chains_per_s'] / lp['chains_per_s']:.2f}x | 1.00x | | {lo['peak_rss_mb']:.0f} MB | "
          f"{lo['cpu_share']:.2f} | {lo['chains_per_cpu_s']:.1f} |")
    for name, b in (("batch, 1 worker", b1), ("batch, 2 workers", b2)):
        rss = max(b["peak_rss_mb_per_worker"].values())
        print(f"| {name} (compute phase) | {b['chains']} | {b['chains_per_s']:.1f} | "
              f"{b['chains_per_s'] / lp['chains_per_s']:.2f}x | {b['chains_per_s'] / lo['chains_per_s']:.2f}x | "
              f"{100 * b['overhead']:.1f}% | {rss:.0f} MB per worker | {b['cpu_share']:.2f} per worker | "
              f"{b['chains_per_cpu_s']:.1f} |")
        print(f"| {name} (end to end, start-up {b['startup_s']:.1f} s) | {b['chains']} | "
              f"{b['chains_per_s_end_to_end']:.1f} | {b['chains_per_s_end_to_end'] / lp['chains_per_s']:.2f}x | "
              f"{b['chains_per_s_end_to_end'] / lo['chains_per_s']:.2f}x | | | | |")
    print("(CPU share: CPU time the process got / its wall time; below 1 when other processes share the cores)")
    print(f"\nper chain, batch with 1 worker minus the loop over predict: "
          f"{1000 / b1['chains_per_s'] - 1000 / lp['chains_per_s']:.1f} ms wall, "
          f"{1000 / b1['chains_per_cpu_s'] - 1000 / lp['chains_per_cpu_s']:.1f} ms CPU "
          f"(1 worker / loop: {b1['chains_per_s'] / lp['chains_per_s']:.2f}x in chains/s, "
          f"{b1['chains_per_cpu_s'] / lp['chains_per_cpu_s']:.2f}x in chains per CPU-s)")
    print(f"\n2 workers / 1 worker: {b2['chains_per_s'] / b1['chains_per_s']:.2f}x; tasks: {b2['tasks']} of "
          f"<= {b2['batch_size']} chains; model loads per worker: {sorted(b2['model_loads'].values())}")
    print("\n| --coupling | MB per 1,000 chains (apparent) | on disk (4 KiB blocks) |")
    print("|---|---|---|")
    for mode, v in res["store_size"].items():
        print(f"| {mode} | {v['apparent_MB_per_1000']:.1f} | {v['disk_MB_per_1000']:.1f} |")
    c = res["cost"]
    print(f"\nper-chain CPU cost (read + predict + summary + write; wall seconds x CPU share "
          f"{b2['cpu_share']:.2f}): {c['fit']['formula']}")
    print(f"(the random subset plus {len(res['long_chains']['N'])} long chains, N = "
          f"{', '.join(str(int(x)) for x in res['long_chains']['N'])}, timed alone in one process)")
    print("| N | chains | median s | mean s |\n|---|---|---|---|")
    for row in c["bins"]:
        print(f"| {row['N']} | {row['chains']} | {row['median_s']:.3f} | {row['mean_s']:.3f} |")
    print("\n| projection for 214 M AlphaFold-DB entries | mean s/chain | core-hours |\n|---|---|---|")
    for k, v in c["projection_afdb_214M"].items():
        print(f"| {k} | {v['mean_s']:.3f} | {v['core_hours']:,.0f} |")
    print(f"\nwrote {out / 'bench_batch.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
