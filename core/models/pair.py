"""Evoformer-style pair blocks (AlphaFold2 supplement Alg. 11-15) with row chunking.

All modules take the pair representation ``z`` [*, N, N, c_z] and a residue mask
[*, N] and return the *update* of z.  ``chunk_size`` (rows of z processed at a
time) bounds the memory of the O(N^3) steps so that N = 1,000 fits on a
workstation; ``chunk_size=None`` processes every row at once.  Both paths give
the same result up to float rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .primitives import Linear

__all__ = ["TriangleMultiplicativeUpdate", "TriangleAttention", "PairTransition", "PairBlock"]

_MASK_BIAS = -1e9


def _chunks(n, chunk_size):
    step = n if not chunk_size else int(chunk_size)
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


class TriangleMultiplicativeUpdate(nn.Module):
    """Alg. 11 (outgoing edges, x_ij = sum_k a_ik b_jk) and Alg. 12 (incoming
    edges, x_ij = sum_k a_ki b_kj).

    Parameters
    ----------
    c_z : int
        Pair channels.
    c_hidden : int
        Channels of a and b.
    outgoing : bool
    """

    def __init__(self, c_z, c_hidden=16, outgoing=True):
        super().__init__()
        self.outgoing = outgoing
        self.c_hidden = c_hidden
        self.layer_norm_in = nn.LayerNorm(c_z)
        self.linear_a_p = Linear(c_z, c_hidden)
        self.linear_a_g = Linear(c_z, c_hidden, init="gating")
        self.linear_b_p = Linear(c_z, c_hidden)
        self.linear_b_g = Linear(c_z, c_hidden, init="gating")
        self.linear_g = Linear(c_z, c_z, init="gating")
        self.layer_norm_out = nn.LayerNorm(c_hidden)
        self.linear_z = Linear(c_hidden, c_z, init="final")

    def forward(self, z, mask, chunk_size=None):
        """z : [*, N, N, c_z]; mask : [*, N].  Returns the update [*, N, N, c_z]."""
        n = z.shape[-2]
        pair_mask = (mask[..., :, None] * mask[..., None, :])[..., None]  # [*, N, N, 1]
        batch = z.shape[:-3]
        a = z.new_empty(batch + (self.c_hidden, n, n))  # [*, C, N, N]
        b = z.new_empty(batch + (self.c_hidden, n, n))
        for rows in _chunks(n, chunk_size):
            zn = self.layer_norm_in(z[..., rows, :, :])  # [*, R, N, c_z]
            pm = pair_mask[..., rows, :, :]
            a[..., rows, :] = (torch.sigmoid(self.linear_a_g(zn)) * self.linear_a_p(zn) * pm).movedim(-1, -3)
            b[..., rows, :] = (torch.sigmoid(self.linear_b_g(zn)) * self.linear_b_p(zn) * pm).movedim(-1, -3)
        out = []
        for rows in _chunks(n, chunk_size):
            if self.outgoing:
                x = a[..., rows, :] @ b.transpose(-1, -2)  # [*, C, R, N]: sum_k a_ik b_jk
            else:
                x = a[..., :, rows].transpose(-1, -2) @ b  # [*, C, R, N]: sum_k a_ki b_kj
            x = self.layer_norm_out(x.movedim(-3, -1))  # [*, R, N, C]
            g = torch.sigmoid(self.linear_g(self.layer_norm_in(z[..., rows, :, :])))
            out.append(g * self.linear_z(x))
        return torch.cat(out, dim=-3)


class TriangleAttention(nn.Module):
    """Alg. 13 (around the starting node: row i attends over k with bias b_jk)
    and Alg. 14 (around the ending node: the same on the transposed pair map).

    Parameters
    ----------
    c_z : int
    c_hidden : int
        Channels per head.
    no_heads : int
    starting : bool
    """

    def __init__(self, c_z, c_hidden=8, no_heads=2, starting=True):
        super().__init__()
        self.starting = starting
        self.c_hidden, self.no_heads = c_hidden, no_heads
        self.layer_norm = nn.LayerNorm(c_z)
        self.linear_q = Linear(c_z, c_hidden * no_heads, bias=False, init="glorot")
        self.linear_k = Linear(c_z, c_hidden * no_heads, bias=False, init="glorot")
        self.linear_v = Linear(c_z, c_hidden * no_heads, bias=False, init="glorot")
        self.linear_b = Linear(c_z, no_heads, bias=False)
        self.linear_g = Linear(c_z, c_hidden * no_heads, init="gating")
        self.linear_o = Linear(c_hidden * no_heads, c_z, init="final")

    def forward(self, z, mask, chunk_size=None):
        """z : [*, N, N, c_z]; mask : [*, N].  Returns the update [*, N, N, c_z]."""
        if not self.starting:
            z = z.transpose(-2, -3)
        n = z.shape[-2]
        h, c = self.no_heads, self.c_hidden
        batch = z.shape[:-3]
        # bias b_jk shared by all rows, plus the key mask: [*, 1, H, N, N]
        bias = self.linear_b(self.layer_norm(z)).movedim(-1, -3)  # [*, H, N, N]
        bias = bias + (_MASK_BIAS * (1.0 - mask))[..., None, None, :]
        bias = bias.unsqueeze(-4)
        out = []
        for rows in _chunks(n, chunk_size):
            zn = self.layer_norm(z[..., rows, :, :])  # [*, R, N, c_z]
            r = zn.shape[-3]
            # [*, R, N, H*C] -> [*, R, H, N, C]
            q, k, v = (lin(zn).view(batch + (r, n, h, c)).transpose(-2, -3)
                       for lin in (self.linear_q, self.linear_k, self.linear_v))
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=1.0 / math.sqrt(c))
            o = o.transpose(-2, -3).reshape(batch + (r, n, h * c))  # [*, R, N, H*C]
            out.append(self.linear_o(torch.sigmoid(self.linear_g(zn)) * o))
        out = torch.cat(out, dim=-3)
        return out if self.starting else out.transpose(-2, -3)


class PairTransition(nn.Module):
    """Alg. 15: z + W2 relu(W1 LN(z)), hidden = factor * c_z (returns the update)."""

    def __init__(self, c_z, factor=2):
        super().__init__()
        self.layer_norm = nn.LayerNorm(c_z)
        self.linear_1 = Linear(c_z, factor * c_z, init="relu")
        self.linear_2 = Linear(factor * c_z, c_z, init="final")

    def forward(self, z, mask, chunk_size=None):
        n = z.shape[-2]
        out = [self.linear_2(torch.relu(self.linear_1(self.layer_norm(z[..., rows, :, :]))))
               for rows in _chunks(n, chunk_size)]
        return torch.cat(out, dim=-3)


class PairBlock(nn.Module):
    """One pair block of the Evoformer (Alg. 6 lines 11-15, without dropout)."""

    def __init__(self, c_z, c_hidden_mul=16, c_hidden_att=8, no_heads=2, transition_factor=2):
        super().__init__()
        self.tri_mul_out = TriangleMultiplicativeUpdate(c_z, c_hidden_mul, outgoing=True)
        self.tri_mul_in = TriangleMultiplicativeUpdate(c_z, c_hidden_mul, outgoing=False)
        self.tri_att_start = TriangleAttention(c_z, c_hidden_att, no_heads, starting=True)
        self.tri_att_end = TriangleAttention(c_z, c_hidden_att, no_heads, starting=False)
        self.transition = PairTransition(c_z, transition_factor)

    def forward(self, z, mask, chunk_size=None):
        """z : [*, N, N, c_z]; mask : [*, N] -> [*, N, N, c_z]."""
        for module in (self.tri_mul_out, self.tri_mul_in, self.tri_att_start, self.tri_att_end, self.transition):
            z = z + module(z, mask, chunk_size)
        return z
