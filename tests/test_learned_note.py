"""The one-time note of a learned model that is not the default: where the shipped
held-out evaluation says it beats ANM, and where it does not."""

import warnings

import pytest

from dynaprot_viz.core import predictors as P
from dynaprot_viz.core.models import inference


@pytest.fixture
def selection(monkeypatch):
    fake = {"sets": {"a": {"models": {"anm": 0.70, "dynaprot": 0.80}},
                     "b": {"models": {"anm": 0.71, "dynaprot": 0.68}},
                     "c": {"models": {"anm": 0.60, "dynaprot": float("nan")}}}}
    monkeypatch.setitem(P._SELECTION, "data", fake)
    P._SELECTION.pop("default", None)
    monkeypatch.setattr(inference, "_PREVIEW_WARNED", set())
    yield fake
    P._SELECTION.pop("default", None)


def test_held_out_comparison_names_wins_and_losses(selection):
    text = P.held_out_comparison("dynaprot")
    assert text == ("held-out median RMSF r of dynaprot vs anm: better on a 0.80 vs 0.70; "
                    "not better on b 0.68 vs 0.71")  # NaN set c is left out
    assert P.held_out_comparison("nothing") == ""


def test_note_once_and_only_when_not_default(selection):
    assert P.default_model() == "anm"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inference._warn_not_default("dynaprot", "DynaProt", "MODEL_CARD.md")
        inference._warn_not_default("dynaprot", "DynaProt", "MODEL_CARD.md")
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert msg.startswith("DynaProt: held-out median RMSF r of dynaprot vs anm: better on a")
    assert "the default model is anm" in msg and "MODEL_CARD.md" in msg
    # a learned model that wins every set is the default: no note
    selection["sets"]["b"]["models"]["dynaprot"] = 0.9
    selection["sets"]["c"]["models"]["dynaprot"] = 0.9
    P._SELECTION.pop("default", None)
    inference._PREVIEW_WARNED.clear()
    P.register_predictor("dynaprot", P._REGISTRY["dynaprot"].target, P._REGISTRY["dynaprot"].description)
    assert P.default_model() == "dynaprot"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inference._warn_not_default("dynaprot", "DynaProt", "MODEL_CARD.md")
    assert not caught
