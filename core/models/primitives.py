"""Shared building blocks in OpenFold's manner: one ``Linear`` with named
initialisations, relative-position features and rigid-frame helpers.

Shapes are written ``[*, N, C]``; ``*`` is any batch shape.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "Linear",
    "relative_position_onehot",
    "relative_position_index",
    "embed_relative_position",
    "apply_frames",
    "invert_apply_frames",
    "rbf_distances",
    "NM_PER_ANGSTROM",
]

#: IPA works in nanometres, as AlphaFold does: translations (Å) are multiplied by this.
NM_PER_ANGSTROM = 0.1


class Linear(nn.Linear):
    """``nn.Linear`` with the initialisations of AlphaFold2 supplement 1.11.4.

    init : {"default", "relu", "glorot", "gating", "final"}
        ``default``: LeCun (truncated) normal, fan-in scale 1; ``relu``: He
        normal (fan-in scale 2); ``glorot``: Xavier uniform; ``gating``: zero
        weights and bias 1 (gates start open); ``final``: zero weights and bias
        (the layer starts as a no-op, so a residual block starts as identity).
    """

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, init: str = "default"):
        super().__init__(in_dim, out_dim, bias=bias)
        with torch.no_grad():
            if init in ("default", "relu"):
                scale = 2.0 if init == "relu" else 1.0
                std = math.sqrt(scale / max(1, in_dim)) / 0.87962566103423978  # truncation correction
                nn.init.trunc_normal_(self.weight, std=std, a=-2 * std, b=2 * std)
            elif init == "glorot":
                nn.init.xavier_uniform_(self.weight)
            elif init in ("gating", "final"):
                self.weight.zero_()
            else:
                raise ValueError(f"init must be default, relu, glorot, gating or final, got {init!r}")
            if bias:
                self.bias.fill_(1.0 if init == "gating" else 0.0)


def relative_position_index(residue_index: torch.Tensor, max_offset: int = 32) -> torch.Tensor:
    """The clipped sequence offset j - i shifted to 0 .. 2 * max_offset (AlphaFold2 Alg. 4).

    residue_index : [*, N] integer positions along the chain.  Returns [*, N, N], long.
    """
    d = residue_index[..., None, :] - residue_index[..., :, None]  # [*, N, N]: j - i
    return (torch.clamp(d, -max_offset, max_offset) + max_offset).long()


def relative_position_onehot(residue_index: torch.Tensor, max_offset: int = 32) -> torch.Tensor:
    """One-hot of :func:`relative_position_index`: [*, N, N, 2 * max_offset + 1], float."""
    return nn.functional.one_hot(relative_position_index(residue_index, max_offset), 2 * max_offset + 1).float()


def embed_relative_position(linear: nn.Linear, residue_index: torch.Tensor, max_offset: int = 32) -> torch.Tensor:
    """``linear(relative_position_onehot(...))`` computed as a lookup of the weight's
    columns: the same numbers without the [*, N, N, 2 * max_offset + 1] one-hot
    (65 floats per pair, 260 MB at N = 1000).  Returns [*, N, N, out_features]."""
    idx = relative_position_index(residue_index, max_offset)
    out = nn.functional.embedding(idx, linear.weight.t())
    return out + linear.bias if linear.bias is not None else out


def rbf_distances(x: torch.Tensor, d_min: float = 2.0, d_max: float = 22.0, n_bins: int = 16) -> torch.Tensor:
    """Gaussian radial basis of pairwise distances.

    x : [*, N, 3] positions in Å.  Returns [*, N, N, n_bins] (invariant to rigid motions).
    """
    d = torch.sqrt(((x[..., :, None, :] - x[..., None, :, :]) ** 2).sum(-1) + 1e-10)  # [*, N, N]
    mu = torch.linspace(d_min, d_max, n_bins, dtype=x.dtype, device=x.device)
    sigma = (d_max - d_min) / n_bins
    return torch.exp(-(((d[..., None] - mu) / sigma) ** 2))


def apply_frames(rot: torch.Tensor, trans: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Local -> global: x = R p + t.

    rot : [*, N, 3, 3] (columns = frame axes); trans : [*, N, 3];
    pts : [*, N, ..., 3] points in each residue's frame.  Returns the same shape as pts.
    """
    extra = pts.dim() - trans.dim()
    r = rot.reshape(rot.shape[:-2] + (1,) * extra + (3, 3))
    t = trans.reshape(trans.shape[:-1] + (1,) * extra + (3,))
    return torch.einsum("...ab,...b->...a", r, pts) + t


def invert_apply_frames(rot: torch.Tensor, trans: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Global -> local: p = R^T (x - t); shapes as :func:`apply_frames`."""
    extra = pts.dim() - trans.dim()
    r = rot.reshape(rot.shape[:-2] + (1,) * extra + (3, 3))
    t = trans.reshape(trans.shape[:-1] + (1,) * extra + (3,))
    return torch.einsum("...ba,...b->...a", r, pts - t)
