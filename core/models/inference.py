"""Shared by both learned predictors (DynaProt, ResAxial) and the trainers: the
device resolver, the length limit and the preview-weights warning."""

from __future__ import annotations

import warnings

import torch

from ..errors import InputError

__all__ = ["resolve_device", "check_length", "MAX_RESIDUES"]


def resolve_device(device) -> torch.device:
    """``None`` or ``"auto"`` -> CUDA when available, else CPU; ``"cpu"``, ``"cuda"``,
    ``"cuda:K"`` or a torch.device as given; InputError (one line) for anything else
    and for CUDA without CUDA.  Shared by the predictors and the trainers."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:K' or None, got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return dev


_PREVIEW_WARNED: set = set()


def _warn_preview(model: str, card: str) -> None:
    """Once per process: the shipped weights are a preview, not a scientific model."""
    if model not in _PREVIEW_WARNED:
        _PREVIEW_WARNED.add(model)
        warnings.warn(
            f"{model}: the shipped weights are a PREVIEW trained on a tiny CPU-only MD campaign "
            f"(17 small chains, 2.29 ns); they do not generalise (see dynaprot_viz/weights/{card}); "
            "compare with model='anm'",
            stacklevel=3,
        )


def _warn_not_default(registry_name: str, model: str, card: str) -> None:
    """Once per process, unless ``registry_name`` is the default model: where the shipped
    held-out evaluation says this learned model beats ANM and where it does not."""
    from ..predictors import default_model, held_out_comparison

    if registry_name in _PREVIEW_WARNED or default_model() == registry_name:
        return
    _PREVIEW_WARNED.add(registry_name)
    figures = held_out_comparison(registry_name) or "no held-out figures shipped"
    warnings.warn(f"{model}: {figures}; the default model is {default_model()} "
                  f"(see dynaprot_viz/weights/{card})", stacklevel=3)


#: The pair blocks cost O(N^3): about 20 s at N = 1000 on one CPU core, hours beyond a
#: few thousand; longer chains are refused with a one-line reason (override: max_residues).
MAX_RESIDUES = 2000


def check_length(chain, model: str, max_residues: int) -> None:
    """InputError when ``chain`` is longer than ``max_residues`` (a predictor's practical limit)."""
    if len(chain) > max_residues:
        raise InputError(
            f"{chain.source}: {len(chain)} residues; {model} is limited to {max_residues} on this build "
            f"(cost grows as N^3): select a chain or domain, or pass max_residues=..."
        )
