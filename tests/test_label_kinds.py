"""Label kinds in the store: "md", "experimental-ensemble" (DANCE conformer collections),
"md-rmsf" (mdCATH RMSF) - round trips, version-1 compatibility, real-data ingestion checked
against the raw files, corrupt inputs through the CLI, resume, and the kind filters of the
dataset, trainers' split and evaluation."""

import csv
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("h5py")

from dynaprot_viz.cli import main
from dynaprot_viz.core.errors import InputError, ShapeError
from dynaprot_viz.core.gaussian import coupling_from_joint, marginals_from_joint
from dynaprot_viz.core.structure import Residue
from dynaprot_viz.training.ensembles import (ensemble_covariance, ingest_ensembles, list_collections,
                                             read_collection)
from dynaprot_viz.training.rmsf_labels import NM_TO_ANGSTROM, ingest_mdcath_rmsf
from dynaprot_viz.training.store import STORE_FORMAT_VERSION, ChainLabels, LabelStore

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DANCE = SHARED / "dance"
MDCATH = SHARED / "mdcath_train"
needs_dance = pytest.mark.skipif(not (DANCE / "coords").is_dir(),
                                 reason="shared data ../shared/data/dance absent (DANCE conformer collections)")
needs_mdcath = pytest.mark.skipif(not (MDCATH / "rmsf_320K.csv").is_file(),
                                  reason="shared data ../shared/data/mdcath_train absent (mdCATH RMSF table)")

#: small real collections: 4X8WA_4X8WE has 5 conformers, 75 positions, two reference
#: positions seen in fewer than 3 conformers; 2KIXA_6PVTA has 6 conformers, 33 positions
SMALL = "4X8WA_4X8WE"
TINY = "2KIXA_6PVTA"
#: 6 conformers, 89 positions; one reference position is seen in exactly 2 conformers
REAL = "1UDVA_2A2YB"


# --------------------------------------------------------------------------- builders


def md_labels(key="md1", n=10, frames=40, seed=0) -> ChainLabels:
    rng = np.random.default_rng(seed)
    ca = np.cumsum(rng.normal(0, 2.2, (n, 3)), axis=0)
    x = ca + rng.normal(0, 0.7, (frames, n, 3))
    joint = np.cov(x.reshape(frames, 3 * n).T)
    marg, coup = marginals_from_joint(joint), coupling_from_joint(joint)
    d = np.sqrt(np.diag(coup))
    dr = x - x.mean(0)
    u = dr / np.linalg.norm(dr, axis=-1, keepdims=True)
    return ChainLabels(
        key=key, sequence="A" * n, residues=tuple(Residue("A", i + 1, "", "ALA") for i in range(n)),
        backbone=np.stack([ca - 1.0, ca, ca + 1.0], axis=1), marginals=marg, coupling=coup,
        correlation=coup / np.outer(d, d), cosine_correlation=np.einsum("tia,tja->ij", u, u) / frames,
        rmsf=np.sqrt(np.trace(marg, axis1=1, axis2=2)), provenance={"source": f"/md/{key}"})


def rmsf_labels(key="r1", n=8, seed=1) -> ChainLabels:
    rng = np.random.default_rng(seed)
    ca = np.cumsum(rng.normal(0, 2.2, (n, 3)), axis=0)
    return ChainLabels(key=key, sequence="G" * n, residues=tuple(Residue("A", i, "", "GLY") for i in range(n)),
                       backbone=np.stack([ca - 1.0, ca, ca + 1.0], axis=1), rmsf=rng.uniform(0.5, 3.0, n),
                       provenance={"source": "md-rmsf"}, kind="md-rmsf")


def synthetic_ensemble(key="e1", k=7, n=9, seed=2) -> ChainLabels:
    """Random conformers with holes (never below 3 per position): a genuine construction."""
    rng = np.random.default_rng(seed)
    ca = np.cumsum(rng.normal(0, 2.2, (n, 3)), axis=0)
    x = ca + rng.normal(0, 0.8, (k, n, 3))
    mask = np.ones((k, n), bool)
    mask[3:, 2] = False  # position 2 in 3 conformers
    mask[5, 6] = False
    cov = ensemble_covariance(x, mask)
    bb = np.full((n, 3, 3), np.nan)
    bb[:, 1] = x[0]
    return ChainLabels(key=key, sequence="K" * n, residues=tuple(Residue("B", i + 1, "", "LYS") for i in range(n)),
                       backbone=bb, marginals=cov["marginals"], coupling=cov["coupling"],
                       correlation=cov["correlation"], cosine_correlation=cov["cosine_correlation"],
                       rmsf=cov["rmsf"], provenance={"source": "experimental-ensemble", "split": "train"},
                       kind="experimental-ensemble", n_conformers=k, position_counts=cov["counts"])


# --------------------------------------------------------------------------- store


def test_round_trip_each_kind_and_kind_index(tmp_path):
    path = tmp_path / "s.h5"
    labs = [md_labels(), synthetic_ensemble(), rmsf_labels()]
    with LabelStore(path, "a") as store:
        for lab in labs:
            store.put(lab)
    with LabelStore(path) as store:
        assert store.kinds() == {"md1": "md", "e1": "experimental-ensemble", "r1": "md-rmsf"}
        assert store.keys(kind="md-rmsf") == ["r1"]
        assert store.keys(kind=("md", "experimental-ensemble")) == ["md1", "e1"]
        assert store.metadata("e1")["kind"] == "experimental-ensemble"
        with pytest.raises(InputError, match="label kind 'mdx' is not known"):
            store.keys(kind="mdx")
        got = {k: store.get(k) for k in store.keys()}
    for lab in labs:
        g = got[lab.key]
        assert g.kind == lab.kind and g.residues == lab.residues
        np.testing.assert_array_equal(g.rmsf, lab.rmsf)
        np.testing.assert_array_equal(g.backbone, lab.backbone)  # NaN N/C of the ensemble survive
    e = got["e1"]
    assert e.n_conformers == 7 and e.position_counts.tolist() == [7, 7, 3, 7, 7, 7, 6, 7, 7]
    np.testing.assert_array_equal(e.marginals, labs[1].marginals)
    np.testing.assert_allclose(e.cosine_correlation, labs[1].cosine_correlation, atol=1e-6)
    r = got["r1"]
    assert r.marginals is None and r.coupling is None and r.correlation is None and r.cosine_correlation is None
    with pytest.raises(InputError, match="kind 'md-rmsf' \\(RMSF only\\)"):
        r.to_dynamics()
    assert got["md1"].to_dynamics().model_name == "md"
    # position 2 has a rank-2 covariance (3 conformers): refused as a Gaussian, in one line
    with pytest.raises(InputError, match="7 conformers.*not a valid Gaussian"):
        e.to_dynamics()


def test_kind_validation():
    r = rmsf_labels()
    base = dict(key="x", sequence=r.sequence, residues=r.residues, backbone=r.backbone, rmsf=r.rmsf)
    with pytest.raises(ShapeError, match="kind 'md' needs marginals"):
        ChainLabels(**base)
    with pytest.raises(ShapeError, match="RMSF only; marginals must be None"):
        ChainLabels(**base, marginals=np.tile(np.eye(3), (8, 1, 1)), kind="md-rmsf")
    with pytest.raises(InputError, match="label kind 'rmsf' is not known"):
        ChainLabels(**base, kind="rmsf")
    e = synthetic_ensemble()
    fields = {k: getattr(e, k) for k in ("key", "sequence", "residues", "backbone", "marginals", "coupling",
                                         "correlation", "rmsf")}
    with pytest.raises(ShapeError, match="needs position_counts"):
        ChainLabels(**fields, kind="experimental-ensemble", n_conformers=7)
    with pytest.raises(ShapeError, match="n_conformers must be an int >= 3"):
        ChainLabels(**fields, kind="experimental-ensemble", n_conformers=2, position_counts=e.position_counts)
    with pytest.raises(ShapeError, match=r"position_counts must lie in \[1, n_conformers = 6\]"):
        ChainLabels(**fields, kind="experimental-ensemble", n_conformers=6, position_counts=e.position_counts)
    with pytest.raises(ShapeError, match="for kind 'experimental-ensemble' only"):
        ChainLabels(**fields, cosine_correlation=e.cosine_correlation, n_conformers=7,
                    position_counts=e.position_counts)
    # cosine correlation is optional for ensembles
    assert ChainLabels(**fields, kind="experimental-ensemble", n_conformers=7,
                       position_counts=e.position_counts).cosine_correlation is None


def _downgrade_to_v1(path):
    """Rewrite a store as format version 1 wrote it: no kind attributes, no kinds column."""
    import h5py

    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 1
        del f["index/kinds"]
        for g in f["chains"].values():
            del g.attrs["kind"]


def test_version_1_store_reads_as_md_and_upgrades_on_write(tmp_path):
    import h5py

    path = tmp_path / "v1.h5"
    with LabelStore(path, "a") as store:
        store.put(md_labels("a"))
        store.put(md_labels("b", seed=4))
    _downgrade_to_v1(path)
    with LabelStore(path) as store:
        assert store.format_version == 1
        assert store.kinds() == {"a": "md", "b": "md"} and store.keys(kind="md") == ["a", "b"]
        assert store.get("b").kind == "md"
    with LabelStore(path, "a") as store:
        store.put(rmsf_labels())
    with h5py.File(path, "r") as f:
        assert int(f.attrs["format_version"]) == STORE_FORMAT_VERSION == 2
        assert [k.decode() if isinstance(k, bytes) else k for k in f["index/kinds"][()]] == ["md", "md", "md-rmsf"]
    with LabelStore(path) as store:
        assert store.kinds() == {"a": "md", "b": "md", "r1": "md-rmsf"}


def test_ensemble_covariance_is_psd_and_exact_without_holes():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1.0, (6, 5, 3))
    full = ensemble_covariance(x, np.ones((6, 5), bool))
    joint = np.cov(x.reshape(6, 15).T)
    np.testing.assert_allclose(full["marginals"], marginals_from_joint(joint), atol=1e-12)
    np.testing.assert_allclose(full["coupling"], coupling_from_joint(joint), atol=1e-12)
    mask = rng.uniform(size=(6, 5)) > 0.35
    mask[:3] = True
    holes = ensemble_covariance(x, mask)
    assert np.linalg.eigvalsh(holes["coupling"]).min() > -1e-12
    for i in range(5):  # each marginal = unbiased covariance of the conformers present there
        np.testing.assert_allclose(holes["marginals"][i], np.cov(x[mask[:, i], i].T), atol=1e-12)
    # cross terms, written out: sum over conformers present at both, each position's own mean,
    # divided by sqrt((n_i - 1)(n_j - 1)) (the documented shrinkage)
    n = mask.sum(0)
    mu = np.array([x[mask[:, i], i].mean(0) for i in range(5)])
    for i in range(5):
        for j in range(5):
            both = mask[:, i] & mask[:, j]
            c = np.einsum("ca,ca->", x[both, i] - mu[i], x[both, j] - mu[j]) / 3
            np.testing.assert_allclose(holes["coupling"][i, j], c / np.sqrt((n[i] - 1) * (n[j] - 1)), atol=1e-12)
    assert not mask.all() and np.abs(holes["correlation"]).max() <= 1.0


# --------------------------------------------------------------------------- DANCE, real


def _raw(cid):
    h = np.fromfile(DANCE / "coords" / f"{cid}_raw_coords_ca.bin", dtype="<i8", count=3)
    x = np.fromfile(DANCE / "coords" / f"{cid}_raw_coords_ca.bin", dtype="<f8", offset=24).reshape(h)
    mh = np.fromfile(DANCE / "coords" / f"{cid}_raw_coords_ca_mask.bin", dtype="<i8", count=2)
    m = np.fromfile(DANCE / "coords" / f"{cid}_raw_coords_ca_mask.bin", dtype=np.uint8, offset=16).reshape(mh)
    return x, m.astype(bool)


@needs_dance
def test_real_dance_collection(tmp_path):
    x, mask = _raw(REAL)
    counts = mask.sum(0)
    ref_rare = np.flatnonzero(mask[0] & (counts < 3))
    assert (counts[ref_rare] == 2).any()  # the collection has what this test checks
    res = ingest_ensembles(DANCE, tmp_path / "e.h5", ids=[REAL], progress=False)
    assert res.ingested == [REAL] and not res.failed
    with LabelStore(tmp_path / "e.h5") as store:
        lab = store.get(REAL)
    assert lab.kind == "experimental-ensemble" and lab.n_conformers == x.shape[0] == 6
    assert (counts[mask[0]] < x.shape[0]).any()  # some kept residues miss conformers
    # residues: reference present and >= 3 conformers, numbered along the ungapped reference
    seq0 = read_collection(DANCE, REAL).alignment[0]
    ungapped = np.cumsum([c != "-" for c in seq0])
    kept = np.flatnonzero(mask[0] & (counts >= 3))
    assert [r.number for r in lab.residues] == ungapped[kept].tolist()
    assert not set(ungapped[ref_rare].tolist()) & {r.number for r in lab.residues}
    np.testing.assert_array_equal(lab.position_counts, counts[kept])
    np.testing.assert_array_equal(lab.ca, x[0, kept])
    assert np.all(np.isnan(lab.backbone[:, [0, 2]]))
    assert lab.sequence == "".join(seq0[i] for i in kept)
    # PSD marginals and coupling; RMSF and coupling diagonal from the trace
    assert np.linalg.eigvalsh(lab.marginals).min() > -1e-9
    assert np.linalg.eigvalsh(lab.coupling).min() > -1e-9 * np.abs(lab.coupling).max()
    tr = np.trace(lab.marginals, axis1=1, axis2=2)
    np.testing.assert_allclose(lab.rmsf, np.sqrt(tr), rtol=1e-12)
    np.testing.assert_allclose(np.diag(lab.coupling), tr / 3, rtol=1e-12)
    # independent: each marginal is np.cov of the conformers present at that position
    for j, i in enumerate(kept):
        np.testing.assert_allclose(lab.marginals[j], np.cov(x[mask[:, i], i].T), atol=1e-9)
    prov = lab.provenance
    assert prov["source"] == "experimental-ensemble" and prov["licence"] == "MIT"
    assert prov["dataset"] == "DANCE (SeaMoon data_test collections)" and prov["split"] in ("train", "val", "test")
    assert len(prov["conformers"]) == 6 and prov["reference_conformer"] == prov["conformers"][0]


def _dance_copy(tmp_path):
    """A DANCE-like folder: two real collections plus corrupt variants of SMALL."""
    d = tmp_path / "dance"
    (d / "coords").mkdir(parents=True)
    (d / "alignments").mkdir()
    for cid in (SMALL, TINY):
        for f in (f"coords/{cid}_raw_coords_ca.bin", f"coords/{cid}_raw_coords_ca_mask.bin",
                  f"alignments/{cid}_aln.fa"):
            shutil.copy(DANCE / f, d / f)
    cb = (DANCE / "coords" / f"{SMALL}_raw_coords_ca.bin").read_bytes()
    mb = (DANCE / "coords" / f"{SMALL}_raw_coords_ca_mask.bin").read_bytes()
    fa = (DANCE / "alignments" / f"{SMALL}_aln.fa").read_text()
    k, p = np.frombuffer(cb[:16], "<i8")
    x = np.frombuffer(cb[24:], "<f8").reshape(k, p, 3)
    m = np.frombuffer(mb[16:], np.uint8).reshape(k, p)
    recs = [r for r in fa.split(">") if r.strip()]

    def put(cid, coords=cb, mask=mb, aln=fa):
        (d / "coords" / f"{cid}_raw_coords_ca.bin").write_bytes(coords)
        (d / "coords" / f"{cid}_raw_coords_ca_mask.bin").write_bytes(mask)
        (d / "alignments" / f"{cid}_aln.fa").write_text(aln)

    bad_x = x.copy()
    bad_x[2, 10, 1] = np.nan
    short = recs[1].split("\n")
    expected = {
        "bad_empty": "empty file",
        "bad_trunc": "needs 9000: file truncated, or its header disagrees with the file size",
        "bad_header": "needs 8880: header disagrees with the file size (the file is longer",
        "bad_maskdims": "mask dimensions (5, 76) disagree with the coordinates (5, 74)",
        "bad_alncount": "4 FASTA records for 5 conformers",
        "bad_alnlen": "has 74 columns, the coordinates have 75 positions",
        "bad_nan": "NaN or infinite coordinates",
        "bad_few": "2 conformer(s), at least 3 needed",
    }
    put("bad_empty", coords=b"")
    put("bad_trunc", coords=cb[:-100])
    # header P one short: the file holds more than the header says
    put("bad_header", coords=np.array([k, p - 1, 3], "<i8").tobytes() + cb[24:],
        mask=np.array([k, p - 1], "<i8").tobytes() + m[:, :-1].tobytes())
    put("bad_maskdims", coords=np.array([k, p - 1, 3], "<i8").tobytes() + x[:, :-1].tobytes(),
        mask=np.array([k, p + 1], "<i8").tobytes() + np.pad(m, ((0, 0), (0, 1))).tobytes())
    put("bad_alncount", aln="".join(">" + r for r in recs[:-1]))
    put("bad_alnlen", aln="".join(">" + r for r in [recs[0], short[0] + "\n" + short[1][:-1] + "\n", *recs[2:]]))
    put("bad_nan", coords=cb[:24] + bad_x.tobytes())
    put("bad_few", coords=np.array([2, p, 3], "<i8").tobytes() + x[:2].tobytes(),
        mask=np.array([2, p], "<i8").tobytes() + m[:2].tobytes(), aln="".join(">" + r for r in recs[:2]))
    (d / "training_list.txt").write_text("\n".join([SMALL, *expected]) + "\n")
    (d / "val_list.txt").write_text(TINY + "\n")
    return d, expected


@needs_dance
def test_corrupt_collections_one_line_each_via_cli(tmp_path, capsys):
    d, expected = _dance_copy(tmp_path)
    out = tmp_path / "labels.h5"
    assert main(["ingest", "--ensembles", str(d), "--out", str(out), "--no-progress"]) == 2
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    lines = cap.err.strip().splitlines()
    for cid, reason in expected.items():
        mine = [ln for ln in lines if f"ingest: {cid} skipped" in ln]
        assert len(mine) == 1, (cid, lines)
        assert reason in mine[0], (cid, mine[0])
    assert lines[-1].startswith("dynaprot-viz ingest: error: 8 of 10 collection(s) failed")
    assert "2 ingested, 0 already present, 8 failed" in cap.out
    with LabelStore(out) as store:
        assert sorted(store.keys()) == sorted([SMALL, TINY])
        assert store.metadata(TINY)["provenance"]["split"] == "val"
    import h5py

    with h5py.File(out, "r") as f:  # nothing half-written for the failures
        assert sorted(f["chains"].keys()) == sorted([SMALL, TINY])


@needs_dance
def test_resume_and_split_filter(tmp_path, capsys):
    d, _ = _dance_copy(tmp_path)
    out = tmp_path / "labels.h5"
    assert main(["ingest", "--ensembles", str(d), "--split", "val", "--out", str(out), "--no-progress"]) == 0
    assert "1 ingested, 0 already present, 0 failed" in capsys.readouterr().out
    with LabelStore(out) as store:
        assert store.keys() == [TINY]
        date = store.metadata(TINY)["provenance"]["date"]
    res = ingest_ensembles(d, out, ids=[TINY, SMALL], progress=False)
    assert res.skipped == [TINY] and res.ingested == [SMALL]
    with LabelStore(out) as store:
        assert store.metadata(TINY)["provenance"]["date"] == date  # not rewritten
    assert main(["ingest", "--ensembles", str(d), "--split", "nope", "--out", str(out), "--no-progress"]) == 2
    assert "split nope is not known" in capsys.readouterr().err
    assert main(["ingest", "--mdcath-rmsf", str(d), "--split", "val", "--out", str(out)]) == 2
    assert "--split applies only to --ensembles" in capsys.readouterr().err
    assert [s for _, s in list_collections(d, ["train"])].count("train") == 9


# --------------------------------------------------------------------------- mdCATH RMSF, real

DOMAINS = ("1y66A00", "1tifA00", "1ac5A00")  # 1tifA00 has two residues without coordinates


def _mdcath_copy(tmp_path, bad_name=False):
    d = tmp_path / "mdcath"
    (d / "pdbs").mkdir(parents=True)
    rows = []
    with open(MDCATH / "rmsf_320K.csv", newline="") as fh:
        reader = csv.reader(fh)
        head = next(reader)
        for row in reader:
            if row[0] in DOMAINS:
                rows.append(row)
    if bad_name:
        clone = [["1y66X00", *r[1:]] for r in rows if r[0] == "1y66A00"]
        clone[5][2] = "TRP" if clone[5][2] != "TRP" else "ALA"
        rows += clone
        shutil.copy(MDCATH / "pdbs" / "1y66A00.pdb.gz", d / "pdbs" / "1y66X00.pdb.gz")
    with open(d / "rmsf_320K.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        w.writerows(rows)
    for dom in DOMAINS:
        shutil.copy(MDCATH / "pdbs" / f"{dom}.pdb.gz", d / "pdbs" / f"{dom}.pdb.gz")
    return d, rows


@needs_mdcath
def test_mdcath_rmsf_real_domains_against_the_table(tmp_path, capsys):
    import gemmi

    d, rows = _mdcath_copy(tmp_path, bad_name=True)
    out = tmp_path / "r.h5"
    assert main(["ingest", "--mdcath-rmsf", str(d), "--out", str(out), "--no-progress"]) == 2
    cap = capsys.readouterr()
    bad = [ln for ln in cap.err.splitlines() if "1y66X00 skipped" in ln]
    assert len(bad) == 1 and "residue 5 is" in bad[0] and "Traceback" not in cap.err
    assert "3 ingested, 0 already present, 1 failed" in cap.out
    with LabelStore(out) as store:
        assert sorted(store.keys()) == sorted(DOMAINS) and set(store.kinds().values()) == {"md-rmsf"}
        labs = {k: store.get(k) for k in DOMAINS}
    for dom, lab in labs.items():
        mine = [r for r in rows if r[0] == dom and r[4].strip() == "1"]
        assert [r.number for r in lab.residues] == [int(r[1]) for r in mine]
        assert [r.name for r in lab.residues] == [r[2] for r in mine]
        np.testing.assert_allclose(lab.rmsf, [NM_TO_ANGSTROM * float(r[3]) for r in mine], rtol=1e-12)
        st = gemmi.read_structure(str(d / "pdbs" / f"{dom}.pdb.gz"))
        ca = np.array([[a.pos.x, a.pos.y, a.pos.z] for r in st[0]["A"] for a in r if a.name == "CA"])
        np.testing.assert_allclose(lab.ca, ca, atol=1e-6)
        assert lab.marginals is None and lab.provenance["temperature_K"] == 320
        assert lab.provenance["force_field"] == "CHARMM22*/TIP3P" and lab.provenance["dataset"] == "mdCATH"
    n_all = sum(1 for r in rows if r[0] == "1tifA00")
    assert labs["1tifA00"].n_residues == n_all - 2
    # resume: nothing recomputed
    res = ingest_mdcath_rmsf(d, out, domains=list(DOMAINS), progress=False)
    assert res.skipped == list(DOMAINS) and not res.ingested


# --------------------------------------------------------------------------- consumers


def _mixed_store(path):
    with LabelStore(path, "a") as store:
        for i in range(4):
            store.put(md_labels(f"md{i}", seed=i))
        store.put(synthetic_ensemble())
        store.put(rmsf_labels())
    return path


def test_dataset_and_split_use_md_only(tmp_path):
    pytest.importorskip("torch")
    from dynaprot_viz.training.dataset import LabelDataset, split_keys

    path = _mixed_store(tmp_path / "mixed.h5")
    with LabelStore(path) as store:
        s = split_keys(store, val_fraction=0.25, seed=0)
        assert sorted(s["train"] + s["val"]) == ["md0", "md1", "md2", "md3"]
        assert sorted(split_keys(store, val_fraction=0.25, kind=None)["train"]
                      + split_keys(store, val_fraction=0.25, kind=None)["val"]) == sorted(store.keys())
        with pytest.raises(InputError, match="not in the label store \\(of kind md\\): r1"):
            split_keys(store, val_keys=["r1"])
    with pytest.warns(UserWarning, match="2 chain\\(s\\) of other kinds than md left out"):
        ds = LabelDataset(path, ["md0", "e1", "r1", "md1"], crop_size=8)
    assert ds.keys == ["md0", "md1"]
    assert ds.batch(0, 0, 2)["marginals"].shape[-2:] == (3, 3)
    with pytest.raises(InputError, match="kind 'md-rmsf' holds RMSF only"):
        LabelDataset(path, ["md0"], kind=("md", "md-rmsf"))


def test_evaluate_one_kind_at_a_time(tmp_path):
    from dynaprot_viz.training.evaluate import evaluate

    path = _mixed_store(tmp_path / "mixed.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md = evaluate(path, ["anm"], n_samples=0, progress=False)
        rm = evaluate(path, ["anm"], n_samples=4, progress=False, kind="md-rmsf")
        en = evaluate(path, ["anm"], n_samples=4, progress=False, kind="experimental-ensemble")
    assert [r["key"] for r in md.rows] == ["md0", "md1", "md2", "md3"]
    assert any("2 chain(s) of other kinds skipped (1 experimental-ensemble, 1 md-rmsf)" in n for n in md.notes)
    (row,) = rm.rows
    assert row["kind"] == "md-rmsf" and np.isfinite(row["rmsf_r"]) and np.isnan(row["rmwd_var"])
    (row,) = en.rows
    assert np.isfinite(row["rmwd_var"]) and np.isfinite(row["sym_kl_var"]) and np.isfinite(row["coupling_r_k1"])
    assert "pairwise_rmsd_pred" not in row and not en.failed
    assert "md-rmsf" in rm.per_protein_csv()
    with pytest.raises(InputError, match="no chain of kind 'md-rmsf'"):
        evaluate(path, ["anm"], keys=["md0"], kind="md-rmsf", progress=False)
