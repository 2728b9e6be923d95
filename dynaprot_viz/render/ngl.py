"""nglview (NGL) renderer of a :class:`~dynaprot_viz.render.scene.Scene`.

- structure: cartoon + C-alpha spheres coloured per residue through a selection
  colour scheme (``"42:A"`` -> colour);
- ellipsoids: one NGL ``EllipsoidBuffer`` for all residues (position, colour,
  and the three semi-axes: NGL scales its unit sphere by (radius, |minorAxis|,
  |majorAxis|) in the frame (minorAxis x majorAxis, minorAxis, majorAxis)),
  from the same :func:`dynaprot_viz.geometry.ellipsoid_axes` as the meshes;
- pocket motions: one ``ArrowBuffer``;
- a complex: each chain's id as a text shape in the chain's colour
  (:attr:`~dynaprot_viz.render.scene.Scene.chains`), whatever the colouring;
- ensembles: a trajectory component (C-alpha atoms, one frame per sample)
  through nglview's adaptor protocol (:class:`SampleTrajectory`), played by
  nglview's player (play/pause/speed/loop).

The messages sent to the browser are in ``widget._ngl_msg_archive``; tests read them.
"""

from __future__ import annotations

import uuid

import numpy as np

from .scene import ARROW_RADIUS, ARROW_RGBA, Scene, ensemble_text

__all__ = ["render_nglview", "SampleTrajectory", "ngl_selection", "ellipsoid_buffer", "scheme_colors"]


def _require_nglview():
    try:
        import nglview
    except ImportError:
        raise ImportError("the nglview backend needs nglview: pip install 'dynaprot-viz[jupyter]'") from None
    return nglview


def ngl_selection(residue) -> str:
    """NGL selection string of one residue: ``42:A`` or ``42^B:A`` with an insertion code;
    ``42`` for a blank chain id (MD files), which NGL's ``:`` syntax cannot name."""
    icode = f"^{residue.icode}" if residue.icode else ""
    chain = f":{residue.chain}" if residue.chain.strip() else ""
    return f"{residue.number}{icode}{chain}"


def ellipsoid_buffer(scene: Scene) -> dict:
    """Keyword arguments of NGL's EllipsoidBuffer for the scene's ellipsoids (flat float lists)."""
    radii, axes = scene.radii, scene.axes  # radii ascending: [smallest, middle, largest]
    major = axes[:, :, 2] * radii[:, 2:3]
    minor = axes[:, :, 1] * radii[:, 1:2]
    centres = scene.dynamics.mean[scene.shown]
    return {
        "position": np.round(centres, 3).ravel().tolist(),
        "color": np.round(scene.mesh.colors[:, :3].astype(np.float64), 3).ravel().tolist(),
        "radius": np.round(radii[:, 0], 4).tolist(),
        "majorAxis": np.round(major, 4).ravel().tolist(),
        "minorAxis": np.round(minor, 4).ravel().tolist(),
    }


class SampleTrajectory:
    """nglview adaptor (Structure + Trajectory) for ensemble samples of shape (K, N, 3) Å."""

    def __init__(self, dynamics, frames):
        nglview = _require_nglview()
        # subclass at run time: nglview stays an optional import
        self.__class__ = type("SampleTrajectory", (SampleTrajectory, nglview.Structure, nglview.Trajectory), {})
        self.ext, self.params, self.id, self.shown = "pdb", {}, str(uuid.uuid4()), True
        self.frames = np.asarray(frames, dtype=np.float32)
        self._text = ensemble_text(dynamics, self.frames[:1])

    def get_structure_string(self) -> str:
        return self._text

    def get_coordinates(self, index: int) -> np.ndarray:
        return self.frames[index]

    @property
    def n_frames(self) -> int:
        return len(self.frames)


def render_nglview(scene: Scene, view=None, scheme_id: str | None = None):
    """Draw ``scene`` in an nglview.NGLWidget (a new one unless ``view`` is given); returns the widget."""
    nglview = _require_nglview()
    from nglview.adaptor import TextStructure
    from nglview.color import ColormakerRegistry

    view = view if view is not None else nglview.NGLWidget()
    scheme_id = scheme_id or f"dynaprot_{uuid.uuid4().hex[:8]}"
    scheme = [[h, ngl_selection(r)] for r, h in zip(scene.dynamics.residues, scene.residue_hex())]
    ColormakerRegistry.add_selection_scheme(scheme_id, scheme)
    view.add_structure(TextStructure(scene.structure_text, ext="pdb"), default_representation=False)
    view.add_representation("cartoon", selection="protein", color=scheme_id, component=0)
    view.add_representation("spacefill", selection=".CA", radius=0.35, color=scheme_id, component=0)
    if scene.n_ellipsoids:
        view.shape.add_buffer("ellipsoid", **ellipsoid_buffer(scene))
        view.update_representation(component=view.n_components - 1, repr_index=0, opacity=scene.opacity)
    if len(scene.arrow_start):
        k = len(scene.arrow_start)
        view.shape.add_buffer(
            "arrow", position1=np.round(scene.arrow_start, 3).ravel().tolist(),
            position2=np.round(scene.arrow_end, 3).ravel().tolist(),
            color=[float(c) for c in ARROW_RGBA[:3]] * k, radius=[ARROW_RADIUS] * k,
        )
    for key in scene.chains:  # a complex: the chain id in the chain's colour, one shape component
        rgb = [int(key.color[k:k + 2], 16) / 255 for k in (1, 3, 5)]
        view.shape.add("text", [float(v) for v in key.label_position], rgb, 6.0, f"chain {key.text}")
    if scene.selected is not None:
        view.add_representation("label", selection=ngl_selection(scene.dynamics.residues[scene.selected]) + ".CA",
                                labelType="res", color="black", component=0)
    if scene.frames is not None and len(scene.frames) > 1:
        view.add_trajectory(SampleTrajectory(scene.dynamics, scene.frames))
    view._dynaprot_scheme = scheme  # the colour scheme sent, kept for inspection
    view._dynaprot_legend = scene.legend
    return view


def scheme_colors(view) -> list[str]:
    """Colours (``#rrggbb``) of the selection scheme a view was drawn with, in residue order."""
    return [c for c, _ in view._dynaprot_scheme]

