"""Evaluation: predictors vs MD labels from a small store of real MD (adenylate kinase)."""

import csv
import math
import warnings

import numpy as np
import pytest

pytest.importorskip("h5py")
pytest.importorskip("MDAnalysis")
datafiles = pytest.importorskip("MDAnalysisTests.datafiles")

from conftest import SHARED
from dynaprot_viz.cli import main
from dynaprot_viz.core import metrics as M
from dynaprot_viz.core.anm import predict_anm
from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.predictors import register_predictor
from dynaprot_viz.training.evaluate import evaluate, evaluate_mdcath_rmsf
from dynaprot_viz.training.ingest import ingest
from dynaprot_viz.training.readers import trajectory_source
from dynaprot_viz.training.store import LabelStore

MDCATH = SHARED / "mdcath_rmsf"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two chains of real MD: adk (PSF/DCD, 98 frames, frames kept) and trp-zip 2 (Amber
    PRM7/NetCDF, 10 frames, no frames kept -> Gaussian truth for the ensemble metrics)."""
    path = tmp_path_factory.mktemp("eval") / "labels.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ingest([trajectory_source(datafiles.PSF, [datafiles.DCD], key="adk")], path, progress=False,
               keep_frames=60)
        res = ingest([trajectory_source(datafiles.PRM7, [datafiles.NCDFtruncoct], key="tz2")], path,
                     progress=False, keep_frames=0)
        assert not res.failed, res.failed
    return path


_ANM_CACHE = {}


def _anm_cached(chain):
    """ANM, memoised per chain for the tests that only need a second, ordinary predictor."""
    if chain.source not in _ANM_CACHE:
        _ANM_CACHE[chain.source] = predict_anm(chain)
    return _ANM_CACHE[chain.source]


register_predictor("_anm_cached_test", _anm_cached, "ANM, memoised (tests)")


def test_evaluate_anm_matches_metrics_directly(store):
    m = "_anm_cached_test"  # the registry's "anm" itself runs in the CLI test
    res = evaluate(store, [m], n_samples=40, progress=False, mdcath_rmsf_dir=None)
    assert [r["key"] for r in res.rows] == ["adk", "tz2"] and not res.failed
    with LabelStore(store) as s:
        lab = s.get("adk")
    pred = _anm_cached(lab.to_chain())
    row = res.rows[0]
    assert row["rmsf_r"] == pytest.approx(M.rmsf_pearson(pred.rmsf, lab.rmsf))
    assert row["rmwd_var"] == pytest.approx(M.rmwd_variance(pred.marginals, lab.marginals))
    assert row["sym_kl_var"] == pytest.approx(M.sym_kl_variance(pred.marginals, lab.marginals))
    bands = M.bandwise_coupling_pearson(pred.correlation, lab.correlation)
    assert row["coupling_r_k10"] == pytest.approx(bands[9])
    assert row["coupling_r_peak"] == pytest.approx(np.nanmax(bands))
    np.testing.assert_allclose(res.bandwise[m][0], bands)
    # the summary's band curve is the per-band median over proteins
    s = res.summary[m]
    curve = np.median(res.bandwise[m], axis=0)
    assert s["coupling_r_peak"] == pytest.approx(curve.max()) and s["coupling_r_k1"] == pytest.approx(curve[0])
    assert s["rmsf_r_median"] == pytest.approx(np.median([r["rmsf_r"] for r in res.rows]))
    # ensemble metrics exist; one chain had no frames and the notes say so
    assert all(math.isfinite(r["md_pca_w2"]) and r["pairwise_rmsd_md"] > 0 for r in res.rows)
    assert any("1 chain(s) have no MD conformations" in n for n in res.notes)
    table = res.table()
    assert "RMSF r med" in table and "relative units" in table and "MD PCA W2" in table


def test_a_perfect_predictor_scores_perfectly(store):
    """The MD labels themselves, registered as a predictor, give r = 1 and zero distances."""
    with LabelStore(store) as s:
        truth = {s.get(k).to_chain().source: s.get(k).to_dynamics() for k in s.keys()}
    register_predictor("_oracle_test", lambda chain: truth[chain.source], "test oracle")
    res = evaluate(store, ["_oracle_test", "_anm_cached_test"], n_samples=0, progress=False)
    s = res.summary["_oracle_test"]
    assert s["rmsf_r_median"] == pytest.approx(1.0)
    assert s["rmwd_var_median"] == pytest.approx(0.0, abs=1e-6)
    assert s["sym_kl_var_median"] == pytest.approx(0.0, abs=1e-6)
    assert s["coupling_r_peak"] == pytest.approx(1.0) and s["coupling_r_k50"] == pytest.approx(1.0)
    assert res.summary["_anm_cached_test"]["rmsf_r_median"] < 0.99
    assert math.isnan(s["pairwise_rmsd_pred_median"])  # n_samples=0: no ensemble metrics


def test_evaluate_errors(store):
    with pytest.raises(InputError, match="unknown model 'nope'"):
        evaluate(store, ["nope"], progress=False)
    with pytest.raises(InputError, match="no chain"):
        evaluate(store, ["anm"], keys=["zzz"], progress=False)
    register_predictor("_broken_test", lambda chain: (_ for _ in ()).throw(RuntimeError("boom")))
    res = evaluate(store, ["_broken_test", "_anm_cached_test"], n_samples=0, progress=False)
    assert set(res.failed) == {"_broken_test:adk", "_broken_test:tz2"}
    assert "RuntimeError: boom" in res.failed["_broken_test:adk"]
    assert res.summary["_anm_cached_test"]["n_proteins"] == 2 and res.summary["_broken_test"]["n_proteins"] == 0


def test_cli_evaluate_writes_csv_and_plot(store, tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["evaluate", "--labels", str(store), "--model", "anm", "--samples", "10", "--no-mdcath",
                 "--no-progress", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "RMSF r med" in text and "wrote" in text
    names = sorted(p.name for p in out.iterdir())
    assert names == ["evaluation.png", "evaluation_bandwise.csv", "evaluation_per_protein.csv",
                     "evaluation_summary.csv", "evaluation_table.txt"]
    assert (out / "evaluation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "evaluation_per_protein.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["key"] for r in rows] == ["adk", "tz2"] and -1 <= float(rows[0]["rmsf_r"]) <= 1
    with open(out / "evaluation_bandwise.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 50
    # bad input: exit 2, no output folder
    bad = tmp_path / "bad"
    assert main(["evaluate", "--labels", str(store), "--model", "nope", "--out", str(bad), "--no-mdcath"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err and not bad.exists()
    assert main(["evaluate", "--labels", str(tmp_path / "none.h5"), "--out", str(bad)]) == 2


@pytest.mark.skipif(not (MDCATH / "rmsf").is_dir(), reason="shared data ../shared/data/mdcath_rmsf absent")
def test_mdcath_rmsf_evaluation():
    rows = evaluate_mdcath_rmsf(MDCATH, ["anm"])
    assert len(rows) == 7 and {r["domain"] for r in rows} >= {"1a0aA00", "12asA00"}
    for r in rows:
        assert -1 <= r["rmsf_r"] <= 1 and 0 < r["floor_loo_r_mean"] <= 1
        assert r["floor_loo_r_min"] <= r["floor_loo_r_mean"]
    # ANM is a physics baseline: positively correlated with real MD RMSF on most domains
    assert np.median([r["rmsf_r"] for r in rows]) > 0.4
    # the replica-to-replica floor is high: the label is well determined
    assert np.median([r["floor_loo_r_mean"] for r in rows]) > 0.8
