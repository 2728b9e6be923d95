"""Issue 13 items 6, 7 and 11: the page's and the figure's scales, axes, legends and layout,
and the example notebook's widget display (no output capture nbclient can hang on).

Real files: ubiquitin (examples/data/1ubi.pdb, 76 residues), adenylate kinase chain A
(tests/data/1ake.cif, 214) and an mdCATH domain (../shared/data/mdcath_rmsf/pdbs/1a05A00.pdb,
357 residues; skipped when ../shared is absent).  Browser checks of the same page are in
tests/test_html.py.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest

import dynaprot_viz as dv
from dynaprot_viz.cli import main
from dynaprot_viz.figure import ellipsoid_extent_points, make_figure, pymol_scene_script
from dynaprot_viz.html import page_data, page_title, standalone_html
from dynaprot_viz.render.scales import (HEATMAP_ORIGIN, correlation_view, residue_ticks, rmsf_color_range,
                                        slow_mode_correlation)
from dynaprot_viz.render.scene import POCKET_RGBA, arrow_lengths, build_scene, describe_source
from dynaprot_viz.render.threedmol import ARROW_STYLE, py3dmol_calls

ROOT = Path(__file__).resolve().parents[1]
UBQ = ROOT / "examples" / "data" / "1ubi.pdb"
AKE = ROOT / "tests" / "data" / "1ake.cif"
LONG = ROOT.parent / "shared" / "data" / "mdcath_rmsf" / "pdbs" / "1a05A00.pdb"
DPI = 100


@pytest.fixture(scope="module")
def ubq():
    return dv.predict(UBQ, model="anm")


@pytest.fixture(scope="module")
def ake():
    return dv.predict(AKE, model="anm", chain="A")


@pytest.fixture(scope="module")
def long_chain():
    if not LONG.exists():
        pytest.skip("../shared/data/mdcath_rmsf/pdbs/1a05A00.pdb not present (the 357-residue case needs it)")
    return dv.predict(LONG, model="anm")


def _page_json(page: str) -> dict:
    tag = '<script id="dynaprot-data" type="application/json">'
    start = page.index(tag) + len(tag)
    return json.loads(page[start:page.index("</script>", start)])


def _round_step(numbers) -> int:
    """The largest round step (1, 2, 5, 10, 20, 25, 50, ...) dividing all numbers."""
    for step in (10000, 5000, 2000, 1000, 500, 250, 200, 100, 50, 25, 20, 10, 5, 2, 1):
        if all(int(v) % step == 0 for v in numbers):
            return step
    return 1


# ----------------------------------------------------------------------------- scales
def test_rmsf_colour_range_is_2nd_to_98th_percentile_with_true_range_in_legend(ubq):
    rmsf = ubq.rmsf
    lo, hi = np.percentile(rmsf, [2, 98])
    assert rmsf_color_range(rmsf) == pytest.approx((lo, hi))
    assert rmsf.max() > 2 * hi  # ubiquitin's floppy C-terminus: why a robust range matters
    legend = build_scene(ubq).legend
    assert (legend.vmin, legend.vmax) == pytest.approx((lo, hi))
    assert legend.data_min == pytest.approx(rmsf.min()) and legend.data_max == pytest.approx(rmsf.max())
    assert f"{rmsf.min():.2f}-{rmsf.max():.2f}" in legend.note and "percentile" in legend.note
    # the bulk of the chain spreads over the colour map instead of one dark end
    t = np.clip((rmsf - lo) / (hi - lo), 0, 1)
    assert np.median(t) > 0.05 and np.median((rmsf - rmsf.min()) / np.ptp(rmsf)) < 0.05
    # the page carries the same range and the true one
    data = page_data(ubq, UBQ, n_samples=0)
    assert (data["legend"]["vmin"], data["legend"]["vmax"]) == pytest.approx((lo, hi))
    assert data["legend"]["dataMax"] == pytest.approx(rmsf.max())
    assert f"{rmsf.max():.2f}" in data["legend"]["note"]
    # the widget/py3Dmol screen label says it too
    label = next(args[0] for name, args in py3dmol_calls(build_scene(ubq)) if name == "addLabel")
    assert f"{rmsf.max():.2f}" in label


def test_residue_ticks_on_round_numbers(ubq, ake):
    for dyn in (ubq, ake):
        ticks = residue_ticks(dyn.residues, target=6)
        numbers = [dyn.residues[i].number for i, _ in ticks]
        assert [t for _, t in ticks] == [str(v) for v in numbers]
        assert 3 <= len(ticks) <= 12
        assert _round_step(numbers) >= 5
    # a fragment numbered from 28, two chains: labels carry the chain, numbers stay round
    two = dv.widget.stack_dynamics([dv.predict(AKE, model="anm", chain=c) for c in "AB"])
    ticks = residue_ticks(two.residues, target=8)
    assert {t[0] for _, t in ticks} == {"A", "B"}
    assert _round_step(int(t[1:]) for _, t in ticks) >= 10


def test_correlation_view_ranges(ake):
    corr = ake.correlation
    off = np.abs(corr[~np.eye(len(corr), dtype=bool)])
    q = np.percentile(off, 98)
    assert np.median(off) < 0.05  # ANM's DCCM: nearly blank on -1..1
    full = correlation_view(ake, "full")
    assert (full.vmin, full.vmax, full.kind) == (-1.0, 1.0, "full") and "-1..1" in full.label
    robust = correlation_view(ake, "robust")
    assert (robust.vmin, robust.vmax) == pytest.approx((-q, q)) and robust.kind == "robust"
    assert f"±{q:.2f}" in robust.label and "98th percentile" in robust.label
    assert correlation_view(ake, "auto").kind == "robust"
    slow = correlation_view(ake, "full", slow_modes=10)
    assert "10 slowest modes" in slow.label and "% of variance" in slow.label
    with pytest.raises(dv.InputError, match="colour range must be one of"):
        correlation_view(ake, "percentile")


def test_slow_mode_correlation_keeps_the_largest_modes():
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    w = np.geomspace(100.0, 0.01, 30)
    c = (u * w) @ u.T
    corr, frac = slow_mode_correlation(c, 3)
    ck = (u[:, :3] * w[:3]) @ u[:, :3].T
    d = np.sqrt(np.diag(ck))
    np.testing.assert_allclose(corr, ck / np.outer(d, d), atol=1e-9)
    assert frac == pytest.approx(w[:3].sum() / w.sum())
    np.testing.assert_allclose(np.diag(corr), 1.0)


# ----------------------------------------------------------------------------- page
def test_page_heatmap_has_axes_ticks_and_colour_bar(ake):
    page = standalone_html(ake, AKE, n_samples=0)
    data = _page_json(page)
    h = data["heatmap"]
    assert h["origin"] == HEATMAP_ORIGIN == "upper"  # residue 1 at the top left
    assert h["xlabel"] == "residue j" and h["ylabel"] == "residue i"
    numbers = [ake.residues[i].number for i, _ in h["ticks"]]
    assert [t for _, t in h["ticks"]] == [str(v) for v in numbers] and len(numbers) >= 3
    assert _round_step(numbers) >= 10
    view = correlation_view(ake, "auto")
    assert (h["vmin"], h["vmax"]) == pytest.approx((view.vmin, view.vmax)) and h["label"] == view.label
    # the elements the script draws into, and the drawing code's conventions
    assert 'id="heatmapBar"' in page and 'id="heatmapLabel"' in page
    assert "c.fillText(t[1]" in page  # tick labels written on both axes
    assert "putImageData(img, 0, 0);  // image row r = matrix row r: row 0 on top" in page
    assert page_data(ake, AKE, n_samples=0, heatmap_range="full")["heatmap"]["vmax"] == 1.0
    with pytest.raises(dv.InputError, match="heatmap_range"):
        page_data(ake, AKE, n_samples=0, heatmap_range="slow")


def test_page_pocket_legend_and_arrows(ubq):
    pockets = dv.find_pockets(ubq)
    assert pockets
    scene = build_scene(ubq, pocket=pockets[0], color_by="pocket")
    assert scene.legend.kind == "categories"
    texts = [t for t, _ in scene.legend.entries]
    assert any("pocket residues" in t for t in texts) and any("arrow" in t for t in texts)
    assert "RMSF" not in scene.legend.text()
    # arrows: long enough to be seen, thick, not in the pocket's own orange
    lengths = np.linalg.norm(scene.arrow_end - scene.arrow_start, axis=1)
    assert lengths.max() >= 8.0 and lengths.min() >= 0.4 * lengths.max() - 1e-9
    np.testing.assert_allclose(lengths, arrow_lengths(ubq, pockets[0]))
    assert ARROW_STYLE["radius"] >= 0.5 and ARROW_STYLE["color"].lower() != "#ff8c00"
    arrows = [a[0] for name, a in py3dmol_calls(scene) if name == "addArrow"]
    assert len(arrows) == len(pockets[0]) and all(a["radius"] == ARROW_STYLE["radius"] for a in arrows)
    rgb = np.array([int(ARROW_STYLE["color"][k:k + 2], 16) for k in (1, 3, 5)]) / 255
    assert np.abs(rgb - POCKET_RGBA[:3]).sum() > 1.0  # contrasting colour
    # the page: each pocket brings its own legend, named like the figure's labels
    data = page_data(ubq, UBQ, n_samples=0)
    assert [p["name"] for p in data["pockets"]] == [f"P{k}" for k in range(1, len(pockets) + 1)]
    p1 = data["pockets"][0]
    assert p1["legend"]["title"].startswith("P1: pocket") and len(p1["legend"]["entries"]) == 3
    end = np.array(p1["end"]) - np.array(p1["start"])
    np.testing.assert_allclose(np.linalg.norm(end, axis=1), lengths, atol=0.02)
    assert data["arrow"] == ARROW_STYLE


def test_page_title_names_file_and_protein(ubq, ake, tmp_path):
    title, subtitle = page_title(ubq, UBQ)
    assert title.startswith("1ubi.pdb · 1UBI chain A") and "anm dynamics, 76 residues" in title
    assert "UBIQUITIN" in subtitle
    page = standalone_html(ubq, UBQ, n_samples=0)
    assert re.search(r"<title>1ubi\.pdb · 1UBI chain A · anm dynamics, 76 residues</title>", page)
    assert page_title(ake, AKE)[0].startswith("1ake.cif · 1AKE chain A")
    # a gzipped mmCIF-free PDB with a TITLE; and a file without header: the file name alone
    osm = describe_source(ROOT / "tests" / "data" / "1osm.pdb.gz")
    assert osm == {"file": "1osm.pdb.gz", "entry": "1OSM", "title": "OSMOPORIN (OMPK36) FROM KLEBSIELLA PNEUMONIAE"}
    # from a saved prediction: the CLI names the .npz (and the structure's id)
    npz = ubq.save(tmp_path / "ubq.dynamics.npz")
    out = tmp_path / "p.html"
    assert main(["view", str(npz), "--structure", str(UBQ), "--samples", "0", "--heatmap-range", "full",
                 "--html", str(out)]) == 0
    text = out.read_text()
    assert "<title>ubq.dynamics.npz · 1UBI chain A" in text
    assert _page_json(text)["heatmap"]["vmax"] == 1.0


def test_page_title_skips_simulation_boilerplate():
    atlas = ROOT.parent / "shared" / "data" / "atlas_chains" / "1ab1_A.pdb"
    if not atlas.exists():
        pytest.skip("../shared/data/atlas_chains/1ab1_A.pdb not present")
    info = describe_source(atlas)  # TITLE "Protein in water t= 0.00000 step= 0" (GROMACS)
    assert info == {"file": "1ab1_A.pdb", "entry": None, "title": None}


# ----------------------------------------------------------------------------- figure
def _axes(result, prefix: str):
    return next(ax for ax in result.figure.axes if ax.get_title(loc="left").startswith(prefix))


def _pocket_texts(ax):
    return [t for t in ax.texts if re.fullmatch(r"P\d+", t.get_text())]


def _check_label_layout(result):
    fig = result.figure
    ax = _axes(result, "c  flexibility")
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    labels = _pocket_texts(ax)
    boxes = [t.get_window_extent(renderer) for t in labels]
    title = ax.title.get_window_extent(renderer)
    for i, a in enumerate(boxes):
        assert not a.overlaps(title), f"{labels[i].get_text()} overlaps the panel title"
        for j in range(i + 1, len(boxes)):
            assert not a.overlaps(boxes[j]), f"{labels[i].get_text()} overlaps {labels[j].get_text()}"
    legend = ax.get_legend()
    if legend is not None:
        lb = legend.get_window_extent(renderer)
        assert not any(b.overlaps(lb) for b in boxes), "a pocket label overlaps the legend"
    # every curve stays under the labels
    if boxes:
        lowest = min(b.y0 for b in boxes)
        for line in ax.lines:
            y = np.asarray(line.get_ydata(), dtype=float)
            pts = ax.transData.transform(np.column_stack([line.get_xdata(), np.nan_to_num(y)]))
            assert pts[:, 1].max() <= lowest + 1.0, f"curve {line.get_label()} runs into the pocket labels"
    return labels


def test_figure_pocket_labels_do_not_overlap(ubq, long_chain):
    result = make_figure(long_chain, LONG, renderer="none", dpi=DPI)
    labels = _check_label_layout(result)
    assert len(labels) >= len(result.pockets) >= 8  # crowded: 8 pockets on 357 residues
    # with a reference, the legend is an obstacle too
    ref = dv.predict(UBQ, model="anm", scale="relative")
    result = make_figure(ubq, UBQ, reference=ref, renderer="none", dpi=DPI)
    assert _check_label_layout(result)


def test_figure_pocket_bands_one_per_stretch(long_chain):
    result = make_figure(long_chain, LONG, renderer="none", dpi=DPI)
    ax = _axes(result, "c  flexibility")
    spans = [p for p in ax.patches if type(p).__name__ in ("Rectangle", "Polygon")]  # axvspan
    lefts = sorted(int(round(float(np.min(p.get_xy()[..., 0] if type(p).__name__ == "Polygon" else p.get_x())) + 0.5))
                   for p in spans)
    # the pocket at residue indices 28, 29, 31, 33 is one band from 28 to 33, not three
    assert any({28, 29, 31, 33} <= set(p.residues.tolist()) for p in result.pockets)
    assert lefts.count(28) == 1 and not {29, 31, 33} & set(lefts)
    # one band per stretch of each pocket, and one label per band
    assert len(spans) == len(_pocket_texts(ax)) < sum(len(p.residues) for p in result.pockets) // 2


def test_figure_ticks_on_round_residue_numbers(long_chain):
    result = make_figure(long_chain, LONG, renderer="none", dpi=DPI)
    result.figure.canvas.draw()
    for prefix, axis in (("c  flexibility", "x"), ("b  residue", "x"), ("b  residue", "y")):
        ax = _axes(result, prefix)
        labels = [t.get_text() for t in getattr(ax, f"get_{axis}ticklabels")() if t.get_text()]
        assert len(labels) >= 3
        assert _round_step(int(v) for v in labels) >= 10, (prefix, axis, labels)


def test_figure_heatmap_orientation_matches_page(ubq, tmp_path):
    """Residue 1 at the top left in the figure's panel b, as on the page (HEATMAP_ORIGIN)."""
    from PIL import Image

    from dynaprot_viz.figure import save_figure

    result = make_figure(ubq, UBQ, renderer="none", dpi=200, heatmap_range="full")
    ax = _axes(result, "b  residue")
    (im,) = ax.get_images()
    assert im.origin == HEATMAP_ORIGIN == "upper"
    assert ax.yaxis_inverted()  # row 0 (residue 1) at the top
    (png,) = save_figure(result, png=tmp_path / "f.png")
    img = np.asarray(Image.open(png).convert("RGB"), dtype=float)
    left, top, right, bottom = result.panels["coupling"]
    red = np.array([103, 0, 31])  # RdBu_r at +1: the diagonal C_ii = 1

    def on_red(fx, fy):  # is there diagonal red within 3 px of (fraction across, fraction down)?
        x, y = int(left + fx * (right - left)), int(top + fy * (bottom - top))
        window = img[y - 3:y + 4, x - 3:x + 4].reshape(-1, 3)
        return np.abs(window - red).sum(axis=1).min() < 80

    ts = np.linspace(0.1, 0.9, 9)
    assert all(on_red(t, t) for t in ts), "the diagonal does not run from the top left to the bottom right"
    assert sum(on_red(t, 1 - t) for t in ts if abs(t - 0.5) > 0.05) <= 1


def test_figure_correlation_range_option_is_labelled(ake, tmp_path, capsys):
    def bar(result):
        ax = _axes(result, "b  ")
        cbar = ax.get_images()[0].colorbar
        return cbar.norm.vmin, cbar.norm.vmax, cbar.ax.get_ylabel()

    q = np.percentile(np.abs(ake.correlation[~np.eye(ake.n_residues, dtype=bool)]), 98)
    lo, hi, label = bar(make_figure(ake, AKE, renderer="none", dpi=DPI))  # auto -> robust for ANM
    assert (lo, hi) == pytest.approx((-q, q)) and "98th pct" in label and f"±{q:.2f}" in label
    lo, hi, label = bar(make_figure(ake, AKE, renderer="none", dpi=DPI, heatmap_range="full"))
    assert (lo, hi) == (-1.0, 1.0) and "98th" not in label
    result = make_figure(ake, AKE, renderer="none", dpi=DPI, heatmap="slow", slow_modes=5)
    lo, hi, label = bar(result)
    assert "5 slowest modes" in label and _axes(result, "b  ").get_title(loc="left") == "b  slow-mode correlation"
    with pytest.raises(dv.InputError, match="heatmap_range must be one of"):
        make_figure(ake, AKE, renderer="none", heatmap_range="tight")
    # the CLI
    out = tmp_path / "f.png"
    assert main(["figure", str(AKE), "--chain", "A", "--model", "anm", "--renderer", "none", "--dpi", "60",
                 "--heatmap", "slow", "--heatmap-range", "robust", "--png", str(out)]) == 0
    assert out.stat().st_size > 0
    assert main(["figure", str(AKE), "--chain", "A", "--model", "anm", "--renderer", "none",
                 "--slow-modes", "0", "--heatmap", "slow", "--png", str(tmp_path / "g.png")]) == 2
    assert "slow_modes" in capsys.readouterr().err and not (tmp_path / "g.png").exists()


def test_projection_panel_frames_every_ellipsoid(ubq, long_chain):
    from matplotlib.patches import Ellipse

    for dyn, src in ((ubq, UBQ), (long_chain, LONG)):
        result = make_figure(dyn, src, renderer="projection", dpi=DPI)
        ax = _axes(result, "a  structure")
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
        assert len(ellipses) == dyn.n_residues
        for e in ellipses:
            v = e.get_patch_transform().transform(e.get_path().vertices)  # data coordinates
            assert v[:, 0].min() >= x0 and v[:, 0].max() <= x1 and v[:, 1].min() >= y0 and v[:, 1].max() <= y1


def test_pymol_frames_the_ellipsoids(ubq, tmp_path):
    """The ray-traced panel is framed with the ellipsoids' extent: nothing touches the image border
    (ubiquitin's C-terminal ellipsoid is ~10 Å long and was cut before)."""
    pytest.importorskip("pymol2")
    from dynaprot_viz.figure import render_structure
    from dynaprot_viz.geometry import mahalanobis_radius

    pts = ellipsoid_extent_points(ubq, 0.5)
    assert pts.shape == (6 * ubq.n_residues, 3)
    half = mahalanobis_radius(0.5) * np.sqrt(np.einsum("nkk->nk", ubq.marginals))
    np.testing.assert_allclose(pts.max(axis=0), (ubq.mean + half).max(axis=0))
    script = pymol_scene_script(tmp_path / "s.pdb", tmp_path / "s.png", width=200, height=150, vmin=0, vmax=1,
                                extent_path=tmp_path / "e.pdb")
    assert "zoom dpv_prot or dpv_extent" in script and "hide everything, dpv_extent" in script
    lo, hi = rmsf_color_range(ubq.rmsf)
    img = render_structure(ubq, UBQ, width=320, height=240, vmin=lo, vmax=hi, dpi=100)
    ink = img[..., 3] > 0.02
    assert ink.mean() > 0.05
    border = np.concatenate([ink[:2].ravel(), ink[-2:].ravel(), ink[:, :2].ravel(), ink[:, -2:].ravel()])
    assert not border.any(), "the structure or an ellipsoid touches the edge of the ray-traced image"


# ----------------------------------------------------------------------------- notebooks
def test_notebooks_do_not_capture_displays_in_output_widgets():
    """``with out: display(...)`` on an ipywidgets Output makes nbclient (nbconvert --execute,
    jupyter execute) send widget updates to the kernel during the cell; the reply to the cell
    can then be missed until the timeout (none by default: a hang; notebook 04 waited 60 s of a
    60 s timeout, jupyter/nbclient#312).  Use Output.append_display_data or plain widgets."""
    nbformat = pytest.importorskip("nbformat")
    for path in sorted((ROOT / "examples").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for k, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            src = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
            tree = ast.parse(src)
            outputs = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                       and isinstance(node.value, ast.Call) and ast.unparse(node.value.func).endswith("Output")
                       for t in node.targets if isinstance(t, ast.Name)}
            captured = [ast.unparse(item.context_expr) for node in ast.walk(tree) if isinstance(node, ast.With)
                        for item in node.items if ast.unparse(item.context_expr) in outputs]
            assert not captured, f"{path.name} cell {k}: `with {captured[0]}:` captures into an Output widget"
