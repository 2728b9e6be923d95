"""best_pocket_score (core/pockets.py): find_pockets' best score without the pockets, and the
sort-based median of hotspot_contrast, on real structures' ANM dynamics.

Structures: examples/data (ubiquitin, adenylate kinase open and closed) and the campaign's
real chains in datasets/campaign/structures (the per-chain summary of `dynaprot-viz batch`).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

import dynaprot_viz as dv
from dynaprot_viz import Dynamics, InputError, find_pockets
from dynaprot_viz.core.pockets import best_pocket_score, hotspot_contrast

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "data"
CAMPAIGN = REPO / "datasets" / "campaign" / "structures"
CAMPAIGN_CHAINS = ["bioemu_2YSF_A", "bioemu_1I6C_A", "bioemu_2WQG_A", "bioemu_EEHEE_rd3_0019_A",
                   "bioemu_HHH_rd1_0335_A", "bioemu_1GJS_A", "atlas_1ab1_A", "bioemu_2MKX_L11A_A",
                   "bioemu_EA_run2_0290_0001_A", "bioemu_1ENH_A", "atlas_1bgf_A", "mdat_1y1lA_A",
                   "bioemu_6UF2_A_A", "bioemu_4ZRB_G_A"]

# parameter sets beyond the defaults: looser and stricter candidates, bigger patches
VARIANTS = [{}, {"quantile": 0.7, "min_contrast": 0.05}, {"quantile": 0.9, "patch_cutoff": 6.0},
            {"min_size": 5, "trim_termini": 0, "env_radius": 10.0}]


@pytest.fixture(scope="module")
def examples() -> dict[str, Dynamics]:
    return {f: dv.predict(EXAMPLES / f, model="anm") for f in ("1ubi.pdb", "4ake_A.pdb", "1ake_A.pdb")}


def _reference_score(dyn, **kw) -> float:
    pockets = find_pockets(dyn, **kw)
    return pockets[0].score if pockets else float("nan")


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: ",".join(kw) or "defaults")
def test_equals_find_pockets_on_examples(examples, kw):
    got = [best_pocket_score(d, **kw) for d in examples.values()]
    ref = [_reference_score(d, **kw) for d in examples.values()]
    np.testing.assert_array_equal(got, ref)  # bit for bit, NaN where find_pockets finds none
    if not kw:
        assert np.isfinite(ref).all()  # the defaults find a pocket in each: the comparison is not all-NaN


def test_no_pocket_is_nan(examples):
    d = examples["4ake_A.pdb"]
    assert find_pockets(d, min_size=d.n_residues + 1) == []
    assert np.isnan(best_pocket_score(d, min_size=d.n_residues + 1))
    flat = Dynamics(mean=d.mean, marginals=np.broadcast_to(np.eye(3), d.marginals.shape),
                    coupling=np.eye(len(d)), residues=d.residues)  # no contrast anywhere
    assert find_pockets(flat) == [] and np.isnan(best_pocket_score(flat))


def test_equals_find_pockets_on_campaign_chains():
    """The summary column of `dynaprot-viz batch` is find_pockets' best score."""
    if not CAMPAIGN.is_dir():
        pytest.skip("datasets/campaign/structures is not in this checkout")
    dyns = [dv.predict(CAMPAIGN / f"{n}.pdb.gz", model="anm") for n in CAMPAIGN_CHAINS]
    flat = dyns[0]  # identical marginals: no contrast anywhere, no pocket
    dyns.append(Dynamics(mean=flat.mean, marginals=np.broadcast_to(np.eye(3), flat.marginals.shape),
                         coupling=np.eye(len(flat)), residues=flat.residues))
    ref = [_reference_score(d) for d in dyns]
    np.testing.assert_array_equal([best_pocket_score(d) for d in dyns], ref)
    assert np.isnan(ref).sum() >= 2 and np.isfinite(ref).sum() >= 10


def test_same_defaults_as_find_pockets():
    def defaults(f):
        return {k: p.default for k, p in inspect.signature(f).parameters.items()
                if p.default is not inspect.Parameter.empty}

    fp, bs = defaults(find_pockets), defaults(best_pocket_score)
    assert set(fp) - set(bs) == {"source", "max_pockets"}
    assert bs == {k: fp[k] for k in bs}


def test_bad_arguments(examples):
    d = examples["1ubi.pdb"]
    with pytest.raises(TypeError, match="dynamics must be a Dynamics"):
        best_pocket_score(d.marginals)
    with pytest.raises(InputError, match="quantile"):
        best_pocket_score(d, quantile=1.0)
    with pytest.raises(InputError, match="env_radius"):
        best_pocket_score(d, env_radius=float("nan"))
    with pytest.raises(InputError, match="min_size"):
        best_pocket_score(d, min_size=0)


def _median_contrast(dyn, env_radius):
    """c_i = s_i - np.median{s_j : j within env_radius of i, j != i}, one residue at a time."""
    w = np.linalg.eigvalsh(dyn.marginals)
    s = 0.5 * (np.log(w.sum(axis=1)) + np.log(w[:, 2]))
    out = np.zeros(len(s))
    for i, nb in enumerate(cKDTree(dyn.mean).query_ball_point(dyn.mean, env_radius)):
        nb = [j for j in nb if j != i]
        if nb:
            out[i] = s[i] - np.median(s[nb])
    return out


@pytest.mark.parametrize("env_radius", [12.0, 7.5, 2.5])
def test_contrast_median_is_numpy_median(examples, env_radius):
    """The sort-based median gives np.median's values exactly (odd and even neighbour counts)."""
    for d in examples.values():
        got = hotspot_contrast(d, env_radius)
        np.testing.assert_array_equal(got, _median_contrast(d, env_radius))
        counts = np.array([len(nb) - 1 for nb in cKDTree(d.mean).query_ball_point(d.mean, env_radius)])
        if env_radius == 2.5:  # C-alpha atoms are >= 2.9 Å apart: no neighbours, contrast 0
            assert (counts == 0).all() and not got.any()
        else:
            assert (counts % 2 == 0).any() and (counts % 2 == 1).any()
            assert np.abs(got).max() > 0.1
