"""``predict_dynaprot``: a ProteinChain -> Dynamics with the shipped DynaProt-M + J weights.

Weights live inside the package (``dynaprot_viz/weights/<name>.safetensors`` with
``<name>.json`` beside it holding the model config; ``MODEL_CARD.md`` says what
they were trained on).  Models are built once per (weights file, device) and cached.

Register with::

    register_predictor("dynaprot", "dynaprot_viz.core.models.dynaprot.predictor:predict_dynaprot",
                       "DynaProt-M + J (IPA, learned from MD): anisotropic marginals and coupling")
"""

from __future__ import annotations

import json
import threading
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ...errors import InputError
from ...gaussian import Dynamics
from ...structure import frames_for_model
from ..inference import MAX_RESIDUES, _warn_not_default, check_length, resolve_device
from .model import DynaProt, DynaProtConfig, collate, featurize

__all__ = ["predict_dynaprot", "load_dynaprot", "default_weights", "resolve_device", "DEFAULT_WEIGHTS"]

DEFAULT_WEIGHTS = "dynaprot.safetensors"
#: above this many residues the pair blocks of DynaProt-J run row-chunked
CHUNK_ABOVE = 384
CHUNK_SIZE = 64

_CACHE: dict = {}
_LOCK = threading.Lock()


def default_weights() -> Path:
    """Path of the shipped weights file inside the installed package."""
    return Path(str(resources.files("dynaprot_viz.weights").joinpath(DEFAULT_WEIGHTS)))


def load_dynaprot(weights=None, device="cpu") -> DynaProt:
    """The DynaProt model (M + J) of a safetensors file, in eval mode, cached.

    weights : path, optional
        ``.safetensors`` file with ``<same stem>.json`` beside it (or the config
        in the file's metadata).  Default: the shipped weights (``dynaprot.safetensors``, MODEL_CARD.md).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(weights) if weights is not None else default_weights()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such weights file")
    dev = torch.device(device)
    key = (str(path.resolve()), path.stat().st_mtime_ns, str(dev))
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
            state = load_file(str(path))
        except Exception as exc:
            raise InputError(f"{path}: not a readable safetensors file ({type(exc).__name__})") from None
        cfg_path = path.with_suffix(".json")
        if cfg_path.exists():
            info = json.loads(cfg_path.read_text())
            model_cfg, use_m, use_j = info["model_config"], info.get("use_m", True), info.get("use_j", True)
        elif "model_config" in meta:
            model_cfg = json.loads(meta["model_config"])
            use_m, use_j = meta.get("use_m", "True") == "True", meta.get("use_j", "True") == "True"
        else:
            raise InputError(f"{path}: no model config ({cfg_path.name} missing and none in the file)")
        try:
            model = DynaProt(DynaProtConfig.from_dict(model_cfg), use_m=use_m, use_j=use_j)
        except (ValueError, KeyError, TypeError) as exc:  # e.g. ResAxial weights given to DynaProt
            raise InputError(f"{path}: not DynaProt weights ({' '.join(str(exc).split())[:160]})") from None
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise InputError(f"{path}: weights do not match the model config "
                             f"(missing {len(missing)}, unexpected {len(unexpected)} tensors)")
        model = model.to(dev).eval()
        _CACHE[key] = model
        return model


def predict_dynaprot(chain, device=None, weights=None, max_residues: int = MAX_RESIDUES) -> Dynamics:
    """DynaProt-M marginals and DynaProt-J coupling of one chain.

    Parameters
    ----------
    chain : ProteinChain
        Residues with N, CA and C use their exact frames; residues lacking N or C
        (C-alpha-only files, coarse models) get approximate frames built from the
        C-alpha trace (:func:`~dynaprot_viz.core.structure.frames_for_model`, one
        UserWarning saying how many; accuracy in :mod:`dynaprot_viz.core.ca_trace`).
    device : {"cpu", "cuda", "cuda:K", None}
        None (default): CUDA when available, else CPU.
    weights : path, optional
        A ``.safetensors`` file (default: the shipped weights, ``dynaprot.safetensors``).
    max_residues : int
        Longer chains are refused with an InputError (the cost grows as N^3).

    Returns
    -------
    Dynamics
        ``mean`` = the input C-alpha (Å), ``marginals`` (N, 3, 3) Å² from M,
        ``coupling`` (N, N) Å² from J, ``model_name`` ``"dynaprot"``.
    """
    check_length(chain, "DynaProt", max_residues)
    if weights is None:
        _warn_not_default("dynaprot", "DynaProt", "MODEL_CARD.md")
    dev = resolve_device(device)
    model = load_dynaprot(weights, dev)
    if model.m is None or model.j is None:
        raise InputError("the DynaProt weights must contain both DynaProt-M and DynaProt-J")
    n = len(chain)
    if n < 2:
        raise InputError(f"{chain.source}: DynaProt needs at least 2 residues, got {n}")
    frames = frames_for_model(chain, "DynaProt")  # warns once when residues lack N or C
    batch = collate([featurize(chain, frames=frames)])
    batch = {k: (v.to(dev, torch.float32) if v.is_floating_point() else v.to(dev)) for k, v in batch.items()}
    with torch.inference_mode():
        out = model(batch, chunk_size=CHUNK_SIZE if n > CHUNK_ABOVE else None)
    marg = out["marginals"][0].double().cpu().numpy()
    coup = out["coupling"][0].double().cpu().numpy()
    marg = 0.5 * (marg + np.swapaxes(marg, 1, 2))
    coup = 0.5 * (coup + coup.T)
    return Dynamics(mean=chain.ca, marginals=marg, coupling=coup, residues=chain.residues, model_name="dynaprot")
