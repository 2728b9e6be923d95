"""Cryptic-pocket hotspots (core/pockets.py) on real structures' ANM dynamics."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.spatial.transform import Rotation

import dynaprot_viz as dv
from dynaprot_viz import Dynamics, InputError, Pocket, find_pockets
from dynaprot_viz.core.pockets import hotspot_contrast, segment_ends
from dynaprot_viz.core.errors import ShapeError

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def ubq():
    return dv.predict(DATA / "1ubi.pdb", model="anm")


def plant(dyn: Dynamics, residues, factor: float) -> Dynamics:
    """Scale the displacements of ``residues`` by ``factor``: joint -> D joint D (stays PSD)."""
    s = np.ones(dyn.n_residues)
    s[residues] = factor
    d = np.repeat(s, 3)
    joint = dyn.joint() * d[:, None] * d[None, :]
    return Dynamics.from_joint(joint, dyn.mean, dyn.residues, "planted")


def patch_around(dyn: Dynamics, centre: int, radius: float = 7.0) -> np.ndarray:
    return np.flatnonzero(np.linalg.norm(dyn.mean - dyn.mean[centre], axis=1) < radius)


@pytest.mark.parametrize("centre", [22, 45, 62])
def test_planted_patch_is_top_pocket(ubq, centre):
    planted = patch_around(ubq, centre)
    dyn = plant(ubq, planted, 3.0)
    pockets = find_pockets(dyn, DATA / "1ubi.pdb")
    assert pockets, "no pocket found"
    top = set(pockets[0].residues.tolist())
    inner = set(planted.tolist()) - set(np.flatnonzero(segment_ends(dyn, 3)).tolist())
    # every residue of the top pocket was planted, and it covers most of the planted patch
    assert top <= set(planted.tolist())
    assert len(top & inner) >= 0.6 * len(inner)
    # best first
    assert all(a.score >= b.score for a, b in zip(pockets, pockets[1:]))


def test_pocket_fields(ubq):
    dyn = plant(ubq, patch_around(ubq, 45), 3.0)
    p = find_pockets(dyn)[0]
    k = len(p)
    assert p.residues.shape == (k,) and p.residues.dtype == np.int64
    assert p.directions.shape == (k, 3)
    np.testing.assert_allclose(np.linalg.norm(p.directions, axis=1), 1.0)
    np.testing.assert_allclose(p.centroid, dyn.mean[p.residues].mean(axis=0))
    assert 0 <= p.opening <= 1 and 0 <= p.breathing <= 1
    assert p.opens == (p.opening >= 0.5)
    # directions are the top eigenvectors of the marginals (up to sign)
    w, v = np.linalg.eigh(dyn.marginals[p.residues])
    np.testing.assert_allclose(np.abs(np.einsum("ka,ka->k", v[:, :, 2], p.directions)), 1.0, atol=1e-9)
    assert p.labels(dyn)[0] == dyn.residues[p.residues[0]].label()
    assert "Pocket(" in repr(p)
    with pytest.raises(AttributeError):
        p.score = 1.0


def test_termini_are_not_pockets(ubq):
    # the C-terminal tail of ubiquitin is the most mobile region in ANM
    assert np.argmax(ubq.rmsf) >= 70
    for p in find_pockets(ubq, trim_termini=3):
        assert p.residues.min() >= 3 and p.residues.max() < ubq.n_residues - 3


def test_uniform_flexibility_gives_no_pockets(ubq):
    iso = Dynamics(ubq.mean, np.repeat(np.eye(3)[None], ubq.n_residues, 0), np.eye(ubq.n_residues),
                   ubq.residues, isotropic=True)
    assert find_pockets(iso) == []
    np.testing.assert_allclose(hotspot_contrast(iso), 0.0, atol=1e-12)


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_rotation_translation(seed):
    ubq = dv.predict(DATA / "1ubi.pdb", model="anm")
    dyn = plant(ubq, patch_around(ubq, 22), 3.0)
    rng = np.random.default_rng(seed)
    rot = Rotation.random(random_state=seed).as_matrix()
    t = rng.normal(size=3) * 20
    moved = Dynamics(dyn.mean @ rot.T + t, rot @ dyn.marginals @ rot.T, dyn.coupling, dyn.residues)
    a, b = find_pockets(dyn), find_pockets(moved)
    assert [p.residues.tolist() for p in a] == [p.residues.tolist() for p in b]
    for p, q in zip(a, b):
        assert p.score == pytest.approx(q.score, rel=1e-9)
        np.testing.assert_allclose(q.directions, p.directions @ rot.T, atol=1e-6)
        np.testing.assert_allclose(q.centroid, p.centroid @ rot.T + t, atol=1e-9)
        assert q.breathing == pytest.approx(p.breathing, abs=1e-9)


def test_two_chains(tmp_path):
    dyn = dv.predict(DATA / "1ake.cif", model="anm", chain="A")
    ends = segment_ends(dyn, 2)
    assert ends[:2].all() and ends[-2:].all()
    assert isinstance(find_pockets(dyn), list)


def test_bad_arguments(ubq):
    with pytest.raises(TypeError, match="dynamics must be a Dynamics"):
        find_pockets(ubq.marginals)
    with pytest.raises(InputError, match="quantile"):
        find_pockets(ubq, quantile=1.5)
    with pytest.raises(InputError, match="patch_cutoff"):
        find_pockets(ubq, patch_cutoff=-1)
    with pytest.raises(InputError, match="not in the structure"):
        find_pockets(ubq, DATA / "1ejg.pdb")
    with pytest.raises(ShapeError, match="directions"):
        Pocket(np.array([1, 2]), 1.0, np.ones((3, 3)), np.zeros(3), 0.5, 0.5, np.zeros(2))
