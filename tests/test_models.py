"""DynaProt-M / DynaProt-J: SE(3) equivariance, SPD outputs, masks, chunking, sizes."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from helpers import randomize_parameters

# the test machine's cores are shared: one thread avoids OpenMP oversubscription stalls
torch.set_num_threads(1)

from dynaprot_viz.core.models import (
    DynaProtConfig, DynaProtJ, DynaProtM, collate, count_parameters, featurize, featurize_arrays,
)
from dynaprot_viz.core.models.ipa import InvariantPointAttention
from dynaprot_viz.core.models.pair import PairBlock
from dynaprot_viz.core.structure import load_chain

SMALL = DynaProtConfig(c_s=32, c_z=8, n_blocks=2, j_n_blocks=2, ipa_heads=2, ipa_c_hidden=8,
                       j_transition_factor=2, c_pair=8, n_pair_blocks=1, pair_c_hidden_mul=8,
                       pair_c_hidden_att=4, pair_heads=2, n_rbf=8)


def _randomize(model, seed):
    return randomize_parameters(model, seed)


@pytest.fixture(scope="module")
def ubq():
    return load_chain("tests/data/1ubi.pdb")


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    m = _randomize(DynaProtM(SMALL).double(), 1)
    j = _randomize(DynaProtJ(SMALL).double(), 2)
    return m, j


def _predict(m, j, sequence, backbone, chunk_size=None):
    b = collate([featurize_arrays(sequence, backbone)])
    with torch.no_grad():
        return m(b)[0].numpy(), j(b, chunk_size=chunk_size)[0].numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_se3_equivariance(models, ubq, seed):
    m, j = models
    q = Rotation.random(random_state=seed).as_matrix()
    t = np.random.default_rng(seed).normal(scale=30.0, size=3)
    s0, c0 = _predict(m, j, ubq.sequence, ubq.backbone)
    s1, c1 = _predict(m, j, ubq.sequence, ubq.backbone @ q.T + t)
    np.testing.assert_allclose(s1, q @ s0 @ q.T, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.sqrt(np.trace(s1, axis1=1, axis2=2)), np.sqrt(np.trace(s0, axis1=1, axis2=2)),
                               rtol=1e-9)
    np.testing.assert_allclose(c1, c0, rtol=1e-9, atol=1e-10)
    # and the output really depends on the structure (not a trivially constant map)
    assert np.ptp(np.trace(s0, axis1=1, axis2=2)) > 1e-3
    assert np.abs(c0 - np.diag(np.diag(c0))).max() > 1e-3


def test_ipa_invariant_to_global_motion():
    torch.manual_seed(3)
    ipa = _randomize(InvariantPointAttention(c_s=16, c_z=4, c_hidden=8, no_heads=2), 4).double()
    n = 12
    s = torch.randn(1, n, 16, dtype=torch.float64)
    z = torch.randn(1, n, n, 4, dtype=torch.float64)
    rot = torch.from_numpy(Rotation.random(n, random_state=5).as_matrix())[None]
    trans = torch.randn(1, n, 3, dtype=torch.float64)
    mask = torch.ones(1, n, dtype=torch.float64)
    q = torch.from_numpy(Rotation.random(random_state=6).as_matrix())
    t = torch.randn(3, dtype=torch.float64)
    o0 = ipa(s, z, rot, trans, mask)
    o1 = ipa(s, z, q @ rot, trans @ q.T + t, mask)
    torch.testing.assert_close(o1, o0, rtol=1e-9, atol=1e-10)


def test_outputs_spd(models, ubq):
    m, j = models
    s, c = _predict(m, j, ubq.sequence, ubq.backbone)
    assert np.all(np.linalg.eigvalsh(s) > 0)
    np.testing.assert_allclose(s, np.swapaxes(s, 1, 2))
    np.testing.assert_allclose(c, c.T)
    assert np.linalg.eigvalsh(c).min() > 0
    np.linalg.cholesky(c)


def test_padding_mask_matches_single(models, ubq):
    m, j = models
    short = featurize_arrays(ubq.sequence[10:40], ubq.backbone[10:40])
    full = featurize(ubq)
    batch = collate([short, full])
    with torch.no_grad():
        s_b, c_b = m(batch), j(batch)
        s_1, c_1 = m(collate([short])), j(collate([short]))
    torch.testing.assert_close(s_b[0, :30], s_1[0], rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(c_b[0, :30, :30], c_1[0], rtol=1e-9, atol=1e-10)
    # the long chain is unaffected by being batched too
    with torch.no_grad():
        s_f = m(collate([full]))
    torch.testing.assert_close(s_b[1], s_f[0], rtol=1e-9, atol=1e-10)


def test_chunked_pair_block_equals_unchunked():
    torch.manual_seed(7)
    block = _randomize(PairBlock(c_z=8, c_hidden_mul=8, c_hidden_att=4, no_heads=2), 8).double()
    z = torch.randn(2, 23, 23, 8, dtype=torch.float64)
    mask = torch.ones(2, 23, dtype=torch.float64)
    mask[1, 17:] = 0
    with torch.no_grad():
        ref = block(z, mask, chunk_size=None)
        for chunk in (1, 5, 23, 64):
            torch.testing.assert_close(block(z, mask, chunk_size=chunk), ref, rtol=1e-10, atol=1e-12)


def test_chunked_model_equals_unchunked(models, ubq):
    m, j = models
    _, c0 = _predict(m, j, ubq.sequence, ubq.backbone, chunk_size=None)
    _, c1 = _predict(m, j, ubq.sequence, ubq.backbone, chunk_size=9)
    np.testing.assert_allclose(c1, c0, rtol=1e-10, atol=1e-12)


def test_gradients_flow(ubq):
    torch.manual_seed(0)
    m, j = DynaProtM(SMALL), DynaProtJ(SMALL)
    b = collate([featurize(ubq)])
    b = {k: (v.float() if v.is_floating_point() else v) for k, v in b.items()}
    (m(b).sum() + j(b).sum()).backward()
    for model in (m, j):
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_parameter_counts_near_paper():
    n_m = count_parameters(DynaProtM())
    n_j = count_parameters(DynaProtJ())
    assert 0.7e6 <= n_m <= 1.3e6, n_m  # paper: about 1 M
    assert 0.7 * 2.9e6 <= n_m + n_j <= 1.3 * 2.9e6, n_m + n_j  # paper: about 2.9 M with M


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown model config keys: bogus"):
        DynaProtConfig.from_dict({"bogus": 1})


def test_featurize_rejects_missing_backbone(ubq):
    bb = ubq.backbone.copy()
    bb[3, 0] = np.nan
    with pytest.raises(ValueError, match="missing"):
        featurize_arrays(ubq.sequence, bb)


def _write_weights(model, path):
    import json

    from safetensors.torch import save_file

    save_file({k: v.float().contiguous() for k, v in model.state_dict().items()}, str(path))
    path.with_suffix(".json").write_text(json.dumps({"model_config": model.cfg.to_dict(), "use_m": True,
                                                     "use_j": True}))


def test_predictor_with_weights_file(ubq, tmp_path):
    from dynaprot_viz.core.gaussian import Dynamics
    from dynaprot_viz.core.models import DynaProt
    from dynaprot_viz.core.models.dynaprot.predictor import load_dynaprot, predict_dynaprot

    torch.manual_seed(0)
    model = _randomize(DynaProt(SMALL), 9)
    w = tmp_path / "small.safetensors"
    _write_weights(model, w)
    dyn = predict_dynaprot(ubq, device="cpu", weights=w)
    assert isinstance(dyn, Dynamics) and dyn.model_name == "dynaprot" and len(dyn) == len(ubq)
    np.testing.assert_allclose(dyn.mean, ubq.ca)
    assert load_dynaprot(w, "cpu") is load_dynaprot(w, "cpu")  # cached
    samples = dyn.sample(5, seed=0)
    assert samples.shape == (5, len(ubq), 3)
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        predict_dynaprot(ubq, weights=tmp_path / "none.safetensors")
    from dynaprot_viz.core.errors import InputError
    with pytest.raises(InputError, match="device must be"):
        predict_dynaprot(ubq, device="tpu", weights=w)


def test_shipped_weights_predict(ubq):
    from dynaprot_viz.core.models.dynaprot.predictor import default_weights, predict_dynaprot

    if not default_weights().exists():
        pytest.skip("shipped weights not present in this checkout")
    dyn = predict_dynaprot(ubq, device="cpu")
    assert np.all(np.isfinite(dyn.rmsf)) and dyn.rmsf.min() > 0


def test_too_long_chain_is_refused_before_any_work():
    """A chain beyond the practical limit gets one line instead of an hour-long run."""
    import numpy as np

    from dynaprot_viz.core.errors import InputError
    from dynaprot_viz.core.models.dynaprot.predictor import predict_dynaprot
    from dynaprot_viz.core.models.resaxial.predictor import predict_resaxial
    from dynaprot_viz.core.structure import ProteinChain, Residue

    n = 2001
    ca = np.cumsum(np.full((n, 3), [3.8, 0.0, 0.0]), axis=0)
    bb = np.stack([ca - [1.0, 0.5, 0], ca, ca + [1.0, 0.5, 0]], axis=1)
    chain = ProteinChain("long.pdb", tuple(Residue("A", i, "", "ALA") for i in range(n)), "A" * n, bb, np.zeros(n))
    with pytest.raises(InputError, match="2001 residues; DynaProt is limited to 2000"):
        predict_dynaprot(chain)
    with pytest.raises(InputError, match="2001 residues; ResAxial is limited to 2000"):
        predict_resaxial(chain)


def test_relative_position_lookup_equals_linear_of_onehot():
    from dynaprot_viz.core.models.primitives import Linear, embed_relative_position, relative_position_onehot

    lin = randomize_parameters(Linear(2 * 5 + 1, 7), seed=3).double()
    idx = torch.tensor([[0, 1, 2, 3, 10, 11, 30], [0, 2, 4, 6, 8, 10, 12]])  # gaps and clipping
    ref = lin(relative_position_onehot(idx, 5).double())
    torch.testing.assert_close(embed_relative_position(lin, idx, 5), ref, rtol=0, atol=1e-15)
