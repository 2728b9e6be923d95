"""Argument types shared by the sub-commands: numbers checked at parse time, so
argparse reports a bad value in one line (exit 2) before any work starts."""

from __future__ import annotations

import argparse

__all__ = ["positive_int", "nonneg_int", "positive_float", "nonneg_float", "float_between", "model_help"]


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
