"""Cryptic-pocket hotspots from residue-level Gaussian dynamics (DESIGN.md section 6).

A *cryptic pocket* is a site that is closed in the input structure and opens in
some conformations.  Without simulations, a cheap proxy is a spatially
contiguous patch of residues that fluctuate much more than their surroundings,
with motions that point away from the patch (so that it can open).  This module
finds such patches from a :class:`~dynaprot_viz.core.gaussian.Dynamics` alone.

Heuristic (each step is a keyword argument of :func:`find_pockets`)
----------------------------------------------------------------------
1. **Variance per residue.**  For each marginal Sigma_i (3 x 3, Å²) take the
   trace t_i (= RMSF_i²) and the largest eigenvalue l_i (variance along the
   dominant direction); the residue's log variance is s_i = (log t_i + log l_i) / 2.
2. **Top tail.**  A residue is a candidate when both t_i and l_i are at or above
   their ``quantile`` (default 0.8) over the chain(s).
3. **Relative to neighbours.**  Floppy regions are often floppy as a whole; a
   hotspot must also stand out locally: its *contrast*
   c_i = s_i - median{s_j : |x_j - x_i| <= env_radius, j != i} (x = C-alpha,
   ``env_radius`` 12 Å) must be at least ``min_contrast`` (default 0.1, i.e.
   about 10 % more variance than the environment's median).
4. **Termini.**  Chain ends (and the ends of segments at chain breaks, C-alpha
   gaps > 4.2 Å) fluctuate most in every model and in MD, but are not pockets:
   the ``trim_termini`` (default 3) residues at each segment end are excluded.
5. **Patches.**  Candidates whose C-alpha atoms are within ``patch_cutoff``
   (default 8 Å) are joined (single linkage: connected components); patches
   with fewer than ``min_size`` (default 3) residues are dropped.
6. **Score.**  The sum of the contrasts c_i of the patch's residues (natural-log
   units of variance; larger and more outstanding patches score higher).
   Pockets are returned best first, at most ``max_pockets``;
   :func:`best_pocket_score` gives the best score alone, for summaries of many chains.
7. **Directions.**  The dominant motion of residue i is the top eigenvector of
   Sigma_i.  An eigenvector has no sign (the Gaussian moves both ways); we orient
   it away from the patch centroid when it has a radial component
   (|cos| >= 0.2), else away from the protein centroid, else so that its largest
   component is positive: a drawing convention, not a physical direction.
8. **Opening.**  ``opening`` is the fraction of the patch's residues whose
   dominant motion is mostly radial with respect to the patch centroid
   (|cos| >= 0.5, within 60 degrees); ``breathing`` in [0, 1] says whether those
   radial motions happen together: with u_i the unit vector from the centroid to
   residue i and the joint covariance of DynaProt Eq. 3 (block (i, j) =
   C~_ij L_i L_j^T), breathing = Var(sum_i u_i . dx_i) / (sum_i sd(u_i . dx_i))²,
   1 when the patch expands and contracts as one, about 1/k for independent
   motions, near 0 for rigid-body moves of the patch.  ``opens`` is
   ``opening >= 0.5``.

Limits
------
- It sees C-alpha variance only: no side chains, no solvent, no pocket volume.
  A hotspot is a place to look, not a detected pocket (use fpocket or MD for that).
- The result is only as good as the predictor: an isotropic model (``isotropic``
  is True) has no dominant directions (they are arbitrary) and ``opening`` is
  meaningless there.  ANM favours loops with few contacts.
- Thresholds are relative to the chain itself: every structure yields its own
  top tail, so a rigid protein still gets (weak) candidates; compare ``score``
  across proteins with care.
- Only the coupling's trace-pooled correlation enters ``breathing`` (Eq. 3), not
  the true 3 x 3 cross-covariances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .errors import InputError, ShapeError
from .gaussian import Dynamics

__all__ = ["Pocket", "best_pocket_score", "find_pockets", "hotspot_contrast", "segment_ends"]

_CHAIN_BREAK = 4.2  # Å: consecutive C-alpha atoms farther apart than this are not bonded
_RADIAL_FOR_SIGN = 0.2  # |cos| above which the patch centroid decides a direction's sign
_RADIAL_FOR_OPENING = 0.5  # |cos| above which a motion counts as radial (60 degrees)


@dataclass(frozen=True, eq=False)
class Pocket:
    """One candidate cryptic-pocket patch.

    Attributes
    ----------
    residues : ndarray, shape (k,), int64
        Indices into ``Dynamics.residues`` (ascending).
    score : float
        Sum of the residues' log-variance contrasts (see module docstring).
    directions : ndarray, shape (k, 3), unit vectors
        Dominant motion direction of each residue (top eigenvector of Sigma_i,
        oriented away from ``centroid`` where it has a radial component).
    centroid : ndarray, shape (3,), Å
        Mean C-alpha position of the patch.
    opening : float
        Fraction (0..1) of residues whose dominant motion is radial to the patch.
    breathing : float
        Coherence (0..1) of the residues' radial motions (1: open and close as one).
    contrast : ndarray, shape (k,)
        Per-residue log-variance excess over the spatial environment.
    """

    residues: np.ndarray
    score: float
    directions: np.ndarray
    centroid: np.ndarray
    opening: float
    breathing: float
    contrast: np.ndarray

    def __post_init__(self):
        res = np.asarray(self.residues, dtype=np.int64).reshape(-1)
        k = len(res)
        if k < 1:
            raise ShapeError("a Pocket needs at least one residue")
        dirs = np.asarray(self.directions, dtype=np.float64)
        if dirs.shape != (k, 3):
            raise ShapeError(f"directions must have shape ({k}, 3), got {dirs.shape}")
        if not np.allclose(np.linalg.norm(dirs, axis=1), 1.0, atol=1e-6):
            raise ShapeError("directions must be unit vectors")
        cen = np.asarray(self.centroid, dtype=np.float64)
        if cen.shape != (3,):
            raise ShapeError(f"centroid must have shape (3,), got {cen.shape}")
        con = np.asarray(self.contrast, dtype=np.float64)
        if con.shape != (k,):
            raise ShapeError(f"contrast must have shape ({k},), got {con.shape}")
        for name, value in (("opening", self.opening), ("breathing", self.breathing)):
            if not (0.0 <= float(value) <= 1.0 + 1e-9):
                raise ShapeError(f"{name} must be in [0, 1], got {value}")
        for name, arr in (("residues", res), ("directions", dirs), ("centroid", cen), ("contrast", con)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "score", float(self.score))
        object.__setattr__(self, "opening", float(min(self.opening, 1.0)))
        object.__setattr__(self, "breathing", float(min(self.breathing, 1.0)))

    def __len__(self) -> int:
        return len(self.residues)

    @property
    def opens(self) -> bool:
        """True when most residues move radially (``opening >= 0.5``)."""
        return self.opening >= 0.5

    def labels(self, dynamics: Dynamics) -> list[str]:
        """Human labels (``A:42 MET``) of the residues, from the Dynamics they index."""
        return [dynamics.residues[i].label() for i in self.residues]

    def __repr__(self) -> str:
        return (f"Pocket({len(self)} residues {list(map(int, self.residues[:6]))}"
                f"{'...' if len(self) > 6 else ''}, score={self.score:.2f}, "
                f"opening={self.opening:.2f}, breathing={self.breathing:.2f})")


def segment_ends(dynamics: Dynamics, trim: int) -> np.ndarray:
    """Mask of residues within ``trim`` of a chain end or chain break, shape (N,), bool."""
    n = dynamics.n_residues
    mask = np.zeros(n, dtype=bool)
    if trim <= 0:
        return mask
    x = dynamics.mean
    chains = np.array([r.chain for r in dynamics.residues])
    gap = np.linalg.norm(np.diff(x, axis=0), axis=1) > _CHAIN_BREAK
    new_segment = np.concatenate([[True], gap | (chains[1:] != chains[:-1])])
    starts = np.flatnonzero(new_segment)
    ends = np.concatenate([starts[1:], [n]])
    for s, e in zip(starts, ends):
        mask[s:min(s + trim, e)] = True
        mask[max(e - trim, s):e] = True
    return mask


def hotspot_contrast(dynamics: Dynamics, env_radius: float = 12.0) -> np.ndarray:
    """Log-variance contrast of each residue with its spatial environment, shape (N,).

    c_i = s_i - median{s_j : |x_j - x_i| <= env_radius Å, j != i}, with
    s_i = (log tr Sigma_i + log lambda_max(Sigma_i)) / 2 (natural log of Å²).
    Residues without neighbours get 0.
    """
    return _contrast(dynamics.mean, _log_variance(_variances(dynamics)), env_radius)


def _variances(dynamics: Dynamics) -> np.ndarray:
    """Eigenvalues of every marginal Sigma_i, ascending, shape (N, 3), Å² (step 1)."""
    return np.linalg.eigvalsh(dynamics.marginals)


def _log_variance(w: np.ndarray) -> np.ndarray:
    """s_i = (log t_i + log l_i) / 2 from the eigenvalues ``w`` (N, 3) Å²; shape (N,)."""
    return 0.5 * (np.log(w.sum(axis=1)) + np.log(w[:, 2]))


def _contrast(x: np.ndarray, s: np.ndarray, env_radius: float) -> np.ndarray:
    """c_i = s_i - median of s over the other residues within ``env_radius`` Å of x_i (step 3).

    x : (N, 3) Å, s : (N,).  Returns (N,), 0 where a residue has no neighbour.
    """
    n = len(s)
    out = np.zeros(n)
    # neighbour pairs (i, j), i != j, both ways; one lexicographic sort (by row, then value)
    # groups every row's neighbour values in ascending order, so that each median is one or
    # two look-ups (np.nanmedian over a NaN-padded table gave the same values; this contrast takes 25% less time)
    pairs = cKDTree(x).query_pairs(r=env_radius, output_type="ndarray")
    if len(pairs) == 0:
        return out
    rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
    values = s[np.concatenate([pairs[:, 1], pairs[:, 0]])]
    values = values[np.lexsort((values, rows))]
    counts = np.bincount(rows, minlength=n)
    has = counts > 0
    start = (np.cumsum(counts) - counts)[has]
    c = counts[has]
    # the mean of the two middle values (the same one twice when c is odd), summed then
    # halved as numpy's median does, so that the contrast is np.median's bit for bit
    low, high = values[start + (c - 1) // 2], values[start + c // 2]
    out[has] = s[has] - (low + high) / 2.0
    return out


def _check_arguments(dynamics, quantile, env_radius, patch_cutoff, min_size, trim_termini, max_pockets=1) -> None:
    if not isinstance(dynamics, Dynamics):
        raise TypeError(f"dynamics must be a Dynamics, got {type(dynamics).__name__}")
    if not 0.0 < quantile < 1.0:
        raise InputError(f"quantile must be in (0, 1), got {quantile!r}")
    for name, value in (("env_radius", env_radius), ("patch_cutoff", patch_cutoff)):
        if not (np.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a positive distance in Å, got {value!r}")
    if int(min_size) < 1 or int(max_pockets) < 0 or int(trim_termini) < 0:
        raise InputError("min_size must be >= 1, max_pockets and trim_termini >= 0")


def _patches(dynamics, *, quantile, env_radius, min_contrast, patch_cutoff, min_size, trim_termini):
    """Steps 1-6 of the heuristic: (contrast (N,), patches, scores).

    ``patches`` is a list of residue-index arrays (ascending), ``scores`` their
    scores (sum of the contrasts, a Python float each), both in no particular order.
    """
    w = _variances(dynamics)
    trace, lmax = w.sum(axis=1), w[:, 2]
    contrast = _contrast(dynamics.mean, _log_variance(w), env_radius)
    candidate = (
        (trace >= np.quantile(trace, quantile))
        & (lmax >= np.quantile(lmax, quantile))
        & (contrast >= min_contrast)
        & ~segment_ends(dynamics, int(trim_termini))
    )
    idx = np.flatnonzero(candidate)
    if len(idx) == 0:
        return contrast, [], []
    pairs = cKDTree(dynamics.mean[idx]).query_pairs(patch_cutoff, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(idx), len(idx)))
    n_comp, label = connected_components(graph, directed=False)
    sizes = np.bincount(label, minlength=n_comp)
    patches = [idx[label == c] for c in np.flatnonzero(sizes >= int(min_size))]  # idx ascending: so are they
    return contrast, patches, [float(contrast[m].sum()) for m in patches]


def find_pockets(
    dynamics: Dynamics,
    source=None,
    *,
    quantile: float = 0.8,
    env_radius: float = 12.0,
    min_contrast: float = 0.1,
    patch_cutoff: float = 8.0,
    min_size: int = 3,
    trim_termini: int = 3,
    max_pockets: int = 10,
) -> list[Pocket]:
    """Candidate cryptic-pocket patches, best first (heuristic in the module docstring).

    Parameters
    ----------
    dynamics : Dynamics
        mean (N, 3) Å, marginals (N, 3, 3) Å², coupling (N, N) Å².
    source : path, gemmi.Structure or ProteinChain, optional
        The structure the dynamics came from.  Only checked: every residue of
        ``dynamics`` must be in it (an :class:`InputError` otherwise), so that
        pocket indices can be mapped back onto the file safely.
    quantile : float in (0, 1)
        Top tail of trace and largest eigenvalue that candidates must reach.
    env_radius : float, Å
        Radius of the spatial environment for the contrast.
    min_contrast : float
        Minimum log-variance excess over the environment's median.
    patch_cutoff : float, Å
        C-alpha distance that joins two candidates into one patch.
    min_size : int
        Smallest patch kept.
    trim_termini : int
        Residues excluded at each chain end and chain break.
    max_pockets : int
        At most this many pockets are returned.

    Returns
    -------
    list[Pocket]
        Possibly empty, sorted by decreasing ``score``.

    See Also
    --------
    best_pocket_score : the first pocket's score alone, without building the pockets.
    """
    _check_arguments(dynamics, quantile, env_radius, patch_cutoff, min_size, trim_termini, max_pockets)
    if source is not None:
        _check_source(dynamics, source)
    contrast, patches, scores = _patches(dynamics, quantile=quantile, env_radius=env_radius,
                                         min_contrast=min_contrast, patch_cutoff=patch_cutoff,
                                         min_size=min_size, trim_termini=trim_termini)
    if not patches or int(max_pockets) == 0:
        return []
    protein_centre = dynamics.mean.mean(axis=0)
    pockets = [_make_pocket(dynamics, members, score, contrast[members], protein_centre)
               for members, score in zip(patches, scores)]
    pockets.sort(key=lambda p: -p.score)
    return pockets[: int(max_pockets)]


def best_pocket_score(
    dynamics: Dynamics,
    *,
    quantile: float = 0.8,
    env_radius: float = 12.0,
    min_contrast: float = 0.1,
    patch_cutoff: float = 8.0,
    min_size: int = 3,
    trim_termini: int = 3,
) -> float:
    """Score of the best cryptic-pocket patch: ``find_pockets(dynamics, **same)[0].score``.

    The same steps 1-6 as :func:`find_pockets` (shared code, so equal bit for bit),
    without building the :class:`Pocket` objects (their directions, opening and
    breathing need every marginal's eigenvectors and square root and the (N, N)
    correlation): for per-chain summaries of many structures.

    Parameters
    ----------
    dynamics : Dynamics
        mean (N, 3) Å, marginals (N, 3, 3) Å².
    quantile, env_radius, min_contrast, patch_cutoff, min_size, trim_termini
        As in :func:`find_pockets` (env_radius and patch_cutoff in Å), same defaults.

    Returns
    -------
    float
        Sum of the best patch's log-variance contrasts (natural log of Å² ratios);
        NaN when :func:`find_pockets` finds no pocket.
    """
    _check_arguments(dynamics, quantile, env_radius, patch_cutoff, min_size, trim_termini)
    _, _, scores = _patches(dynamics, quantile=quantile, env_radius=env_radius, min_contrast=min_contrast,
                            patch_cutoff=patch_cutoff, min_size=min_size, trim_termini=trim_termini)
    return max(scores) if scores else float("nan")


def _make_pocket(dynamics, members, score, contrast, protein_centre) -> Pocket:
    """Steps 7-8 for one patch: ``members`` (k,) ascending, ``contrast`` (k,), ``protein_centre`` (3,) Å."""
    top_vectors = np.linalg.eigh(dynamics.marginals[members])[1][:, :, 2]  # [k, 3], of the largest eigenvalue
    x = dynamics.mean[members]
    centroid = x.mean(axis=0)
    radial = x - centroid
    rnorm = np.linalg.norm(radial, axis=1)
    u = np.divide(radial, rnorm[:, None], out=np.zeros_like(radial), where=rnorm[:, None] > 1e-9)
    dirs = top_vectors / np.linalg.norm(top_vectors, axis=1, keepdims=True)
    cos = np.einsum("ka,ka->k", dirs, u)
    # sign convention: away from the patch centroid, else from the protein centre, else largest component +
    outward = x - protein_centre
    cos_out = np.einsum("ka,ka->k", dirs, outward)
    largest = dirs[np.arange(len(dirs)), np.argmax(np.abs(dirs), axis=1)]
    sign = np.where(np.abs(cos) >= _RADIAL_FOR_SIGN, np.sign(cos),
                    np.where(np.abs(cos_out) > 1e-9, np.sign(cos_out), np.sign(largest)))
    sign[sign == 0] = 1.0
    dirs = dirs * sign[:, None]
    opening = float(np.mean(np.abs(cos) >= _RADIAL_FOR_OPENING))
    # breathing: Var(sum_i u_i.dx_i) with block (i, j) = C~_ij L_i L_j^T (Eq. 3), L_i symmetric
    lm = dynamics.marginal_factors()[members]  # [k, 3, 3]
    a = np.einsum("kab,kb->ka", lm, u)  # [k, 3] = L_i u_i
    corr = dynamics.correlation[np.ix_(members, members)]
    var_r = float(np.einsum("ij,ia,ja->", corr, a, a))
    sd_sum = float(np.linalg.norm(a, axis=1).sum())
    breathing = max(var_r, 0.0) / sd_sum**2 if sd_sum > 0 else 0.0
    return Pocket(residues=members, score=score, directions=dirs, centroid=centroid,
                  opening=opening, breathing=min(breathing, 1.0), contrast=contrast)


def _check_source(dynamics: Dynamics, source) -> None:
    from .structure import ProteinChain, load_chain

    chains = sorted({r.chain for r in dynamics.residues})
    present = set()
    for ch in chains:
        pc = source if isinstance(source, ProteinChain) else load_chain(source, chain=ch)
        present.update((r.chain, r.number, r.icode) for r in pc.residues)
    missing = [r.label() for r in dynamics.residues if (r.chain, r.number, r.icode) not in present]
    if missing:
        name = getattr(source, "source", source)
        raise InputError(f"{name}: {len(missing)} residues of the dynamics are not in the structure "
                         f"(first: {missing[0]})")
