"""ANM amplitude model: relative kT/gamma -> Å² of 300 K MD (ATLAS), one factor per chain."""

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from dynaprot_viz.cli import main
from dynaprot_viz.core.anm import (
    AMPLITUDE_FEATURES,
    amplitude_features,
    amplitude_scale,
    anm_covariance,
    load_amplitude_model,
    predict_anm,
)
from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.gaussian import Dynamics, marginals_from_joint
from dynaprot_viz.core.structure import load_chain

ROOT = Path(__file__).resolve().parents[1]
ATLAS = ROOT.parent / "shared" / "data" / "atlas_chains"
AMPLITUDES = ROOT / "datasets" / "atlas_amplitudes"


def test_shipped_model_loads_with_provenance():
    model = load_amplitude_model()
    assert math.isfinite(model["intercept"])
    assert set(model["coefficients"]) <= set(AMPLITUDE_FEATURES) and model["coefficients"]
    assert all(math.isfinite(c) for c in model["coefficients"].values())
    assert model["anm"]["cutoff_A"] == 15.0
    prov = model["provenance"]
    assert prov["n_chains"] > 300 and prov["date"] and "fit_amplitude.py" in prov["command"]
    assert prov["filters"]["heldout_identity_max"] == 0.30
    cv = model["cross_validation"]
    assert cv["chosen"] in cv["candidates"]
    chosen = cv["candidates"][cv["chosen"]]
    # an honest model beats predicting one constant RMSF for every chain
    assert chosen["cv_rmse_ln"] < cv["candidates"]["constant"]["cv_rmse_ln"]


def test_scale_is_positive_and_finite(ubq_chain):
    marg = marginals_from_joint(anm_covariance(ubq_chain.ca))
    s = amplitude_scale(ubq_chain.ca, marg)
    assert np.isfinite(s) and s > 0


def test_scaled_anm_is_s_times_relative(ubq_chain, ubq_anm):
    dyn = predict_anm(ubq_chain, scale="amplitude")
    s = amplitude_scale(ubq_chain.ca, ubq_anm.marginals)
    np.testing.assert_allclose(dyn.marginals, s * ubq_anm.marginals, rtol=1e-12, atol=0)
    np.testing.assert_allclose(dyn.coupling, s * ubq_anm.coupling, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(dyn.correlation, ubq_anm.correlation, atol=1e-12)
    assert dyn.model_name == "anm" and not dyn.relative_units and dyn.rmsf_label == "RMSF (Å)"
    assert ubq_anm.model_name == "anm-relative" and ubq_anm.relative_units
    assert ubq_anm.rmsf_label == "RMSF (relative, kT/γ)"
    # the default scale is the amplitude model (15 Å cutoff); another cutoff falls back to relative
    np.testing.assert_array_equal(predict_anm(ubq_chain).marginals, dyn.marginals)
    with pytest.warns(UserWarning, match="calibrated at 15 Å only; relative units"):
        assert predict_anm(ubq_chain, cutoff=12.0).relative_units


def test_amplitude_does_not_depend_on_gamma(ubq_chain):
    a = predict_anm(ubq_chain, scale="amplitude")
    b = predict_anm(ubq_chain, gamma=2.5, scale="amplitude")
    np.testing.assert_allclose(b.marginals, a.marginals, rtol=1e-8)


def test_mean_rmsf_follows_the_formula(ubq_chain, ubq_anm):
    """Independent re-computation: R = exp(a + sum_k c_k f_k) with features from first principles."""
    model = load_amplitude_model()
    ca = ubq_chain.ca
    rel = np.sqrt(np.einsum("nii->n", ubq_anm.marginals))
    rg = np.sqrt(((ca - ca.mean(0)) ** 2).sum(1).mean())
    d = np.linalg.norm(ca[:, None] - ca[None], axis=-1)
    contacts = ((d <= 15.0).sum() - len(ca)) / len(ca)
    feats = {"ln_mean_rmsf_rel": np.log(rel.mean()), "ln_n_residues": np.log(len(ca)),
             "ln_radius_of_gyration": np.log(rg), "ln_mean_contacts": np.log(contacts)}
    assert amplitude_features(ca, ubq_anm.marginals) == pytest.approx(feats, rel=1e-9)
    expect = math.exp(model["intercept"] + sum(c * feats[k] for k, c in model["coefficients"].items()))
    dyn = predict_anm(ubq_chain, scale="amplitude")
    assert dyn.rmsf.mean() == pytest.approx(expect, rel=1e-9)


def test_scale_depends_on_the_chain_as_the_model_says(tmp_path, ubq_chain, data_dir):
    """A model R = N Å (intercept 0, slope 1 on ln N) gives mean RMSF = N for any chain."""
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"intercept": 0.0, "coefficients": {"ln_n_residues": 1.0},
                                "anm": {"cutoff_A": 15.0}}))
    model = load_amplitude_model(path)
    for chain in (ubq_chain, load_chain(data_dir / "1ake.cif", chain="B")):
        marg = marginals_from_joint(anm_covariance(chain.ca))
        s = amplitude_scale(chain.ca, marg, model=model)
        assert np.mean(np.sqrt(s * np.einsum("nii->n", marg))) == pytest.approx(len(chain), rel=1e-9)
    # the shipped model: the ratio of the two chains' factors is what its coefficients say
    shipped = load_amplitude_model()
    ake_chain = load_chain(data_dir / "1ake.cif", chain="B")
    f, s = {}, {}
    for name, chain in (("ubq", ubq_chain), ("ake", ake_chain)):
        marg = marginals_from_joint(anm_covariance(chain.ca))
        f[name] = amplitude_features(chain.ca, marg)
        s[name] = amplitude_scale(chain.ca, marg)
    coef = dict(shipped["coefficients"])
    b = coef.pop("ln_mean_rmsf_rel", 0.0)
    d_ln_m = f["ake"]["ln_mean_rmsf_rel"] - f["ubq"]["ln_mean_rmsf_rel"]
    expect = 2 * ((b - 1) * d_ln_m + sum(c * (f["ake"][k] - f["ubq"][k]) for k, c in coef.items()))
    assert math.log(s["ake"] / s["ubq"]) == pytest.approx(expect, abs=1e-9)
    assert abs(expect) > 1e-3  # the two chains really get different factors


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid JSON"),
    (json.dumps({"intercept": 0.0}), "needs 'intercept', 'coefficients'"),
    (json.dumps({"intercept": 0.0, "coefficients": {"ln_size": 1.0}, "anm": {"cutoff_A": 15}}),
     "unknown amplitude features"),
    (json.dumps({"intercept": float("nan"), "coefficients": {}, "anm": {"cutoff_A": 15}}), "non-finite"),
])
def test_bad_model_file_one_line(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError, match=match):
        load_amplitude_model(path)
    with pytest.raises(InputError, match="cannot read"):
        load_amplitude_model(tmp_path / "absent.json")


def test_other_cutoff_is_refused(ubq_chain):
    with pytest.raises(InputError, match="calibrated for the ANM cutoff 15 Å"):
        predict_anm(ubq_chain, cutoff=12.0, scale="amplitude")
    with pytest.raises(InputError, match="'amplitude'"):
        predict_anm(ubq_chain, scale="atlas")


def test_cli_anm_scale_amplitude_is_the_default_and_relative_is_labelled(tmp_path, ubq_path, ubq_anm, capsys):
    s = amplitude_scale(load_chain(ubq_path).ca, ubq_anm.marginals)
    for args, name in ((["--anm-scale", "amplitude"], "explicit"), ([], "default")):
        out = tmp_path / name
        assert main(["predict", str(ubq_path), "--model", "anm", *args, "--out", str(out)]) == 0
        dyn = Dynamics.load(out / "1ubi.dynamics.npz")
        assert dyn.model_name == "anm" and not dyn.relative_units
        np.testing.assert_allclose(dyn.rmsf, np.sqrt(s) * ubq_anm.rmsf, rtol=1e-12)
        assert "RMSF (Å): min" in capsys.readouterr().out
    out = tmp_path / "rel"
    assert main(["predict", str(ubq_path), "--model", "anm", "--anm-scale", "relative", "--out", str(out)]) == 0
    dyn = Dynamics.load(out / "1ubi.dynamics.npz")
    assert dyn.model_name == "anm-relative" and dyn.relative_units  # the unit survives save/load
    printed = capsys.readouterr().out
    assert "RMSF (relative, kT/γ): min" in printed and " Å)" not in printed


def _atlas_rows():
    with open(ATLAS / "ATLAS_info.tsv", newline="") as fh:
        return {r["PDB"]: r for r in csv.DictReader(fh, delimiter="\t")}


@pytest.mark.skipif(not (ATLAS / "ATLAS_info.tsv").exists(), reason="shared data ../shared/data/atlas_chains absent")
def test_calibrated_mean_rmsf_on_real_atlas_chains():
    """The ten shared ATLAS start structures: calibrated mean RMSF within 2x of ATLAS's
    avg_RMSF, and closer to it on average than raw ANM read as Å."""
    info = _atlas_rows()
    raw_err, cal_err = [], []
    for pdb in sorted(ATLAS.glob("*_*.pdb")):
        chain = load_chain(pdb)
        true = float(info[pdb.stem]["avg_RMSF"])
        cal = predict_anm(chain, scale="amplitude").rmsf.mean()
        raw = predict_anm(chain, scale="relative").rmsf.mean()
        assert 0.5 <= cal / true <= 2.0, (pdb.stem, cal, true)
        raw_err.append(abs(raw - true))
        cal_err.append(abs(cal - true))
    assert len(cal_err) >= 5
    assert np.mean(cal_err) < np.mean(raw_err)


def test_fit_is_reproducible_from_the_shipped_features():
    """Refitting the chosen model on datasets/atlas_amplitudes/features.tsv gives the JSON's coefficients."""
    sys.path.insert(0, str(AMPLITUDES))
    try:
        import fit_amplitude as fa
    finally:
        sys.path.remove(str(AMPLITUDES))
    model = load_amplitude_model()
    with open(AMPLITUDES / "features.tsv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t")
                if float(r["max_heldout_identity"]) < model["provenance"]["filters"]["heldout_identity_max"]]
    for r in rows:
        r["avg_rmsf_A"] = float(r["avg_rmsf_A"])
    assert len(rows) == model["provenance"]["n_chains"]
    intercept, coefs, _ = fa.fit(rows, fa.CANDIDATES[model["cross_validation"]["chosen"]])
    assert intercept == pytest.approx(model["intercept"], abs=1e-6)
    assert coefs == pytest.approx(model["coefficients"], abs=1e-6)
    # held-out proteins never reach the fit
    excluded = set(model["provenance"]["filters"]["excluded_heldout"])
    assert excluded and not excluded & {r["chain"] for r in rows}


def test_atlas_table_matches_its_backbones():
    with open(AMPLITUDES / "atlas_promod3.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert len(rows) == 676
    with np.load(AMPLITUDES / "atlas_backbones.npz") as z:
        ids = list(z["ids"])
        lengths = dict(zip(ids, z["length"].tolist()))
        off, coords = z["offset"], z["coords"]
        origin = z["origin"]
        unit = float(z["coord_unit_A"])
        for c in range(0, len(ids), 97):  # gap-free backbones: consecutive C-alphas 3.8 Å apart
            xyz = origin[c] + unit * coords[off[c]:off[c + 1], 1].astype(float)
            step = np.linalg.norm(np.diff(xyz, axis=0), axis=1)
            assert np.all((step > 2.7) & (step < 4.3)), ids[c]
    for r in rows:
        assert int(r["n_residues"]) == lengths[r["promod3_entry"]]
        assert 0 < float(r["coverage"]) <= 1.0 + 1e-9
        assert int(r["seq_ok"]) == (float(r["identity"]) >= 0.95)
