"""The Jupyter app and renderers: state and browser messages for 50- and ~1,000-residue real structures."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("py3Dmol")
pytest.importorskip("nglview")

import dynaprot_viz as dv  # noqa: E402
from dynaprot_viz import Dynamics, InputError  # noqa: E402
from dynaprot_viz.render import build_scene, colormap_rgba, rgba_to_hex  # noqa: E402
from dynaprot_viz.render.threedmol import decode_spec  # noqa: E402
from dynaprot_viz.widget import stack_dynamics  # noqa: E402

DATA = Path(__file__).parent / "data"
BACKENDS = ["py3dmol", "nglview"]


@pytest.fixture(scope="module")
def small():
    """Crambin (1ejg), 46 residues."""
    return dv.predict(DATA / "1ejg.pdb", model="anm")


@pytest.fixture(scope="module")
def large():
    """1,184 residues: real chains (1ake A/B, 1osm, 1ubi, HIV protease A/B, 2zmm) side by side."""
    from MDAnalysisTests.datafiles import CONECT, merge_protein

    files = [(DATA / "1ake.cif", "A"), (DATA / "1ake.cif", "B"), (DATA / "1osm.pdb.gz", None),
             (DATA / "1ubi.pdb", None), (CONECT, "A"), (CONECT, "B"), (merge_protein, None)]
    parts = []
    for k, (path, chain) in enumerate(files):
        d = dv.predict(path, model="anm", chain=chain)
        new = "ABCDEFGH"[k]
        parts.append(Dynamics(d.mean + [80.0 * k, 0, 0], d.marginals, d.coupling,
                              tuple(r._replace(chain=new) for r in d.residues), "anm"))
    dyn = stack_dynamics(parts)
    assert 1000 <= dyn.n_residues <= 1300
    return dyn


def _mesh_colours(app):
    """Per-ellipsoid colours as sent to the browser by the backend, shape (N, 3)."""
    if app.backend == "py3dmol":
        (spec,) = [a[0] for n, a in app.view3d.calls if n == "addEllipsoids"]
        return decode_spec(spec)["colors"]
    msg = next(m for m in app.view3d._ngl_msg_archive if m.get("methodName") == "addBuffer"
               and m["args"] == ["ellipsoid"])
    return np.array(msg["kwargs"]["color"]).reshape(-1, 3)


def _n_ellipsoids_sent(app) -> int:
    if app.backend == "py3dmol":
        (spec,) = [a[0] for n, a in app.view3d.calls if n == "addEllipsoids"]
        mesh = decode_spec(spec)
        assert len(mesh["faces"]) == len(mesh["vertices"]) // spec["nVertices"] * spec["nFaces"]
        return len(mesh["vertices"]) // spec["nVertices"]
    msg = next(m for m in app.view3d._ngl_msg_archive if m.get("methodName") == "addBuffer")
    return len(msg["kwargs"]["radius"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", ["small", "large"])
def test_app_state(backend, size, request):
    dyn = request.getfixturevalue(size)
    n = dyn.n_residues
    app = dv.view(dyn, backend=backend)
    # one ellipsoid per residue, coloured by RMSF
    assert app.scene.n_ellipsoids == n == _n_ellipsoids_sent(app)
    assert app.scene.mode == "rmsf"
    from dynaprot_viz.render.scales import rmsf_color_range  # robust range (issue 13), as page and figure

    expected = colormap_rgba(dyn.rmsf, "viridis", *rmsf_color_range(dyn.rmsf))
    np.testing.assert_allclose(app.scene.residue_rgba, expected)
    np.testing.assert_allclose(_mesh_colours(app), expected[:, :3], atol=2e-3)
    assert app.scene.residue_hex()[int(np.argmax(dyn.rmsf))] == rgba_to_hex(colormap_rgba([1.0], "viridis", 0, 1))[0]
    # selecting a residue: its correlation row drives every other colour, positive and negative apart
    j = n // 3
    app.select(j)
    assert app.scene.mode == "coupling" and app.scene.selected == j
    row = dyn.correlation[j]
    others = np.arange(n) != j
    want = colormap_rgba(row, "RdBu_r", -1, 1)
    np.testing.assert_allclose(app.scene.residue_rgba[others], want[others])
    np.testing.assert_allclose(_mesh_colours(app)[others], want[others, :3], atol=2e-3)
    rgb = app.scene.residue_rgba
    pos, neg = others & (row > 0.03), others & (row < -0.03)
    assert pos.any() and neg.any()
    assert np.all(rgb[pos, 0] > rgb[pos, 2])  # red side
    assert np.all(rgb[neg, 2] > rgb[neg, 0])  # blue side
    before = app.scene.residue_rgba.copy()
    app.select(0)
    assert not np.allclose(before, app.scene.residue_rgba)
    app.select(None)
    assert app.scene.mode == "rmsf"
    # the heatmap was drawn (PNG bytes)
    assert app._heat_img.value[:4] == b"\x89PNG"


@pytest.mark.parametrize("backend", BACKENDS)
def test_controls_pockets_animation(backend, tmp_path):
    app = dv.view(DATA / "1ubi.pdb", backend=backend, model="anm")
    assert app.model == "anm" and app.dynamics.n_residues == 76
    # the dropdown drives the selection
    app._residue.value = 10
    assert app.selected == 10 and app._slider.value == 10
    app.heatmap_click(3.2, 20.4)
    assert app.selected == 20 and app._residue.value == 20
    # options
    app._prob.value = 0.9
    assert app.scene.mesh.probability == pytest.approx(0.9)
    app.set_options(residue_subset=[1, 2, 3], opacity=0.5)
    assert app.scene.n_ellipsoids == 3 == _n_ellipsoids_sent(app)
    app.set_options(residue_subset=None)
    # pockets
    assert [p.residues.tolist() for p in app.pockets] == [p.residues.tolist() for p in dv.find_pockets(app.dynamics)]
    if app.pockets:
        app._pockets.value = 0
        assert app.scene.mode == "pocket"
        assert len(app.scene.arrow_start) == len(app.pockets[0])
        if backend == "py3dmol":
            assert app.view3d.count("addArrow") == len(app.pockets[0])
    # ensemble animation and export
    app._nsamp.value, app._amp.value = 6, 2.0
    app._playbtn.value = True
    assert app.frames.shape == (6, 76, 3) and app.playing
    if backend == "py3dmol":
        assert app.view3d.count("animate") == 1
        assert ("animate", ({"loop": "backAndForth", "interval": 100},)) in app.view3d.calls
    else:
        assert app.view3d._trajlist and app.view3d._trajlist[-1].n_frames == 6
        assert app._play.max == 10
        app._play.value = 7  # bounce: 7 -> frame 3
        assert app.view3d.frame == 3
    app._path.value = str(tmp_path / "ens.pdb")
    app._export.click()
    text = (tmp_path / "ens.pdb").read_text()
    assert text.count("MODEL") == 6 and "wrote" in app._status.value
    app._playbtn.value = False
    assert not app.playing
    # another chain / model goes through predict
    app.set_model("anm")
    assert app.dynamics.model_name == "anm"


def test_all_chains_and_model_menu():
    app = dv.view(DATA / "1ake.cif", model="anm", chain="all")
    assert app.dynamics.n_residues == 428
    assert {r.chain for r in app.dynamics.residues} == {"A", "B"}
    assert "anm" in [value for _label, value in app._model.options]
    app.set_chain("B")
    assert {r.chain for r in app.dynamics.residues} == {"B"}


def test_py3dmol_html_and_errors(small):
    scene = build_scene(small)
    from dynaprot_viz.render.threedmol import render_py3dmol

    v = render_py3dmol(scene)
    html = v._repr_html_()
    assert "dynaprotViz.addEllipsoids(viewer_" in html and "createViewer" in html
    # residue colour maps sent to 3Dmol equal the scene's colours
    style = next(a for n, a in v.calls if n == "setStyle")
    cmap = style[1]["cartoon"]["colorscheme"]["map"]
    assert cmap[str(small.residues[0].number)] == scene.residue_hex()[0]
    json.dumps(v.calls)  # everything sent is JSON
    with pytest.raises(InputError, match="backend"):
        dv.view(small, backend="chimera")
    with pytest.raises(InputError, match="needs a selected residue"):
        build_scene(small, color_by="coupling")
    with pytest.raises(InputError, match="residue index"):
        dv.view(small).select(10_000)
    with pytest.raises(InputError, match="give a structure"):
        dv.view(small).set_model("anm")


def test_py3dmol_view_loads_the_vendored_3dmol_offline(ubq_anm, monkeypatch):
    """py3Dmol's default loads 3Dmol.js from a CDN; ours hands it the vendored copy."""
    import base64

    from dynaprot_viz.render.scene import build_scene
    from dynaprot_viz.render.threedmol import THREEDMOL_JS_ENV, Py3DmolView, threedmol_js

    monkeypatch.delenv(THREEDMOL_JS_ENV, raising=False)
    view = Py3DmolView(build_scene(ubq_anm))
    js = view.viewer.startjs
    assert "cdn.jsdelivr" not in js and "3dmol.org" not in js
    start = js.index("data:text/javascript;base64,") + len("data:text/javascript;base64,")
    payload = js[start:js.index("'", start)]
    assert base64.b64decode(payload).decode("utf-8") == threedmol_js()
    monkeypatch.setenv(THREEDMOL_JS_ENV, "https://example.org/3Dmol.js")
    assert "https://example.org/3Dmol.js" in Py3DmolView(build_scene(ubq_anm)).viewer.startjs


def test_heatmap_click_in_the_picture_selects_the_row(small):
    """A browser click on the heatmap image (ipyevents: position relative to the
    displayed picture) selects the residue of that row; clicks off the map do nothing."""
    import dynaprot_viz as dv

    app = dv.view(small, backend="py3dmol")
    assert app._heat_events is not None, "ipyevents is part of the [jupyter] extra"
    ax, fig = app._heat_axes, app.heatmap
    n = small.n_residues
    # where row 20, column 5 is drawn, as a fraction of the picture from its top-left corner
    disp = ax.transData.transform((5, 20))
    fx, fy = fig.transFigure.inverted().transform(disp)
    width, height = 380, 475
    app._on_heatmap_event({"relativeX": fx * width, "relativeY": (1 - fy) * height,
                           "boundingRectWidth": width, "boundingRectHeight": height})
    assert app.selected == 20
    assert app.heatmap_image_click(0.99, 0.5) is False  # the colour bar
    assert app.selected == 20
    fx, fy = fig.transFigure.inverted().transform(ax.transData.transform((0, n - 1)))
    assert app.heatmap_image_click(fx, 1 - fy) is True  # the last row, first column
    assert app.selected == n - 1
