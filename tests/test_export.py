"""Annotated PDB/mmCIF and ensemble files, read back with gemmi."""

import gemmi
import numpy as np
import pytest

from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.gaussian import Dynamics
from dynaprot_viz.core.structure import load_chain
from dynaprot_viz.core.anm import predict_anm
from dynaprot_viz.export import write_annotated, write_ensemble


def _ca_atoms(st):
    return [(res, res["CA"][0]) for ch in st[0] for res in ch if res.find_atom("CA", "*")]


@pytest.mark.parametrize("suffix", [".pdb", ".cif"])
def test_annotated_b_and_anisou(tmp_path, ubq_path, ubq_anm, suffix):
    path = write_annotated(ubq_anm, ubq_path, tmp_path / f"ubq{suffix}")
    st = gemmi.read_structure(str(path))
    cas = _ca_atoms(st)
    assert len(cas) == 76
    u = np.array([[a.aniso.u11, a.aniso.u22, a.aniso.u33, a.aniso.u12, a.aniso.u13, a.aniso.u23] for _, a in cas])
    m = ubq_anm.marginals
    expected = np.stack([m[:, 0, 0], m[:, 1, 1], m[:, 2, 2], m[:, 0, 1], m[:, 0, 2], m[:, 1, 2]], axis=1)
    # PDB stores U x 10^4 as integers
    if suffix == ".pdb":
        np.testing.assert_allclose(u, expected, atol=0.51e-4)
    else:  # gemmi keeps U as float32 and writes 6 significant digits
        np.testing.assert_allclose(u, expected, rtol=1e-5, atol=1e-6)
    b = np.array([a.b_iso for _, a in cas])
    np.testing.assert_allclose(b, ubq_anm.bfactors, atol=0.006)
    # every atom of a residue carries the residue's B-factor; only C-alpha carries U
    res0 = cas[0][0]
    assert all(abs(a.b_iso - b[0]) < 0.006 for a in res0)
    assert not any(a.aniso.nonzero() for a in res0 if a.name != "CA")
    text = path.read_text()
    if suffix == ".pdb":
        assert "REMARK 250 model: anm" in text
        assert sum(line.startswith("ANISOU") for line in text.splitlines()) == 76
    else:
        assert "_dynaprot_viz.model_name anm" in text


def test_whole_residue_anisou(tmp_path, ubq_path, ubq_anm):
    path = write_annotated(ubq_anm, ubq_path, tmp_path / "all.pdb", whole_residue_anisou=True)
    st = gemmi.read_structure(str(path))
    # the file keeps the input's waters (issue 14); they carry no U: count the protein atoms
    n_atoms = sum(len(r) for ch in st[0] for r in ch if r.name != "HOH")
    assert sum(line.startswith("ANISOU") for line in path.read_text().splitlines()) == n_atoms


def test_annotated_keeps_altloc_choice_and_chain(tmp_path, data_dir):
    chain = load_chain(data_dir / "1ake.cif", chain="B")
    dyn = predict_anm(chain)
    st = gemmi.read_structure(str(write_annotated(dyn, data_dir / "1ake.cif", tmp_path / "b.pdb")))
    # the whole input is kept (issue 14): chain A stays, chain B is the annotated one
    assert [ch.name for ch in st[0]] == [ch.name for ch in gemmi.read_structure(str(data_dir / "1ake.cif"))[0]]
    b = st[0]["B"]
    ca = np.array([[a.pos.x, a.pos.y, a.pos.z] for r in b for a in r if a.name == "CA" and r.het_flag == "A"])
    np.testing.assert_allclose(ca, chain.ca, atol=1e-3)
    assert not any(a.altloc != "\0" for r in b if r.het_flag == "A" for a in r)


def test_annotated_from_wrong_structure_is_refused(tmp_path, data_dir, ubq_anm):
    with pytest.raises(InputError, match="predicted residues are not in the structure"):
        write_annotated(ubq_anm, data_dir / "1ejg.pdb", tmp_path / "x.pdb")
    assert not list(tmp_path.iterdir())


def test_bad_output_names(tmp_path, ubq_path, ubq_anm):
    with pytest.raises(InputError, match="unknown output format"):
        write_annotated(ubq_anm, ubq_path, tmp_path / "x.txt")
    with pytest.raises(InputError, match="gzipped output"):
        write_annotated(ubq_anm, ubq_path, tmp_path / "x.pdb.gz")


def test_pdb_range_checks(tmp_path, ubq_path, ubq_anm):
    huge = Dynamics(ubq_anm.mean, ubq_anm.marginals * 1e4, ubq_anm.coupling * 1e4, ubq_anm.residues, "anm")
    # PDB: capped (B) and scaled to fit (U), one warning; never refused (issue 13)
    with pytest.warns(UserWarning, match="capped at 999.99") as rec:
        write_annotated(huge, ubq_path, tmp_path / "x.pdb")
    assert sum("PDB output" in str(w.message) for w in rec) == 1
    st = gemmi.read_structure(str(tmp_path / "x.pdb"))
    assert max(a.b_iso for ch in st[0] for r in ch for a in r) == pytest.approx(999.99)
    # mmCIF has no such limit: the true values
    write_annotated(huge, ubq_path, tmp_path / "x.cif")
    cif = gemmi.read_structure(str(tmp_path / "x.cif"))
    b = [r["CA"][0].b_iso for ch in cif[0] for r in ch if r.find_atom("CA", "*")]  # waters kept (issue 14)
    np.testing.assert_allclose(b, huge.bfactors, rtol=1e-4)


def test_ensemble_file(tmp_path, ubq_anm):
    samples = ubq_anm.sample(7, seed=2)
    path = write_ensemble(ubq_anm, samples, tmp_path / "ens.pdb")
    st = gemmi.read_structure(str(path))
    assert len(st) == 7
    for k, model in enumerate(st):
        xyz = np.array([[r[0].pos.x, r[0].pos.y, r[0].pos.z] for ch in model for r in ch])
        np.testing.assert_allclose(xyz, samples[k], atol=6e-4)
        assert [r.seqid.num for ch in model for r in ch] == [r.number for r in ubq_anm.residues]
    assert "ensemble: 7 samples" in path.read_text()
    with pytest.raises(InputError, match="samples must have shape"):
        write_ensemble(ubq_anm, samples[:, :10], tmp_path / "bad.pdb")


def test_long_chain_names_are_shortened_for_pdb(tmp_path, ubq_anm):
    """MD segids such as '4AKE' do not fit PDB's chain column: written as a spare
    letter with a REMARK, kept as they are in mmCIF."""
    from dynaprot_viz.core.structure import Residue
    from dynaprot_viz.export import pdb_chain_name_map

    res = tuple(Residue("PROA" if i < 40 else "A", r.number, r.icode, r.name)
                for i, r in enumerate(ubq_anm.residues))
    dyn = Dynamics(ubq_anm.mean, ubq_anm.marginals, ubq_anm.coupling, res, "md")
    assert pdb_chain_name_map(["PROA", "A", "B"]) == {"PROA": "C", "A": "A", "B": "B"}
    path = write_ensemble(dyn, dyn.sample(2, seed=0), tmp_path / "ens.pdb")
    st = gemmi.read_structure(str(path))
    assert [ch.name for ch in st[0]] == ["B", "A"]
    assert "chain PROA written as B" in path.read_text()
    cif = write_ensemble(dyn, dyn.sample(2, seed=0), tmp_path / "ens.cif")
    assert [ch.name for ch in gemmi.read_structure(str(cif))[0]] == ["PROA", "A"]
