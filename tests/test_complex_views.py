"""Chains of a complex distinguishable in the 3D views (issue 14): chain labels on each chain's
colour, a chain legend and a chain-colour mode in the page, the widget's renderers and the
figure's structure panel, while RMSF colours stay the default and one chain looks as before.

The complex is the HIV-1 protease dimer 1HVR (MDAnalysisTests), the single chain 1UBI."""

import warnings
from pathlib import Path

import gemmi
import numpy as np
import pytest

import dynaprot_viz as dv
from dynaprot_viz.html import page_data
from dynaprot_viz.render.scene import CHAIN_COLORS, build_scene, chain_keys, colormap_rgba, rgba_to_hex
from dynaprot_viz.render.scales import rmsf_color_range
from dynaprot_viz.render.threedmol import py3dmol_calls

ROOT = Path(__file__).resolve().parents[1]
UBQ = ROOT / "tests" / "data" / "1ubi.pdb"
_SITE = Path(gemmi.__file__).resolve().parent
_SITE = _SITE if (_SITE / "MDAnalysisTests").exists() else _SITE.parent
HVR = _SITE / "MDAnalysisTests" / "data" / "1hvr.pdb"  # HIV-1 protease dimer, chains A and B


@pytest.fixture(scope="module")
def dimer():
    if not HVR.exists():
        pytest.skip("1hvr.pdb not installed (it comes with the test dependency MDAnalysisTests)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dv.predict(HVR, model="anm", chain="A,B")


@pytest.fixture(scope="module")
def ubq():
    return dv.predict(UBQ, model="anm")


def _chain_labels(calls):
    return [(args[0], args[1]) for name, args in calls if name == "addLabel" and args[0].startswith("chain ")]


def test_chain_keys_of_a_complex_only(dimer, ubq):
    keys = chain_keys(dimer)
    assert [k.chain for k in keys] == ["A", "B"]
    assert [k.n_residues for k in keys] == [99, 99]
    assert keys[0].color != keys[1].color and {k.color for k in keys} <= set(CHAIN_COLORS)
    # each label sits on its own chain's side of the complex
    chains = np.array([r.chain for r in dimer.residues])
    for k in keys:
        own = np.linalg.norm(dimer.mean[chains == k.chain].mean(axis=0) - k.label_position)
        other = np.linalg.norm(dimer.mean[chains != k.chain].mean(axis=0) - k.label_position)
        assert own < other
    assert chain_keys(ubq) == ()


def test_page_data_of_a_complex_has_a_chain_legend(dimer):
    data = page_data(dimer, HVR, n_samples=0)
    key = data["chainKey"]
    assert [k["chain"] for k in key] == ["A", "B"] and [k["n"] for k in key] == [99, 99]
    assert key[0]["color"] != key[1]["color"]
    assert key[0]["label"]["backgroundColor"] == key[0]["color"]
    # chain colours: one colour per chain, different between chains
    chains = np.array(data["chains"])
    cols = np.array(data["chainColors"])
    assert set(cols[chains == "A"]) == {key[0]["color"]} and set(cols[chains == "B"]) == {key[1]["color"]}
    # RMSF stays the default colouring of cartoon and ellipsoids
    lo, hi = rmsf_color_range(dimer.rmsf)
    assert data["rmsfColors"] == rgba_to_hex(colormap_rgba(dimer.rmsf, "viridis", lo, hi))


def test_single_chain_page_has_no_chain_legend(ubq):
    data = page_data(ubq, UBQ, n_samples=0)
    assert "chainKey" not in data and "chainColors" not in data
    lo, hi = rmsf_color_range(ubq.rmsf)
    assert data["rmsfColors"] == rgba_to_hex(colormap_rgba(ubq.rmsf, "viridis", lo, hi))


def test_widget_3dmol_calls_label_each_chain(dimer, ubq):
    calls = py3dmol_calls(build_scene(dimer))
    labels = _chain_labels(calls)
    assert [t for t, _ in labels] == ["chain A", "chain B"]
    assert labels[0][1]["backgroundColor"] != labels[1][1]["backgroundColor"]
    assert all(style["inFront"] for _, style in labels)
    # the labels stay in coupling mode too (chains distinguishable whatever the colouring)
    assert len(_chain_labels(py3dmol_calls(build_scene(dimer, color_by="coupling", selected=3)))) == 2
    # one chain: no chain labels, the calls of a single chain
    assert _chain_labels(py3dmol_calls(build_scene(ubq))) == []


def test_chain_colour_mode(dimer):
    scene = build_scene(dimer, color_by="chain")
    hexes = np.array(scene.residue_hex())
    chains = np.array([r.chain for r in dimer.residues])
    assert len(set(hexes[chains == "A"])) == 1 and len(set(hexes[chains == "B"])) == 1
    assert hexes[chains == "A"][0] != hexes[chains == "B"][0]
    assert scene.legend.kind == "categories"
    assert [t for t, _ in scene.legend.entries] == ["chain A (99 residues)", "chain B (99 residues)"]


def test_nglview_labels_each_chain(dimer, ubq):
    pytest.importorskip("nglview", reason="nglview backend is optional")
    from dynaprot_viz.render.ngl import render_nglview

    def texts(view):
        out = []
        for msg in view._ngl_msg_archive:
            for arg in msg.get("args", []):
                if isinstance(arg, list):
                    out += [s[-1] for s in arg if isinstance(s, (list, tuple)) and s and s[0] == "text"]
        return out

    assert texts(render_nglview(build_scene(dimer))) == ["chain A", "chain B"]
    assert texts(render_nglview(build_scene(ubq))) == []


def _figure_legend_texts(result):
    fig = result.figure
    return [t.get_text() for ax in fig.axes for leg in ([ax.get_legend()] if ax.get_legend() else [])
            if leg.get_gid() == "chain-legend" for t in leg.get_texts()]


def test_figure_structure_panel_has_chain_legend_for_a_complex_only(dimer, ubq):
    import matplotlib

    matplotlib.use("Agg")
    from dynaprot_viz.figure import make_figure

    res = make_figure(dimer, HVR, renderer="projection", dpi=60)
    assert _figure_legend_texts(res) == ["chain A (99)", "chain B (99)"]
    labels = [t.get_text() for ax in res.figure.axes for t in ax.texts if t.get_gid() == "chain-label-3d"]
    assert labels == ["chain A", "chain B"]
    traces = [c for ax in res.figure.axes for c in ax.collections if c.get_gid() == "chain-trace"]
    assert len(traces) == 1 and len({tuple(c) for c in traces[0].get_colors()}) == 2
    single = make_figure(ubq, UBQ, renderer="projection", dpi=60)
    assert _figure_legend_texts(single) == []
    assert not [t for ax in single.figure.axes for t in ax.texts if t.get_gid() == "chain-label-3d"]


def test_pymol_script_labels_chains(dimer, ubq):
    from dynaprot_viz.figure import pymol_scene_script

    kw = dict(width=100, height=100, vmin=0.5, vmax=1.5)
    text = pymol_scene_script("s.pdb", "s.png", chain_labels=chain_keys(dimer), **kw)
    assert "label=chain A" in text and "label=chain B" in text
    assert text.count("pseudoatom dpv_chainlabel") == 2
    assert pymol_scene_script("s.pdb", "s.png", chain_labels=chain_keys(ubq), **kw) == \
        pymol_scene_script("s.pdb", "s.png", **kw)


def test_complex_page_in_chromium(dimer, tmp_path):
    """The page of a complex in headless Chromium: chain labels and legend drawn, the
    "chain colours" button colours the chains apart, no console errors."""
    import base64
    import sys
    import time

    sys.path.insert(0, str(Path(__file__).parent))
    test_html = pytest.importorskip("test_html")
    if test_html.CHROMIUM is None:
        pytest.skip("headless browser test needs Debian's chromium: apt-get install -y chromium")
    pytest.importorskip("websocket", reason="browser test needs websocket-client (pip install websocket-client)")
    from dynaprot_viz.html import write_html

    page = write_html(dimer, tmp_path / "dimer.html", HVR, n_samples=0)
    b = test_html._Chromium()
    try:
        for domain in ("Page", "Runtime", "Log"):
            b.call(f"{domain}.enable")
        b.call("Page.navigate", url=page.as_uri())
        assert b.wait_for("window.dynaprotReady === true"), f"page did not finish: {b.errors()}"
        legend = b.call("Runtime.evaluate", returnByValue=True, expression=(
            "[document.getElementById('chainLegend').hidden, document.getElementById('chainLegend').textContent]"
        ))["result"]["value"]
        assert legend[0] is False and "A (99)" in legend[1] and "B (99)" in legend[1]
        before = test_html._png_array(b.call("Page.captureScreenshot", format="png")["data"])
        b.call("Runtime.evaluate", expression="document.getElementById('chainColours').click();")
        time.sleep(1.0)
        after = test_html._png_array(b.call("Page.captureScreenshot", format="png")["data"])
        assert not b.errors(), b.errors()
    finally:
        b.close()

    def share(img, colour):
        """Fraction of the viewer's pixels close in hue to ``colour`` (shaded cartoon and ellipsoids)."""
        region = img[40:540, 10:570].reshape(-1, 3)
        rgb = np.array([int(colour[k:k + 2], 16) for k in (1, 3, 5)], dtype=float)
        near = np.abs(region / np.maximum(region.sum(axis=1, keepdims=True), 1) - rgb / rgb.sum()).max(axis=1) < 0.05
        return float((near & (region.sum(axis=1) > 120)).mean())

    key_a, key_b = chain_keys(dimer)
    # RMSF colours (viridis, no red): only chain A's label is red; chain colours: all of chain A
    assert share(after, key_a.color) > 3 * share(before, key_a.color) + 0.005, \
        (share(before, key_a.color), share(after, key_a.color))
    # chain B's blue is near viridis' blues, so only: it covers more of the view than before
    assert share(after, key_b.color) > share(before, key_b.color) + 0.002


def test_widget_chain_colour_button_for_complexes_only():
    """The widget's "chain colours" button: shown for a complex, colours by chain, and
    "RMSF colours" switches back; hidden for one chain."""
    pytest.importorskip("ipywidgets")
    if not HVR.exists():
        pytest.skip("1hvr.pdb not installed (it comes with the test dependency MDAnalysisTests)")
    app = dv.view(HVR, chain="all", n_samples=0)
    assert app._chain_colors.layout.display is None
    app._chain_colors.click()
    assert app.color_mode == "chain"
    chain_of = np.array([r.chain for r in app.dynamics.residues])
    rgba = np.asarray(app.scene.residue_rgba)
    # one colour per chain, different between the two chains
    for c in ("A", "B"):
        assert len({tuple(x) for x in rgba[chain_of == c].round(4)}) == 1
    assert not np.allclose(rgba[chain_of == "A"][0], rgba[chain_of == "B"][0])
    app._clear.click()
    assert app.color_mode == "rmsf"
    assert len({tuple(x) for x in np.asarray(app.scene.residue_rgba).round(4)}) > 2
    one = dv.view(UBQ, n_samples=0)
    assert one._chain_colors.layout.display == "none"
    one.show_chain_colors(True)
    assert one.color_mode == "rmsf"  # one chain: nothing to tell apart
