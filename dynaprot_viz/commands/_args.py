"""Argument types shared by the sub-commands: numbers checked at parse time, so
argparse reports a bad value in one line (exit 2) before any work starts."""

from __future__ import annotations

import argparse

__all__ = ["positive_int", "nonneg_int", "positive_float", "nonneg_float", "float_between", "model_help",
           "add_weights_argument", "add_anm_scale_argument", "predictor_options"]


def model_help() -> str:
    """``--model`` help: the registered predictors, the default and why (one line)."""
    from ..core.predictors import available_models

    names = available_models()
    return (f"predictor: {', '.join(names)} (default {names.default}: {names.reason})")


def _number(kind, test, expected):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected.replace(" ", "_")
    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive integer")
nonneg_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: v > 0 and v != float("inf"), "a positive number")
nonneg_float = _number(float, lambda v: 0 <= v < float("inf"), "a number >= 0")


def float_between(lo: float, hi: float, what: str = "value", inclusive: bool = True):
    """A parser for a float in [lo, hi] (or (lo, hi) when not ``inclusive``)."""
    if inclusive:
        return _number(float, lambda v: lo <= v <= hi, f"{what} between {lo:g} and {hi:g}")
    return _number(float, lambda v: lo < v < hi, f"{what} in ({lo:g}, {hi:g})")


def add_anm_scale_argument(p) -> None:
    """``--anm-scale``: the unit of ANM's amplitudes (default: Å from the amplitude model)."""
    p.add_argument("--anm-scale", default=None, choices=["amplitude", "relative", "bfactors"],
                   help="ANM only: amplitude (default): Å² from the shipped amplitude model fitted to "
                        "ATLAS MD (300 K); relative: kT/gamma units; bfactors: fit to the file's B-factors")


def add_weights_argument(p) -> None:
    """``--weights FILE``: a ``train --export`` output instead of the shipped weights."""
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="learned models only: weights file (.safetensors, its .json beside it) from "
                        "`dynaprot-viz train --export`, instead of the shipped weights")


def predictor_options(args) -> dict:
    """Options for the predictor ``args.model`` (already resolved) from the command's flags.

    ``--anm-scale`` goes to ANM only; ``--device`` and ``--weights`` to the predictors
    that take them (the learned models).  A flag the chosen model cannot use is refused
    in one line, and a ``--weights`` file that does not exist is refused before any work.
    """
    import inspect
    from pathlib import Path

    from ..core.errors import InputError
    from ..core.predictors import get_predictor

    model = args.model
    options = {}
    scale = getattr(args, "anm_scale", None)
    if scale is not None:
        if model != "anm":
            raise InputError("--anm-scale applies only to --model anm")
        options["scale"] = scale
    accepted = inspect.signature(get_predictor(model)).parameters
    for name in ("device", "weights"):
        value = getattr(args, name, None)
        if value is None:
            continue
        if name not in accepted:
            raise InputError(f"--{name} applies only to the learned models (dynaprot, resaxial), "
                             f"not to --model {model}")
        if name == "weights":
            path = Path(value)
            if not path.is_file():
                raise InputError(f"--weights {path}: no such file")
            value = path
        options[name] = value
    return options
