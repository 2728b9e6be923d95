"""Label store: ChainLabels validation, HDF5 round trip, index, resume-safety."""

import json

import numpy as np
import pytest

pytest.importorskip("h5py")

from dynaprot_viz.core.errors import InputError, ShapeError
from dynaprot_viz.core.gaussian import coupling_from_joint, marginals_from_joint
from dynaprot_viz.core.structure import ProteinChain, Residue
from dynaprot_viz.training.store import ChainLabels, LabelStore


def make_labels(key="1abc_A", n=12, frames=60, seed=0, keep=True) -> ChainLabels:
    """Labels from a random but genuine sample covariance (so every invariant holds)."""
    rng = np.random.default_rng(seed)
    ca = np.cumsum(rng.normal(0, 2.2, (n, 3)), axis=0)
    x = ca + rng.normal(0, 0.7, (frames, n, 3)) * rng.uniform(0.3, 1.5, (1, n, 1))
    flat = x.reshape(frames, 3 * n)
    joint = np.cov(flat.T)
    marg = marginals_from_joint(joint)
    coup = coupling_from_joint(joint)
    d = np.sqrt(np.diag(coup))
    dr = x - x.mean(0)
    u = dr / np.linalg.norm(dr, axis=-1, keepdims=True)
    cos = np.einsum("tia,tja->ij", u, u) / frames
    bb = np.stack([ca - 1.0, ca, ca + 1.0], axis=1)
    return ChainLabels(
        key=key, sequence="ACDEFGHIKLMN"[:n] + "A" * max(0, n - 12),
        residues=tuple(Residue("A", i + 1, "B" if i == 3 else "", "ALA") for i in range(n)),
        backbone=bb, marginals=marg, coupling=coup, correlation=coup / np.outer(d, d),
        cosine_correlation=cos, rmsf=np.sqrt(np.trace(marg, axis1=1, axis2=2)),
        provenance={"source": f"/data/{key}", "n_frames": np.int64(frames), "force_field": None,
                    "replicas": ("R1", "R2")},
        frames=x[:7] if keep else None,
    )


def test_round_trip_exact(tmp_path):
    lab = make_labels()
    path = tmp_path / "s.h5"
    with LabelStore(path, "a") as store:
        store.put(lab)
    with LabelStore(path) as store:
        got = store.get("1abc_A")
    assert got.key == lab.key and got.sequence == lab.sequence and got.residues == lab.residues
    for name in ("backbone", "marginals", "coupling", "rmsf"):
        np.testing.assert_array_equal(getattr(got, name), getattr(lab, name))
    # correlation maps are stored in float32
    np.testing.assert_allclose(got.correlation, lab.correlation, atol=1e-6)
    np.testing.assert_allclose(got.cosine_correlation, lab.cosine_correlation, atol=1e-6)
    np.testing.assert_allclose(got.frames, lab.frames, atol=1e-5)
    assert got.provenance == {"source": "/data/1abc_A", "n_frames": 60, "force_field": None,
                              "replicas": ["R1", "R2"]}
    assert got.residues[3].icode == "B"


def test_index_lengths_metadata_and_container_protocol(tmp_path):
    path = tmp_path / "s.h5"
    with LabelStore(path, "a") as store:
        for i, n in enumerate([5, 9, 14]):
            store.put(make_labels(f"c{i}", n=n, seed=i, keep=False))
        assert len(store) == 3 and "c1" in store and "zz" not in store
        assert store.keys() == ["c0", "c1", "c2"] == list(store)
    with LabelStore(path) as store:
        assert store.lengths() == {"c0": 5, "c1": 9, "c2": 14}
        assert store.sources()["c2"] == "/data/c2"
        meta = store.metadata("c1")
        assert meta["length"] == 9 and meta["sequence"] == "ACDEFGHIK" and meta["provenance"]["n_frames"] == 60
        assert store.get("c0").frames is None
        with pytest.raises(KeyError, match="no chain 'zz'"):
            store.get("zz")


def test_put_rules(tmp_path):
    path = tmp_path / "s.h5"
    with LabelStore(path, "a") as store:
        store.put(make_labels())
        with pytest.raises(InputError, match="already in the label store"):
            store.put(make_labels())
        store.put(make_labels(n=8, seed=3), overwrite=True)
        assert store.lengths() == {"1abc_A": 8} and len(store) == 1
    with LabelStore(path) as store:
        assert store.get("1abc_A").n_residues == 8
        with pytest.raises(InputError, match="read-only"):
            store.put(make_labels("other"))


def test_to_dynamics_and_to_chain(tmp_path):
    lab = make_labels()
    dyn = lab.to_dynamics()
    assert dyn.model_name == "md"
    np.testing.assert_allclose(dyn.rmsf, lab.rmsf)
    np.testing.assert_allclose(dyn.correlation, lab.correlation, atol=1e-12)
    np.testing.assert_array_equal(dyn.mean, lab.backbone[:, 1])
    chain = lab.to_chain()
    assert isinstance(chain, ProteinChain) and chain.sequence == lab.sequence
    assert chain.residues == lab.residues and chain.source == "labels:1abc_A"
    np.testing.assert_array_equal(chain.backbone, lab.backbone)


def test_validation_errors():
    lab = make_labels()
    fields = {k: getattr(lab, k) for k in ("key", "sequence", "residues", "backbone", "marginals", "coupling",
                                           "correlation", "cosine_correlation", "rmsf", "provenance")}
    with pytest.raises(ShapeError, match=r"coupling must have shape \(12, 12\)"):
        ChainLabels(**{**fields, "coupling": np.eye(11)})
    with pytest.raises(ShapeError, match="marginals is not symmetric"):
        m = np.array(lab.marginals)
        m[0, 0, 1] += 1.0
        ChainLabels(**{**fields, "marginals": m})
    with pytest.raises(ShapeError, match="sequence has 3 letters"):
        ChainLabels(**{**fields, "sequence": "AAA"})
    with pytest.raises(InputError, match="chain key 'a/b' is not valid"):
        ChainLabels(**{**fields, "key": "a/b"})
    with pytest.raises(ShapeError, match="C-alpha coordinates are not all finite"):
        bb = np.array(lab.backbone)
        bb[2, 1, 0] = np.nan
        ChainLabels(**{**fields, "backbone": bb})
    bb = np.array(lab.backbone)
    bb[2, 0] = np.nan  # a missing N is allowed (as in ProteinChain)
    assert np.isnan(ChainLabels(**{**fields, "backbone": bb}).backbone[2, 0, 0])
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        ChainLabels(**{**fields, "provenance": {"x": object()}})
    with pytest.raises(ShapeError, match=r"frames must have shape \(K, 12, 3\)"):
        ChainLabels(**fields, frames=np.zeros((2, 5, 3)))


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        LabelStore(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match="cannot be opened as an HDF5 label store"):
        LabelStore(junk, "a")
    import h5py

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(InputError, match="not a dynaprot-viz label store"):
        LabelStore(other, "a")
    with pytest.raises(InputError, match="mode must be 'r' or 'a'"):
        LabelStore(other, "w")


def test_interrupted_put_is_repaired(tmp_path):
    """A half-written group (crash during put) is dropped and the index rebuilt on reopen."""
    import h5py

    path = tmp_path / "s.h5"
    with LabelStore(path, "a") as store:
        store.put(make_labels("good", keep=False))
        store.put(make_labels("also", seed=1, keep=False))
    with h5py.File(path, "a") as f:  # simulate: crash mid-put, and an index row lost
        f["chains"].create_group(".tmp-half")
        del f["index"]
        g = f.create_group("index")
        s = h5py.string_dtype("utf-8")
        g.create_dataset("keys", data=np.array(["good"], dtype=object), dtype=s, maxshape=(None,))
        g.create_dataset("lengths", data=np.array([12]), maxshape=(None,))
        g.create_dataset("sources", data=np.array(["/data/good"], dtype=object), dtype=s, maxshape=(None,))
    with LabelStore(path, "a") as store:
        assert store.keys() == ["good", "also"]
        assert store.lengths()["also"] == 12 and store.sources()["also"] == "/data/also"
    with h5py.File(path, "r") as f:
        assert ".tmp-half" not in f["chains"]
        assert json.loads(f["chains/good"].attrs["provenance"])["source"] == "/data/good"


def test_many_chains_index_only(tmp_path):
    """keys/lengths come from the index: 300 small chains, no array read for lengths()."""
    path = tmp_path / "many.h5"
    base = make_labels(n=4, keep=False)
    with LabelStore(path, "a") as store:
        for i in range(300):
            store.put(ChainLabels(**{**{k: getattr(base, k) for k in (
                "sequence", "residues", "backbone", "marginals", "coupling", "correlation",
                "cosine_correlation", "rmsf")}, "key": f"k{i:04d}", "provenance": {"source": str(i)}}))
    with LabelStore(path) as store:
        assert len(store) == 300 and set(store.lengths().values()) == {4}
        assert store.sources()["k0299"] == "299"
