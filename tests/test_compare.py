"""Differential dynamics (issue 16): dv.compare, its views, the CLI and the plugins, on real data.

- closed (1AKE) vs open (4AKE) adenylate kinase: the LID (about 122-159) and NMP-binding
  (about 30-59) domains carry the largest displacements; the overlap is printed;
- two predictors on one structure (ANM and ResAxial on ubiquitin);
- an ANM prediction against the MD label of the same chain (one campaign MD folder ingested
  into a temporary label store, ``ChainLabels.to_dynamics()``);
- bad input: two different proteins -> one line, exit 2, nothing written.
"""

import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dynaprot_viz as dv
from dynaprot_viz.cli import main
from dynaprot_viz.core import metrics
from dynaprot_viz.core.compare import (DynamicsComparison, MIN_CONFORMATION_RMSD, align_residues, compare,
                                       per_residue_divergences)

ROOT = Path(__file__).resolve().parents[1]
AKE_CLOSED = ROOT / "examples" / "data" / "1ake_A.pdb"
AKE_OPEN = ROOT / "examples" / "data" / "4ake_A.pdb"
UBQ = ROOT / "tests" / "data" / "1ubi.pdb"
MD_FOLDER = ROOT / "datasets" / "campaign" / "md" / "atlas_1ab1_A"
LID = range(122, 160)
NMP = range(30, 60)


@pytest.fixture(scope="module")
def adk():
    a = dv.predict(AKE_CLOSED, model="anm")
    b = dv.predict(AKE_OPEN, model="anm")
    return a, b, compare(a, b, name_a="1ake", name_b="4ake")


def test_adk_domain_motions_are_the_largest_displacements(adk):
    a, b, c = adk
    assert c.n_aligned == 214 and c.identity == 1.0 and c.coverage == 1.0
    assert c.two_conformations and c.rmsd > 5.0  # closed vs open: about 7 Å on all C-alpha
    numbers = np.array([r.number for r in c.aligned_a])
    top = numbers[np.argsort(-c.displacement_norm)[:25]]
    in_domains = [n in LID or n in NMP for n in top]
    assert all(in_domains), f"largest displacements outside LID/NMP: {top[~np.array(in_domains)]}"
    assert any(n in LID for n in top) and any(n in NMP for n in top)
    # the CORE (outside LID and NMP) moves far less than the two lids (all-C-alpha fit: ~3 vs ~11 Å)
    core = np.array([n not in LID and n not in NMP for n in numbers])
    assert np.median(c.displacement_norm[core]) < 0.5 * np.median(c.displacement_norm[~core])
    print(f"\n1AKE -> 4AKE: RMSD {c.rmsd:.2f} Å; overlap with predicted motion ({c.n_modes} modes, random "
          f"{c.overlap_baseline:.2f}): closed {c.cumulative_overlap_a:.2f} (best mode "
          f"{np.nanmax(c.overlap_a):.2f}), open {c.cumulative_overlap_b:.2f} (best mode {np.nanmax(c.overlap_b):.2f})")
    # ANM of the open form points toward the closed one (Tama & Sanejouand 2001): well above random
    assert c.cumulative_overlap_b > 3 * c.overlap_baseline
    assert np.nanmax(c.overlap_b) > 0.5
    assert 0 <= c.cumulative_overlap_a <= 1 and np.all(c.overlap_a <= 1 + 1e-9)
    # the open form is more flexible in the LID: delta RMSF positive there
    lid = np.array([n in LID for n in numbers])
    assert c.delta_rmsf[lid].mean() > 0.3


def test_per_residue_terms_match_the_metrics_module(adk):
    a, b, c = adk
    rot = c.rotation
    sb = rot @ b.marginals[c.index_b] @ rot.T
    sa = a.marginals[c.index_a]
    assert np.mean(c.sym_kl) == pytest.approx(metrics.sym_kl_variance(sa, sb), rel=1e-9)
    assert math.sqrt(np.mean(c.wasserstein ** 2)) == pytest.approx(metrics.rmwd_variance(sa, sb), rel=1e-9)
    np.testing.assert_allclose(c.delta_rmsf, b.rmsf[c.index_b] - a.rmsf[c.index_a])
    # log volume ratio = 1/2 ln(det S_b / det S_a); rotation does not change it
    expect = 0.5 * (np.log(np.linalg.det(b.marginals[c.index_b])) - np.log(np.linalg.det(sa)))
    np.testing.assert_allclose(c.log_volume_ratio, expect, atol=1e-9)
    assert np.all((c.axis_angle >= 0) & (c.axis_angle <= 90))
    # the band-wise summary is the metrics module's
    np.testing.assert_allclose(c.band_r, metrics.bandwise_coupling_pearson(
        a.correlation[np.ix_(c.index_a, c.index_a)], b.correlation[np.ix_(c.index_b, c.index_b)]))
    # identical Gaussians: every divergence 0
    same = per_residue_divergences(sa, sa)
    assert np.allclose(same["sym_kl"], 0, atol=1e-10) and np.allclose(same["wasserstein"], 0, atol=1e-6)
    assert np.allclose(same["axis_angle"], 0, atol=1e-5) and np.allclose(same["log_volume_ratio"], 0)


def test_rotation_invariance_and_swap(adk):
    a, b, c = adk
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    moved = dv.Dynamics(b.mean @ q.T + [5.0, -3.0, 8.0], q @ b.marginals @ q.T, b.coupling, b.residues, b.model_name)
    c2 = compare(a, moved)
    for key in ("delta_rmsf", "log_volume_ratio", "axis_angle", "sym_kl", "wasserstein"):
        np.testing.assert_allclose(getattr(c2, key), getattr(c, key), atol=1e-6, err_msg=key)
    np.testing.assert_allclose(c2.displacement, c.displacement, atol=1e-6)
    assert c2.cumulative_overlap_b == pytest.approx(c.cumulative_overlap_b, abs=1e-6)
    swapped = compare(b, a)
    np.testing.assert_allclose(swapped.delta_rmsf, -c.delta_rmsf)
    assert swapped.cumulative_overlap_a == pytest.approx(c.cumulative_overlap_b, abs=1e-6)


def test_alignment_with_a_gap_and_different_numbering(adk):
    a, b, _ = adk
    keep = np.r_[0:40, 50:214]  # B lacks 10 residues and is renumbered from 1001
    res = tuple(r._replace(number=1001 + k) for k, r in enumerate(b.residues[i] for i in keep))
    cut = dv.Dynamics(b.mean[keep], b.marginals[keep], b.coupling[np.ix_(keep, keep)], res, "anm")
    c = compare(a, cut)
    assert c.n_aligned == 204
    np.testing.assert_array_equal(c.unaligned_a, np.arange(40, 50))
    assert len(c.unaligned_b) == 0
    assert [r.number for r in c.aligned_a][38:42] == [39, 40, 51, 52]


def test_save_load_round_trip(adk, tmp_path):
    c = adk[2]
    path = c.save(tmp_path / "c.compare.npz")
    back = DynamicsComparison.load(path)
    for key, value in c.to_arrays().items():
        np.testing.assert_array_equal(np.asarray(getattr(back, key, value)), value, err_msg=key)
    assert back.residues_a == c.residues_a and back.summary() == c.summary()
    with pytest.raises(dv.InputError, match="not a comparison file"):
        np.savez(tmp_path / "x.npz", a=np.zeros(2))
        DynamicsComparison.load(tmp_path / "x.npz")


def test_validation_rejects_inconsistent_fields(adk):
    import dataclasses

    c = adk[2]
    with pytest.raises(dv.InputError, match="delta_rmsf"):
        dataclasses.replace(c, delta_rmsf=c.delta_rmsf + 1)
    with pytest.raises(dv.InputError, match="displacement: expected shape"):
        dataclasses.replace(c, displacement=c.displacement[:-1])
    with pytest.raises(dv.InputError, match="finite"):
        dataclasses.replace(c, rmsf_a=np.where(np.arange(c.n_aligned) == 3, np.nan, c.rmsf_a),
                            delta_rmsf=c.rmsf_b - c.rmsf_a)
    with pytest.raises(TypeError, match="must be a Dynamics"):
        compare(adk[0], "4ake.pdb")


def test_two_proteins_are_refused():
    ubq = dv.predict(UBQ, model="anm")
    adk = dv.predict(AKE_CLOSED, model="anm")
    with pytest.raises(dv.InputError, match=r"two different proteins|of the shorter chain") as err:
        compare(adk, ubq)
    assert "\n" not in str(err.value)
    with pytest.raises(dv.InputError, match="identity"):
        align_residues(adk.residues, adk.residues[::-1])


def test_two_predictors_on_one_structure():
    pytest.importorskip("torch")
    a = dv.predict(UBQ, model="anm")
    b = dv.predict(UBQ, model="resaxial")
    c = compare(a, b)
    assert c.n_aligned == 76 and c.rmsd < 1e-6 and not c.two_conformations
    assert np.all(np.isnan(c.overlap_a)) and math.isnan(c.cumulative_overlap_b)
    assert np.all(np.isnan(c.axis_angle))  # ResAxial is isotropic: no principal axis
    np.testing.assert_allclose(c.delta_rmsf, b.rmsf - a.rmsf)
    assert "one conformation" in c.summary()
    assert np.all(np.isfinite(c.band_r[:10]))


def test_prediction_against_an_md_label(tmp_path):
    if not MD_FOLDER.is_dir():
        pytest.skip(f"{MD_FOLDER} (campaign MD outputs) not in this checkout")
    pytest.importorskip("h5py")
    from dynaprot_viz.training.simulate import ingest_outputs
    from dynaprot_viz.training.store import LabelStore

    store = tmp_path / "labels.h5"
    ingest_outputs([MD_FOLDER], store, overwrite=True, progress=False)  # what build_store.py does, one chain
    with LabelStore(store) as s:
        md = s[s.keys()[0]].to_dynamics()
    pred = dv.predict(MD_FOLDER / "atlas_1ab1_A.reference.pdb.gz", model="anm")
    c = compare(pred, md, name_a="ANM", name_b="MD")
    assert c.model_b == "md" and c.identity == 1.0 and c.n_aligned == md.n_residues
    assert c.rmsd < MIN_CONFORMATION_RMSD  # the label's mean is the reference the prediction was made on
    r = metrics.rmsf_pearson(c.rmsf_a, c.rmsf_b)
    print(f"\nANM vs MD (atlas_1ab1_A): RMSF r {r:.2f}, mean sym-KL {c.sym_kl.mean():.2f}, "
          f"band-wise r k=1 {c.band_r[0]:.2f}")
    assert r > 0.3  # ANM follows MD's flexibility profile on this chain
    assert abs(c.delta_rmsf.mean()) < 2.0  # both in Å


# ----------------------------------------------------------------------------- CLI
def test_cli_writes_npz_pdb_page_and_figure(tmp_path, capsys):
    import gemmi

    out = tmp_path / "out"
    rc = main(["compare", str(AKE_CLOSED), str(AKE_OPEN), "--model", "anm", "--out", str(out),
               "--html", str(tmp_path / "p.html"), "--png", str(tmp_path / "f.png")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "overlap with predicted motion" in text and "wrote" in text
    c = DynamicsComparison.load(out / "1ake_A_vs_4ake_A.compare.npz")
    st = gemmi.read_structure(str(out / "1ake_A_vs_4ake_A.delta_rmsf.pdb"))
    b = {res.seqid.num: res["CA"][0].b_iso for res in st[0][0]}
    for p in c.top_changes(10):
        assert b[c.aligned_a[p].number] == pytest.approx(c.delta_rmsf[p], abs=0.006)
    page = (tmp_path / "p.html").read_text()
    assert "linkViewer" in page and "dynaprot-data" in page and "4ake_A.pdb" in page
    import matplotlib.image as mpimg

    assert mpimg.imread(str(tmp_path / "f.png")).shape[1] > 800


def test_cli_bad_input_exit_2_nothing_written(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["compare", str(AKE_CLOSED), str(UBQ), "--model", "anm", "--out", str(out),
               "--html", str(tmp_path / "p.html"), "--png", str(tmp_path / "f.png")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dynaprot-viz compare: error:") and len(err.splitlines()) == 1
    assert "different proteins" in err or "shorter chain" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert main(["compare", str(AKE_CLOSED), str(AKE_OPEN)]) == 2  # no output named
    assert "at least one output" in capsys.readouterr().err


# ----------------------------------------------------------------------------- views
def test_compare_scene_colours_and_arrows(adk):
    from dynaprot_viz.compare_view import (arrow_segments, color_scale, compare_page_data, compare_scene,
                                           side_values, superposed_dynamics)

    a, b, c = adk
    lg = color_scale(c, "delta_rmsf")
    assert lg.vmin == -lg.vmax and lg.cmap == "RdBu_r"  # symmetric, diverging
    scene = compare_scene(c, a, "a", color_by="delta_rmsf")
    red_end = np.argmax(c.delta_rmsf)
    assert scene.residue_rgba[c.index_a[red_end], 0] > scene.residue_rgba[c.index_a[red_end], 2]  # red
    start, end, pos = arrow_segments(c, "a")
    assert len(start) == len(scene.arrow_start) > 10
    np.testing.assert_allclose(end - start, c.displacement[pos])
    bb = superposed_dynamics(c, b)
    np.testing.assert_allclose(bb.mean[c.index_b], c.mean_b, atol=1e-9)
    np.testing.assert_allclose(bb.rmsf, b.rmsf)
    assert np.isnan(side_values(dv.compare(a, dv.Dynamics(b.mean[5:], b.marginals[5:],
                                                          b.coupling[5:, 5:], b.residues[5:], "anm")),
                                "delta_rmsf", "a")[:5]).all()
    data = compare_page_data(c, a, b, AKE_CLOSED, AKE_OPEN)
    assert data["m"] == 214 and len(data["a"]["colors"]["delta_rmsf"]) == 214
    assert data["tables"]["displacement"][0]["displacement"] == pytest.approx(c.displacement_norm.max())


def test_compare_app_state_and_linked_selection(adk):
    pytest.importorskip("py3Dmol")
    pytest.importorskip("ipywidgets")
    from dynaprot_viz.compare_view import CompareApp

    a, b, c = adk
    app = CompareApp(c, a, b, AKE_CLOSED, AKE_OPEN)
    viewers = {w for _, _, w in app.calls}
    assert viewers == {(0, 0), (0, 1)}  # two linked panels of one py3Dmol grid
    assert sum(1 for n, _, _ in app.calls if n == "addArrow") == 2 * len(app.scene_a.arrow_start)
    assert "viewergrid_" in app.view3d._make_html()
    assert app.heatmap_image_click(0.5, 0.5)
    p = app.selected
    assert app.scene_a.selected == c.index_a[p] and app.scene_b.selected == c.index_b[p]
    labels = [args[0] for n, args, _ in app.calls if n == "addLabel"]
    assert c.aligned_a[p].label() in labels and c.aligned_b[p].label() in labels
    app.set_layout("superposed")
    assert {w for _, _, w in app.calls} == {None}
    assert sum(1 for n, _, _ in app.calls if n == "addModel") == 2
    app.set_color("sym_kl")
    assert app.scene_a.legend.cmap == "Reds" and app.scene_a.legend.vmin == 0
    app.set_rank("displacement")
    top = c.aligned_a[c.top_changes(1, "displacement")[0]].label()
    assert top in app.table_html
    with pytest.raises(dv.InputError, match="color_by must be one of"):
        app.set_color("nope")


def test_view_compare_two_models_on_one_file():
    pytest.importorskip("ipywidgets")
    pytest.importorskip("torch")
    app = dv.view_compare(UBQ, UBQ, model=("anm", "resaxial"), build_ui=False)
    assert app.comparison.model_a.startswith("anm") and app.comparison.model_b == "resaxial"
    assert not app.comparison.two_conformations and len(app.scene_a.arrow_start) == 0


def test_figure_has_four_panels(adk):
    from dynaprot_viz.compare_figure import make_compare_figure

    res = make_compare_figure(adk[2])
    assert set(res.panels) == {"structure", "rmsf", "correlation", "overlap"}
    boxes = list(res.panels.values())
    for i in range(4):
        for j in range(i + 1, 4):
            a, b = boxes[i], boxes[j]
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]  # no overlap


# ----------------------------------------------------------------------------- plugins
def test_pymol_dynaprot_compare(pymol_cmd):
    from dynaprot_viz.plugin import pymol as plugin

    cmd = pymol_cmd
    assert "dynaprot_compare" in cmd.keyword
    cmd.load(str(AKE_CLOSED), "closed")
    cmd.load(str(AKE_OPEN), "opened")
    c = plugin.dynaprot_compare("closed", "opened", "anm", quiet=1, _self=cmd)
    assert "closed_opened_displacement" in cmd.get_names("objects")
    colours = {}
    cmd.iterate("closed and name CA", "colours[int(resi)] = color", space={"colours": colours})
    p_up = int(np.argmax(c.delta_rmsf))
    rgb = cmd.get_color_tuple(colours[c.aligned_a[p_up].number])
    assert rgb[0] > rgb[2]  # the most increased residue is red
    with pytest.raises(Exception, match="dynaprot_compare: .*"):
        cmd.load(str(UBQ), "ubq")
        plugin.dynaprot_compare("closed", "ubq", "anm", quiet=1, _self=cmd)


def test_chimerax_compare_commands():
    from dynaprot_viz.plugin.chimerax.adapter import compare_commands

    cmds = compare_commands("#1", "#2", "/t/a.defattr", "/t/b.defattr", 1.5, np.zeros((1, 3)),
                            np.array([[10.0, 0.0, 0.0]]))
    assert 'open "/t/a.defattr" format defattr' in cmds
    assert any(c.startswith("color byattribute r:dynaprot_delta_rmsf #2 palette -1.5,blue:0,white:1.5,red")
               for c in cmds)
    assert sum(c.startswith("shape cylinder fromPoint 0.00,0.00,0.00 toPoint 7.50,0.00,0.00") for c in cmds) == 1
    assert sum(c.startswith("shape cone fromPoint 7.50,0.00,0.00 toPoint 10.00,0.00,0.00") for c in cmds) == 1


def test_comparison_page_runs_in_chromium(adk, tmp_path):
    """The offline page in headless Chromium (the single page's harness): loads with no network and
    no script error, then survives a residue selection, a table click, the colour menu and the
    superposed layout."""
    import shutil

    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        pytest.skip("headless browser test needs Debian's chromium: apt-get install -y chromium")
    pytest.importorskip("websocket", reason="browser test needs websocket-client")
    sys.path.insert(0, str(Path(__file__).parent))
    from test_html import _Chromium
    from dynaprot_viz.compare_view import write_compare_html

    a, b, c = adk
    page = write_compare_html(c, a, b, tmp_path / "c.html", AKE_CLOSED, AKE_OPEN)
    br = _Chromium()
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            br.call(f"{domain}.enable")
        br.call("Network.setBlockedURLs", urls=["http://*", "https://*", "ws://*", "wss://*"])
        br.call("Page.navigate", url=page.as_uri())
        assert br.wait_for("window.dynaprotReady === true"), f"page did not finish: {br.errors()}"
        for js in ("var s=document.getElementById('residue'); s.value='130'; s.dispatchEvent(new Event('change'));",
                   "document.querySelector('#table tr.row').click();",
                   "var k=document.getElementById('key'); k.value='sym_kl'; k.dispatchEvent(new Event('change'));",
                   "var r=document.querySelector('input[value=sup]'); r.checked=true; r.dispatchEvent(new Event('change'));"):
            br.call("Runtime.evaluate", expression=js)
        time.sleep(1.0)
        n_rows = br.call("Runtime.evaluate", expression="document.querySelectorAll('#table tr.row').length",
                         returnByValue=True)["result"]["value"]
        title = br.call("Runtime.evaluate", expression="document.getElementById('legendTitle').textContent",
                        returnByValue=True)["result"]["value"]
        hidden = br.call("Runtime.evaluate", expression="document.getElementById('sideS').hidden",
                         returnByValue=True)["result"]["value"]
        assert n_rows == 15 and "symmetric KL" in title and hidden is False
        assert not br.errors(), br.errors()
    finally:
        br.close()


sys.path.insert(0, str(Path(__file__).parent))
from test_chimerax_plugin import StubStructure, UserError, chimerax_stub, registered  # noqa: E402,F401


def test_chimerax_dynaprot_compare_through_stub_session(registered):
    session = registered
    _, command = session.registered["dynaprot compare"]
    a, b = StubStructure(AKE_CLOSED, "#1"), StubStructure(AKE_OPEN, "#2")
    c = command(session, [a, b], model="anm")
    commands = [cmd for cmd, _ in session.calls]
    files = {cmd: text for cmd, text in session.calls if text}
    assert any(cmd.startswith("color byattribute r:dynaprot_delta_rmsf #1 palette -") for cmd in commands)
    assert any(cmd.startswith("color byattribute r:dynaprot_delta_rmsf #2 palette -") for cmd in commands)
    text = next(t for cmd, t in files.items() if "_1.defattr" in cmd)
    values = {line.split("\t")[1]: float(line.split("\t")[2]) for line in text.splitlines() if line.startswith("\t")}
    p = int(np.argmax(c.delta_rmsf))
    assert values[f"#1/A:{c.aligned_a[p].number}"] == pytest.approx(c.delta_rmsf[p], rel=1e-5)
    n_arrows = sum(cmd.startswith("shape cone") for cmd in commands)
    assert n_arrows == sum(cmd.startswith("shape cylinder") for cmd in commands) > 10
    assert any("overlap with predicted motion" in m for _, m in session.logger.messages)
    with pytest.raises(UserError, match="exactly two structures"):
        command(session, [a], model="anm")
    with pytest.raises(UserError, match="dynaprot compare: .*(different proteins|shorter chain)"):
        command(session, [a, StubStructure(UBQ, "#3")], model="anm")
