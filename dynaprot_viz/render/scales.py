"""Colour ranges, residue ticks and matrix orientation shared by every view.

The page (:mod:`dynaprot_viz.html`), the figure (:mod:`dynaprot_viz.figure`) and
the notebook widget (:mod:`dynaprot_viz.widget`) draw the same things the same
way; the choices live here, once:

- **Orientation.**  Residue-by-residue maps are drawn as matrices: residue 1 (row
  0) at the top left, the diagonal from the top left to the bottom right
  (:data:`HEATMAP_ORIGIN` ``"upper"``, matplotlib's ``imshow(origin="upper")``;
  the page's canvas puts row 0 at the top too).
- **RMSF colours.**  Robust range: the 2nd to 98th percentile of RMSF_i (Å), so
  one floppy terminus does not darken the whole chain; values outside are clamped
  and the legend states the true minimum and maximum (:func:`rmsf_color_range`).
- **Correlation colours.**  The DCCM C~_ij lies in -1..1, but for an elastic
  network on a long chain most entries are tiny (median |C~_ij| ~ 0.03 at 350
  residues), so a -1..1 map is nearly blank.  :func:`correlation_view` offers the
  full range or a robust symmetric range (98th percentile of |C~_ij|, i != j), of
  the DCCM or of the correlation of the slowest (largest-variance) modes of the
  coupling C, and always says which one is shown.
- **Ticks** on round residue numbers (10, 20, 50, 100, ...), labelled with the
  residue number (chain prefix when there are several chains):
  :func:`residue_ticks`.

Nothing here computes dynamics: it reads a :class:`~dynaprot_viz.core.gaussian.Dynamics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.errors import InputError
from ..core.gaussian import Dynamics

__all__ = [
    "chain_bounds",
    "HEATMAP_ORIGIN",
    "RMSF_PERCENTILES",
    "CORRELATION_RANGES",
    "DEFAULT_SLOW_MODES",
    "CorrelationView",
    "rmsf_color_range",
    "rmsf_range_note",
    "residue_ticks",
    "correlation_view",
    "slow_mode_correlation",
]

#: residue 1 at the top left, diagonal from top left to bottom right (matplotlib ``origin``)
HEATMAP_ORIGIN = "upper"
#: percentiles (of RMSF_i) at the two ends of the RMSF colour scale
RMSF_PERCENTILES = (2.0, 98.0)
#: colour ranges of the correlation map: see :func:`correlation_view`
CORRELATION_RANGES = ("auto", "full", "robust")
#: number of slowest coupling modes kept by the slow-mode correlation view
DEFAULT_SLOW_MODES = 10
#: percentile of |C~_ij| (i != j) at the ends of the robust correlation range
_CORRELATION_PERCENTILE = 98.0
#: ``"auto"`` keeps -1..1 when at least 2 % of the entries reach this |C~_ij|
_AUTO_FULL_ABOVE = 0.5
#: round tick steps (residues)
_STEPS = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000)


def rmsf_color_range(rmsf) -> tuple[float, float]:
    """Ends (Å) of the RMSF colour scale: the 2nd and 98th percentiles of ``rmsf`` (N,).

    Values outside are drawn in the end colours; state the true range beside the
    colour bar (:func:`rmsf_range_note`).  A constant profile gets a tiny range
    around its value.
    """
    r = np.asarray(rmsf, dtype=np.float64)
    if r.ndim != 1 or r.size == 0 or not np.all(np.isfinite(r)):
        raise InputError(f"rmsf must be a non-empty finite 1-D array, got shape {r.shape}")
    lo, hi = (float(v) for v in np.percentile(r, RMSF_PERCENTILES))
    if not hi > lo:
        hi = lo + max(1e-6, 1e-6 * abs(lo))
    return lo, hi


def rmsf_range_note(rmsf, unit: str = "Å") -> str:
    """One line for a legend: the colours' span and the true range, e.g.
    ``"colours 2nd-98th percentile; all values 0.76-10.34 Å"``."""
    r = np.asarray(rmsf, dtype=np.float64)
    return (f"colours span the {_ordinal(RMSF_PERCENTILES[0])}-{_ordinal(RMSF_PERCENTILES[1])} percentile; "
            f"all values {r.min():.2f}-{r.max():.2f} {unit}")


def _ordinal(p: float) -> str:
    k = int(round(p))
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def residue_ticks(residues, target: int = 6) -> list[tuple[int, str]]:
    """Tick positions on round residue numbers.

    Parameters
    ----------
    residues : sequence of Residue
        ``Dynamics.residues`` (chain, number, icode, name), N items.
    target : int
        About how many ticks.

    Returns
    -------
    list of (index, label)
        ``index`` into ``residues`` (0..N-1), ``label`` the residue number (with the
        chain name first when there are several chains).  Numbers are multiples of a
        round step (1, 2, 5, 10, 20, 25, 50, 100, ...); residues with an insertion
        code are skipped.  When the numbering has too few round numbers (e.g. odd
        numbering), evenly spaced indices are used instead.
    """
    residues = list(residues)
    n = len(residues)
    if n == 0:
        return []
    chains = {r.chain for r in residues}
    multi = len(chains) > 1

    def label(r):
        return f"{r.chain or '_'}{r.number}" if multi else f"{r.number}"

    target = max(2, int(target))
    for step in _STEPS:
        if n / step <= target * 1.5:
            break
    min_gap = max(1, int(0.6 * step))  # indices; keeps labels apart across chain breaks
    out: list[tuple[int, str]] = []
    for i, r in enumerate(residues):
        if r.icode.strip() or r.number % step:
            continue
        if out and i - out[-1][0] < min_gap:
            continue
        out.append((i, label(r)))
    if len(out) < 2:
        k = max(1, math.ceil(n / target))
        out = [(i, label(residues[i])) for i in range(0, n, k)]
    return out


def slow_mode_correlation(coupling, k: int = DEFAULT_SLOW_MODES) -> tuple[np.ndarray, float]:
    """Correlation of the ``k`` largest-variance modes of the coupling matrix.

    With C = U diag(lambda) U^T (coupling, (N, N) Å², eigenvalues descending),
    C_k = U_k diag(lambda_k) U_k^T keeps the k slowest (largest-variance) collective
    motions and C~_k,ij = C_k,ij / sqrt(C_k,ii C_k,jj) is their correlation, the map
    NMA papers show for "the slowest modes".

    Returns
    -------
    correlation : ndarray (N, N), dimensionless, -1..1
    fraction : float
        Share of the total variance (trace of C) the k modes carry.
    """
    c = np.asarray(coupling, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise InputError(f"coupling must be square (N, N), got {c.shape}")
    n = c.shape[0]
    k = int(k)
    if not 1 <= k:
        raise InputError(f"the number of slow modes must be at least 1, got {k}")
    k = min(k, n)
    w, u = np.linalg.eigh(0.5 * (c + c.T))
    w, u = w[::-1][:k], u[:, ::-1][:, :k]  # [k], [N, k] largest first
    w = np.clip(w, 0.0, None)
    ck = (u * w) @ u.T  # [N, N]
    d = np.sqrt(np.clip(np.diag(ck), 1e-300, None))
    corr = np.clip(ck / np.outer(d, d), -1.0, 1.0)
    total = float(np.trace(c))
    return corr, (float(w.sum()) / total if total > 0 else float("nan"))


@dataclass(frozen=True, eq=False)
class CorrelationView:
    """A residue-residue correlation map as drawn.

    Attributes
    ----------
    matrix : ndarray (N, N), dimensionless
        What is drawn: the DCCM C~, or the slow-mode correlation.
    vmin, vmax : float
        Colour range (symmetric about 0); entries beyond are clamped.
    kind : str
        ``"full"`` (-1..1) or ``"robust"`` (±98th percentile of |C_ij|, i != j).
    what : str
        What the matrix is: ``"correlation (DCCM)"`` or ``"correlation of the 10
        slowest modes (31% of variance)"``.
    range_note : str
        How the colours map: ``"-1..1"`` or ``"colours ±0.22 (98th percentile of
        |C_ij|, i≠j; beyond clamped)"``.
    """

    matrix: np.ndarray
    vmin: float
    vmax: float
    kind: str
    what: str
    range_note: str

    @property
    def label(self) -> str:
        """One line: what is shown and in which colour range."""
        return f"{self.what}, {self.range_note}"


def correlation_view(dynamics: Dynamics, color_range: str = "auto",
                     slow_modes: int | None = None) -> CorrelationView:
    """The correlation map to draw and its colour range.

    Parameters
    ----------
    dynamics : Dynamics
        Its ``correlation`` (N, N) (DCCM) and ``coupling`` (N, N) Å².
    color_range : {"auto", "full", "robust"}
        ``"full"``: -1..1.  ``"robust"``: ±q, q the 98th percentile of |C_ij| over
        i != j (entries beyond are clamped).  ``"auto"`` (default): ``"full"`` when
        at least 2 % of the off-diagonal entries reach |C| = 0.5, else ``"robust"``
        (ANM's DCCM on chains of a few hundred residues).
    slow_modes : int, optional
        Draw the correlation of this many largest-variance modes of the coupling
        (:func:`slow_mode_correlation`) instead of the DCCM.
    """
    if color_range not in CORRELATION_RANGES:
        raise InputError(f"correlation colour range must be one of {', '.join(CORRELATION_RANGES)}, "
                         f"got {color_range!r}")
    if slow_modes is None:
        corr = np.asarray(dynamics.correlation, dtype=np.float64)
        what = "correlation (DCCM)"
    else:
        corr, frac = slow_mode_correlation(dynamics.coupling, slow_modes)
        k = min(int(slow_modes), corr.shape[0])
        what = f"correlation of the {k} slowest modes ({100 * frac:.0f}% of variance)"
    n = corr.shape[0]
    off = np.abs(corr[~np.eye(n, dtype=bool)]) if n > 1 else np.zeros(1)
    q = float(np.percentile(off, _CORRELATION_PERCENTILE))
    if color_range == "auto":
        color_range = "full" if q >= _AUTO_FULL_ABOVE else "robust"
    if color_range == "full" or not q > 0:
        return CorrelationView(corr, -1.0, 1.0, "full", what, "colours -1..1")
    q = min(q, 1.0)
    return CorrelationView(corr, -q, q, "robust", what,
                           f"colours ±{q:.2f} ({_ordinal(_CORRELATION_PERCENTILE)} percentile of |C_ij|, "
                           "i≠j; beyond clamped)")


def chain_bounds(residues) -> list[tuple[int, int, str]]:
    """The runs of one chain along the residue axis of a heatmap.

    Parameters
    ----------
    residues : sequence of Residue
        ``Dynamics.residues``, N items.

    Returns
    -------
    list of (start, stop, chain)
        Half-open index ranges ``[start, stop)`` into ``residues``, in order; one item
        for a single chain.  Boundaries (lines on the heatmap) sit at ``start - 0.5``
        of every item but the first.
    """
    out = []
    for i, r in enumerate(residues):
        if out and out[-1][2] == r.chain:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1, r.chain])
    return [(a, b, c) for a, b, c in out]
