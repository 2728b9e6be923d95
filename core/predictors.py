"""Registry of predictors: a name -> a function ProteinChain -> Dynamics.

New models join by one call to :func:`register_predictor` in the module that
defines them (DynaProt, ResAxial); ``anm`` is registered here.  Predictors that
need torch are registered lazily through a module path so that importing core
never imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from .errors import InputError

__all__ = ["PredictorSpec", "register_predictor", "get_predictor", "available_models"]


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


def available_models() -> list[str]:
    """Registered predictor names, in registration order."""
    return list(_REGISTRY)


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
    "dynaprot", "dynaprot_viz.core.models.predictor:predict_dynaprot",
    "DynaProt-M + J (IPA on backbone frames, learned from MD): anisotropic marginals and coupling",
)
register_predictor(
    "resaxial", "dynaprot_viz.core.models.resaxial_predictor:predict_resaxial",
    "ResAxial (U-Net + axial attention on the distance map): RMSF + correlation, isotropic",
)
