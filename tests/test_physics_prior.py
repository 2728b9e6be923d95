"""Physics-prior DynaProt (``DynaProtConfig(prior="anm")``): zero output = calibrated ANM,
SE(3) equivariance, SPD/PSD outputs, padding; RMSF-only (md-rmsf) training."""

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import randomize_parameters
from scipy.spatial.transform import Rotation

# the test machine's cores are shared: one thread avoids OpenMP oversubscription stalls
torch.set_num_threads(1)

from dynaprot_viz.core.anm import amplitude_scale, anm_covariance  # noqa: E402
from dynaprot_viz.core.gaussian import coupling_from_joint, marginals_from_joint  # noqa: E402
from dynaprot_viz.core.models.dynaprot import (  # noqa: E402
    ANM_FEATURE_KEYS, DynaProt, DynaProtConfig, add_anm_features, collate, featurize, featurize_arrays,
)
from dynaprot_viz.core.models.dynaprot.loss import (  # noqa: E402
    dynaprot_loss, log_rmsf_loss, rmsf_from_coupling, rmsf_from_marginals,
)
from dynaprot_viz.core.structure import load_chain  # noqa: E402

SMALL = dict(c_s=32, c_z=8, n_blocks=2, j_n_blocks=2, ipa_heads=2, ipa_c_hidden=8, j_transition_factor=2,
             c_pair=8, n_pair_blocks=1, pair_c_hidden_mul=8, pair_c_hidden_att=4, pair_heads=2, n_rbf=8)
PRIOR = DynaProtConfig(**SMALL, prior="anm")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "data" / "1ubi.pdb"
MDCATH_TRAIN = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mdcath_train"


@pytest.fixture(scope="module")
def ubq():
    return load_chain(str(EXAMPLE))


@pytest.fixture(scope="module")
def anm_reference(ubq):
    """Calibrated ANM of the chain computed independently: (s_A Sigma_i, s_A C)."""
    cov = anm_covariance(ubq.ca, cutoff=15.0, gamma=1.0)
    marg = marginals_from_joint(cov)
    s = amplitude_scale(ubq.ca, marg, cutoff=15.0)
    return s * marg, s * coupling_from_joint(cov)


def _final_layers(model: DynaProt):
    """The prior's output layers (init="final"): M's residual and scale, J's S, delta and scale."""
    return [model.m.readout[-1], model.m.scale_head[-1], model.j.readout[-1], model.j.delta_head,
            model.j.scale_head]


def _predict(model, sequence, backbone):
    with torch.no_grad():
        out = model(collate([featurize_arrays(sequence, backbone, anm=True)]))
    return out["marginals"][0].numpy(), out["coupling"][0].numpy()


@pytest.fixture(scope="module")
def random_prior():
    torch.manual_seed(0)
    return randomize_parameters(DynaProt(PRIOR).double(), 11)


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def test_untrained_prior_model_is_calibrated_anm(ubq, anm_reference):
    marg_ref, coup_ref = anm_reference
    model = DynaProt(PRIOR).double().eval()
    for layer in _final_layers(model):  # init="final": all zero
        assert float(layer.weight.detach().abs().max()) == 0.0 and float(layer.bias.detach().abs().max()) == 0.0
    sig, c = _predict(model, ubq.sequence, ubq.backbone)
    assert _rel(sig, marg_ref) < 1e-10
    assert _rel(c - PRIOR.eps_coupling * np.eye(len(ubq)), coup_ref) < 1e-10


def test_zero_heads_give_anm_whatever_the_trunk(ubq, anm_reference):
    """A trained-looking trunk with zeroed last layers still returns ANM exactly:
    the network only ever adds a correction on top of the prior."""
    marg_ref, coup_ref = anm_reference
    torch.manual_seed(1)
    model = randomize_parameters(DynaProt(PRIOR).double(), 3)
    with torch.no_grad():
        for layer in _final_layers(model):
            layer.weight.zero_()
            layer.bias.zero_()
    sig, c = _predict(model, ubq.sequence, ubq.backbone)
    assert _rel(sig, marg_ref) < 1e-10
    assert _rel(c - PRIOR.eps_coupling * np.eye(len(ubq)), coup_ref) < 1e-10


@pytest.mark.parametrize("seed", [0, 1])
def test_prior_se3_equivariance(random_prior, ubq, anm_reference, seed):
    q = Rotation.random(random_state=seed).as_matrix()
    t = np.random.default_rng(seed).normal(scale=30.0, size=3)
    s0, c0 = _predict(random_prior, ubq.sequence, ubq.backbone)
    s1, c1 = _predict(random_prior, ubq.sequence, ubq.backbone @ q.T + t)  # ANM recomputed on the moved chain
    np.testing.assert_allclose(s1, q @ s0 @ q.T, rtol=1e-7, atol=1e-9 * np.abs(s0).max())
    np.testing.assert_allclose(c1, c0, rtol=1e-7, atol=1e-9 * np.abs(c0).max())
    # random weights make a real correction: not ANM any more, in shape and anisotropy
    marg_ref, coup_ref = anm_reference
    assert _rel(s0, marg_ref) > 1e-2 and _rel(c0, coup_ref) > 1e-2
    r_pred = np.sqrt(np.trace(s0, axis1=1, axis2=2))
    r_anm = np.sqrt(np.trace(marg_ref, axis1=1, axis2=2))
    assert np.corrcoef(r_pred, r_anm)[0, 1] < 1 - 1e-4


def test_prior_outputs_spd_and_psd(random_prior, ubq):
    s, c = _predict(random_prior, ubq.sequence, ubq.backbone)
    np.testing.assert_allclose(s, np.swapaxes(s, 1, 2), atol=1e-12 * np.abs(s).max())
    assert np.linalg.eigvalsh(s).min() > 0
    np.testing.assert_allclose(c, c.T, atol=1e-12 * np.abs(c).max())
    # C - eps I is PSD (ANM's coupling has the translation mode in its null space)
    w = np.linalg.eigvalsh(c - PRIOR.eps_coupling * np.eye(len(c)))
    assert w.min() > -1e-9 * w.max()
    np.linalg.cholesky(c)


def test_prior_padding_and_on_the_fly_features(random_prior, ubq):
    short = featurize_arrays(ubq.sequence[10:40], ubq.backbone[10:40], anm=True)
    full = featurize(ubq, anm=True)
    with torch.no_grad():
        both = random_prior(collate([short, full]))
        one = random_prior(collate([short]))
        # the model computes the ANM inputs itself when the batch lacks them (the predictor's path)
        bare = random_prior(collate([featurize(ubq)]))
    torch.testing.assert_close(both["marginals"][0, :30], one["marginals"][0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(both["coupling"][0, :30, :30], one["coupling"][0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(bare["marginals"][0], both["marginals"][1], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(bare["coupling"][0], both["coupling"][1], rtol=1e-9, atol=1e-12)
    b = add_anm_features(collate([featurize(ubq)]))
    assert all(k in b for k in ANM_FEATURE_KEYS) and b["anm_log_scale"].shape == (1, len(ubq))


def test_prior_gradients_reach_every_parameter_from_zero_init(ubq):
    torch.manual_seed(0)
    model = DynaProt(PRIOR)  # float32, untouched init: the zero output layers must still learn
    b = {k: (v.float() if v.is_floating_point() else v) for k, v in collate([featurize(ubq, anm=True)]).items()}
    out = model(b)
    loss = (rmsf_from_marginals(out["marginals"]).log().sum() + rmsf_from_coupling(out["coupling"]).log().sum()
            + out["coupling"][0, :5, 10:20].sum())
    loss.backward()
    for layer in _final_layers(model):
        assert torch.isfinite(layer.weight.grad).all() and float(layer.weight.grad.abs().max()) > 0


def test_config_names_both_variants():
    assert DynaProtConfig().prior is None and "prior" not in DynaProtConfig().to_dict()  # pure: unchanged dict
    assert DynaProtConfig.from_dict(PRIOR.to_dict()) == PRIOR and PRIOR.to_dict()["prior"] == "anm"
    with pytest.raises(ValueError, match="prior must be one of None, 'anm'"):
        DynaProtConfig(prior="gnm")
    pure, prior = DynaProt(DynaProtConfig(**SMALL)), DynaProt(PRIOR)
    assert not any("anm" in k or "scale_head" in k for k in pure.state_dict())
    assert any("embed_anm_single" in k for k in prior.state_dict())


# ----------------------------------------------------------------------------- RMSF-only labels


def test_log_rmsf_loss_and_rmsf_readouts():
    marg = torch.diag_embed(torch.tensor([[[1.0, 2.0, 1.0], [4.0, 0.0, 0.0]]], dtype=torch.float64))
    np.testing.assert_allclose(rmsf_from_marginals(marg).numpy(), [[2.0, 2.0]])
    np.testing.assert_allclose(rmsf_from_coupling(torch.diag(torch.tensor([3.0, 12.0]))[None]).numpy(),
                               [[3.0, 6.0]])
    pred = torch.tensor([[1.0, 2.0, 5.0]])
    true = torch.tensor([[np.e, 2.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the unlabelled residue does not count
    assert float(log_rmsf_loss(pred, true, mask)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="one shape"):
        log_rmsf_loss(pred, true[:, :2], mask)


def test_source_aware_loss_picks_the_loss_by_label_kind():
    """A batch of one chain with full labels (md) and one with RMSF only (md-rmsf)."""
    from dynaprot_viz.training.store import LABEL_KINDS
    from dynaprot_viz.training.train import TrainConfig, _compute_loss

    rng = np.random.default_rng(0)
    n = 6

    def spd(k, d):
        a = rng.normal(size=(k, d, d))
        return torch.from_numpy(a @ np.swapaxes(a, 1, 2) + d * np.eye(d))

    out = {"marginals": torch.stack([spd(n, 3), spd(n, 3)]), "coupling": torch.stack([spd(1, n)[0], spd(1, n)[0]])}
    mask = torch.ones(2, n, dtype=torch.float64)
    mask[1, 5] = 0.0  # padding
    label_rmsf = torch.ones(2, n, dtype=torch.float64)
    label_rmsf[1, 0] = 0.0  # an unlabelled residue
    batch = {
        "mask": mask, "marginals": torch.stack([spd(n, 3), torch.zeros(n, 3, 3, dtype=torch.float64)]),
        "coupling": torch.stack([spd(1, n)[0], torch.zeros(n, n, dtype=torch.float64)]),
        "rmsf": torch.from_numpy(rng.uniform(0.5, 3.0, size=(2, n))),
        "label_full": torch.tensor([[1.0] * n, [0.0] * n], dtype=torch.float64),
        "label_rmsf": label_rmsf,
        "kind_index": torch.tensor([[LABEL_KINDS.index("md")] * n, [LABEL_KINDS.index("md-rmsf")] * n]),
    }
    cfg = TrainConfig.from_dict({"store": "x", "out_dir": "y", "kinds": ["md", "md-rmsf"],
                                 "kind_weights": {"md": 2.0, "md-rmsf": 0.5}, "coupling_weight": 0.3})
    assert cfg.source_aware
    total, terms = _compute_loss(cfg, out, batch)
    _, full = dynaprot_loss(marginals=out["marginals"][:1], marginals_true=batch["marginals"][:1],
                            coupling=out["coupling"][:1], coupling_true=batch["coupling"][:1], mask=mask[:1])
    rmask = (mask * label_rmsf)[1:]
    r_m = log_rmsf_loss(rmsf_from_marginals(out["marginals"][1:]), batch["rmsf"][1:], rmask)
    r_j = log_rmsf_loss(rmsf_from_coupling(out["coupling"][1:]), batch["rmsf"][1:], rmask)
    assert float(terms["marginal"]) == pytest.approx(float(full["marginal"]))
    assert float(terms["coupling"]) == pytest.approx(float(full["coupling"]))
    assert float(terms["rmsf"]) == pytest.approx(float(r_m)) and float(terms["rmsf_coupling"]) == pytest.approx(
        float(r_j))
    expected = 2.0 * (full["marginal"] + 0.3 * full["coupling"]) + 0.5 * (r_m + 0.3 * r_j)
    assert float(total) == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="kinds must be"):
        TrainConfig.from_dict({"store": "x", "out_dir": "y", "kinds": ["md", "atlas"]})
    with pytest.raises(ValueError, match="kind_weights"):
        TrainConfig.from_dict({"store": "x", "out_dir": "y", "kind_weights": {"md": -1}})


@pytest.mark.skipif(not MDCATH_TRAIN.is_dir(), reason=f"{MDCATH_TRAIN} absent (shared mdCATH RMSF data)")
def test_prior_trains_on_real_mdcath_rmsf(tmp_path):
    """A few real mdCATH domains (RMSF only): the step-0 validation loss is exactly
    calibrated ANM's log-RMSF error (zero output = ANM), and training runs and resumes."""
    pytest.importorskip("h5py")
    from dynaprot_viz.training.rmsf_labels import ingest_mdcath_rmsf
    from dynaprot_viz.training.store import LabelStore
    from dynaprot_viz.training.train import TrainConfig, train

    domains = ["1ak0A00", "1atgA02", "1axiB02", "1b35A00", "1b43A02"]  # of datasets/mdcath_split/train.txt
    store = tmp_path / "rmsf.h5"
    res = ingest_mdcath_rmsf(MDCATH_TRAIN, store, domains=domains, progress=False)
    assert len(res.ingested) == len(domains), res.failed
    val = domains[0]
    with LabelStore(store) as st:
        lab = st.get(val)
    item = featurize_arrays(lab.sequence, lab.backbone, anm=True)
    crop = 40
    n = len(lab.sequence)
    sl = slice((n - crop) // 2, (n - crop) // 2 + crop) if n > crop else slice(0, n)
    anm_rmsf = np.sqrt(np.trace(item["anm_marginals"].numpy(), axis1=1, axis2=2) * np.exp(
        float(item["anm_log_scale"][0])))[sl]
    expected = float(np.mean((np.log(anm_rmsf) - np.log(lab.rmsf[sl])) ** 2))

    cfg = TrainConfig.from_dict(dict(
        store=str(store), out_dir=str(tmp_path / "run"), model={**SMALL, "prior": "anm"}, kinds=["md-rmsf"],
        lr=3e-3, warmup_steps=2, max_steps=4, batch_size=2, crop_size=crop, device="cpu", precision="fp32",
        num_threads=1, checkpoint_every=2, val_every=2, val_keys=[val], progress=False))
    out = train(cfg)
    val_rows = [r for r in out.history if r["split"] == "val"]
    assert val_rows[0]["step"] == 0
    assert val_rows[0]["rmsf"] == pytest.approx(expected, rel=1e-4)  # float32 forward
    # J's diagonal starts at ANM too: C_ii = tr(Sigma_i) / 3
    assert val_rows[0]["rmsf_coupling"] == pytest.approx(expected, rel=1e-3)
    train_rows = [r for r in out.history if r["split"] == "train"]
    assert len(train_rows) == 4
    assert all("marginal" not in r and np.isfinite(r["rmsf"]) and np.isfinite(r["loss"]) for r in train_rows)
    again = train(TrainConfig.from_dict({**cfg.__dict__, "max_steps": 6}))
    assert again.resumed_from == 4 and again.step == 6


def test_prior_weights_file_predicts_through_the_registry_path(ubq, anm_reference, tmp_path):
    """An exported (untrained) prior model read by ``predict_dynaprot``: the predictor
    needs no change, the model computes its ANM inputs, and the result is calibrated ANM."""
    pytest.importorskip("safetensors")
    from dynaprot_viz.core.models.dynaprot.predictor import predict_dynaprot
    from dynaprot_viz.training.train import export_weights

    model = DynaProt(PRIOR)
    ck = tmp_path / "last.pt"
    torch.save({"model": model.state_dict(), "model_config": PRIOR.to_dict(), "step": 0, "use_m": True,
                "use_j": True, "train_config": {}}, ck)
    path = export_weights(ck, tmp_path / "prior.safetensors")
    dyn = predict_dynaprot(ubq, device="cpu", weights=path)
    marg_ref, coup_ref = anm_reference
    assert _rel(dyn.marginals, marg_ref) < 1e-5  # float32 inference
    assert _rel(dyn.coupling, coup_ref) < 1e-5
