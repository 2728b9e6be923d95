"""What a 3D view shows, as plain data: the state every renderer draws.

A :class:`Scene` is built from a :class:`~dynaprot_viz.core.gaussian.Dynamics`
and display options (probability, scale, colour map, opacity, residue subset,
colouring mode, selected residue, pocket, ensemble frames).  Renderers (py3Dmol,
nglview, the standalone HTML page) only translate a Scene into their own calls,
so all of them show the same thing and tests can check the state without a
browser.  Nothing here computes dynamics: it reads the Dynamics' arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.errors import InputError
from ..core.gaussian import Dynamics
from ..core.pockets import Pocket
from ..geometry import DEFAULT_PROBABILITY, EllipsoidMesh, ellipsoid_mesh, mahalanobis_radius
from .scales import rmsf_color_range, rmsf_range_note

__all__ = [
    "Scene",
    "Legend",
    "build_scene",
    "colormap_rgba",
    "rgba_to_hex",
    "structure_text",
    "ensemble_text",
    "COLOR_MODES",
    "POCKET_RGBA",
    "MUTED_RGBA",
    "ARROW_RGBA",
    "ARROW_RADIUS",
    "arrow_lengths",
    "describe_source",
    "ChainKey",
    "CHAIN_COLORS",
    "chain_keys",
]

COLOR_MODES = ("rmsf", "coupling", "pocket", "chain")
#: colours of the chains of a complex (3D chain labels, chain legend, ``color_by="chain"``):
#: strong hues that stay apart from each other and from the ends of viridis, in this order
CHAIN_COLORS = ("#d62728", "#1f77b4", "#ff7f0e", "#e377c2", "#8c564b", "#9467bd", "#7f7f7f",
                "#17becf", "#bcbd22", "#2ca02c")
#: colour of pocket residues and their arrows, and of everything else in "pocket" mode
POCKET_RGBA = np.array([1.0, 0.55, 0.0, 1.0], dtype=np.float32)
MUTED_RGBA = np.array([0.78, 0.78, 0.78, 1.0], dtype=np.float32)
SELECTED_RGBA = np.array([0.1, 0.9, 0.2, 1.0], dtype=np.float32)
#: pocket motion arrows: deep blue, against the orange pocket and the grey rest
ARROW_RGBA = np.array([0.0, 0.3, 0.9, 1.0], dtype=np.float32)
#: arrow shaft radius, Å (the head is 2x wider)
ARROW_RADIUS = 0.6


def colormap_rgba(values, cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Colours of values through a matplotlib colour map, shape (N, 4) float32 RGBA in 0..1."""
    import matplotlib

    try:
        cm = matplotlib.colormaps[cmap]
    except KeyError:
        raise InputError(f"unknown colour map {cmap!r}; use a matplotlib name such as 'viridis'") from None
    v = np.asarray(values, dtype=np.float64)
    lo = float(np.min(v)) if vmin is None else float(vmin)
    hi = float(np.max(v)) if vmax is None else float(vmax)
    t = (v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5)
    return cm(np.clip(t, 0.0, 1.0)).astype(np.float32)


def matplotlib_rgba(color: str) -> tuple:
    """RGBA (4 floats in 0..1) of a matplotlib colour such as ``"#d62728"``."""
    from matplotlib.colors import to_rgba

    return to_rgba(color)


def rgba_to_hex(rgba) -> list[str]:
    """``#rrggbb`` strings of RGBA rows in 0..1 (alpha ignored)."""
    rgb = np.clip(np.round(np.asarray(rgba)[:, :3] * 255), 0, 255).astype(int)
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb]


@dataclass(frozen=True)
class Legend:
    """What a view's key shows.

    ``kind="colorbar"``: ``title`` over ``cmap`` from ``vmin`` to ``vmax`` (units in
    the title); ``data_min``/``data_max`` are the true range of the values when the
    colours span less (robust range, values beyond clamped), and ``note`` says so.
    ``kind="categories"``: ``entries`` are ``(text, "#rrggbb")`` swatches (pocket
    mode: pocket residues, other residues, motion arrows); no colour bar.
    """

    title: str
    cmap: str
    vmin: float
    vmax: float
    note: str = ""
    data_min: float | None = None
    data_max: float | None = None
    kind: str = "colorbar"
    entries: tuple = ()

    def text(self) -> str:
        """The legend as one line of text (3Dmol screen label, tests)."""
        if self.kind == "categories":
            return f"{self.title}: " + "; ".join(t for t, _ in self.entries)
        out = f"{self.title}: {self.vmin:.2f} .. {self.vmax:.2f} ({self.cmap})"
        return f"{out}; {self.note}" if self.note else out


@dataclass(frozen=True)
class ChainKey:
    """One chain of a complex as the views mark it.

    Attributes
    ----------
    chain : str
        Chain id as in ``Dynamics.residues`` (``"_"`` shown for a blank id).
    color : str
        ``#rrggbb`` from :data:`CHAIN_COLORS` (cycled past 10 chains).
    n_residues : int
    label_position : ndarray, shape (3,), Å
        Where the chain's 3D label sits: the chain's C-alpha centroid moved away from the
        complex's centroid by the chain's radius of gyration, so that labels sit on
        the chain's outer side rather than over the interface.
    """

    chain: str
    color: str
    n_residues: int
    label_position: np.ndarray

    @property
    def text(self) -> str:
        """The chain's name on labels and legends (``"_"`` for a blank id)."""
        return self.chain if self.chain.strip() else "_"


def chain_keys(dynamics: Dynamics) -> tuple:
    """The :class:`ChainKey` of every chain of a complex, in residue order; ``()`` for one chain
    (single-chain views look exactly as before)."""
    chains = np.array([r.chain for r in dynamics.residues])
    names = list(dict.fromkeys(chains.tolist()))
    if len(names) < 2:
        return ()
    xyz = np.asarray(dynamics.mean, dtype=np.float64)  # [N, 3] Å
    centre = xyz.mean(axis=0)
    out = []
    for k, c in enumerate(names):
        pts = xyz[chains == c]
        mid = pts.mean(axis=0)
        rg = float(np.sqrt(((pts - mid) ** 2).sum(axis=1).mean()))
        away = mid - centre
        norm = float(np.linalg.norm(away))
        pos = mid + (away / norm) * rg if norm > 1e-6 else mid
        out.append(ChainKey(c, CHAIN_COLORS[k % len(CHAIN_COLORS)], int(len(pts)), np.round(pos, 2)))
    return tuple(out)


@dataclass(frozen=True, eq=False)
class Scene:
    """The state of one 3D view.

    Attributes
    ----------
    dynamics : Dynamics
    structure_text : str
        PDB text of the structure drawn (all atoms when known, else C-alpha only).
    residue_rgba : ndarray, shape (N, 4), float32
        Colour of every residue (cartoon, C-alpha sphere and ellipsoid).
    shown : ndarray, shape (M,), int
        Residues that get an ellipsoid.
    mesh : EllipsoidMesh
        The M ellipsoids, coloured like their residues.
    radii, axes : ndarray, shapes (M, 3) Å and (M, 3, 3)
        Semi-axes and directions (for renderers with native ellipsoids).
    opacity : float
    legend : Legend
    mode : str
        ``"rmsf"``, ``"coupling"``, ``"pocket"`` or ``"values"``.
    selected : int or None
        Highlighted residue (the coupling reference in ``"coupling"`` mode).
    arrow_start, arrow_end : ndarray, shape (A, 3), Å
        Pocket motion directions drawn as arrows.
    frames : ndarray, shape (K, N, 3) Å, or None
        Ensemble samples for animation.
    chains : tuple of ChainKey
        A complex: one key per chain (renderers add a chain label in the chain's colour
        and a chain legend, whatever the colouring); ``()`` for one chain.
    """

    dynamics: Dynamics
    structure_text: str
    residue_rgba: np.ndarray
    shown: np.ndarray
    mesh: EllipsoidMesh
    radii: np.ndarray
    axes: np.ndarray
    opacity: float
    legend: Legend
    mode: str
    selected: int | None = None
    pocket: Pocket | None = None
    arrow_start: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    arrow_end: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    frames: np.ndarray | None = None
    chains: tuple = ()

    @property
    def n_ellipsoids(self) -> int:
        return len(self.shown)

    def residue_hex(self) -> list[str]:
        return rgba_to_hex(self.residue_rgba)

    def chain_color_maps(self) -> dict[str, dict[int, str]]:
        """Per chain id as written in :attr:`structure_text`, residue number -> ``#rrggbb``
        (insertion-code residues share their number's colour)."""
        from ..export import pdb_chain_name_map

        written = pdb_chain_name_map(r.chain for r in self.dynamics.residues)
        out: dict[str, dict[int, str]] = {}
        for r, h in zip(self.dynamics.residues, self.residue_hex()):
            out.setdefault(written[r.chain], {}).setdefault(r.number, h)
        return out


def arrow_lengths(dynamics: Dynamics, pocket: Pocket, probability: float = DEFAULT_PROBABILITY,
                  scale: float = 1.0) -> np.ndarray:
    """Lengths (Å) of a pocket's motion arrows, shape (k,), one per pocket residue.

    A true-to-scale arrow (the p-ellipsoid's largest semi-axis, about 1-3 Å) hides
    inside the cartoon and its ellipsoid, so arrows are drawn long enough to be seen:
    the longest is 35 % of the structure's radius (at least 8 Å, at most 25 Å)
    or the largest semi-axis if longer; the others scale with their residue's
    amplitude sqrt(lambda_max) down to 40 % of the longest.
    """
    if pocket.residues.max() >= dynamics.n_residues:
        raise InputError("pocket does not index this dynamics' residues")
    w = np.linalg.eigvalsh(dynamics.marginals[pocket.residues])[:, 2]  # [k] Å², largest eigenvalue
    amp = scale * mahalanobis_radius(probability) * np.sqrt(np.clip(w, 0.0, None))  # [k] Å semi-axis
    centred = dynamics.mean - dynamics.mean.mean(axis=0)
    radius = float(np.sqrt((centred ** 2).sum(axis=1).max())) if dynamics.n_residues > 1 else 0.0
    longest = max(float(np.clip(0.35 * radius, 8.0, 25.0)), float(amp.max()))
    rel = amp / amp.max() if amp.max() > 0 else np.ones_like(amp)
    return longest * np.maximum(rel, 0.4)


def describe_source(source) -> dict:
    """What a page title says about the input: ``{"file": name or None, "entry": PDB id or
    None, "title": structure title or None}`` (gemmi ``_entry.id`` / HEADER id code and
    ``_struct.title`` / TITLE).  Simulation boilerplate titles (GROMACS
    ``"Protein in water t= ..."``) are dropped; an unreadable source gives only its name."""
    import os
    import warnings

    from ..core.structure import load_structure

    out = {"file": None, "entry": None, "title": None}
    if isinstance(source, (str, os.PathLike)):
        out["file"] = os.path.basename(os.fspath(source))
    if source is None:
        return out
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the prediction already warned about this file
            st = load_structure(source)
    except (InputError, OSError, TypeError, ValueError):
        return out
    info = dict(st.info)
    entry = (info.get("_entry.id") or "").strip()
    title = " ".join((info.get("_struct.title") or "").split())
    if title and ("t=" in title and "step" in title or title.lower().startswith("protein in water")):
        title = ""
    if len(title) > 90:
        title = title[:87].rstrip() + "..."
    out["entry"] = entry or None
    out["title"] = title or None
    if out["file"] is None and st.name:
        out["file"] = st.name
    return out


def structure_text(dynamics: Dynamics, source=None) -> str:
    """PDB text to draw: the source's atoms of the predicted residues (B-factors and
    ANISOU from the dynamics) when ``source`` is given, else C-alpha atoms at ``mean``."""
    from ..export import annotated_structure, ensemble_structure, pdb_string

    if source is not None:
        try:
            return pdb_string(annotated_structure(dynamics, source))
        except (InputError, TypeError):
            pass  # not the file the dynamics came from: fall back to C-alpha only
    return pdb_string(ensemble_structure(dynamics, np.asarray(dynamics.mean)[None]))


def ensemble_text(dynamics: Dynamics, frames) -> str:
    """Multi-model PDB text (C-alpha only), one MODEL per frame of shape (K, N, 3) Å."""
    from ..export import ensemble_structure, pdb_string

    return pdb_string(ensemble_structure(dynamics, frames))


def build_scene(
    dynamics: Dynamics,
    structure: str | None = None,
    *,
    probability: float = DEFAULT_PROBABILITY,
    scale: float = 1.0,
    cmap: str = "viridis",
    coupling_cmap: str = "RdBu_r",
    opacity: float = 0.8,
    residues=None,
    color_by="rmsf",
    selected: int | None = None,
    pocket: Pocket | None = None,
    frames=None,
    subdivisions: int | None = None,
) -> Scene:
    """Build the state of a 3D view.

    Parameters
    ----------
    dynamics : Dynamics
    structure : str, optional
        PDB text (:func:`structure_text`); default C-alpha atoms at ``mean``.
    probability : float in (0, 1)
        Probability mass inside each ellipsoid (0.5 = PyMOL's default).
    scale : float
        Extra factor on the ellipsoid semi-axes.
    cmap : str
        matplotlib colour map for RMSF (or ``color_by`` values).
    coupling_cmap : str
        Diverging map for ``color_by="coupling"``: correlation -1 .. 1 with the
        selected residue, positive and negative at opposite ends.
    opacity : float in [0, 1]
        Ellipsoid opacity.
    residues : array of int, optional
        Indices of the residues that get an ellipsoid (default all).
    color_by : "rmsf", "coupling", "pocket", "chain" or array (N,)
        ``"coupling"`` needs ``selected``; ``"pocket"`` needs ``pocket``; ``"chain"``
        colours each chain of a complex by its :data:`CHAIN_COLORS` entry.
    selected : int, optional
        Highlighted residue index.
    pocket : Pocket, optional
        Drawn as arrows along its residues' dominant motions.
    frames : array (K, N, 3) Å, optional
        Ensemble samples to animate.
    """
    if not isinstance(dynamics, Dynamics):
        raise TypeError(f"dynamics must be a Dynamics, got {type(dynamics).__name__}")
    n = dynamics.n_residues
    if not 0.0 <= opacity <= 1.0:
        raise InputError(f"opacity must be in [0, 1], got {opacity!r}")
    if selected is not None and not (0 <= int(selected) < n):
        raise InputError(f"selected must be a residue index in 0..{n - 1}, got {selected!r}")
    selected = None if selected is None else int(selected)
    rmsf = dynamics.rmsf
    if isinstance(color_by, str):
        if color_by == "rmsf":
            lo, hi = rmsf_color_range(rmsf)  # robust: 2nd-98th percentile, true range in the note
            rgba = colormap_rgba(rmsf, cmap, lo, hi)
            iso = " (isotropic model: spheres, no anisotropy)" if dynamics.isotropic else ""
            legend = Legend(f"{dynamics.rmsf_label}, {dynamics.model_name}{iso}", cmap, lo, hi,
                            note=rmsf_range_note(rmsf, dynamics.rmsf_unit),
                            data_min=float(rmsf.min()), data_max=float(rmsf.max()))
        elif color_by == "coupling":
            if selected is None:
                raise InputError("color_by='coupling' needs a selected residue")
            rgba = colormap_rgba(dynamics.correlation[selected], coupling_cmap, -1.0, 1.0)
            label = dynamics.residues[selected].label()
            legend = Legend(f"correlation with {label}", coupling_cmap, -1.0, 1.0)
        elif color_by == "pocket":
            if pocket is None:
                raise InputError("color_by='pocket' needs a pocket")
            rgba = np.tile(MUTED_RGBA, (n, 1))
            rgba[pocket.residues] = POCKET_RGBA
            longest = float(arrow_lengths(dynamics, pocket, probability, scale).max())
            legend = Legend(
                f"pocket, score {pocket.score:.2f}, opening {100 * pocket.opening:.0f}%", cmap, 0.0, 1.0,
                kind="categories",
                entries=((f"pocket residues ({len(pocket.residues)})", rgba_to_hex(POCKET_RGBA[None])[0]),
                         ("other residues", rgba_to_hex(MUTED_RGBA[None])[0]),
                         (f"arrows: dominant motion, longer = larger (longest {longest:.0f} Å, not to scale)",
                          rgba_to_hex(ARROW_RGBA[None])[0])))
        elif color_by == "chain":
            keys = chain_keys(dynamics) or (ChainKey(dynamics.residues[0].chain, CHAIN_COLORS[0], n,
                                                     np.zeros(3)),)
            colour = {k.chain: k.color for k in keys}
            rgba = np.array([matplotlib_rgba(colour[r.chain]) for r in dynamics.residues], dtype=np.float32)
            legend = Legend("chains", cmap, 0.0, 1.0, kind="categories",
                            entries=tuple((f"chain {k.text} ({k.n_residues} residues)", k.color) for k in keys))
        else:
            raise InputError(f"color_by must be one of {', '.join(COLOR_MODES)} or an array, got {color_by!r}")
        mode = color_by
    else:
        values = np.asarray(color_by, dtype=np.float64)
        if values.shape != (n,):
            raise InputError(f"color_by values must have shape ({n},), got {values.shape}")
        rgba = colormap_rgba(values, cmap)
        legend = Legend("values", cmap, float(values.min()), float(values.max()))
        mode = "values"
    if selected is not None:
        rgba[selected] = SELECTED_RGBA
    shown = np.arange(n) if residues is None else np.unique(np.asarray(residues, dtype=np.int64))
    if len(shown) and (shown.min() < 0 or shown.max() >= n):
        raise InputError(f"residues must be indices in 0..{n - 1}")
    mesh = ellipsoid_mesh(dynamics.mean[shown], dynamics.marginals[shown], probability, scale,
                          subdivisions=subdivisions, colors=rgba[shown])
    start = end = np.zeros((0, 3))
    if pocket is not None:
        if pocket.residues.max() >= n:
            raise InputError("pocket does not index this dynamics' residues")
        start = dynamics.mean[pocket.residues]
        end = start + pocket.directions * arrow_lengths(dynamics, pocket, probability, scale)[:, None]
    if frames is not None:
        frames = np.asarray(frames, dtype=np.float64)
        if frames.ndim != 3 or frames.shape[1:] != (n, 3):
            raise InputError(f"frames must have shape (K, {n}, 3), got {frames.shape}")
    text = structure if structure is not None else structure_text(dynamics)
    return Scene(
        dynamics=dynamics, structure_text=text, residue_rgba=rgba, shown=shown, mesh=mesh,
        radii=mesh.radii, axes=mesh.axes, opacity=float(opacity), legend=legend, mode=mode,
        selected=selected, pocket=pocket, arrow_start=start, arrow_end=end, frames=frames,
        chains=chain_keys(dynamics),
    )

