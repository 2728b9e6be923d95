"""Invariant Point Attention (AlphaFold2 supplement Alg. 22) on fixed residue frames.

The frames are the input structure's (N, CA, C Gram-Schmidt frames); unlike
AlphaFold's structure module they are never updated, so every output is
invariant to a global rotation and translation of the input.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .primitives import Linear, apply_frames, invert_apply_frames

__all__ = ["InvariantPointAttention", "Transition", "IPABlock"]

_MASK_BIAS = -1e9


class InvariantPointAttention(nn.Module):
    """Alg. 22: attention with scalar, pair-bias and point terms.

    Parameters
    ----------
    c_s : int
        Channels of the single representation s.
    c_z : int
        Channels of the pair representation z (bias and pair output).
    c_hidden : int
        Channels per head of the scalar queries, keys and values.
    no_heads : int
    no_qk_points, no_v_points : int
        Query/key and value points per head.
    eps : float
        Added under the square root of the point-norm features.
    """

    def __init__(self, c_s, c_z, c_hidden=16, no_heads=4, no_qk_points=4, no_v_points=4, eps=1e-8):
        super().__init__()
        self.c_s, self.c_z, self.c_hidden = c_s, c_z, c_hidden
        self.no_heads, self.no_qk_points, self.no_v_points, self.eps = no_heads, no_qk_points, no_v_points, eps
        h, c, pq, pv = no_heads, c_hidden, no_qk_points, no_v_points
        self.linear_q = Linear(c_s, h * c)
        self.linear_kv = Linear(c_s, 2 * h * c)
        self.linear_q_points = Linear(c_s, h * pq * 3)
        self.linear_kv_points = Linear(c_s, h * (pq + pv) * 3)
        self.linear_b = Linear(c_z, h)
        # softplus(head_weights) = gamma^h; AF2 initialises gamma^h = 1
        self.head_weights = nn.Parameter(torch.full((h,), math.log(math.e - 1.0)))
        self.linear_out = Linear(h * (c_z + c + pv * 4), c_s, init="final")

    def forward(self, s, z, rot, trans, mask):
        """
        s : [*, N, c_s]; z : [*, N, N, c_z]; rot : [*, N, 3, 3];
        trans : [*, N, 3] in nm; mask : [*, N] (1 = residue, 0 = padding).
        Returns [*, N, c_s], the update of s.
        """
        h, c, pq, pv = self.no_heads, self.c_hidden, self.no_qk_points, self.no_v_points
        batch = s.shape[:-2]
        n = s.shape[-2]
        q = self.linear_q(s).view(batch + (n, h, c))  # [*, N, H, C]
        k, v = self.linear_kv(s).view(batch + (n, h, 2 * c)).split(c, dim=-1)  # 2 x [*, N, H, C]

        # points: [*, N, H * P * 3] -> [*, N, H * P, 3] -> global frame
        q_pts = self.linear_q_points(s).view(batch + (n, h * pq, 3))
        q_pts = apply_frames(rot, trans, q_pts).view(batch + (n, h, pq, 3))  # [*, N, H, Pq, 3]
        kv_pts = self.linear_kv_points(s).view(batch + (n, h * (pq + pv), 3))
        kv_pts = apply_frames(rot, trans, kv_pts).view(batch + (n, h, pq + pv, 3))
        k_pts, v_pts = kv_pts.split([pq, pv], dim=-2)  # [*, N, H, Pq, 3], [*, N, H, Pv, 3]

        # scalar term and pair bias: [*, H, N, N]
        w_l = math.sqrt(1.0 / 3.0)
        a = torch.einsum("...ihc,...jhc->...hij", q, k) / math.sqrt(c)
        a = a + self.linear_b(z).movedim(-1, -3)
        # point term: sum_p |q_ip - k_jp|^2 = |q|^2 + |k|^2 - 2 q.k   [*, H, N, N]
        qf = q_pts.flatten(-2)  # [*, N, H, Pq*3]
        kf = k_pts.flatten(-2)
        d2 = (
            (qf**2).sum(-1).movedim(-1, -2)[..., :, None]  # [*, H, N, 1]
            + (kf**2).sum(-1).movedim(-1, -2)[..., None, :]  # [*, H, 1, N]
            - 2.0 * torch.einsum("...ihp,...jhp->...hij", qf, kf)
        )
        gamma = nn.functional.softplus(self.head_weights).view((h, 1, 1))
        w_c = math.sqrt(2.0 / (9.0 * pq))
        a = a - 0.5 * gamma * w_c * d2
        a = w_l * a
        a = a + (_MASK_BIAS * (1.0 - mask))[..., None, None, :]  # mask keys j
        a = torch.softmax(a, dim=-1)  # [*, H, N, N]

        o = torch.einsum("...hij,...jhc->...ihc", a, v).reshape(batch + (n, h * c))  # [*, N, H*C]
        o_pts = torch.einsum("...hij,...jhpx->...ihpx", a, v_pts)  # [*, N, H, Pv, 3] global
        o_pts = invert_apply_frames(rot, trans, o_pts.reshape(batch + (n, h * pv, 3)))  # local
        o_norm = torch.sqrt((o_pts**2).sum(-1) + self.eps)  # [*, N, H*Pv]
        o_pair = torch.einsum("...hij,...ijc->...ihc", a, z).reshape(batch + (n, h * self.c_z))
        feats = torch.cat([o, o_pts.flatten(-2), o_norm, o_pair], dim=-1)
        return self.linear_out(feats)


class Transition(nn.Module):
    """Two-layer MLP with a residual: s + W2 relu(W1 LN(s)), hidden = factor * c."""

    def __init__(self, c, factor=2):
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.linear_1 = Linear(c, factor * c, init="relu")
        self.linear_2 = Linear(factor * c, c, init="final")

    def forward(self, x):
        """x : [*, C] -> [*, C]"""
        return x + self.linear_2(torch.relu(self.linear_1(self.norm(x))))


class IPABlock(nn.Module):
    """s <- LN(s + IPA(s, z, T)); s <- Transition(s) (AF2 Alg. 20 lines 6-9, frames fixed)."""

    def __init__(self, c_s, c_z, transition_factor=2, **ipa_kwargs):
        super().__init__()
        self.ipa = InvariantPointAttention(c_s, c_z, **ipa_kwargs)
        self.norm = nn.LayerNorm(c_s)
        self.transition = Transition(c_s, transition_factor)

    def forward(self, s, z, rot, trans, mask):
        """s : [*, N, c_s]; z : [*, N, N, c_z]; rot [*, N, 3, 3]; trans [*, N, 3] nm; mask [*, N]."""
        s = self.norm(s + self.ipa(s, z, rot, trans, mask))
        return self.transition(s)
