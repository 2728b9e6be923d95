"""MD ingestion on real trajectories (MDAnalysisTests: adenylate kinase PSF/DCD, 98 frames).

Labels are checked against a direct in-memory numpy computation with an independent
superposition (MDAnalysis' QCP rotation), the streaming path against the one-chunk
path, and the ATLAS / mdCATH / generic readers on files built from the same real MD.
"""

import shutil
import warnings

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("h5py")
mda = pytest.importorskip("MDAnalysis")
datafiles = pytest.importorskip("MDAnalysisTests.datafiles")

from dynaprot_viz.cli import main
from dynaprot_viz.core.errors import InputError
from dynaprot_viz.training.ingest import LabelAccumulator, ingest, labels_from_source
from dynaprot_viz.training.readers import atlas_sources, mdcath_sources, one_letter, trajectory_source
from dynaprot_viz.training.store import LabelStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


# --------------------------------------------------------------------------- reference maths


def direct_labels(frames, ref, ddof=1):
    """Everything in memory: QCP superposition (MDAnalysis), np.cov, explicit cosine."""
    from MDAnalysis.analysis.align import rotation_matrix

    ref_c = ref.mean(0)
    fitted = []
    for x in frames:
        xc = x - x.mean(0)
        rot, _ = rotation_matrix(xc, ref - ref_c)
        fitted.append(xc @ rot.T + ref_c)
    y = np.array(fitted)  # [T, N, 3]
    t, n = y.shape[:2]
    joint = np.cov(y.reshape(t, 3 * n).T, ddof=ddof)
    blocks = joint.reshape(n, 3, n, 3)
    marg = np.stack([blocks[i, :, i, :] for i in range(n)])
    coup = np.einsum("iaja->ij", blocks) / 3
    d = np.sqrt(np.diag(coup))
    dr = y - y.mean(0)
    u = dr / np.linalg.norm(dr, axis=-1, keepdims=True)
    cos = np.einsum("tia,tja->ij", u, u) / t
    return dict(marginals=marg, coupling=coup, correlation=coup / np.outer(d, d), cosine_correlation=cos,
                rmsf=np.sqrt(np.trace(marg, axis1=1, axis2=2)), fitted=y)


def assert_labels_close(lab, ref, atol=1e-8):
    for name in ("marginals", "coupling", "correlation", "cosine_correlation", "rmsf"):
        np.testing.assert_allclose(getattr(lab, name), ref[name], atol=atol, rtol=1e-7, err_msg=name)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def adk():
    """adenylate kinase: universe, C-alpha frames (98, 214, 3) Å, CA indices."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(datafiles.PSF, datafiles.DCD)
        ca = u.select_atoms("protein and name CA")
        frames = np.array([ca.positions.copy() for _ in u.trajectory], dtype=np.float64)
    return u, frames, ca.indices


@pytest.fixture(scope="module")
def atlas_dir(tmp_path_factory, adk):
    """A fake ATLAS download built from the real adk trajectory:
    adk_A/adk_A.pdb, adk_A_prod_R1.xtc (frames 0-48), adk_A_prod_R2_fit.xtc (49-97)
    and a decoy adk_A_prod_R2.xtc (frames 0-9) that must lose to the _fit file."""
    u, _, _ = adk
    root = tmp_path_factory.mktemp("atlas")
    d = root / "adk_A"
    d.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u.trajectory[0]
        u.atoms.write(str(d / "adk_A.pdb"))
        for name, sl in (("adk_A_prod_R1.xtc", slice(0, 49)), ("adk_A_prod_R2_fit.xtc", slice(49, 98)),
                         ("adk_A_prod_R2.xtc", slice(0, 10))):
            with mda.Writer(str(d / name), u.atoms.n_atoms) as w:
                for _ in u.trajectory[sl]:
                    w.write(u.atoms)
    return root


def read_ca(pdb, xtcs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_u = mda.Universe(str(pdb))
        ca = ref_u.select_atoms("protein and name CA")
        ref = ca.positions.astype(np.float64)
        out = []
        for x in xtcs:
            uu = mda.Universe(str(pdb), str(x))
            sel = uu.atoms[ca.indices]
            out += [sel.positions.astype(np.float64) for _ in uu.trajectory]
    return ref, np.array(out)


# --------------------------------------------------------------------------- the maths


def test_labels_match_direct_numpy(adk):
    u, frames, _ = adk
    lab = labels_from_source(trajectory_source(datafiles.PSF, [datafiles.DCD], key="adk"), chunk_frames=32)
    ref = frames[0]  # PSF has no coordinates: the reference is frame 0
    np.testing.assert_allclose(lab.backbone[:, 1], ref, atol=1e-5)
    direct = direct_labels(frames, ref)
    assert_labels_close(lab, direct, atol=1e-7)
    assert lab.n_residues == 214 and lab.sequence.startswith("MRIILLGAPGAGKGTQA")
    assert lab.provenance["n_frames"] == 98 and lab.provenance["replicas"] == ["adk_dims"]
    assert lab.provenance["reference"] == "first frame of adk_dims.dcd"
    # every label is a valid Dynamics (SPD marginals, PSD coupling)
    dyn = lab.to_dynamics()
    np.testing.assert_allclose(dyn.rmsf, direct["rmsf"], rtol=1e-8)
    # kept frames: 98 < 250, so all of them, superposed on the reference
    assert lab.frames.shape == (98, 214, 3)
    np.testing.assert_allclose(lab.frames, direct["fitted"], atol=1e-4)


def test_rmsf_matches_mdanalysis(adk):
    """ddof=0 RMSF equals MDAnalysis' RMSF of the trajectory aligned on the reference's CA."""
    from MDAnalysis.analysis import align, rms

    u, frames, ca_idx = adk
    lab = labels_from_source(trajectory_source(datafiles.PSF, [datafiles.DCD], key="adk"), ddof=0,
                             keep_frames=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mobile = mda.Universe(datafiles.PSF, datafiles.DCD, in_memory=True)
        mobile.trajectory[0]
        reference = mda.Universe(datafiles.PSF, datafiles.DCD)
        reference.trajectory[0]
        align.AlignTraj(mobile, reference, select="protein and name CA", in_memory=True).run()
        r = rms.RMSF(mobile.atoms[ca_idx]).run()
    np.testing.assert_allclose(lab.rmsf, r.results.rmsf, atol=2e-4)
    assert lab.frames is None


def test_streaming_equals_in_memory(adk, tmp_path):
    """Chunks of 5 frames with the spool forced to disk == one chunk in memory."""
    src = trajectory_source(datafiles.PSF, [datafiles.DCD], key="adk")
    a = labels_from_source(src, chunk_frames=5, spool_bytes=1, tmpdir=tmp_path)
    b = labels_from_source(src, chunk_frames=1000, spool_bytes=2**30)
    assert a.provenance["spooled_to_disk"] and not b.provenance["spooled_to_disk"]
    for name in ("marginals", "coupling", "correlation", "cosine_correlation", "rmsf", "frames"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-10, err_msg=name)
    assert list(tmp_path.iterdir()) == []  # spool file removed


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 39), max_size=6), seed=st.integers(0, 2**16))
def test_accumulator_any_chunking_equals_np_cov(cuts, seed):
    rng = np.random.default_rng(seed)
    n, t = 6, 40
    ref = rng.normal(0, 5, (n, 3))
    frames = ref + rng.normal(0, 0.5, (t, n, 3))
    bounds = [0, *sorted(set(cuts)), t]
    with LabelAccumulator(ref, superpose=False, spool_bytes=200) as acc:
        for s, e in zip(bounds[:-1], bounds[1:]):
            acc.add(frames[s:e])
        out = acc.finish(chunk_frames=7)
    joint = np.cov(frames.reshape(t, 3 * n).T)
    np.testing.assert_allclose(acc.count, t)
    np.testing.assert_allclose(out["coupling"], np.einsum("iaja->ij", joint.reshape(n, 3, n, 3)) / 3, atol=1e-12)
    dr = frames - frames.mean(0)
    u = dr / np.linalg.norm(dr, axis=-1, keepdims=True)
    np.testing.assert_allclose(out["cosine_correlation"], np.einsum("tia,tja->ij", u, u) / t, atol=1e-6)


def test_accumulator_rejects_bad_frames():
    acc = LabelAccumulator(np.zeros((4, 3)) + np.arange(4)[:, None])
    with pytest.raises(InputError, match=r"frames must have shape \(b, 4, 3\)"):
        acc.add(np.zeros((2, 5, 3)))
    with pytest.raises(InputError, match="NaN or infinite"):
        acc.add(np.full((1, 4, 3), np.nan))
    with pytest.raises(InputError, match="at least 2 needed"):
        acc.covariance()


# --------------------------------------------------------------------------- readers


def test_atlas_reader(atlas_dir):
    (src,) = atlas_sources(atlas_dir)
    assert src.key == "adk_A"
    lab = labels_from_source(src)
    d = atlas_dir / "adk_A"
    ref, frames = read_ca(d / "adk_A.pdb", [d / "adk_A_prod_R1.xtc", d / "adk_A_prod_R2_fit.xtc"])
    assert frames.shape == (98, 214, 3)
    assert_labels_close(lab, direct_labels(frames, ref), atol=1e-6)
    np.testing.assert_allclose(lab.backbone[:, 1], ref, atol=1e-6)
    p = lab.provenance
    assert p["replicas"] == ["R1", "R2"] and p["replica_frames"] == {"R1": 49, "R2": 49}
    assert p["force_field"] == "CHARMM36m" and p["dataset"] == "ATLAS"
    assert p["trajectories"][1].endswith("adk_A_prod_R2_fit.xtc")  # _fit preferred
    assert p["time_span_ps"] == pytest.approx(2 * 48 * 1.0, rel=1e-3)
    # the same folder given as the chain folder itself, or files laid out flat
    assert [s.key for s in atlas_sources(atlas_dir / "adk_A")] == ["adk_A"]


def test_ingest_resume_and_failures(atlas_dir, tmp_path):
    root = tmp_path / "atlas"
    shutil.copytree(atlas_dir, root)
    # a corrupt trajectory, an atom-count mismatch, and a chain without trajectories
    bad = root / "bad_A"
    bad.mkdir()
    shutil.copy(root / "adk_A" / "adk_A.pdb", bad / "bad_A.pdb")
    (bad / "bad_A_prod_R1.xtc").write_bytes(b"\x00\x01garbage" * 100)
    mis = root / "mis_A"
    mis.mkdir()
    shutil.copy(datafiles.PDB_sub_sol, mis / "mis_A.pdb")  # cobrotoxin topology ...
    shutil.copy(root / "adk_A" / "adk_A_prod_R1.xtc", mis / "mis_A_prod_R1.xtc")  # ... adk frames
    lone = root / "lone_A"
    lone.mkdir()
    shutil.copy(root / "adk_A" / "adk_A.pdb", lone / "lone_A.pdb")
    store = tmp_path / "labels.h5"

    with pytest.warns(UserWarning, match="skipped"):
        res = ingest(atlas_sources(root), store, progress=False, keep_frames=10)
    assert res.ingested == ["adk_A"] and res.skipped == []
    assert set(res.failed) == {"bad_A", "mis_A", "lone_A"}
    assert "bad_A_prod_R1.xtc" in res.failed["bad_A"]
    assert "same number of atoms" in res.failed["mis_A"]
    assert "no lone_A_prod_R*.xtc" in res.failed["lone_A"]
    assert all("\n" not in v for v in res.failed.values())

    # resume: a second run skips the done chain and ingests a newly added one
    new = root / "new_A"
    shutil.copytree(root / "adk_A", new)
    for f in new.iterdir():
        f.rename(new / f.name.replace("adk_A", "new_A"))
    with pytest.warns(UserWarning):
        res2 = ingest(atlas_sources(root), store, progress=False, keep_frames=10)
    assert res2.skipped == ["adk_A"] and res2.ingested == ["new_A"]
    with LabelStore(store) as s:
        assert s.keys() == ["adk_A", "new_A"]
        np.testing.assert_array_equal(s.get("adk_A").coupling, s.get("new_A").coupling)
        assert s.get("adk_A").frames.shape == (10, 214, 3)


def write_mdcath(path, u, domain="1abcA00", temps=("320", "348"), split=49):
    """An h5 file in mdCATH's layout (mdcath-only-protein-v1.0) from a real trajectory."""
    import io

    import h5py

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u.trajectory[0]
        buf = io.StringIO()
        from MDAnalysis.lib.util import NamedStream

        with mda.Writer(NamedStream(buf, "x.pdb"), u.atoms.n_atoms) as w:
            w.write(u.atoms)
        coords = np.array([u.atoms.positions.copy() for _ in u.trajectory], dtype=np.float32)
    with h5py.File(path, "w") as f:
        f.attrs["layout"] = "mdcath-only-protein-v1.0"
        g = f.create_group(domain)
        g.create_dataset("pdbProteinAtoms", data=buf.getvalue().encode())
        g.create_dataset("resid", data=u.atoms.resids)
        g.create_dataset("resname", data=np.array(u.atoms.resnames, dtype="S4"))
        g.create_dataset("chain", data=np.array(["A"] * u.atoms.n_atoms, dtype="S1"))
        g.attrs["numProteinAtoms"] = u.atoms.n_atoms
        g.attrs["numResidues"] = u.residues.n_residues
        for t in temps:
            for r, sl in (("0", slice(0, split)), ("1", slice(split, None))):
                rg = g.create_group(f"{t}/{r}")
                rg.create_dataset("coords", data=coords[sl])
                rg.create_dataset("box", data=np.eye(3) * 10.0)
                rg.attrs["numFrames"] = len(coords[sl])
    return coords


def test_mdcath_reader(adk, tmp_path):
    u, frames, ca_idx = adk
    path = tmp_path / "mdcath_dataset_1abcA00.h5"
    coords = write_mdcath(path, u)
    (src,) = mdcath_sources([path])
    assert src.key == "1abcA00"
    lab = labels_from_source(src)
    ref = coords[0][ca_idx].astype(np.float64)
    # the reference comes from pdbProteinAtoms (3 decimals), frames from coords (float32)
    np.testing.assert_allclose(lab.backbone[:, 1], ref, atol=1e-3)
    assert_labels_close(lab, direct_labels(coords[:, ca_idx].astype(np.float64), lab.backbone[:, 1]), atol=1e-6)
    p = lab.provenance
    assert p["temperature_K"] == 320.0 and p["force_field"] == "CHARMM22*" and p["replicas"] == ["0", "1"]
    assert p["time_span_ps"] == pytest.approx((48 + 48) * 1000.0)
    # several temperatures: one record each, keyed <domain>_<T>K
    assert [s.key for s in mdcath_sources(path, temperatures=(320, 348))] == ["1abcA00_320K", "1abcA00_348K"]
    # a missing temperature and a coords/atoms mismatch fail per chain
    with pytest.raises(InputError, match="no 413 K simulations; present: 320, 348"):
        labels_from_source(mdcath_sources(path, temperatures=(413,))[0])
    import h5py

    with h5py.File(path, "a") as f:
        del f["1abcA00/348/1/coords"]
        f["1abcA00/348/1/coords"] = np.zeros((3, 10, 3), dtype=np.float32)
    with pytest.raises(InputError, match=r"coords has shape \(3, 10, 3\), expected \(frames, 3341, 3\)"):
        labels_from_source(mdcath_sources(path, temperatures=(348,))[0])


def test_generic_pair_with_reference_and_chain(tmp_path, adk):
    """PDB + TRR (cobrotoxin in water, 3 frames): reference = the PDB coordinates."""
    lab = labels_from_source(trajectory_source(datafiles.PDB_xvf, [datafiles.TRR_xvf], key="cobrotoxin"))
    ref, frames = read_ca(datafiles.PDB_xvf, [datafiles.TRR_xvf])
    assert lab.n_residues == 62
    assert_labels_close(lab, direct_labels(frames, ref), atol=1e-6)
    assert 0.1 < lab.rmsf.max() < 5
    with pytest.raises(InputError, match="no protein chain 'Z'"):
        labels_from_source(trajectory_source(datafiles.PDB_xvf, [datafiles.TRR_xvf], chain="Z"))


def test_molecule_split_across_periodic_boundaries_is_refused():
    """The OPLS-AA adk GRO + XTC is not made whole: C-alpha neighbours jump by a box
    length in some frames, which would read as RMSF of tens of Å."""
    with pytest.raises(InputError, match="split across periodic boundaries: make it whole first"):
        labels_from_source(trajectory_source(datafiles.GRO, [datafiles.XTC], key="adk_opls"))


def test_one_letter_force_field_names():
    assert [one_letter(x) for x in ("HSD", "HIE", "CYX", "ALA", "MSE", "NALA", "WAT", "GLH")] == \
        ["H", "H", "C", "A", "M", "A", "X", "E"]


# --------------------------------------------------------------------------- command line


def test_cli_ingest(atlas_dir, tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main(["ingest", "--atlas", str(atlas_dir), "--out", str(out), "--no-progress",
                 "--keep-frames", "0"]) == 0
    assert "1 ingested" in capsys.readouterr().out
    assert main(["ingest", "--atlas", str(atlas_dir), "--out", str(out), "--no-progress"]) == 0
    assert "0 ingested, 1 already present" in capsys.readouterr().out
    assert main(["ingest", "--topology", datafiles.PSF, "--trajectory", datafiles.DCD, "--key", "adk_dims",
                 "--out", str(out), "--no-progress", "--chunk-frames", "16"]) == 0
    with LabelStore(out) as s:
        assert s.keys() == ["adk_A", "adk_dims"]
    # bad usage: exit 2, one line
    assert main(["ingest", "--atlas", str(atlas_dir), "--mdcath", "x.h5", "--out", str(out)]) == 2
    assert "give exactly one of" in capsys.readouterr().err
    assert main(["ingest", "--atlas", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["ingest", "--topology", datafiles.PSF, "--trajectory", datafiles.XTC, "--key", "bad",
                 "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "1 of 1 chain(s) failed" in err


ATLAS_1AB1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "atlas_chains" / "1ab1_A.pdb"


@pytest.mark.skipif(not ATLAS_1AB1.exists(), reason="../shared/data/atlas_chains not present")
def test_blank_chain_labels_line_up_with_predictions():
    """An ATLAS start structure has a blank chain column: ingest names it "" as predict does
    (it used to call it "A", so labels and predictions of one file did not match)."""
    import warnings

    import MDAnalysis as mda

    from dynaprot_viz.core.structure import load_chain
    from dynaprot_viz.training.readers import _reference_from_universe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(str(ATLAS_1AB1))
    ref = _reference_from_universe(u, np.array(u.atoms.positions, dtype=np.float64), str(ATLAS_1AB1), None)
    pred = load_chain(ATLAS_1AB1)
    assert pred.chain_id == ""
    assert [(r.chain, r.number, r.name) for r in ref.chain.residues] == \
        [(r.chain, r.number, r.name) for r in pred.residues]
