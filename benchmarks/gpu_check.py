"""One prepared GPU check: inference, training, DDP and MD on CUDA, one JSON of results.

    bash benchmarks/gpu_check.sh [OUT_DIR]          # the wrapper: a hard time limit, then this
    python benchmarks/gpu_check.py --out gpu_check.json [--budget 450]

Made for a lent GPU machine (one GPU, no internet, a few minutes of device time):
every section has its own time budget, and a section that fails or runs out of
time is recorded (``"status": "error" | "skipped" | "timeout"`` with one line of
reason) while the others go on; the JSON is rewritten after each section, so a
kill still leaves what was measured.  Sections:

``inference``
    DynaProt-M + J forward at N = 271 and 1000 residues (real backbone: the N
    residues of PDB 7CTH nearest its centre, as ``bench_models.py``), fp32 and bf16
    autocast, median of 5 after a warm-up, and ResAxial at fp32; peak CUDA memory.
``training``
    ``bench_train.py``'s optimiser step (batch 4 x crop 128), fp32 and bf16 autocast:
    residues per second.
``ddp``
    ``torchrun --standalone --nproc_per_node=<GPUs>`` of ``dynaprot-viz train`` on the
    campaign labels for 20 steps (NCCL): exit status and steps per second.
``simulate``
    ``dynaprot-viz simulate --platform CUDA`` of the three smallest campaign chains for
    0.05 ns each: ns/day per chain from each chain's provenance.

Without CUDA it stops at once with one line and exit status 2 (nothing measured,
nothing written): CI runs it that way to check that it fails clearly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

SIZES = (271, 1000)
REPEATS = 5


def _write(path: Path, results: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def _timed(fn, repeats: int = REPEATS) -> float:
    import torch

    fn()  # warm-up (kernels, allocator)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def inference() -> dict:
    import torch

    from bench_models import _chain
    from dynaprot_viz.core.models.dynaprot import collate, featurize
    from dynaprot_viz.core.models.dynaprot.predictor import CHUNK_ABOVE, CHUNK_SIZE, load_dynaprot
    from dynaprot_viz.core.models.resaxial.predictor import predict_resaxial

    dev = torch.device("cuda")
    model = load_dynaprot(None, dev)
    out = {}
    for n in SIZES:
        chain = _chain(n)
        batch = collate([featurize(chain)])
        batch = {k: (v.to(dev, torch.float32) if v.is_floating_point() else v.to(dev)) for k, v in batch.items()}
        chunk = CHUNK_SIZE if n > CHUNK_ABOVE else None
        row = {}
        for precision in ("fp32", "bf16"):
            def run(precision=precision):
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16,
                                                            enabled=precision == "bf16"):
                    model(batch, chunk_size=chunk)

            torch.cuda.reset_peak_memory_stats()
            row[f"dynaprot_{precision}_s"] = _timed(run)
            row[f"dynaprot_{precision}_peak_MB"] = torch.cuda.max_memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
        row["resaxial_fp32_s"] = _timed(lambda: predict_resaxial(chain, device="cuda"))
        row["resaxial_fp32_peak_MB"] = torch.cuda.max_memory_allocated() / 2**20
        out[str(n)] = row
    return out


def training() -> dict:
    import torch

    import bench_train

    args = argparse.Namespace(crop=128, batch=4, steps=10, threads=2)
    out = {}
    for precision in ("fp32", "bf16"):
        dt, losses = bench_train._run(precision, args, torch.device("cuda"))
        out[precision] = {"ms_per_step": dt * 1000, "residues_per_s": args.batch * args.crop / dt,
                          "loss_first": losses[0], "loss_last": losses[-1]}
    out["speedup_bf16"] = out["fp32"]["ms_per_step"] / out["bf16"]["ms_per_step"]
    return out


def _campaign_store(work: Path) -> Path:
    store = ROOT / "runs" / "campaign" / "labels.h5"
    if not store.exists():
        subprocess.run([sys.executable, str(ROOT / "datasets" / "campaign" / "build_store.py"), "--store",
                        str(store)], check=True, capture_output=True, text=True, timeout=120)
    return store


def ddp(budget: float) -> dict:
    import torch
    import yaml

    work = Path(tempfile.mkdtemp(prefix="gpu-check-ddp-"))
    store = _campaign_store(work)
    n_gpu = torch.cuda.device_count()
    cfg = yaml.safe_load((ROOT / "training" / "configs" / "campaign.yaml").read_text())
    cfg.update(store=str(store), out_dir=str(work / "run"), max_steps=20, checkpoint_every=20, val_every=20,
               device="cuda", precision="bf16", progress=False)
    path = work / "ddp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_gpu}",
           "-m", "dynaprot_viz.cli", "train", str(path), "--no-progress"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=budget, cwd=ROOT)
    wall = time.perf_counter() - t
    res = {"processes": n_gpu, "backend": "nccl", "steps": 20, "returncode": proc.returncode, "wall_s": wall,
           "steps_per_s_incl_startup": 20 / wall}
    if proc.returncode != 0:
        res["status"] = "error"
        res["reason"] = (proc.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
    return res


def simulate(budget: float) -> dict:
    manifest = ROOT / "datasets" / "campaign" / "manifest.tsv"
    rows = [line.split("\t") for line in manifest.read_text().splitlines()[1:] if line.strip()]
    header = manifest.read_text().splitlines()[0].split("\t")
    col = {name: i for i, name in enumerate(header)}
    rows.sort(key=lambda r: int(r[col["n_residues"]]))
    files = []
    for r in rows:
        cand = ROOT / "datasets" / "campaign" / "structures" / f"{r[col['key']]}.pdb.gz"
        if cand.exists():
            files.append(cand)
        if len(files) == 3:
            break
    out_dir = Path(tempfile.mkdtemp(prefix="gpu-check-sim-"))
    cmd = [sys.executable, "-m", "dynaprot_viz.cli", "simulate", *map(str, files), "--out", str(out_dir),
           "--ns", "0.05", "--platform", "CUDA", "--no-progress", "--seed", "0"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=budget, cwd=ROOT)
    res = {"chains": [f.name for f in files], "ns_each": 0.05, "returncode": proc.returncode,
           "wall_s": time.perf_counter() - t, "per_chain": {}}
    for prov in out_dir.rglob("*.provenance.json"):
        p = json.loads(prov.read_text())
        wall = float(p.get("wall_s") or 0)
        res["per_chain"][prov.name.split(".provenance")[0]] = {
            "ns": p.get("ns"), "wall_s": wall, "platform": p.get("platform"),
            "ns_per_day": (p["ns"] * 86400 / wall) if wall > 0 and p.get("ns") else None}
    if proc.returncode != 0:
        res["status"] = "error"
        res["reason"] = (proc.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="the JSON file of results")
    p.add_argument("--budget", type=float, default=450.0, help="seconds for all sections (default 450)")
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError as exc:
        print(f"gpu_check: error: torch is not importable ({exc}); nothing measured", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("gpu_check: error: no CUDA device (torch.cuda.is_available() is False); nothing measured",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpus": torch.cuda.device_count(),
               "device": torch.cuda.get_device_name(0), "python": platform.python_version(),
               "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "sections": {}}
    # budgets as fractions of the whole: inference and training are short, MD gets what is left
    plan = [("inference", 0.2, lambda b: inference()), ("training", 0.15, lambda b: training()),
            ("ddp", 0.25, ddp), ("simulate", 0.4, simulate)]
    for name, share, fn in plan:
        left = args.budget - (time.perf_counter() - start)
        budget = min(share * args.budget, left - 5)
        if budget < 10:
            results["sections"][name] = {"status": "skipped", "reason": "no time left"}
            continue
        t = time.perf_counter()
        try:
            got = fn(budget)
            got.setdefault("status", "ok")
        except subprocess.TimeoutExpired:
            got = {"status": "timeout", "reason": f"over its {budget:.0f} s budget"}
        except Exception as exc:  # one section must not cost the others
            got = {"status": "error", "reason": _one_line(exc)}
        got["section_wall_s"] = time.perf_counter() - t
        results["sections"][name] = got
        _write(out, results)
        print(f"gpu_check: {name}: {got['status']} ({got['section_wall_s']:.0f} s)", flush=True)
    results["wall_s"] = time.perf_counter() - start
    _write(out, results)
    print(f"gpu_check: wrote {out}")
    return 0 if all(s.get("status") == "ok" for s in results["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
