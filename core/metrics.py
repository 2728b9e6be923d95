"""Evaluation metrics (DESIGN.md section 4), per protein; aggregate with :func:`summarize`.

Two families:

* Gaussian metrics, comparing predicted and true dynamics directly: RMSF Pearson r,
  RMWD variance term, symmetric KL variance term (both over the 3x3 marginals),
  band-wise coupling Pearson (over correlation maps).
* AlphaFlow's ensemble metrics (Jing, Berger, Jaakkola 2024, "AlphaFold meets flow
  matching for generating protein ensembles"; repository bjing2016/alphaflow,
  ``scripts/analyze_ensembles.py`` computes the per-target quantities,
  ``scripts/print_analysis.py`` turns them into the table), here on C-alpha
  ensembles of shape (K, N, 3) in Å (AlphaFlow works in nm and multiplies by 10).

AlphaFlow compares a predicted ensemble with an MD trajectory by first drawing, with
``np.random.seed(137)``, ``RAND1 = randint(0, n_md_frames, n_pred_frames)``: a
resample with replacement of the MD frames to the size of the predicted ensemble.
The PCA W2 and contact metrics use those MD frames.  Here ``seed=137`` (the default)
reproduces that draw exactly; ``seed=None`` uses every true frame as it is.

All lengths in Å, covariances in Å².  Every function validates its inputs and raises
:class:`~.errors.InputError` with a one-line message naming the argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.linalg

from .errors import InputError
from .superpose import superpose

__all__ = [
    "rmsf_pearson",
    "rmwd_variance",
    "sym_kl_variance",
    "bandwise_coupling_pearson",
    "pairwise_rmsd",
    "ensemble_rmsf",
    "rmsf_r_global",
    "rmsf_r_per_target",
    "md_pca_w2",
    "joint_pca_w2",
    "weak_contacts_jaccard",
    "transient_contacts_jaccard",
    "summarize",
    "superpose",
    "ALPHAFLOW_SEED",
    "CONTACT_CUTOFF",
    "CONTACT_FRACTION",
]

#: AlphaFlow's seed for resampling MD frames (np.random.seed(137) in analyze_ensembles.py)
ALPHAFLOW_SEED = 137
#: C-alpha contact: distance below 8 Å (AlphaFlow: ``distmat < 0.8`` nm)
CONTACT_CUTOFF = 8.0
#: A contact is weak / transient when broken / formed in more than this fraction of frames
CONTACT_FRACTION = 0.1

_SYM_RTOL = 1e-6
_PSD_RTOL = 1e-8


# ----------------------------------------------------------------------------- validation


def _vector(values, name: str, min_len: int = 1) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.shape[0] < min_len:
        raise InputError(f"{name}: expected a 1-D array of length >= {min_len}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name}: values must be finite (found NaN or inf)")
    return a


def _pair_vectors(a, b, name_a: str, name_b: str, min_len: int = 2):
    x = _vector(a, name_a, min_len)
    y = _vector(b, name_b, min_len)
    if x.shape != y.shape:
        raise InputError(f"{name_b}: expected shape {x.shape} to match {name_a}, got {y.shape}")
    return x, y


def _marginals(mats, name: str, strict: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a (N, 3, 3) batch of symmetric PSD (strict: PD) matrices.

    Returns the symmetrised matrices, their eigenvalues (N, 3) (PSD case: clipped at 0)
    and eigenvectors (N, 3, 3).
    """
    s = np.asarray(mats, dtype=np.float64)
    if s.ndim != 3 or s.shape[1:] != (3, 3) or s.shape[0] == 0:
        raise InputError(f"{name}: expected shape (N, 3, 3) with N >= 1, got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise InputError(f"{name}: values must be finite (found NaN or inf)")
    scale = np.abs(s).max(axis=(1, 2))
    asym = np.abs(s - np.swapaxes(s, 1, 2)).max(axis=(1, 2))
    bad = np.flatnonzero(asym > _SYM_RTOL * np.maximum(scale, np.finfo(float).tiny))
    if bad.size:
        raise InputError(f"{name}: matrix {bad[0]} is not symmetric (|S - S^T| = {asym[bad[0]]:.3g})")
    s = 0.5 * (s + np.swapaxes(s, 1, 2))
    w, v = np.linalg.eigh(s)
    if strict:
        bad = np.flatnonzero(w[:, 0] <= 0.0)
        if bad.size:
            raise InputError(
                f"{name}: matrix {bad[0]} is not positive definite (smallest eigenvalue {w[bad[0], 0]:.3g} Å²)"
            )
    else:
        bad = np.flatnonzero(w[:, 0] < -_PSD_RTOL * np.maximum(w[:, -1], 0.0) - np.finfo(float).tiny)
        if bad.size:
            raise InputError(
                f"{name}: matrix {bad[0]} is not positive semi-definite (smallest eigenvalue {w[bad[0], 0]:.3g} Å²)"
            )
        w = np.clip(w, 0.0, None)
    return s, w, v


def _pair_marginals(a, b, name_a: str, name_b: str, strict: bool):
    sa = _marginals(a, name_a, strict)
    sb = _marginals(b, name_b, strict)
    if sa[0].shape != sb[0].shape:
        raise InputError(f"{name_b}: expected shape {sa[0].shape} to match {name_a}, got {sb[0].shape}")
    return sa, sb


def _ensemble(coords, name: str, min_frames: int = 1) -> np.ndarray:
    x = np.asarray(coords, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != 3 or x.shape[1] < 3 or x.shape[0] < min_frames:
        raise InputError(
            f"{name}: expected shape (K, N, 3) with K >= {min_frames} frames and N >= 3 atoms, got {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name}: coordinates must be finite (found NaN or inf)")
    return x


def _reference(ref, n_atoms: int, name: str = "ref") -> np.ndarray:
    r = np.asarray(ref, dtype=np.float64)
    if r.shape != (n_atoms, 3):
        raise InputError(f"{name}: expected shape ({n_atoms}, 3), got {r.shape}")
    if not np.all(np.isfinite(r)):
        raise InputError(f"{name}: coordinates must be finite (found NaN or inf)")
    return r


def _pair_ensembles(pred_ens, true_ens, min_true: int = 1):
    pred = _ensemble(pred_ens, "pred_ens")
    true = _ensemble(true_ens, "true_ens", min_true)
    if pred.shape[1] != true.shape[1]:
        raise InputError(f"true_ens: expected {pred.shape[1]} atoms to match pred_ens, got {true.shape[1]}")
    return pred, true


def _true_frames(n_true: int, n_pred: int, seed: int | None) -> np.ndarray:
    """Indices of the true frames compared with the predicted ones, shape (n_pred,).

    ``seed`` int: AlphaFlow's ``RAND1`` (``np.random.seed(seed); randint(0, n_true, n_pred)``),
    reproduced bit for bit with the legacy RandomState.  ``seed`` None: all frames, which
    requires ``n_true == n_pred``.
    """
    if seed is None:
        if n_true != n_pred:
            raise InputError(
                f"true_ens: with seed=None it must have as many frames as pred_ens ({n_pred}), got {n_true}"
            )
        return np.arange(n_true)
    return np.random.RandomState(seed).randint(0, n_true, n_pred)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of two 1-D float64 arrays; NaN for fewer than 3 values or a constant array."""
    if x.size < 3 or np.ptp(x) == 0.0 or np.ptp(y) == 0.0:
        return math.nan
    xc = x - x.mean()
    yc = y - y.mean()
    r = float(xc @ yc / math.sqrt(float(xc @ xc) * float(yc @ yc)))
    return max(-1.0, min(1.0, r))


# ------------------------------------------------------------------------ Gaussian metrics


def rmsf_pearson(rmsf_pred, rmsf_true) -> float:
    """Pearson correlation of predicted and true per-residue RMSF.

    Parameters
    ----------
    rmsf_pred, rmsf_true : array, shape (N,), Å, N >= 2

    Returns
    -------
    float in [-1, 1]; NaN when N < 3 or either profile is constant.
    """
    x, y = _pair_vectors(rmsf_pred, rmsf_true, "rmsf_pred", "rmsf_true")
    return _pearson(x, y)


def _psd_sqrt(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Symmetric square roots (..., 3, 3) from eigenvalues (..., 3) >= 0 and eigenvectors."""
    return (v * np.sqrt(w)[..., None, :]) @ np.swapaxes(v, -1, -2)


def rmwd_variance(marg_pred, marg_true) -> float:
    """Variance term of the root mean Wasserstein distance between per-residue Gaussians.

    sqrt(mean_i tr(S0 + S1 - 2 (S1^1/2 S0 S1^1/2)^1/2)), with S0 = ``marg_pred[i]`` and
    S1 = ``marg_true[i]`` (the 2-Wasserstein distance between N(m, S0) and N(m, S1),
    squared, averaged over residues; AlphaFlow's "RMWD var").  Symmetric square roots
    by eigendecomposition; per-residue round-off below zero is clipped.

    Parameters
    ----------
    marg_pred, marg_true : array, shape (N, 3, 3), Å², symmetric positive semi-definite

    Returns
    -------
    float >= 0, Å
    """
    (s0, _, _), (s1, w1, v1) = _pair_marginals(marg_pred, marg_true, "marg_pred", "marg_true", strict=False)
    r1 = _psd_sqrt(w1, v1)  # S1^1/2, (N, 3, 3)
    m = r1 @ s0 @ r1
    m = 0.5 * (m + np.swapaxes(m, 1, 2))
    wm = np.clip(np.linalg.eigvalsh(m), 0.0, None)  # eigenvalues of S1^1/2 S0 S1^1/2, (N, 3)
    per_res = np.trace(s0, axis1=1, axis2=2) + np.trace(s1, axis1=1, axis2=2) - 2.0 * np.sqrt(wm).sum(axis=1)
    return float(math.sqrt(np.clip(per_res, 0.0, None).mean()))


def sym_kl_variance(marg_pred, marg_true) -> float:
    """Symmetric KL divergence between zero-mean per-residue Gaussians, averaged over residues.

    mean_i 1/4 (tr(S1^-1 S0) + tr(S0^-1 S1) - 6), S0 = ``marg_pred[i]``, S1 = ``marg_true[i]``
    (the mean of KL(0||1) and KL(1||0) for Gaussians with equal means in 3-D).

    Parameters
    ----------
    marg_pred, marg_true : array, shape (N, 3, 3), Å², symmetric positive definite

    Returns
    -------
    float >= 0 (dimensionless)
    """
    (s0, w0, v0), (s1, w1, v1) = _pair_marginals(marg_pred, marg_true, "marg_pred", "marg_true", strict=True)

    def tr_inv_prod(w, v, s):
        # tr(S^-1 A) with S = V diag(w) V^T: sum_k (V^T A V)_kk / w_k
        diag = np.einsum("nik,nij,njk->nk", v, s, v)
        return (diag / w).sum(axis=1)

    per_res = 0.25 * (tr_inv_prod(w1, v1, s0) + tr_inv_prod(w0, v0, s1) - 6.0)
    return float(np.clip(per_res, 0.0, None).mean())


def bandwise_coupling_pearson(corr_pred, corr_true, max_band: int = 50) -> np.ndarray:
    """Pearson r between two correlation maps over bands near the diagonal.

    Entry k-1 is the Pearson correlation over the upper-triangle entries (i, j) with
    1 <= j - i <= k, for k = 1..``max_band`` (bands beyond N-1 add no entries).

    Parameters
    ----------
    corr_pred, corr_true : array, shape (N, N) (dimensionless correlation, e.g. DCCM;
        only the upper triangle is read)
    max_band : int >= 1

    Returns
    -------
    array, shape (max_band,); NaN where a band has fewer than 3 entries or either map is
    constant over it.
    """
    if isinstance(max_band, bool) or not isinstance(max_band, (int, np.integer)) or max_band < 1:
        raise InputError(f"max_band: expected an integer >= 1, got {max_band!r}")
    a = np.asarray(corr_pred, dtype=np.float64)
    b = np.asarray(corr_true, dtype=np.float64)
    for arr, name in ((a, "corr_pred"), (b, "corr_true")):
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 2:
            raise InputError(f"{name}: expected a square (N, N) array with N >= 2, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name}: values must be finite (found NaN or inf)")
    if a.shape != b.shape:
        raise InputError(f"corr_true: expected shape {a.shape} to match corr_pred, got {b.shape}")
    n = a.shape[0]
    top = min(int(max_band), n - 1)
    # concatenated diagonals d = 1..top: the entries with j - i <= k are a prefix
    xa = np.concatenate([np.diagonal(a, d) for d in range(1, top + 1)])
    xb = np.concatenate([np.diagonal(b, d) for d in range(1, top + 1)])
    ends = np.cumsum([n - d for d in range(1, top + 1)])
    out = np.full(int(max_band), math.nan)
    for k in range(1, top + 1):
        out[k - 1] = _pearson(xa[: ends[k - 1]], xb[: ends[k - 1]])
    out[top:] = out[top - 1]
    return out


# ------------------------------------------------------------------ AlphaFlow ensemble metrics


def _superposed(ens: np.ndarray, ref: np.ndarray | None) -> np.ndarray:
    target = ens[0] if ref is None else _reference(ref, ens.shape[1])
    return superpose(ens, target)


def pairwise_rmsd(ens, ref=None, include_self: bool = True) -> float:
    """Mean pairwise C-alpha RMSD within an ensemble (AlphaFlow's "Pairwise RMSD").

    As ``analyze_ensembles.py`` (``get_rmsds(x, x, broadcast=True).mean()``): every frame
    is superposed once on ``ref``, then RMSD_ab = sqrt(sum_n |x_an - x_bn|^2 / N) without
    re-fitting each pair, averaged over all K x K ordered pairs *including* a = b (so the
    value is (K-1)/K of the mean over distinct pairs).  ``include_self=False`` averages
    over the K(K-1) distinct pairs instead.

    Parameters
    ----------
    ens : array, shape (K, N, 3), Å
    ref : array, shape (N, 3), Å, optional
        Superposition target (AlphaFlow: the crystal/PDB structure); default the first frame.
    include_self : bool

    Returns
    -------
    float >= 0, Å
    """
    x = _ensemble(ens, "ens", 1 if include_self else 2)
    x = _superposed(x, ref)
    k, n = x.shape[:2]
    flat = (x - x.mean(axis=0)).reshape(k, 3 * n)  # centring keeps the Gram trick accurate
    sq = (flat * flat).sum(axis=1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2.0 * flat @ flat.T, 0.0, None)  # (K, K) Å² x N
    np.fill_diagonal(d2, 0.0)
    rmsd = np.sqrt(d2 / n)
    if include_self:
        return float(rmsd.mean())
    return float(rmsd.sum() / (k * (k - 1)))


def ensemble_rmsf(ens, ref=None) -> np.ndarray:
    """Per-atom RMSF of an ensemble (AlphaFlow: ``mdtraj.rmsf(traj, ref)``).

    Frames are superposed on ``ref`` (Kabsch, all atoms), then RMSF_n =
    sqrt(mean_k |x_kn - mean_k x_kn|^2) about the ensemble's own mean (population, 1/K).

    Parameters
    ----------
    ens : array, shape (K, N, 3), Å
    ref : array, shape (N, 3), Å, optional
        Superposition target; default the first frame.

    Returns
    -------
    array, shape (N,), Å
    """
    x = _superposed(_ensemble(ens, "ens"), ref)
    dev = x - x.mean(axis=0)
    return np.sqrt((dev * dev).sum(axis=2).mean(axis=0))


def _rmsf_items(items, name: str) -> list[np.ndarray]:
    if isinstance(items, np.ndarray) or not isinstance(items, Sequence) or len(items) == 0:
        raise InputError(f"{name}: expected a non-empty list of per-target RMSF (N,) or ensembles (K, N, 3)")
    out = []
    for t, item in enumerate(items):
        a = np.asarray(item, dtype=np.float64)
        if a.ndim == 3:
            out.append(ensemble_rmsf(_ensemble(a, f"{name}[{t}]")))
        elif a.ndim == 1:
            out.append(_vector(a, f"{name}[{t}]"))
        else:
            raise InputError(f"{name}[{t}]: expected RMSF (N,) or an ensemble (K, N, 3), got shape {a.shape}")
    return out


def _rmsf_pairs(preds, trues):
    p = _rmsf_items(preds, "preds")
    t = _rmsf_items(trues, "trues")
    if len(p) != len(t):
        raise InputError(f"trues: expected {len(p)} targets to match preds, got {len(t)}")
    for i, (a, b) in enumerate(zip(p, t)):
        if a.shape != b.shape:
            raise InputError(f"trues[{i}]: expected {a.shape[0]} residues to match preds[{i}], got {b.shape[0]}")
    return p, t


def rmsf_r_global(preds, trues) -> float:
    """AlphaFlow's "Global RMSF r": Pearson r over the RMSF of all targets concatenated.

    Parameters
    ----------
    preds, trues : list of T items, each an RMSF array (N_t,) Å or an ensemble
        (K, N_t, 3) Å (its :func:`ensemble_rmsf` on its first frame is used)

    Returns
    -------
    float; NaN for fewer than 3 residues in all or a constant profile.
    """
    p, t = _rmsf_pairs(preds, trues)
    return _pearson(np.concatenate(p), np.concatenate(t))


def rmsf_r_per_target(preds, trues) -> np.ndarray:
    """Per-target RMSF Pearson r; AlphaFlow's "Per target RMSF r" is its median.

    Parameters
    ----------
    preds, trues : list of T items, as in :func:`rmsf_r_global`

    Returns
    -------
    array, shape (T,); NaN for targets with a constant profile.  Aggregate with
    :func:`summarize`.
    """
    p, t = _rmsf_pairs(preds, trues)
    return np.array([_pearson(a, b) for a, b in zip(p, t)])


def _check_components(n_components, n_fit: int, dim: int) -> int:
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise InputError(f"n_components: expected an integer >= 1, got {n_components!r}")
    if n_components > min(n_fit, dim):
        raise InputError(f"n_components: at most {min(n_fit, dim)} for {n_fit} fitted frames, got {n_components}")
    return int(n_components)


def _principal_axes(centred: np.ndarray, n_components: int) -> np.ndarray:
    """Top ``n_components`` principal axes (C, D) of centred data (K, D), largest first."""
    k, d = centred.shape
    if k <= d:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        return vt[:n_components]
    # many frames (long MD): eigenvectors of the D x D scatter matrix, top ones only
    _, vecs = scipy.linalg.eigh(centred.T @ centred, subset_by_index=[d - n_components, d - 1])
    return vecs[:, ::-1].T


def _pca_w2(fit: np.ndarray, a: np.ndarray, b: np.ndarray, n_components: int) -> float:
    """2-Wasserstein distance between frame sets a and b (K, N, 3) in the top PCs of ``fit``.

    As AlphaFlow's ``get_emd(..., K)['ref|af']``: coordinates are projected on the first
    ``n_components`` principal components of ``fit`` (flattened 3N, centred), the cost
    between two frames is |pa - pb| / sqrt(N) (an RMSD-like Å), and the optimal
    one-to-one assignment of squared costs gives W2 = sqrt(mean assigned cost^2).
    """
    k_fit, n = fit.shape[:2]
    flat = fit.reshape(k_fit, 3 * n)
    mean = flat.mean(axis=0)
    comps = _principal_axes(flat - mean, n_components)  # (C, 3N); PC signs do not change distances
    pa = (a.reshape(len(a), 3 * n) - mean) @ comps.T
    pb = (b.reshape(len(b), 3 * n) - mean) @ comps.T
    cost2 = ((pa[:, None, :] - pb[None, :, :]) ** 2).sum(axis=-1) / n  # (K, K) Å²
    # imported here: scipy.optimize costs ~80 ms, and `import dynaprot_viz` reaches this module
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost2)
    return float(math.sqrt(cost2[rows, cols].mean()))


def md_pca_w2(pred_ens, true_ens, n_components: int = 2, ref=None, seed: int | None = ALPHAFLOW_SEED) -> float:
    """AlphaFlow's "MD PCA W2": W2 between ensembles in the top PCs of the true (MD) ensemble.

    Both ensembles are superposed on ``ref``; PCA is fitted on all true frames; W2 (see
    ``_pca_w2``) is taken between the predicted frames and as many true frames drawn by
    AlphaFlow's resampling (module docstring).  With the default ``seed`` two identical
    ensembles do *not* give 0 (the true side is resampled with replacement); use
    ``seed=None`` for an exact comparison of equal-sized ensembles.

    Parameters
    ----------
    pred_ens : array, shape (K, N, 3), Å
    true_ens : array, shape (M, N, 3), Å, M >= 2
    n_components : int, AlphaFlow uses 2
    ref : array, shape (N, 3), Å, optional
        Superposition target (AlphaFlow: the crystal/PDB structure); default ``true_ens[0]``.
    seed : int or None

    Returns
    -------
    float >= 0, Å
    """
    pred, true = _pair_ensembles(pred_ens, true_ens, min_true=2)
    target = true[0] if ref is None else _reference(ref, true.shape[1])
    pred, true = superpose(pred, target), superpose(true, target)
    nc = _check_components(n_components, len(true), 3 * true.shape[1])
    idx = _true_frames(len(true), len(pred), seed)
    return _pca_w2(true, true[idx], pred, nc)


def joint_pca_w2(pred_ens, true_ens, n_components: int = 2, ref=None, seed: int | None = ALPHAFLOW_SEED) -> float:
    """AlphaFlow's "Joint PCA W2": as :func:`md_pca_w2`, PCA fitted on both ensembles.

    The PCA is fitted on the resampled true frames (as many as predicted frames) together
    with the predicted frames, as ``get_pca(concatenate([traj[RAND1], aftraj]))``.

    Parameters
    ----------
    pred_ens : array, shape (K, N, 3), Å
    true_ens : array, shape (M, N, 3), Å
    n_components : int, AlphaFlow uses 2
    ref : array, shape (N, 3), Å, optional; default ``true_ens[0]``
    seed : int or None (see :func:`md_pca_w2`)

    Returns
    -------
    float >= 0, Å
    """
    pred, true = _pair_ensembles(pred_ens, true_ens)
    target = true[0] if ref is None else _reference(ref, true.shape[1])
    pred, true = superpose(pred, target), superpose(true, target)
    idx = _true_frames(len(true), len(pred), seed)
    fit = np.concatenate([true[idx], pred])
    nc = _check_components(n_components, len(fit), 3 * true.shape[1])
    return _pca_w2(fit, true[idx], pred, nc)


def _contact_prob(ens: np.ndarray, cutoff: float, chunk: int = 32) -> np.ndarray:
    """Fraction of frames with |x_i - x_j| < cutoff, shape (N, N); frames in chunks."""
    k, n = ens.shape[:2]
    count = np.zeros((n, n))
    for s in range(0, k, chunk):
        x = ens[s : s + chunk]
        d2 = np.zeros((len(x), n, n))  # squared distances, (k', N, N) Å², one axis at a time
        for a in range(3):
            diff = x[:, :, None, a] - x[:, None, :, a]
            d2 += diff * diff
        count += (d2 < cutoff * cutoff).sum(axis=0)
    return count / k


def _contact_sets(pred_ens, true_ens, ref_ca, cutoff, fraction, seed):
    pred, true = _pair_ensembles(pred_ens, true_ens)
    ref = _reference(ref_ca, pred.shape[1], "ref_ca")
    if not (isinstance(cutoff, (int, float, np.floating, np.integer)) and math.isfinite(cutoff) and cutoff > 0):
        raise InputError(f"cutoff: expected a positive distance in Å, got {cutoff!r}")
    if not (isinstance(fraction, (int, float, np.floating, np.integer)) and 0.0 <= fraction < 1.0):
        raise InputError(f"fraction: expected a number in [0, 1), got {fraction!r}")
    idx = _true_frames(len(true), len(pred), seed)
    iu = np.triu_indices(pred.shape[1], k=1)
    crystal = (np.linalg.norm(ref[:, None] - ref[None, :], axis=-1) < cutoff)[iu]
    p_pred = _contact_prob(pred, cutoff)[iu]
    p_true = _contact_prob(true[idx], cutoff)[iu]
    return crystal, p_pred, p_true


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return math.nan if union == 0 else int((a & b).sum()) / union


def weak_contacts_jaccard(
    pred_ens,
    true_ens,
    ref_ca,
    cutoff: float = CONTACT_CUTOFF,
    fraction: float = CONTACT_FRACTION,
    seed: int | None = ALPHAFLOW_SEED,
) -> float:
    """AlphaFlow's "Weak contacts J": Jaccard index of the weak contacts of two ensembles.

    A residue pair is a contact when its C-alpha distance is below ``cutoff`` (8 Å).  A
    weak contact is a contact in ``ref_ca`` that is broken in more than ``fraction`` (10%)
    of an ensemble's frames, i.e. contact probability < 1 - fraction (``print_analysis.py``:
    ``crystal_contact_mask & (contact_prob < 0.9)``).  Returns |W_pred ∩ W_true| /
    |W_pred ∪ W_true| over pairs i < j (AlphaFlow counts the full symmetric matrix, which
    gives the same ratio).  True frames are resampled as in :func:`md_pca_w2`.

    Parameters
    ----------
    pred_ens : array, shape (K, N, 3), Å
    true_ens : array, shape (M, N, 3), Å
    ref_ca : array, shape (N, 3), Å, the reference (crystal/PDB) C-alpha coordinates
    cutoff : float, Å
    fraction : float in [0, 1)
    seed : int or None

    Returns
    -------
    float in [0, 1]; NaN when neither ensemble has a weak contact.
    """
    crystal, p_pred, p_true = _contact_sets(pred_ens, true_ens, ref_ca, cutoff, fraction, seed)
    return _jaccard(crystal & (p_pred < 1.0 - fraction), crystal & (p_true < 1.0 - fraction))


def transient_contacts_jaccard(
    pred_ens,
    true_ens,
    ref_ca,
    cutoff: float = CONTACT_CUTOFF,
    fraction: float = CONTACT_FRACTION,
    seed: int | None = ALPHAFLOW_SEED,
) -> float:
    """AlphaFlow's "Transient contacts J": Jaccard index of the transient contacts.

    A transient contact is a pair *not* in contact in ``ref_ca`` (C-alpha distance >=
    ``cutoff``, 8 Å) that is formed in more than ``fraction`` (10%) of an ensemble's frames
    (``print_analysis.py``: ``~crystal_contact_mask & (contact_prob > 0.1)``).  Pairs
    i < j; true frames resampled as in :func:`md_pca_w2`.

    Parameters
    ----------
    pred_ens : array, shape (K, N, 3), Å
    true_ens : array, shape (M, N, 3), Å
    ref_ca : array, shape (N, 3), Å
    cutoff : float, Å
    fraction : float in [0, 1)
    seed : int or None

    Returns
    -------
    float in [0, 1]; NaN when neither ensemble has a transient contact.
    """
    crystal, p_pred, p_true = _contact_sets(pred_ens, true_ens, ref_ca, cutoff, fraction, seed)
    return _jaccard(~crystal & (p_pred > fraction), ~crystal & (p_true > fraction))


# ----------------------------------------------------------------------------- aggregation


def summarize(values) -> dict:
    """Median, quartiles, mean and count of per-protein metric values, ignoring NaN.

    Parameters
    ----------
    values : array-like, shape (T,)

    Returns
    -------
    dict with float ``median``, ``q25``, ``q75``, ``mean`` (NaN when no value is left)
    and int ``n`` (the number of non-NaN values).
    """
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise InputError(f"values: expected a 1-D array of per-protein values, got shape {a.shape}")
    a = a[~np.isnan(a)]
    if a.size == 0:
        return {"median": math.nan, "q25": math.nan, "q75": math.nan, "mean": math.nan, "n": 0}
    q25, med, q75 = np.percentile(a, [25.0, 50.0, 75.0])
    return {"median": float(med), "q25": float(q25), "q75": float(q75), "mean": float(a.mean()), "n": int(a.size)}
