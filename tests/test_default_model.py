"""The default model is the one that wins the shipped held-out evaluation (issue 11.1)."""

import json
import math
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import dynaprot_viz as dv
from dynaprot_viz.core.predictors import (MODEL_SELECTION_FILE, available_models, default_model,
                                          default_model_reason, model_selection, select_default)

ROOT = Path(__file__).resolve().parents[1]
UBQ = ROOT / "examples" / "data" / "1ubi.pdb"
MDCATH = ROOT.parent / "shared" / "data" / "mdcath_rmsf"


# ---------------------------------------------------------------- the rule


def test_rule_keeps_baseline_unless_beaten_on_every_set():
    table = {"a": {"anm": 0.70, "dynaprot": 0.80}, "b": {"anm": 0.60, "dynaprot": 0.55}}
    name, why = select_default(table)
    assert name == "anm"
    assert "no learned model beats it" in why and "a 0.70" in why and "dynaprot 0.55" in why


def test_rule_picks_a_model_that_wins_everywhere_and_the_best_of_several():
    table = {"a": {"anm": 0.70, "m1": 0.75, "m2": 0.90}, "b": {"anm": 0.60, "m1": 0.65, "m2": 0.61}}
    name, why = select_default(table)
    assert name == "m2"  # mean 0.755 > m1's 0.70
    assert why.startswith("beats ANM on every held-out set")


def test_rule_ties_and_missing_values_do_not_win():
    assert select_default({"a": {"anm": 0.7, "m": 0.7}})[0] == "anm"
    assert select_default({"a": {"anm": 0.7, "m": 0.9}, "b": {"anm": 0.5}})[0] == "anm"
    assert select_default({"a": {"anm": 0.7, "m": math.nan}})[0] == "anm"
    assert select_default({"a": {"models": {"anm": 0.5, "m": 0.6}}})[0] == "m"  # the file's layout
    assert select_default({})[0] == "anm"


# ---------------------------------------------------------------- the shipped evaluation


def test_shipped_selection_decides_the_default():
    sel = model_selection()
    assert sel, f"{MODEL_SELECTION_FILE} is not installed in dynaprot_viz/weights"
    name, reason = select_default(sel["sets"])
    assert default_model() == name == sel["default"]
    assert default_model_reason() == reason
    assert {"mdcath-7", "campaign-heldout"} <= set(sel["sets"])
    for s in sel["sets"].values():
        assert set(s["models"]) >= {"anm", "dynaprot", "resaxial"}
        assert s["n"] == len(s["per_protein"]) >= 2
    # today no learned model beats ANM on every held-out set
    assert default_model() == "anm"


def test_shipped_selection_evaluated_the_shipped_weights():
    """Retrained weights must come with a rerun of the model selection."""
    from dynaprot_viz.training.model_selection import weights_digests

    recorded = model_selection()["weights_sha256"]
    assert recorded == weights_digests(), (
        "the shipped weights changed since model-selection.json was written: "
        "rerun python -m dynaprot_viz.training.model_selection")


@pytest.mark.skipif(not MDCATH.is_dir(), reason="../shared/data/mdcath_rmsf not present")
def test_shipped_anm_numbers_are_reproduced():
    """The file's ANM column is recomputed here, so it cannot be typed in by hand."""
    from dynaprot_viz.training.model_selection import mdcath7_set

    got = mdcath7_set(["anm"], MDCATH)
    shipped = model_selection()["sets"]["mdcath-7"]
    assert got["n"] == shipped["n"] == 7
    for dom, row in got["per_protein"].items():
        assert row["anm"] == pytest.approx(shipped["per_protein"][dom]["anm"], abs=1e-9)
    assert got["models"]["anm"] == pytest.approx(shipped["models"]["anm"], abs=1e-9)


# ---------------------------------------------------------------- every entry point


def test_available_models_say_which_is_default_and_why():
    names = available_models()
    assert list(names)[:3] == ["anm", "dynaprot", "resaxial"]
    assert names.default == default_model()
    lines = str(names).splitlines()
    assert len(lines) == len(names)
    marked = [line for line in lines if "[default:" in line]
    assert len(marked) == 1 and marked[0].startswith(f"{default_model()}:")
    assert default_model_reason() in marked[0]


def test_predict_without_model_uses_the_default_and_pockets_follow():
    dyn = dv.predict(UBQ)
    assert dyn.model_name == default_model()
    ref = dv.predict(UBQ, model=default_model())
    np.testing.assert_array_equal(dyn.marginals, ref.marginals)
    pockets = dv.find_pockets(dv.predict(UBQ))
    assert [p.residues.tolist() for p in pockets] == [p.residues.tolist() for p in dv.find_pockets(ref)]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dynaprot_viz.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_cli_help_names_the_default():
    top = _cli("--help")
    assert top.returncode == 0
    assert f"default model: {default_model()}" in " ".join(top.stdout.split())
    for cmd in ("predict", "view", "figure"):
        out = " ".join(_cli(cmd, "--help").stdout.split())
        assert f"(default {default_model()}:" in out, cmd


def test_cli_predict_without_model_writes_the_default(tmp_path):
    res = _cli("predict", str(UBQ), "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    saved = dv.Dynamics.load(tmp_path / "1ubi.dynamics.npz")
    assert saved.model_name == default_model()


def test_viewer_plugins_share_the_default():
    from dynaprot_viz.plugin.options import default_model as plugin_default, parse_options

    assert plugin_default() == default_model()
    assert parse_options("", 0.5, 0, "").model == default_model()


def test_widget_menu_marks_the_default():
    pytest.importorskip("ipywidgets")
    app = dv.view(UBQ, n_samples=0)
    assert app.model == default_model()
    labels = dict(app._model.options)
    assert labels[f"{default_model()} (default)"] == default_model()
    assert default_model_reason() in app._model.tooltip


# ---------------------------------------------------------------- --weights (issue 13.10)

WEIGHTS = ROOT / "dynaprot_viz" / "weights"


def test_cli_weights_file_is_used_and_checked(tmp_path):
    """--weights FILE (a train --export output) reaches the learned predictor."""
    pytest.importorskip("torch")
    own = tmp_path / "mine.safetensors"
    own.write_bytes((WEIGHTS / "resaxial-preview.safetensors").read_bytes())
    own.with_suffix(".json").write_text((WEIGHTS / "resaxial-preview.json").read_text())
    res = _cli("predict", str(UBQ), "--model", "resaxial", "--weights", str(own), "--out", str(tmp_path / "a"))
    assert res.returncode == 0, res.stderr
    shipped = dv.predict(UBQ, model="resaxial")
    got = dv.Dynamics.load(tmp_path / "a" / "1ubi.dynamics.npz")
    np.testing.assert_allclose(got.marginals, shipped.marginals, rtol=1e-6, atol=1e-9)
    for args, message in (
        (("--model", "anm", "--weights", str(own)), "--weights applies only to the learned models"),
        (("--model", "resaxial", "--weights", str(tmp_path / "none.safetensors")), "no such file"),
        (("--model", "dynaprot", "--weights", str(own)), "not DynaProt weights"),
    ):
        out = tmp_path / "bad"
        res = _cli("predict", str(UBQ), *args, "--out", str(out))
        assert res.returncode == 2 and message in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
        assert not out.exists()


def test_viewer_options_take_weights(tmp_path):
    from dynaprot_viz.core.errors import InputError
    from dynaprot_viz.plugin.options import parse_options

    w = WEIGHTS / "dynaprot-preview.safetensors"
    assert parse_options("dynaprot", weights=str(w)).weights == str(w)
    with pytest.raises(InputError, match="only to the learned models"):
        parse_options("anm", weights=str(w))
    with pytest.raises(InputError, match="not found"):
        parse_options("dynaprot", weights=str(tmp_path / "x.safetensors"))


def test_widget_keeps_weights_for_learned_models_only():
    from dynaprot_viz.core.predictors import accepted_options

    opts = {"weights": "w.safetensors", "cutoff": 12.0, "typo_option": 1}
    assert accepted_options("anm", opts) == {"cutoff": 12.0, "typo_option": 1}
    assert accepted_options("dynaprot", opts) == {"weights": "w.safetensors", "typo_option": 1}


# ---------------------------------------------------------------- short chains, --samples 0 (issue 13.9)


def _fragment(tmp_path, n):
    """The first n residues of 1ubi, a real structure cut short."""
    import gemmi

    st = gemmi.read_structure(str(UBQ))
    st.setup_entities()
    ch = st[0][0]
    for i in range(len(ch) - 1, n - 1, -1):
        del ch[i]
    st.remove_ligands_and_waters()
    path = tmp_path / f"frag{n}.pdb"
    st.write_pdb(str(path))
    return path


def test_short_chains_warn_and_tiny_ones_are_refused(tmp_path):
    from dynaprot_viz.core.errors import InputError

    with pytest.warns(UserWarning, match="only 12 residues"):
        assert dv.predict(_fragment(tmp_path, 12)).n_residues == 12
    with pytest.raises(InputError, match="has 4 residues; dynamics need at least 5"):
        dv.predict(_fragment(tmp_path, 4))
    res = _cli("predict", str(_fragment(tmp_path, 4)), "--out", str(tmp_path / "o4"))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o4").exists()


def test_samples_zero_means_none_in_predict_and_view(tmp_path):
    res = _cli("predict", str(UBQ), "--samples", "0", "--out", str(tmp_path / "p"))
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "p" / "1ubi.ensemble.pdb").exists()
    for cmd in (("predict", str(UBQ), "--out", str(tmp_path / "q")), ("view", str(UBQ), "--html", str(tmp_path / "v.html"))):
        bad = _cli(*cmd, "--samples", "-1")
        assert bad.returncode == 2 and "an integer >= 0" in bad.stderr
