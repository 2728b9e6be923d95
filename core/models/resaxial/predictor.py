"""The ``resaxial`` predictor: a chain -> isotropic :class:`~dynaprot_viz.core.gaussian.Dynamics`.

ResAxial predicts a per-residue RMSF r_i (Å) and a correlation map rho_ij; it has
no anisotropy.  The Gaussian built from them (DESIGN.md section 1):

- marginals Sigma_i = (r_i^2 / 3) I_3 (Å²), so tr Sigma_i = r_i^2;
- correlation: rho projected onto the PSD cone with unit diagonal (symmetrise,
  clip eigenvalues at ``PSD_FLOOR``, rescale to unit diagonal), rho+;
- coupling C_ij = rho+_ij r_i r_j / 3 (Å²), PSD because rho+ is; C_ii = tr(Sigma_i) / 3
  as for every other predictor, and the DCCM of the result is rho+.

The result is flagged ``isotropic=True`` so that viewers say so instead of
drawing spheres as ellipsoids.  Weights: ``dynaprot_viz/weights/resaxial-preview.safetensors``
with its config ``resaxial-preview.json`` beside it (safetensors only, never pickle).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ...errors import InputError
from ...gaussian import Dynamics
from ...structure import ProteinChain
from .model import ResAxial, ResAxialConfig, collate_resaxial
from ..inference import MAX_RESIDUES, _warn_preview, check_length, resolve_device

__all__ = [
    "predict_resaxial",
    "load_resaxial",
    "default_weights_path",
    "correlation_to_psd",
    "dynamics_from_rmsf_correlation",
    "PSD_FLOOR",
    "RMSF_FLOOR",
    "WEIGHTS_NAME",
]

#: eigenvalue floor of the projected correlation (its eigenvalues sum to N)
PSD_FLOOR = 1e-6
#: smallest RMSF (Å) turned into a marginal, so every Sigma_i is positive definite
RMSF_FLOOR = 1e-3
#: file name of the packaged preview weights (config: same stem + .json)
WEIGHTS_NAME = "resaxial-preview.safetensors"

_MODEL_CACHE: dict = {}


def default_weights_path() -> Path:
    """Where the packaged ResAxial weights live (they may be absent)."""
    try:
        from importlib.resources import files

        return Path(str(files("dynaprot_viz") / "weights" / WEIGHTS_NAME))
    except Exception:  # pragma: no cover - source tree without the package installed
        return Path(__file__).resolve().parents[2] / "dynaprot_viz" / "weights" / WEIGHTS_NAME


def load_resaxial(path=None, device=None) -> ResAxial:
    """A :class:`ResAxial` in eval mode from ``path`` (.safetensors; config in the
    same stem + ``.json``, key ``model_config``).  Cached per (path, mtime, device).

    Raises
    ------
    InputError
        The weights or their config are missing or do not fit the model.
    """
    from safetensors.torch import load_file

    path = Path(path) if path is not None else default_weights_path()
    cfg_path = path.with_suffix(".json")
    if not path.is_file():
        raise InputError(f"resaxial weights not found at {path}: train them with "
                         "'dynaprot-viz train training/configs/resaxial_tiny.yaml' or pass weights=PATH")
    if not cfg_path.is_file():
        raise InputError(f"{cfg_path}: missing; the resaxial weights {path.name} need their config json beside them")
    device = resolve_device(device) if device is not None else torch.device("cpu")
    key = (str(path.resolve()), path.stat().st_mtime_ns, str(device))
    if key in _MODEL_CACHE:
        return _MODEL_CACHE[key]
    try:
        meta = json.loads(cfg_path.read_text())
        config = ResAxialConfig.from_dict(meta["model_config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{cfg_path}: not a ResAxial config ({exc})") from None
    model = ResAxial(config)
    try:
        state = load_file(str(path))
        model.load_state_dict(state, strict=True)
    except Exception as exc:
        raise InputError(f"{path}: cannot load ResAxial weights ({' '.join(str(exc).split())[:200]})") from None
    model = model.to(device).eval()
    _MODEL_CACHE.clear()  # keep one model in memory
    _MODEL_CACHE[key] = model
    return model


def correlation_to_psd(corr: np.ndarray, floor: float = PSD_FLOOR) -> np.ndarray:
    """Project a correlation-like matrix onto the PSD cone with unit diagonal.

    corr : (N, N).  Symmetrise, clip eigenvalues at ``floor``, rescale rows and
    columns so the diagonal is 1.  Returns (N, N), symmetric positive definite.
    (Eigenvalue clipping is the first step of Higham's alternating projections;
    one step is enough here: the result only has to be a valid correlation.)
    """
    c = 0.5 * (np.asarray(corr, dtype=np.float64) + np.asarray(corr, dtype=np.float64).T)
    w, v = np.linalg.eigh(c)
    c = (v * np.clip(w, floor, None)) @ v.T
    d = np.sqrt(np.diag(c))
    c = c / np.outer(d, d)
    c = 0.5 * (c + c.T)
    np.fill_diagonal(c, 1.0)
    return c


def dynamics_from_rmsf_correlation(mean, rmsf, corr, residues, model_name: str = "resaxial") -> Dynamics:
    """Isotropic Gaussian dynamics from RMSF (N,) Å and a correlation map (N, N).

    Sigma_i = (r_i^2 / 3) I (Å²); C_ij = rho+_ij r_i r_j / 3 (Å²) with rho+ =
    :func:`correlation_to_psd` (corr); r is floored at ``RMSF_FLOOR``.
    """
    r = np.clip(np.asarray(rmsf, dtype=np.float64), RMSF_FLOOR, None)
    rho = correlation_to_psd(corr)
    var = r**2 / 3.0  # per-axis variance, Å²
    marginals = var[:, None, None] * np.eye(3)[None]
    coupling = rho * np.outer(r, r) / 3.0
    return Dynamics(mean=mean, marginals=marginals, coupling=coupling, residues=residues,
                    model_name=model_name, isotropic=True)


def _embeddings_array(embeddings, n: int, source: str) -> np.ndarray:
    """(N, D) float32 from an array or an ``.npz`` / ``.npy`` path."""
    name = "embeddings"
    if isinstance(embeddings, (str, Path)):
        p = Path(embeddings)
        name = str(p)
        if not p.is_file():
            raise InputError(f"embeddings file {p}: no such file")
        try:
            data = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise InputError(f"{p}: not a numpy .npz/.npy file ({' '.join(str(exc).split())[:120]})") from None
        if isinstance(data, np.lib.npyio.NpzFile):
            keys = list(data.files)
            if "embeddings" in keys:
                arr = data["embeddings"]
            elif len(keys) == 1:
                arr = data[keys[0]]
            else:
                raise InputError(f"{p}: holds {', '.join(keys[:6])}; expected one array or one named 'embeddings'")
        else:
            arr = data
    else:
        arr = embeddings
    try:
        arr = np.asarray(arr, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError(f"{name}: not a numeric array") from None
    if arr.ndim != 2 or arr.shape[0] != n:
        raise InputError(f"{name}: expected shape ({n}, D) for the {n} residues of {source}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name}: contains NaN or infinite values")
    return arr


def predict_resaxial(chain: ProteinChain, device=None, weights=None, embeddings=None,
                     chunk_size: int | None = None, max_residues: int = MAX_RESIDUES) -> Dynamics:
    """ResAxial dynamics of a chain (isotropic).

    Parameters
    ----------
    chain : ProteinChain
        Only its C-alpha coordinates (N, 3) Å are used (distances: the output is
        invariant to rotating and translating the input).  ResAxial reads no
        residue frames, so a C-alpha-only chain (or one whose residues lack N or C)
        gives exactly the prediction of the full-backbone chain, with no
        approximation and no warning.
    device : str or torch.device, optional
        Default CPU.
    weights : path or ResAxial, optional
        A ``.safetensors`` file (config json beside it) or a model; default the
        packaged ``resaxial-preview`` weights.
    embeddings : path or array, optional
        Per-residue embeddings (N, D), e.g. ESM-2 computed elsewhere: an array,
        a ``.npy`` or an ``.npz`` with one array (or one named ``embeddings``).
        Only for weights trained with embeddings of that D.
    chunk_size : int, optional
        Rows of the axial attention at a time (default: the model's config).
    max_residues : int
        Longer chains are refused with an InputError (the cost grows as N^3).

    Returns
    -------
    Dynamics
        ``model_name="resaxial"``, ``isotropic=True``; marginals (N, 3, 3) Å²,
        coupling (N, N) Å².
    """
    if not isinstance(chain, ProteinChain):
        raise TypeError(f"chain must be a ProteinChain, got {type(chain).__name__}")
    check_length(chain, "ResAxial", max_residues)
    if isinstance(weights, ResAxial):
        model = weights
        dev = resolve_device(device) if device is not None else next(model.parameters()).device
        model = model.to(dev)
    else:
        if weights is None:
            _warn_preview("ResAxial", "resaxial-MODEL_CARD.md")
        model = load_resaxial(weights, device)
        dev = next(model.parameters()).device
    n = len(chain)
    emb = None
    if embeddings is not None:
        if not model.config.embed_dim:
            raise InputError("embeddings: these resaxial weights were trained on structure only; "
                             "use weights trained with embeddings or leave embeddings out")
        emb = _embeddings_array(embeddings, n, chain.source)
        if emb.shape[1] != model.config.embed_dim:
            raise InputError(f"embeddings: dimension {emb.shape[1]}, the resaxial weights expect "
                             f"{model.config.embed_dim}")
    elif model.config.embed_dim:
        raise InputError(f"embeddings: these resaxial weights need per-residue embeddings "
                         f"(N, {model.config.embed_dim}); pass embeddings=PATH.npz")
    item = {"ca": np.asarray(chain.ca, dtype=np.float32)}
    if emb is not None:
        item["embeddings"] = emb
    batch = collate_resaxial([item], model.config.multiple)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(batch["ca"].to(dev), batch["mask"].to(dev),
                        batch["embeddings"].to(dev) if emb is not None else None, chunk_size=chunk_size)
    finally:
        model.train(was_training)
    rmsf = out["rmsf"][0, :n].double().cpu().numpy()
    corr = out["correlation"][0, :n, :n].double().cpu().numpy()
    return dynamics_from_rmsf_correlation(chain.ca, rmsf, corr, chain.residues, "resaxial")
