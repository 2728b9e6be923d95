"""A new user's first hour (issue 13): blank chain ids, B-factors past the PDB column,
legacy PDB files, output paths that cannot be written, PyMOL results of two chains,
and `simulate` keeping finished MD when a later step fails.  Real files only:
the ATLAS chains of ../shared (blank chain ids; skipped when absent), tests/data and
PyMOL's own tutorial file 1hpv.pdb (shipped inside pymol-open-source)."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import dynaprot_viz as dv
from dynaprot_viz.cli import main
from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.gaussian import ANISOU_SCALE, Dynamics, anisou_from_marginals

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
ATLAS = ROOT.parent / "shared" / "data" / "atlas_chains"
BLANK = ATLAS / "1ab1_A.pdb"  # ATLAS starting structure: 46 residues, chain id blank
NMR = DATA / "2k39_3models.pdb"

needs_atlas = pytest.mark.skipif(not BLANK.exists(),
                                 reason="../shared/data/atlas_chains/1ab1_A.pdb not present (blank chain ids)")


def _pymol_tutorial_1hpv():
    try:
        import pymol
    except ImportError:
        return None
    hits = sorted(Path(pymol.__file__).parent.rglob("1hpv.pdb*"))
    return hits[0] if hits else None


def _stderr_lines(capsys) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


# ----------------------------------------------------------------------------- 1. blank chain ids
@pytest.fixture(scope="module")
def blank_anm():
    return dv.predict(BLANK, model="anm") if BLANK.exists() else None


@needs_atlas
def test_blank_chain_predict_api_and_cli(blank_anm, tmp_path, capsys):
    assert blank_anm.n_residues == 46
    assert {r.chain for r in blank_anm.residues} == {""}
    assert main(["predict", str(BLANK), "--model", "anm", "--cif", "--samples", "3", "--out", str(tmp_path)]) == 0
    import gemmi

    st = gemmi.read_structure(str(tmp_path / "1ab1_A.annotated.pdb"))
    cas = [a for ch in st[0] for r in ch for a in r if a.name == "CA"]
    assert len(cas) == 46 and all(a.aniso.nonzero() for a in cas)
    np.testing.assert_allclose([a.b_iso for a in cas], blank_anm.bfactors, atol=0.006)
    back = Dynamics.load(tmp_path / "1ab1_A.dynamics.npz")
    assert [r.chain for r in back.residues] == [""] * 46
    assert len(gemmi.read_structure(str(tmp_path / "1ab1_A.ensemble.pdb"))) == 3


@needs_atlas
def test_blank_chain_page_selects_the_chain_3dmol_reads(blank_anm):
    """3Dmol reads column 22 untrimmed: a blank chain is " ", and {chain: ""} matches nothing
    (the page was a grey wireframe).  The page and the widget must select " "."""
    from dynaprot_viz.html import page_data, standalone_html
    from dynaprot_viz.render.ngl import ngl_selection
    from dynaprot_viz.render.scene import build_scene, structure_text
    from dynaprot_viz.render.threedmol import py3dmol_calls

    data = page_data(blank_anm, BLANK, n_samples=0)
    ca_lines = [ln for ln in data["structure"].splitlines()
                if ln.startswith(("ATOM", "HETATM")) and ln[12:16].strip() == "CA"]
    assert len(ca_lines) == 46
    assert {ln[21] for ln in ca_lines} == {" "}  # what 3Dmol's parser takes as the chain
    assert set(data["chains"]) == {" "}
    assert '"chains":[" "' in standalone_html(blank_anm, BLANK, n_samples=0)
    calls = py3dmol_calls(build_scene(blank_anm, structure_text(blank_anm, BLANK)))
    styles = [args[0] for name, args in calls if name in ("setStyle", "addStyle") and "chain" in args[0]]
    assert styles and all(sel["chain"] == " " for sel in styles)
    assert ngl_selection(blank_anm.residues[4]) == "5"


@needs_atlas
def test_blank_chain_figure_structure_panel_is_coloured(blank_anm, tmp_path):
    pytest.importorskip("pymol2")
    from dynaprot_viz.figure import render_structure

    rmsf = blank_anm.rmsf
    img = render_structure(blank_anm, BLANK, width=360, height=300, vmin=float(rmsf.min()),
                           vmax=float(rmsf.max()), dpi=100)
    rgb, alpha = img[..., :3], img[..., 3]
    drawn = rgb[(alpha > 0.5) & (rgb.sum(axis=2) < 2.8)]
    assert len(drawn) > 0.02 * alpha.size, "nothing drawn"
    coloured = ((drawn.max(axis=1) - drawn.min(axis=1)) > 0.15).mean()
    assert coloured > 0.3, f"structure drawn without RMSF colours ({coloured:.1%})"
    assert main(["figure", str(BLANK), "--model", "anm", "--renderer", "pymol", "--png",
                 str(tmp_path / "f.png"), "--width-mm", "90"]) == 0
    assert (tmp_path / "f.png").stat().st_size > 10_000


@needs_atlas
def test_blank_chain_pymol_plugin(tmp_path, pymol_cmd):
    from dynaprot_viz.plugin import pymol as plugin

    cmd = pymol_cmd
    cmd.load(str(BLANK), "md")
    cmd.do("dynaprot md, anm, 0.5, 2, quiet=1")
    assert {"md_dynaprot", "md_ensemble"} <= set(cmd.get_names("objects"))
    b = {}
    cmd.iterate("md_dynaprot and name CA", "found[int(resi)] = b", space={"found": b})
    expected = dv.predict(BLANK, model="anm")
    np.testing.assert_allclose([b[r.number] for r in expected.residues], expected.rmsf, atol=0.006)
    pockets = [n for n in cmd.get_names("selections") if n.startswith("md_pocket")]
    assert pockets and all(cmd.count_atoms(n) > 0 for n in pockets)  # `chain ''` selections match
    corr = plugin.dynaprot_coupling("md_dynaprot and resi 10", quiet=1, _self=cmd)
    np.testing.assert_allclose(corr, expected.correlation[9])


# ----------------------------------------------------------------------------- 8. PyMOL: two chains
def test_pymol_plugin_keeps_results_of_both_chains(pymol_cmd):
    """1ake.cif (two chains): running on chain A then B keeps both sets of objects."""
    from dynaprot_viz.plugin import pymol as plugin

    src = DATA / "1ake.cif"
    cmd = pymol_cmd
    cmd.load(str(src), "adk")
    cmd.do("dynaprot adk and chain A, anm, 0.5, 2, quiet=1")
    cmd.do("dynaprot adk and chain B, anm, 0.5, 2, quiet=1")
    objects = set(cmd.get_names("objects"))
    assert {"adk_A_dynaprot", "adk_A_ensemble", "adk_B_dynaprot", "adk_B_ensemble"} <= objects
    assert "adk_dynaprot" not in objects
    for c in "AB":
        assert cmd.get_chains(f"adk_{c}_dynaprot") == [c]
        assert cmd.count_states(f"adk_{c}_ensemble") == 2
        expected = dv.predict(src, model="anm", chain=c)
        found = {}
        cmd.iterate(f"adk_{c}_dynaprot and name CA", "found[int(resi)] = b", space={"found": found})
        np.testing.assert_allclose([found[r.number] for r in expected.residues], expected.rmsf, atol=0.006)
    sels = set(cmd.get_names("selections"))
    assert any(s.startswith("adk_A_pocket") for s in sels) and any(s.startswith("adk_B_pocket") for s in sels)
    # coupling on the original object finds the result of the chain clicked
    corr = plugin.dynaprot_coupling("adk and chain B and resi 50", quiet=1, _self=cmd)
    expected_b = dv.predict(src, model="anm", chain="B")
    i = [r.number for r in expected_b.residues].index(50)
    np.testing.assert_allclose(corr, expected_b.correlation[i])
    # a single-chain object keeps the short names
    cmd.load(str(DATA / "1ubi.pdb"), "ubq")
    cmd.do("dynaprot ubq, anm, 0.5, 0, quiet=1")
    assert "ubq_dynaprot" in cmd.get_names("objects")


# ----------------------------------------------------------------------------- 2. B-factor overflow
@pytest.mark.parametrize("model", ["anm", "dynaprot"])
@pytest.mark.parametrize("cif", [False, True])
def test_bfactors_past_the_pdb_column_are_capped_not_refused(tmp_path, capsys, model, cif):
    import gemmi

    args = ["predict", str(NMR), "--model", model, "--out", str(tmp_path)] + (["--cif"] if cif else [])
    assert main(args) == 0
    err = _stderr_lines(capsys)
    dyn = Dynamics.load(tmp_path / "2k39_3models.dynamics.npz")
    true_b = dyn.bfactors
    pdb = gemmi.read_structure(str(tmp_path / "2k39_3models.annotated.pdb"))
    by_res = {r.seqid.num: r for ch in pdb[0] for r in ch}
    written = np.array([by_res[r.number]["CA"][0].b_iso for r in dyn.residues])
    np.testing.assert_allclose(written, np.minimum(true_b, 999.99), atol=0.006)
    capped = [ln for ln in err if "capped at 999.99" in ln]
    if true_b.max() > 999.99:
        assert len(capped) == 1, err
        assert f"{int((true_b > 999.99).sum())} residue(s)" in capped[0]
        assert ".dynamics.npz" in capped[0] and "mmCIF" in capped[0]
        first = dyn.residues[int(np.flatnonzero(true_b > 999.99)[0])]
        assert f"A:{first.number} {first.name}" in capped[0]
    else:
        assert not capped
    if model == "anm":
        assert true_b.max() > 999.99  # this file is the one that was refused (2683 Å² with ANM)
    if cif:
        st = gemmi.read_structure(str(tmp_path / "2k39_3models.annotated.cif"))
        by_res = {r.seqid.num: r for ch in st[0] for r in ch}
        cif_b = np.array([by_res[r.number]["CA"][0].b_iso for r in dyn.residues])
        np.testing.assert_allclose(cif_b, true_b, rtol=1e-4)
        cif_u = np.array([by_res[r.number]["CA"][0].aniso.elements_pdb() for r in dyn.residues])
        np.testing.assert_allclose(cif_u, anisou_from_marginals(dyn.marginals), rtol=1e-4, atol=1e-4)
    else:
        assert not (tmp_path / "2k39_3models.annotated.cif").exists()


def test_anisou_past_the_pdb_columns_is_scaled_to_fit(tmp_path):
    """U x 10^4 must fit 7 characters: a tensor that does not is shrunk as a whole (shape and
    orientation kept), with one warning; mmCIF keeps the true values."""
    import gemmi

    from dynaprot_viz.export import write_annotated

    base = dv.predict(NMR, model="anm")
    # the same prediction with fluctuations 40x larger (U up to ~2000 Å²): past the column
    big = Dynamics(base.mean, base.marginals * 40.0, base.coupling * 40.0, base.residues, base.model_name)
    u_true = anisou_from_marginals(big.marginals) * ANISOU_SCALE
    over = (u_true.max(axis=1) > 9_999_999) | (u_true.min(axis=1) < -999_999)
    assert over.any()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_annotated(big, NMR, tmp_path / "big.pdb")
        write_annotated(big, NMR, tmp_path / "big.cif")
    msgs = [str(w.message) for w in caught if "PDB output" in str(w.message)]
    assert len(msgs) == 1 and f"U tensors of {int(over.sum())} residue(s) scaled down" in msgs[0]
    for line in (tmp_path / "big.pdb").read_text().splitlines():
        if line.startswith("ANISOU"):
            assert len(line.rstrip()) <= 80
            [int(line[28 + 7 * k: 35 + 7 * k]) for k in range(6)]  # six integer fields
    st = gemmi.read_structure(str(tmp_path / "big.pdb"))
    u_pdb = np.array([[a for a in r if a.name == "CA"][0].aniso.elements_pdb() for ch in st[0] for r in ch])
    u_pdb = u_pdb * ANISOU_SCALE
    assert u_pdb.max() <= 9_999_999 and u_pdb.min() >= -999_999
    # fitted tensors are the true ones times one factor < 1 (same shape); the others unchanged
    for i in range(len(u_true)):
        ratio = u_pdb[i] / u_true[i]
        big_ones = np.abs(u_true[i]) > 1e4
        if over[i]:
            assert np.ptp(ratio[big_ones]) < 1e-3 and ratio[big_ones].mean() < 1.0
        else:
            np.testing.assert_allclose(u_pdb[i], u_true[i], atol=1.0)
    cif = gemmi.read_structure(str(tmp_path / "big.cif"))
    u_cif = np.array([[a for a in r if a.name == "CA"][0].aniso.elements_pdb() for ch in cif[0] for r in ch])
    np.testing.assert_allclose(u_cif * ANISOU_SCALE, u_true, rtol=1e-4)


# ----------------------------------------------------------------------------- 3. legacy PDB files
def test_legacy_pdb_with_text_past_column_72_is_read(tmp_path, capsys):
    src = _pymol_tutorial_1hpv()
    if src is None:
        pytest.skip("PyMOL's tutorial file 1hpv.pdb needs pymol-open-source installed")
    import gemmi

    with pytest.raises(Exception, match="charge"):
        gemmi.read_structure(str(src))  # what refused it: columns 73-80 hold '1HPV 186'
    assert main(["predict", str(src), "--model", "anm", "--out", str(tmp_path)]) == 0
    err = _stderr_lines(capsys)
    assert len(err) == 1 and "legacy PDB" in err[0] and "columns 73-80 ignored" in err[0], err
    dyn = Dynamics.load(tmp_path / "1hpv.dynamics.npz")
    assert dyn.n_residues == 99 and {r.chain for r in dyn.residues} == {"A"}
    # an ordinary file gives no such warning
    assert main(["predict", str(DATA / "1ubi.pdb"), "--model", "anm", "--out", str(tmp_path / "u")]) == 0
    assert not any("legacy" in ln for ln in _stderr_lines(capsys))


def test_truly_broken_pdb_is_still_refused(tmp_path):
    """The columns-1-72 fallback is no licence for broken files: gemmi's refusal stands."""
    atoms = [ln for ln in (DATA / "1ubi.pdb").read_text().splitlines() if ln.startswith("ATOM")][:8]
    bad = tmp_path / "bad.pdb"
    bad.write_text("\n".join(["MODEL        1", *atoms, "ENDMDL", "MODEL        1", *atoms, "ENDMDL"]) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no fallback warning on the way
        with pytest.raises(InputError, match="cannot be read as PDB or mmCIF .*duplicate MODEL"):
            dv.predict(bad, model="anm")


# ----------------------------------------------------------------------------- 4. output paths
def _no_prediction(monkeypatch):
    import dynaprot_viz.api

    def refuse(*a, **k):
        raise AssertionError("predicted before checking the output path")

    monkeypatch.setattr(dynaprot_viz.api, "predict", refuse)


def _readonly_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return ro


BAD_PLACES = ["under_file", "proc", "readonly"]


def _bad_folder(tmp_path, kind):
    if kind == "under_file":
        (tmp_path / "afile").write_text("x")
        return tmp_path / "afile" / "sub" / "out"
    if kind == "proc":
        if not Path("/proc/self").exists():
            pytest.skip("needs Linux /proc (a folder nobody can write)")
        return Path("/proc/dynaprot-test/out")
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the /proc case covers it")
    return _readonly_dir(tmp_path) / "out"


@pytest.mark.parametrize("kind", BAD_PLACES)
def test_predict_refuses_an_out_folder_it_cannot_create_before_predicting(tmp_path, capsys, monkeypatch, kind):
    out = _bad_folder(tmp_path, kind)
    _no_prediction(monkeypatch)
    before = sorted(tmp_path.rglob("*"))
    assert main(["predict", str(DATA / "1ubi.pdb"), "--model", "anm", "--out", str(out)]) == 2
    err = _stderr_lines(capsys)
    assert len(err) == 1 and err[0].startswith("dynaprot-viz predict: error: --out ") and "Errno" not in err[0]
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("kind", BAD_PLACES)
@pytest.mark.parametrize("command", ["view", "figure-png", "figure-pdf"])
def test_view_and_figure_refuse_unwritable_outputs_before_predicting(tmp_path, capsys, monkeypatch, kind,
                                                                     command):
    folder = _bad_folder(tmp_path, kind)
    _no_prediction(monkeypatch)
    before = sorted(tmp_path.rglob("*"))
    if command == "view":
        option, args = "--html", ["view", str(DATA / "1ubi.pdb"), "--model", "anm", "--html", str(folder / "p.html")]
    else:
        ext = command.split("-")[1]
        option = f"--{ext}"
        args = ["figure", str(DATA / "1ubi.pdb"), "--model", "anm", option, str(folder / f"f.{ext}")]
    assert main(args) == 2
    err = _stderr_lines(capsys)
    assert len(err) == 1 and f"error: {option} " in err[0] and "Errno" not in err[0], err
    assert sorted(tmp_path.rglob("*")) == before


def test_output_file_in_a_missing_folder_and_a_folder_as_file(tmp_path, capsys, monkeypatch):
    _no_prediction(monkeypatch)
    assert main(["view", str(DATA / "1ubi.pdb"), "--model", "anm", "--html", str(tmp_path / "no" / "p.html")]) == 2
    assert "does not exist" in _stderr_lines(capsys)[0]
    (tmp_path / "d.png").mkdir()
    assert main(["figure", str(DATA / "1ubi.pdb"), "--model", "anm", "--png", str(tmp_path / "d.png")]) == 2
    assert "is a folder" in _stderr_lines(capsys)[0]


# ----------------------------------------------------------------------------- 1. simulate
def _sim_args(structure, out, *extra, minimize="20"):
    return ["simulate", str(structure), "--out", str(out), "--ns", "0.002", "--save-ps", "0.5",
            "--equilibration-ps", "0.2", "--minimize-iterations", minimize, "--platform", "CPU",
            "--threads", "1", "--seed", "7", "--no-progress", *extra]


@needs_atlas
def test_simulate_blank_chain_stores_labels_that_match_predict(tmp_path, capsys):
    """The 1bgf_A report: MD ran, then the store step failed with "no chain ' '"."""
    pytest.importorskip("openmm")
    pytest.importorskip("pdbfixer")
    pytest.importorskip("h5py")
    from dynaprot_viz.training.store import LabelStore

    store = tmp_path / "labels.h5"
    # ATLAS structures carry CHARMM hydrogens: minimise to convergence (0) before 4 fs steps
    assert main(_sim_args(BLANK, tmp_path / "out", "--store", str(store), minimize="0")) == 0, \
        capsys.readouterr().err
    with LabelStore(store) as s:
        labels = s.get("1ab1_A").to_dynamics()
    predicted = dv.predict(BLANK, model="anm")
    assert labels.residues == predicted.residues  # same ids (chain ""), so they can be compared
    assert np.all(labels.rmsf > 0)


def test_simulate_keeps_finished_md_when_storing_fails(tmp_path, capsys, monkeypatch, data_dir):
    pytest.importorskip("openmm")
    pytest.importorskip("pdbfixer")
    import dynaprot_viz.training.simulate as sim

    def disk_full(folders, store, **kwargs):
        raise OSError(28, "No space left on device", str(store))

    monkeypatch.setattr(sim, "ingest_outputs", disk_full)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(_sim_args(data_dir / "1ejg.pdb", out, "--store", str(tmp_path / "labels.h5")))
    assert code == 2
    traj = out / "1ejg" / "1ejg.ca.npz"
    with np.load(traj) as z:
        assert z["ca"].shape == (4, 46, 3)  # the MD is on disk
    err = [ln for ln in _stderr_lines(capsys) if ln.startswith("dynaprot-viz simulate: error:")]
    assert len(err) == 1 and str(traj) in err[0] and "No space left on device" in err[0], err
    assert "rerun the same command" in err[0]
    # the rerun does not repeat the MD and stores the labels
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = sim.simulate([data_dir / "1ejg.pdb"], out, sim.SimulationConfig(
            ns=0.002, save_interval_ps=0.5, equilibration_ps=0.2, minimize_iterations=20, platform="CPU",
            threads=1, seed=7), store=tmp_path / "labels.h5", progress=False)
    assert r.ok and r.chains["1ejg"].status == "skipped" and r.ingest.ok


def test_simulate_refuses_a_store_it_cannot_write_before_any_md(tmp_path, capsys, data_dir):
    (tmp_path / "afile").write_text("x")
    assert main(_sim_args(data_dir / "1ejg.pdb", tmp_path / "out", "--store",
                          str(tmp_path / "afile" / "labels.h5"))) == 2
    err = _stderr_lines(capsys)
    assert len(err) == 1 and "--store" in err[0]
    assert not (tmp_path / "out").exists()
