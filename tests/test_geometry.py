"""Ellipsoid meshes (dynaprot_viz/geometry.py): semi-axes, orientation, normals, sizes."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.spatial.transform import Rotation
from scipy.stats import chi2

from dynaprot_viz import InputError
from dynaprot_viz.geometry import (
    ellipsoid_axes,
    ellipsoid_mesh,
    level_of_detail,
    mahalanobis_radius,
    unit_icosphere,
)


def test_mahalanobis_radius():
    assert mahalanobis_radius(0.5) == pytest.approx(1.5382, abs=1e-4)  # PyMOL's default ellipsoid
    assert mahalanobis_radius(0.9) ** 2 == pytest.approx(chi2.ppf(0.9, 3))
    with pytest.raises(InputError, match="probability"):
        mahalanobis_radius(1.0)


@pytest.mark.parametrize("s", [0, 1, 2, 3])
def test_icosphere(s):
    v, f = unit_icosphere(s)
    assert v.shape == (10 * 4**s + 2, 3) and f.shape == (20 * 4**s, 3)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0)
    # faces wind counter-clockwise seen from outside: normal . centroid > 0
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    assert np.all(np.einsum("fa,fa->f", np.cross(b - a, c - a), a + b + c) > 0)
    # closed surface: every edge in exactly two faces
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)


def test_known_covariance_semi_axes_and_orientation():
    rot = Rotation.from_euler("zyx", [30, 20, 10], degrees=True).as_matrix()
    sd = np.array([0.5, 1.0, 2.0])  # Å along rot's columns
    sigma = rot @ np.diag(sd**2) @ rot.T
    centre = np.array([10.0, -3.0, 4.0])
    p, scale = 0.5, 1.5
    mesh = ellipsoid_mesh(centre[None], sigma[None], probability=p, scale=scale, subdivisions=3)
    k = np.sqrt(chi2.ppf(p, 3)) * scale
    np.testing.assert_allclose(mesh.radii[0], k * sd, rtol=1e-12)
    # axes match the rotation's columns up to sign
    np.testing.assert_allclose(np.abs(np.einsum("ab,ab->b", mesh.axes[0], rot)), 1.0, atol=1e-12)
    d = mesh.vertices.astype(np.float64) - centre
    # every vertex on the surface d^T Sigma^-1 d = k^2
    maha = np.einsum("va,ab,vb->v", d, np.linalg.inv(sigma), d)
    np.testing.assert_allclose(maha, k**2, rtol=1e-5)
    # extent along each axis equals the semi-axis (icosphere vertices include the poles only
    # approximately, so compare the maximum projection with a tolerance of the mesh resolution)
    proj = np.abs(d @ rot)
    np.testing.assert_allclose(proj.max(axis=0), k * sd, rtol=0.02)
    # normals are the gradient of the quadric: parallel to Sigma^-1 d, pointing outward
    g = d @ np.linalg.inv(sigma)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    np.testing.assert_allclose(np.einsum("va,va->v", g, mesh.normals), 1.0, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_random_covariances_are_on_surface(seed):
    rng = np.random.default_rng(seed)
    n = 7
    a = rng.normal(size=(n, 3, 3))
    sigma = a @ np.swapaxes(a, 1, 2) + 0.05 * np.eye(3)
    centres = rng.normal(size=(n, 3)) * 10
    mesh = ellipsoid_mesh(centres, sigma, probability=0.7, subdivisions=1, colors=rng.random((n, 3)))
    k2 = chi2.ppf(0.7, 3)
    for i in range(n):
        v, nrm, f = mesh.ellipsoid(i)
        d = v.astype(np.float64) - centres[i]
        np.testing.assert_allclose(np.einsum("va,ab,vb->v", d, np.linalg.inv(sigma[i]), d), k2, rtol=2e-4)
        assert f.min() == 0 and f.max() == mesh.n_vertices - 1
    assert np.allclose(np.linalg.det(mesh.axes), 1.0)
    assert mesh.vertex_colors().shape == (n * mesh.n_vertices, 4)
    assert np.all(mesh.colors[:, 3] == 1)


def test_level_of_detail_and_chunks():
    assert level_of_detail(50) > level_of_detail(1000) >= level_of_detail(5000)
    mesh = ellipsoid_mesh(np.zeros((1000, 3)), np.repeat(np.eye(3)[None], 1000, 0))
    assert len(mesh) == 1000 and mesh.faces.dtype == np.int32
    assert mesh.faces.max() == len(mesh.vertices) - 1
    chunks = list(mesh.chunks(64000))
    assert chunks[0][0] == 0 and chunks[-1][1] == 1000
    assert all((b - a) * mesh.n_vertices <= 64000 for a, b in chunks)


def test_bad_input():
    with pytest.raises(InputError, match="marginals must have shape"):
        ellipsoid_mesh(np.zeros((2, 3)), np.zeros((3, 3, 3)))
    with pytest.raises(InputError, match="scale"):
        ellipsoid_axes(np.eye(3)[None], scale=0)
    with pytest.raises(InputError, match="colors"):
        ellipsoid_mesh(np.zeros((1, 3)), np.eye(3)[None], colors=np.ones((2, 3)))
    with pytest.raises(InputError, match="subdivisions"):
        unit_icosphere(9)
