"""Anisotropic Network Model (ANM): the physics baseline (DESIGN.md section 3).

C-alpha atoms joined by Hookean springs of constant gamma within a cutoff
(15 Å).  The Hessian H (3N x 3N) has six exact zero modes (rigid translations and
rotations); the covariance is its pseudo-inverse without them, in units of
kT / gamma (Å² when gamma is in kT/Å²), optionally rescaled to fit the input's
B-factors.

Speed: instead of a full eigendecomposition we use that the rigid-body space Q
(3N x 6, orthonormal) is known analytically.  H and Q Q^T act on orthogonal
subspaces, so

    pinv(H) = inv(H + a Q Q^T) - Q Q^T / a

and the inverse of the SPD matrix H + a Q Q^T is one Cholesky factorisation and
one triangular inversion (LAPACK potrf/potri), several times cheaper than eigh.
When the network is not connected (more than six zero modes) the Cholesky fails
and we fall back to the eigendecomposition, dropping every zero mode as ProDy does.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
from scipy.spatial import cKDTree

from .errors import InputError, ShapeError
from .gaussian import BFACTOR_PER_MSF, Dynamics, coupling_from_joint, marginals_from_joint
from .structure import ProteinChain

__all__ = ["anm_hessian", "rigid_body_basis", "anm_covariance", "predict_anm", "ANM_MAX_RESIDUES"]

#: Above this many residues the dense 3N x 3N covariance (8 * 9 N^2 bytes) gets
#: impractical on a workstation: 5000 residues = 1.8 GB per copy.
ANM_MAX_RESIDUES = 5000


def anm_hessian(coords: np.ndarray, cutoff: float = 15.0, gamma: float = 1.0) -> np.ndarray:
    """ANM Hessian of C-alpha coordinates.

    Parameters
    ----------
    coords : ndarray, shape (N, 3), Å
    cutoff : float, Å
        Pairs closer than this (inclusive) are joined by a spring.
    gamma : float
        Spring constant, kT / Å².

    Returns
    -------
    ndarray, shape (3N, 3N)
        Super-element (i, j) = -gamma d d^T / |d|^2 for i != j in contact,
        (i, i) = minus the sum of its row's off-diagonal super-elements.
    """
    coords = np.asarray(coords, dtype=np.float64)
    n = len(coords)
    pairs = cKDTree(coords).query_pairs(cutoff, output_type="ndarray")  # [P, 2]
    i, j = pairs[:, 0], pairs[:, 1]
    d = coords[j] - coords[i]  # [P, 3]
    d2 = np.einsum("pa,pa->p", d, d)
    if np.any(d2 == 0):
        raise InputError("two C-alpha atoms share the same position; the ANM is undefined")
    blocks = -gamma * d[:, :, None] * d[:, None, :] / d2[:, None, None]  # [P, 3, 3]
    h = np.zeros((n, 3, n, 3))
    h[i, :, j, :] = blocks
    h[j, :, i, :] = blocks
    diag = np.zeros((n, 3, 3))
    np.add.at(diag, i, -blocks)
    np.add.at(diag, j, -blocks)
    idx = np.arange(n)
    h[idx, :, idx, :] = diag
    return h.reshape(3 * n, 3 * n)


def rigid_body_basis(coords: np.ndarray) -> np.ndarray:
    """Orthonormal basis of rigid translations and infinitesimal rotations.

    Parameters
    ----------
    coords : ndarray, shape (N, 3), Å

    Returns
    -------
    ndarray, shape (3N, 6)
    """
    coords = np.asarray(coords, dtype=np.float64)
    n = len(coords)
    x = coords - coords.mean(axis=0)
    basis = np.zeros((n, 3, 6))
    for a in range(3):
        basis[:, a, a] = 1.0
        e = np.zeros(3)
        e[a] = 1.0
        basis[:, :, 3 + a] = np.cross(e, x)  # rotation about axis a
    q, _ = np.linalg.qr(basis.reshape(3 * n, 6))
    return q


def anm_covariance(coords: np.ndarray, cutoff: float = 15.0, gamma: float = 1.0) -> np.ndarray:
    """ANM covariance: pseudo-inverse of the Hessian without its zero modes.

    Parameters
    ----------
    coords : ndarray, shape (N, 3), Å
    cutoff : float, Å
    gamma : float, kT / Å²

    Returns
    -------
    ndarray, shape (3N, 3N), in units of kT / gamma (Å² for gamma in kT/Å²)
        Equal to ProDy's ``calcCovariance`` of an ``ANM`` with all non-zero modes.
    """
    coords = np.asarray(coords, dtype=np.float64)
    n = len(coords)
    if n < 3:
        raise InputError(f"the ANM needs at least 3 residues, got {n}")
    if n > ANM_MAX_RESIDUES:
        raise InputError(
            f"chain has {n} residues; the dense ANM is limited to {ANM_MAX_RESIDUES} "
            f"(its covariance would need {72 * n * n / 1e9:.1f} GB); select a chain or domain"
        )
    hess = anm_hessian(coords, cutoff, gamma)
    q = rigid_body_basis(coords)
    shift = float(np.trace(hess)) / (3 * n)  # a typical eigenvalue: keeps the shifted matrix well conditioned
    rigid = q @ q.T  # [3N, 3N] projector onto the rigid-body modes, used twice below
    shifted = hess + shift * rigid
    c, info = scipy.linalg.lapack.dpotrf(shifted, lower=1, clean=0, overwrite_a=1)
    if info == 0:
        inv, info = scipy.linalg.lapack.dpotri(c, lower=1, overwrite_c=1)
    if info == 0:
        inv = np.tril(inv) + np.tril(inv, -1).T
        cov = inv - rigid / shift
        # a near-singular (barely connected) network gives a badly conditioned inverse:
        # trust Cholesky only when no mode is softer than 1e-8 of a typical eigenvalue
        # (proteins sit near 1e-3); otherwise eigh separates the near-zero modes
        if np.all(np.isfinite(cov)) and np.max(np.diag(cov)) * shift < 1e8:
            return cov
    return _anm_covariance_eigh(hess)


def _anm_covariance_eigh(hess: np.ndarray, zero_tol: float = 1e-6) -> np.ndarray:
    w, v = scipy.linalg.eigh(hess)
    keep = w > zero_tol * max(w[-1], 1.0)
    n_zero = int((~keep).sum())
    if n_zero > 6:
        warnings.warn(
            f"ANM network has {n_zero} zero modes (6 expected): parts of the chain are further "
            "apart than the cutoff and move independently; their relative motion is left out",
            stacklevel=3,
        )
    v = v[:, keep]
    return (v / w[keep]) @ v.T


def predict_anm(
    chain: ProteinChain,
    cutoff: float = 15.0,
    gamma: float = 1.0,
    scale: str | float = "relative",
) -> Dynamics:
    """ANM dynamics of a chain.

    Parameters
    ----------
    chain : ProteinChain
    cutoff : float, Å
    gamma : float, kT / Å²
    scale : {"relative", "bfactors"} or float
        ``"relative"``: covariance in kT / gamma units (gamma = 1 gives a
        relative scale, not a physical one).  ``"bfactors"``: one factor s,
        least squares through the origin, so that (8 pi^2/3) s tr(Sigma_i)
        matches the file's C-alpha B-factors.  A float multiplies the covariance.

    Returns
    -------
    Dynamics
        ``model_name`` is ``"anm"``.
    """
    cov = anm_covariance(chain.ca, cutoff=cutoff, gamma=gamma)
    marg = marginals_from_joint(cov)
    if isinstance(scale, str):
        if scale == "relative":
            factor = 1.0
        elif scale == "bfactors":
            factor = _bfactor_scale(chain, marg)
        else:
            raise InputError(f"scale must be 'relative', 'bfactors' or a number, got {scale!r}")
    else:
        factor = float(scale)
        if not np.isfinite(factor) or factor <= 0:
            raise InputError(f"scale must be a positive number, got {scale!r}")
    try:
        return Dynamics(
            mean=chain.ca,
            marginals=factor * marg,
            coupling=factor * coupling_from_joint(cov),
            residues=chain.residues,
            model_name="anm",
        )
    except ShapeError as exc:
        raise InputError(
            f"{chain.source}: the ANM of these {len(chain)} residues is degenerate ({exc}); "
            "too few residues or contacts for a 3D elastic network"
        ) from None


def _bfactor_scale(chain: ProteinChain, marginals: np.ndarray) -> float:
    b_exp = chain.bfactors
    if not np.all(np.isfinite(b_exp)) or np.ptp(b_exp) <= 0 or np.any(b_exp < 0):
        raise InputError(
            f"{chain.source}: C-alpha B-factors are missing or constant; use scale='relative'"
        )
    b_pred = BFACTOR_PER_MSF * np.trace(marginals, axis1=1, axis2=2)
    return float(np.dot(b_exp, b_pred) / np.dot(b_pred, b_pred))
