"""Tests for dynaprot_viz.core.metrics and dynaprot_viz.core.superpose (seeded, property-based)."""

import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import scipy.stats
from helpers import random_rotation
from hypothesis import given, settings
from hypothesis import strategies as st

from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.metrics import (
    _true_frames,
    bandwise_coupling_pearson,
    ensemble_rmsf,
    joint_pca_w2,
    md_pca_w2,
    pairwise_rmsd,
    rmsf_pearson,
    rmsf_r_global,
    rmsf_r_per_target,
    rmwd_variance,
    summarize,
    sym_kl_variance,
    transient_contacts_jaccard,
    weak_contacts_jaccard,
)
from dynaprot_viz.core.superpose import kabsch, superpose

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)
seeds = st.integers(0, 2**31 - 1)


def random_spd(rng, n, scale=1.0):
    """n random SPD 3x3 matrices (Å²), condition numbers up to ~100."""
    a = rng.standard_normal((n, 3, 3))
    return scale * (a @ np.swapaxes(a, 1, 2) + 0.05 * np.eye(3))


def toy_ensemble(rng, k=20, n=30, noise=0.7):
    """A compact random chain (N, 3) Å plus K noisy, randomly rotated and shifted copies."""
    steps = rng.standard_normal((n, 3))
    steps = 3.8 * steps / np.linalg.norm(steps, axis=1, keepdims=True)
    ca = np.cumsum(steps, axis=0) * 0.6  # folded-ish: many pairs within 8 Å
    frames = []
    for _ in range(k):
        x = ca + noise * rng.standard_normal((n, 3))
        frames.append(x @ random_rotation(rng).T + rng.normal(0, 10, 3))
    return ca, np.array(frames)


# ------------------------------------------------------------------------------ superpose


@SETTINGS
@given(seeds)
def test_superpose_undoes_rotation_and_translation(seed):
    rng = np.random.default_rng(seed)
    target = rng.normal(0, 10, (25, 3))
    rots = np.array([random_rotation(rng) for _ in range(4)])
    moved = np.einsum("kij,nj->kni", rots, target) + rng.normal(0, 20, (4, 1, 3))
    np.testing.assert_allclose(superpose(moved, target), np.broadcast_to(target, moved.shape), atol=1e-9)
    np.testing.assert_allclose(superpose(moved[0], target), target, atol=1e-9)
    rot, trans = kabsch(moved[1], target)
    np.testing.assert_allclose(rot, rots[1].T, atol=1e-9)
    assert np.linalg.det(rot) == pytest.approx(1.0)


def test_superpose_never_reflects_and_mask_fits_subset():
    rng = np.random.default_rng(0)
    target = rng.normal(0, 5, (12, 3))
    mirrored = target * np.array([1.0, 1.0, -1.0])
    rot, _ = kabsch(mirrored, target)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    # fit on the first 8 atoms only; the rest were moved elsewhere and must not disturb the fit
    rot0 = random_rotation(rng)
    mobile = target @ rot0.T + 3.0
    mobile[8:] += rng.normal(0, 30, (4, 3))
    mask = np.arange(12) < 8
    out = superpose(mobile, target, mask=mask)
    np.testing.assert_allclose(out[:8], target[:8], atol=1e-9)


def test_superpose_rejects_bad_input():
    x = np.zeros((2, 5, 3))
    with pytest.raises(InputError, match="mobile: expected shape"):
        superpose(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(InputError, match="target: expected shape"):
        superpose(x, np.zeros((4, 3)))
    bad = x.copy()
    bad[0, 1, 2] = np.nan
    with pytest.raises(InputError, match="mobile: coordinates must be finite"):
        superpose(bad, np.zeros((5, 3)))
    with pytest.raises(InputError, match="mask: at least 3 atoms"):
        superpose(x, np.zeros((5, 3)), mask=np.array([True, True, False, False, False]))


# ------------------------------------------------------------------------ Gaussian metrics


def test_rmsf_pearson_matches_scipy_and_handles_constant():
    rng = np.random.default_rng(1)
    a, b = rng.random(40), rng.random(40)
    assert rmsf_pearson(a, b) == pytest.approx(scipy.stats.pearsonr(a, b)[0], abs=1e-12)
    assert rmsf_pearson(a, a) == pytest.approx(1.0)
    assert math.isnan(rmsf_pearson(a, np.ones(40)))


def test_rmsf_pearson_rejects_bad_input():
    with pytest.raises(InputError, match="rmsf_true: expected shape"):
        rmsf_pearson(np.ones(5), np.ones(6))
    with pytest.raises(InputError, match="rmsf_pred: values must be finite"):
        rmsf_pearson(np.array([1.0, np.nan, 2.0]), np.ones(3))
    with pytest.raises(InputError, match="rmsf_pred: expected a 1-D array"):
        rmsf_pearson(np.ones((3, 3)), np.ones(3))


@SETTINGS
@given(seeds, st.integers(1, 40))
def test_rmwd_and_symkl_zero_symmetric_nonnegative(seed, n):
    rng = np.random.default_rng(seed)
    s0, s1 = random_spd(rng, n), random_spd(rng, n, scale=rng.uniform(0.1, 10))
    assert rmwd_variance(s0, s0) == pytest.approx(0.0, abs=1e-6)
    assert sym_kl_variance(s0, s0) == pytest.approx(0.0, abs=1e-9)
    d01, d10 = rmwd_variance(s0, s1), rmwd_variance(s1, s0)
    k01, k10 = sym_kl_variance(s0, s1), sym_kl_variance(s1, s0)
    assert d01 >= 0 and k01 >= 0
    assert d01 == pytest.approx(d10, rel=1e-7, abs=1e-9)
    assert k01 == pytest.approx(k10, rel=1e-9)


@SETTINGS
@given(seeds, st.integers(1, 20))
def test_rmwd_closed_form_for_commuting_matrices(seed, n):
    # S0 = R D0 R^T, S1 = R D1 R^T commute: W2^2 = sum_k (sqrt(d0_k) - sqrt(d1_k))^2
    rng = np.random.default_rng(seed)
    d0, d1 = rng.uniform(0.0, 5.0, (n, 3)), rng.uniform(0.0, 5.0, (n, 3))
    rots = np.array([random_rotation(rng) for _ in range(n)])
    s0 = rots @ (d0[:, :, None] * np.swapaxes(rots, 1, 2))
    s1 = rots @ (d1[:, :, None] * np.swapaxes(rots, 1, 2))
    expected = math.sqrt(((np.sqrt(d0) - np.sqrt(d1)) ** 2).sum(axis=1).mean())
    assert rmwd_variance(s0, s1) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    diag0, diag1 = np.zeros((n, 3, 3)), np.zeros((n, 3, 3))
    diag0[:, range(3), range(3)], diag1[:, range(3), range(3)] = d0, d1
    assert rmwd_variance(diag0, diag1) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_rmwd_matches_scipy_sqrtm_formula():
    rng = np.random.default_rng(2)
    s0, s1 = random_spd(rng, 15), random_spd(rng, 15, 3.0)
    terms = []
    for a, b in zip(s0, s1):
        rb = scipy.linalg.sqrtm(b).real
        terms.append(np.trace(a + b - 2 * scipy.linalg.sqrtm(rb @ a @ rb).real))
    assert rmwd_variance(s0, s1) == pytest.approx(math.sqrt(np.mean(terms)), rel=1e-8)


@SETTINGS
@given(seeds, st.integers(1, 30))
def test_sym_kl_matches_direct_formula(seed, n):
    rng = np.random.default_rng(seed)
    s0, s1 = random_spd(rng, n), random_spd(rng, n, scale=rng.uniform(0.1, 10))
    direct = np.mean(
        [0.25 * (np.trace(np.linalg.inv(b) @ a) + np.trace(np.linalg.inv(a) @ b) - 6) for a, b in zip(s0, s1)]
    )
    assert sym_kl_variance(s0, s1) == pytest.approx(direct, rel=1e-8)


def test_gaussian_metrics_reject_bad_input():
    good = random_spd(np.random.default_rng(3), 4)
    with pytest.raises(InputError, match=r"marg_pred: expected shape \(N, 3, 3\)"):
        rmwd_variance(np.ones((4, 3)), good)
    with pytest.raises(InputError, match="marg_true: expected shape"):
        sym_kl_variance(good, good[:3])
    nan = good.copy()
    nan[1, 0, 0] = np.nan
    with pytest.raises(InputError, match="marg_true: values must be finite"):
        rmwd_variance(good, nan)
    asym = good.copy()
    asym[2, 0, 1] += 1.0
    with pytest.raises(InputError, match="marg_pred: matrix 2 is not symmetric"):
        rmwd_variance(asym, good)
    neg = good.copy()
    neg[0] = -np.eye(3)
    with pytest.raises(InputError, match="marg_pred: matrix 0 is not positive semi-definite"):
        rmwd_variance(neg, good)
    singular = good.copy()
    singular[3] = np.diag([1.0, 1.0, 0.0])
    assert rmwd_variance(singular, good) > 0  # PSD is fine for W2
    with pytest.raises(InputError, match="marg_true: matrix 3 is not positive definite"):
        sym_kl_variance(good, singular)


def _dccm(rng, n):
    a = rng.standard_normal((n, n + 5))
    c = a @ a.T
    d = np.sqrt(np.diag(c))
    return c / np.outer(d, d)


def test_bandwise_identical_is_one_and_matches_pearsonr_on_hand_band():
    rng = np.random.default_rng(4)
    n = 30
    a, b = _dccm(rng, n), _dccm(rng, n)
    same = bandwise_coupling_pearson(a, a, max_band=10)
    assert same.shape == (10,)
    np.testing.assert_allclose(same, 1.0, atol=1e-12)
    out = bandwise_coupling_pearson(a, b, max_band=50)
    assert out.shape == (50,)
    for k in (1, 3, 7, 29):
        xs, ys = [], []
        for i in range(n):
            for j in range(i + 1, n):
                if j - i <= k:
                    xs.append(a[i, j])
                    ys.append(b[i, j])
        assert out[k - 1] == pytest.approx(scipy.stats.pearsonr(xs, ys)[0], abs=1e-12)
    np.testing.assert_array_equal(out[29:], out[28])  # no entries beyond band N-1


def test_bandwise_nan_for_small_or_constant_bands():
    rng = np.random.default_rng(5)
    a, b = _dccm(rng, 3), _dccm(rng, 3)
    out = bandwise_coupling_pearson(a, b, max_band=3)
    assert math.isnan(out[0])  # band 1 of a 3x3 has 2 entries
    assert not math.isnan(out[1])
    const = np.full((6, 6), 0.3)
    assert np.all(np.isnan(bandwise_coupling_pearson(const, _dccm(rng, 6), max_band=4)))


def test_bandwise_rejects_bad_input():
    a = np.eye(5)
    with pytest.raises(InputError, match="corr_pred: expected a square"):
        bandwise_coupling_pearson(np.ones((5, 4)), a)
    with pytest.raises(InputError, match="corr_true: expected shape"):
        bandwise_coupling_pearson(a, np.eye(6))
    bad = a.copy()
    bad[0, 3] = np.nan
    with pytest.raises(InputError, match="corr_true: values must be finite"):
        bandwise_coupling_pearson(a, bad)
    with pytest.raises(InputError, match="max_band: expected an integer >= 1"):
        bandwise_coupling_pearson(a, a, max_band=0)


# --------------------------------------------------------------------- ensemble metrics


def test_pairwise_rmsd_identical_and_rigid_copies_are_zero():
    rng = np.random.default_rng(6)
    ca, _ = toy_ensemble(rng, k=2)
    same = np.repeat(ca[None], 5, axis=0)
    assert pairwise_rmsd(same) == pytest.approx(0.0, abs=1e-12)
    moved = np.array([ca @ random_rotation(rng).T + rng.normal(0, 15, 3) for _ in range(5)])
    assert pairwise_rmsd(moved) == pytest.approx(0.0, abs=1e-6)
    assert pairwise_rmsd(moved, include_self=False) == pytest.approx(0.0, abs=1e-6)


@SETTINGS
@given(seeds)
def test_pairwise_rmsd_matches_explicit_pairs(seed):
    rng = np.random.default_rng(seed)
    ca, ens = toy_ensemble(rng, k=int(rng.integers(2, 9)), n=15)
    k = len(ens)
    x = superpose(ens, ca)
    d = np.array([[math.sqrt(((x[a] - x[b]) ** 2).sum(axis=1).mean()) for b in range(k)] for a in range(k)])
    assert pairwise_rmsd(ens, ref=ca) == pytest.approx(d.mean(), rel=1e-9)  # AlphaFlow: K x K with a = b
    assert pairwise_rmsd(ens, ref=ca, include_self=False) == pytest.approx(d.sum() / (k * (k - 1)), rel=1e-9)
    # rotating the input frames changes nothing
    rotated = ens @ random_rotation(rng).T
    assert pairwise_rmsd(rotated, ref=ca) == pytest.approx(pairwise_rmsd(ens, ref=ca), rel=1e-9)


@SETTINGS
@given(seeds)
def test_ensemble_rmsf_is_rigid_motion_invariant(seed):
    rng = np.random.default_rng(seed)
    ca, ens = toy_ensemble(rng, k=10, n=20)
    r = ensemble_rmsf(ens, ref=ca)
    assert r.shape == (20,) and np.all(r >= 0)
    moved = ens @ random_rotation(rng).T + rng.normal(0, 5, 3)
    np.testing.assert_allclose(ensemble_rmsf(moved, ref=ca), r, rtol=1e-9, atol=1e-12)
    rigid = np.array([ca @ random_rotation(rng).T for _ in range(4)])
    np.testing.assert_allclose(ensemble_rmsf(rigid), 0.0, atol=1e-6)


@pytest.fixture(scope="module")
def adk_ca():
    """C-alpha of the adenylate kinase test trajectory (MDAnalysisTests PSF/DCD, 98 frames), Å."""
    mda = pytest.importorskip("MDAnalysis")
    datafiles = pytest.importorskip("MDAnalysisTests.datafiles")
    u = mda.Universe(datafiles.PSF, datafiles.DCD)
    ca = u.select_atoms("name CA")
    return np.array([ca.positions.copy() for _ in u.trajectory], dtype=np.float64)


def test_ensemble_rmsf_matches_mdtraj_on_real_md(adk_ca):
    md = pytest.importorskip("mdtraj")
    top = md.Topology()
    chain = top.add_chain()
    for _ in range(adk_ca.shape[1]):
        top.add_atom("CA", md.element.carbon, top.add_residue("ALA", chain))
    traj = md.Trajectory(adk_ca / 10.0, top)  # nm
    expected = md.rmsf(traj, traj, 0) * 10.0  # AlphaFlow: mdtraj.rmsf(traj, ref) * 10
    np.testing.assert_allclose(ensemble_rmsf(adk_ca), expected, rtol=1e-4, atol=1e-4)


def test_ensemble_metrics_on_real_md(adk_ca):
    first, second = adk_ca[:49], adk_ca[49:98]
    ref = adk_ca[0]
    rmsd_first = pairwise_rmsd(first, ref=ref)
    assert 0.1 < rmsd_first < 20.0
    w_md = md_pca_w2(second, first, ref=ref)
    w_joint = joint_pca_w2(second, first, ref=ref)
    assert w_md > 0 and w_joint > 0 and math.isfinite(w_md) and math.isfinite(w_joint)
    # the closed-to-open transition: halves of the trajectory differ more than a half with itself
    assert md_pca_w2(first, first, ref=ref, seed=None) == pytest.approx(0.0, abs=1e-9)
    assert w_md > md_pca_w2(first[:48:2], first[1:48:2], ref=ref, seed=None)
    for f in (weak_contacts_jaccard, transient_contacts_jaccard):
        j = f(second, first, ref)
        assert math.isnan(j) or 0.0 <= j <= 1.0
    rmsf_a, rmsf_b = ensemble_rmsf(first, ref), ensemble_rmsf(second, ref)
    assert -1.0 <= rmsf_pearson(rmsf_a, rmsf_b) <= 1.0


def test_rmsf_r_global_and_per_target():
    rng = np.random.default_rng(7)
    preds = [rng.random(n) for n in (10, 25, 40)]
    trues = [p + 0.3 * rng.random(len(p)) for p in preds]
    g = rmsf_r_global(preds, trues)
    assert g == pytest.approx(scipy.stats.pearsonr(np.concatenate(preds), np.concatenate(trues))[0], abs=1e-12)
    per = rmsf_r_per_target(preds, trues)
    np.testing.assert_allclose(per, [scipy.stats.pearsonr(p, t)[0] for p, t in zip(preds, trues)], atol=1e-12)
    # ensembles are accepted in place of RMSF profiles
    _, ens = toy_ensemble(rng, k=6, n=12)
    assert rmsf_r_per_target([ens], [ensemble_rmsf(ens)])[0] == pytest.approx(1.0)
    with pytest.raises(InputError, match="trues: expected 3 targets"):
        rmsf_r_global(preds, trues[:2])
    with pytest.raises(InputError, match=r"trues\[1\]: expected 25 residues"):
        rmsf_r_per_target(preds, [trues[0], trues[2], trues[1]])
    with pytest.raises(InputError, match="preds: expected a non-empty list"):
        rmsf_r_global([], [])
    with pytest.raises(InputError, match=r"preds\[0\]: coordinates must be finite"):
        rmsf_r_global([np.full((3, 5, 3), np.nan)], [np.ones(5)])


def _brute_w2(a, b, n):
    c = ((a[:, None] - b[None]) ** 2).sum(-1) / n
    return math.sqrt(min(np.mean([c[i, p[i]] for i in range(len(a))]) for p in itertools.permutations(range(len(b)))))


@SETTINGS
@given(seeds)
def test_pca_w2_matches_brute_force_and_is_zero_for_identical(seed):
    rng = np.random.default_rng(seed)
    ca, true = toy_ensemble(rng, k=6, n=10)
    _, pred = toy_ensemble(rng, k=6, n=10, noise=1.5)
    assert md_pca_w2(true, true, ref=ca, seed=None) == pytest.approx(0.0, abs=1e-9)
    assert joint_pca_w2(true, true, ref=ca, seed=None) == pytest.approx(0.0, abs=1e-9)
    # independent PCA (eigh of the covariance) + all 6! assignments
    t, p = superpose(true, ca).reshape(6, -1), superpose(pred, ca).reshape(6, -1)
    for fit, func in ((t, md_pca_w2), (np.concatenate([t, p]), joint_pca_w2)):
        centre = fit.mean(0)
        _, vecs = np.linalg.eigh(np.cov((fit - centre).T))
        comps = vecs[:, ::-1][:, :2]
        expected = _brute_w2((t - centre) @ comps, (p - centre) @ comps, 10)
        assert func(pred, true, ref=ca, seed=None) == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_alphaflow_resampling_is_reproduced():
    np.random.seed(137)
    rand1 = np.random.randint(0, 3000, 250)
    np.testing.assert_array_equal(_true_frames(3000, 250, 137), rand1)
    np.testing.assert_array_equal(_true_frames(7, 7, None), np.arange(7))
    with pytest.raises(InputError, match="true_ens: with seed=None"):
        _true_frames(8, 7, None)


def test_pca_w2_rejects_bad_input():
    rng = np.random.default_rng(8)
    ca, ens = toy_ensemble(rng, k=5, n=10)
    with pytest.raises(InputError, match="true_ens: expected 10 atoms"):
        md_pca_w2(ens, ens[:, :9])
    with pytest.raises(InputError, match="n_components: at most"):
        md_pca_w2(ens, ens, n_components=6)
    with pytest.raises(InputError, match="n_components: expected an integer"):
        joint_pca_w2(ens, ens, n_components=0)
    bad = ens.copy()
    bad[2, 3, 1] = np.inf
    with pytest.raises(InputError, match="pred_ens: coordinates must be finite"):
        md_pca_w2(bad, ens)
    with pytest.raises(InputError, match=r"ref: expected shape \(10, 3\)"):
        joint_pca_w2(ens, ens, ref=ca[:5])
    with pytest.raises(InputError, match="true_ens: expected shape"):
        md_pca_w2(ens, ens[:1])


def test_contact_jaccard_identical_is_one_and_hand_case():
    rng = np.random.default_rng(9)
    ca, ens = toy_ensemble(rng, k=40, n=30, noise=1.5)
    assert weak_contacts_jaccard(ens, ens, ca, seed=None) == pytest.approx(1.0)
    assert transient_contacts_jaccard(ens, ens, ca, seed=None) == pytest.approx(1.0)
    # hand-built: 4 atoms on a line; reference contacts (< 8 Å): 0-1, 1-2, 2-3
    ref = np.array([[0.0, 0, 0], [5.0, 0, 0], [10.0, 0, 0], [15.0, 0, 0]])
    far = ref.copy()
    far[3, 0] = 30.0  # breaks 2-3
    close = ref.copy()
    close[3, 0] = 11.0  # forms 1-3 (6 Å), keeps 2-3
    # pred: 2-3 broken in 1/5 frames (weak), 1-3 formed in 1/5 (transient)
    pred = np.array([ref, ref, ref, far, close])
    # true: 2-3 broken in 1/5 (weak), nothing transient
    true = np.array([ref, ref, ref, ref, far])
    assert weak_contacts_jaccard(pred, true, ref, seed=None) == pytest.approx(1.0)
    assert transient_contacts_jaccard(pred, true, ref, seed=None) == pytest.approx(0.0)
    # exactly 10% broken is not weak (AlphaFlow: probability < 0.9)
    ten = np.array([ref] * 9 + [far])
    assert math.isnan(weak_contacts_jaccard(ten, ten, ref, seed=None))
    assert weak_contacts_jaccard(ten, ten, ref, seed=None, fraction=0.05) == pytest.approx(1.0)


def test_contact_jaccard_rejects_bad_input():
    rng = np.random.default_rng(10)
    ca, ens = toy_ensemble(rng, k=4, n=8)
    with pytest.raises(InputError, match=r"ref_ca: expected shape \(8, 3\)"):
        weak_contacts_jaccard(ens, ens, ca[:7])
    with pytest.raises(InputError, match="cutoff: expected a positive distance"):
        transient_contacts_jaccard(ens, ens, ca, cutoff=-1.0)
    with pytest.raises(InputError, match="fraction: expected a number in"):
        weak_contacts_jaccard(ens, ens, ca, fraction=1.5)
    with pytest.raises(InputError, match="pred_ens: expected shape"):
        weak_contacts_jaccard(ens[0], ens, ca)


# --------------------------------------------------------------------------- aggregation


def test_summarize_ignores_nan():
    s = summarize([1.0, np.nan, 2.0, 3.0, 4.0, np.nan])
    assert s == {"median": 2.5, "q25": 1.75, "q75": 3.25, "mean": 2.5, "n": 4}
    empty = summarize([np.nan])
    assert empty["n"] == 0 and math.isnan(empty["median"])
    with pytest.raises(InputError, match="values: expected a 1-D array"):
        summarize(np.ones((2, 2)))


def test_pca_axes_many_frames_path_matches_svd():
    # more frames than 3N coordinates takes the scatter-matrix path; compare with a plain SVD
    rng = np.random.default_rng(11)
    ca, true = toy_ensemble(rng, k=60, n=5, noise=1.0)
    _, pred = toy_ensemble(rng, k=60, n=5, noise=2.0)
    t, p = superpose(true, ca).reshape(60, -1), superpose(pred, ca).reshape(60, -1)
    centre = t.mean(0)
    comps = np.linalg.svd(t - centre, full_matrices=False)[2][:3]
    pt, pp = (t - centre) @ comps.T, (p - centre) @ comps.T
    cost2 = ((pt[:, None] - pp[None]) ** 2).sum(-1) / 5
    r, c = scipy.optimize.linear_sum_assignment(cost2)
    expected = math.sqrt(cost2[r, c].mean())
    assert md_pca_w2(pred, true, n_components=3, ref=ca, seed=None) == pytest.approx(expected, rel=1e-8)
