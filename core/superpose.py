"""Optimal rigid superposition (Kabsch) of coordinate frames onto a target.

Used by label ingestion (DESIGN.md section 2: MD frames superposed on the reference
structure on all C-alpha) and by the ensemble metrics in :mod:`.metrics`.
All coordinates in Å.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

__all__ = ["kabsch", "superpose"]


def _frames_and_target(mobile, target, mask, name: str):
    """Validate and return (frames (K, N, 3) float64, single, target (N, 3), mask (N,) bool)."""
    x = np.asarray(mobile, dtype=np.float64)
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != 3 or x.shape[1] == 0:
        raise InputError(f"{name}: expected shape (K, N, 3) or (N, 3), got {np.shape(mobile)}")
    y = np.asarray(target, dtype=np.float64)
    if y.shape != x.shape[1:]:
        raise InputError(f"target: expected shape {x.shape[1:]} to match {name}, got {y.shape}")
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name}: coordinates must be finite (found NaN or inf)")
    if not np.all(np.isfinite(y)):
        raise InputError("target: coordinates must be finite (found NaN or inf)")
    if mask is None:
        m = np.ones(x.shape[1], dtype=bool)
    else:
        m = np.asarray(mask)
        if m.shape != (x.shape[1],) or m.dtype != bool:
            raise InputError(f"mask: expected a boolean array of shape ({x.shape[1]},), got {m.dtype} {m.shape}")
        if m.sum() < 3:
            raise InputError(f"mask: at least 3 atoms are needed to fit a rotation, got {int(m.sum())}")
    return x, single, y, m


def kabsch(mobile, target, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """The proper rotation and translation that best superpose ``mobile`` on ``target``.

    Minimises sum_n |R x_n + t - y_n|^2 over atoms selected by ``mask`` (Kabsch 1976,
    with the determinant sign correction so that det R = +1).

    Parameters
    ----------
    mobile : array, shape (K, N, 3) or (N, 3), Å
    target : array, shape (N, 3), Å
    mask : bool array, shape (N,), optional
        Atoms used for the fit (default all).

    Returns
    -------
    rotations : array, shape (K, 3, 3) (or (3, 3) for a single frame)
    translations : array, shape (K, 3) (or (3,)), Å
        Apply as ``x @ R.T + t``.
    """
    x, single, y, m = _frames_and_target(mobile, target, mask, "mobile")
    xc = x[:, m].mean(axis=1)  # (K, 3)
    yc = y[m].mean(axis=0)  # (3,)
    p = x[:, m] - xc[:, None]  # (K, M, 3)
    q = y[m] - yc  # (M, 3)
    h = np.einsum("kmi,mj->kij", p, q)  # (K, 3, 3) cross-covariance
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)))
    d[d == 0] = 1.0
    fix = np.ones((x.shape[0], 3))
    fix[:, 2] = d
    rot = np.swapaxes(vt, -1, -2) @ (fix[:, :, None] * np.swapaxes(u, -1, -2))  # (K, 3, 3)
    trans = yc - np.einsum("kij,kj->ki", rot, xc)  # (K, 3)
    if single:
        return rot[0], trans[0]
    return rot, trans


def superpose(mobile, target, mask=None) -> np.ndarray:
    """Superpose every frame of ``mobile`` on ``target`` (Kabsch, proper rotations).

    Parameters
    ----------
    mobile : array, shape (K, N, 3) or (N, 3), Å
    target : array, shape (N, 3), Å
    mask : bool array, shape (N,), optional
        Atoms used for the fit (default all); every atom is moved.

    Returns
    -------
    array, same shape as ``mobile``, Å (float64)
    """
    rot, trans = kabsch(mobile, target, mask)
    x = np.asarray(mobile, dtype=np.float64)
    if x.ndim == 2:
        return x @ rot.T + trans
    return np.einsum("knj,kij->kni", x, rot) + trans[:, None, :]
