"""Evoformer-style pair blocks (AlphaFold2 supplement Alg. 11-15) with row chunking.

All modules take the pair representation ``z`` [*, N, N, c_z] and a residue mask
[*, N] and return the *update* of z.  ``chunk_size`` (rows of z processed at a
time) bounds the memory of the O(N^3) steps so that N = 1,000 fits on a
workstation; ``chunk_size=None`` processes every row at once.  Both paths give
the same result up to float rounding.

Speed on CPU: inside the memory chunks every module works on pieces of rows
whose temporaries fit in cache (``_cache_rows``; for triangle attention about
2^19 logits per piece), since the elementwise work (softmax, gates, layer norms)
is memory-bound on N^2 and N^3 tensors.  Several small linears are merged into
one matmul; the attention softmax scale is folded into the query weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .primitives import Linear

__all__ = ["TriangleMultiplicativeUpdate", "TriangleAttention", "PairTransition", "PairBlock"]

_MASK_BIAS = -1e9
#: logits per piece of rows in triangle attention (about 2 MB in float32: stays in cache; measured best of 2^16..2^21 at N = 271, one and two threads)
_ATT_ELEMENTS = 1 << 19


def _cache_rows(n, chunk_size, width):
    """Rows per piece: at most ``chunk_size`` (memory) and about ``_ATT_ELEMENTS``
    numbers of ``width`` per pair entry (cache); results do not depend on it."""
    return max(1, min(n if not chunk_size else int(chunk_size), _ATT_ELEMENTS // max(1, n * width)))


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
        ch = self.c_hidden
        batch = z.shape[:-3]
        # a and b are built channel-first ([*, 2C, N, N], what the N x N matmuls below
        # need) straight from a matmul with the transposed input, and the gates
        # come from their own matmul, so that sigmoid and products run on
        # contiguous memory (on strided slices they cost more than the matmuls)
        w_p = torch.cat([self.linear_a_p.weight, self.linear_b_p.weight])  # [2C, c_z]
        b_p = torch.cat([self.linear_a_p.bias, self.linear_b_p.bias])[:, None]
        w_g = torch.cat([self.linear_a_g.weight, self.linear_b_g.weight])
        b_g = torch.cat([self.linear_a_g.bias, self.linear_b_g.bias])[:, None]
        ab = z.new_empty(batch + (2 * ch, n, n))  # [*, 2C, N, N]: a then b
        g = z.new_empty(z.shape)  # output gate [*, N, N, c_z]
        for rows in _chunks(n, _cache_rows(n, chunk_size, 4 * ch + z.shape[-1])):
            zn = self.layer_norm_in(z[..., rows, :, :])  # [*, R, N, c_z]
            r = zn.shape[-3]
            zt = zn.reshape(batch + (r * n, zn.shape[-1])).transpose(-1, -2)  # [*, c_z, R N]
            pm = (mask[..., rows, None] * mask[..., None, :]).reshape(batch + (1, r * n))
            gate = torch.sigmoid(torch.matmul(w_g, zt) + b_g)  # [*, 2C, R N]
            ab[..., rows, :] = ((torch.matmul(w_p, zt) + b_p) * gate * pm).view(batch + (2 * ch, r, n))
            g[..., rows, :, :] = torch.sigmoid(self.linear_g(zn))
        a, b = ab[..., :ch, :, :], ab[..., ch:, :, :]
        if self.outgoing:
            bt = b.transpose(-1, -2)  # x_ij = sum_k a_ik b_jk
        else:
            a = a.transpose(-1, -2).contiguous()  # x_ij = sum_k a_ki b_kj
            bt = b
        out = g  # written in place, row chunk by row chunk
        for rows in _chunks(n, _cache_rows(n, chunk_size, 2 * ch)):
            x = torch.matmul(a[..., rows, :], bt)  # [*, C, R, N]
            x = self.layer_norm_out(x.movedim(-3, -1))  # [*, R, N, C]
            out[..., rows, :, :] *= self.linear_z(x)
        return out


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
        bias = bias.unsqueeze(-4).contiguous()
        # q, k, v from one matmul [c_z, 3 H C]; the gate from its own, so that its
        # sigmoid runs on contiguous memory
        w = torch.cat([self.linear_q.weight * (1.0 / math.sqrt(c)), self.linear_k.weight, self.linear_v.weight])
        # rows are processed in pieces whose [R, H, N, N] logits stay in cache, inside
        # the memory chunks asked for by chunk_size; results do not depend on either
        out = torch.empty(z.shape, dtype=z.dtype, device=z.device)
        for rows in _chunks(n, _cache_rows(n, chunk_size, h * n)):
            zn = self.layer_norm(z[..., rows, :, :])  # [*, R, N, c_z]
            r = zn.shape[-3]
            qkv = F.linear(zn, w).view(batch + (r, n, 3, h, c))
            # [*, R, N, H, C] -> [*, R, H, N, C]
            q, k, v = (qkv[..., i, :, :].transpose(-2, -3) for i in range(3))
            a = torch.matmul(q, k.transpose(-1, -2))  # [*, R, H, N, N]
            a += bias
            a = torch.softmax(a, dim=-1)
            o = torch.matmul(a, v).transpose(-2, -3).reshape(batch + (r, n, h * c))  # [*, R, N, H*C]
            out[..., rows, :, :] = self.linear_o(torch.sigmoid(self.linear_g(zn)) * o)
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
               for rows in _chunks(n, _cache_rows(n, chunk_size, self.linear_1.out_features))]
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
