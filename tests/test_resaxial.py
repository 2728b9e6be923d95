"""ResAxial: padding masks, invariance, loss switch, predictor output, tiny training run."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import random_rotation  # noqa: E402

from dynaprot_viz.core.errors import InputError  # noqa: E402
from dynaprot_viz.core.models.resaxial import ResAxial, ResAxialConfig, collate_resaxial  # noqa: E402
from dynaprot_viz.core.models.resaxial.loss import resaxial_loss  # noqa: E402
from dynaprot_viz.core.models.resaxial.predictor import (  # noqa: E402
    correlation_to_psd,
    load_resaxial,
    predict_resaxial,
)
from dynaprot_viz.core.structure import ProteinChain  # noqa: E402

SMALL = {"channels": [8, 16, 16], "n_axial": 1, "axial_heads": 2, "axial_c_hidden": 4, "rmsf_hidden": 8,
         "gate_channels": 4, "c_embed": 4}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def random_model(seed=0, **overrides) -> ResAxial:
    """A ResAxial with every parameter perturbed (zero-initialised layers included),
    so that every path of the network contributes to the output."""
    torch.manual_seed(seed)
    model = ResAxial({**SMALL, **overrides})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def chain_from_ca(ca, source="random") -> ProteinChain:
    from dynaprot_viz.core.structure import Residue

    n = len(ca)
    bb = np.full((n, 3, 3), np.nan)
    bb[:, 1] = ca
    return ProteinChain(source=source, residues=tuple(Residue("A", i + 1, "", "ALA") for i in range(n)),
                        sequence="A" * n, backbone=bb, bfactors=np.zeros(n))


def random_walk(n, rng):
    steps = rng.standard_normal((n, 3))
    steps *= 3.8 / np.linalg.norm(steps, axis=1, keepdims=True)
    return np.cumsum(steps, axis=0)


# --------------------------------------------------------------------------- model


@pytest.mark.parametrize("lengths", [(37, 50), (13, 5, 29)])
def test_padded_batch_equals_single_prediction(lengths):
    """Odd N, N not a multiple of the down-sampling factor: padding and masks make a
    protein's prediction in a batch equal to its prediction alone."""
    rng = np.random.default_rng(1)
    model = random_model(embed_dim=6)
    items = [{"ca": torch.tensor(random_walk(n, rng), dtype=torch.float32),
              "embeddings": torch.randn(n, 6, generator=torch.Generator().manual_seed(n))} for n in lengths]
    batch = collate_resaxial(items, model.config.multiple)
    assert batch["ca"].shape[1] % model.config.multiple == 0
    with torch.no_grad():
        out = model(batch["ca"], batch["mask"], batch["embeddings"])
        for i, it in enumerate(items):
            n = len(it["ca"])
            single = collate_resaxial([it], model.config.multiple)
            one = model(single["ca"], single["mask"], single["embeddings"])
            torch.testing.assert_close(out["rmsf"][i, :n], one["rmsf"][0, :n], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(out["correlation"][i, :n, :n], one["correlation"][0, :n, :n],
                                       atol=1e-5, rtol=1e-5)
            # padding is zero, valid outputs are in range
            assert torch.all(out["rmsf"][i, n:] == 0) and torch.all(out["correlation"][i, n:] == 0)
            assert torch.all(out["rmsf"][i, :n] > 0)
            c = out["correlation"][i, :n, :n]
            torch.testing.assert_close(c, c.T)
            torch.testing.assert_close(torch.diagonal(c), torch.ones(n))
            assert c.abs().max() <= 1.0


def test_chunked_axial_attention_equals_unchunked():
    rng = np.random.default_rng(2)
    model = random_model()
    b = collate_resaxial([{"ca": torch.tensor(random_walk(23, rng), dtype=torch.float32)}], model.config.multiple)
    with torch.no_grad():
        a = model(b["ca"], b["mask"], chunk_size=5)
        full = model(b["ca"], b["mask"], chunk_size=10_000)
    torch.testing.assert_close(a["rmsf"], full["rmsf"], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(a["correlation"], full["correlation"], atol=1e-6, rtol=1e-5)


def test_unpadded_length_and_wrong_embeddings_are_rejected():
    model = random_model()
    with pytest.raises(ValueError, match="not a multiple of 4"):
        model(torch.zeros(1, 10, 3), torch.ones(1, 10))
    with pytest.raises(ValueError, match="takes no embeddings"):
        model(torch.zeros(1, 8, 3), torch.ones(1, 8), torch.zeros(1, 8, 3))
    with pytest.raises(ValueError, match="unknown ResAxial config keys: colour"):
        ResAxialConfig.from_dict({"colour": 1})


# --------------------------------------------------------------------------- loss


def test_loss_switch_changes_what_is_optimised():
    """rmsf-only: no gradient reaches the correlation head; correlation-only: none
    reaches the RMSF head; joint: both heads get gradients."""
    rng = np.random.default_rng(3)
    model = random_model().train()
    items = [{"ca": torch.tensor(random_walk(n, rng), dtype=torch.float32), "rmsf": torch.rand(n) + 0.5,
              "correlation": torch.tensor(correlation_to_psd(rng.uniform(-1, 1, (n, n))), dtype=torch.float32)}
             for n in (11, 16)]
    batch = collate_resaxial(items, model.config.multiple)

    def head_grads(mode):
        model.zero_grad(set_to_none=True)
        out = model(batch["ca"], batch["mask"])
        terms = resaxial_loss(out, batch, mode)
        terms["loss"].backward()
        norm = lambda mod: sum(float(p.grad.abs().sum()) for p in mod.parameters() if p.grad is not None)  # noqa: E731
        return norm(model.rmsf_head), norm(model.corr_head), terms

    r, c, terms = head_grads("rmsf")
    assert r > 0 and c == 0
    assert torch.isclose(terms["loss"], terms["rmsf"]) and terms["correlation"] > 0
    r, c, terms = head_grads("correlation")
    assert r == 0 and c > 0
    assert torch.isclose(terms["loss"], terms["correlation"])
    r, c, terms = head_grads("joint")
    assert r > 0 and c > 0
    assert torch.isclose(terms["loss"], terms["rmsf"] + terms["correlation"])
    with pytest.raises(ValueError, match="loss mode must be one of"):
        resaxial_loss({}, batch, "both")


def test_loss_ignores_padding_and_diagonal():
    n = 5
    mask = torch.tensor([[1.0] * n + [0.0] * 3])
    target = {"mask": mask, "rmsf": torch.ones(1, 8), "correlation": torch.eye(8)[None]}
    pred = {"rmsf": torch.ones(1, 8), "correlation": torch.eye(8)[None].clone()}
    pred["rmsf"][0, n:] = 7.0  # padded residues: ignored
    pred["correlation"][0, n:, :] = 3.0
    assert float(resaxial_loss(pred, target)["loss"]) == 0.0
    pred["correlation"][0, 0, 1] = pred["correlation"][0, 1, 0] = 0.5
    assert float(resaxial_loss(pred, target, "correlation")["loss"]) == pytest.approx(2 * 0.25 / (n * n - n))


# --------------------------------------------------------------------------- predictor


def test_predictor_is_invariant_to_rigid_motion(ubq_chain):
    model = random_model(seed=4)
    rng = np.random.default_rng(5)
    rot, shift = random_rotation(rng), rng.normal(0, 30, 3)
    moved = ProteinChain(source="moved", residues=ubq_chain.residues, sequence=ubq_chain.sequence,
                         backbone=ubq_chain.backbone @ rot.T + shift, bfactors=ubq_chain.bfactors)
    a = predict_resaxial(ubq_chain, weights=model)
    b = predict_resaxial(moved, weights=model)
    np.testing.assert_allclose(b.rmsf, a.rmsf, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b.coupling, a.coupling, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b.mean, moved.ca)


def test_predictor_dynamics_is_valid_and_isotropic(ubq_chain):
    model = random_model(seed=6)
    dyn = predict_resaxial(ubq_chain, weights=model)
    n = len(ubq_chain)
    assert dyn.isotropic and dyn.model_name == "resaxial" and dyn.n_residues == n
    b = collate_resaxial([{"ca": torch.tensor(ubq_chain.ca, dtype=torch.float32)}], model.config.multiple)
    with torch.no_grad():
        out = model(b["ca"], b["mask"])
    rmsf = out["rmsf"][0, :n].double().numpy()
    np.testing.assert_allclose(dyn.rmsf, rmsf, rtol=1e-6)
    np.testing.assert_allclose(dyn.marginals, (rmsf**2 / 3)[:, None, None] * np.eye(3), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(np.diag(dyn.coupling), rmsf**2 / 3, rtol=1e-6)
    assert np.linalg.eigvalsh(dyn.correlation)[0] > 0
    # the DCCM of the result is the model's correlation map projected onto the PSD cone
    corr = out["correlation"][0, :n, :n].double().numpy()
    np.testing.assert_allclose(dyn.correlation, correlation_to_psd(corr), atol=1e-6)
    samples = dyn.sample(3, seed=0)
    assert samples.shape == (3, n, 3) and np.all(np.isfinite(samples))


@pytest.mark.parametrize("n", [1, 2, 30])
def test_correlation_to_psd(n):
    rng = np.random.default_rng(n)
    raw = rng.uniform(-1, 1, (n, n))
    raw = 0.5 * (raw + raw.T)
    np.fill_diagonal(raw, 1.0)
    c = correlation_to_psd(raw)
    np.testing.assert_allclose(np.diag(c), 1.0)
    np.testing.assert_allclose(c, c.T)
    assert np.linalg.eigvalsh(c)[0] > 0
    good = correlation_to_psd(np.eye(n) * 0.5 + 0.5)  # a valid correlation is kept
    np.testing.assert_allclose(good, np.eye(n) * 0.5 + 0.5, atol=1e-9)


def test_embeddings_option(ubq_chain, tmp_path):
    n = len(ubq_chain)
    model = random_model(seed=7, embed_dim=5)
    emb = np.random.default_rng(8).standard_normal((n, 5)).astype(np.float32)
    np.savez(tmp_path / "emb.npz", embeddings=emb)
    a = predict_resaxial(ubq_chain, weights=model, embeddings=tmp_path / "emb.npz")
    b = predict_resaxial(ubq_chain, weights=model, embeddings=emb)
    np.testing.assert_allclose(a.coupling, b.coupling)
    with pytest.raises(InputError, match="need per-residue embeddings"):
        predict_resaxial(ubq_chain, weights=model)
    with pytest.raises(InputError, match=r"expected shape \(76, D\)"):
        predict_resaxial(ubq_chain, weights=model, embeddings=emb[:10])
    with pytest.raises(InputError, match="dimension 3, the resaxial weights expect 5"):
        predict_resaxial(ubq_chain, weights=model, embeddings=emb[:, :3])
    with pytest.raises(InputError, match="trained on structure only"):
        predict_resaxial(ubq_chain, weights=random_model(), embeddings=emb)


def test_missing_weights_say_so(ubq_chain, tmp_path):
    with pytest.raises(InputError, match="resaxial weights not found at .*nothing.safetensors"):
        predict_resaxial(ubq_chain, weights=tmp_path / "nothing.safetensors")


def test_export_and_load_round_trip(ubq_chain, tmp_path):
    from dynaprot_viz.training.train_resaxial import export_resaxial_weights

    model = random_model(seed=9)
    path = export_resaxial_weights(model, tmp_path / "w.safetensors", {"note": "test"})
    assert path.with_suffix(".json").is_file()
    loaded = load_resaxial(path)
    a = predict_resaxial(ubq_chain, weights=model)
    b = predict_resaxial(ubq_chain, weights=path)
    assert loaded.config.to_dict() == model.config.to_dict()
    np.testing.assert_allclose(b.coupling, a.coupling, rtol=1e-6)
    path.with_suffix(".json").unlink()
    with pytest.raises(InputError, match="need their config json"):
        load_resaxial(path)


# --------------------------------------------------------------------------- training


def _adk_gbis():
    import os

    from MDAnalysisTests import datafiles

    folder = os.path.dirname(datafiles.PSF)
    return os.path.join(folder, "adk_closed_NAMD.psf"), os.path.join(folder, "adk_gbis_tmd-fast1_NAMD.dcd")


@pytest.fixture(scope="module")
def md_store(tmp_path_factory):
    """A label store of two real MD runs of adenylate kinase (MDAnalysisTests):
    CHARMM DIMS (98 frames) to train on, a GBIS targeted-MD run (100 frames) to validate on."""
    datafiles = pytest.importorskip("MDAnalysisTests.datafiles")
    from dynaprot_viz.training.ingest import ingest
    from dynaprot_viz.training.readers import trajectory_source

    path = tmp_path_factory.mktemp("resaxial") / "md.h5"
    res = ingest([trajectory_source(datafiles.PSF, [datafiles.DCD], key="adk_dims"),
                  trajectory_source(_adk_gbis()[0], [_adk_gbis()[1]], key="adk_gbis")],
                 path, progress=False, keep_frames=0)
    assert res.ok, res.summary()
    return path


def _tiny_config(out_dir, **kw):
    return {"model": "resaxial", "out_dir": str(out_dir), "architecture": dict(SMALL), "max_steps": 40,
            "batch_size": 2, "crop_size": 48, "lr": 3e-3, "warmup_steps": 2, "val_every": 40,
            "checkpoint_every": 10, "val_keys": ["adk_gbis"], "progress": False, **kw}


def test_tiny_training_lowers_validation_loss(md_store, tmp_path):
    from dynaprot_viz.training.train_resaxial import train_resaxial

    res = train_resaxial(md_store, _tiny_config(tmp_path / "run"))
    first, last = res.first("val"), res.last("val")
    assert first["step"] == 0 and last["step"] == 40
    assert last["loss"] < 0.85 * first["loss"], (first, last)
    assert last["correlation"] < 0.5 * first["correlation"], (first, last)
    assert res.splits == {"train": ["adk_dims"], "val": ["adk_gbis"], "test": []}
    csv_text = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert csv_text[0].startswith("step,split,loss") and len(csv_text) == 1 + 40 + 2
    assert res.checkpoint.is_file()
    # rerunning the finished config resumes at its last checkpoint and does nothing more
    again = train_resaxial(md_store, _tiny_config(tmp_path / "run"))
    assert again.resumed_from == 40 and again.step == 40


def test_training_config_errors(md_store, tmp_path):
    from dynaprot_viz.training.train_resaxial import is_resaxial_config, train_resaxial

    with pytest.raises(InputError, match="unknown resaxial training config keys: colour"):
        train_resaxial(md_store, {**_tiny_config(tmp_path), "colour": 1})
    with pytest.raises(InputError, match="loss_mode must be one of"):
        train_resaxial(md_store, _tiny_config(tmp_path, loss_mode="both"))
    with pytest.raises(InputError, match="not in the label store: nope"):
        train_resaxial(md_store, _tiny_config(tmp_path, val_keys=["nope"]))
    yml = tmp_path / "c.yaml"
    yml.write_text("model: resaxial\nmax_steps: 3\n")
    assert is_resaxial_config(yml)
    yml.write_text("model: {c_s: 8}\n")
    assert not is_resaxial_config(yml)


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_axial_attention_matches_plain_formula(chunk_size):
    """The fused, row-pieced attention equals its docstring's formula, written with
    einsum in float64 (batch of two, the second chain padded)."""
    from dynaprot_viz.core.models.resaxial import AxialAttention

    g = torch.Generator().manual_seed(4)
    att = AxialAttention(8, 6, 2)
    with torch.no_grad():
        for p in att.parameters():
            p.copy_(0.4 * torch.randn(p.shape, generator=g))
    att = att.double()
    n, h, c = 13, 2, 6
    z = torch.randn(2, n, n, 8, generator=g, dtype=torch.float64)
    mask = torch.ones(2, n, dtype=torch.float64)
    mask[1, -3:] = 0.0
    zn = att.layer_norm(z)
    q, k, v = (lin(zn).view(2, n, n, h, c) for lin in (att.linear_q, att.linear_k, att.linear_v))
    logits = torch.einsum("bijhc,bikhc->bhijk", q, k) / c ** 0.5 + (1e9 * (mask - 1.0))[:, None, None, None, :]
    o = torch.einsum("bhijk,bikhc->bijhc", torch.softmax(logits, -1), v).reshape(2, n, n, h * c)
    ref = att.linear_o(torch.sigmoid(att.linear_g(zn)) * o)
    with torch.no_grad():
        got = att(z, mask, chunk_size)
    torch.testing.assert_close(got, ref.detach(), rtol=1e-10, atol=1e-10)


def test_bad_device_is_one_line_input_error(ubq_chain):
    """The same device checks as DynaProt's predictor (it used to raise torch's own errors)."""
    from dynaprot_viz.core.models.resaxial.predictor import predict_resaxial

    with pytest.raises(InputError, match="device must be"):
        predict_resaxial(ubq_chain, device="banana")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            predict_resaxial(ubq_chain, device="cuda")
