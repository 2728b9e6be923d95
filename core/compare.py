"""Differential dynamics: what changes between two Gaussian descriptions of one protein (issue 16).

:func:`compare` takes two :class:`~.gaussian.Dynamics` (two structures such as apo /
holo or open / closed, two predictors on one structure, or a prediction and an MD
label) and returns a validated :class:`DynamicsComparison`.  The steps:

1. **Correspondence.**  The two residue sequences are aligned with gemmi's
   Needleman-Wunsch aligner (``gemmi.align_string_sequences``, BLOSUM62, gap open
   -10, extend -1); residue numbering is not assumed to match.  Residues in a gap are
   listed (``unaligned_a``, ``unaligned_b``).  An alignment covering less than
   :data:`MIN_COVERAGE` of the shorter chain, or with a sequence identity below
   :data:`MIN_IDENTITY` over its aligned pairs (two different proteins), is refused
   with one line (:class:`~.errors.InputError`).
2. **Common frame.**  B's aligned C-alpha atoms are superposed on A's (Kabsch,
   :func:`.superpose.kabsch`); B's 3x3 marginals are rotated into A's frame,
   Sigma_B' = R Sigma_B R^T, before any orientation-dependent comparison.
3. **Per residue** (M aligned pairs, A's residue i with B's residue j):

   - ``delta_rmsf`` = RMSF_B - RMSF_A (Å), RMSF = sqrt(tr Sigma);
   - ``log_volume_ratio`` = ln(V_B / V_A) = 1/2 ln(det Sigma_B / det Sigma_A): the
     ellipsoid volume at any fixed probability scales with sqrt(det Sigma);
   - ``axis_angle``: angle (degrees, 0..90, sign-free) between the principal axes
     (top eigenvectors) of Sigma_A and Sigma_B'; NaN when either model is isotropic
     (spheres have no axis);
   - ``sym_kl``: 1/4 (tr(Sigma_B'^-1 Sigma_A) + tr(Sigma_A^-1 Sigma_B') - 6), the
     per-residue term that :func:`.metrics.sym_kl_variance` averages (dimensionless);
   - ``wasserstein``: the 2-Wasserstein distance between N(0, Sigma_A) and
     N(0, Sigma_B'), sqrt(tr(S_A + S_B - 2 (S_B^1/2 S_A S_B^1/2)^1/2)) (Å), whose
     root mean square over residues is :func:`.metrics.rmwd_variance`.

4. **Pair level.**  ``delta_correlation`` = C~_B - C~_A (M, M) on the aligned residues
   (DCCM, dimensionless; rotation-invariant, so no frame is needed), summarised per
   band: ``band_r[k-1]`` is :func:`.metrics.bandwise_coupling_pearson` (Pearson r
   over entries with 1 <= j - i <= k) and ``band_delta[k-1]`` the mean |Delta C~_ij|
   over the entries with j - i = k (k counted in aligned positions).
5. **Two conformations.**  ``displacement`` (M, 3) Å = B superposed on A minus A, in
   A's frame; ``rmsd`` its root mean square.  When ``rmsd`` reaches
   :data:`MIN_CONFORMATION_RMSD` the structures count as two conformations and the
   displacement is compared with each side's predicted motion: the top
   ``n_modes`` principal axes v_k of that side's joint covariance restricted to the
   aligned residues (3M x 3M, DESIGN.md section 1) give the overlaps
   O_k = |v_k . d| / |d| (Tama & Sanejouand 2001, as ProDy's ``calcOverlap``) and the
   cumulative overlap CO = sqrt(sum_k O_k^2) in [0, 1] (ProDy's
   ``calcCumulOverlap``): 1 when the predicted slow motions span the observed
   change, about sqrt(K / 3M) for a random direction (``overlap_baseline``).  B's
   side uses the displacement in B's frame (A superposed on B minus B).

Everything here is numpy, scipy and gemmi (DESIGN.md section 5: core imports no viewer).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .gaussian import Dynamics, read_npz
from .metrics import bandwise_coupling_pearson
from .structure import Residue
from .superpose import kabsch

__all__ = [
    "DynamicsComparison",
    "ResidueAlignment",
    "align_residues",
    "compare",
    "motion_overlap",
    "per_residue_divergences",
    "MIN_COVERAGE",
    "MIN_IDENTITY",
    "MIN_ALIGNED",
    "MIN_CONFORMATION_RMSD",
    "DEFAULT_MODES",
    "DEFAULT_MAX_BAND",
    "CHANGE_KEYS",
]

#: an alignment must pair at least this fraction of the shorter chain's residues
MIN_COVERAGE = 0.30
#: sequence identity over the aligned pairs below this: two different proteins
MIN_IDENTITY = 0.40
#: at least this many aligned residues (a superposition and a 3x3 per residue need a few)
MIN_ALIGNED = 5
#: C-alpha RMSD (Å) after superposition from which two structures count as two conformations;
#: below it (two predictors on one file, a prediction and the MD label of its reference, two
#: crystal forms of one state) the displacement is coordinate noise and no overlap is scored
MIN_CONFORMATION_RMSD = 0.5
#: principal modes of each side's joint covariance scored against the displacement
DEFAULT_MODES = 10
#: bands k = 1..50 of the delta-correlation summary (DESIGN.md section 4)
DEFAULT_MAX_BAND = 50
#: per-residue quantities by which :meth:`DynamicsComparison.top_changes` can rank residues
CHANGE_KEYS = ("delta_rmsf", "log_volume_ratio", "axis_angle", "sym_kl", "wasserstein", "displacement",
               "delta_correlation")

_CIGAR = re.compile(r"(\d+)([MID])")


# ----------------------------------------------------------------------------- alignment
def _one_letter(name: str) -> str:
    """Parent amino acid one-letter code of a residue name (``MSE`` -> ``M``), ``X`` when unknown."""
    import gemmi

    info = gemmi.find_tabulated_residue(str(name).strip())
    if info is None or not info.is_amino_acid():
        return "X"
    code = info.one_letter_code.upper()
    return code if code.isalpha() and code != " " else "X"


def _sequence(residues) -> str:
    return "".join(_one_letter(r.name) for r in residues)


@dataclass(frozen=True, eq=False)
class ResidueAlignment:
    """Residue correspondence of two chains from a sequence alignment.

    Attributes
    ----------
    index_a, index_b : ndarray, shape (M,), int64
        Aligned pairs: residue ``index_a[k]`` of A with residue ``index_b[k]`` of B;
        both strictly increasing.
    unaligned_a, unaligned_b : ndarray, shape (N_A - M,), (N_B - M,), int64
        Residues of A (of B) facing a gap.
    identity : float in [0, 1]
        Fraction of aligned pairs with the same (parent) amino acid.
    coverage : float in [0, 1]
        M / min(N_A, N_B).
    cigar : str
        gemmi's CIGAR string (M aligned, I residue of A only, D residue of B only).
    sequence_a, sequence_b : str
        One-letter sequences aligned (parent amino acids, ``X`` unknown).
    """

    index_a: np.ndarray
    index_b: np.ndarray
    unaligned_a: np.ndarray
    unaligned_b: np.ndarray
    identity: float
    coverage: float
    cigar: str
    sequence_a: str
    sequence_b: str

    @property
    def n_aligned(self) -> int:
        return int(len(self.index_a))

    def formatted(self) -> str:
        """The alignment in three lines (A, match marks, B), gaps as ``-``."""
        top, mid, bot = [], [], []
        ia = ib = 0
        for count, op in _CIGAR.findall(self.cigar):
            for _ in range(int(count)):
                if op == "M":
                    a, b = self.sequence_a[ia], self.sequence_b[ib]
                    top.append(a), bot.append(b), mid.append("|" if a == b and a != "X" else " ")
                    ia += 1
                    ib += 1
                elif op == "I":
                    top.append(self.sequence_a[ia]), bot.append("-"), mid.append(" ")
                    ia += 1
                else:
                    top.append("-"), bot.append(self.sequence_b[ib]), mid.append(" ")
                    ib += 1
        return "\n".join(("".join(top), "".join(mid), "".join(bot)))


def align_residues(residues_a, residues_b, *, min_coverage: float = MIN_COVERAGE,
                   min_identity: float = MIN_IDENTITY, name_a: str = "A", name_b: str = "B") -> ResidueAlignment:
    """Align two residue lists by sequence (gemmi, BLOSUM62) and check that they are one protein.

    Parameters
    ----------
    residues_a, residues_b : sequence of Residue
        Residue ids (names are mapped to their parent amino acid: MSE -> M).
    min_coverage : float in [0, 1]
        Refuse when the aligned pairs cover less than this fraction of the shorter chain.
    min_identity : float in [0, 1]
        Refuse when fewer than this fraction of the aligned pairs are identical.
    name_a, name_b : str
        Names used in error messages.

    Raises
    ------
    InputError
        One line: too few aligned residues, coverage or identity too low.
    """
    import gemmi

    seq_a, seq_b = _sequence(residues_a), _sequence(residues_b)
    n_a, n_b = len(seq_a), len(seq_b)
    if min(n_a, n_b) < MIN_ALIGNED:
        raise InputError(f"{name_a if n_a < n_b else name_b}: {min(n_a, n_b)} residues; a comparison needs at "
                         f"least {MIN_ALIGNED}")
    kind = gemmi.ResidueKind.AA
    result = gemmi.align_string_sequences(gemmi.expand_one_letter_sequence(seq_a, kind),
                                          gemmi.expand_one_letter_sequence(seq_b, kind), [],
                                          gemmi.AlignmentScoring("b"))
    cigar = result.cigar_str()
    ia, ib, pairs = 0, 0, []
    for count, op in _CIGAR.findall(cigar):
        count = int(count)
        if op == "M":
            pairs.extend((ia + k, ib + k) for k in range(count))
            ia += count
            ib += count
        elif op == "I":
            ia += count
        else:
            ib += count
    if (ia, ib) != (n_a, n_b):  # pragma: no cover - gemmi's CIGAR always spans both sequences
        raise InputError(f"sequence alignment of {name_a} and {name_b} did not span both chains")
    pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    m = len(pairs)
    shorter = min(n_a, n_b)
    coverage = m / shorter
    same = sum(1 for i, j in pairs if seq_a[i] == seq_b[j] and seq_a[i] != "X")
    identity = same / m if m else 0.0
    if m < MIN_ALIGNED or coverage < min_coverage:
        raise InputError(f"{name_a} ({n_a} residues) and {name_b} ({n_b} residues): the sequence alignment pairs "
                         f"{m} residues, {100 * coverage:.0f}% of the shorter chain (need >= {100 * min_coverage:.0f}%); "
                         "not the same protein, or the wrong chain (--chain-a/--chain-b)")
    if identity < min_identity:
        raise InputError(f"{name_a} and {name_b}: sequence identity {100 * identity:.0f}% over {m} aligned residues is "
                         f"below {100 * min_identity:.0f}%: two different proteins (or the wrong chain), "
                         "their dynamics cannot be compared residue by residue")
    index_a, index_b = pairs[:, 0].copy(), pairs[:, 1].copy()
    return ResidueAlignment(
        index_a=index_a, index_b=index_b,
        unaligned_a=np.setdiff1d(np.arange(n_a), index_a), unaligned_b=np.setdiff1d(np.arange(n_b), index_b),
        identity=float(identity), coverage=float(coverage), cigar=cigar, sequence_a=seq_a, sequence_b=seq_b,
    )


# ----------------------------------------------------------------------------- per-residue terms
def per_residue_divergences(marg_a, marg_b) -> dict:
    """Per-residue comparison of two batches of 3x3 covariances in one frame.

    Parameters
    ----------
    marg_a, marg_b : array, shape (M, 3, 3), Å², symmetric positive definite

    Returns
    -------
    dict of arrays, shape (M,):
        ``log_volume_ratio`` (ln V_b / V_a), ``axis_angle`` (degrees, 0..90, between top
        eigenvectors), ``sym_kl`` (dimensionless), ``wasserstein`` (Å).
        ``mean(sym_kl)`` equals :func:`.metrics.sym_kl_variance` (marg_a as pred) and
        ``sqrt(mean(wasserstein**2))`` equals :func:`.metrics.rmwd_variance`.
    """
    sa = np.asarray(marg_a, dtype=np.float64)
    sb = np.asarray(marg_b, dtype=np.float64)
    if sa.ndim != 3 or sa.shape[1:] != (3, 3) or sa.shape != sb.shape:
        raise InputError(f"marginals: expected two (M, 3, 3) arrays of one shape, got {sa.shape} and {sb.shape}")
    if not (np.all(np.isfinite(sa)) and np.all(np.isfinite(sb))):
        raise InputError("marginals: values must be finite (found NaN or inf)")
    sa = 0.5 * (sa + np.swapaxes(sa, 1, 2))
    sb = 0.5 * (sb + np.swapaxes(sb, 1, 2))
    wa, va = np.linalg.eigh(sa)  # (M, 3) ascending, (M, 3, 3)
    wb, vb = np.linalg.eigh(sb)
    if np.any(wa[:, 0] <= 0) or np.any(wb[:, 0] <= 0):
        raise InputError("marginals: every 3x3 covariance must be positive definite")
    log_vol = 0.5 * (np.log(wb).sum(axis=1) - np.log(wa).sum(axis=1))
    cos = np.abs(np.einsum("ni,ni->n", va[:, :, 2], vb[:, :, 2]))
    angle = np.degrees(np.arccos(np.clip(cos, 0.0, 1.0)))
    inv_a = (va / wa[:, None, :]) @ np.swapaxes(va, 1, 2)
    inv_b = (vb / wb[:, None, :]) @ np.swapaxes(vb, 1, 2)
    kl = 0.25 * (np.einsum("nij,nji->n", inv_b, sa) + np.einsum("nij,nji->n", inv_a, sb) - 6.0)
    rb = (vb * np.sqrt(wb)[:, None, :]) @ np.swapaxes(vb, 1, 2)  # S_b^1/2
    mid = rb @ sa @ rb
    mid = 0.5 * (mid + np.swapaxes(mid, 1, 2))
    wm = np.clip(np.linalg.eigvalsh(mid), 0.0, None)
    w2 = np.trace(sa, axis1=1, axis2=2) + np.trace(sb, axis1=1, axis2=2) - 2.0 * np.sqrt(wm).sum(axis=1)
    return {"log_volume_ratio": log_vol, "axis_angle": angle, "sym_kl": np.clip(kl, 0.0, None),
            "wasserstein": np.sqrt(np.clip(w2, 0.0, None))}


# ----------------------------------------------------------------------------- motion overlap
def _top_modes(dynamics: Dynamics, index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` eigenpairs of the joint covariance restricted to residues ``index``.

    Returns (variances (k,) Å², largest first; modes (k, 3M), unit vectors ordered
    (residue, axis)).  Sigma_sub = L_blk (C~_sub kron I_3) L_blk (DESIGN.md section 1),
    applied without forming it above 600 dimensions (Lanczos, scipy ``eigsh``).
    """
    import scipy.linalg
    import scipy.sparse.linalg

    lm = dynamics.marginal_factors()[index]  # (M, 3, 3) symmetric square roots, Å
    corr = np.asarray(dynamics.correlation)[np.ix_(index, index)]  # (M, M)
    m = len(index)
    dim = 3 * m
    k = min(k, dim - 1)
    if dim <= 600:
        joint = np.einsum("iab,ij,jcb->iajc", lm, corr, lm).reshape(dim, dim)
        w, v = scipy.linalg.eigh(joint, subset_by_index=[dim - k, dim - 1])
    else:
        def matvec(x):
            x = np.asarray(x, dtype=np.float64).reshape(m, 3)
            u = np.einsum("iab,ib->ia", lm, x)  # L_j x_j
            return np.einsum("iab,ib->ia", lm, corr @ u).reshape(dim)  # L_i sum_j C~_ij L_j x_j

        op = scipy.sparse.linalg.LinearOperator((dim, dim), matvec=matvec, dtype=np.float64)
        w, v = scipy.sparse.linalg.eigsh(op, k=k, which="LA", v0=np.ones(dim), tol=1e-8)
    order = np.argsort(w)[::-1]
    return w[order], v[:, order].T


def motion_overlap(dynamics: Dynamics, index, displacement, n_modes: int = DEFAULT_MODES):
    """Overlap of an observed displacement with the predicted motion of ``dynamics``.

    Parameters
    ----------
    dynamics : Dynamics
    index : array of int, shape (M,)
        Residues the displacement is given for.
    displacement : array, shape (M, 3), Å
        Observed displacement in the frame of ``dynamics.mean``.
    n_modes : int >= 1
        Number K of principal modes (largest variance first).

    Returns
    -------
    overlaps : ndarray, shape (K,)
        O_k = |v_k . d| / |d| for the top modes v_k of the joint covariance restricted
        to ``index``.
    cumulative : float in [0, 1]
        sqrt(sum_k O_k^2).
    variances : ndarray, shape (K,), Å²
        Eigenvalues of the modes.
    """
    index = np.asarray(index, dtype=np.int64)
    d = np.asarray(displacement, dtype=np.float64)
    if d.shape != (len(index), 3):
        raise InputError(f"displacement: expected shape ({len(index)}, 3), got {d.shape}")
    if isinstance(n_modes, bool) or int(n_modes) != n_modes or n_modes < 1:
        raise InputError(f"n_modes: expected an integer >= 1, got {n_modes!r}")
    norm = float(np.linalg.norm(d))
    if norm == 0.0 or not math.isfinite(norm):
        raise InputError("displacement: must be finite and not zero")
    w, v = _top_modes(dynamics, index, int(n_modes))
    ov = np.abs(v @ (d.reshape(-1) / norm))
    return ov, float(min(1.0, math.sqrt(float(ov @ ov)))), w


# ----------------------------------------------------------------------------- result
def _residue_arrays(residues, prefix: str) -> dict:
    return {
        f"{prefix}_chain": np.array([r.chain for r in residues], dtype=str),
        f"{prefix}_number": np.array([r.number for r in residues], dtype=np.int64),
        f"{prefix}_icode": np.array([r.icode for r in residues], dtype=str),
        f"{prefix}_name": np.array([r.name for r in residues], dtype=str),
    }


def _residues_from(data: dict, prefix: str) -> tuple:
    return tuple(Residue(str(c), int(n), str(i), str(r)) for c, n, i, r in
                 zip(data[f"{prefix}_chain"], data[f"{prefix}_number"], data[f"{prefix}_icode"],
                     data[f"{prefix}_name"]))


_ARRAYS_M = ("rmsf_a", "rmsf_b", "delta_rmsf", "log_volume_ratio", "axis_angle", "sym_kl", "wasserstein")
_FINITE = ("rmsf_a", "rmsf_b", "delta_rmsf", "log_volume_ratio", "sym_kl", "wasserstein", "delta_correlation",
           "rotation", "translation", "displacement", "mean_a", "mean_b")


@dataclass(frozen=True, eq=False)
class DynamicsComparison:
    """Differential dynamics of two chains, B relative to A (module docstring for the maths).

    M is the number of aligned residue pairs, N_A and N_B the chain lengths, K the number
    of modes and band count as stated.

    Attributes
    ----------
    name_a, name_b : str
        Labels of the two sides (file names, model names).
    model_a, model_b : str
        ``model_name`` of each Dynamics.
    residues_a, residues_b : tuple of Residue, lengths N_A and N_B
    index_a, index_b : ndarray (M,) int64
        Aligned pairs (strictly increasing).
    unaligned_a, unaligned_b : ndarray int64
        Residues of each side in an alignment gap.
    identity, coverage : float in [0, 1]
        Sequence identity over aligned pairs; aligned fraction of the shorter chain.
    cigar : str
        The alignment (gemmi CIGAR).
    mean_a, mean_b : ndarray (M, 3), Å
        Aligned C-alpha positions of A, and of B superposed on A (A's frame).
    rmsf_a, rmsf_b, delta_rmsf : ndarray (M,), Å
        RMSF on each side and RMSF_B - RMSF_A.
    log_volume_ratio : ndarray (M,)
        ln(V_B / V_A) of the ellipsoids (dimensionless).
    axis_angle : ndarray (M,), degrees in [0, 90]
        Angle between principal axes (NaN when a side is isotropic).
    sym_kl : ndarray (M,), dimensionless >= 0
    wasserstein : ndarray (M,), Å >= 0
    delta_correlation : ndarray (M, M)
        C~_B - C~_A on the aligned residues, symmetric, zero diagonal.
    band_r, band_delta : ndarray (K_band,)
        Band-wise Pearson r of C~_A and C~_B (|i-j| <= k) and mean |Delta C~| on band
        j - i = k, k = 1..K_band (NaN past M - 1).
    rotation : ndarray (3, 3), translation : ndarray (3,), Å
        The superposition of B on A: x -> x @ rotation.T + translation.
    displacement : ndarray (M, 3), Å
        B superposed on A minus A.
    rmsd : float, Å
    overlap_a, overlap_b : ndarray (K,)
        Overlap of the displacement with each of the top K modes of A's (B's) predicted
        motion on the aligned residues; NaN when not two conformations.
    cumulative_overlap_a, cumulative_overlap_b : float in [0, 1] or NaN
    relative_units : bool
        True when either side's amplitudes are relative (kT/gamma): Delta RMSF and the
        divergences then mix units and only their pattern means something.
    """

    name_a: str
    name_b: str
    model_a: str
    model_b: str
    residues_a: tuple
    residues_b: tuple
    index_a: np.ndarray
    index_b: np.ndarray
    unaligned_a: np.ndarray
    unaligned_b: np.ndarray
    identity: float
    coverage: float
    cigar: str
    mean_a: np.ndarray
    mean_b: np.ndarray
    rmsf_a: np.ndarray
    rmsf_b: np.ndarray
    delta_rmsf: np.ndarray
    log_volume_ratio: np.ndarray
    axis_angle: np.ndarray
    sym_kl: np.ndarray
    wasserstein: np.ndarray
    delta_correlation: np.ndarray
    band_r: np.ndarray
    band_delta: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    displacement: np.ndarray
    rmsd: float
    overlap_a: np.ndarray
    overlap_b: np.ndarray
    cumulative_overlap_a: float
    cumulative_overlap_b: float
    relative_units: bool = False

    def __post_init__(self):
        fail = InputError
        res_a = tuple(self.residues_a)
        res_b = tuple(self.residues_b)
        ia = np.asarray(self.index_a, dtype=np.int64)
        ib = np.asarray(self.index_b, dtype=np.int64)
        m = len(ia)
        if ia.ndim != 1 or ib.shape != ia.shape or m < MIN_ALIGNED:
            raise fail(f"index_a/index_b: expected two 1-D index arrays of one length >= {MIN_ALIGNED}, "
                       f"got {ia.shape} and {ib.shape}")
        for idx, n, name in ((ia, len(res_a), "index_a"), (ib, len(res_b), "index_b")):
            if idx.min() < 0 or idx.max() >= n or np.any(np.diff(idx) <= 0):
                raise fail(f"{name}: expected strictly increasing residue indices in 0..{n - 1}")
        arrays = {"index_a": ia, "index_b": ib,
                  "unaligned_a": np.asarray(self.unaligned_a, dtype=np.int64).reshape(-1),
                  "unaligned_b": np.asarray(self.unaligned_b, dtype=np.int64).reshape(-1)}
        if len(arrays["unaligned_a"]) + m != len(res_a) or len(arrays["unaligned_b"]) + m != len(res_b):
            raise fail("unaligned_a/unaligned_b: aligned and unaligned residues must add up to each chain's length")
        shapes = {k: (m,) for k in _ARRAYS_M}
        shapes.update(mean_a=(m, 3), mean_b=(m, 3), displacement=(m, 3), delta_correlation=(m, m),
                      rotation=(3, 3), translation=(3,))
        for key, shape in shapes.items():
            a = np.asarray(getattr(self, key), dtype=np.float64)
            if a.shape != shape:
                raise fail(f"{key}: expected shape {shape} for {m} aligned residues, got {a.shape}")
            if key in _FINITE and not np.all(np.isfinite(a)):
                raise fail(f"{key}: values must be finite (found NaN or inf)")
            arrays[key] = a
        for key in ("band_r", "band_delta", "overlap_a", "overlap_b"):
            a = np.asarray(getattr(self, key), dtype=np.float64)
            if a.ndim != 1:
                raise fail(f"{key}: expected a 1-D array, got shape {a.shape}")
            arrays[key] = a
        if arrays["overlap_a"].shape != arrays["overlap_b"].shape:
            raise fail("overlap_a/overlap_b: expected one number of modes on both sides")
        if not np.allclose(arrays["delta_rmsf"], arrays["rmsf_b"] - arrays["rmsf_a"], atol=1e-9):
            raise fail("delta_rmsf: expected rmsf_b - rmsf_a")
        dc = arrays["delta_correlation"]
        if np.abs(dc - dc.T).max(initial=0.0) > 1e-9:
            raise fail("delta_correlation: expected a symmetric matrix")
        rot = arrays["rotation"]
        if np.abs(rot @ rot.T - np.eye(3)).max() > 1e-6 or np.linalg.det(rot) < 0:
            raise fail("rotation: expected a proper rotation matrix")
        for key in ("identity", "coverage"):
            v = float(getattr(self, key))
            if not 0.0 <= v <= 1.0:
                raise fail(f"{key}: expected a fraction in [0, 1], got {v!r}")
            object.__setattr__(self, key, v)
        rmsd = float(self.rmsd)
        if not (math.isfinite(rmsd) and rmsd >= 0):
            raise fail(f"rmsd: expected a finite distance >= 0 Å, got {self.rmsd!r}")
        object.__setattr__(self, "rmsd", rmsd)
        for key in ("cumulative_overlap_a", "cumulative_overlap_b"):
            object.__setattr__(self, key, float(getattr(self, key)))
        for key, a in arrays.items():
            a.setflags(write=False)
            object.__setattr__(self, key, a)
        object.__setattr__(self, "residues_a", res_a)
        object.__setattr__(self, "residues_b", res_b)
        for key in ("name_a", "name_b", "model_a", "model_b", "cigar"):
            object.__setattr__(self, key, str(getattr(self, key)))
        object.__setattr__(self, "relative_units", bool(self.relative_units))

    # ------------------------------------------------------------------ derived
    @property
    def n_aligned(self) -> int:
        """M, the number of aligned residue pairs."""
        return int(len(self.index_a))

    @property
    def aligned_a(self) -> tuple:
        """The M aligned residues of A (Residue ids)."""
        return tuple(self.residues_a[i] for i in self.index_a)

    @property
    def aligned_b(self) -> tuple:
        """The M aligned residues of B (Residue ids)."""
        return tuple(self.residues_b[j] for j in self.index_b)

    @property
    def displacement_norm(self) -> np.ndarray:
        """|d_i|, shape (M,), Å."""
        return np.linalg.norm(self.displacement, axis=1)

    @property
    def two_conformations(self) -> bool:
        """True when the superposed structures differ by at least :data:`MIN_CONFORMATION_RMSD`."""
        return self.rmsd >= MIN_CONFORMATION_RMSD

    @property
    def n_modes(self) -> int:
        return int(len(self.overlap_a))

    @property
    def overlap_baseline(self) -> float:
        """Expected cumulative overlap of a random direction with K modes: sqrt(K / 3M)."""
        return math.sqrt(min(1.0, self.n_modes / (3.0 * self.n_aligned)))

    @property
    def delta_correlation_per_residue(self) -> np.ndarray:
        """mean_j |C~_B,ij - C~_A,ij| over the other aligned residues, shape (M,)."""
        m = self.n_aligned
        return np.abs(self.delta_correlation).sum(axis=1) / max(m - 1, 1)

    @property
    def rmsf_unit(self) -> str:
        return "relative" if self.relative_units else "Å"

    def values(self, key: str) -> np.ndarray:
        """A per-residue quantity, shape (M,): one of :data:`CHANGE_KEYS`."""
        if key == "displacement":
            return self.displacement_norm
        if key == "delta_correlation":
            return self.delta_correlation_per_residue
        if key not in CHANGE_KEYS:
            raise InputError(f"key must be one of {', '.join(CHANGE_KEYS)}, got {key!r}")
        return np.asarray(getattr(self, key))

    def top_changes(self, k: int = 10, key: str = "delta_rmsf") -> np.ndarray:
        """Positions (into the M aligned pairs) of the ``k`` largest |values(key)|, largest first
        (NaN last)."""
        v = np.abs(self.values(key))
        order = np.argsort(np.where(np.isnan(v), -np.inf, -v), kind="stable")
        return order[: max(0, int(k))]

    def table(self, k: int = 10, key: str = "delta_rmsf") -> list[dict]:
        """The ``k`` residues that change most by ``key``: one dict per residue with its labels
        in A and B and every per-residue quantity."""
        rows = []
        for p in self.top_changes(k, key):
            rows.append({
                "position": int(p), "a": self.residues_a[self.index_a[p]].label(),
                "b": self.residues_b[self.index_b[p]].label(),
                "rmsf_a": float(self.rmsf_a[p]), "rmsf_b": float(self.rmsf_b[p]),
                "delta_rmsf": float(self.delta_rmsf[p]), "log_volume_ratio": float(self.log_volume_ratio[p]),
                "axis_angle": float(self.axis_angle[p]), "sym_kl": float(self.sym_kl[p]),
                "wasserstein": float(self.wasserstein[p]), "displacement": float(self.displacement_norm[p]),
                "delta_correlation": float(self.delta_correlation_per_residue[p]),
            })
        return rows

    def summary(self, top: int = 5) -> str:
        """A few lines for people: alignment, RMSD, overlaps, residues that change most."""
        u = self.rmsf_unit
        lines = [
            f"compare {self.name_a} ({self.model_a}, {len(self.residues_a)} residues) -> {self.name_b} "
            f"({self.model_b}, {len(self.residues_b)} residues)",
            f"alignment: {self.n_aligned} pairs, identity {100 * self.identity:.1f}%, coverage "
            f"{100 * self.coverage:.1f}% of the shorter chain; unaligned: {len(self.unaligned_a)} in A, "
            f"{len(self.unaligned_b)} in B",
            f"delta RMSF (B - A, {u}): min {self.delta_rmsf.min():+.2f}  median {np.median(self.delta_rmsf):+.2f}  "
            f"max {self.delta_rmsf.max():+.2f}; mean sym-KL {self.sym_kl.mean():.3f}; "
            f"RMWD {math.sqrt(float(np.mean(self.wasserstein ** 2))):.3f} {u}",
        ]
        finite = self.band_r[np.isfinite(self.band_r)]
        if finite.size:
            lines.append(f"correlation: band-wise r k=1 {self.band_r[0]:.3f}, k={len(self.band_r)} "
                         f"{self.band_r[-1]:.3f}; mean |delta C~| {np.abs(self.delta_correlation).mean():.3f}")
        if self.two_conformations:
            d = self.displacement_norm
            big = np.argsort(-d)[:top]
            lines.append(f"displacement: RMSD {self.rmsd:.2f} Å after superposition, largest at "
                         + ", ".join(f"{self.residues_a[self.index_a[p]].label()} ({d[p]:.1f} Å)" for p in big))
            lines.append(f"overlap with predicted motion ({self.n_modes} modes; random {self.overlap_baseline:.2f}): "
                         f"A {self.cumulative_overlap_a:.2f} (best mode {np.nanmax(self.overlap_a):.2f}), "
                         f"B {self.cumulative_overlap_b:.2f} (best mode {np.nanmax(self.overlap_b):.2f})")
        else:
            lines.append(f"one conformation: RMSD {self.rmsd:.2f} Å < {MIN_CONFORMATION_RMSD} Å, no displacement "
                         "overlap scored")
        lines.append("most changed (delta RMSF): " + ", ".join(
            f"{r['a']} ({r['delta_rmsf']:+.2f})" for r in self.table(top, "delta_rmsf")))
        return "\n".join(lines)

    # ------------------------------------------------------------------ I/O
    def to_arrays(self) -> dict:
        """Every field as arrays (what :meth:`save` writes)."""
        out = {k: np.asarray(getattr(self, k)) for k in (
            "index_a", "index_b", "unaligned_a", "unaligned_b", "mean_a", "mean_b", "rmsf_a", "rmsf_b",
            "delta_rmsf", "log_volume_ratio", "axis_angle", "sym_kl", "wasserstein", "delta_correlation",
            "band_r", "band_delta", "rotation", "translation", "displacement", "overlap_a", "overlap_b")}
        for k in ("identity", "coverage", "rmsd", "cumulative_overlap_a", "cumulative_overlap_b"):
            out[k] = np.array(float(getattr(self, k)))
        for k in ("name_a", "name_b", "model_a", "model_b", "cigar"):
            out[k] = np.array(str(getattr(self, k)))
        out["relative_units"] = np.array(self.relative_units)
        out.update(_residue_arrays(self.residues_a, "residue_a"))
        out.update(_residue_arrays(self.residues_b, "residue_b"))
        return out

    def save(self, path) -> Path:
        """Write a ``.npz`` (temporary name, then a rename: no partial file on failure)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **self.to_arrays())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    @classmethod
    def load(cls, path) -> "DynamicsComparison":
        """Read a file written by :meth:`save`."""
        path = Path(path)
        data = read_npz(path)
        need = set(cls.__dataclass_fields__) - {"residues_a", "residues_b"}
        missing = sorted(need - set(data))
        if missing:
            raise InputError(f"{path}: not a comparison file, missing arrays {', '.join(missing)}")
        kw = {k: data[k] for k in need}
        for k in ("identity", "coverage", "rmsd", "cumulative_overlap_a", "cumulative_overlap_b"):
            kw[k] = float(kw[k])
        for k in ("name_a", "name_b", "model_a", "model_b", "cigar"):
            kw[k] = str(kw[k])
        kw["relative_units"] = bool(kw["relative_units"])
        return cls(residues_a=_residues_from(data, "residue_a"), residues_b=_residues_from(data, "residue_b"), **kw)


# ----------------------------------------------------------------------------- the comparison
def _band_delta(delta: np.ndarray, max_band: int) -> np.ndarray:
    m = len(delta)
    out = np.full(max_band, np.nan)
    for k in range(1, min(max_band, m - 1) + 1):
        out[k - 1] = float(np.abs(np.diagonal(delta, k)).mean())
    return out


def compare(a: Dynamics, b: Dynamics, *, name_a: str | None = None, name_b: str | None = None,
            n_modes: int = DEFAULT_MODES, max_band: int = DEFAULT_MAX_BAND, min_coverage: float = MIN_COVERAGE,
            min_identity: float = MIN_IDENTITY) -> DynamicsComparison:
    """Compare the dynamics of B with those of A, residue by residue (module docstring).

    Parameters
    ----------
    a, b : Dynamics
        Two chains of one protein: mean (N, 3) Å, marginals (N, 3, 3) Å², coupling (N, N) Å².
    name_a, name_b : str, optional
        Labels (default ``"A (model)"``, ``"B (model)"``).
    n_modes : int >= 1
        Principal modes scored against the displacement (default 10).
    max_band : int >= 1
        Bands of the delta-correlation summary (default 50).
    min_coverage, min_identity : float in [0, 1]
        Alignment acceptance (:func:`align_residues`).

    Returns
    -------
    DynamicsComparison

    Raises
    ------
    InputError
        The chains do not align (coverage or identity too low), fewer than 5 aligned
        residues, or bad parameters.  TypeError when a or b is not a Dynamics.
    """
    for value, name in ((a, "a"), (b, "b")):
        if not isinstance(value, Dynamics):
            raise TypeError(f"{name} must be a Dynamics (dynaprot_viz.predict or Dynamics.load), "
                            f"got {type(value).__name__}")
    if isinstance(max_band, bool) or int(max_band) != max_band or max_band < 1:
        raise InputError(f"max_band: expected an integer >= 1, got {max_band!r}")
    if isinstance(n_modes, bool) or int(n_modes) != n_modes or n_modes < 1:
        raise InputError(f"n_modes: expected an integer >= 1, got {n_modes!r}")
    name_a = name_a or f"A ({a.model_name})"
    name_b = name_b or f"B ({b.model_name})"
    aln = align_residues(a.residues, b.residues, min_coverage=min_coverage, min_identity=min_identity,
                         name_a=name_a, name_b=name_b)
    ia, ib = aln.index_a, aln.index_b
    xa, xb = np.asarray(a.mean)[ia], np.asarray(b.mean)[ib]
    rot, trans = kabsch(xb, xa)  # B onto A
    xb_on_a = xb @ rot.T + trans
    disp = xb_on_a - xa  # (M, 3) Å, A's frame
    rmsd = float(np.sqrt((disp * disp).sum(axis=1).mean()))
    marg_a = np.asarray(a.marginals)[ia]
    marg_b = rot @ np.asarray(b.marginals)[ib] @ rot.T  # B's Sigma in A's frame
    div = per_residue_divergences(marg_a, marg_b)
    if a.isotropic or b.isotropic:
        div["axis_angle"] = np.full(len(ia), np.nan)
    ca = np.asarray(a.correlation)[np.ix_(ia, ia)]
    cb = np.asarray(b.correlation)[np.ix_(ib, ib)]
    delta = cb - ca
    delta = 0.5 * (delta + delta.T)
    np.fill_diagonal(delta, 0.0)
    band_r = bandwise_coupling_pearson(ca, cb, max_band=int(max_band))
    k = int(min(n_modes, 3 * len(ia) - 1))
    if rmsd >= MIN_CONFORMATION_RMSD:
        ov_a, co_a, _ = motion_overlap(a, ia, disp, k)
        ov_b, co_b, _ = motion_overlap(b, ib, -disp @ rot, k)  # A on B minus B, in B's frame
    else:
        ov_a = ov_b = np.full(k, np.nan)
        co_a = co_b = math.nan
    rmsf_a, rmsf_b = a.rmsf[ia], b.rmsf[ib]
    return DynamicsComparison(
        name_a=name_a, name_b=name_b, model_a=a.model_name, model_b=b.model_name,
        residues_a=a.residues, residues_b=b.residues, index_a=ia, index_b=ib,
        unaligned_a=aln.unaligned_a, unaligned_b=aln.unaligned_b, identity=aln.identity, coverage=aln.coverage,
        cigar=aln.cigar, mean_a=xa, mean_b=xb_on_a, rmsf_a=rmsf_a, rmsf_b=rmsf_b, delta_rmsf=rmsf_b - rmsf_a,
        log_volume_ratio=div["log_volume_ratio"], axis_angle=div["axis_angle"], sym_kl=div["sym_kl"],
        wasserstein=div["wasserstein"], delta_correlation=delta, band_r=band_r,
        band_delta=_band_delta(delta, int(max_band)), rotation=rot, translation=trans, displacement=disp,
        rmsd=rmsd, overlap_a=ov_a, overlap_b=ov_b, cumulative_overlap_a=co_a, cumulative_overlap_b=co_b,
        relative_units=a.relative_units or b.relative_units,
    )
