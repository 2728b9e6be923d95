"""Whole complexes (issue 14): several chains as one network, annotated files that keep
everything, checked on real multi-chain structures from the installed test data
(PyMOL's HIV-1 protease dimer 1HPV, MDAnalysis' 1HVR, ProDy's 3MHT protein + DNA +
cofactor, ProDy's 7CTH spike + antibody) and against ProDy's ANM of the same complex."""

import warnings
from pathlib import Path

import gemmi
import numpy as np
import pytest

import dynaprot_viz as dv
from dynaprot_viz.cli import main
from dynaprot_viz.core.anm import anm_covariance
from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.gaussian import Dynamics, coupling_from_joint, marginals_from_joint
from dynaprot_viz.core.structure import load_chain, load_chains, load_structure, parse_chain_selection
from dynaprot_viz.export import write_annotated, write_ensemble

_SITE = Path(gemmi.__file__).resolve().parent  # site-packages (gemmi is a package folder or a module)
_SITE = _SITE if (_SITE / "prody").exists() else _SITE.parent
HPV = _SITE / "pymol" / "pymol_path" / "data" / "tut" / "1hpv.pdb"  # HIV-1 protease dimer + inhibitor + waters
HVR = _SITE / "MDAnalysisTests" / "data" / "1hvr.pdb"  # HIV-1 protease dimer
MHT = _SITE / "prody" / "tests" / "datafiles" / "pdb3mht.pdb"  # HhaI methyltransferase + DNA + SAH + waters
CTH = _SITE / "prody" / "tests" / "datafiles" / "mmcif_7cth.cif"  # SARS-CoV-2 spike trimer + 2 Fabs, 10 chains


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path.name} not installed (it comes with the test dependencies PyMOL / ProDy / "
                    "MDAnalysisTests)")
    return path


@pytest.fixture(autouse=True)
def _quiet_legacy():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*read as a legacy PDB file")
        yield


def _prody():
    prody = pytest.importorskip("prody", reason="ProDy is the reference ANM (test dependency)")
    prody.confProDy(verbosity="none")
    return prody


def _prody_complex(path: Path, chains: str):
    """C-alpha coordinates of ``chains`` as ProDy parses them, and ProDy's ANM covariance."""
    prody = _prody()
    atoms = prody.parseMMCIF(str(path)) if path.suffix == ".cif" else prody.parsePDB(str(path))
    # ProDy's mmCIF chain is label_asym_id; the author chain (what users type) is its segment
    key = "segment" if path.suffix == ".cif" else "chain"
    sel = atoms.select(f"protein and name CA and {key} {' '.join(chains)}")
    ca = sel.getCoords().astype(np.float64)
    anm = prody.ANM("complex")
    anm.buildHessian(ca, cutoff=15.0, gamma=1.0)
    anm.calcModes(n_modes=None, zeros=False)
    ids = sel.getSegnames() if key == "segment" else sel.getChids()
    return ca, [str(c) for c in ids], prody.calcCovariance(anm)


def _interface(chain, cutoff=8.0):
    """Index pairs (i, j), i and j in different chains, C-alpha within ``cutoff`` Å."""
    from scipy.spatial import cKDTree

    chains = np.array([r.chain for r in chain.residues])
    pairs = cKDTree(chain.ca).query_pairs(cutoff, output_type="ndarray")
    return pairs[chains[pairs[:, 0]] != chains[pairs[:, 1]]]


# --------------------------------------------------------------------------- selection and loading


def test_chain_selection_forms():
    assert parse_chain_selection(None) is None
    assert parse_chain_selection("A") == ["A"]
    assert parse_chain_selection("A, B") == ["A", "B"]
    assert parse_chain_selection(["B", "A"]) == ["B", "A"]
    assert parse_chain_selection("all") == ["all"]
    for bad, match in [("A,A", "twice"), ("A,", "empty"), ("all,A", "cannot be combined"), (3, "chain must be")]:
        with pytest.raises(InputError, match=match):
            parse_chain_selection(bad)


def test_load_chains_spans_both_chains_of_the_dimer():
    path = _need(HVR)
    a, b = load_chain(path, "A"), load_chain(path, "B")
    ab = load_chains(path, "A,B")
    assert ab.chain_ids == ("A", "B") and ab.is_complex and len(ab) == len(a) + len(b)
    np.testing.assert_array_equal(ab.ca, np.concatenate([a.ca, b.ca]))
    assert ab.sequence == a.sequence + b.sequence
    assert [c for c, _ in ab.chain_slices()] == ["A", "B"]
    assert load_chains(path, ["B", "A"]).chain_ids == ("B", "A")
    assert load_chains(path, "all").chain_ids == ("A", "B")
    # the junction is not a bond: consecutive C-alpha across it are far apart
    assert np.linalg.norm(ab.ca[len(a)] - ab.ca[len(a) - 1]) > 4.2
    with pytest.raises(InputError, match="no chain 'Z'; chains with protein: A, B"):
        load_chains(path, "A,Z")


def test_nucleic_acid_chain_is_refused_in_a_selection():
    path = _need(MHT)
    with pytest.raises(InputError, match="no protein residues in chain 'C'"):
        load_chains(path, "A,C")
    assert load_chains(path, "all").chain_ids == ("A",)  # the DNA chains C, D are not protein


# --------------------------------------------------------------------------- ANM: one network


@pytest.mark.parametrize("path, chains", [(HPV, "AB"), (HVR, "AB"), (CTH, "CHL")])
def test_complex_anm_agrees_with_prody(path, chains):
    """One Hessian on every selected C-alpha: the covariance equals ProDy's ANM of the same
    complex (parsed by ProDy, independently of our loader) to 1e-9 of its largest entry."""
    path = _need(path)
    ca_ref, chids, cov_ref = _prody_complex(path, chains)
    protein = load_chains(path, ",".join(chains))
    assert [r.chain for r in protein.residues] == chids
    np.testing.assert_allclose(protein.ca, ca_ref, atol=1e-3)
    cov = anm_covariance(protein.ca)
    np.testing.assert_allclose(cov, cov_ref, atol=1e-9 * np.abs(cov_ref).max())
    dyn = dv.predict(path, model="anm", chain=",".join(chains), scale="relative")
    assert dyn.n_residues == len(ca_ref)
    assert [r.chain for r in dyn.residues] == chids
    np.testing.assert_allclose(dyn.coupling, coupling_from_joint(cov_ref), atol=1e-9 * np.abs(cov_ref).max())
    np.testing.assert_allclose(dyn.marginals, marginals_from_joint(cov_ref), atol=1e-9 * np.abs(cov_ref).max())


def test_interface_coupling_is_in_the_heatmap_data():
    """The HIV protease dimer's interface residues are correlated across chains, in the
    Dynamics and in the page's heatmap bytes; the stacked per-chain view has 0 there."""
    from dynaprot_viz.html import page_data

    path = _need(HPV)
    dyn = dv.predict(path, chain="A,B")  # the default model, ANM in Å
    protein = load_chains(path, "A,B")
    pairs = _interface(protein)
    assert len(pairs) > 20
    corr = dyn.correlation
    inter = corr[pairs[:, 0], pairs[:, 1]]
    # interface contacts are as coupled as non-local contacts inside a chain (ANM's DCCM over all
    # modes is ~0.08 for C-alpha within 8 Å), and positively
    from scipy.spatial import cKDTree

    chains = np.array([r.chain for r in protein.residues])
    close = cKDTree(protein.ca).query_pairs(8.0, output_type="ndarray")
    intra = close[(chains[close[:, 0]] == chains[close[:, 1]]) & (np.abs(close[:, 0] - close[:, 1]) > 3)]
    assert np.all(inter > 0)
    assert np.median(inter) > 0.7 * np.median(corr[intra[:, 0], intra[:, 1]])
    far = corr[chains[:, None] != chains[None, :]]
    assert np.median(inter) > 2 * np.median(np.abs(far))
    data = page_data(dyn, path)
    got = np.frombuffer(__import__("base64").b64decode(data["correlation"]), dtype=np.uint8)
    n = dyn.n_residues
    assert got.size == n * n
    # the page's 8-bit DCCM holds the interface entries (bytes 0..255 for -1..1)
    shown = got.reshape(n, n)[pairs[:, 0], pairs[:, 1]] / 255.0 * 2.0 - 1.0
    np.testing.assert_allclose(shown, inter, atol=1.01 / 255.0 * 2.0)
    assert np.all(shown > 0)
    # a monomer of the dimer is not the dimer's half: chain A moves differently alone
    alone = dv.predict(path, chain="A")
    na = len(alone.residues)
    assert np.max(np.abs(alone.rmsf - dyn.rmsf[:na]) / alone.rmsf) > 0.1
    iface_a = np.unique(pairs[:, 0][pairs[:, 0] < na])
    assert np.mean(dyn.rmsf[iface_a] / alone.rmsf[iface_a] * (alone.rmsf.mean() / dyn.rmsf[:na].mean())) < 1.0


def test_default_amplitude_scale_of_a_complex_is_sane():
    """The amplitude model (fitted on single chains) applied to the whole dimer gives Å of the
    same order as each chain alone (mean RMSF within 30 %), not a size artefact."""
    path = _need(HVR)
    both = dv.predict(path, chain="all")
    assert both.model_name == "anm" and not both.relative_units
    for c in ("A", "B"):
        alone = dv.predict(path, chain=c).rmsf.mean()
        assert 0.7 < both.rmsf[[r.chain == c for r in both.residues]].mean() / alone < 1.3


def test_c_alpha_only_dimer_equals_all_atom(tmp_path):
    """ANM reads C-alpha only: a C-alpha-only copy of the dimer gives the same complex."""
    path = _need(HVR)
    st = gemmi.read_structure(str(path))
    st.remove_ligands_and_waters()
    for ch in st[0]:
        for res in ch:
            for k in reversed(range(len(res))):
                if res[k].name != "CA":
                    del res[k]
    ca_only = tmp_path / "1hvr_ca.pdb"
    ca_only.write_text(st.make_pdb_string())
    full = dv.predict(path, chain="A,B")
    ca = dv.predict(ca_only, chain="A,B")
    assert ca.residues == full.residues
    np.testing.assert_allclose(ca.coupling, full.coupling, rtol=1e-6, atol=1e-9)
    pairs = _interface(load_chains(ca_only, "A,B"))
    assert np.all(ca.coupling[pairs[:, 0], pairs[:, 1]] != 0)


def test_anm_gbm_complex_keeps_interchain_coupling():
    path = _need(HVR)
    dyn = dv.predict(path, model="anm-gbm", chain="A,B")
    alone = dv.predict(path, model="anm-gbm", chain="A")
    na = alone.n_residues
    assert dyn.model_name == "anm-gbm" and np.all(np.isfinite(dyn.rmsf))
    # ANM-GBM keeps ANM's correlations: those of the complex network, inter-chain block included
    anm = dv.predict(path, model="anm", chain="A,B", scale="relative")
    np.testing.assert_allclose(dyn.correlation, anm.correlation, atol=1e-8)
    assert np.abs(dyn.correlation[:na, na:]).max() > 0.1
    # same order of magnitude per chain as the chain alone (features per chain, as trained)
    assert 0.6 < dyn.rmsf[:na].mean() / alone.rmsf.mean() < 1.4


def test_per_chain_model_warns_and_has_no_interchain_coupling():
    """A model that runs one chain at a time (ResAxial here) stacks the chains and says that the
    inter-chain coupling is absent."""
    pytest.importorskip("torch")
    path = _need(HVR)
    with pytest.warns(UserWarning, match="inter-chain coupling is absent"):
        dyn = dv.predict(path, model="resaxial", chain="A,B", device="cpu")
    a = dv.predict(path, model="resaxial", chain="A", device="cpu")
    na = a.n_residues
    assert dyn.n_residues == 198 and [r.chain for r in dyn.residues][na - 1: na + 1] == ["A", "B"]
    np.testing.assert_allclose(dyn.coupling[:na, :na], a.coupling, rtol=1e-5, atol=1e-8)
    assert not np.any(dyn.coupling[:na, na:])
    assert dyn.sample(2, seed=0).shape == (2, 198, 3)
    # the output itself records it (model_name travels into the .npz and every legend)
    assert a.model_name == "resaxial" and dyn.model_name == "resaxial+per-chain"


# --------------------------------------------------------------------------- files keep everything


def _inventory(st):
    """Atoms per chain and HETATM residue names per chain of the first model."""
    atoms = {ch.name: sum(len(r) for r in ch) for ch in st[0]}
    het = {ch.name: sorted(r.name for r in ch if r.het_flag == "H") for ch in st[0]}
    return atoms, het


@pytest.mark.parametrize("path, chains", [(MHT, "A"), (HPV, "A,B")])
@pytest.mark.parametrize("suffix", [".pdb", ".cif"])
def test_annotated_file_keeps_every_chain_ligand_and_water(tmp_path, path, chains, suffix):
    """3MHT: protein A + DNA chains C, D + SAH + waters; 1HPV: the dimer + inhibitor + waters.
    Every atom stays; B and ANISOU are set on the predicted residues only."""
    path = _need(path)
    dyn = dv.predict(path, chain=chains)
    before = load_structure(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PDB output: B-factors")  # 3MHT's C-terminal Tyr
        out = write_annotated(dyn, path, tmp_path / f"x{suffix}")
    after = gemmi.read_structure(str(out))
    atoms_b, het_b = _inventory(before)
    atoms_a, het_a = _inventory(after)
    predicted = {(r.chain, r.number, r.icode) for r in dyn.residues}
    # altlocs of predicted residues are reduced to the conformer the prediction used
    n_alt = sum(1 for ch in before[0] for r in ch if (ch.name, r.seqid.num, r.seqid.icode.strip()) in predicted
                for a in r if a.altloc not in ("\0", "A"))
    assert het_a == het_b and het_b  # every ligand, ion and water
    assert sum(atoms_a.values()) == sum(atoms_b.values()) - n_alt
    assert {k for k in atoms_a} == {k for k in atoms_b}
    by_key = {}
    for ch in after[0]:
        for r in ch:
            by_key[(ch.name, r.seqid.num, r.seqid.icode.strip())] = r
    b_pred = np.array([by_key[(r.chain, r.number, r.icode)]["CA"][0].b_iso for r in dyn.residues])
    b_true = np.minimum(dyn.bfactors, 999.99) if suffix == ".pdb" else dyn.bfactors  # the PDB column's cap
    np.testing.assert_allclose(b_pred, b_true, rtol=1e-4, atol=0.006)
    u = np.array([by_key[(r.chain, r.number, r.icode)]["CA"][0].aniso.elements_pdb() for r in dyn.residues])
    assert np.all(u[:, :3] > 0)
    # elsewhere the input's B-factors as they were
    for ch in before[0]:
        for r in ch:
            key = (ch.name, r.seqid.num, r.seqid.icode.strip())
            if key not in predicted:
                assert [round(a.b_iso, 2) for a in r] == [round(a.b_iso, 2) for a in by_key[key]], key
    if suffix == ".pdb":
        text = out.read_text()
        assert sum(ln.startswith("ANISOU") for ln in text.splitlines()) == dyn.n_residues


def test_cli_complex_predict_and_bad_selection(tmp_path, capsys):
    path = _need(HVR)
    assert main(["predict", str(path), "--chain", "A,B", "--samples", "2", "--out", str(tmp_path)]) == 0
    dyn = Dynamics.load(tmp_path / "1hvr.dynamics.npz")
    assert dyn.n_residues == 198 and {r.chain for r in dyn.residues} == {"A", "B"}
    ens = gemmi.read_structure(str(tmp_path / "1hvr.ensemble.pdb"))
    assert len(ens) == 2 and [ch.name for ch in ens[0]] == ["A", "B"]
    annotated = gemmi.read_structure(str(tmp_path / "1hvr.annotated.pdb"))
    assert [ch.name for ch in annotated[0]] == ["A", "B"]
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main(["predict", str(path), "--chain", "A,Q", "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no chain 'Q'" in err[0]
    assert not bad.exists() or not list(bad.iterdir())


def test_complex_ensemble_contains_all_selected_chains(tmp_path):
    path = _need(CTH)
    dyn = dv.predict(path, chain=["H", "L"])
    out = write_ensemble(dyn, dyn.sample(3, seed=1), tmp_path / "fab.pdb")
    st = gemmi.read_structure(str(out))
    assert len(st) == 3
    for model in st:
        assert [ch.name for ch in model] == ["H", "L"]
        assert sum(len(ch) for ch in model) == dyn.n_residues


# --------------------------------------------------------------------------- views


def test_views_show_chain_boundaries(tmp_path):
    """The page's heatmap data and the figure's heatmap carry the chain boundaries of a complex;
    the widget's "all" is the one-network ANM of the complex."""
    import matplotlib

    matplotlib.use("Agg")
    from dynaprot_viz.figure import make_figure
    from dynaprot_viz.html import page_data

    path = _need(HVR)
    dyn = dv.predict(path, chain="A,B")
    data = page_data(dyn, path, n_samples=0)
    assert data["heatmap"]["chains"] == [[0, 99, "A"], [99, 198, "B"]]
    assert sorted(set(data["chains"])) == ["A", "B"]  # 3D: residues keep their chain
    single = page_data(dv.predict(path, chain="A"), path, n_samples=0)
    assert single["heatmap"]["chains"] == [[0, 99, "A"]]
    result = make_figure(dyn, path, renderer="projection")
    fig = result.figure if hasattr(result, "figure") else result
    lines = [ln for ax in fig.axes for ln in ax.lines if ln.get_gid() == "chain-boundary"]
    assert len(lines) == 2
    assert all(np.allclose(ln.get_xdata() if ln.get_xdata()[0] == ln.get_xdata()[-1] else ln.get_ydata(), 98.5)
               for ln in lines)
    labels = sorted(t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == "chain-label")
    assert labels == ["A", "A", "B", "B"]
    app = dv.view(path, model="anm", chain="all")
    np.testing.assert_allclose(app.dynamics.coupling, dyn.coupling, rtol=1e-10)


def test_pockets_of_a_complex_may_span_the_interface():
    """find_pockets works on the complex (chain ends per chain, grouping in space across chains)."""
    path = _need(HVR)
    dyn = dv.predict(path, chain="A,B")
    pockets = dv.find_pockets(dyn, path)
    assert pockets
    chains = np.array([r.chain for r in dyn.residues])
    for p in pockets:
        assert np.all(p.residues < dyn.n_residues)
    # HIV protease's active site and flaps sit at the dimer interface: a pocket spans both chains
    assert any(set(chains[p.residues]) == {"A", "B"} for p in pockets)
