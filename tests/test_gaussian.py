"""Dynamics: validation, Eq. 3 reconstruction, factorised sampling, save/load."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynaprot_viz.core.errors import InputError, ShapeError
from dynaprot_viz.core.gaussian import Dynamics, coupling_from_joint, marginals_from_joint
from dynaprot_viz.core.structure import Residue

from helpers import random_rotation


def random_dynamics(rng, n, model_name="test"):
    """SPD marginals and a PSD coupling built from a random covariance."""
    a = rng.standard_normal((n, 3, 3))
    marg = a @ np.swapaxes(a, 1, 2) + 0.1 * np.eye(3)
    b = rng.standard_normal((n, n + 2))
    coup = b @ b.T / (n + 2) + 0.05 * np.eye(n)
    residues = [Residue("A", i + 1, "", "ALA") for i in range(n)]
    return Dynamics(rng.standard_normal((n, 3)) * 10, marg, coup, residues, model_name)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_joint_is_spd_and_blocks_are_marginals(n, seed):
    dyn = random_dynamics(np.random.default_rng(seed), n)
    joint = dyn.joint()
    assert joint.shape == (3 * n, 3 * n)
    np.testing.assert_allclose(joint, joint.T, atol=1e-12)
    assert np.linalg.eigvalsh(joint).min() > -1e-10 * np.abs(joint).max()
    np.testing.assert_allclose(marginals_from_joint(joint), dyn.marginals, rtol=1e-10, atol=1e-12)
    # trace pooling of the reconstruction gives back the correlation's pattern
    c = coupling_from_joint(joint)
    np.testing.assert_allclose(np.diag(c), np.trace(dyn.marginals, axis1=1, axis2=2) / 3, rtol=1e-10)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_joint_rotates_with_structure(seed):
    """Sigma -> R Sigma R^T for every residue rotates the whole joint, block by block."""
    rng = np.random.default_rng(seed)
    dyn = random_dynamics(rng, 6)
    r = random_rotation(rng)
    rot = Dynamics(dyn.mean @ r.T, r @ dyn.marginals @ r.T, dyn.coupling, dyn.residues)
    big = np.kron(np.eye(6), r)
    np.testing.assert_allclose(rot.joint(), big @ dyn.joint() @ big.T, atol=1e-10)


def test_sample_covariance_converges_to_joint():
    rng = np.random.default_rng(0)
    dyn = random_dynamics(rng, 5)
    n = 20_000
    x = dyn.sample(n, seed=1).reshape(n, 15)
    np.testing.assert_allclose(x.mean(axis=0), dyn.mean.ravel(), atol=5 * np.sqrt(np.diag(dyn.joint()).max() / n))
    emp = np.cov(x, rowvar=False)
    joint = dyn.joint()
    # Monte Carlo standard error of a sample covariance entry: sqrt((S_aa S_bb + S_ab^2) / n)
    se = np.sqrt((np.outer(np.diag(joint), np.diag(joint)) + joint**2) / n)
    z = np.abs(emp - joint) / se
    assert z.max() < 5.0, z.max()
    # and a wrong covariance (no coupling) is detectably different
    indep = np.kron(np.eye(5), np.ones((3, 3))) * joint
    assert (np.abs(emp - indep) / se).max() > 5.0


def test_sample_shapes_seed_and_amplitude():
    dyn = random_dynamics(np.random.default_rng(1), 7)
    a = dyn.sample(4, seed=3)
    assert a.shape == (4, 7, 3)
    np.testing.assert_array_equal(a, dyn.sample(4, seed=3))
    b = dyn.sample(4, seed=3, amplitude=2.0)
    np.testing.assert_allclose(b - dyn.mean, 2 * (a - dyn.mean))
    with pytest.raises(InputError, match="positive integer"):
        dyn.sample(0)
    with pytest.raises(InputError, match="amplitude"):
        dyn.sample(2, amplitude=float("nan"))


def test_correlation_and_rmsf():
    dyn = random_dynamics(np.random.default_rng(2), 9)
    np.testing.assert_allclose(np.diag(dyn.correlation), 1.0)
    assert np.abs(dyn.correlation).max() <= 1 + 1e-12
    np.testing.assert_allclose(dyn.rmsf**2, np.trace(dyn.marginals, axis1=1, axis2=2))
    np.testing.assert_allclose(dyn.bfactors, 8 * np.pi**2 / 3 * dyn.rmsf**2)


def test_psd_coupling_with_singular_correlation_samples():
    """A rank-deficient coupling (as from few MD frames) still samples."""
    rng = np.random.default_rng(4)
    n = 10
    b = rng.standard_normal((n, 3))
    coup = b @ b.T  # rank 3
    coup[np.diag_indices(n)] += 1e-12
    marg = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    dyn = Dynamics(np.zeros((n, 3)), marg, coup, [("A", i, "", "GLY") for i in range(n)])
    x = dyn.sample(3, seed=0)
    assert np.all(np.isfinite(x))


def test_save_load_round_trip_and_names(tmp_path):
    dyn = random_dynamics(np.random.default_rng(5), 8, model_name="anm")
    dyn = Dynamics(dyn.mean, dyn.marginals, dyn.coupling,
                   [Residue("B", 10 + i, "A" if i == 3 else "", "GLY") for i in range(8)], "anm")
    path = dyn.save(tmp_path / "x.npz")
    with np.load(path) as z:
        assert sorted(z.files) == sorted(["mean", "marginals", "coupling", "residue_chain", "residue_number",
                                          "residue_icode", "residue_name", "model_name"])
    back = Dynamics.load(path)
    np.testing.assert_array_equal(back.marginals, dyn.marginals)
    np.testing.assert_array_equal(back.coupling, dyn.coupling)
    np.testing.assert_array_equal(back.mean, dyn.mean)
    assert back.residues == dyn.residues
    assert back.model_name == "anm" and not back.isotropic
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


def test_isotropic_flag_survives_save(tmp_path):
    n = 4
    iso = Dynamics(np.zeros((n, 3)), np.eye(3) * np.arange(1, n + 1)[:, None, None], np.eye(n),
                   [("A", i, "", "GLY") for i in range(n)], "resaxial", isotropic=True)
    assert Dynamics.load(iso.save(tmp_path / "iso.npz")).isotropic


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable .npz"):
        Dynamics.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(InputError, match="missing arrays mean"):
        Dynamics.load(other)


@pytest.mark.parametrize("what, match", [
    ("nan_mean", "mean contains NaN"),
    ("shape", "marginals must have shape"),
    ("asym", "marginals is not symmetric"),
    ("not_spd", r"marginals\[2\] is not positive definite"),
    ("neg_coupling", "coupling is not positive semi-definite"),
    ("residues", "residues has 3 entries"),
])
def test_validation(what, match):
    n = 4
    mean = np.zeros((n, 3))
    marg = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    coup = np.eye(n)
    res = [("A", i, "", "GLY") for i in range(n)]
    if what == "nan_mean":
        mean[1, 1] = np.nan
    elif what == "shape":
        marg = marg[:, :2]
    elif what == "asym":
        marg[1, 0, 1] = 0.5
    elif what == "not_spd":
        marg[2] = np.diag([1.0, 1.0, -1.0])
    elif what == "neg_coupling":
        coup = np.array([[1, 2, 0, 0], [2, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    elif what == "residues":
        res = res[:3]
    with pytest.raises(ShapeError, match=match):
        Dynamics(mean, marg, coup, res)


def test_arrays_are_read_only():
    dyn = random_dynamics(np.random.default_rng(6), 3)
    with pytest.raises(ValueError):
        dyn.marginals[0, 0, 0] = 5.0
