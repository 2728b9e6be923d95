"""Training throughput of DynaProt-M + J (residues per second), float32 beside bf16 autocast.

One optimiser step = forward, the log-Euclidean loss (float64), backward, gradient
clipping and AdamW, as in ``training/train.py``.  Inputs are real-shaped: crops of
adenylate kinase chain A (tests/data/1ake.cif, tiled to the crop length when
needed) with its ANM marginals and coupling as labels (the values do not change
the cost).  Prints steps/s and residues/s per precision and their ratio.

    python benchmarks/bench_train.py [--device cpu|cuda] [--crop 128] [--batch 4] [--steps 10]

On a GPU, run it with ``--device cuda`` (bf16 is where it pays); on this CPU the
table shows what bf16 autocast costs or saves without one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import _chain  # noqa: E402


def _batch(crop, batch_size, device):
    from dynaprot_viz.core.anm import predict_anm
    from dynaprot_viz.core.models.dynaprot import collate, featurize

    chain = _chain(crop)
    dyn = predict_anm(chain)
    ex = featurize(chain)
    ex["marginals"] = torch.tensor(np.array(dyn.marginals))
    ex["coupling"] = torch.tensor(np.array(dyn.coupling))
    batch = collate([ex] * batch_size)
    return {k: (v.to(device, torch.float32) if v.is_floating_point() else v.to(device)) for k, v in batch.items()}


def _run(precision, args, device):
    from dynaprot_viz.core.models import DynaProt, DynaProtConfig, dynaprot_loss

    torch.manual_seed(0)
    model = DynaProt(DynaProtConfig()).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = _batch(args.crop, args.batch, device)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                else torch.autocast(device.type, enabled=False))

    def step():
        with autocast:
            out = model(batch)
        out = {k: v.float() for k, v in out.items()}
        total, _ = dynaprot_loss("log_euclidean", marginals=out["marginals"], marginals_true=batch["marginals"],
                                 coupling=out["coupling"], coupling_true=batch["coupling"], mask=batch["mask"])
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return float(total.detach())

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    losses = [step() for _ in range(args.steps)]
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t) / args.steps
    return dt, losses


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"DynaProt-M + J training step, batch {args.batch} x crop {args.crop}, {name}")
    rows = {}
    for precision in ("fp32", "bf16"):
        dt, losses = _run(precision, args, device)
        rows[precision] = dt
        res = args.batch * args.crop / dt
        print(f"  {precision}: {dt * 1000:8.1f} ms/step  {1 / dt:7.2f} steps/s  {res:9.0f} residues/s  "
              f"loss {losses[0]:.3f} -> {losses[-1]:.3f} (finite: {bool(np.all(np.isfinite(losses)))})")
    print(f"ratio fp32 / bf16 step time: {rows['fp32'] / rows['bf16']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
