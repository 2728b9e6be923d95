"""Registry of predictors: a name -> a function ProteinChain -> Dynamics.

New models join by one call to :func:`register_predictor` in the module that
defines them (DynaProt, ResAxial); ``anm`` is registered here.  Predictors that
need torch are registered lazily through a module path so that importing core
never imports torch.

The default model (what ``predict(x)`` uses without ``model=``, and every entry
point with it) is the one that wins the shipped held-out evaluation,
``dynaprot_viz/weights/model-selection.json``, written by
``python -m dynaprot_viz.training.model_selection``: a learned model becomes the
default only when its median RMSF r beats ANM's on *every* held-out set there
(:func:`select_default`); otherwise ANM, the physics baseline, is the default.
"""

from __future__ import annotations

import importlib
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Callable

from .errors import InputError

__all__ = [
    "PredictorSpec",
    "ModelNames",
    "register_predictor",
    "get_predictor",
    "available_models",
    "default_model",
    "default_model_reason",
    "select_default",
    "model_selection",
    "resolve_model",
    "accepts_option",
    "accepted_options",
    "BASELINE_MODEL",
    "MODEL_SELECTION_FILE",
    "held_out_comparison",
]

#: the physics baseline: the default until a learned model beats it everywhere
BASELINE_MODEL = "anm"
#: the shipped held-out evaluation that decides the default (in dynaprot_viz.weights)
MODEL_SELECTION_FILE = "model-selection.json"


@dataclass(frozen=True)
class PredictorSpec:
    """A registered predictor.

    name : str
        What users type (``--model NAME``).
    target : str or callable
        ``"package.module:function"`` (imported on first use) or the function
        itself; it takes ``(chain: ProteinChain, **options)`` and returns Dynamics.
    description : str
        One line for ``--help`` and the widget's model menu.
    """

    name: str
    target: object
    description: str = ""

    def resolve(self) -> Callable:
        if callable(self.target):
            return self.target
        module, _, attr = str(self.target).partition(":")
        return getattr(importlib.import_module(module), attr)


_REGISTRY: dict[str, PredictorSpec] = {}


def register_predictor(name: str, target, description: str = "") -> None:
    """Add (or replace) a predictor under ``name``."""
    _REGISTRY[name] = PredictorSpec(name, target, description)
    _SELECTION.pop("default", None)  # a new model may be the held-out winner


class ModelNames(list):
    """Registered predictor names (a plain ``list`` of str) that also say which one is
    the default and why.

    Attributes
    ----------
    default : str
        The default model (:func:`default_model`).
    reason : str
        One line: why it is the default (:func:`default_model_reason`).

    ``str()`` gives one line per model, the default marked.
    """

    default: str = BASELINE_MODEL
    reason: str = ""

    def describe(self) -> list[str]:
        """One line per model: ``name: description``, the default marked with why."""
        lines = []
        for name in self:
            spec = _REGISTRY.get(name)
            text = f"{name}: {spec.description if spec else ''}".rstrip(": ")
            if name == self.default:
                text += f"  [default: {self.reason}]"
            lines.append(text)
        return lines

    def __str__(self) -> str:
        return "\n".join(self.describe())


def available_models() -> ModelNames:
    """Registered predictor names, in registration order (a list of str).

    The returned list also carries ``.default`` (the default model) and ``.reason``
    (one line: why); ``print(available_models())`` shows one line per model.
    """
    names = ModelNames(_REGISTRY)
    names.default = default_model()
    names.reason = default_model_reason()
    return names


# --------------------------------------------------------------------------- the default model


def select_default(table: dict, baseline: str = BASELINE_MODEL) -> tuple[str, str]:
    """The default model by the project's rule, and one line saying why.

    Parameters
    ----------
    table : dict
        ``{set name: {model name: median RMSF Pearson r}}`` on held-out proteins
        (``sets`` of ``model-selection.json``, each ``{"models": {...}}`` or the
        plain mapping).
    baseline : str
        The model that stays default unless beaten (ANM).

    Returns
    -------
    (name, reason)
        A model other than ``baseline`` is chosen only when its median is above the
        baseline's on every set (ties and missing values do not count); among
        several, the one with the highest mean over the sets.
    """
    sets = {k: dict(v.get("models", v)) for k, v in table.items()}
    if not sets:
        return baseline, "no held-out evaluation shipped; ANM is the physics baseline"

    def val(s, m):
        x = sets[s].get(m)
        return float(x) if x is not None and math.isfinite(float(x)) else math.nan

    models = sorted({m for t in sets.values() for m in t} - {baseline})
    winners = [m for m in models
               if all(val(s, m) > val(s, baseline) for s in sets)]  # NaN compares False
    chosen = max(winners, key=lambda m: sum(val(s, m) for s in sets)) if winners else baseline
    rivals = [m for m in models if m != chosen] + ([baseline] if chosen != baseline else [])
    parts = []
    for s in sets:
        vs = ", ".join(f"{m} {val(s, m):.2f}" for m in rivals if math.isfinite(val(s, m)))
        parts.append(f"{s} {val(s, chosen):.2f}" + (f" vs {vs}" if vs else ""))
    if chosen == baseline and models:
        why = "no learned model beats it on every held-out set"
    elif chosen == baseline:
        why = "the physics baseline"
    else:
        why = "beats ANM on every held-out set"
    return chosen, f"{why} (median RMSF r: {'; '.join(parts)})"


_SELECTION: dict = {}


def model_selection() -> dict:
    """The shipped held-out evaluation (``dynaprot_viz/weights/model-selection.json``),
    or ``{}`` when it is not installed."""
    if "data" not in _SELECTION:
        try:
            text = resources.files("dynaprot_viz.weights").joinpath(MODEL_SELECTION_FILE).read_text()
            _SELECTION["data"] = json.loads(text)
        except (FileNotFoundError, ModuleNotFoundError, json.JSONDecodeError, OSError):
            _SELECTION["data"] = {}
    return _SELECTION["data"]


def held_out_comparison(name: str, baseline: str = BASELINE_MODEL) -> str:
    """One line: on which shipped held-out sets ``name``'s median RMSF r beats the
    baseline's and on which it does not (from :func:`model_selection`), or ``""`` when the
    selection holds no figures for ``name``."""
    wins, losses = [], []
    for set_name, s in model_selection().get("sets", {}).items():
        models = s.get("models", {})
        a, b = models.get(name), models.get(baseline)
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            continue
        (wins if a > b else losses).append(f"{set_name} {a:.2f} vs {b:.2f}")
    if not wins and not losses:
        return ""
    text = f"held-out median RMSF r of {name} vs {baseline}"
    if wins:
        text += f": better on {', '.join(wins)}"
    if losses:
        text += f"{';' if wins else ':'} not better on {', '.join(losses)}"
    return text


def _default() -> tuple[str, str]:
    if "default" not in _SELECTION:
        name, reason = select_default(model_selection().get("sets", {}))
        if name not in _REGISTRY:  # a winner whose predictor is not installed
            name, reason = BASELINE_MODEL, f"{name} would win but is not installed; ANM is the physics baseline"
        _SELECTION["default"] = (name, reason)
    return _SELECTION["default"]


def default_model() -> str:
    """The model that ``predict`` and every entry point use when none is named: the
    winner of the shipped held-out evaluation (:func:`select_default`), ANM until a
    learned model beats it on every held-out set."""
    return _default()[0]


def default_model_reason() -> str:
    """One line: why :func:`default_model` is the default (the held-out medians)."""
    return _default()[1]


def accepts_option(model: str, option: str) -> bool:
    """Whether the predictor ``model`` takes the keyword ``option`` (e.g. ``weights``)."""
    import inspect

    try:
        return option in inspect.signature(get_predictor(model)).parameters
    except ImportError:  # a learned model without torch installed
        return False


def accepted_options(model: str, options: dict) -> dict:
    """``options`` less those that ``model`` does not take but another registered
    predictor does: a viewer that switches models keeps, e.g., ``weights`` for the
    learned ones without passing it to ANM.  An option no predictor takes (a typo) is
    kept, so the predictor refuses it instead of it being ignored."""
    return {k: v for k, v in options.items()
            if accepts_option(model, k) or not any(accepts_option(m, k) for m in _REGISTRY)}


def resolve_model(model) -> str:
    """``None`` -> :func:`default_model`; a name is returned as given."""
    return default_model() if model is None else model


def get_predictor(name: str) -> Callable[..., "object"]:
    """The predict function registered as ``name``.

    Raises
    ------
    InputError
        Unknown name (the message lists the known ones).
    """
    if name not in _REGISTRY:
        raise InputError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    return _REGISTRY[name].resolve()


register_predictor(
    "anm", "dynaprot_viz.core.anm:predict_anm",
    "Anisotropic Network Model (C-alpha, 15 Å cutoff, gamma 1): physics baseline",
)
register_predictor(
    "dynaprot", "dynaprot_viz.core.models.dynaprot.predictor:predict_dynaprot",
    "DynaProt-M + J with the ANM physics prior (IPA on backbone frames; a learned correction of ANM, "
    "trained on mdCATH MD RMSF): anisotropic marginals and coupling in Å",
)
register_predictor(
    "resaxial", "dynaprot_viz.core.models.resaxial.predictor:predict_resaxial",
    "ResAxial (U-Net + axial attention on the distance map): RMSF + correlation, isotropic",
)
register_predictor(
    "anm-gbm", "dynaprot_viz.core.models.anm_gbm:predict_anm_gbm",
    "ANM rescaled per residue by gradient-boosted trees learned from mdCATH MD: RMSF in Å at 320 K, ANM's shapes and correlations",
)
