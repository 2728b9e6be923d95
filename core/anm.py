"""Anisotropic Network Model (ANM): the physics baseline (DESIGN.md section 3).

C-alpha atoms joined by Hookean springs of constant gamma within a cutoff
(15 Å).  The Hessian H (3N x 3N) has six exact zero modes (rigid translations and
rotations); the covariance is its pseudo-inverse without them, in units of
kT / gamma (Å² when gamma is in kT/Å²), optionally rescaled to fit the input's
B-factors or, with ``scale="amplitude"``, to absolute Å² by the shipped amplitude
model (``dynaprot_viz/weights/anm-amplitude.json``, fitted on ATLAS MD: see its
model card).

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

import json
import warnings
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import scipy.linalg
from scipy.spatial import cKDTree

from .errors import InputError, ShapeError
from .gaussian import BFACTOR_PER_MSF, RELATIVE_SUFFIX, Dynamics, coupling_from_joint, marginals_from_joint
from .structure import ProteinChain

__all__ = [
    "anm_hessian",
    "rigid_body_basis",
    "anm_covariance",
    "predict_anm",
    "ANM_MAX_RESIDUES",
    "AMPLITUDE_FEATURES",
    "AMPLITUDE_MODEL_FILE",
    "load_amplitude_model",
    "amplitude_features",
    "amplitude_scale",
]

#: Above this many residues the dense 3N x 3N covariance (8 * 9 N^2 bytes) gets
#: impractical on a workstation: 5000 residues = 1.8 GB per copy.
ANM_MAX_RESIDUES = 5000

#: The shipped amplitude model (JSON, in the package ``dynaprot_viz.weights``).
AMPLITUDE_MODEL_FILE = "anm-amplitude.json"
#: Features the amplitude model may use, all natural logs; see :func:`amplitude_features`.
AMPLITUDE_FEATURES = ("ln_mean_rmsf_rel", "ln_n_residues", "ln_radius_of_gyration", "ln_mean_contacts")


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
    scale: str | float | None = None,
) -> Dynamics:
    """ANM dynamics of a chain.

    Parameters
    ----------
    chain : ProteinChain
    cutoff : float, Å
    gamma : float, kT / Å²
    scale : {None, "amplitude", "relative", "bfactors"} or float
        ``None`` (default): ``"amplitude"`` when the shipped amplitude model covers
        ``cutoff`` (15 Å), else ``"relative"`` with a warning.  ``"amplitude"``: one
        factor s per chain from the shipped amplitude model (:func:`amplitude_scale`),
        so that marginals and coupling are in Å² of 300 K all-atom MD (ATLAS,
        CHARMM36m); the result does not depend on ``gamma``; only the calibration's
        cutoff (15 Å) is accepted.  ``"relative"``: covariance in kT / gamma units
        (gamma = 1 gives a relative scale, not a physical one).  ``"bfactors"``: one
        factor s, least squares through the origin, so that (8 pi^2/3) s tr(Sigma_i)
        matches the file's C-alpha B-factors.  A float multiplies the relative
        covariance (its unit is then the caller's).

    Returns
    -------
    Dynamics
        ``model_name`` ``"anm"`` (Å²: amplitude model, B-factor fit or a given
        factor) or ``"anm-relative"`` (kT/gamma units; :attr:`Dynamics.relative_units`
        is then True and every view labels the unit as relative).
    """
    if scale is None:
        model = load_amplitude_model()
        if abs(float(cutoff) - model["anm"]["cutoff_A"]) <= 1e-9:
            scale = "amplitude"
        else:
            warnings.warn(f"ANM cutoff {cutoff:g} Å: the amplitude model is calibrated at "
                          f"{model['anm']['cutoff_A']:g} Å only; relative units (kT/gamma)", stacklevel=2)
            scale = "relative"
    if isinstance(scale, str) and scale == "amplitude":
        # fail before the O(N^3) work when the model cannot apply
        _check_amplitude_cutoff(load_amplitude_model(), cutoff)
    cov = anm_covariance(chain.ca, cutoff=cutoff, gamma=gamma)
    marg = marginals_from_joint(cov)
    name = "anm"
    if isinstance(scale, str):
        if scale == "relative":
            factor = 1.0
            name = "anm" + RELATIVE_SUFFIX
        elif scale == "bfactors":
            factor = _bfactor_scale(chain, marg)
        elif scale == "amplitude":
            factor = amplitude_scale(chain.ca, marg, cutoff=cutoff, gamma=gamma)
        else:
            raise InputError(f"scale must be 'relative', 'bfactors', 'amplitude' or a number, got {scale!r}")
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
            model_name=name,
        )
    except ShapeError as exc:
        raise InputError(
            f"{chain.source}: the ANM of these {len(chain)} residues is degenerate ({exc}); "
            "too few residues or contacts for a 3D elastic network"
        ) from None


# ------------------------------------------------------------------ amplitude model
def load_amplitude_model(path=None) -> dict:
    """The amplitude model: ``ln(mean RMSF, Å) = intercept + sum_k coef_k feature_k``.

    Parameters
    ----------
    path : path, optional
        A model JSON; default the shipped ``dynaprot_viz/weights/anm-amplitude.json``.

    Returns
    -------
    dict
        At least ``intercept`` (float), ``coefficients`` ({feature: float}, features
        from :data:`AMPLITUDE_FEATURES`) and ``anm`` ({"cutoff_A": float}); the rest is
        provenance.

    Raises
    ------
    InputError
        The file is missing, not JSON, or lacks those entries / has non-finite values.
    """
    if path is None:
        return _shipped_amplitude_model()
    return _read_amplitude_model(Path(path))


@lru_cache(maxsize=1)
def _shipped_amplitude_model() -> dict:
    return _read_amplitude_model(Path(str(resources.files("dynaprot_viz.weights").joinpath(AMPLITUDE_MODEL_FILE))))


def _read_amplitude_model(path: Path) -> dict:
    try:
        model = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"{path}: cannot read the ANM amplitude model ({exc.strerror})") from None
    except ValueError as exc:
        raise InputError(f"{path}: the ANM amplitude model is not valid JSON ({exc})") from None
    try:
        intercept = float(model["intercept"])
        coefs = {str(k): float(v) for k, v in dict(model["coefficients"]).items()}
        cutoff = float(model["anm"]["cutoff_A"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: the ANM amplitude model needs 'intercept', 'coefficients' and "
                         "'anm': {'cutoff_A': ...}") from None
    unknown = sorted(set(coefs) - set(AMPLITUDE_FEATURES))
    if unknown:
        raise InputError(f"{path}: unknown amplitude features {unknown}; known: {list(AMPLITUDE_FEATURES)}")
    if not all(np.isfinite([intercept, cutoff, *coefs.values()])) or cutoff <= 0:
        raise InputError(f"{path}: the ANM amplitude model has non-finite or non-positive values")
    model["intercept"], model["coefficients"], model["anm"]["cutoff_A"] = intercept, coefs, cutoff
    return model


def _check_amplitude_cutoff(model: dict, cutoff: float) -> None:
    if abs(float(cutoff) - model["anm"]["cutoff_A"]) > 1e-9:
        raise InputError(f"scale='amplitude' is calibrated for the ANM cutoff {model['anm']['cutoff_A']:g} Å, "
                         f"got cutoff={cutoff:g}; use that cutoff or scale='relative'")


def amplitude_features(ca: np.ndarray, marginals: np.ndarray, cutoff: float = 15.0,
                       gamma: float = 1.0) -> dict:
    """The amplitude model's features of one chain.

    Parameters
    ----------
    ca : ndarray, shape (N, 3), Å
        C-alpha coordinates.
    marginals : ndarray, shape (N, 3, 3), kT / gamma
        The ANM marginals of ``ca`` at this ``cutoff`` and ``gamma`` (relative scale).
    cutoff : float, Å
    gamma : float, kT / Å²

    Returns
    -------
    dict of float, natural logs:
        ``ln_mean_rmsf_rel``: mean_i sqrt(tr Sigma_i) at gamma = 1 (the marginals times
        gamma, so the feature does not depend on gamma); ``ln_n_residues``: N;
        ``ln_radius_of_gyration``: of the C-alphas, Å; ``ln_mean_contacts``: mean number
        of other C-alphas within ``cutoff`` (springs per residue).
    """
    ca = np.asarray(ca, dtype=np.float64)
    marginals = np.asarray(marginals, dtype=np.float64)
    n = len(ca)
    if ca.ndim != 2 or ca.shape[1] != 3 or marginals.shape != (n, 3, 3):
        raise ShapeError(f"ca must be (N, 3) and marginals (N, 3, 3), got {ca.shape} and {marginals.shape}")
    rmsf_g1 = np.sqrt(np.clip(np.trace(marginals, axis1=1, axis2=2), 0.0, None) * float(gamma))
    rg = np.sqrt(np.mean(np.sum((ca - ca.mean(axis=0)) ** 2, axis=1)))
    contacts = 2.0 * len(cKDTree(ca).query_pairs(cutoff)) / n
    return {
        "ln_mean_rmsf_rel": float(np.log(rmsf_g1.mean())),
        "ln_n_residues": float(np.log(n)),
        "ln_radius_of_gyration": float(np.log(max(rg, 1e-12))),
        "ln_mean_contacts": float(np.log(max(contacts, 1e-12))),
    }


def amplitude_scale(ca: np.ndarray, marginals: np.ndarray, cutoff: float = 15.0, gamma: float = 1.0,
                    model: dict | None = None) -> float:
    """Factor s that takes this chain's ANM covariance to Å² (the amplitude model).

    The model predicts the chain's mean C-alpha RMSF, ``R = exp(intercept + sum_k
    coef_k feature_k)`` Å (:func:`amplitude_features`); s = (R / mean_i
    sqrt(tr Sigma_i))², so that s * Sigma has exactly that mean RMSF.  One factor for
    the whole chain: correlations and the RMSF profile's shape are unchanged.

    Parameters
    ----------
    ca : ndarray, shape (N, 3), Å
    marginals : ndarray, shape (N, 3, 3), kT / gamma
        ANM marginals of ``ca`` at ``cutoff``, ``gamma``.
    cutoff : float, Å
        Must equal the model's calibration cutoff (15 Å).
    gamma : float, kT / Å²
    model : dict, optional
        From :func:`load_amplitude_model`; default the shipped model.

    Returns
    -------
    float
        s, in Å² per unit of the given covariance (positive, finite).
    """
    model = load_amplitude_model() if model is None else model
    _check_amplitude_cutoff(model, cutoff)
    feats = amplitude_features(ca, marginals, cutoff=cutoff, gamma=gamma)
    ln_r = model["intercept"] + sum(c * feats[k] for k, c in model["coefficients"].items())
    mean_rmsf = float(np.mean(np.sqrt(np.clip(np.trace(marginals, axis1=1, axis2=2), 0.0, None))))
    factor = float(np.exp(2.0 * (ln_r - np.log(mean_rmsf)))) if mean_rmsf > 0 else float("nan")
    if not np.isfinite(factor) or factor <= 0:
        raise InputError(f"the ANM amplitude scale is undefined for this chain (mean RMSF {mean_rmsf:.3g})")
    return factor


def _bfactor_scale(chain: ProteinChain, marginals: np.ndarray) -> float:
    b_exp = chain.bfactors
    if not np.all(np.isfinite(b_exp)) or np.ptp(b_exp) <= 0 or np.any(b_exp < 0):
        raise InputError(
            f"{chain.source}: C-alpha B-factors are missing or constant; use scale='relative'"
        )
    b_pred = BFACTOR_PER_MSF * np.trace(marginals, axis1=1, axis2=2)
    return float(np.dot(b_exp, b_pred) / np.dot(b_pred, b_pred))
