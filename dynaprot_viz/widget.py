"""The Jupyter app: ``dynaprot_viz.view(source_or_dynamics)`` (issue 5).

A thin view over data: it holds view state (selected residue, pocket, colour
mode, probability, frames...) and redraws a :class:`~dynaprot_viz.render.Scene`
with the chosen backend.  It never computes dynamics itself: predictions come
from :func:`dynaprot_viz.predict`, samples from :meth:`Dynamics.sample`, pockets
from :func:`dynaprot_viz.find_pockets`.

Layout: 3D view (py3Dmol or nglview) | correlation heatmap (DCCM) with the RMSF
profile on its top edge; below, controls: residue (dropdown + slider, a click on
the heatmap through ipyevents, a pick in nglview), colour mode,
probability, scale, colour map, opacity, model, chain; a pocket list; ensemble
animation (samples, amplitude, play/pause, speed, loop or bounce, export as a
multi-model PDB).

>>> app = dv.view("examples/data/1ubi.pdb", model="anm")   # doctest: +SKIP
>>> app.select(10); app.scene.mode                          # doctest: +SKIP
'coupling'
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .core.errors import InputError
from .core.gaussian import Dynamics, stack_dynamics
from .core.pockets import find_pockets
from .geometry import DEFAULT_PROBABILITY
from .render.scene import Scene, build_scene, structure_text

__all__ = ["DynamicsApp", "view", "stack_dynamics", "heatmap_figure", "COLORMAPS"]

COLORMAPS = ("viridis", "plasma", "magma", "cividis", "inferno", "turbo", "coolwarm")
ALL_CHAINS = "all"


def _require_ipywidgets():
    try:
        import ipywidgets
    except ImportError:
        raise ImportError("the widget needs ipywidgets: pip install 'dynaprot-viz[jupyter]'") from None
    return ipywidgets


def binned(matrix: np.ndarray, max_size: int) -> np.ndarray:
    """Block means of a square (N, N) matrix down to at most (max_size, max_size), for display."""
    n = len(matrix)
    if n <= max_size:
        return matrix
    edges = np.linspace(0, n, max_size + 1).astype(int)
    rows = np.add.reduceat(matrix, edges[:-1], axis=0)
    both = np.add.reduceat(rows, edges[:-1], axis=1)
    counts = np.diff(edges)
    return both / np.outer(counts, counts)


def heatmap_figure(dynamics: Dynamics, selected: int | None = None, size: float = 4.5, max_pixels: int = 300):
    """Matplotlib figure: DCCM heatmap (RdBu_r, -1..1) with the RMSF profile (Å) above it.

    Returns (figure, heatmap axes, profile axes).  The selected residue's row and
    column are outlined.  Above ``max_pixels`` residues the heatmap shows block
    means (the figure is a few hundred pixels wide anyway).
    """
    from matplotlib.figure import Figure

    n = dynamics.n_residues
    fig = Figure(figsize=(size, size * 1.25))
    gs = fig.add_gridspec(2, 2, height_ratios=[1, 4], width_ratios=[30, 1])
    ax_p = fig.add_subplot(gs[0, 0])
    ax_h = fig.add_subplot(gs[1, 0], sharex=ax_p)
    cax = fig.add_subplot(gs[1, 1])
    from .render.scales import HEATMAP_ORIGIN  # residue 1 at the top left, as the page and the figure

    im = ax_h.imshow(binned(np.asarray(dynamics.correlation), max_pixels), cmap="RdBu_r", vmin=-1, vmax=1, origin=HEATMAP_ORIGIN,
                     interpolation="nearest", extent=(-0.5, n - 0.5, n - 0.5, -0.5), aspect="auto")
    fig.colorbar(im, cax=cax, label="correlation (DCCM)")
    ax_p.plot(np.arange(n), dynamics.rmsf, color="k", lw=1)
    ax_p.set_ylabel(dynamics.rmsf_label)
    ax_p.tick_params(labelbottom=False)
    ax_h.set_xlabel("residue index")
    ax_h.set_ylabel("residue index")
    if selected is not None:
        for f in (ax_h.axhline, ax_h.axvline, ax_p.axvline):
            f(selected, color="limegreen", lw=1)
    ax_p.set_title(f"{dynamics.model_name}: {n} residues", fontsize=9)
    fig.subplots_adjust(left=0.15, right=0.86, top=0.93, bottom=0.09, hspace=0.08, wspace=0.05)
    return fig, ax_h, ax_p


def _figure_png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


class DynamicsApp:
    """Linked ellipsoid view, coupling heatmap, pockets and ensemble animation.

    Build it with :func:`view`.  State lives in plain attributes (``selected``,
    ``pocket_index``, ``probability``, ``frames``, ...); every change redraws
    ``scene`` and the backend view.  ``app.ui`` is the ipywidgets container
    (also shown when the app is a cell's value).
    """

    def __init__(self, source_or_dynamics, backend: str = "py3dmol", model: str | None = None,
                 chain: str | None = None, probability: float = DEFAULT_PROBABILITY, scale: float = 1.0,
                 cmap: str = "viridis", opacity: float = 0.8, n_samples: int = 20, seed: int = 0,
                 width: int = 560, height: int = 480, **predict_options):
        from .api import predict
        from .core.predictors import available_models
        from .render import BACKENDS

        if backend not in BACKENDS:
            raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.backend = backend
        self.width, self.height = width, height
        self.probability, self.scale, self.cmap, self.opacity = probability, scale, cmap, opacity
        self.n_samples, self.seed, self.amplitude = int(n_samples), seed, 1.0
        self.speed_ms, self.bounce, self.playing = 100, True, False
        self.residue_subset = None
        self.selected: int | None = None
        self.chain_colors = False
        self.pocket_index: int | None = None
        self.frames = None
        self._predict = predict
        self._predict_options = predict_options
        if isinstance(source_or_dynamics, Dynamics):
            # source=: the structure file the dynamics came from, drawn as cartoon
            # (a batch store entry: dv.view(store["1abc_A"], source=path)); else C-alpha only
            self.source = predict_options.pop("source", None)
            self.model = source_or_dynamics.model_name
            self.chain = None
            self.chains = sorted({r.chain for r in source_or_dynamics.residues})
            self._set_dynamics(source_or_dynamics)
        else:
            from .core.structure import load_structure, protein_chain_names

            self.source = source_or_dynamics
            self.model = model or available_models().default
            try:
                self.chains = protein_chain_names(load_structure(source_or_dynamics)) + [ALL_CHAINS]
            except TypeError:  # a ProteinChain
                self.chains = [source_or_dynamics.chain_id]
            self.chain = chain
            self._set_dynamics(self._predict_chain(chain))
        self._build_ui()
        self.refresh()

    # ------------------------------------------------------------------ data
    def _predict_chain(self, chain):
        from .core.predictors import accepted_options

        if chain == ALL_CHAINS:
            names = [c for c in self.chains if c != ALL_CHAINS]
            if len(names) > 1:
                # the whole complex in one prediction (issue 14): ANM as one network, inter-chain
                # coupling included; other models chain by chain (predict warns that it is absent)
                try:
                    return self._predict(self.source, model=self.model, chain=names,
                                         **accepted_options(self.model, self._predict_options))
                except InputError as exc:  # e.g. a peptide chain too short for a per-chain model
                    warnings.warn(f"the complex as a whole failed ({exc}); chains predicted one by one, "
                                  "without inter-chain coupling", stacklevel=3)
            parts = []
            for c in names:
                try:
                    parts.append(self._predict(self.source, model=self.model, chain=c,
                                                **accepted_options(self.model, self._predict_options)))
                except InputError as exc:  # e.g. a 6-residue peptide chain
                    warnings.warn(f"chain {c} left out: {exc}", stacklevel=3)
            return stack_dynamics(parts)
        return self._predict(self.source, model=self.model, chain=chain,
                             **accepted_options(self.model, self._predict_options))

    def _set_dynamics(self, dynamics: Dynamics):
        self.dynamics = dynamics
        self.pockets = find_pockets(dynamics)
        self._structure = structure_text(dynamics, self.source)
        self.selected = None if self.selected is None or self.selected >= dynamics.n_residues else self.selected
        self.pocket_index = None
        self.frames = None

    # ------------------------------------------------------------------ state changes
    @property
    def color_mode(self) -> str:
        if self.pocket_index is not None:
            return "pocket"
        if self.selected is not None:
            return "coupling"
        return "chain" if getattr(self, "chain_colors", False) else "rmsf"

    def show_chain_colors(self, on: bool = True):
        """Colour by chain (a complex's chains told apart) instead of by RMSF; False: RMSF."""
        self.chain_colors = bool(on) and len({r.chain for r in self.dynamics.residues}) > 1
        self.selected = None
        self.pocket_index = None
        self._sync_controls()
        self.refresh()

    def select(self, index: int | None):
        """Highlight residue ``index`` and colour the others by their correlation with it (None: RMSF)."""
        if index is not None and not 0 <= int(index) < self.dynamics.n_residues:
            raise InputError(f"residue index must be in 0..{self.dynamics.n_residues - 1}, got {index!r}")
        self.selected = None if index is None else int(index)
        self.pocket_index = None
        if index is None:
            self.chain_colors = False
        self._sync_controls()
        self.refresh()

    def heatmap_click(self, x: float, y: float):
        """A click at heatmap data coordinates (column x, row y): select row y's residue."""
        n = self.dynamics.n_residues
        self.select(int(np.clip(round(y), 0, n - 1)))

    def heatmap_image_click(self, fx: float, fy: float) -> bool:
        """A click on the heatmap picture at fractions (fx, fy) of its width and height,
        from the top-left corner (what the browser reports): select the residue of
        the row under it.  Returns False when the click is outside the heatmap axes
        (on the RMSF profile, the colour bar or the margins)."""
        fig, ax = self.heatmap, self._heat_axes
        px = fig.transFigure.transform((float(fx), 1.0 - float(fy)))  # figure fraction -> display
        x, y = ax.transData.inverted().transform(px)
        (x0, x1), (y1, y0) = ax.get_xlim(), ax.get_ylim()  # rows grow downwards (origin="upper")
        if not (min(x0, x1) <= x <= max(x0, x1) and min(y0, y1) <= y <= max(y0, y1)):
            return False
        self.heatmap_click(x, y)
        return True

    def _on_heatmap_event(self, event: dict):
        """ipyevents click on the heatmap image (relative pixel position and displayed size)."""
        w, h = event.get("boundingRectWidth"), event.get("boundingRectHeight")
        if not w or not h:
            return
        try:
            self.heatmap_image_click(event["relativeX"] / w, event["relativeY"] / h)
        except InputError as exc:
            self._status.value = f"<b>{exc}</b>"

    def select_pocket(self, k: int | None):
        """Highlight pocket ``k`` (index into ``pockets``) with its motion arrows; None: back to RMSF."""
        if k is not None and not 0 <= k < len(self.pockets):
            raise InputError(f"pocket index must be in 0..{len(self.pockets) - 1}, got {k!r}")
        self.pocket_index = k
        if k is not None:
            self.selected = None
        self._sync_controls()
        self.refresh()

    def set_options(self, **options):
        """Change display options: probability, scale, cmap, opacity, residue_subset, speed_ms, bounce."""
        allowed = {"probability", "scale", "cmap", "opacity", "residue_subset", "speed_ms", "bounce"}
        bad = set(options) - allowed
        if bad:
            raise InputError(f"unknown option(s) {', '.join(sorted(bad))}; use {', '.join(sorted(allowed))}")
        for k, v in options.items():
            setattr(self, k, v)
        self.refresh()

    def set_model(self, model: str):
        """Predict again with another registered predictor."""
        if self.source is None:
            raise InputError("the app was built from a Dynamics: give a structure to switch models")
        self.model = model
        self._set_dynamics(self._predict_chain(self.chain))
        self._sync_controls(full=True)
        self.refresh()

    def set_chain(self, chain: str | None):
        """Show another chain of the source (``"all"``: every protein chain as one complex; ANM
        couples the chains, models run chain by chain leave the inter-chain coupling at 0)."""
        if self.source is None:
            raise InputError("the app was built from a Dynamics: give a structure to switch chains")
        self.chain = chain
        self._set_dynamics(self._predict_chain(chain))
        self._sync_controls(full=True)
        self.refresh()

    def sample(self, n: int | None = None, amplitude: float | None = None, seed=None):
        """Draw ensemble frames with :meth:`Dynamics.sample`; returns them, shape (K, N, 3) Å."""
        self.n_samples = int(n or self.n_samples)
        self.amplitude = float(self.amplitude if amplitude is None else amplitude)
        self.seed = self.seed if seed is None else seed
        self.frames = self.dynamics.sample(self.n_samples, seed=self.seed, amplitude=self.amplitude)
        return self.frames

    def play(self):
        """Animate the ensemble (drawn first if needed)."""
        if self.frames is None:
            self.sample()
        self.playing = True
        self.refresh()

    def pause(self):
        self.playing = False
        self.refresh()

    def export_ensemble(self, path) -> Path:
        """Write the current frames (drawn first if needed) as a multi-model PDB/mmCIF."""
        from .export import write_ensemble

        if self.frames is None:
            self.sample()
        return write_ensemble(self.dynamics, self.frames, path)

    # ------------------------------------------------------------------ drawing
    @property
    def pocket(self):
        return None if self.pocket_index is None else self.pockets[self.pocket_index]

    def make_scene(self) -> Scene:
        return build_scene(
            self.dynamics, self._structure, probability=self.probability, scale=self.scale,
            cmap=self.cmap, opacity=self.opacity, residues=self.residue_subset,
            color_by=self.color_mode, selected=self.selected, pocket=self.pocket,
            frames=self.frames if self.playing else None,
        )

    def refresh(self):
        """Rebuild the scene and redraw the 3D view and the heatmap."""
        self.scene = self.make_scene()
        if self.backend == "py3dmol":
            from .render.threedmol import render_py3dmol

            bounce = "backAndForth" if self.bounce else "forward"
            self.view3d = render_py3dmol(self.scene, self.width, self.height,
                                         animate_interval_ms=self.speed_ms, loop=bounce)
            self._view_out.outputs = ({"output_type": "display_data", "metadata": {},
                                       "data": {"text/html": self.view3d.viewer._make_html(),
                                                "text/plain": "<py3Dmol view>"}},)
            self._view_box.children = (self._view_out,)
        else:
            from .render.ngl import render_nglview

            import nglview

            widget = nglview.NGLWidget()
            widget.layout.width, widget.layout.height = f"{self.width}px", f"{self.height}px"
            self.view3d = render_nglview(self.scene, view=widget)
            if self.scene.frames is not None:
                self._play.max = 2 * (len(self.scene.frames) - 1) if self.bounce else len(self.scene.frames) - 1
                self._play.interval = int(self.speed_ms)
                self._play.playing = True
            else:
                self._play.playing = False
            self.view3d.observe(self._on_pick, names="picked")
            self._view_box.children = (self.view3d,)
        self._draw_heatmap()

    def _draw_heatmap(self):
        key = (id(self.dynamics), self.selected)
        if getattr(self, "_heat_key", None) == key:
            return
        fig, ax_h, _ = heatmap_figure(self.dynamics, self.selected)
        self.heatmap, self._heat_axes = fig, ax_h
        self._heat_img.value = _figure_png(fig)
        self._heat_key = key

    # ------------------------------------------------------------------ widgets
    def _build_ui(self):
        w = _require_ipywidgets()
        from .core.predictors import available_models

        self._view_out = w.Output(layout=w.Layout(width=f"{self.width + 10}px"))
        self._view_box = w.Box([self._view_out])
        self._heat_img = w.Image(format="png", layout=w.Layout(width="380px"))
        try:  # clicks on a picture need ipyevents (the [jupyter] extra); without it: dropdown and slider
            from ipyevents import Event

            self._heat_events = Event(source=self._heat_img, watched_events=["click"])
            self._heat_events.on_dom_event(self._on_heatmap_event)
        except ImportError:
            self._heat_events = None
        self._residue = w.Dropdown(description="residue", options=[])
        self._slider = w.IntSlider(description="index", min=0, max=max(self.dynamics.n_residues - 1, 0))
        self._clear = w.Button(description="RMSF colours")
        complex_ = len({r.chain for r in self.dynamics.residues}) > 1
        self._chain_colors = w.Button(description="chain colours",
                                      layout=w.Layout(display=None if complex_ else "none"))
        self._prob = w.FloatSlider(description="probability", min=0.05, max=0.99, step=0.01,
                                   value=self.probability)
        self._scale = w.FloatSlider(description="scale", min=0.2, max=5.0, step=0.1, value=self.scale)
        self._opacity = w.FloatSlider(description="opacity", min=0.0, max=1.0, step=0.05, value=self.opacity)
        self._cmap = w.Dropdown(description="colour map", options=list(COLORMAPS),
                                value=self.cmap if self.cmap in COLORMAPS else COLORMAPS[0])
        models = available_models()
        labels = [(f"{m} (default)" if m == models.default else m, m)
                  for m in (models if self.model in models else [self.model])]
        self._model = w.Dropdown(description="model", options=labels, value=self.model,
                                 disabled=self.source is None,
                                 tooltip=f"default {models.default}: {models.reason}")
        self._chain = w.Dropdown(description="chain", options=[("first", None)] + [(c, c) for c in self.chains],
                                 value=self.chain, disabled=self.source is None)
        self._pockets = w.Select(description="pockets", options=[], rows=5, layout=w.Layout(width="480px"))
        self._nsamp = w.BoundedIntText(description="samples", min=2, max=500, value=self.n_samples)
        self._amp = w.FloatSlider(description="amplitude", min=0.1, max=5.0, step=0.1, value=self.amplitude)
        self._speed = w.IntSlider(description="ms/frame", min=20, max=1000, step=10, value=self.speed_ms)
        self._bounce = w.Checkbox(description="bounce", value=self.bounce)
        self._playbtn = w.ToggleButton(description="play", icon="play")
        self._play = w.Play(min=0, max=1, interval=self.speed_ms)
        self._path = w.Text(description="export", value="ensemble.pdb")
        self._export = w.Button(description="write PDB")
        self._status = w.HTML()
        self._sync_controls(full=True)

        def guarded(f):
            def handler(change):
                if not self._syncing:
                    f(change)
            return handler

        self._residue.observe(guarded(lambda c: self.select(c["new"])), names="value")
        self._slider.observe(guarded(lambda c: self.select(c["new"])), names="value")
        self._clear.on_click(lambda _: self.select(None))
        self._chain_colors.on_click(lambda _: self.show_chain_colors(True))
        self._prob.observe(guarded(lambda c: self.set_options(probability=c["new"])), names="value")
        self._scale.observe(guarded(lambda c: self.set_options(scale=c["new"])), names="value")
        self._opacity.observe(guarded(lambda c: self.set_options(opacity=c["new"])), names="value")
        self._cmap.observe(guarded(lambda c: self.set_options(cmap=c["new"])), names="value")
        self._model.observe(guarded(lambda c: self.set_model(c["new"])), names="value")
        self._chain.observe(guarded(lambda c: self.set_chain(c["new"])), names="value")
        self._pockets.observe(guarded(lambda c: self.select_pocket(c["new"])), names="value")
        self._speed.observe(guarded(lambda c: self.set_options(speed_ms=c["new"])), names="value")
        self._bounce.observe(guarded(lambda c: self.set_options(bounce=c["new"])), names="value")
        self._play.observe(self._on_play_frame, names="value")

        def on_play(change):
            if self._syncing:
                return
            if change["new"]:
                self.sample(self._nsamp.value, self._amp.value)
                self.play()
            else:
                self.pause()
        self._playbtn.observe(on_play, names="value")

        def on_export(_):
            try:
                path = self.export_ensemble(self._path.value)
                self._status.value = f"wrote {path} ({len(self.frames)} models)"
            except (InputError, OSError) as exc:
                self._status.value = f"<span style='color:#b00'>{exc}</span>"
        self._export.on_click(on_export)

        row = w.HBox
        self.ui = w.VBox([
            row([self._view_box, self._heat_img]),
            row([self._residue, self._slider, self._clear, self._chain_colors]),
            row([self._prob, self._scale, self._opacity, self._cmap]),
            row([self._model, self._chain]),
            self._pockets,
            row([self._nsamp, self._amp, self._speed, self._bounce]),
            row([self._playbtn, self._play, self._path, self._export]),
            self._status,
        ])

    _syncing = False

    def _sync_controls(self, full: bool = False):
        """Push state into the controls without triggering their handlers."""
        if not hasattr(self, "_residue"):
            return
        self._syncing = True
        try:
            if full:
                self._residue.options = [("(none)", None)] + [
                    (r.label(), i) for i, r in enumerate(self.dynamics.residues)]
                self._slider.max = self.dynamics.n_residues - 1
                self._pockets.options = [("(none)", None)] + [
                    (f"#{k + 1} score {p.score:.2f}, {len(p)} res, opening {p.opening:.0%}: "
                     + ", ".join(p.labels(self.dynamics)[:4]) + (" ..." if len(p) > 4 else ""), k)
                    for k, p in enumerate(self.pockets)]
            self._residue.value = self.selected
            if self.selected is not None:
                self._slider.value = self.selected
            self._pockets.value = self.pocket_index
        finally:
            self._syncing = False

    def _on_play_frame(self, change):
        """nglview: map the Play counter to a frame (back and forth when bouncing)."""
        if self.backend != "nglview" or self.scene.frames is None:
            return
        k = len(self.scene.frames)
        v = int(change["new"])
        frame = (k - 1) - abs(v - (k - 1)) if self.bounce else v
        self.view3d.frame = int(np.clip(frame, 0, k - 1))

    def _on_pick(self, change):
        """nglview: a picked atom selects its residue."""
        atom = (change.get("new") or {}).get("atom1") or {}
        chain, resno = atom.get("chainname"), atom.get("resno")
        for i, r in enumerate(self.dynamics.residues):
            if r.chain == chain and r.number == resno:
                self.select(i)
                return

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)


def view(source_or_dynamics, backend: str = "py3dmol", model: str | None = None, chain: str | None = None,
         **options) -> DynamicsApp:
    """Interactive view of residue dynamics in Jupyter.

    Parameters
    ----------
    source_or_dynamics : path, gemmi.Structure, ProteinChain or Dynamics
        A structure is predicted with ``model`` (:func:`dynaprot_viz.predict`).
        With a Dynamics, ``source=PATH`` names the structure it was predicted from
        (drawn as cartoon; e.g. ``view(store["1abc_A"], source=store.info("1abc_A")["file"])``).
    backend : {"py3dmol", "nglview"}
    model : str, optional
        Registered predictor (default: :func:`dynaprot_viz.default_model`, the winner of the
        shipped held-out evaluation; ANM until a learned model beats it).
    chain : str, optional
        Chain to predict (default the first protein chain; ``"all"``: every chain).
    **options
        ``probability`` (0.5), ``scale``, ``cmap``, ``opacity``, ``n_samples``, ``seed``,
        ``width``, ``height``, and predictor options (e.g. ANM ``cutoff``).

    Returns
    -------
    DynamicsApp
        Displays itself; ``app.ui`` is the ipywidgets container.
    """
    return DynamicsApp(source_or_dynamics, backend=backend, model=model, chain=chain, **options)
