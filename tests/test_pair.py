"""The optimised pair modules against the AlphaFold2 supplement's algorithms written plainly.

core/models/pair.py fuses matmuls, works channel-first and in cache-sized pieces of
rows; these tests restate Alg. 11-15 with einsum (float64, random non-trivial
weights, a padding mask) and require the same numbers, chunked or not.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import randomize_parameters

from dynaprot_viz.core.models.pair import PairTransition, TriangleAttention, TriangleMultiplicativeUpdate


def _randomise(module, seed):
    return randomize_parameters(module, seed, scale=0.4).double()


def _inputs(batch=2, n=19, c_z=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, n, n, c_z, generator=g, dtype=torch.float64)
    mask = torch.ones(batch, n, dtype=torch.float64)
    mask[1, -4:] = 0.0  # second chain padded
    return z, mask


def _ln(module, x):
    return F.layer_norm(x, module.normalized_shape, module.weight, module.bias, module.eps)


def _lin(linear, x):
    return F.linear(x, linear.weight, linear.bias)


def reference_triangle_multiplication(m, z, mask):
    """Alg. 11 (outgoing) / Alg. 12 (incoming), plainly."""
    pm = (mask[:, :, None] * mask[:, None, :])[..., None]
    zn = _ln(m.layer_norm_in, z)
    a = torch.sigmoid(_lin(m.linear_a_g, zn)) * _lin(m.linear_a_p, zn) * pm
    b = torch.sigmoid(_lin(m.linear_b_g, zn)) * _lin(m.linear_b_p, zn) * pm
    g = torch.sigmoid(_lin(m.linear_g, zn))
    x = torch.einsum("bikc,bjkc->bijc", a, b) if m.outgoing else torch.einsum("bkic,bkjc->bijc", a, b)
    return g * _lin(m.linear_z, _ln(m.layer_norm_out, x))


def reference_triangle_attention(m, z, mask):
    """Alg. 13 (starting node) / Alg. 14 (ending node), plainly."""
    if not m.starting:
        z = z.transpose(1, 2)
    h, c = m.no_heads, m.c_hidden
    zn = _ln(m.layer_norm, z)
    split = lambda t: t.reshape(t.shape[:-1] + (h, c))  # noqa: E731
    q, k, v = split(_lin(m.linear_q, zn)), split(_lin(m.linear_k, zn)), split(_lin(m.linear_v, zn))
    bias = _lin(m.linear_b, zn)  # [b, j, k, h]
    logits = torch.einsum("bijhc,bikhc->bhijk", q, k) / math.sqrt(c)
    logits = logits + bias.permute(0, 3, 1, 2)[:, :, None] + (1e9 * (mask - 1.0))[:, None, None, None, :]
    att = torch.softmax(logits, dim=-1)
    o = torch.einsum("bhijk,bikhc->bijhc", att, v).reshape(zn.shape[:-1] + (h * c,))
    out = _lin(m.linear_o, torch.sigmoid(_lin(m.linear_g, zn)) * o)
    return out if m.starting else out.transpose(1, 2)


@pytest.mark.parametrize("outgoing", [True, False])
@pytest.mark.parametrize("chunk_size", [None, 4])
def test_triangle_multiplication_matches_algorithm(outgoing, chunk_size):
    m = _randomise(TriangleMultiplicativeUpdate(8, 6, outgoing=outgoing), seed=1)
    z, mask = _inputs()
    torch.testing.assert_close(m(z, mask, chunk_size), reference_triangle_multiplication(m, z, mask),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("starting", [True, False])
@pytest.mark.parametrize("heads,channels", [(1, 16), (2, 8)])
@pytest.mark.parametrize("chunk_size", [None, 5])
def test_triangle_attention_matches_algorithm(starting, heads, channels, chunk_size):
    m = _randomise(TriangleAttention(8, channels, heads, starting=starting), seed=2)
    z, mask = _inputs()
    got = m(z, mask, chunk_size)
    ref = reference_triangle_attention(m, z, mask)
    # padded query rows see only masked keys: compare the real residues' rows
    keep = (mask[:, :, None] * mask[:, None, :]).bool()
    torch.testing.assert_close(got[keep], ref[keep], rtol=1e-10, atol=1e-10)


def test_pair_transition_matches_algorithm():
    m = _randomise(PairTransition(8, factor=3), seed=3)
    z, mask = _inputs()
    ref = _lin(m.linear_2, torch.relu(_lin(m.linear_1, _ln(m.layer_norm, z))))
    torch.testing.assert_close(m(z, mask, 3), ref, rtol=1e-12, atol=1e-12)


def test_gradients_match_algorithm():
    """Training goes through the same fused code: its gradients equal the plain ones."""
    z, mask = _inputs(n=11)
    for m, ref in ((_randomise(TriangleMultiplicativeUpdate(8, 6, outgoing=False), 4), reference_triangle_multiplication),
                   (_randomise(TriangleAttention(8, 16, 1, starting=False), 5), reference_triangle_attention)):
        keep = (mask[:, :, None] * mask[:, None, :]).bool()[..., None]
        grads = []
        for fn in (lambda: m(z, mask, 3), lambda: ref(m, z, mask)):
            m.zero_grad()
            (fn() * keep).square().sum().backward()
            grads.append([p.grad.clone() for p in m.parameters()])
        for g1, g2 in zip(*grads):
            torch.testing.assert_close(g1, g2, rtol=1e-9, atol=1e-9)
