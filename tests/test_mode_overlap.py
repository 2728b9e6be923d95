"""Top-mode overlap of a predicted Dynamics with an experimental ensemble's first principal
component (training/ensembles.py): exact constructions (overlap 1, |cos θ|, degenerate
eigenspaces), invariance to sign, rotation and conformers' rigid placement, one-line errors,
the chance level, and one real DANCE test collection through ANM."""

from pathlib import Path

import numpy as np
import pytest

from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.gaussian import Dynamics
from dynaprot_viz.core.predictors import get_predictor
from dynaprot_viz.core.structure import Residue
from dynaprot_viz.training.ensembles import (ConformerCollection, dance_mode_overlap_cases, ensemble_top_pc,
                                             list_collections, mode_overlap_case, random_overlap_expectation,
                                             read_collection, top_mode_overlap)

from helpers import random_rotation

DANCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "dance"
needs_dance = pytest.mark.skipif(not (DANCE / "coords").is_dir(),
                                 reason="shared data ../shared/data/dance absent (DANCE conformer collections)")
#: a DANCE test-split collection: 6 conformers, 33 positions, all present in every conformer
TINY = "2KIXA_6PVTA"


def assert_same_up_to_sign(a, b, atol=1e-8):
    sign = np.sign(np.sum(a * b))
    np.testing.assert_allclose(sign * a, b, atol=atol)


def collection(coords, mask, cid="syn") -> ConformerCollection:
    k, p = mask.shape
    seqs = tuple("".join("A" if m else "-" for m in row) for row in mask)
    return ConformerCollection(id=cid, coords=np.where(mask[..., None], coords, 0.0), mask=mask,
                               conformer_ids=tuple(f"1ABC{chr(65 + c)}" for c in range(k)), alignment=seqs)


def stretch_collection():
    """Two mirrored halves pulled apart along x: the displacement field s_i e_x (s_i = ±1)
    has no rigid-body part, so superposition is the identity and the PC is s ⊗ e_x / sqrt(n).

    12 positions (6 mirrored pairs); pair (4, 10) is missing in conformer 2 (the fit on the
    remaining pairs keeps the symmetry) and so is not in the PC; pair (5, 11) is missing in
    conformers 3..5, leaving it in 3 conformers (a label position, not a PC position)."""
    rng = np.random.default_rng(0)
    half = np.column_stack([rng.uniform(3, 9, 6), rng.uniform(-6, 6, 6), rng.uniform(-6, 6, 6)])
    ref = np.vstack([half, half * [-1, 1, 1]])  # [12, 3] mirrored across x = 0
    s = np.r_[np.ones(6), -np.ones(6)]
    t = np.array([0.0, 0.4, 0.9, 1.3, 2.0, 2.6])  # stretch of each conformer, Å
    x = ref[None] + t[:, None, None] * s[None, :, None] * np.array([1.0, 0, 0])  # [K, 12, 3]
    mask = np.ones((6, 12), bool)
    mask[2, [4, 10]] = False
    mask[3:, [5, 11]] = False
    return collection(x, mask), s


def stretch_dynamics(ca, s, direction, eps=0.05, amp=1.0, isotropic=False):
    """Σ_i = eps I + amp² d d^T (or (eps + amp²) I), C~_ij = s_i s_j: joint's top eigenvector
    is s ⊗ d / sqrt(N) (three-fold degenerate s ⊗ e_a when isotropic)."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    n = len(ca)
    sig = (eps + amp**2) * np.eye(3) if isotropic else eps * np.eye(3) + amp**2 * np.outer(d, d)
    marg = np.repeat(sig[None], n, axis=0)
    coup = np.trace(sig) / 3 * np.outer(s, s)
    return Dynamics(mean=ca, marginals=marg, coupling=coup,
                    residues=tuple(Residue("A", i + 1, "", "ALA") for i in range(n)), isotropic=isotropic)


def bent_chain_collection(seed=1, k=8, n=40):
    """A helix-like C-alpha trace whose two halves hinge by random angles, with noise, some
    missing positions, and each non-reference conformer moved by its own rigid motion."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * np.deg2rad(100)
    ref = np.column_stack([2.3 * np.cos(t), 2.3 * np.sin(t), 1.5 * np.arange(n)])
    x = np.empty((k, n, 3))
    for c in range(k):
        a = 0.0 if c == 0 else rng.normal(0, 0.25)
        rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        hinge = ref[n // 2]
        xc = ref.copy()
        xc[n // 2:] = (ref[n // 2:] - hinge) @ rot.T + hinge
        if c:
            xc = xc + rng.normal(0, 0.3, xc.shape)
            xc = xc @ random_rotation(rng).T + rng.normal(0, 10, 3)
        x[c] = xc
    mask = np.ones((k, n), bool)
    mask[3, :2] = False
    mask[5, 30] = False
    mask[6, 37:] = False
    return collection(x, mask, "bent")


# --------------------------------------------------------------------------- exact constructions


def test_identity_overlap_one_and_pc_mapping():
    col, s = stretch_collection()
    positions, pc, frac = ensemble_top_pc(col)
    keep = np.array([0, 1, 2, 3, 6, 7, 8, 9])  # present in every conformer
    np.testing.assert_array_equal(positions, keep)
    np.testing.assert_allclose(pc, s[keep, None] * [1.0, 0, 0] / np.sqrt(8), atol=1e-10)
    assert frac == pytest.approx(1.0)

    case = mode_overlap_case(col)
    assert len(case.chain) == 12  # reference present and >= 3 conformers: every position
    np.testing.assert_array_equal(case.index, keep)
    np.testing.assert_allclose(case.chain.ca[case.index], col.coords[0, keep])
    dyn = stretch_dynamics(case.chain.ca, s, [1, 0, 0])
    assert case.overlap(dyn) == pytest.approx(1.0, abs=1e-9)
    assert top_mode_overlap(dyn, case.pc, case.index) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("theta", [0.3, 0.9, np.pi / 2])
def test_overlap_is_cosine_of_the_angle(theta):
    col, s = stretch_collection()
    case = mode_overlap_case(col)
    dyn = stretch_dynamics(case.chain.ca, s, [np.cos(theta), np.sin(theta), 0.0])
    assert case.overlap(dyn) == pytest.approx(abs(np.cos(theta)), abs=1e-9)


def test_degenerate_top_eigenspace_takes_the_best_direction():
    # isotropic: joint = σ² (s s^T) ⊗ I_3, top eigenvalue three-fold; pc = s ⊗ e_x lies in it
    col, s = stretch_collection()
    case = mode_overlap_case(col)
    dyn = stretch_dynamics(case.chain.ca, s, [1, 0, 0], isotropic=True)
    assert case.overlap(dyn) == pytest.approx(1.0, abs=1e-9)
    # a direction outside that eigenspace (alternating signs within a half) scores its projection
    other = case.pc * np.where(np.arange(len(case.pc)) % 2, 1.0, -1.0)[:, None]
    assert top_mode_overlap(dyn, other, case.index) == pytest.approx(0.0, abs=1e-9)


def test_restriction_renormalises_both_vectors():
    # pc on residues 0..3 only; the predicted mode on all 12 residues
    col, s = stretch_collection()
    case = mode_overlap_case(col)
    dyn = stretch_dynamics(case.chain.ca, s, [1, 0, 0])
    pc4 = np.array([[1.0, 0, 0]] * 4) * 7.0  # any length
    assert top_mode_overlap(dyn, pc4, [0, 1, 2, 3]) == pytest.approx(1.0, abs=1e-9)
    mixed = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 1.0, 0]])
    assert top_mode_overlap(dyn, mixed, [0, 1, 2, 3]) == pytest.approx(0.5, abs=1e-9)  # (1 + 1 + 0 + 0) / 4


# --------------------------------------------------------------------------- invariance


def test_sign_and_rotation_invariance_with_anm():
    anm = get_predictor("anm")
    col = bent_chain_collection()
    case = mode_overlap_case(col)
    assert case.index.size == 40 - 2 - 1 - 3  # positions present in every conformer
    dyn = anm(case.chain)
    ov = case.overlap(dyn)
    assert 0.0 <= ov <= 1.0
    assert top_mode_overlap(dyn, -case.pc, case.index) == pytest.approx(ov, abs=1e-12)

    rng = np.random.default_rng(7)
    rot, shift = random_rotation(rng), rng.normal(0, 20, 3)
    # the whole ensemble rotated: the chain, hence ANM, and the PC rotate together
    col_r = collection(col.coords @ rot.T + shift, col.mask, "bent")
    case_r = mode_overlap_case(col_r)
    np.testing.assert_allclose(case_r.chain.ca, case.chain.ca @ rot.T + shift, atol=1e-9)
    assert_same_up_to_sign(case_r.pc, case.pc @ rot.T)
    assert case_r.overlap(anm(case_r.chain)) == pytest.approx(ov, abs=1e-8)

    # the Dynamics rotated by hand (mean R, Σ_i -> R Σ_i R^T, coupling unchanged) with the PC
    dyn_r = Dynamics(mean=dyn.mean @ rot.T, marginals=rot @ dyn.marginals @ rot.T, coupling=dyn.coupling,
                     residues=dyn.residues, model_name=dyn.model_name)
    assert top_mode_overlap(dyn_r, case.pc @ rot.T, case.index) == pytest.approx(ov, abs=1e-8)

    # moving one non-reference conformer rigidly changes nothing: every conformer is re-superposed
    moved = col.coords.copy()
    moved[4] = moved[4] @ random_rotation(rng).T + 5.0
    _, pc_m, frac_m = ensemble_top_pc(collection(moved, col.mask, "bent"))
    assert_same_up_to_sign(pc_m, case.pc)
    assert frac_m == pytest.approx(case.variance_fraction)


# --------------------------------------------------------------------------- errors


def _one_line(exc_info):
    assert "\n" not in str(exc_info.value)


@pytest.mark.parametrize("pc, index, match", [
    (np.ones((4, 2)), [0, 1, 2, 3], r"pc: expected shape \(n, 3\)"),
    (np.ones(12), None, r"pc: expected shape \(n, 3\)"),
    (np.full((4, 3), np.nan), [0, 1, 2, 3], "pc: values must be finite"),
    (np.zeros((4, 3)), [0, 1, 2, 3], "pc: is all zeros"),
    (np.ones((4, 3)), None, "pc: 4 rows for a Dynamics of 12 residues"),
    (np.ones((4, 3)), [0, 1, 2], "index: expected 4 integers"),
    (np.ones((4, 3)), [0.0, 1.0, 2.0, 3.0], "index: expected 4 integers"),
    (np.ones((4, 3)), [0, 1, 2, 12], r"index: rows must lie in \[0, 12\)"),
    (np.ones((4, 3)), [0, 1, 1, 2], "index: rows must be distinct"),
])
def test_bad_input_one_line(pc, index, match):
    col, s = stretch_collection()
    dyn = stretch_dynamics(col.coords[0], s, [1, 0, 0])
    with pytest.raises(InputError, match=match) as exc:
        top_mode_overlap(dyn, pc, index)
    _one_line(exc)


def test_bad_dynamics_and_collections_one_line(tmp_path):
    with pytest.raises(InputError, match="dynamics: expected a Dynamics, got ndarray") as exc:
        top_mode_overlap(np.eye(6), np.ones((2, 3)))
    _one_line(exc)

    col, _ = stretch_collection()
    mask = col.mask.copy()
    mask[1, :6] = False  # conformer 1 lacks one half: no position present in every conformer's...
    mask[2, 6:] = False  # ...and conformer 2 the other
    with pytest.raises(InputError, match="only 0 position.s. present in all 6 conformers") as exc:
        ensemble_top_pc(collection(col.coords, mask))
    _one_line(exc)

    mask = col.mask.copy()
    mask[3, 2:] = False  # conformer 3 keeps 2 positions
    with pytest.raises(InputError, match="conformer 3 .* shares 2 position.s. with the reference") as exc:
        ensemble_top_pc(collection(col.coords, mask))
    _one_line(exc)

    same = np.repeat(col.coords[:1], 6, axis=0)
    with pytest.raises(InputError, match="identical") as exc:
        ensemble_top_pc(collection(same, np.ones((6, 12), bool)))
    _one_line(exc)

    with pytest.raises(InputError, match="no such folder") as exc:
        next(dance_mode_overlap_cases(tmp_path / "missing"))
    _one_line(exc)


# --------------------------------------------------------------------------- chance level


def test_random_overlap_expectation():
    assert random_overlap_expectation(1) == pytest.approx(0.5)  # E|cos| on the 2-sphere
    assert random_overlap_expectation(4, n_modes=12) == 1.0
    rng = np.random.default_rng(3)
    v = rng.standard_normal((200_000, 30))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert random_overlap_expectation(10) == pytest.approx(np.abs(v[:, 0]).mean(), abs=3e-3)
    assert random_overlap_expectation(10, n_modes=3) == pytest.approx(np.linalg.norm(v[:, :3], axis=1).mean(),
                                                                      abs=3e-3)
    assert random_overlap_expectation(300) == pytest.approx(np.sqrt(2 / (np.pi * 900)), rel=2e-3)
    with pytest.raises(InputError, match="n_residues must be a positive integer"):
        random_overlap_expectation(0)
    with pytest.raises(InputError, match="n_modes must be an integer in"):
        random_overlap_expectation(2, n_modes=7)


# --------------------------------------------------------------------------- real data


@needs_dance
def test_real_dance_test_collection_with_anm():
    assert (TINY, "test") in list_collections(DANCE, splits=["test"])
    col = read_collection(DANCE, TINY, "test")
    case = mode_overlap_case(col)
    assert case.key == TINY and case.n_conformers == col.n_conformers
    assert case.pc.shape == (case.index.size, 3) and case.index.size >= 3
    assert np.linalg.norm(case.pc) == pytest.approx(1.0)
    assert 0.0 < case.variance_fraction <= 1.0
    assert case.chain.sequence[0] != "-" and len(case.chain) >= case.index.size
    ov = case.overlap(get_predictor("anm")(case.chain))
    assert np.isfinite(ov) and 0.0 <= ov <= 1.0
