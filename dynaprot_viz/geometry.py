"""Ellipsoid meshes of residue marginals, shared by every renderer (DESIGN.md section 1).

The ellipsoid of residue i at probability p is the set of displacements d with
d^T Sigma_i^{-1} d = k_p^2, k_p = sqrt(chi2_3.ppf(p)) (the Mahalanobis radius:
the ellipsoid contains the C-alpha with probability p; PyMOL's
``ellipsoid_probability``, default 0.5, k_0.5 = 1.538).  With Sigma_i = V diag(w) V^T
its semi-axes are k_p sqrt(w_a) along the eigenvectors V[:, a].

A unit icosphere u (level of detail chosen from N) is mapped to
x = c_i + V diag(r) u with r = scale k_p sqrt(w); the normals of that surface are
V diag(1/r) u, normalised.  Everything is one batched eigendecomposition and a few
einsums: 1,000 residues take a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .core.errors import InputError

__all__ = [
    "EllipsoidMesh",
    "ellipsoid_mesh",
    "ellipsoid_axes",
    "mahalanobis_radius",
    "unit_icosphere",
    "level_of_detail",
    "DEFAULT_PROBABILITY",
]

#: PyMOL's default ``ellipsoid_probability``
DEFAULT_PROBABILITY = 0.5


def mahalanobis_radius(probability: float = DEFAULT_PROBABILITY) -> float:
    """k_p = sqrt(chi2_3.ppf(p)): radius, in standard deviations, of the p-ellipsoid in 3D."""
    from scipy.stats import chi2

    p = float(probability)
    if not 0.0 < p < 1.0:
        raise InputError(f"probability must be in (0, 1), got {probability!r}")
    return float(np.sqrt(chi2.ppf(p, 3)))


@lru_cache(maxsize=8)
def _icosphere(subdivisions: int):
    t = (1.0 + 5**0.5) / 2.0
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t),
             (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
             (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
             (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(v, dtype=np.float64) / np.linalg.norm(v) for v in verts]
    for _ in range(subdivisions):
        cache: dict = {}
        new_faces = []

        def midpoint(a, b):
            key = (a, b) if a < b else (b, a)
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            new_faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new_faces
    v = np.array(verts)
    f = np.array(faces, dtype=np.int64)
    v.setflags(write=False)
    f.setflags(write=False)
    return v, f


def unit_icosphere(subdivisions: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere: vertices (V, 3) on the sphere and faces (F, 3) int, counter-clockwise seen from outside.

    V = 10 4^s + 2, F = 20 4^s for s subdivisions (12/20, 42/80, 162/320, 642/1280).
    """
    if int(subdivisions) != subdivisions or not 0 <= subdivisions <= 5:
        raise InputError(f"subdivisions must be an integer in 0..5, got {subdivisions!r}")
    return _icosphere(int(subdivisions))


def level_of_detail(n: int) -> int:
    """Icosphere subdivisions for n ellipsoids: finer for few, coarser for many."""
    if n <= 200:
        return 2  # 162 vertices each
    if n <= 2500:
        return 1  # 42 vertices each
    return 0  # 12 vertices each


def ellipsoid_axes(marginals, probability: float = DEFAULT_PROBABILITY, scale: float = 1.0):
    """Semi-axes and orientations of the p-ellipsoids.

    Parameters
    ----------
    marginals : array, shape (N, 3, 3), Å²
    probability : float in (0, 1)
    scale : float > 0
        Extra factor on every semi-axis (exaggeration for display).

    Returns
    -------
    radii : ndarray, shape (N, 3), Å
        Semi-axis lengths, ascending.
    axes : ndarray, shape (N, 3, 3)
        Columns are the unit axis directions (eigenvectors), right-handed.
    """
    m = np.asarray(marginals, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != (3, 3):
        raise InputError(f"marginals must have shape (N, 3, 3), got {m.shape}")
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f"scale must be a positive number, got {scale!r}")
    w, v = np.linalg.eigh(m)
    if np.any(w < 0) and np.min(w) < -1e-9 * np.max(np.abs(w)):
        raise InputError("marginals must be positive semi-definite")
    det = np.linalg.det(v)
    v[:, :, 0] *= np.sign(det)[:, None]  # proper rotations
    radii = scale * mahalanobis_radius(probability) * np.sqrt(np.clip(w, 0.0, None))
    return radii, v


@dataclass(frozen=True, eq=False)
class EllipsoidMesh:
    """Triangle meshes of N ellipsoids, concatenated.

    Attributes
    ----------
    vertices : ndarray, shape (N * V, 3), float32, Å
    normals : ndarray, shape (N * V, 3), float32, unit
    faces : ndarray, shape (N * F, 3), int32
        Indices into ``vertices`` (global).
    colors : ndarray, shape (N, 4), float32, RGBA in 0..1, or None
        One colour per ellipsoid (``vertex_colors`` expands it).
    centers : ndarray, shape (N, 3), Å
    radii : ndarray, shape (N, 3), Å, ascending
    axes : ndarray, shape (N, 3, 3), columns = axis directions
    n_vertices, n_faces : int
        V and F, per ellipsoid.
    probability, scale : float
    """

    vertices: np.ndarray
    normals: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None
    centers: np.ndarray
    radii: np.ndarray
    axes: np.ndarray
    n_vertices: int
    n_faces: int
    probability: float
    scale: float

    def __len__(self) -> int:
        return len(self.centers)

    def vertex_colors(self) -> np.ndarray:
        """Per-vertex RGBA, shape (N * V, 4)."""
        if self.colors is None:
            raise ValueError("this mesh has no colours")
        return np.repeat(self.colors, self.n_vertices, axis=0)

    def ellipsoid(self, i: int):
        """Vertices (V, 3), normals (V, 3) and local faces (F, 3) of ellipsoid ``i``."""
        v0, f0 = i * self.n_vertices, i * self.n_faces
        sl = slice(v0, v0 + self.n_vertices)
        return self.vertices[sl], self.normals[sl], self.faces[f0:f0 + self.n_faces] - v0

    def chunks(self, max_vertices: int = 64000):
        """Groups of whole ellipsoids with at most ``max_vertices`` vertices each (WebGL 16-bit indices).

        Yields (first, stop): ellipsoid index ranges.
        """
        per = max(1, max_vertices // self.n_vertices)
        for start in range(0, len(self), per):
            yield start, min(start + per, len(self))


def ellipsoid_mesh(
    centers,
    marginals,
    probability: float = DEFAULT_PROBABILITY,
    scale: float = 1.0,
    subdivisions: int | None = None,
    colors=None,
) -> EllipsoidMesh:
    """Triangle meshes of the p-ellipsoids of N marginals.

    Parameters
    ----------
    centers : array, shape (N, 3), Å
    marginals : array, shape (N, 3, 3), Å²
    probability : float in (0, 1)
        Probability mass inside each ellipsoid (Mahalanobis radius
        sqrt(chi2_3.ppf(p))); 0.5 by default, as PyMOL.
    scale : float
        Extra factor on the semi-axes.
    subdivisions : int, optional
        Icosphere level (0..5); default :func:`level_of_detail` of N.
    colors : array (N, 3) or (N, 4) in 0..1, optional
        One colour per ellipsoid.

    Returns
    -------
    EllipsoidMesh
    """
    c = np.asarray(centers, dtype=np.float64)
    n = len(c)
    if c.ndim != 2 or c.shape[1] != 3:
        raise InputError(f"centers must have shape (N, 3), got {c.shape}")
    m = np.asarray(marginals, dtype=np.float64)
    if m.shape != (n, 3, 3):
        raise InputError(f"marginals must have shape ({n}, 3, 3), got {m.shape}")
    radii, axes = ellipsoid_axes(m, probability, scale)
    sub = level_of_detail(n) if subdivisions is None else subdivisions
    u, f = unit_icosphere(sub)
    nv, nf = len(u), len(f)
    # x = c + V diag(r) u ; normal = V diag(1/r) u
    a = axes * radii[:, None, :]  # [N, 3, 3]
    verts = c[:, None, :] + np.einsum("nab,vb->nva", a, u)  # [N, V, 3]
    inv_r = np.divide(1.0, radii, out=np.zeros_like(radii), where=radii > 0)
    nrm = np.einsum("nab,vb->nva", axes * inv_r[:, None, :], u)  # [N, V, 3]
    nrm /= np.maximum(np.linalg.norm(nrm, axis=2, keepdims=True), 1e-30)
    faces = (f[None, :, :] + (np.arange(n) * nv)[:, None, None]).reshape(-1, 3)
    if colors is not None:
        col = np.asarray(colors, dtype=np.float32)
        if col.shape == (n, 3):
            col = np.concatenate([col, np.ones((n, 1), np.float32)], axis=1)
        if col.shape != (n, 4):
            raise InputError(f"colors must have shape ({n}, 3) or ({n}, 4), got {col.shape}")
    else:
        col = None
    return EllipsoidMesh(
        vertices=verts.reshape(-1, 3).astype(np.float32),
        normals=nrm.reshape(-1, 3).astype(np.float32),
        faces=faces.astype(np.int32),
        colors=col,
        centers=c,
        radii=radii,
        axes=axes,
        n_vertices=nv,
        n_faces=nf,
        probability=float(probability),
        scale=float(scale),
    )
