"""ANM baseline: agreement with ProDy, invariances, scaling, limits."""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynaprot_viz.core.anm import (
    ANM_MAX_RESIDUES,
    _anm_covariance_eigh,
    anm_covariance,
    anm_hessian,
    predict_anm,
    rigid_body_basis,
)
from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.structure import ProteinChain, load_chain

from helpers import random_rotation

prody = pytest.importorskip("prody", reason="ProDy is the reference implementation (test dependency)")
prody.confProDy(verbosity="none")


def prody_covariance(ca, cutoff=15.0, gamma=1.0):
    anm = prody.ANM("ref")
    anm.buildHessian(ca, cutoff=cutoff, gamma=gamma)
    anm.calcModes(n_modes=None, zeros=False)
    return anm.getHessian(), prody.calcCovariance(anm)


@pytest.mark.parametrize("name, chain", [("1ubi.pdb", None), ("1ake.cif", "B"), ("1ejg.pdb", None),
                                         ("1osm.pdb.gz", None)])
def test_agrees_with_prody(data_dir, name, chain):
    ca = load_chain(data_dir / name, chain=chain).ca
    h_ref, cov_ref = prody_covariance(ca)
    np.testing.assert_allclose(anm_hessian(ca), h_ref, atol=1e-12)
    cov = anm_covariance(ca)
    scale = np.abs(cov_ref).max()
    np.testing.assert_allclose(cov, cov_ref, atol=1e-9 * scale)


def test_cutoff_and_gamma_follow_prody(ubq_chain):
    h_ref, cov_ref = prody_covariance(ubq_chain.ca, cutoff=10.0, gamma=2.5)
    np.testing.assert_allclose(anm_covariance(ubq_chain.ca, cutoff=10.0, gamma=2.5), cov_ref,
                               atol=1e-9 * np.abs(cov_ref).max())


def test_rigid_body_modes_are_null(ubq_chain):
    h = anm_hessian(ubq_chain.ca)
    q = rigid_body_basis(ubq_chain.ca)
    np.testing.assert_allclose(q.T @ q, np.eye(6), atol=1e-12)
    assert np.abs(h @ q).max() < 1e-10 * np.abs(h).max()
    cov = anm_covariance(ubq_chain.ca)
    assert np.abs(cov @ q).max() < 1e-8 * np.abs(cov).max()  # no rigid-body motion in the covariance


def test_cholesky_path_equals_eigh_path(ubq_chain):
    h = anm_hessian(ubq_chain.ca)
    np.testing.assert_allclose(anm_covariance(ubq_chain.ca), _anm_covariance_eigh(h),
                               atol=1e-9 * np.abs(_anm_covariance_eigh(h)).max())


def test_disconnected_network_falls_back_and_warns(ubq_chain):
    """Two copies 100 Å apart: 12 zero modes; the eigh path drops them, as ProDy does."""
    ca = np.concatenate([ubq_chain.ca[:30], ubq_chain.ca[:30] + [100.0, 0, 0]])
    with pytest.warns(UserWarning, match="12 zero modes"):
        cov = anm_covariance(ca)
    _, cov_ref = prody_covariance(ca)
    np.testing.assert_allclose(cov, cov_ref, atol=1e-8 * np.abs(cov_ref).max())


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_rotation_translation(ubq_chain, seed):
    """Rotating and translating the input leaves RMSF and coupling unchanged and
    rotates every marginal: Sigma_i -> R Sigma_i R^T."""
    rng = np.random.default_rng(seed)
    r = random_rotation(rng)
    t = rng.uniform(-50, 50, 3)
    moved = ProteinChain(ubq_chain.source, ubq_chain.residues, ubq_chain.sequence,
                         ubq_chain.backbone @ r.T + t, ubq_chain.bfactors)
    a, b = predict_anm(ubq_chain), predict_anm(moved)
    np.testing.assert_allclose(b.rmsf, a.rmsf, rtol=1e-8)
    np.testing.assert_allclose(b.coupling, a.coupling, atol=1e-10 * np.abs(a.coupling).max())
    np.testing.assert_allclose(b.marginals, r @ a.marginals @ r.T, atol=1e-10 * np.abs(a.marginals).max())
    np.testing.assert_allclose(b.mean, a.mean @ r.T + t, atol=1e-10)


def test_bfactor_scaling(ubq_chain):
    rel = predict_anm(ubq_chain, scale="relative")
    fit = predict_anm(ubq_chain, scale="bfactors")
    s = fit.marginals[0, 0, 0] / rel.marginals[0, 0, 0]
    np.testing.assert_allclose(fit.marginals, s * rel.marginals)
    # least squares through the origin: the residual is orthogonal to the prediction
    resid = ubq_chain.bfactors - fit.bfactors
    assert abs(np.dot(resid, rel.bfactors)) < 1e-8 * np.dot(ubq_chain.bfactors, rel.bfactors)
    assert np.corrcoef(fit.bfactors, ubq_chain.bfactors)[0, 1] > 0.4  # ANM tracks crystal B (r = 0.49 here)
    np.testing.assert_allclose(predict_anm(ubq_chain, scale=2.0).marginals, 2 * rel.marginals)


def test_bfactor_scaling_refuses_constant_bfactors(data_dir, ubq_chain):
    flat = ProteinChain("flat.pdb", ubq_chain.residues, ubq_chain.sequence, ubq_chain.backbone,
                        np.zeros(len(ubq_chain)))
    with pytest.raises(InputError, match="B-factors are missing or constant"):
        predict_anm(flat, scale="bfactors")
    with pytest.raises(InputError, match="scale must be"):
        predict_anm(ubq_chain, scale="kelvin")
    with pytest.raises(InputError, match="positive number"):
        predict_anm(ubq_chain, scale=-1.0)


def test_limits():
    with pytest.raises(InputError, match="at least 3 residues"):
        anm_covariance(np.zeros((2, 3)))
    big = np.cumsum(np.random.default_rng(0).normal(size=(ANM_MAX_RESIDUES + 1, 3)), axis=0)
    with pytest.raises(InputError, match=f"limited to {ANM_MAX_RESIDUES}"):
        anm_covariance(big)
    dup = np.array([[0, 0, 0], [0, 0, 0], [3.8, 0, 0], [7.6, 0, 0.0]])
    with pytest.raises(InputError, match="same position"):
        anm_covariance(dup)


def test_units_relative_scale_is_sane(ubq_anm):
    # gamma = 1 kT/Å^2: fluctuations of order 0.1-10 Å^2, tail more mobile than the core
    assert 0.1 < np.median(ubq_anm.rmsf) < 5
    assert ubq_anm.rmsf[-1] > np.median(ubq_anm.rmsf)
    assert ubq_anm.model_name == "anm-relative" and ubq_anm.relative_units


def test_tiny_chain_degenerate_network_is_one_line_error(ubq_chain):
    """Three residues: the ANM covariance has singular marginals; a clear error, no traceback."""
    tiny = ProteinChain("tiny.pdb", ubq_chain.residues[:3], ubq_chain.sequence[:3], ubq_chain.backbone[:3],
                        ubq_chain.bfactors[:3])
    with pytest.raises(InputError, match="the ANM of these 3 residues is degenerate"):
        predict_anm(tiny)
