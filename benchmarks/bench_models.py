"""DynaProt-M + J prediction time and peak memory beside our ANM and ProDy's ANM.

One run, printed as a table and ratios (no timings in the tests).  Each
(method, N) runs in a fresh subprocess so that its peak resident memory
(ru_maxrss, minus the process's size after imports) is its own.

Inputs are real-shaped: chain A of adenylate kinase (tests/data/1ake.cif, 214
residues) cropped or tiled (copies side by side along x) to N residues.  Weights: the
shipped preview weights when present, else a randomly initialised model of the
same size (timing does not depend on the weight values).

    python benchmarks/bench_models.py [--sizes 100 271 500 1000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_SAMPLES = 250


def _chain(n):
    import numpy as np

    from dynaprot_viz.core.structure import ProteinChain, Residue, load_chain

    base = load_chain(ROOT / "tests/data/1ake.cif", "A")
    reps = -(-n // len(base))
    # copies side by side along x, 6 Å apart at their closest: one connected, non-overlapping network
    shift = np.ptp(base.ca[:, 0]) + 6.0
    bb = np.concatenate([base.backbone + [shift * k, 0.0, 0.0] for k in range(reps)])[:n]
    seq = (base.sequence * reps)[:n]
    res = tuple(Residue("A", i + 1, "", "ALA") for i in range(n))
    return ProteinChain("bench", res, seq, bb, np.zeros(n))


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _one(method, n, threads):
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    chain = _chain(n)
    if method.startswith("dynaprot"):
        from dynaprot_viz.core.models.predictor import default_weights, predict_dynaprot

        w = default_weights()
        if not w.exists():
            from safetensors.torch import save_file

            from dynaprot_viz.core.models import DynaProt

            m = DynaProt()
            w = Path("/tmp/bench_random_dynaprot.safetensors")
            save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(w))
            w.with_suffix(".json").write_text(json.dumps({"model_config": m.cfg.to_dict()}))
        predict_dynaprot(_chain(16), device="cpu", weights=w)  # load + warm up
        base = _rss_mb()

        def run():
            dyn = predict_dynaprot(chain, device="cpu", weights=w)
            if method == "dynaprot+samples":
                dyn.sample(N_SAMPLES, seed=0)
    elif method.startswith("anm"):
        from dynaprot_viz.core.anm import predict_anm

        predict_anm(_chain(16))
        base = _rss_mb()

        def run():
            dyn = predict_anm(chain)
            if method == "anm+samples":
                dyn.sample(N_SAMPLES, seed=0)
    else:
        import prody

        prody.confProDy(verbosity="none")
        base = _rss_mb()

        def run():
            anm = prody.ANM()
            anm.buildHessian(chain.ca, cutoff=15.0, gamma=1.0)
            anm.calcModes(n_modes=None if method != "prody20" else 20)
            if method == "prody+samples":
                prody.sampleModes(anm, atoms=chain.ca, n_confs=N_SAMPLES)
            else:
                anm.getCovariance()
    times = []
    for _ in range(1 if n >= 1000 else 2 if n >= 500 else 3):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return {"method": method, "n": n, "time_s": float(np.median(times)), "peak_mb": _rss_mb() - base,
            "threads": threads}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 271, 500, 1000])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--one", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(_one(args.one[0], int(args.one[1]), args.threads)))
        return 0
    jobs = [(m, n) for n in args.sizes for m in ("dynaprot", "anm", "prody")]
    if 271 in args.sizes:
        jobs += [("dynaprot+samples", 271), ("anm+samples", 271), ("prody+samples", 271)]
    jobs += [("prody+samples", 1000)] if 1000 in args.sizes else []
    # BLAS (ProDy's eigh, our ANM) gets the same number of threads as torch
    blas = {k: str(args.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    rows = {}
    for m, n in jobs:
        out = subprocess.run([sys.executable, __file__, "--one", m, str(n), "--threads", str(args.threads)],
                             capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore", **blas})
        if out.returncode != 0:
            print(f"{m} N={n} failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows[(m, n)] = r
        print(f"{m:17s} N={n:5d}  {r['time_s']:8.3f} s  peak +{r['peak_mb']:8.1f} MB", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, "
          f"torch and BLAS threads {args.threads}")
    print("\nratios (ProDy time / DynaProt-M+J time):")
    for n in args.sizes:
        if ("dynaprot", n) in rows and ("prody", n) in rows:
            d, pr, a = rows[("dynaprot", n)], rows[("prody", n)], rows.get(("anm", n))
            extra = f", our ANM / DynaProt {a['time_s'] / d['time_s']:.2f}x" if a else ""
            print(f"  N={n:5d}: ProDy ANM (all modes + covariance) / DynaProt = {pr['time_s'] / d['time_s']:.2f}x{extra}")
    if ("dynaprot+samples", 271) in rows and ("prody+samples", 271) in rows:
        d, pr = rows[("dynaprot+samples", 271)], rows[("prody+samples", 271)]
        print(f"  N=  271 with {N_SAMPLES} samples: DynaProt {d['time_s']:.3f} s (goal < 0.5 s), "
              f"ProDy ANM + sampleModes {pr['time_s']:.3f} s, ratio {pr['time_s'] / d['time_s']:.1f}x (goal >= 10x)")
    if ("dynaprot", 1000) in rows:
        d = rows[("dynaprot", 1000)]
        pr = rows.get(("prody", 1000))
        ps = rows.get(("prody+samples", 1000))
        print(f"  N= 1000: DynaProt peak +{d['peak_mb']:.0f} MB (goal < 4096 MB); "
              + (f"vs ProDy ANM {pr['time_s'] / d['time_s']:.2f}x" if pr else "")
              + (f", vs ProDy ANM + sampleModes {ps['time_s'] / d['time_s']:.2f}x" if ps else "")
              + " (goal >= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
