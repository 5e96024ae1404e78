"""Cases of MultiheadAttention (issue 12): packed and separate projections (kdim/vdim), biases
or none, add_bias_kv and add_zero_attn, sequence-first and batch-first, unbatched, a boolean
key_padding_mask given positionally, dropout in training (gradcheck only) and in eval mode.
Masks given by name, self-attention with one array, need_weights=False, per-head weights and
fully masked rows: tests/test_attention.py."""

from __future__ import annotations

import numpy as np

import xpnet as xn
from tests.layer_cases import _placed, Case

# a key_padding_mask (N=2, S=5) that leaves every sequence some key (a fully masked row is NaN)
KPM = np.array([[False, True, False, False, True], [True, False, False, True, False]])


def qkv(q, k, v, *extra):
    """Normal query, key and value of the shapes given, then the constant arrays ``extra``."""
    return lambda rng: tuple(rng.standard_normal(s) for s in (q, k, v)) + tuple(extra)


def mha(*args, **kwargs):
    return lambda be, dt: xn.MultiheadAttention(*args, **kwargs, **_placed(be, dt))


def eval_mode(make):
    return lambda be, dt: make(be, dt).eval()


TAG = r"MultiheadAttention\(embed_dim=4, num_heads=2\)"

CASES = [
    Case("MultiheadAttention", xn.MultiheadAttention, mha(4, 2), qkv((3, 2, 4), (5, 2, 4), (5, 2, 4)),
         lambda nn: nn.MultiheadAttention(4, 2), qkv((3, 2, 5), (5, 2, 4), (5, 2, 4)),
         (ValueError, TAG + r" expected query of shape \(L, N, 4\) or \(L, 4\) unbatched, got \(3, 2, 5\)")),
    Case("MultiheadAttention-batch-first-kpm", xn.MultiheadAttention, mha(6, 3, batch_first=True),
         qkv((2, 3, 6), (2, 5, 6), (2, 5, 6), KPM), lambda nn: nn.MultiheadAttention(6, 3, batch_first=True),
         qkv((2, 3, 6), (2, 5, 6), (2, 5, 6), KPM[:, :4]),
         (ValueError, r"MultiheadAttention\(embed_dim=6, num_heads=3\) expected key_padding_mask of shape \(2, 5\) "
                      r"\(\(N, S\)\), got \(2, 4\)")),
    Case("MultiheadAttention-kdim-vdim-bias-kv-zero-attn", xn.MultiheadAttention,
         mha(4, 2, kdim=3, vdim=5, add_bias_kv=True, add_zero_attn=True),
         qkv((3, 2, 4), (5, 2, 3), (5, 2, 5), KPM),
         lambda nn: nn.MultiheadAttention(4, 2, kdim=3, vdim=5, add_bias_kv=True, add_zero_attn=True),
         qkv((3, 2, 4), (5, 2, 4), (5, 2, 5)),
         (ValueError, TAG + r" expected key of shape \(S, N, 3\) \(as the query is 3-D\), got \(5, 2, 4\)")),
    Case("MultiheadAttention-unbatched-no-bias", xn.MultiheadAttention, mha(4, 4, bias=False),
         qkv((3, 4), (6, 4), (6, 4)), lambda nn: nn.MultiheadAttention(4, 4, bias=False),
         qkv((3, 4), (6, 1, 4), (6, 1, 4)),
         (ValueError, r"MultiheadAttention\(embed_dim=4, num_heads=4\) expected key of shape \(S, 4\) "
                      r"\(as the query is 2-D\), got \(6, 1, 4\)")),
    Case("MultiheadAttention-unbatched-kpm-batch-first", xn.MultiheadAttention, mha(4, 2, batch_first=True),
         qkv((3, 4), (5, 4), (5, 4), KPM[0]), lambda nn: nn.MultiheadAttention(4, 2, batch_first=True),
         qkv((3, 4), (5, 4), (4, 4)),
         (ValueError, TAG + r" expected key and value of one length S \(axis 0\), got \(5, 4\) and \(4, 4\)")),
    Case("MultiheadAttention-dropout-train", xn.MultiheadAttention, mha(4, 2, dropout=0.3),
         qkv((4, 2, 4), (4, 2, 4), (4, 2, 4)), lambda nn: nn.MultiheadAttention(4, 2, dropout=0.3),
         qkv((4, 3, 4), (4, 2, 4), (4, 2, 4)),
         (ValueError, TAG + r" expected query, key and value of one batch size \(axis 1\)"),
         parity="dropout masks are random: xpnet's and torch's generators differ"),
    Case("MultiheadAttention-dropout-eval", xn.MultiheadAttention, eval_mode(mha(4, 2, dropout=0.3)),
         qkv((4, 2, 4), (3, 2, 4), (3, 2, 4)), lambda nn: nn.MultiheadAttention(4, 2, dropout=0.3),
         lambda rng: tuple(rng.integers(0, 3, size=(4, 2, 4)) for _ in range(3)),
         (TypeError, TAG + r" expected a floating-point .*query, got int64")),
]
