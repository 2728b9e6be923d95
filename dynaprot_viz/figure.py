"""Publication figures of one prediction, rendered headless (matplotlib Agg + PyMOL ray tracing).

Panels (letters in reading order):

a. **structure**: cartoon with one ellipsoid per C-alpha at probability p
   (Mahalanobis radius sqrt(chi2_3.ppf(p)), PyMOL's ``ellipsoid_probability``),
   coloured by RMSF with the colour bar beside it; ray-traced by PyMOL in batch
   mode (``pymol2`` in-process, else a ``pymol -cq`` subprocess).  The view is
   framed by the ellipsoids' extent (not only the atoms'), so a large ellipsoid is
   never cut at the panel's edge.  RMSF colours span the 2nd-98th percentile
   (arrows on the colour bar; the true range is in its label).  Without PyMOL
   the ``projection`` renderer draws the C-alpha trace and the ellipsoids'
   outlines projected on the structure's principal plane (exact shadows: the
   outline of a p-ellipsoid with covariance S seen along the view is the ellipse
   of P S P^T at the same radius).  A complex (several chains) keeps the RMSF colours
   and marks its chains: each chain's id as a label on the chain's colour in the
   image (PyMOL) or beside its C-alpha trace drawn in the chain's colour
   (projection), and a chain legend (chain id -> colour) in the panel.
b. **coupling**: the correlation map C~_ij (DCCM, dimensionless), the correlation
   of the slowest modes, or the coupling C_ij (Å²), with a colour bar saying what
   is shown and in which range (``heatmap_range``: -1..1, or ±98th percentile of
   |C_ij| when most entries are tiny, as ANM's on long chains).  Drawn as a
   matrix: residue 1 at the top left, as on the page and in the widget
   (:data:`dynaprot_viz.render.scales.HEATMAP_ORIGIN`).
c. **RMSF profile**: RMSF_i = sqrt(tr Sigma_i) (Å) per residue, each pocket shaded
   as one band per stretch of sequence (gaps of a few residues bridged) and
   labelled P1, P2, ... (best first), labels placed so that they overlap neither
   each other nor the title or legend; with a reference, the reference RMSF and
   Pearson r.

Residue axes have ticks on round residue numbers (10, 20, 50, ...).
d. **band-wise coupling** (only with a reference Dynamics, e.g. from MD): Pearson
   r between predicted and reference correlation maps over the entries with
   1 <= j - i <= k, k = 1..50 (DESIGN.md section 4).

Defaults suit a journal page: 180 mm wide, 8 pt fonts, 300 dpi PNG; vector
panels stay vectors in SVG/PDF (the ray-traced image is embedded).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .core.errors import InputError
from .core.gaussian import Dynamics

__all__ = [
    "FigureResult",
    "make_figure",
    "save_figure",
    "render_structure",
    "pymol_scene_script",
    "ellipsoid_extent_points",
    "match_reference",
    "RENDERERS",
    "MM_PER_INCH",
]

MM_PER_INCH = 25.4
RENDERERS = ("auto", "pymol", "projection", "none")
_N_COLOUR_STOPS = 21  # colours sampled from the matplotlib map for PyMOL's spectrum


@dataclass(eq=False)
class FigureResult:
    """A composed figure.

    figure : matplotlib.figure.Figure
    panels : dict[str, tuple[int, int, int, int]]
        Pixel box (left, top, right, bottom) of each panel's axes in an image
        saved at ``dpi`` (origin top left): ``structure``, ``coupling``,
        ``rmsf`` and, with a reference, ``bandwise``.
    renderer : str
        What drew the structure: ``"pymol"``, ``"projection"`` or ``"none"``.
    dpi : float
    pockets : list
        The pocket patches marked on the RMSF profile.
    bandwise : ndarray, shape (50,), or None
        Pearson r per band k = 1..50 when a reference was given.
    style : dict
        The matplotlib rcParams the figure was composed under; :func:`save_figure`
        saves under them too (same layout as ``panels``, SVG/PDF font settings).
    """

    figure: object
    panels: dict
    renderer: str
    dpi: float
    pockets: list = field(default_factory=list)
    bandwise: np.ndarray | None = None
    style: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- helpers
def _mpl():
    """matplotlib without pyplot: figures are plain ``Figure`` objects, so no GUI
    backend is needed and a notebook's inline backend is left alone."""
    import matplotlib
    import matplotlib.figure

    return matplotlib, matplotlib.figure


def _style(font_size: float) -> dict:
    return {
        "font.size": font_size,
        "axes.titlesize": font_size,
        "axes.labelsize": font_size,
        "xtick.labelsize": font_size - 1,
        "ytick.labelsize": font_size - 1,
        "legend.fontsize": font_size - 1,
        "axes.linewidth": 0.6,
        "xtick.major.width": 0.6,
        "ytick.major.width": 0.6,
        "xtick.major.size": 2.5,
        "ytick.major.size": 2.5,
        "lines.linewidth": 1.0,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "savefig.facecolor": "white",
        "figure.facecolor": "white",
        "svg.fonttype": "none",
        "pdf.fonttype": 42,
    }


def _rmsf_range(rmsf: np.ndarray, vmax=None) -> tuple[float, float, str]:
    """Colour range of RMSF (Å) and the colour bar's ``extend``.

    Default: the 2nd-98th percentile (:func:`~dynaprot_viz.render.scales.rmsf_color_range`,
    as the page); ``vmax`` sets the top.  ``extend`` is "min", "max", "both" or
    "neither" as values fall outside.
    """
    from .render.scales import rmsf_color_range

    lo, hi = rmsf_color_range(rmsf)
    if vmax is not None:
        hi = float(vmax)
        lo = min(lo, hi - 1e-6)
    below, above = float(rmsf.min()) < lo - 1e-9, float(rmsf.max()) > hi + 1e-9
    extend = {(True, True): "both", (True, False): "min", (False, True): "max"}.get((below, above), "neither")
    return lo, hi, extend


def _set_residue_ticks(axis, dynamics: Dynamics, target: int) -> None:
    """Ticks on round residue numbers (:func:`~dynaprot_viz.render.scales.residue_ticks`) at
    residue indices of ``axis`` (data coordinates = index)."""
    from matplotlib.ticker import FixedFormatter, FixedLocator

    from .render.scales import residue_ticks

    ticks = residue_ticks(dynamics.residues, target=target)
    axis.set_major_locator(FixedLocator([i for i, _ in ticks]))
    axis.set_major_formatter(FixedFormatter([t for _, t in ticks]))


def _draw_chain_bounds(ax, dynamics: Dynamics) -> list:
    """A complex: dashed lines between chains on the heatmap ``ax`` and each chain's name on
    the top and left edges (nothing for one chain).  Returns the lines drawn."""
    from .render.scales import chain_bounds

    bounds = chain_bounds(dynamics.residues)
    if len(bounds) < 2:
        return []
    lines = []
    for a, _, _ in bounds[1:]:
        lines.append(ax.axhline(a - 0.5, color="black", linewidth=0.8, linestyle="--", gid="chain-boundary"))
        lines.append(ax.axvline(a - 0.5, color="black", linewidth=0.8, linestyle="--", gid="chain-boundary"))
    n = dynamics.n_residues
    box = dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.7)
    for a, b, c in bounds:  # names inside the top and left edges (clear of the tick labels)
        mid = 0.5 * (a + b) - 0.5
        ax.text(mid, -0.5 + 0.01 * n, c or "_", ha="center", va="top", fontweight="bold", fontsize="small",
                gid="chain-label", bbox=box)
        ax.text(-0.5 + 0.01 * n, mid, c or "_", ha="left", va="center", fontweight="bold", fontsize="small",
                gid="chain-label", bbox=box)
    return lines


def _pocket_bands(residues, n: int) -> list[tuple[int, int]]:
    """Bands (first, last index) of one pocket on the sequence: its contiguous runs,
    with gaps of up to max(3, n / 60) residues bridged (one band per stretch)."""
    gap = max(3, n // 60)
    out: list[tuple[int, int]] = []
    for a, b in _runs(residues):
        if out and a - out[-1][1] - 1 <= gap:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _runs(indices) -> list[tuple[int, int]]:
    """Contiguous runs (first, last) of sorted integer indices."""
    out = []
    for i in sorted(int(v) for v in indices):
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


# ----------------------------------------------------------------------------- structure rendering
def _scene_pdb_text(dynamics: Dynamics, source) -> str:
    """Annotated PDB text (ANISOU = Sigma_i on C-alpha) with B column = RMSF_i (Å)."""
    from .export import annotated_structure

    st = annotated_structure(dynamics, source)
    index = {(r.chain, r.number, r.icode.strip()): i for i, r in enumerate(dynamics.residues)}
    rmsf = dynamics.rmsf
    for chain in st[0]:
        for res in chain:
            i = index[(chain.name, int(res.seqid.num), res.seqid.icode.strip())]
            for atom in res:
                atom.b_iso = float(rmsf[i])
    return st.make_pdb_string()


def ellipsoid_extent_points(dynamics: Dynamics, probability: float = 0.5) -> np.ndarray:
    """Points whose bounding box is the p-ellipsoids' bounding box, shape (6 N, 3), Å.

    The p-ellipsoid of residue i (centre mu_i, covariance Sigma_i, Mahalanobis radius
    r = sqrt(chi2_3.ppf(p))) reaches mu_i,k ± r sqrt(Sigma_i,kk) along axis k: these
    six points per residue have exactly the ellipsoid's axis-aligned extent.
    """
    from .geometry import mahalanobis_radius

    r = mahalanobis_radius(probability)
    half = r * np.sqrt(np.clip(np.einsum("nkk->nk", dynamics.marginals), 0.0, None))  # [N, 3] Å
    eye = np.eye(3)
    pts = [dynamics.mean + sign * half[:, k:k + 1] * eye[k] for k in range(3) for sign in (1.0, -1.0)]
    return np.concatenate(pts, axis=0)


def _extent_pdb_text(points: np.ndarray) -> str:
    lines = []
    for i, (x, y, z) in enumerate(points, start=1):
        lines.append(f"HETATM{i % 100000:5d}  X   EXT X{(i // 10000) % 10000:4d}    "
                     f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C")
    return "\n".join(lines) + "\nEND\n"


def pymol_scene_script(pdb_path, png_path, *, width: int, height: int, vmin: float, vmax: float,
                       probability: float = 0.5, cmap: str = "viridis", dpi: int = 300,
                       extent_path=None, chain_labels=()) -> str:
    """PyMOL command script (.pml) that ray-traces the structure panel to ``png_path``.

    The B column of ``pdb_path`` must hold RMSF (Å); colours are ``cmap`` sampled
    at 21 stops over [vmin, vmax] (values outside are clamped).  ``extent_path``:
    a PDB of points spanning the ellipsoids (:func:`ellipsoid_extent_points`),
    loaded hidden so that the view is framed by the ellipsoids, not only the atoms.
    ``chain_labels``: a complex's :class:`~dynaprot_viz.render.scene.ChainKey` items, each
    drawn as ``chain X`` in the chain's colour at its label position (Å), lifted towards
    the viewer so that the ellipsoids do not hide it.
    """
    matplotlib, _ = _mpl()
    colormap = matplotlib.colormaps[cmap]
    lines = []
    stops = []
    for k, t in enumerate(np.linspace(0.0, 1.0, _N_COLOUR_STOPS)):
        r, g, b, _ = colormap(float(t))
        lines.append(f"set_color dpv_c{k:02d}, [{r:.4f}, {g:.4f}, {b:.4f}]")
        stops.append(f"dpv_c{k:02d}")
    lines += [
        f"load {Path(pdb_path).as_posix()}, dpv_prot",
        "hide everything",
        "bg_color white",
        "set ray_opaque_background, 0",
        "set ray_shadows, 0",
        "set antialias, 2",
        "set ambient, 0.35",
        "set specular, 0.2",
        "set cartoon_transparency, 0.35",
        "set cartoon_tube_radius, 0.3",
        "set ellipsoid_quality, 2",
        f"set ellipsoid_probability, {float(probability):.4f}",
        f"spectrum b, {' '.join(stops)}, dpv_prot, minimum={vmin:.6f}, maximum={vmax:.6f}",
        "show cartoon, dpv_prot",
        "show ellipsoids, dpv_prot and name CA",
        "orient dpv_prot",
    ]
    for k, key in enumerate(chain_labels):
        r, g, b = (int(key.color[i:i + 2], 16) / 255 for i in (1, 3, 5))
        x, y, z = (float(v) for v in key.label_position)
        lines += [f"set_color dpv_chain{k}, [{r:.4f}, {g:.4f}, {b:.4f}]",
                  f"pseudoatom dpv_chainlabel{k}, pos=[{x:.3f}, {y:.3f}, {z:.3f}], label=chain {key.text}",
                  f"hide everything, dpv_chainlabel{k}", f"show labels, dpv_chainlabel{k}",
                  f"set label_color, dpv_chain{k}, dpv_chainlabel{k}"]
    if chain_labels:
        lines += ["set label_size, -3", "set label_font_id, 7", "set label_position, (0, 0, 25)",
                  "set label_outline_color, white"]
    if extent_path is not None:
        # frame with the ellipsoids' extent: hidden points at each ellipsoid's bounding box
        lines += [f"load {Path(extent_path).as_posix()}, dpv_extent", "hide everything, dpv_extent",
                  "zoom dpv_prot or dpv_extent, 1.5, complete=1"]
    else:
        lines.append("zoom dpv_prot, 2, complete=1")
    lines += [
        f"png {Path(png_path).as_posix()}, width={int(width)}, height={int(height)}, dpi={int(dpi)}, ray=1",
    ]
    return "\n".join(lines) + "\n"


def _run_pymol_inprocess(script: str) -> None:
    import pymol2

    p = pymol2.PyMOL()
    p.start()
    try:
        p.cmd.feedback("disable", "all", "everything")
        for line in script.splitlines():
            if line.strip():
                p.cmd.do(line, echo=0, flush=1)
    finally:
        p.stop()


def _pymol_available() -> str | None:
    """``"pymol2"`` (in-process), ``"subprocess"`` (a ``pymol`` executable) or None."""
    try:
        import pymol2  # noqa: F401

        return "pymol2"
    except ImportError:
        pass
    exe = shutil.which("pymol") or (Path(sys.executable).with_name("pymol") if
                                    Path(sys.executable).with_name("pymol").exists() else None)
    return "subprocess" if exe else None


def render_structure(dynamics: Dynamics, source, *, width: int, height: int, vmin: float, vmax: float,
                     probability: float = 0.5, cmap: str = "viridis", dpi: int = 300,
                     chain_labels=()) -> np.ndarray:
    """Ray-trace the structure with PyMOL in batch mode; returns an RGBA image (H, W, 4) in 0..1.

    Raises
    ------
    ImportError
        PyMOL is neither importable (pymol2) nor on PATH (``pymol``).
    RuntimeError
        PyMOL ran but wrote no image.
    """
    import matplotlib.image as mpimg

    how = _pymol_available()
    if how is None:
        raise ImportError("PyMOL is needed for the ray-traced panel: pip install pymol-open-source "
                          "(or use --renderer projection)")
    with tempfile.TemporaryDirectory(prefix="dynaprot-fig-") as tmp:
        pdb = Path(tmp) / "scene.pdb"
        pdb.write_text(_scene_pdb_text(dynamics, source), encoding="utf-8")
        extent = Path(tmp) / "extent.pdb"
        extent.write_text(_extent_pdb_text(ellipsoid_extent_points(dynamics, probability)), encoding="utf-8")
        png = Path(tmp) / "scene.png"
        script = pymol_scene_script(pdb, png, width=width, height=height, vmin=vmin, vmax=vmax,
                                    probability=probability, cmap=cmap, dpi=dpi, extent_path=extent,
                                    chain_labels=chain_labels)
        if how == "pymol2":
            _run_pymol_inprocess(script)
        else:
            pml = Path(tmp) / "scene.pml"
            pml.write_text(script, encoding="utf-8")
            exe = shutil.which("pymol") or str(Path(sys.executable).with_name("pymol"))
            proc = subprocess.run([exe, "-cq", str(pml)], capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"pymol -cq failed: {proc.stderr.strip().splitlines()[-1:]}")
        if not png.exists():
            raise RuntimeError("PyMOL did not write the structure image")
        img = mpimg.imread(str(png))
    if img.ndim == 3 and img.shape[2] == 3:
        img = np.concatenate([img, np.ones(img.shape[:2] + (1,), img.dtype)], axis=2)
    return img


def _draw_projection(ax, dynamics: Dynamics, norm, cmap, probability: float, chain_labels=()) -> None:
    """C-alpha trace + projected ellipsoid outlines on the principal plane (no PyMOL); a complex
    (``chain_labels``, :class:`~dynaprot_viz.render.scene.ChainKey`) draws each chain's trace in
    its colour over the ellipsoids, with its id at its label position."""
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Ellipse

    from .geometry import mahalanobis_radius

    x = dynamics.mean - dynamics.mean.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    p = vt[:2]  # [2, 3] projection onto the two largest principal axes
    xy = x @ p.T
    cov2 = np.einsum("ab,nbc,dc->nad", p, dynamics.marginals, p)  # [N, 2, 2]
    k = mahalanobis_radius(probability)
    colours = cmap(norm(dynamics.rmsf))
    segs = np.stack([xy[:-1], xy[1:]], axis=1)
    chain = np.array([r.chain for r in dynamics.residues])
    keep = (chain[:-1] == chain[1:]) & (np.linalg.norm(segs[:, 0] - segs[:, 1], axis=1) < 4.2)
    if chain_labels:
        colour = {key.chain: key.color for key in chain_labels}
        ax.add_collection(LineCollection(segs[keep], colors=[colour[c] for c in chain[:-1][keep]],
                                         linewidths=1.0, zorder=3, gid="chain-trace"))
        for key in chain_labels:
            lx, ly = (key.label_position - dynamics.mean.mean(axis=0)) @ p.T
            ax.text(lx, ly, f"chain {key.text}", color="white", fontweight="bold", ha="center", va="center",
                    zorder=4, gid="chain-label-3d",
                    bbox=dict(boxstyle="round,pad=0.2", facecolor=key.color, edgecolor="white", alpha=0.9))
    else:
        ax.add_collection(LineCollection(segs[keep], colors="0.55", linewidths=0.6, zorder=1))
    w, v = np.linalg.eigh(cov2)
    for i in range(len(xy)):
        angle = np.degrees(np.arctan2(v[i, 1, 1], v[i, 0, 1]))
        ax.add_patch(Ellipse(xy[i], 2 * k * np.sqrt(max(w[i, 1], 0)), 2 * k * np.sqrt(max(w[i, 0], 0)),
                             angle=angle, facecolor=colours[i], edgecolor="0.2", linewidth=0.2,
                             alpha=0.85, zorder=2))
    # frame with the ellipses' extent: the ellipse of covariance S at radius k reaches
    # k sqrt(S_xx) left and right of its centre and k sqrt(S_yy) up and down
    half = k * np.sqrt(np.clip(np.einsum("nkk->nk", cov2), 0.0, None))  # [N, 2]
    lo, hi = (xy - half).min(axis=0), (xy + half).max(axis=0)
    margin = 0.03 * float((hi - lo).max())
    ax.set_xlim(lo[0] - margin, hi[0] + margin)
    ax.set_ylim(lo[1] - margin, hi[1] + margin)
    ax.set_aspect("equal", adjustable="box")


# ----------------------------------------------------------------------------- reference
def match_reference(dynamics: Dynamics, reference: Dynamics) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into dynamics, into reference) of the residues both share (chain, number, icode).

    Raises InputError when fewer than 10 residues are shared, or when more than
    10 % of them have different residue names (another protein).
    """
    ref = {(r.chain, r.number, r.icode): j for j, r in enumerate(reference.residues)}
    pairs = [(i, ref[(r.chain, r.number, r.icode)]) for i, r in enumerate(dynamics.residues)
             if (r.chain, r.number, r.icode) in ref]
    if len(pairs) < 10:
        raise InputError(
            f"the reference shares {len(pairs)} residues with the prediction (need >= 10); "
            "was it computed for the same chain?"
        )
    a, b = np.array(pairs).T
    differ = sum(dynamics.residues[i].name != reference.residues[j].name for i, j in pairs)
    if differ > 0.1 * len(pairs):
        i, j = next((i, j) for i, j in pairs if dynamics.residues[i].name != reference.residues[j].name)
        raise InputError(
            f"the reference is another sequence: {differ} of {len(pairs)} shared residue numbers have other "
            f"names (first: {dynamics.residues[i].label()} vs {reference.residues[j].name})"
        )
    return a, b


# ----------------------------------------------------------------------------- the figure
def make_figure(
    dynamics: Dynamics,
    source,
    *,
    reference: Dynamics | None = None,
    pockets=None,
    probability: float = 0.5,
    cmap: str = "viridis",
    heatmap: str = "correlation",
    heatmap_range: str = "auto",
    slow_modes: int = 10,
    renderer: str = "auto",
    rmsf_max: float | None = None,
    width_mm: float = 180.0,
    height_mm: float | None = None,
    dpi: float = 300,
    font_size: float = 8.0,
    title: str | None = None,
    max_band: int = 50,
) -> FigureResult:
    """Compose the multi-panel figure (module docstring) for one prediction.

    Parameters
    ----------
    dynamics : Dynamics
        mean (N, 3) Å, marginals (N, 3, 3) Å², coupling (N, N) Å².
    source : path or gemmi.Structure
        The structure predicted from (for the cartoon; needs every residue).
    reference : Dynamics, optional
        E.g. MD labels of the same chain: adds panel d and the reference RMSF.
    pockets : list[Pocket], optional
        Patches to mark; default :func:`dynaprot_viz.core.pockets.find_pockets`.
        Pass ``[]`` for none.
    probability : float in (0, 1)
        Probability enclosed by each ellipsoid.
    cmap : str
        Matplotlib colour map for RMSF (structure and colour bar).
    heatmap : {"correlation", "slow", "coupling"}
        DCCM C~ (dimensionless), the correlation of the ``slow_modes`` largest-variance
        modes of the coupling (dimensionless), or the coupling C (Å²).
    heatmap_range : {"auto", "full", "robust"}
        Colour range of a correlation map (:func:`~dynaprot_viz.render.scales.correlation_view`):
        -1..1, or ±98th percentile of |C_ij| (i != j, beyond clamped); ``auto`` picks
        ``robust`` when fewer than 2 % of the entries reach |C| = 0.5 (ANM's DCCM on
        chains of a few hundred residues is nearly blank on -1..1).  The colour bar
        and the panel title say which is shown.
    slow_modes : int
        Modes kept by ``heatmap="slow"``.
    renderer : {"auto", "pymol", "projection", "none"}
        ``auto``: PyMOL when available, else the projection (with a warning).
    rmsf_max : float, optional, Å
        Top of the RMSF colour range; default robust: the 2nd-98th percentile, as
        on the page (the colour bar shows arrows and its label the true range).
    width_mm, height_mm : float
        Figure size (height default: 0.72 x width, 0.80 with a reference).
    dpi : float
        Raster resolution (PNG and the ray-traced panel).
    font_size : float, pt
    title : str, optional
    max_band : int
        Largest band k of panel d.

    Returns
    -------
    FigureResult
    """
    matplotlib, mfigure = _mpl()
    from matplotlib.colors import Normalize

    if renderer not in RENDERERS:
        raise InputError(f"renderer must be one of {', '.join(RENDERERS)}, got {renderer!r}")
    if heatmap not in ("correlation", "slow", "coupling"):
        raise InputError(f"heatmap must be 'correlation', 'slow' or 'coupling', got {heatmap!r}")
    from .render.scales import CORRELATION_RANGES, HEATMAP_ORIGIN, correlation_view

    if heatmap_range not in CORRELATION_RANGES:
        raise InputError(f"heatmap_range must be one of {', '.join(CORRELATION_RANGES)}, got {heatmap_range!r}")
    if int(slow_modes) < 1:
        raise InputError(f"slow_modes must be at least 1, got {slow_modes!r}")
    if cmap not in matplotlib.colormaps:
        raise InputError(f"cmap {cmap!r} is not a matplotlib colour map (e.g. viridis, magma, coolwarm)")
    if not (20 <= float(width_mm) <= 600):
        raise InputError(f"width_mm must be between 20 and 600, got {width_mm!r}")
    if not (50 <= float(dpi) <= 1200):
        raise InputError(f"dpi must be between 50 and 1200, got {dpi!r}")
    if not (4 <= float(font_size) <= 24):
        raise InputError(f"font_size must be between 4 and 24 pt, got {font_size!r}")
    from .geometry import mahalanobis_radius

    mahalanobis_radius(probability)  # checks probability
    if pockets is None:
        from .core.pockets import find_pockets

        pockets = find_pockets(dynamics)
    ref_idx = match_reference(dynamics, reference) if reference is not None else None

    width_in = float(width_mm) / MM_PER_INCH
    height_in = (float(height_mm) if height_mm else float(width_mm) * (0.80 if reference is not None else 0.72)) / MM_PER_INCH
    rmsf = dynamics.rmsf
    vmin, vmax, extend = _rmsf_range(rmsf, rmsf_max)
    norm = Normalize(vmin, vmax, clip=True)
    colormap = matplotlib.colormaps[cmap]
    n = dynamics.n_residues

    with matplotlib.rc_context(_style(float(font_size))):
        fig = mfigure.Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained")
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)  # a canvas with a renderer: text extents for placing labels
        top, bottom = fig.subfigures(2, 1, height_ratios=[1.45, 1.0])
        ax_s, ax_c = top.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1.0]})
        if reference is not None:
            ax_r, ax_b = bottom.subplots(1, 2, gridspec_kw={"width_ratios": [1.9, 1.0]})
        else:
            ax_r, ax_b = bottom.subplots(1, 1), None

        # a. structure --------------------------------------------------------------
        used = _structure_panel(fig, ax_s, dynamics, source, renderer, norm, colormap, probability,
                                dpi, cmap, extend, width_in, height_in)
        # b. coupling: a matrix, residue 1 at the top left (HEATMAP_ORIGIN, as page and widget)
        heat_extend = "neither"
        if heatmap in ("correlation", "slow"):
            view = correlation_view(dynamics, heatmap_range, slow_modes if heatmap == "slow" else None)
            data, cm, lim = view.matrix, "RdBu_r", (view.vmin, view.vmax)
            what = ("correlation $\\tilde C_{ij}$ (DCCM)" if heatmap == "correlation"
                    else view.what.replace("correlation of the", "correlation,").replace(" (", "\n("))
            unit = what + ("\ncolours ±%.2f (98th pct of $|C_{ij}|$)" % view.vmax if view.kind == "robust" else "")
            heat_extend = "both" if view.kind == "robust" else "neither"
            heat_title = {"correlation": "b  residue correlation", "slow": "b  slow-mode correlation"}[heatmap]
        else:
            m = float(np.abs(dynamics.coupling).max())
            cu = "relative, kT/γ" if dynamics.relative_units else "Å$^2$"
            data, cm, lim, unit = dynamics.coupling, "RdBu_r", (-m, m), f"coupling $C_{{ij}}$ ({cu})"
            heat_title = "b  residue coupling"
        im = ax_c.imshow(data, cmap=cm, vmin=lim[0], vmax=lim[1], origin=HEATMAP_ORIGIN, interpolation="nearest",
                         aspect="equal", extent=(-0.5, n - 0.5, n - 0.5, -0.5), rasterized=True)
        cb = fig.colorbar(im, ax=ax_c, shrink=0.85, pad=0.02, extend=heat_extend)
        cb.set_label(unit)
        cb.outline.set_linewidth(0.5)
        _set_residue_ticks(ax_c.xaxis, dynamics, target=6)
        _set_residue_ticks(ax_c.yaxis, dynamics, target=6)
        _draw_chain_bounds(ax_c, dynamics)
        ax_c.set_xlabel("residue $j$")
        ax_c.set_ylabel("residue $i$")
        ax_c.set_title(heat_title, loc="left", fontweight="bold")
        for spine in ("top", "right"):
            ax_c.spines[spine].set_visible(True)

        # c. RMSF profile -------------------------------------------------------------
        xs = np.arange(n)
        band_labels = []  # (x centre, name): one label per band
        for k, pocket in enumerate(pockets, start=1):
            for a, b in _pocket_bands(pocket.residues, n):
                ax_r.axvspan(a - 0.5, b + 0.5, color="#f4a582", alpha=0.45, linewidth=0, zorder=0)
                band_labels.append((0.5 * (a + b), f"P{k}"))
        ax_r.plot(xs, rmsf, color="black", linewidth=1.0, label=f"{dynamics.model_name}", zorder=3)
        ax_r.scatter(xs, rmsf, c=colormap(norm(rmsf)), s=6, linewidths=0, zorder=4)
        bandwise = None
        top = float(np.nanmax(rmsf))
        if reference is not None:
            i_pred, i_ref = ref_idx
            ref_rmsf = np.full(n, np.nan)
            ref_rmsf[i_pred] = reference.rmsf[i_ref]
            from .core.metrics import bandwise_coupling_pearson, rmsf_pearson

            r = rmsf_pearson(rmsf[i_pred], reference.rmsf[i_ref])
            ax_r.plot(xs, ref_rmsf, color="#2166ac", linewidth=1.0, linestyle="--",
                      label=f"{reference.model_name} (r = {r:.2f})", zorder=2)
            ax_r.legend(frameon=False, loc="upper left")
            cp = dynamics.correlation[np.ix_(i_pred, i_pred)]
            ct = reference.correlation[np.ix_(i_ref, i_ref)]
            bandwise = bandwise_coupling_pearson(cp, ct, max_band=int(max_band))
            top = max(top, float(np.nanmax(ref_rmsf)))
        ax_r.set_xlim(-0.5, n - 0.5)
        ax_r.set_ylim(0, top * 1.05 if top > 0 else 1.0)
        _set_residue_ticks(ax_r.xaxis, dynamics, target=12)
        ax_r.set_xlabel("residue")
        ax_r.set_ylabel(dynamics.rmsf_label)
        ax_r.set_title("c  flexibility" + ("  (shaded: pocket patches)" if pockets else ""),
                       loc="left", fontweight="bold")
        _place_pocket_labels(fig, ax_r, band_labels, float(font_size) - 1, top)

        # d. band-wise coupling --------------------------------------------------------
        if ax_b is not None:
            ks = np.arange(1, len(bandwise) + 1)
            ax_b.plot(ks, bandwise, color="black", marker="o", markersize=1.8, linewidth=0.9)
            ax_b.set_xlabel("band $k$ ($|i-j| \\leq k$)")
            ax_b.set_ylabel("Pearson $r$ (DCCM)")
            ax_b.set_xlim(0, len(bandwise) + 1)
            finite = bandwise[np.isfinite(bandwise)]
            lo = min(0.0, float(finite.min())) if finite.size else 0.0
            ax_b.set_ylim(lo, 1.0)
            ax_b.set_title(f"d  coupling vs {reference.model_name}", loc="left", fontweight="bold")
            ax_b.grid(True, linewidth=0.3, alpha=0.5)
        if title:
            fig.suptitle(title, fontsize=float(font_size) + 1)
        named = {"structure": ax_s, "coupling": ax_c, "rmsf": ax_r}
        if ax_b is not None:
            named["bandwise"] = ax_b
        panels = None
        for _ in range(5):  # constrained layout settles over a few passes: boxes as saved
            fig.canvas.draw()
            boxes = {name: _pixel_box(fig, ax) for name, ax in named.items()}
            if boxes == panels:
                break
            panels = boxes
    return FigureResult(figure=fig, panels=panels, renderer=used, dpi=float(dpi), pockets=list(pockets),
                        style=_style(float(font_size)),
                        bandwise=bandwise)


def _place_pocket_labels(fig, ax, labels, font_size: float, top: float) -> list:
    """Write pocket labels (x in data units, name) inside the top of ``ax``, in rows, so
    that no label overlaps another, the title or the legend (tried at the upper left,
    right and centre: the place that needs the fewest rows wins); then raise the y
    limit so that the curves stay below the labels and the legend.  Returns the Text
    artists."""
    from matplotlib.transforms import blended_transform_factory

    trans = blended_transform_factory(ax.transData, ax.transAxes)
    texts = [ax.text(x, 0.98, name, transform=trans, ha="center", va="top", fontsize=font_size,
                     color="#b2182b", zorder=5, clip_on=False)
             for x, name in sorted(labels)]
    legend = ax.get_legend()
    if not texts and legend is None:
        return []
    renderer = fig.canvas.get_renderer()

    def arrange() -> float:
        """Place the labels in rows; the lowest occupied axes fraction (labels and legend)."""
        fig.canvas.draw()  # lay out: sizes and positions in pixels
        ax_box = ax.get_window_extent(renderer)
        obstacles = [ax.title.get_window_extent(renderer)]
        lowest = 0.98
        if legend is not None:
            lb = legend.get_window_extent(renderer)
            obstacles.append(lb)
            lowest = min(lowest, (lb.y0 - ax_box.y0) / ax_box.height)
        if texts:
            dy = 1.15 * max(t.get_window_extent(renderer).height for t in texts) / ax_box.height
            placed = []
            for t in texts:
                for row in range(12):
                    t.set_y(0.98 - row * dy)
                    bb = t.get_window_extent(renderer).padded(2.0)  # 2 px apart
                    if not any(bb.overlaps(o) for o in placed + obstacles):
                        break
                placed.append(bb)
                lowest = min(lowest, 0.98 - (row + 1) * dy)
        return lowest

    if legend is None:
        lowest = arrange()
    else:
        tried = []
        def move(loc):
            if hasattr(legend, "set_loc"):  # matplotlib >= 3.8
                legend.set_loc(loc)
            else:
                legend._loc = legend.codes[loc]

        for loc in ("upper left", "upper right", "upper center"):
            move(loc)
            tried.append((arrange(), loc))
        move(max(tried)[1])
        lowest = arrange()
    # the data stay under the labels: top (+2 %) at axes fraction `lowest`
    ax.set_ylim(0, (top if top > 0 else 1.0) * 1.02 / max(lowest, 0.35))
    return texts


def _pixel_box(fig, ax) -> tuple[int, int, int, int]:
    bb = ax.get_window_extent()
    height = fig.bbox.height
    return (int(np.floor(bb.x0)), int(np.floor(height - bb.y1)), int(np.ceil(bb.x1)), int(np.ceil(height - bb.y0)))


def _structure_panel(fig, ax, dynamics, source, renderer, norm, colormap, probability, dpi, cmap,
                     extend, width_in, height_in) -> str:
    from matplotlib.cm import ScalarMappable

    from .render.scene import chain_keys

    keys = chain_keys(dynamics)  # () for one chain: the panel is as before
    used = renderer
    if renderer == "auto":
        used = "pymol" if _pymol_available() else "projection"
        if used == "projection":
            warnings.warn("PyMOL not found (pip install pymol-open-source): the structure panel is a "
                          "2D projection, not a ray-traced image", stacklevel=3)
    ax.set_title("a  structure and flexibility", loc="left", fontweight="bold")
    if used == "pymol":
        # the panel is about half the width and 60 % of the height of the figure
        w_px = int(min(0.5 * width_in * dpi, 2400))
        h_px = int(min(0.58 * height_in * dpi, 2400))
        img = render_structure(dynamics, source, width=w_px, height=h_px, vmin=norm.vmin, vmax=norm.vmax,
                               probability=probability, cmap=cmap, dpi=int(dpi), chain_labels=keys)
        img = _autocrop(img)  # PyMOL framed the ellipsoids with a margin: use the panel for the protein
        ax.imshow(img, interpolation="lanczos" if img.shape[1] > 200 else "nearest")
        ax.set_axis_off()
    elif used == "projection":
        _draw_projection(ax, dynamics, norm, colormap, probability, chain_labels=keys)
        ax.set_axis_off()
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "(structure not rendered)", ha="center", va="center", transform=ax.transAxes,
                color="0.5")
    if keys and used in ("pymol", "projection"):
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=k.color, edgecolor="white", label=f"chain {k.text} ({k.n_residues})")
                   for k in keys]
        # under the panel, below the ellipsoid note: clear of the structure
        leg = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.075), frameon=False,
                        fontsize="small", handlelength=1.0, handleheight=0.8, borderaxespad=0.0,
                        columnspacing=0.8, handletextpad=0.4, ncol=min(len(keys), 3))
        leg.set_gid("chain-legend")
    sm = ScalarMappable(norm=norm, cmap=colormap)
    cb = fig.colorbar(sm, ax=ax, shrink=0.7, pad=0.03, extend=extend)
    r = dynamics.rmsf
    cb.set_label(f"{dynamics.rmsf_label}\n(all values {r.min():.2f}-{r.max():.2f})" if extend != "neither"
                 else dynamics.rmsf_label)
    cb.outline.set_linewidth(0.5)
    iso = " (isotropic: spheres)" if dynamics.isotropic else ""
    ax.text(0.0, -0.01, f"ellipsoids: p = {probability:g}; model {dynamics.model_name}{iso}",
            transform=ax.transAxes, ha="left", va="top", fontsize=max(5.0, _font_size() - 1),
            color="0.3")
    return used


def _autocrop(img: np.ndarray, margin: float = 0.03) -> np.ndarray:
    """Crop an RGBA image (H, W, 4) to its drawn pixels (alpha > 0.02, or not white when
    opaque) plus ``margin`` of the larger side, padded transparent."""
    ink = img[..., 3] > 0.02 if img[..., 3].min() < 0.99 else np.any(img[..., :3] < 0.98, axis=2)
    if not ink.any():
        return img
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    out = img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    m = int(round(margin * max(out.shape[:2])))
    return np.pad(out, ((m, m), (m, m), (0, 0)), constant_values=0.0)


def _font_size() -> float:
    import matplotlib

    return float(matplotlib.rcParams["font.size"])


# ----------------------------------------------------------------------------- output
def save_figure(result: FigureResult, png=None, svg=None, pdf=None) -> list[Path]:
    """Write the figure to each given path; all appear together or none (atomic).

    Returns the written paths.
    """
    from ._io import AtomicOutputs

    targets = [(Path(p), fmt) for p, fmt in ((png, "png"), (svg, "svg"), (pdf, "pdf")) if p]
    if not targets:
        raise InputError("give at least one output: --png, --svg or --pdf")
    for path, fmt in targets:
        if path.suffix.lower() != f".{fmt}":
            raise InputError(f"{path}: the {fmt.upper()} output must end in .{fmt}")
    written = []
    with ExitStack() as stack:
        outputs = {}
        for path, fmt in targets:
            folder = path.parent if str(path.parent) else Path(".")
            key = os.path.abspath(folder)
            if key not in outputs:
                outputs[key] = stack.enter_context(AtomicOutputs(folder))
            tmp = outputs[key].path(path)
            import matplotlib

            with matplotlib.rc_context(result.style):  # the layout `panels` was measured in
                result.figure.savefig(tmp, format=fmt, dpi=result.dpi)
            written.append(path)
    return written
