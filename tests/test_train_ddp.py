"""Both trainers under torchrun on CPU (gloo, 2 processes, real MD labels): every step
applies the gradient averaged over the ranks' batches, rank 0 alone writes, and a
DDP run resumes from its checkpoint.

The reference is computed here in one process: the same initial model (same seed),
for each step the batches that rank 0 and rank 1 draw (a function of seed, step,
rank), their gradients averaged, clipped, one AdamW step.
"""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

yaml = pytest.importorskip("yaml")
pytest.importorskip("h5py")
if not torch.distributed.is_available():  # pragma: no cover - torch builds without distributed
    pytest.skip("torch.distributed is not available", allow_module_level=True)

# one thread: the test machine's cores are shared (the torchrun workers get OMP_NUM_THREADS=1)
torch.set_num_threads(1)

from test_train import TINY_MODEL, store_path  # noqa: E402, F401  (store_path: fixture of real MD labels)

from dynaprot_viz.core.models.dynaprot import DynaProt, DynaProtConfig  # noqa: E402
from dynaprot_viz.core.models.dynaprot.loss import dynaprot_loss  # noqa: E402
from dynaprot_viz.core.models.resaxial import ResAxial, ResAxialConfig  # noqa: E402
from dynaprot_viz.core.models.resaxial.loss import resaxial_loss  # noqa: E402
from dynaprot_viz.training.dataset import LabelDataset  # noqa: E402
from dynaprot_viz.training.train import TrainConfig, evaluate_loss  # noqa: E402
from dynaprot_viz.training.train_resaxial import ResAxialData  # noqa: E402

RESAXIAL_SMALL = {"channels": [8, 16, 16], "n_axial": 1, "axial_heads": 2, "axial_c_hidden": 4,
                  "rmsf_hidden": 8, "gate_channels": 4, "c_embed": 4}


def _torchrun(config_path, *args) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 -m dynaprot_viz.cli train CONFIG`` with this venv's torch."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "dynaprot_viz.cli", "train", str(config_path), "--no-progress", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=config_path.parent)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _rows(run_dir) -> list:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _reference(model, batches, loss_fn, steps, ranks, lr, weight_decay, grad_clip):
    """Train ``model`` in this process as DDP over ``ranks`` would: per step, the mean of
    the ranks' gradients, clipped, one AdamW step (constant lr).  Returns the
    [(mean loss, pre-clip gradient norm)] of each step."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    params = list(model.parameters())
    logged = []
    for step in range(steps):
        grads, losses = [], []
        for rank in ranks:
            model.zero_grad(set_to_none=True)
            loss = loss_fn(model, batches(step, rank))
            loss.backward()
            losses.append(float(loss.detach()))
            grads.append([None if p.grad is None else p.grad.clone() for p in params])
        for i, p in enumerate(params):
            got = [g[i] for g in grads if g[i] is not None]
            p.grad = sum(got) / len(ranks) if got else None
        gnorm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        logged.append((sum(losses) / len(losses), float(gnorm)))
    return logged


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


# ----------------------------------------------------------------------------- DynaProt


def _dynaprot_reference(cfg: dict, train_keys, ranks):
    torch.manual_seed(cfg["seed"])
    model = DynaProt(DynaProtConfig.from_dict(cfg["model"]))
    ds = LabelDataset(cfg["store"], train_keys, cfg["crop_size"])

    def batches(step, rank):
        b = ds.batch(cfg["seed"], step, cfg["batch_size"], rank)
        return {k: (v.float() if v.is_floating_point() else v) for k, v in b.items()}

    def loss_fn(m, b):
        out = m(b)
        total, _ = dynaprot_loss("log_euclidean", marginals=out["marginals"], marginals_true=b["marginals"],
                                 coupling=out["coupling"], coupling_true=b["coupling"], mask=b["mask"],
                                 floor_marginal=cfg["floor_marginal"])
        return total

    logged = _reference(model, batches, loss_fn, cfg["max_steps"], ranks, cfg["lr"], cfg["weight_decay"],
                        cfg["grad_clip"])
    ds.close()
    return model, logged


def test_dynaprot_ddp_averages_gradients_and_resumes(store_path, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    cfg = dict(store=str(store_path), out_dir=str(run), model=TINY_MODEL, lr=3e-3, warmup_steps=1,
               weight_decay=0.01, max_steps=4, batch_size=1, crop_size=32, grad_clip=1.0, seed=0, device="cpu",
               num_threads=1, checkpoint_every=2, val_every=2, val_keys=["adk_gbis", "adk_dims2"],
               floor_marginal=1e-2, progress=False)
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    _torchrun(path, "--max-steps", "2")  # stops at the step-2 checkpoint
    weights = tmp_path / "w.safetensors"
    resumed = _torchrun(path, "--export", str(weights))  # both ranks resume from it (and export)
    assert "resumed from 2" in resumed.stdout

    rows = _rows(run)  # rank 0 alone writes: every row once
    assert [(int(r["step"]), r["split"]) for r in rows] == [
        (0, "val"), (1, "train"), (2, "train"), (2, "val"), (3, "train"), (4, "train"), (4, "val")]
    ck = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert ck["step"] == 4
    from safetensors.torch import load_file

    exported = load_file(str(weights))  # every rank exported the finished checkpoint to the same file
    assert all(torch.equal(exported[k], ck["model"][k]) for k in ck["model"])
    splits = json.loads((run / "config.json").read_text())["splits"]
    assert splits["train"] == ["adk_dims", "cobrotoxin"]

    model, logged = _dynaprot_reference(cfg, splits["train"], ranks=(0, 1))
    ref = model.state_dict()
    for k in ref:
        torch.testing.assert_close(ck["model"][k], ref[k], rtol=1e-5, atol=1e-6, msg=k)
    train_rows = [r for r in rows if r["split"] == "train"]
    for r, (loss, gnorm) in zip(train_rows, logged):  # mean loss over ranks; norm of the averaged gradient
        assert float(r["loss"]) == pytest.approx(loss, rel=1e-5)
        assert float(r["grad_norm"]) == pytest.approx(gnorm, rel=1e-5)
    assert max(g for _, g in logged) > cfg["grad_clip"]  # clipping was exercised
    # the check above can fail: rank 0's batches alone train another model
    solo, _ = _dynaprot_reference(cfg, splits["train"], ranks=(0,))
    assert _max_diff(ck["model"], solo.state_dict()) > 1e-4

    # validation chains shared out over the ranks and gathered = one process on all of them
    val_ds = LabelDataset(store_path, cfg["val_keys"], cfg["crop_size"])
    val = evaluate_loss(model, val_ds, val_ds.keys, TrainConfig.from_dict(cfg), "cpu")
    val_ds.close()
    assert float(rows[-1]["loss"]) == pytest.approx(val["loss"], rel=1e-5)
    assert float(rows[-1]["coupling"]) == pytest.approx(val["coupling"], rel=1e-5)


# ----------------------------------------------------------------------------- ResAxial


def test_resaxial_ddp_single_task_averages_gradients(store_path, tmp_path):  # noqa: F811
    """loss_mode 'rmsf' leaves the correlation head without gradients: DDP must allow it."""
    run = tmp_path / "run"
    cfg = {"model": "resaxial", "store": str(store_path), "out_dir": str(run), "architecture": RESAXIAL_SMALL,
           "loss_mode": "rmsf", "max_steps": 3, "batch_size": 1, "crop_size": 32, "lr": 3e-3,
           "weight_decay": 0.01, "warmup_steps": 1, "schedule": "constant", "grad_clip": 1.0, "seed": 0,
           "device": "cpu", "num_threads": 1, "checkpoint_every": 2, "val_every": 2,
           "val_keys": ["adk_gbis"], "export": str(tmp_path / "w.safetensors"), "progress": False}
    path = tmp_path / "ra.yaml"
    path.write_text(yaml.safe_dump(cfg))
    _torchrun(path)

    rows = _rows(run)
    assert [(int(r["step"]), r["split"]) for r in rows] == [
        (0, "val"), (1, "train"), (2, "train"), (2, "val"), (3, "train"), (3, "val")]
    assert (tmp_path / "w.safetensors").is_file() and (tmp_path / "w.json").is_file()
    ck = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert ck["step"] == 3

    train_keys = json.loads((run / "config.json").read_text())["splits"]["train"]
    assert train_keys == ["adk_dims", "adk_dims2", "cobrotoxin"]
    mcfg = ResAxialConfig.from_dict(RESAXIAL_SMALL)
    data = ResAxialData(store_path, train_keys, cfg["crop_size"], multiple=mcfg.multiple)

    def reference(ranks):
        torch.manual_seed(cfg["seed"])
        model = ResAxial(mcfg)
        init = {k: v.clone() for k, v in model.state_dict().items()}

        def loss_fn(m, b):
            return resaxial_loss(m(b["ca"], b["mask"]), b, "rmsf")["loss"]

        logged = _reference(model, lambda s, r: data.batch(cfg["seed"], s, cfg["batch_size"], r), loss_fn,
                            cfg["max_steps"], ranks, cfg["lr"], cfg["weight_decay"], cfg["grad_clip"])
        return model.state_dict(), init, logged

    ref, init, logged = reference((0, 1))
    for k in ref:
        torch.testing.assert_close(ck["model"][k], ref[k], rtol=1e-5, atol=1e-6, msg=k)
    for r, (loss, gnorm) in zip([r for r in rows if r["split"] == "train"], logged):
        assert float(r["loss"]) == pytest.approx(loss, rel=1e-5)
        assert float(r["grad_norm"]) == pytest.approx(gnorm, rel=1e-5)
    assert _max_diff(ck["model"], init) > 1e-3  # trained
    # unused head untouched (no gradient, so no AdamW step and no weight decay either)
    assert all(torch.equal(ck["model"][k], init[k]) for k in init if k.startswith("corr_head"))
    solo, _, _ = reference((0,))
    assert _max_diff(ck["model"], solo) > 1e-4
