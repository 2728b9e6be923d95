"""The ``precision`` option of both trainers: bf16 autocast on CPU trains (finite,
falling losses close to float32's) and the models' bf16 forward stays close to float32."""

import numpy as np
import pytest
import torch

pytest.importorskip("h5py")
pytest.importorskip("yaml")

# the test machine's cores are shared: one thread avoids OpenMP oversubscription stalls
torch.set_num_threads(1)

from test_train import TINY_MODEL, store_path  # noqa: E402, F401  (store_path: fixture of real MD labels)

from dynaprot_viz.core.errors import InputError  # noqa: E402
from dynaprot_viz.training.runtime import autocast  # noqa: E402
from dynaprot_viz.training.train import TrainConfig, train  # noqa: E402
from dynaprot_viz.training.train_resaxial import ResAxialTrainConfig, train_resaxial  # noqa: E402

RESAXIAL_SMALL = {"channels": [8, 16, 16], "n_axial": 1, "axial_heads": 2, "axial_c_hidden": 4,
                  "rmsf_hidden": 8, "gate_channels": 4, "c_embed": 4}
# train on cobrotoxin alone (62 residues, whole in a crop of 64): every step sees the same chain
SPLIT = {"val_keys": ["adk_gbis"], "test_keys": ["adk_dims", "adk_dims2"]}
STEPS = 20


def test_precision_option_is_checked():
    assert TrainConfig.from_dict({"store": "x", "out_dir": "y"}).precision == "auto"
    assert ResAxialTrainConfig.from_dict({}).precision == "auto"
    with pytest.raises(InputError, match="precision must be 'auto', 'bf16' or 'fp32', got 'fp16'"):
        TrainConfig.from_dict({"store": "x", "out_dir": "y", "precision": "fp16"})
    with pytest.raises(InputError, match="precision must be 'auto', 'bf16' or 'fp32', got 'half'"):
        ResAxialTrainConfig.from_dict({"precision": "half"})


def test_autocast_follows_precision():
    layer = torch.nn.Linear(4, 4)
    x = torch.ones(2, 4)
    cpu = torch.device("cpu")
    for precision, dtype in (("bf16", torch.bfloat16), ("auto", torch.float32), ("fp32", torch.float32)):
        with autocast(cpu, precision):
            assert layer(x).dtype == dtype, precision
    if torch.cuda.is_available():  # auto: bf16 on CUDA
        with autocast(torch.device("cuda"), "auto"):
            assert layer.cuda()(x.cuda()).dtype == torch.bfloat16


def _rel_err(a, b) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.abs(a - b) / np.abs(b)


def test_bf16_forward_close_to_fp32(ubq_chain):
    """Shipped preview weights, ubiquitin (76 residues).  bf16 keeps 8 significant bits
    (unit roundoff 2^-8 = 0.4 %); through the blocks the per-residue RMSF moves by
    a few tenths of a percent (median), the coupling's more (a longer pair stack)."""
    from dynaprot_viz.core.models.dynaprot import collate, featurize
    from dynaprot_viz.core.models.dynaprot.predictor import load_dynaprot
    from dynaprot_viz.core.models.resaxial import collate_resaxial
    from dynaprot_viz.core.models.resaxial.predictor import load_resaxial

    cpu = torch.device("cpu")
    model = load_dynaprot()
    batch = {k: (v.float() if v.is_floating_point() else v) for k, v in collate([featurize(ubq_chain)]).items()}
    with torch.no_grad():
        ref = model(batch)
        with autocast(cpu, "bf16"):
            low = model(batch)
    # the trunks ran in bf16 (the outputs moved), the Cholesky readouts in float32
    # (so that eps = 1e-4 Å² on the diagonals survives)
    assert not torch.equal(low["marginals"], ref["marginals"])
    assert low["marginals"].dtype == low["coupling"].dtype == torch.float32
    assert torch.linalg.eigvalsh(low["coupling"][0].double()).min() > 0

    def rmsf(m):  # sqrt(tr Sigma_i), Å
        return torch.sqrt(torch.diagonal(m[0].double(), dim1=-2, dim2=-1).sum(-1)).numpy()

    err = _rel_err(rmsf(low["marginals"]), rmsf(ref["marginals"]))
    assert np.median(err) < 0.02 and err.max() < 0.1, (np.median(err), err.max())
    sd = [np.sqrt(np.diag(o["coupling"][0].double().numpy())) for o in (low, ref)]
    err = _rel_err(*sd)
    assert np.median(err) < 0.05 and err.max() < 0.2, (np.median(err), err.max())

    ra = load_resaxial()
    b = collate_resaxial([{"ca": np.asarray(ubq_chain.ca, dtype=np.float32)}], ra.config.multiple)
    n = len(ubq_chain)
    with torch.no_grad():
        ref = ra(b["ca"], b["mask"])
        with autocast(cpu, "bf16"):
            low = ra(b["ca"], b["mask"])
    err = _rel_err(low["rmsf"][0, :n], ref["rmsf"][0, :n])
    assert 0 < np.median(err) < 0.02 and err.max() < 0.1, (np.median(err), err.max())
    assert float((low["correlation"] - ref["correlation"]).abs().max()) < 0.1


def _train_losses(history) -> np.ndarray:
    return np.array([r["loss"] for r in history if r["split"] == "train"])


def _check_bf16_run(bf16, fp32):
    assert len(bf16) == STEPS and np.isfinite(bf16).all()
    assert bf16[-5:].mean() < 0.8 * bf16[:5].mean(), bf16
    assert not np.array_equal(bf16, fp32)  # bf16 really ran
    np.testing.assert_allclose(bf16, fp32, rtol=0.1)  # and tracks the float32 run


def test_dynaprot_bf16_cpu_training(store_path, tmp_path):  # noqa: F811
    def run(precision):
        cfg = TrainConfig.from_dict(dict(
            store=str(store_path), out_dir=str(tmp_path / precision), model=TINY_MODEL, lr=3e-3, warmup_steps=2,
            batch_size=1, crop_size=64, max_steps=STEPS, seed=0, device="cpu", num_threads=1, progress=False,
            floor_marginal=1e-2, checkpoint_every=STEPS, val_every=STEPS, precision=precision, **SPLIT))
        res = train(cfg)
        assert res.splits["train"] == ["cobrotoxin"]
        val = [r["loss"] for r in res.history if r["split"] == "val"]
        assert np.isfinite(val).all()
        return _train_losses(res.history)

    _check_bf16_run(run("bf16"), run("fp32"))


def test_resaxial_bf16_cpu_training(store_path, tmp_path):  # noqa: F811
    def run(precision):
        res = train_resaxial(store_path, {
            "model": "resaxial", "out_dir": str(tmp_path / precision), "architecture": RESAXIAL_SMALL,
            "max_steps": STEPS, "batch_size": 1, "crop_size": 64, "lr": 3e-3, "warmup_steps": 2,
            "val_every": STEPS, "checkpoint_every": STEPS, "progress": False, "precision": precision, **SPLIT})
        assert res.splits["train"] == ["cobrotoxin"]
        assert np.isfinite([r["loss"] for r in res.history if r["split"] == "val"]).all()
        return _train_losses(res.history)

    _check_bf16_run(run("bf16"), run("fp32"))
