"""Showing a :class:`~dynaprot_viz.core.compare.DynamicsComparison`: Jupyter app and offline page.

Both views follow the single view's conventions (DESIGN.md section 1, issue 5) and
draw everything in A's frame: B is moved by the comparison's superposition
(x -> R x + t, its ellipsoids Sigma -> R Sigma R^T), so the two panels' cameras can be
linked and one superposed panel needs no further fitting.

- two linked 3D panels (A, B) or one superposed panel (toggle); cartoon and
  ellipsoids coloured by the chosen per-residue change (default Delta RMSF = RMSF_B -
  RMSF_A in Å) on a diverging palette (``RdBu_r``: blue = stiffer in B, red = more
  flexible) with a *symmetric* colour bar (-v .. v, v the 98th percentile of |value|,
  the true range stated under it); residues in an alignment gap are grey;
- displacement arrows (two conformations only): from each aligned C-alpha of A to
  its superposed partner in B (true to scale, Å), the largest ``n_arrows``;
- the delta-correlation map C~_B - C~_A (aligned residues, residue 1 at the top
  left as everywhere) linked to both panels: a click on a row selects that residue
  in A and B;
- a table of the residues that change most (ranked by the chosen quantity).

The renderers are reused as they are: :func:`dynaprot_viz.render.scene.structure_text`,
:class:`~dynaprot_viz.render.scene.Scene`, :func:`~dynaprot_viz.render.threedmol.py3dmol_calls`,
:func:`~dynaprot_viz.render.threedmol.mesh_spec`; nothing here computes dynamics.
"""

from __future__ import annotations

import html as _html
import json
import math
from pathlib import Path

import numpy as np

from .core.compare import DynamicsComparison, compare
from .core.errors import InputError
from .core.gaussian import Dynamics
from .geometry import DEFAULT_PROBABILITY, ellipsoid_mesh
from .render.scene import MUTED_RGBA, Legend, Scene, colormap_rgba, rgba_to_hex, structure_text

__all__ = [
    "CompareApp",
    "view_compare",
    "compare_sources",
    "compare_scene",
    "superposed_dynamics",
    "superposed_text",
    "side_values",
    "color_scale",
    "arrow_segments",
    "compare_page_data",
    "compare_html",
    "write_compare_html",
    "delta_correlation_figure",
    "COLOR_KEYS",
    "DIVERGING_CMAP",
    "SEQUENTIAL_CMAP",
    "DEFAULT_ARROWS",
]

#: signed changes: blue = lower in B, white = no change, red = higher in B
DIVERGING_CMAP = "RdBu_r"
#: non-negative changes (divergences, displacement): white (none) to dark red
SEQUENTIAL_CMAP = "Reds"
#: the most displacement arrows drawn (the largest first); more hide the structure
DEFAULT_ARROWS = 40
#: arrows shorter than this (Å) are not drawn: under a C-alpha sphere they cannot be seen
MIN_ARROW_LENGTH = 1.0
_SELECTED_RGBA = np.array([0.1, 0.9, 0.2, 1.0], dtype=np.float32)
_B_OVERLAY_HEX = "#9a9a9a"
_SCALE_PERCENTILE = 98.0

#: per-residue colourings: key -> (label, signed)
COLOR_KEYS = {
    "delta_rmsf": ("ΔRMSF (B − A)", True),
    "log_volume_ratio": ("ln(V_B / V_A), ellipsoid volume", True),
    "sym_kl": ("symmetric KL of the 3x3 Gaussians", False),
    "wasserstein": ("Wasserstein distance of the 3x3 Gaussians", False),
    "displacement": ("|displacement| after superposition", False),
    "delta_correlation": ("mean |ΔC~| with the other residues", False),
}


def _unit(cmp: DynamicsComparison, key: str) -> str:
    if key in ("delta_rmsf", "wasserstein"):
        return cmp.rmsf_unit
    return "Å" if key == "displacement" else ""


def _label(cmp: DynamicsComparison, key: str) -> str:
    text, _ = COLOR_KEYS[key]
    unit = _unit(cmp, key)
    return f"{text} ({unit})" if unit else text


def _check_key(key: str) -> str:
    if key not in COLOR_KEYS:
        raise InputError(f"color_by must be one of {', '.join(COLOR_KEYS)}, got {key!r}")
    return key


# ----------------------------------------------------------------------------- sources
def _as_dynamics(source, model, chain, options, which: str) -> tuple[Dynamics, object]:
    from .api import predict

    if isinstance(source, Dynamics):
        return source, None
    if isinstance(source, (str, Path)) and str(source).endswith(".npz"):
        return Dynamics.load(source), None
    return predict(source, model=model, chain=chain, **options), source


def _source_name(source, dyn: Dynamics, which: str) -> str:
    if isinstance(source, (str, Path)):
        return Path(source).name
    return f"{which} ({dyn.model_name})"


def compare_sources(a_src, b_src, model=None, chain_a: str | None = None, chain_b: str | None = None,
                    **options) -> tuple[DynamicsComparison, Dynamics, Dynamics, object, object]:
    """Predict (or take) two sides and compare them.

    Parameters
    ----------
    a_src, b_src : path (structure or ``.dynamics.npz``), gemmi.Structure, ProteinChain or Dynamics
    model : str or (str, str), optional
        Predictor for both sides, or one per side (two predictors on one structure);
        default :func:`dynaprot_viz.default_model`.
    chain_a, chain_b : str, optional
        Chains to predict (default the first protein chain).
    **options
        Predictor options (e.g. ANM ``scale``).

    Returns
    -------
    (comparison, dynamics_a, dynamics_b, structure_a, structure_b); a structure is None
    when its side was given as a Dynamics.
    """
    model_a, model_b = (model if isinstance(model, (tuple, list)) else (model, model))
    dyn_a, st_a = _as_dynamics(a_src, model_a, chain_a, options, "A")
    dyn_b, st_b = _as_dynamics(b_src, model_b, chain_b, options, "B")
    name_a, name_b = _source_name(a_src, dyn_a, "A"), _source_name(b_src, dyn_b, "B")
    if name_a == name_b:
        name_a, name_b = f"{name_a} [{dyn_a.model_name}]", f"{name_b} [{dyn_b.model_name}]"
    cmp = compare(dyn_a, dyn_b, name_a=name_a, name_b=name_b)
    return cmp, dyn_a, dyn_b, st_a, st_b


# ----------------------------------------------------------------------------- frames
def superposed_dynamics(cmp: DynamicsComparison, dynamics_b: Dynamics) -> Dynamics:
    """B's Dynamics moved into A's frame: mean (N_B, 3) Å -> R x + t, marginals R Sigma R^T;
    coupling (rotation-invariant) unchanged."""
    r, t = np.asarray(cmp.rotation), np.asarray(cmp.translation)
    return Dynamics(mean=np.asarray(dynamics_b.mean) @ r.T + t, marginals=r @ np.asarray(dynamics_b.marginals) @ r.T,
                    coupling=dynamics_b.coupling, residues=dynamics_b.residues, model_name=dynamics_b.model_name,
                    isotropic=dynamics_b.isotropic)


def superposed_text(cmp: DynamicsComparison, dynamics_b: Dynamics, source_b=None) -> str:
    """PDB text of B (all atoms of the source when given, else C-alpha) in A's frame
    (coordinates and ANISOU moved by the comparison's superposition)."""
    import gemmi

    text = structure_text(dynamics_b, source_b)
    st = gemmi.read_pdb_string(text)
    r, t = np.asarray(cmp.rotation), np.asarray(cmp.translation)
    tr = gemmi.Transform(gemmi.Mat33(r.tolist()), gemmi.Vec3(*map(float, t)))
    for model in st:
        model.transform_pos_and_adp(tr)
    from .export import pdb_string

    return pdb_string(st)


# ----------------------------------------------------------------------------- colours
def side_values(cmp: DynamicsComparison, key: str, side: str) -> np.ndarray:
    """``key``'s per-residue values on all residues of ``side`` ("a" or "b"), shape (N_side,);
    NaN on residues in an alignment gap."""
    _check_key(key)
    if side not in ("a", "b"):
        raise InputError(f"side must be 'a' or 'b', got {side!r}")
    n = len(cmp.residues_a if side == "a" else cmp.residues_b)
    out = np.full(n, np.nan)
    out[cmp.index_a if side == "a" else cmp.index_b] = cmp.values(key)
    return out


def color_scale(cmp: DynamicsComparison, key: str) -> Legend:
    """The colour bar of ``key``: symmetric -v..v on :data:`DIVERGING_CMAP` for signed
    changes (v = 98th percentile of |value|), 0..v on :data:`SEQUENTIAL_CMAP` otherwise;
    the note states the true range when values lie beyond it."""
    _, signed = COLOR_KEYS[_check_key(key)]
    v = cmp.values(key)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Legend(_label(cmp, key) + " (not defined for these models)", SEQUENTIAL_CMAP, 0.0, 1.0,
                      note="no values", data_min=None, data_max=None)
    top = float(np.percentile(np.abs(v), _SCALE_PERCENTILE))
    if top <= 0:
        top = float(np.abs(v).max()) or 1.0
    lo, hi = float(v.min()), float(v.max())
    note = ""
    if max(abs(lo), abs(hi)) > top * (1 + 1e-9):
        note = (f"colours span ±{top:.2g} ({_SCALE_PERCENTILE:.0f}th percentile of |value|); "
                f"values {lo:+.2f} .. {hi:+.2f}, beyond clamped")
    note = (note + "; " if note else "") + "grey: residues without a partner in the alignment"
    if signed:
        return Legend(_label(cmp, key), DIVERGING_CMAP, -top, top, note=note, data_min=lo, data_max=hi)
    return Legend(_label(cmp, key), SEQUENTIAL_CMAP, 0.0, top, note=note, data_min=lo, data_max=hi)


def _side_rgba(cmp: DynamicsComparison, key: str, side: str, legend: Legend, selected: int | None) -> np.ndarray:
    values = side_values(cmp, key, side)
    known = np.isfinite(values)
    rgba = np.tile(MUTED_RGBA, (len(values), 1))
    if known.any():
        rgba[known] = colormap_rgba(values[known], legend.cmap, legend.vmin, legend.vmax)
    if selected is not None:
        idx = cmp.index_a if side == "a" else cmp.index_b
        rgba[idx[selected]] = _SELECTED_RGBA
    return rgba


def arrow_segments(cmp: DynamicsComparison, side: str = "a", n_arrows: int = DEFAULT_ARROWS) -> tuple:
    """Displacement arrows in A's frame: (start (K, 3) Å, end (K, 3) Å, positions (K,)).

    Side ``"a"``: from A's C-alpha to B's superposed partner; side ``"b"``: the reverse.
    The ``n_arrows`` largest displacements of at least 1 Å; none for one conformation."""
    if not cmp.two_conformations or n_arrows <= 0:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, dtype=np.int64)
    d = cmp.displacement_norm
    order = np.argsort(-d)[: int(n_arrows)]
    order = np.sort(order[d[order] >= MIN_ARROW_LENGTH])
    a, b = np.asarray(cmp.mean_a)[order], np.asarray(cmp.mean_b)[order]
    return (a, b, order) if side == "a" else (b, a, order)


def compare_scene(cmp: DynamicsComparison, dynamics: Dynamics, side: str, structure: str | None = None, *,
                  color_by: str = "delta_rmsf", arrows: bool = True, n_arrows: int = DEFAULT_ARROWS,
                  selected: int | None = None, probability: float = DEFAULT_PROBABILITY, scale: float = 1.0,
                  opacity: float = 0.7, subdivisions: int | None = None) -> Scene:
    """The :class:`~dynaprot_viz.render.scene.Scene` of one side, coloured by ``color_by``.

    Parameters
    ----------
    cmp : DynamicsComparison
    dynamics : Dynamics
        The side's dynamics *in A's frame* (A itself, or :func:`superposed_dynamics` of B).
    side : "a" or "b"
    structure : str, optional
        PDB text in A's frame (default C-alpha at ``dynamics.mean``).
    selected : int, optional
        Position among the M aligned pairs to highlight (green, labelled).
    """
    n = len(cmp.residues_a if side == "a" else cmp.residues_b)
    if dynamics.n_residues != n:
        raise InputError(f"dynamics has {dynamics.n_residues} residues, side {side!r} of the comparison {n}")
    if selected is not None and not 0 <= int(selected) < cmp.n_aligned:
        raise InputError(f"selected must be an aligned position in 0..{cmp.n_aligned - 1}, got {selected!r}")
    legend = color_scale(cmp, color_by)
    rgba = _side_rgba(cmp, color_by, side, legend, selected)
    mesh = ellipsoid_mesh(dynamics.mean, dynamics.marginals, probability, scale, subdivisions=subdivisions,
                          colors=rgba)
    start, end, _ = arrow_segments(cmp, side, n_arrows if arrows else 0)
    text = structure if structure is not None else structure_text(dynamics)
    sel = None if selected is None else int((cmp.index_a if side == "a" else cmp.index_b)[int(selected)])
    return Scene(dynamics=dynamics, structure_text=text, residue_rgba=rgba, shown=np.arange(n), mesh=mesh,
                 radii=mesh.radii, axes=mesh.axes, opacity=float(opacity), legend=legend, mode="values",
                 selected=sel, arrow_start=start, arrow_end=end)


# ----------------------------------------------------------------------------- heatmap
def delta_correlation_figure(cmp: DynamicsComparison, selected: int | None = None, size: float = 4.2,
                             max_pixels: int = 300):
    """Matplotlib figure of C~_B - C~_A (aligned residues, symmetric diverging colour bar).

    Returns (figure, axes).  Residue 1 at the top left (as the single view); the
    selected position's row and column outlined.
    """
    from matplotlib.figure import Figure

    from .render.scales import HEATMAP_ORIGIN

    m = cmp.n_aligned
    delta = np.asarray(cmp.delta_correlation)
    v = _heat_range(delta)
    fig = Figure(figsize=(size, size * 0.92))
    ax = fig.add_axes([0.16, 0.12, 0.66, 0.78])
    cax = fig.add_axes([0.85, 0.12, 0.03, 0.78])
    im = ax.imshow(binned(delta, max_pixels), cmap=DIVERGING_CMAP, vmin=-v, vmax=v, origin=HEATMAP_ORIGIN,
                   interpolation="nearest", extent=(-0.5, m - 0.5, m - 0.5, -0.5), aspect="auto")
    fig.colorbar(im, cax=cax, label="ΔC~ (B − A)")
    ax.set_xlabel("aligned residue")
    ax.set_ylabel("aligned residue")
    ax.set_title(f"Δ correlation, ±{v:.2f}", fontsize=9)
    if selected is not None:
        ax.axhline(selected, color="limegreen", lw=1)
        ax.axvline(selected, color="limegreen", lw=1)
    return fig, ax


def binned(matrix: np.ndarray, max_size: int) -> np.ndarray:
    """Block means of a square (M, M) matrix down to at most (max_size, max_size), for display."""
    n = len(matrix)
    if n <= max_size:
        return matrix
    edges = np.linspace(0, n, max_size + 1).astype(int)
    both = np.add.reduceat(np.add.reduceat(matrix, edges[:-1], axis=0), edges[:-1], axis=1)
    counts = np.diff(edges)
    return both / np.outer(counts, counts)


def _png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def _heat_range(delta: np.ndarray) -> float:
    off = np.abs(delta[~np.eye(len(delta), dtype=bool)])
    v = float(np.percentile(off, _SCALE_PERCENTILE)) if off.size else 0.0
    return v if v > 0 else (float(off.max()) if off.size and off.max() > 0 else 1.0)


# ----------------------------------------------------------------------------- Jupyter
def _require_ipywidgets():
    try:
        import ipywidgets
    except ImportError:
        raise ImportError("the comparison view needs ipywidgets: pip install 'dynaprot-viz[jupyter]'") from None
    return ipywidgets


LAYOUTS = ("side by side", "superposed")


class CompareApp:
    """Two linked 3D panels (or one superposed panel), delta-correlation map and change table.

    Build it with :func:`view_compare`.  View state lives in plain attributes
    (``layout``, ``color_by``, ``arrows``, ``selected``, ``rank_by``); every change
    rebuilds ``scene_a``/``scene_b`` and the py3Dmol view, whose calls are recorded in
    ``calls`` as ``(method, args, viewer)`` (viewer = (row, column) of the grid, or None
    for the superposed panel) so that tests can check what the browser gets.
    """

    def __init__(self, comparison: DynamicsComparison, dynamics_a: Dynamics, dynamics_b: Dynamics,
                 structure_a=None, structure_b=None, *, color_by: str = "delta_rmsf", layout: str = "side by side",
                 arrows: bool = True, n_arrows: int = DEFAULT_ARROWS, probability: float = DEFAULT_PROBABILITY,
                 opacity: float = 0.7, width: int = 900, height: int = 420, top: int = 10, build_ui: bool = True):
        if not isinstance(comparison, DynamicsComparison):
            raise TypeError(f"comparison must be a DynamicsComparison, got {type(comparison).__name__}")
        self.comparison = comparison
        self.dynamics_a = dynamics_a
        self.dynamics_b = superposed_dynamics(comparison, dynamics_b)
        self._text_a = structure_text(dynamics_a, structure_a)
        self._text_b = superposed_text(comparison, dynamics_b, structure_b)
        self.color_by = _check_key(color_by)
        if layout not in LAYOUTS:
            raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.layout = layout
        self.arrows = bool(arrows)
        self.n_arrows = int(n_arrows)
        self.probability = float(probability)
        self.opacity = float(opacity)
        self.width, self.height = int(width), int(height)
        self.top = int(top)
        self.rank_by = "delta_rmsf"
        self.selected: int | None = None
        self.calls: list = []
        self.ui = None
        if build_ui:
            self._build_ui()
        self.refresh()

    # ------------------------------------------------------------------ state
    def select(self, position: int | None):
        """Highlight aligned position ``position`` (0..M-1) in both panels and on the heatmap."""
        if position is not None:
            position = int(position)
            if not 0 <= position < self.comparison.n_aligned:
                raise InputError(f"position must be in 0..{self.comparison.n_aligned - 1}, got {position}")
        self.selected = position
        self.refresh()

    def set_layout(self, layout: str):
        if layout not in LAYOUTS:
            raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.layout = layout
        self.refresh()

    def set_color(self, key: str):
        self.color_by = _check_key(key)
        self.refresh()

    def set_arrows(self, on: bool):
        self.arrows = bool(on)
        self.refresh()

    def set_rank(self, key: str):
        self.rank_by = _check_key(key)
        self.refresh()

    def heatmap_image_click(self, fx: float, fy: float) -> bool:
        """A click at fraction (fx, fy) of the heatmap picture (0..1 from its top left):
        selects the clicked row's residue when the click is inside the matrix."""
        ax = self._heat_axes
        fig = ax.figure
        x0, y0, w, h = ax.get_position().bounds  # figure fractions, origin bottom left
        ux, uy = (fx - x0) / w, ((1.0 - fy) - y0) / h
        if not (0 <= ux <= 1 and 0 <= uy <= 1):
            return False
        m = self.comparison.n_aligned
        self.select(min(m - 1, int((1.0 - uy) * m)))  # row 0 at the top
        del fig
        return True

    # ------------------------------------------------------------------ drawing
    def make_scenes(self) -> tuple[Scene, Scene]:
        kw = dict(color_by=self.color_by, arrows=self.arrows, n_arrows=self.n_arrows, selected=self.selected,
                  probability=self.probability, opacity=self.opacity)
        return (compare_scene(self.comparison, self.dynamics_a, "a", self._text_a, **kw),
                compare_scene(self.comparison, self.dynamics_b, "b", self._text_b, **kw))

    def view_calls(self) -> list:
        """The 3Dmol.js calls of the current layout: ``(method, args, viewer)``."""
        from .render.threedmol import py3dmol_calls

        a, b = self.scene_a, self.scene_b
        if self.layout == "side by side":
            return ([(n, args, (0, 0)) for n, args in py3dmol_calls(a)]
                    + [(n, args, (0, 1)) for n, args in py3dmol_calls(b)])
        calls = [(n, args, None) for n, args in py3dmol_calls(a) if n != "zoomTo"]
        calls.append(("addModel", (b.structure_text, "pdb"), None))
        calls.append(("setStyle", ({"model": -1}, {"cartoon": {"color": _B_OVERLAY_HEX, "opacity": 0.6}}), None))
        calls.append(("zoomTo", (), None))
        return calls

    def _py3dmol_view(self):
        from .render.threedmol import helper_js, threedmol_js_uri

        try:
            import py3Dmol
        except ImportError:
            raise ImportError("the comparison view needs py3Dmol: pip install 'dynaprot-viz[jupyter]'") from None
        grid = self.layout == "side by side"
        w = self.width if grid else self.width // 2 + 120
        view = py3Dmol.view(width=w, height=self.height, js=threedmol_js_uri(),
                            viewergrid=(1, 2) if grid else None, linked=True)
        view.startjs += helper_js() + "\n"
        for name, args, where in self.calls:
            if name == "addEllipsoids":
                target = f"viewergrid_UNIQUEID[{where[0]}][{where[1]}]" if where else "viewer_UNIQUEID"
                view.startjs += f"dynaprotViz.addEllipsoids({target}, {json.dumps(args[0])});\n"
            elif where is not None:
                getattr(view, name)(*args, viewer=where)
            else:
                getattr(view, name)(*args)
        return view

    def refresh(self):
        """Rebuild both scenes, the 3D view, the heatmap and the table."""
        self.scene_a, self.scene_b = self.make_scenes()
        self.calls = self.view_calls()
        fig, ax = delta_correlation_figure(self.comparison, self.selected)
        self.heatmap, self._heat_axes = fig, ax
        self.table_html = self._table_html()
        if self.ui is None:
            return
        self.view3d = self._py3dmol_view()
        self._view_out.outputs = ({"output_type": "display_data", "metadata": {},
                                   "data": {"text/html": self.view3d._make_html(),
                                            "text/plain": "<py3Dmol comparison view>"}},)
        self._heat_img.value = _png(fig)
        self._table.value = self.table_html
        self._legend.value = self._legend_html()
        self._sync()

    def _legend_html(self) -> str:
        lg = self.scene_a.legend
        cmp = self.comparison
        parts = [f"<b>{_html.escape(lg.title)}</b>: {lg.vmin:+.2f} .. {lg.vmax:+.2f} ({lg.cmap})",
                 f"<span style='color:#666'>{_html.escape(lg.note)}</span>"]
        if cmp.two_conformations:
            parts.append(f"RMSD {cmp.rmsd:.2f} Å; overlap of the displacement with the predicted motion "
                         f"({cmp.n_modes} modes, random {cmp.overlap_baseline:.2f}): A {cmp.cumulative_overlap_a:.2f}, "
                         f"B {cmp.cumulative_overlap_b:.2f}; arrows A → B")
        return "<br>".join(parts)

    def _table_html(self) -> str:
        rows = self.comparison.table(self.top, self.rank_by)
        u = self.comparison.rmsf_unit
        head = ("<tr><th>A</th><th>B</th><th>RMSF A</th><th>RMSF B</th><th>ΔRMSF</th><th>ln V ratio</th>"
                "<th>axis °</th><th>sym KL</th><th>|d| Å</th></tr>")
        body = "".join(
            f"<tr><td>{_html.escape(r['a'])}</td><td>{_html.escape(r['b'])}</td><td>{r['rmsf_a']:.2f}</td>"
            f"<td>{r['rmsf_b']:.2f}</td><td>{r['delta_rmsf']:+.2f}</td><td>{r['log_volume_ratio']:+.2f}</td>"
            f"<td>{'' if math.isnan(r['axis_angle']) else format(r['axis_angle'], '.0f')}</td>"
            f"<td>{r['sym_kl']:.2f}</td><td>{r['displacement']:.1f}</td></tr>" for r in rows)
        return (f"<div style='font-size:12px'>residues that change most by {_html.escape(self.rank_by)} "
                f"(RMSF in {u})<table>{head}{body}</table></div>")

    # ------------------------------------------------------------------ widgets
    def _build_ui(self):
        w = _require_ipywidgets()
        cmp = self.comparison
        self._view_out = w.Output(layout=w.Layout(width=f"{self.width + 10}px"))
        self._heat_img = w.Image(format="png", layout=w.Layout(width="360px"))
        try:
            from ipyevents import Event

            self._heat_events = Event(source=self._heat_img, watched_events=["click"])
            self._heat_events.on_dom_event(self._on_heatmap_event)
        except ImportError:
            self._heat_events = None
        self._layout = w.ToggleButtons(options=list(LAYOUTS), value=self.layout, description="panels")
        self._color = w.Dropdown(description="colour by", options=[(v[0], k) for k, v in COLOR_KEYS.items()],
                                 value=self.color_by)
        self._rank = w.Dropdown(description="rank by", options=[(v[0], k) for k, v in COLOR_KEYS.items()],
                                value=self.rank_by)
        self._arrows = w.Checkbox(description="displacement arrows", value=self.arrows,
                                  disabled=not cmp.two_conformations)
        self._residue = w.Dropdown(description="residue", options=[("(none)", None)] + [
            (f"{ra.label()} | {rb.label()}", p) for p, (ra, rb) in enumerate(zip(cmp.aligned_a, cmp.aligned_b))])
        self._legend = w.HTML()
        self._table = w.HTML()
        self._title = w.HTML(f"<b>{_html.escape(cmp.name_a)}</b> (left, A) vs <b>{_html.escape(cmp.name_b)}</b> "
                             f"(right, B, superposed on A): {cmp.n_aligned} aligned residues, identity "
                             f"{100 * cmp.identity:.0f}%")
        self._syncing = False

        def guarded(f):
            def handler(change):
                if not self._syncing:
                    f(change["new"])
            return handler

        self._layout.observe(guarded(self.set_layout), names="value")
        self._color.observe(guarded(self.set_color), names="value")
        self._rank.observe(guarded(self.set_rank), names="value")
        self._arrows.observe(guarded(self.set_arrows), names="value")
        self._residue.observe(guarded(self.select), names="value")
        self.ui = w.VBox([self._title, self._view_out, self._legend,
                          w.HBox([self._layout, self._arrows]), w.HBox([self._color, self._residue]),
                          w.HBox([self._heat_img, w.VBox([self._rank, self._table])])])

    def _sync(self):
        self._syncing = True
        try:
            self._layout.value, self._color.value, self._rank.value = self.layout, self.color_by, self.rank_by
            self._arrows.value, self._residue.value = self.arrows, self.selected
        finally:
            self._syncing = False

    def _on_heatmap_event(self, event: dict):
        try:
            fx = event["relativeX"] / event["boundingRectWidth"]
            fy = event["relativeY"] / event["boundingRectHeight"]
        except (KeyError, ZeroDivisionError, TypeError):
            return
        self.heatmap_image_click(fx, fy)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)


def view_compare(a_src, b_src, model=None, chain_a: str | None = None, chain_b: str | None = None, *,
                 source_a=None, source_b=None, **options) -> CompareApp:
    """Interactive comparison of two structures' (or two models') dynamics in Jupyter.

    Parameters
    ----------
    a_src, b_src : path, gemmi.Structure, ProteinChain, ``.dynamics.npz`` or Dynamics
        Structures are predicted with ``model`` (:func:`dynaprot_viz.predict`).
    model : str or (str, str), optional
        One predictor for both, or one per side; default :func:`dynaprot_viz.default_model`.
    chain_a, chain_b : str, optional
    source_a, source_b : path, optional
        The structure a Dynamics side was predicted from (drawn as cartoon).
    **options
        View options (``color_by``, ``layout``, ``arrows``, ``n_arrows``, ``probability``,
        ``opacity``, ``width``, ``height``, ``top``); the rest go to the predictor.

    Returns
    -------
    CompareApp
        Displays itself; ``app.comparison`` is the :class:`DynamicsComparison`.
    """
    view_keys = {"color_by", "layout", "arrows", "n_arrows", "probability", "opacity", "width", "height", "top",
                 "build_ui"}
    view_opts = {k: options.pop(k) for k in list(options) if k in view_keys}
    cmp, dyn_a, dyn_b, st_a, st_b = compare_sources(a_src, b_src, model, chain_a, chain_b, **options)
    return CompareApp(cmp, dyn_a, dyn_b, source_a if source_a is not None else st_a,
                      source_b if source_b is not None else st_b, **view_opts)


# ----------------------------------------------------------------------------- the page
def _b64(arr, dtype) -> str:
    import base64

    return base64.b64encode(np.ascontiguousarray(arr, dtype=dtype).tobytes()).decode("ascii")


def _lut(cmap: str) -> str:
    rgba = colormap_rgba(np.linspace(0, 1, 256), cmap, 0.0, 1.0)
    return _b64(np.round(rgba[:, :3] * 255), np.uint8)


def _side_data(cmp, dyn, text, side, probability, opacity):
    from .export import pdb_chain_name_map
    from .render.threedmol import mesh_spec, threedmol_chain

    scene = compare_scene(cmp, dyn, side, text, probability=probability, opacity=opacity)
    written = pdb_chain_name_map(r.chain for r in dyn.residues)
    colours = {}
    for key in COLOR_KEYS:
        lg = color_scale(cmp, key)
        colours[key] = rgba_to_hex(_side_rgba(cmp, key, side, lg, None))
    start, end, _ = arrow_segments(cmp, side)
    return {
        "n": dyn.n_residues, "labels": [r.label() for r in dyn.residues],
        "chains": [threedmol_chain(written[r.chain]) for r in dyn.residues],
        "resi": [r.number for r in dyn.residues], "structure": text, "mesh": mesh_spec(scene),
        "colors": colours, "arrowStart": np.round(start, 2).tolist(), "arrowEnd": np.round(end, 2).tolist(),
        "aligned": [int(i) for i in (cmp.index_a if side == "a" else cmp.index_b)],
    }


def compare_page_data(cmp: DynamicsComparison, dynamics_a: Dynamics, dynamics_b: Dynamics, structure_a=None,
                      structure_b=None, *, probability: float = DEFAULT_PROBABILITY, opacity: float = 0.7,
                      top: int = 15) -> dict:
    """Everything the comparison page's script reads, JSON-ready (arrays in base64)."""
    from .render.scales import HEATMAP_ORIGIN, residue_ticks
    from .render.threedmol import ARROW_STYLE

    b_frame = superposed_dynamics(cmp, dynamics_b)
    text_a = structure_text(dynamics_a, structure_a)
    text_b = superposed_text(cmp, dynamics_b, structure_b)
    delta = np.asarray(cmp.delta_correlation)
    v = _heat_range(delta)
    q = np.clip(np.round((np.clip(delta / v, -1, 1) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    legends = {}
    for key in COLOR_KEYS:
        lg = color_scale(cmp, key)
        legends[key] = {"title": lg.title, "vmin": lg.vmin, "vmax": lg.vmax, "note": lg.note, "lut": _lut(lg.cmap)}
    tables = {key: cmp.table(top, key) for key in COLOR_KEYS}
    for rows in tables.values():
        for r in rows:
            r["axis_angle"] = None if math.isnan(r["axis_angle"]) else round(r["axis_angle"], 1)
    return {
        "nameA": cmp.name_a, "nameB": cmp.name_b, "m": cmp.n_aligned,
        "a": _side_data(cmp, dynamics_a, text_a, "a", probability, opacity),
        "b": _side_data(cmp, b_frame, text_b, "b", probability, opacity),
        "legends": legends, "keys": [[k, COLOR_KEYS[k][0]] for k in COLOR_KEYS], "tables": tables,
        "alignedLabels": [f"{ra.label()} | {rb.label()}" for ra, rb in zip(cmp.aligned_a, cmp.aligned_b)],
        "delta": _b64(q, np.uint8), "deltaRange": v, "deltaLut": _lut(DIVERGING_CMAP),
        "heatmap": {"origin": HEATMAP_ORIGIN,
                    "ticks": [[i, t] for i, t in residue_ticks(cmp.aligned_a, target=6)]},
        "arrow": dict(ARROW_STYLE), "overlay": _B_OVERLAY_HEX,
        "summary": cmp.summary().splitlines(), "probability": probability,
    }


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>__TITLE__</title>
<style>
body { font: 13px sans-serif; margin: 10px; color: #222; }
h3 { margin: 4px 0 6px 0; }
#panels { display: flex; gap: 8px; flex-wrap: wrap; }
.viewer { width: 480px; height: 440px; position: relative; border: 1px solid #ccc; }
.cap { font-weight: bold; margin: 2px 0; }
#wrap2 { display: flex; gap: 16px; flex-wrap: wrap; align-items: flex-start; margin-top: 8px; }
#legend { width: 300px; height: 12px; border: 1px solid #999; }
table { border-collapse: collapse; } td, th { padding: 1px 6px; text-align: right; border-bottom: 1px solid #eee; }
#table tr.row { cursor: pointer; } #table tr.row:hover { background: #eef; }
.muted { color: #666; } .small { font-size: 11px; } .row { margin: 6px 0; }
</style></head><body>
<h3>__H_TITLE__</h3>
<div id="summary" class="muted small"></div>
<div class="row">panels: <label><input type="radio" name="lay" value="side" checked> side by side (linked)</label>
 <label><input type="radio" name="lay" value="sup"> superposed</label>
 &nbsp; colour by <select id="key"></select>
 &nbsp; <label><input id="arrows" type="checkbox" checked> displacement arrows (A → B)</label>
 &nbsp; residue <select id="residue"></select></div>
<div id="panels">
 <div id="sideA"><div class="cap">A: __NAME_A__</div><div id="va" class="viewer"></div></div>
 <div id="sideB"><div class="cap">B: __NAME_B__ (superposed on A)</div><div id="vb" class="viewer"></div></div>
 <div id="sideS" hidden><div class="cap">A coloured, B grey (superposed)</div><div id="vs" class="viewer" style="width:720px"></div></div>
</div>
<div class="row"><span id="legendTitle"></span><br><canvas id="legend" width="300" height="12"></canvas>
 <span id="legendRange" class="muted"></span><div id="legendNote" class="muted small"></div></div>
<div id="wrap2">
 <div><div class="muted">ΔC~ = C~_B − C~_A on the aligned residues (click a row: select that residue in A and B)</div>
  <canvas id="heatmap" width="420" height="400"></canvas><div id="heatLabel" class="muted small"></div></div>
 <div><div class="muted">residues that change most (click: select)</div><table id="table"></table></div>
</div>
<p class="muted">Ellipsoids contain each C-alpha with probability __PROB__. Made with dynaprot-viz __VERSION__;
3Dmol.js (BSD-3-Clause) is embedded.</p>
<script>__THREEDMOL__</script>
<script>__HELPER__</script>
<script id="dynaprot-data" type="application/json">__DATA__</script>
<script>
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("dynaprot-data").textContent);
  var key = "delta_rmsf", selected = -1, layout = "side", m = D.m;
  var dq = dynaprotViz.bytes(D.delta), dlut = dynaprotViz.bytes(D.deltaLut);
  document.getElementById("summary").innerHTML = D.summary.map(function (s) { return s.replace(/&/g, "&amp;").replace(/</g, "&lt;"); }).join("<br>");
  function hex(r, g, b) { return "#" + [r, g, b].map(function (v) { return ("0" + v.toString(16)).slice(-2); }).join(""); }
  function lutColor(t, table) { var k = Math.max(0, Math.min(255, Math.round(t * 255))); return [table[3*k], table[3*k+1], table[3*k+2]]; }
  function makeViewer(id, sides) {
    var v = $3Dmol.createViewer(document.getElementById(id), {backgroundColor: "white"});
    var st = {viewer: v, sides: sides, shapes: [], extras: []};
    sides.forEach(function (s, k) { v.addModel(s.structure, "pdb"); });
    return st;
  }
  function styleSide(st, s, model, grey) {
    var v = st.viewer, maps = {}, hexes = s.colors[key].slice();
    if (selected >= 0) hexes[s.aligned[selected]] = "#19e632";
    for (var i = 0; i < s.n; i++) { var mm = maps[s.chains[i]] || (maps[s.chains[i]] = {}); if (!(s.resi[i] in mm)) mm[s.resi[i]] = hexes[i]; }
    if (grey) { v.setStyle({model: model}, {cartoon: {color: D.overlay, opacity: 0.6}}); return; }
    for (var ch in maps) {
      var scheme = {prop: "resi", map: maps[ch]};
      v.setStyle({chain: ch, model: model}, {cartoon: {colorscheme: scheme}});
      v.addStyle({chain: ch, model: model, atom: "CA"}, {sphere: {radius: 0.35, colorscheme: scheme}});
    }
    var spec = Object.assign({}, s.mesh), cols = new Float32Array(3 * s.n);
    for (var i = 0; i < s.n; i++) { var h = hexes[i]; cols[3*i] = parseInt(h.substr(1, 2), 16) / 255; cols[3*i+1] = parseInt(h.substr(3, 2), 16) / 255; cols[3*i+2] = parseInt(h.substr(5, 2), 16) / 255; }
    var u = new Uint8Array(cols.buffer), txt = ""; for (var k = 0; k < u.length; k++) txt += String.fromCharCode(u[k]);
    spec.colors = btoa(txt);
    st.shapes = st.shapes.concat(dynaprotViz.addEllipsoids(v, spec));
  }
  function drawArrows(st, s) {
    if (!document.getElementById("arrows").checked) return;
    for (var k = 0; k < s.arrowStart.length; k++) {
      var a = s.arrowStart[k], b = s.arrowEnd[k];
      st.extras.push(st.viewer.addArrow(Object.assign({start: {x: a[0], y: a[1], z: a[2]}, end: {x: b[0], y: b[1], z: b[2]}}, D.arrow)));
    }
  }
  function label(st, s, model) {
    if (selected < 0) return;
    var i = s.aligned[selected];
    var atoms = st.viewer.selectedAtoms({model: model, chain: s.chains[i], resi: s.resi[i], atom: "CA"});
    if (atoms.length) st.extras.push({label: st.viewer.addLabel(s.labels[i], {position: atoms[0], backgroundColor: "black", fontSize: 12})});
  }
  function clear(st) {
    st.shapes.forEach(function (x) { st.viewer.removeShape(x); }); st.shapes = [];
    st.extras.forEach(function (e) { if (e.label) st.viewer.removeLabel(e.label); else st.viewer.removeShape(e); }); st.extras = [];
  }
  var VA = makeViewer("va", [D.a]), VB = makeViewer("vb", [D.b]), VS = null;
  VA.viewer.linkViewer(VB.viewer); VB.viewer.linkViewer(VA.viewer);
  function redraw() {
    if (layout === "side") {
      [[VA, D.a], [VB, D.b]].forEach(function (p) { clear(p[0]); styleSide(p[0], p[1], 0, false); drawArrows(p[0], p[1]); label(p[0], p[1], 0); p[0].viewer.render(); });
    } else {
      if (VS === null) { VS = makeViewer("vs", [D.a, D.b]); VS.viewer.zoomTo(); }
      clear(VS); styleSide(VS, D.a, 0, false); styleSide(VS, D.b, 1, true); drawArrows(VS, D.a); label(VS, D.a, 0); VS.viewer.render();
    }
    drawLegend(); drawHeatmap(); fillTable();
    document.getElementById("residue").value = String(selected);
  }
  function drawLegend() {
    var L = D.legends[key], lut = dynaprotViz.bytes(L.lut), c = document.getElementById("legend").getContext("2d");
    for (var x = 0; x < 300; x++) { var col = lutColor(x / 299, lut); c.fillStyle = hex(col[0], col[1], col[2]); c.fillRect(x, 0, 1, 12); }
    document.getElementById("legendTitle").textContent = L.title;
    document.getElementById("legendRange").textContent = L.vmin.toFixed(2) + " .. " + L.vmax.toFixed(2);
    document.getElementById("legendNote").textContent = L.note;
  }
  var heat = document.getElementById("heatmap"), base = document.createElement("canvas"), BOX = {left: 50, top: 6, size: 340};
  base.width = m; base.height = m;
  (function () {
    var ctx = base.getContext("2d"), img = ctx.createImageData(m, m);
    for (var k = 0; k < m * m; k++) { var col = lutColor(dq[k] / 255, dlut); img.data[4*k] = col[0]; img.data[4*k+1] = col[1]; img.data[4*k+2] = col[2]; img.data[4*k+3] = 255; }
    ctx.putImageData(img, 0, 0);
  })();
  function pos(i) { return (i + 0.5) * BOX.size / m; }
  function drawHeatmap() {
    var c = heat.getContext("2d"), L = BOX.left, T = BOX.top, S = BOX.size;
    c.clearRect(0, 0, heat.width, heat.height); c.imageSmoothingEnabled = m > S; c.drawImage(base, L, T, S, S);
    c.strokeStyle = "#444"; c.strokeRect(L - 0.5, T - 0.5, S + 1, S + 1); c.fillStyle = "#222"; c.font = "11px sans-serif";
    D.heatmap.ticks.forEach(function (t) { var p = pos(t[0]);
      c.textAlign = "center"; c.textBaseline = "top"; c.fillText(t[1], L + p, T + S + 4);
      c.textAlign = "right"; c.textBaseline = "middle"; c.fillText(t[1], L - 4, T + p); });
    for (var y = 0; y < S; y++) { var col = lutColor(1 - y / (S - 1), dlut); c.fillStyle = hex(col[0], col[1], col[2]); c.fillRect(L + S + 10, T + y, 12, 1); }
    c.textAlign = "left"; c.fillText("+" + D.deltaRange.toFixed(2), L + S + 6, T + S + 14); c.fillText("±, B − A", L + S + 6, T + S + 28);
    if (selected >= 0) { var yy = T + pos(selected), xx = L + pos(selected); c.strokeStyle = "#19e632"; c.beginPath(); c.moveTo(L, yy); c.lineTo(L + S, yy); c.moveTo(xx, T); c.lineTo(xx, T + S); c.stroke(); }
    document.getElementById("heatLabel").textContent = "colours span ±" + D.deltaRange.toFixed(2) + " (98th percentile of |ΔC~|); residue 1 at the top left";
  }
  heat.addEventListener("click", function (ev) {
    var r = heat.getBoundingClientRect(), y = (ev.clientY - r.top) * heat.height / r.height - BOX.top;
    if (y < 0 || y >= BOX.size) return;
    selected = Math.min(m - 1, Math.floor(y / BOX.size * m)); redraw();
  });
  function fillTable() {
    var t = document.getElementById("table"), rows = D.tables[key];
    var h = "<tr><th>A</th><th>B</th><th>RMSF A</th><th>RMSF B</th><th>ΔRMSF</th><th>ln V</th><th>axis °</th><th>sym KL</th><th>|d| Å</th></tr>";
    rows.forEach(function (r) {
      h += "<tr class='row' data-p='" + r.position + "'" + (r.position === selected ? " style='background:#dfd'" : "") + "><td>" + r.a + "</td><td>" + r.b + "</td><td>" + r.rmsf_a.toFixed(2) + "</td><td>" + r.rmsf_b.toFixed(2) +
           "</td><td>" + (r.delta_rmsf >= 0 ? "+" : "") + r.delta_rmsf.toFixed(2) + "</td><td>" + r.log_volume_ratio.toFixed(2) + "</td><td>" + (r.axis_angle === null ? "" : r.axis_angle.toFixed(0)) +
           "</td><td>" + r.sym_kl.toFixed(2) + "</td><td>" + r.displacement.toFixed(1) + "</td></tr>";
    });
    t.innerHTML = h;
    Array.prototype.forEach.call(t.querySelectorAll("tr.row"), function (tr) { tr.addEventListener("click", function () { selected = parseInt(tr.getAttribute("data-p"), 10); redraw(); }); });
  }
  var keyMenu = document.getElementById("key");
  D.keys.forEach(function (k) { var o = document.createElement("option"); o.value = k[0]; o.textContent = k[1]; keyMenu.appendChild(o); });
  keyMenu.addEventListener("change", function () { key = keyMenu.value; redraw(); });
  var resMenu = document.getElementById("residue");
  [[-1, "(none)"]].concat(D.alignedLabels.map(function (l, p) { return [p, l]; })).forEach(function (x) { var o = document.createElement("option"); o.value = String(x[0]); o.textContent = x[1]; resMenu.appendChild(o); });
  resMenu.addEventListener("change", function () { selected = parseInt(resMenu.value, 10); redraw(); });
  document.getElementById("arrows").addEventListener("change", redraw);
  Array.prototype.forEach.call(document.querySelectorAll("input[name=lay]"), function (r) {
    r.addEventListener("change", function () {
      layout = r.value; var side = layout === "side";
      document.getElementById("sideA").hidden = !side; document.getElementById("sideB").hidden = !side; document.getElementById("sideS").hidden = side;
      redraw();
    });
  });
  VA.viewer.zoomTo(); redraw();
  window.dynaprotReady = true;
})();
</script>
</body></html>
"""


def compare_html(cmp: DynamicsComparison, dynamics_a: Dynamics, dynamics_b: Dynamics, structure_a=None,
                 structure_b=None, *, title: str | None = None, **options) -> str:
    """The offline comparison page as a string (``options`` as :func:`compare_page_data`)."""
    from .html import fill_page

    data = compare_page_data(cmp, dynamics_a, dynamics_b, structure_a, structure_b, **options)
    title = title or f"{cmp.name_a} vs {cmp.name_b} · differential dynamics ({cmp.model_a} / {cmp.model_b})"
    return fill_page(_PAGE, data, {"__TITLE__": title, "__H_TITLE__": title, "__NAME_A__": cmp.name_a,
                                   "__NAME_B__": cmp.name_b}, allow_nan=False)


def write_compare_html(cmp: DynamicsComparison, dynamics_a: Dynamics, dynamics_b: Dynamics, path,
                       structure_a=None, structure_b=None, **options) -> Path:
    """Write :func:`compare_html` to ``path`` atomically; returns the path."""
    from ._io import atomic_write_text

    return atomic_write_text(Path(path), compare_html(cmp, dynamics_a, dynamics_b, structure_a, structure_b,
                                                      **options))
