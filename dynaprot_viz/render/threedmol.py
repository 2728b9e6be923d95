"""py3Dmol (3Dmol.js) renderer of a :class:`~dynaprot_viz.render.scene.Scene`.

The structure is drawn as cartoon plus C-alpha spheres, coloured per residue
(3Dmol ``colorscheme`` maps residue number -> colour, one per chain); the
ellipsoids are ``addCustom`` triangle meshes (per-vertex colours, split in
chunks below WebGL's 16-bit index limit), sent as base64 arrays and unpacked by
``dynaprotViz.addEllipsoids`` (static/dynaprot_viz.js); pocket motions are arrows; the
selected residue gets a label; a complex gets one label per chain (the chain id on
the chain's colour, :attr:`Scene.chains`) whatever the colouring, so that chains
stay distinguishable under RMSF colours; ensemble frames are ``addModelsAsFrames`` +
``animate`` (loop back and forth).  3Dmol.js has no colour bar: the legend is
a screen label (the widget also shows a matplotlib colour bar).

Every call made on the viewer is also recorded in ``Py3DmolView.calls``
as ``(method, args)`` so that tests can check what the browser would get.
"""

from __future__ import annotations

import base64
import json

import numpy as np

from .scene import ARROW_RADIUS, ARROW_RGBA, Scene, rgba_to_hex

__all__ = ["Py3DmolView", "render_py3dmol", "py3dmol_calls", "mesh_spec", "decode_spec", "helper_js",
           "threedmol_js", "threedmol_js_uri", "threedmol_chain", "chain_label_style", "CA_SPHERE_RADIUS",
           "ARROW_STYLE"]

CA_SPHERE_RADIUS = 0.35  # Å
#: 3Dmol ``addArrow`` style of pocket motion arrows: thick shaft, a wide head over the last 30 %
ARROW_STYLE = {"radius": ARROW_RADIUS, "radiusRatio": 2.0, "mid": 0.7,
               "color": rgba_to_hex(ARROW_RGBA[None])[0]}


def chain_label_style(key) -> dict:
    """3Dmol ``addLabel`` style of a complex's chain label (:class:`~dynaprot_viz.render.scene.ChainKey`):
    bold white text on the chain's colour, at the key's label position, in front of the structure."""
    x, y, z = (float(v) for v in key.label_position)
    return {"position": {"x": x, "y": y, "z": z}, "backgroundColor": key.color, "backgroundOpacity": 0.9,
            "fontColor": "white", "fontSize": 16, "bold": True, "inFront": True, "borderColor": "white",
            "borderThickness": 1.0, "alignment": "center"}


def _require_py3dmol():
    try:
        import py3Dmol
    except ImportError:
        raise ImportError("the py3Dmol backend needs py3Dmol: pip install 'dynaprot-viz[jupyter]'") from None
    return py3Dmol


def threedmol_chain(written: str) -> str:
    """The chain id 3Dmol.js gives atoms of a PDB chain written as ``written``.

    3Dmol's PDB parser keeps column 22 as it is, untrimmed: a blank chain id (MD
    files, e.g. the ATLAS chains) is ``" "``, which a ``{chain: ""}`` selection does
    not match (3Dmol compares with ``==``; the page would show a grey wireframe).
    A two-character name (columns 21-22) is read as its last character.
    """
    return written[-1:] if written.strip() else " "


def _xyz_list(arr, decimals: int) -> list[dict]:
    a = np.round(np.asarray(arr, dtype=np.float64), decimals)
    return [{"x": x, "y": y, "z": z} for x, y, z in a.tolist()]


def _b64(arr, dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(arr, dtype=dtype).tobytes()).decode("ascii")


def mesh_spec(scene: Scene) -> dict:
    """The scene's ellipsoid mesh for ``dynaprotViz.addEllipsoids`` (static/dynaprot_viz.js).

    Arrays travel as base64 little-endian float32 / uint32 (4 bytes per number,
    a third of JSON's size): vertices and normals (M V, 3), faces (M F, 3) with
    global indices, colours (M, 3) RGB in 0..1; ``nVertices``/``nFaces`` per ellipsoid.
    """
    mesh = scene.mesh
    return {
        "vertices": _b64(mesh.vertices, "<f4"), "normals": _b64(mesh.normals, "<f4"),
        "faces": _b64(mesh.faces, "<u4"), "colors": _b64(mesh.colors[:, :3], "<f4"),
        "nVertices": mesh.n_vertices, "nFaces": mesh.n_faces, "opacity": scene.opacity,
    }


def decode_spec(spec: dict) -> dict:
    """Inverse of :func:`mesh_spec` (for tests and tools): arrays as numpy."""
    def dec(key, dtype, width):
        return np.frombuffer(base64.b64decode(spec[key]), dtype=dtype).reshape(-1, width)
    return {"vertices": dec("vertices", "<f4", 3), "normals": dec("normals", "<f4", 3),
            "faces": dec("faces", "<u4", 3), "colors": dec("colors", "<f4", 3)}


def helper_js() -> str:
    """The JavaScript of static/dynaprot_viz.js."""
    from importlib.resources import files

    return files("dynaprot_viz.static").joinpath("dynaprot_viz.js").read_text(encoding="utf-8")


def threedmol_js() -> str:
    """3Dmol.js 2.5.5 (minified, BSD-3-Clause), vendored from npm's ``3dmol`` package."""
    from importlib.resources import files

    return files("dynaprot_viz.static").joinpath("3Dmol-min.js").read_text(encoding="utf-8")


#: environment variable naming a URL to load 3Dmol.js from instead of the vendored copy
THREEDMOL_JS_ENV = "DYNAPROT_VIZ_3DMOL_JS"


def threedmol_js_uri() -> str:
    """Where py3Dmol loads 3Dmol.js from: the vendored copy as a ``data:`` URI.

    py3Dmol's default is a CDN, which fails offline; the data URI (about 0.7 MB
    in the notebook output) goes through py3Dmol's own loader, so it behaves the
    same under requirejs.  Set ``DYNAPROT_VIZ_3DMOL_JS`` to a URL for smaller
    notebooks when online.
    """
    import os

    override = os.environ.get(THREEDMOL_JS_ENV)
    if override:
        return override
    if not hasattr(threedmol_js_uri, "_uri"):
        data = base64.b64encode(threedmol_js().encode("utf-8")).decode("ascii")
        threedmol_js_uri._uri = "data:text/javascript;base64," + data
    return threedmol_js_uri._uri


def py3dmol_calls(scene: Scene, *, animate_interval_ms: int = 100, loop: str = "backAndForth") -> list[tuple]:
    """The 3Dmol.js viewer calls that draw ``scene``: a list of ``(method, args)``."""
    calls: list[tuple] = [("addModel", (scene.structure_text, "pdb"))]
    for written, cmap in scene.chain_color_maps().items():
        chain = threedmol_chain(written)
        scheme = {"prop": "resi", "map": {str(k): v for k, v in cmap.items()}}
        calls.append(("setStyle", ({"chain": chain}, {"cartoon": {"colorscheme": scheme}})))
        calls.append(("addStyle", ({"chain": chain, "atom": "CA"},
                                   {"sphere": {"radius": CA_SPHERE_RADIUS, "colorscheme": scheme}})))
    if len(scene.mesh):
        calls.append(("addEllipsoids", (mesh_spec(scene),)))
    for s, e in zip(scene.arrow_start, scene.arrow_end):
        calls.append(("addArrow", ({"start": _xyz_list(s[None], 2)[0], "end": _xyz_list(e[None], 2)[0],
                                    **ARROW_STYLE},)))
    if scene.selected is not None:
        pos = _xyz_list(scene.dynamics.mean[scene.selected][None], 2)[0]
        calls.append(("addLabel", (scene.dynamics.residues[scene.selected].label(),
                                   {"position": pos, "backgroundColor": "black", "fontSize": 12})))
    for key in scene.chains:  # a complex: the chain id on the chain's colour
        calls.append(("addLabel", (f"chain {key.text}", chain_label_style(key))))
    lg = scene.legend
    calls.append(("addLabel", (lg.text(),
                               {"useScreen": True, "position": {"x": 10, "y": 10, "z": 0},
                                "fontSize": 11, "backgroundOpacity": 0.6})))
    if scene.frames is not None and len(scene.frames) > 1:
        from .scene import ensemble_text

        calls.append(("addModelsAsFrames", (ensemble_text(scene.dynamics, scene.frames), "pdb")))
        calls.append(("setStyle", ({"model": -1}, {"sphere": {"radius": 0.5, "color": "#444444"},
                                                   "line": {"color": "#444444"}})))
        calls.append(("animate", ({"loop": loop, "interval": int(animate_interval_ms)},)))
    calls.append(("zoomTo", ()))
    return calls


class Py3DmolView:
    """A py3Dmol viewer drawn from a Scene, with the list of calls made on it.

    Attributes
    ----------
    viewer : py3Dmol.view
        Display it in a notebook (``viewer.show()`` or as the cell's value).
    calls : list of (method, args)
    """

    def __init__(self, scene: Scene, width: int = 640, height: int = 480, **options):
        py3Dmol = _require_py3dmol()
        self.scene = scene
        self.calls = py3dmol_calls(scene, **options)
        self.viewer = py3Dmol.view(width=width, height=height, js=threedmol_js_uri())
        for name, args in self.calls:
            if name == "addEllipsoids":  # our helper: raw JS inside py3Dmol's script
                self.viewer.startjs += helper_js() + "\n"
                self.viewer.startjs += f"dynaprotViz.addEllipsoids(viewer_UNIQUEID, {json.dumps(args[0])});\n"
            else:
                getattr(self.viewer, name)(*args)

    def count(self, method: str) -> int:
        """How many times ``method`` was called."""
        return sum(1 for name, _ in self.calls if name == method)

    def _repr_html_(self):
        return self.viewer._make_html()


def render_py3dmol(scene: Scene, width: int = 640, height: int = 480, **options) -> Py3DmolView:
    """Draw ``scene`` with py3Dmol; returns a :class:`Py3DmolView` (``.viewer`` is the py3Dmol.view)."""
    return Py3DmolView(scene, width, height, **options)
