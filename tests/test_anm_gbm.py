"""ANM-GBM (issue 12): numpy tree evaluator, ANM rescaling, equivariance, CLI, and the mdCATH split."""

import json
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import random_rotation

from dynaprot_viz.core.anm import anm_covariance
from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.gaussian import coupling_from_joint, marginals_from_joint
from dynaprot_viz.core.models import anm_gbm
from dynaprot_viz.core.models.anm_gbm import FEATURE_NAMES, TreeEnsemble, predict_anm_gbm, residue_features
from dynaprot_viz.core.predictors import get_predictor
from dynaprot_viz.core.structure import ProteinChain

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "dynaprot_viz" / "weights" / "anm-gbm.safetensors"
SPLIT = ROOT / "datasets" / "mdcath_split"
SHARED = ROOT.parent / "shared" / "data"
MDCATH_TRAIN = SHARED / "mdcath_train"
UBQ_EXAMPLE = ROOT / "examples" / "data" / "1ubi.pdb"

needs_weights = pytest.mark.skipif(not WEIGHTS.exists(), reason="anm-gbm weights not built yet")


# ---------------------------------------------------------------- numpy trees == scikit-learn


def test_numpy_trees_reproduce_sklearn_exactly():
    sklearn_ensemble = pytest.importorskip("sklearn.ensemble", reason="scikit-learn not installed (train extra)")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 6))
    y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + 0.1 * rng.standard_normal(3000)
    x[rng.random(x.shape) < 0.05] = np.nan  # the library's missing-value routing is exercised too
    model = sklearn_ensemble.HistGradientBoostingRegressor(max_iter=60, max_leaf_nodes=15, early_stopping=False,
                                                           random_state=0).fit(x, y)
    trees = TreeEnsemble.from_sklearn(model)
    assert trees.n_trees == 60 and trees.n_features == 6
    x_new = rng.standard_normal((2000, 6))
    x_new[rng.random(x_new.shape) < 0.05] = np.nan
    for data in (x, x_new):
        assert np.max(np.abs(trees.predict(data) - model.predict(data))) < 1e-9
    # the safetensors round trip keeps it exact
    again = TreeEnsemble.from_arrays(trees.to_arrays())
    np.testing.assert_array_equal(again.predict(x_new), trees.predict(x_new))


def test_tree_arrays_are_validated():
    good = dict(feature=[0, 0, 0], threshold=[0.5, 0, 0], left=[1, 0, 0], right=[2, 0, 0], value=[0, -1.0, 1.0],
                is_leaf=[False, True, True], missing_left=[True, False, False], tree_start=[0], baseline=0.25,
                n_features=1)
    trees = TreeEnsemble(**good)
    np.testing.assert_array_equal(trees.predict(np.array([[0.0], [1.0], [np.nan]])), [-0.75, 1.25, -0.75])
    with pytest.raises(InputError, match="outside its tree"):
        TreeEnsemble(**{**good, "right": [5, 0, 0]})
    with pytest.raises(InputError, match="feature outside"):
        TreeEnsemble(**{**good, "feature": [3, 0, 0]})
    with pytest.raises(InputError, match="shape"):
        trees.predict(np.zeros((2, 2)))


# ---------------------------------------------------------------- the shipped model


@needs_weights
def test_shipped_trees_give_finite_positive_rmsf_in_angstrom(ubq_chain):
    dyn = predict_anm_gbm(ubq_chain)
    assert dyn.model_name == "anm-gbm" and len(dyn) == len(ubq_chain)
    assert np.all(np.isfinite(dyn.rmsf)) and np.all(dyn.rmsf > 0)
    # absolute Å at 320 K: a folded 76-residue protein sits near 1 Å, its C-terminal tail is more mobile
    assert 0.3 < np.median(dyn.rmsf) < 3.0
    assert dyn.rmsf[-3:].mean() > np.median(dyn.rmsf)
    cfg = json.loads(WEIGHTS.with_suffix(".json").read_text())
    assert tuple(cfg["features"]) == FEATURE_NAMES
    assert cfg["trees"]["export_max_abs_diff"] < 1e-9
    assert get_predictor("anm-gbm") is predict_anm_gbm


def _anm_reference(chain):
    cov = anm_covariance(chain.ca)
    return marginals_from_joint(cov), coupling_from_joint(cov)


def test_zero_correction_reproduces_anm(ubq_chain, monkeypatch):
    """Trees whose output is ln RMSF^ANM give ANM's own Gaussian back."""
    marg, coup = _anm_reference(ubq_chain)
    rmsf_anm = np.sqrt(np.trace(marg, axis1=1, axis2=2))

    class Identity:
        n_features = len(FEATURE_NAMES)

        def predict(self, x):
            assert x.shape == (len(ubq_chain), len(FEATURE_NAMES))
            return np.log(rmsf_anm)

    monkeypatch.setattr(anm_gbm, "load_anm_gbm", lambda weights=None: (Identity(), {}))
    dyn = anm_gbm.predict_anm_gbm(ubq_chain)
    np.testing.assert_allclose(dyn.marginals, marg, rtol=0, atol=1e-12 * np.abs(marg).max())
    np.testing.assert_allclose(dyn.coupling, coup, rtol=0, atol=1e-12 * np.abs(coup).max())


def test_rescaling_keeps_anm_correlation_and_shapes(ubq_chain):
    marg, coup = _anm_reference(ubq_chain)
    target = np.random.default_rng(3).uniform(0.4, 3.0, len(ubq_chain))
    dyn = anm_gbm.anm_gbm_from_anm(ubq_chain, marg, coup, np.log(target))
    np.testing.assert_allclose(dyn.rmsf, target, rtol=1e-12)
    ref_corr = coup / np.sqrt(np.outer(np.diag(coup), np.diag(coup)))
    np.testing.assert_allclose(dyn.correlation, ref_corr, atol=1e-12)
    w = np.linalg.eigvalsh(dyn.coupling)
    assert w.min() >= -1e-10 * w.max()  # PSD
    # each marginal is a positive multiple of ANM's: same shape and orientation
    ratio = dyn.marginals / marg
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1, :1], ratio.shape), rtol=1e-9)


@needs_weights
def test_rotation_and_translation_equivariance(ubq_chain):
    rng = np.random.default_rng(11)
    rot, shift = random_rotation(rng), rng.normal(scale=20.0, size=3)
    moved = replace(ubq_chain, backbone=ubq_chain.backbone @ rot.T + shift, _frames={})
    a, b = predict_anm_gbm(ubq_chain), predict_anm_gbm(moved)
    np.testing.assert_allclose(b.marginals, rot @ a.marginals @ rot.T, atol=1e-9 * a.marginals.max())
    np.testing.assert_allclose(b.coupling, a.coupling, atol=1e-9 * a.coupling.max())
    np.testing.assert_allclose(b.rmsf, a.rmsf, rtol=1e-9)


def test_features_are_invariant_and_finite(ubq_chain):
    rng = np.random.default_rng(5)
    rot = random_rotation(rng)
    msf = np.trace(_anm_reference(ubq_chain)[0], axis1=1, axis2=2)
    x = residue_features(ubq_chain.ca, ubq_chain.sequence, msf)
    y = residue_features(ubq_chain.ca @ rot.T + 7.0, ubq_chain.sequence, msf)
    assert x.shape == (len(ubq_chain), len(FEATURE_NAMES)) and np.all(np.isfinite(x))
    np.testing.assert_allclose(x, y, atol=1e-9)
    # a chain break changes the segment-end distance of the residues beside it
    broken = ubq_chain.ca.copy()
    broken[40:] += np.array([0.0, 0.0, 6.0])
    z = residue_features(broken, ubq_chain.sequence, msf)
    col = FEATURE_NAMES.index("seq_from_segment_end")
    assert z[39, col] == 0.0 and z[40, col] == 0.0 and x[40, col] > 0
    # window features: plain means / counts over the cut window, also on chains shorter than it
    base = anm_gbm.base_features(ubq_chain.ca, ubq_chain.sequence, msf)
    np.testing.assert_array_equal(x[:, :base.shape[1]], base)
    src = anm_gbm.BASE_FEATURE_NAMES.index("wcn_relative")
    for i in (0, 3, 40, len(msf) - 1):
        lo, hi = max(0, i - 5), min(len(msf), i + 6)
        assert x[i, FEATURE_NAMES.index("wcn_relative_mean5")] == pytest.approx(base[lo:hi, src].mean(), rel=1e-12)
        lo, hi = max(0, i - 3), min(len(msf), i + 4)
        assert x[i, FEATURE_NAMES.index("gly_count7")] == ubq_chain.sequence[lo:hi].count("G")
    short = anm_gbm.window_features(base[:4])
    assert short.shape == (4, len(FEATURE_NAMES) - base.shape[1]) and np.all(np.isfinite(short))
    with pytest.raises(InputError, match="positive ANM"):
        residue_features(ubq_chain.ca, ubq_chain.sequence, np.where(np.arange(len(msf)) == 3, np.nan, msf))


@needs_weights
def test_ca_only_chain_gives_the_same_prediction(ubq_chain):
    bb = ubq_chain.backbone.copy()
    bb[:, 0] = np.nan
    bb[:, 2] = np.nan
    ca_only = ProteinChain(ubq_chain.source, ubq_chain.residues, ubq_chain.sequence, bb, ubq_chain.bfactors)
    a, b = predict_anm_gbm(ubq_chain), predict_anm_gbm(ca_only)
    np.testing.assert_array_equal(a.marginals, b.marginals)


def test_missing_weights_are_one_line(ubq_chain, tmp_path):
    with pytest.raises(InputError, match="not found"):
        predict_anm_gbm(ubq_chain, weights=tmp_path / "none.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    bad.with_suffix(".json").write_text(json.dumps({"features": list(FEATURE_NAMES)}))
    with pytest.raises(InputError, match="unreadable"):
        predict_anm_gbm(ubq_chain, weights=bad)


@needs_weights
def test_cli_predict_with_anm_gbm(tmp_path):
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "dynaprot_viz.cli", "predict", str(UBQ_EXAMPLE), "--model",
                          "anm-gbm", "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    npz = np.load(out / "1ubi.dynamics.npz")
    assert str(npz["model_name"]) == "anm-gbm"
    assert np.all(np.sqrt(np.trace(npz["marginals"], axis1=1, axis2=2)) > 0)
    assert (out / "1ubi.annotated.pdb").exists()


# ---------------------------------------------------------------- the held-out split


def _read(name):
    return [ln.strip() for ln in (SPLIT / name).read_text().splitlines() if ln.strip()]


def test_split_files_are_disjoint_and_large_enough():
    train, held = _read("train.txt"), _read("heldout.txt")
    excluded = [ln.split("\t")[0] for ln in _read("excluded.txt")]
    assert len(held) >= 100 and len(train) >= 500
    assert len(set(train)) == len(train) and len(set(held)) == len(held)
    assert not set(train) & set(held) and not set(excluded) & (set(train) | set(held))
    meta = json.loads((SPLIT / "split.json").read_text())
    fam = meta["family_of"]
    # whole families on one side: no held-out family has a training member
    assert not {fam[d] for d in held} & {fam[d] for d in train}
    assert meta["max_identity_heldout_vs_train_pct"] < 30.0


@pytest.mark.skipif(not MDCATH_TRAIN.is_dir(), reason="../shared/data/mdcath_train not present")
def test_sampled_heldout_train_pairs_are_below_30_percent_identity():
    """A seeded sample of 400 held-out x train pairs realigned with gemmi (the full 132k-pair
    check is what make_split.py did; split.json records its maximum)."""
    sys.path.insert(0, str(SPLIT))
    try:
        import make_split
    finally:
        sys.path.remove(str(SPLIT))
    seqs = make_split.mdcath_train_sequences(MDCATH_TRAIN)
    train, held = _read("train.txt"), _read("heldout.txt")
    rnd = random.Random(0)
    pairs = [(rnd.choice(held), rnd.choice(train)) for _ in range(400)]
    ids = [make_split.identity(seqs[a], seqs[b]) for a, b in pairs]
    assert max(ids) < make_split.THRESHOLD
    # and the measure does see homologs: a domain against itself with a tenth of it mutated
    s = seqs[held[0]]
    mutated = "".join("A" if i % 10 == 0 else c for i, c in enumerate(s))
    assert make_split.identity(s, mutated) > 80.0
