"""Publication figures of one prediction, rendered headless (matplotlib Agg + PyMOL ray tracing).

Panels (letters in reading order):

a. **structure**: cartoon with one ellipsoid per C-alpha at probability p
   (Mahalanobis radius sqrt(chi2_3.ppf(p)), PyMOL's ``ellipsoid_probability``),
   coloured by RMSF with the colour bar beside it; ray-traced by PyMOL in batch
   mode (``pymol2`` in-process, else a ``pymol -cq`` subprocess).  Without PyMOL
   the ``projection`` renderer draws the C-alpha trace and the ellipsoids'
   outlines projected on the structure's principal plane (exact shadows: the
   outline of a p-ellipsoid with covariance S seen along the view is the ellipse
   of P S P^T at the same radius).
b. **coupling**: the correlation map C~_ij (DCCM, dimensionless, -1..1) or the
   coupling C_ij (Å²), with a colour bar and its units.
c. **RMSF profile**: RMSF_i = sqrt(tr Sigma_i) (Å) per residue, pocket patches
   shaded and labelled P1, P2, ... (best first); with a reference, the reference
   RMSF and Pearson r.
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
    """

    figure: object
    panels: dict
    renderer: str
    dpi: float
    pockets: list = field(default_factory=list)
    bandwise: np.ndarray | None = None


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


def _rmsf_range(rmsf: np.ndarray, vmax=None) -> tuple[float, float, bool]:
    """Colour range of RMSF (Å): min .. robust max; True when values above are clipped."""
    lo, hi = float(rmsf.min()), float(rmsf.max())
    if vmax is None:
        p95 = float(np.percentile(rmsf, 95))
        vmax = p95 if hi > 1.5 * p95 else hi
    vmax = float(vmax)
    if not vmax > lo:
        vmax = lo + 1e-6
    return lo, vmax, hi > vmax + 1e-9


def _residue_labels(dynamics: Dynamics) -> list[str]:
    chains = {r.chain for r in dynamics.residues}
    if len(chains) > 1:
        return [f"{r.chain}{r.number}{r.icode}" for r in dynamics.residues]
    return [f"{r.number}{r.icode}" for r in dynamics.residues]


def _index_formatter(labels):
    from matplotlib.ticker import FuncFormatter

    def fmt(x, _pos):
        i = int(round(x))
        return labels[i] if 0 <= i < len(labels) and abs(x - i) < 1e-6 else ""

    return FuncFormatter(fmt)


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


def pymol_scene_script(pdb_path, png_path, *, width: int, height: int, vmin: float, vmax: float,
                       probability: float = 0.5, cmap: str = "viridis", dpi: int = 300) -> str:
    """PyMOL command script (.pml) that ray-traces the structure panel to ``png_path``.

    The B column of ``pdb_path`` must hold RMSF (Å); colours are ``cmap`` sampled
    at 21 stops over [vmin, vmax] (values outside are clamped).
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
        "zoom dpv_prot, 2",
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
                     probability: float = 0.5, cmap: str = "viridis", dpi: int = 300) -> np.ndarray:
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
        png = Path(tmp) / "scene.png"
        script = pymol_scene_script(pdb, png, width=width, height=height, vmin=vmin, vmax=vmax,
                                    probability=probability, cmap=cmap, dpi=dpi)
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


def _draw_projection(ax, dynamics: Dynamics, norm, cmap, probability: float) -> None:
    """C-alpha trace + projected ellipsoid outlines on the principal plane (no PyMOL)."""
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
    ax.add_collection(LineCollection(segs[keep], colors="0.55", linewidths=0.6, zorder=1))
    w, v = np.linalg.eigh(cov2)
    for i in range(len(xy)):
        angle = np.degrees(np.arctan2(v[i, 1, 1], v[i, 0, 1]))
        ax.add_patch(Ellipse(xy[i], 2 * k * np.sqrt(max(w[i, 1], 0)), 2 * k * np.sqrt(max(w[i, 0], 0)),
                             angle=angle, facecolor=colours[i], edgecolor="0.2", linewidth=0.2,
                             alpha=0.85, zorder=2))
    pad = 2 * k * np.sqrt(w.max())
    ax.set_xlim(xy[:, 0].min() - pad, xy[:, 0].max() + pad)
    ax.set_ylim(xy[:, 1].min() - pad, xy[:, 1].max() + pad)
    ax.set_aspect("equal")


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
    heatmap : {"correlation", "coupling"}
        DCCM C~ (dimensionless) or coupling C (Å²).
    renderer : {"auto", "pymol", "projection", "none"}
        ``auto``: PyMOL when available, else the projection (with a warning).
    rmsf_max : float, optional, Å
        Top of the RMSF colour range; default robust (95th percentile when the
        maximum exceeds it by half, else the maximum; the bar then shows an arrow).
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
    if heatmap not in ("correlation", "coupling"):
        raise InputError(f"heatmap must be 'correlation' or 'coupling', got {heatmap!r}")
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
    vmin, vmax, clipped = _rmsf_range(rmsf, rmsf_max)
    norm = Normalize(vmin, vmax, clip=True)
    colormap = matplotlib.colormaps[cmap]
    labels = _residue_labels(dynamics)
    n = dynamics.n_residues

    with matplotlib.rc_context(_style(float(font_size))):
        fig = mfigure.Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[1.45, 1.0])
        ax_s, ax_c = top.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1.0]})
        if reference is not None:
            ax_r, ax_b = bottom.subplots(1, 2, gridspec_kw={"width_ratios": [1.9, 1.0]})
        else:
            ax_r, ax_b = bottom.subplots(1, 1), None

        # a. structure --------------------------------------------------------------
        used = _structure_panel(fig, ax_s, dynamics, source, renderer, norm, colormap, probability,
                                dpi, cmap, clipped, width_in, height_in)
        # b. coupling ----------------------------------------------------------------
        if heatmap == "correlation":
            data, cm, lim, unit = dynamics.correlation, "RdBu_r", (-1.0, 1.0), "correlation $\\tilde C_{ij}$ (DCCM, unitless)"
        else:
            m = float(np.abs(dynamics.coupling).max())
            cu = "relative, kT/γ" if dynamics.relative_units else "Å$^2$"
            data, cm, lim, unit = dynamics.coupling, "RdBu_r", (-m, m), f"coupling $C_{{ij}}$ ({cu})"
        im = ax_c.imshow(data, cmap=cm, vmin=lim[0], vmax=lim[1], origin="lower", interpolation="nearest",
                         aspect="equal", extent=(-0.5, n - 0.5, -0.5, n - 0.5), rasterized=True)
        cb = fig.colorbar(im, ax=ax_c, shrink=0.85, pad=0.02)
        cb.set_label(unit)
        cb.outline.set_linewidth(0.5)
        for axis in (ax_c.xaxis, ax_c.yaxis):
            axis.set_major_formatter(_index_formatter(labels))
            axis.set_major_locator(_integer_locator(n))
        ax_c.set_xlabel("residue $j$")
        ax_c.set_ylabel("residue $i$")
        ax_c.set_title("b  residue coupling", loc="left", fontweight="bold")
        for spine in ("top", "right"):
            ax_c.spines[spine].set_visible(True)

        # c. RMSF profile -------------------------------------------------------------
        xs = np.arange(n)
        for k, pocket in enumerate(pockets, start=1):
            runs = _runs(pocket.residues)
            for a, b in runs:
                ax_r.axvspan(a - 0.5, b + 0.5, color="#f4a582", alpha=0.45, linewidth=0, zorder=0)
            longest = max(runs, key=lambda ab: ab[1] - ab[0])
            ax_r.annotate(f"P{k}", (0.5 * (longest[0] + longest[1]), 1.0), xycoords=("data", "axes fraction"),
                          ha="center", va="bottom", fontsize=float(font_size) - 1, color="#b2182b")
        ax_r.plot(xs, rmsf, color="black", linewidth=1.0, label=f"{dynamics.model_name}", zorder=3)
        ax_r.scatter(xs, rmsf, c=colormap(norm(rmsf)), s=6, linewidths=0, zorder=4)
        bandwise = None
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
        ax_r.set_xlim(-0.5, n - 0.5)
        ax_r.set_ylim(0, None)
        ax_r.xaxis.set_major_formatter(_index_formatter(labels))
        ax_r.xaxis.set_major_locator(_integer_locator(n, target=12))
        ax_r.set_xlabel("residue")
        ax_r.set_ylabel(dynamics.rmsf_label)
        ax_r.set_title("c  flexibility" + ("  (shaded: pocket patches)" if pockets else ""),
                       loc="left", fontweight="bold")

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
        fig.canvas.draw()
        panels = {"structure": _pixel_box(fig, ax_s), "coupling": _pixel_box(fig, ax_c), "rmsf": _pixel_box(fig, ax_r)}
        if ax_b is not None:
            panels["bandwise"] = _pixel_box(fig, ax_b)
    return FigureResult(figure=fig, panels=panels, renderer=used, dpi=float(dpi), pockets=list(pockets),
                        bandwise=bandwise)


def _integer_locator(n: int, target: int = 6):
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=target, integer=True, min_n_ticks=2)


def _pixel_box(fig, ax) -> tuple[int, int, int, int]:
    bb = ax.get_window_extent()
    height = fig.bbox.height
    return (int(np.floor(bb.x0)), int(np.floor(height - bb.y1)), int(np.ceil(bb.x1)), int(np.ceil(height - bb.y0)))


def _structure_panel(fig, ax, dynamics, source, renderer, norm, colormap, probability, dpi, cmap,
                     clipped, width_in, height_in) -> str:
    from matplotlib.cm import ScalarMappable

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
                               probability=probability, cmap=cmap, dpi=int(dpi))
        ax.imshow(img, interpolation="lanczos" if img.shape[1] > 200 else "nearest")
        ax.set_axis_off()
    elif used == "projection":
        _draw_projection(ax, dynamics, norm, colormap, probability)
        ax.set_axis_off()
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "(structure not rendered)", ha="center", va="center", transform=ax.transAxes,
                color="0.5")
    sm = ScalarMappable(norm=norm, cmap=colormap)
    cb = fig.colorbar(sm, ax=ax, shrink=0.7, pad=0.01, extend="max" if clipped else "neither")
    cb.set_label(dynamics.rmsf_label)
    cb.outline.set_linewidth(0.5)
    iso = " (isotropic: spheres)" if dynamics.isotropic else ""
    ax.text(0.0, 0.0, f"ellipsoids: p = {probability:g}; model {dynamics.model_name}{iso}",
            transform=ax.transAxes, ha="left", va="bottom", fontsize=max(5.0, _font_size() - 1),
            color="0.3")
    return used


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
            result.figure.savefig(tmp, format=fmt, dpi=result.dpi)
            written.append(path)
    return written
