"""Log-Euclidean loss: zero at identity, matches scipy, stable gradients at degeneracy."""

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings, strategies as st
from scipy.spatial.transform import Rotation

# the test machine's cores are shared: one thread avoids OpenMP oversubscription stalls
torch.set_num_threads(1)

from dynaprot_viz.core.models.dynaprot.loss import (
    dynaprot_loss, log_euclidean_distance, log_euclidean_loss, mse_loss, spd_logm,
)


def _random_spd(rng, shape, d, low=0.05, high=5.0):
    q = np.linalg.qr(rng.normal(size=shape + (d, d)))[0]
    w = rng.uniform(low, high, size=shape + (d,))
    return (q * w[..., None, :]) @ np.swapaxes(q, -1, -2)


def test_logm_matches_scipy():
    rng = np.random.default_rng(0)
    s = _random_spd(rng, (5,), 3)
    ours = spd_logm(torch.from_numpy(s)).numpy()
    for k in range(5):
        np.testing.assert_allclose(ours[k], scipy.linalg.logm(s[k]).real, atol=1e-10)


def test_zero_for_identical_inputs():
    rng = np.random.default_rng(1)
    s = torch.from_numpy(_random_spd(rng, (2, 7), 3))
    c = torch.from_numpy(_random_spd(rng, (2,), 7))
    mask = torch.ones(2, 7)
    total, terms = dynaprot_loss(marginals=s, marginals_true=s, coupling=c, coupling_true=c, mask=mask)
    assert float(total) == pytest.approx(0.0, abs=1e-20)
    assert float(mse_loss(s, s, mask)) == 0.0


def test_gradcheck_separated_eigenvalues():
    rng = np.random.default_rng(2)
    s = torch.from_numpy(_random_spd(rng, (3,), 3, 0.5, 4.0)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: spd_logm(0.5 * (x + x.transpose(-1, -2))), (s,))


@pytest.mark.parametrize("eigs", [[2.0, 2.0, 2.0], [1.0, 1.0 + 1e-13, 3.0], [1.0, 1.0 + 1e-7, 1.0 + 2e-7]])
def test_gradient_finite_and_exact_at_degeneracy(eigs):
    q = Rotation.random(random_state=3).as_matrix()
    s = torch.from_numpy(q @ np.diag(eigs) @ q.T).requires_grad_(True)
    e = np.random.default_rng(4).normal(size=(3, 3))
    e = torch.from_numpy(e + e.T)
    (spd_logm(s) * e).sum().backward()
    g = s.grad.numpy()
    assert np.all(np.isfinite(g))
    # exact derivative of <log S, E> is V (F o V^T E V) V^T; at w_i ~ w_j, F ~ 1/w
    v = q
    w = np.array(eigs)
    f = np.where(np.abs(w[:, None] - w[None]) < 1e-6, 2 / (w[:, None] + w[None]),
                 (np.log(w[:, None]) - np.log(w[None])) / np.where(w[:, None] == w[None], 1, w[:, None] - w[None]))
    expected = v @ (f * (v.T @ e.numpy() @ v)) @ v.T
    np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-9)


def test_gradient_finite_through_loss_with_degenerate_labels_and_predictions():
    s_true = torch.eye(3).expand(4, 5, 3, 3).double()
    s_pred = (1.5 * torch.eye(3)).expand(4, 5, 3, 3).double().clone().requires_grad_(True)
    loss = log_euclidean_loss(s_pred, s_true)
    loss.backward()
    assert torch.isfinite(s_pred.grad).all()
    # d/dS sum ||log S - log I||^2 at S = a I: 2 log(a) / a * I per matrix, divided by 20 residues
    np.testing.assert_allclose(s_pred.grad[0, 0].numpy(), 2 * np.log(1.5) / 1.5 / 20 * np.eye(3), rtol=1e-10)


def test_floor_and_rank_deficient_coupling():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20, 4))
    c_true = torch.from_numpy(x @ x.T)  # rank 4 of 20: eigenvalues below the floor
    c_pred = torch.from_numpy(_random_spd(rng, (), 20)).requires_grad_(True)
    loss = log_euclidean_loss(c_pred[None], c_true[None], per_residue=False, floor=1e-3)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(c_pred.grad).all()


def test_mask_ignores_padding():
    rng = np.random.default_rng(6)
    p = torch.from_numpy(_random_spd(rng, (1, 6), 3))
    t = torch.from_numpy(_random_spd(rng, (1, 6), 3))
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]], dtype=torch.float64)
    t2 = t.clone()
    t2[0, 4:] = 100 * torch.eye(3, dtype=torch.float64)
    assert float(log_euclidean_loss(p, t, mask)) == pytest.approx(float(log_euclidean_loss(p, t2, mask)))
    cp = torch.from_numpy(_random_spd(rng, (1,), 6))
    ct = torch.from_numpy(_random_spd(rng, (1,), 6))
    full = log_euclidean_loss(cp[:, :4, :4], ct[:, :4, :4], per_residue=False)
    masked = log_euclidean_loss(cp, ct, mask, per_residue=False)
    assert float(full) == pytest.approx(float(masked), rel=1e-12)


def test_kind_switch_and_errors():
    rng = np.random.default_rng(7)
    p = torch.from_numpy(_random_spd(rng, (1, 3), 3))
    t = torch.from_numpy(_random_spd(rng, (1, 3), 3))
    total, terms = dynaprot_loss("mse", marginals=p, marginals_true=t)
    assert float(total) == pytest.approx(float(((p - t) ** 2).sum() / 3))
    with pytest.raises(ValueError, match="kind must be"):
        dynaprot_loss("l1", marginals=p, marginals_true=t)
    with pytest.raises(ValueError, match="needs marginals"):
        dynaprot_loss()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_distance_symmetric_and_rotation_invariant(seed):
    rng = np.random.default_rng(seed)
    a = _random_spd(rng, (), 3)
    b = _random_spd(rng, (), 3)
    q = Rotation.random(random_state=seed % 1000).as_matrix()
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    d_ab = float(log_euclidean_distance(ta, tb))
    assert d_ab == pytest.approx(float(log_euclidean_distance(tb, ta)), rel=1e-9)
    d_rot = float(log_euclidean_distance(torch.from_numpy(q @ a @ q.T), torch.from_numpy(q @ b @ q.T)))
    assert d_rot == pytest.approx(d_ab, rel=1e-8, abs=1e-12)
