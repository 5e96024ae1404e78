"""Cases of the transformer layers (issue 12): TransformerEncoderLayer and TransformerDecoderLayer
(post-norm and norm_first, sequence-first and batch-first, unbatched, ReLU and GELU, biases or
none, eval mode with dropout), TransformerEncoder, TransformerDecoder and Transformer; boolean
masks given positionally (a float mask is an input gradcheck would differentiate: those, by
name, and dropout in training: tests/test_transformer.py)."""

from __future__ import annotations

import numpy as np

import xpnet as xn
from tests.layer_cases import Case, _placed, ints

# masks that leave every query some key (a fully masked row is NaN): True = not attended
ATTN = np.array([[False, True, False], [False, False, True], [True, False, False]])  # (3, 3)
CROSS = np.array([[False, True, False, False, True]] * 3)  # (3, 5): tgt 3 x memory 5
PAD3 = np.array([[False, False, True], [False, True, False]])  # (N=2, 3)
PAD5 = np.array([[False, True, False, False, True], [True, False, False, False, False]])  # (N=2, 5)


def normals(*shapes, masks=()):
    """Normal arrays of ``shapes``, then the constant ``masks``."""
    return lambda rng: tuple(rng.standard_normal(s) for s in shapes) + tuple(masks)


def placed(cls, *args, mode="train", **kwargs):
    def make(be, dt):
        layer = cls(*args, **kwargs, **_placed(be, dt))
        return layer.eval() if mode == "eval" else layer
    return make


def encoder(num_layers, *args, norm=False, **kwargs):
    def make(be, dt):
        layer = xn.TransformerEncoderLayer(*args, **kwargs, **_placed(be, dt))
        return xn.TransformerEncoder(layer, num_layers, xn.LayerNorm(args[0], **_placed(be, dt)) if norm else None)
    return make


def decoder(num_layers, *args, **kwargs):
    return lambda be, dt: xn.TransformerDecoder(xn.TransformerDecoderLayer(*args, **kwargs, **_placed(be, dt)),
                                                num_layers)


ENC = r"TransformerEncoderLayer\(d_model=4, nhead=2\)"
DEC = r"TransformerDecoderLayer\(d_model=4, nhead=2\)"

CASES = [
    Case("TransformerEncoderLayer", xn.TransformerEncoderLayer, placed(xn.TransformerEncoderLayer, 4, 2, 8, 0.0),
         normals((3, 2, 4)), lambda nn: nn.TransformerEncoderLayer(4, 2, 8, 0.0), normals((3, 2, 5)),
         (ValueError, ENC + r" expected src of shape \(S, 4\) or \(S, N, 4\), got \(3, 2, 5\)")),
    Case("TransformerEncoderLayer-norm-first-batch-first-gelu-masks", xn.TransformerEncoderLayer,
         placed(xn.TransformerEncoderLayer, 4, 2, 6, 0.0, "gelu", batch_first=True, norm_first=True),
         normals((2, 3, 4), masks=(ATTN, PAD3)),
         lambda nn: nn.TransformerEncoderLayer(4, 2, 6, 0.0, "gelu", batch_first=True, norm_first=True),
         ints(2, 3, 4), (TypeError, ENC + r" expected a floating-point src, got int64")),
    Case("TransformerEncoderLayer-unbatched-no-bias-mask", xn.TransformerEncoderLayer,
         placed(xn.TransformerEncoderLayer, 4, 2, 8, 0.0, bias=False), normals((3, 4), masks=(ATTN,)),
         lambda nn: nn.TransformerEncoderLayer(4, 2, 8, 0.0, bias=False), normals((2, 3, 2, 4)),
         (ValueError, ENC + r" expected src of shape .*, got \(2, 3, 2, 4\)")),
    Case("TransformerEncoderLayer-eval-dropout", xn.TransformerEncoderLayer,
         placed(xn.TransformerEncoderLayer, 6, 3, 5, 0.3, mode="eval"), normals((4, 2, 6)),
         lambda nn: nn.TransformerEncoderLayer(6, 3, 5, 0.3), normals((4, 2, 4)),
         (ValueError, r"TransformerEncoderLayer\(d_model=6, nhead=3\) expected src")),
    Case("TransformerDecoderLayer", xn.TransformerDecoderLayer, placed(xn.TransformerDecoderLayer, 4, 2, 8, 0.0),
         normals((3, 2, 4), (5, 2, 4)), lambda nn: nn.TransformerDecoderLayer(4, 2, 8, 0.0),
         normals((3, 2, 4), (5, 2, 3)), (ValueError, DEC + r" expected memory of shape \(S, 4\) or \(S, N, 4\)")),
    Case("TransformerDecoderLayer-norm-first-batch-first-masks", xn.TransformerDecoderLayer,
         placed(xn.TransformerDecoderLayer, 4, 2, 6, 0.0, batch_first=True, norm_first=True),
         normals((2, 3, 4), (2, 5, 4), masks=(ATTN, CROSS, PAD3, PAD5)),
         lambda nn: nn.TransformerDecoderLayer(4, 2, 6, 0.0, batch_first=True, norm_first=True),
         normals((2, 3, 4), (5, 4)), (ValueError, DEC + r" expected memory with tgt's 3 axes, got \(5, 4\)")),
    Case("TransformerDecoderLayer-unbatched-no-bias", xn.TransformerDecoderLayer,
         placed(xn.TransformerDecoderLayer, 4, 2, 8, 0.0, bias=False), normals((3, 4), (5, 4), masks=(ATTN,)),
         lambda nn: nn.TransformerDecoderLayer(4, 2, 8, 0.0, bias=False),
         lambda rng: (ints(3, 4)(rng)[0], rng.standard_normal((5, 4))),
         (TypeError, DEC + r" expected a floating-point tgt, got int64")),
    Case("TransformerEncoder", xn.TransformerEncoder, encoder(2, 4, 2, 8, 0.0, norm=True),
         normals((3, 2, 4), masks=(ATTN,)),
         lambda nn: nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 8, 0.0), 2, nn.LayerNorm(4),
                                          enable_nested_tensor=False), normals((3, 2, 3)),
         (ValueError, ENC + r" expected src of shape \(S, 4\) or \(S, N, 4\), got \(3, 2, 3\)")),
    Case("TransformerEncoder-batch-first-padding", xn.TransformerEncoder,
         encoder(1, 4, 2, 6, 0.0, batch_first=True, norm_first=True), normals((2, 3, 4), masks=(ATTN, PAD3)),
         lambda nn: nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 6, 0.0, batch_first=True, norm_first=True),
                                          1, enable_nested_tensor=False), ints(2, 3, 4),
         (TypeError, ENC + r" expected a floating-point src")),
    Case("TransformerDecoder", xn.TransformerDecoder, decoder(2, 4, 2, 4, 0.0, batch_first=True),
         normals((2, 3, 4), (2, 5, 4), masks=(ATTN,)),
         lambda nn: nn.TransformerDecoder(nn.TransformerDecoderLayer(4, 2, 4, 0.0, batch_first=True), 2),
         normals((2, 3, 4), (2, 5, 5)), (ValueError, DEC + r" expected memory of shape \(S, 4\) or \(N, S, 4\)")),
    Case("Transformer", xn.Transformer, placed(xn.Transformer, 4, 2, 1, 1, 8, 0.0), normals((5, 2, 4), (3, 2, 4)),
         lambda nn: nn.Transformer(4, 2, 1, 1, 8, 0.0), normals((5, 2, 4), (3, 3, 4)),
         (ValueError, r"Transformer\(d_model=4, nhead=2\): the batch size of src and tgt must be equal \(axis 1\), "
                      r"got src \(5, 2, 4\) and tgt \(3, 3, 4\)")),
    Case("Transformer-unbatched-norm-first-masks", xn.Transformer,
         placed(xn.Transformer, 4, 2, 1, 1, 4, 0.0, norm_first=True, batch_first=True),
         normals((3, 4), (3, 4), masks=(ATTN, ATTN)),
         lambda nn: nn.Transformer(4, 2, 1, 1, 4, 0.0, norm_first=True, batch_first=True),
         normals((3, 4), (3, 5)),
         (ValueError, r"Transformer\(d_model=4, nhead=2\): src and tgt must have d_model \(4\) features")),
]
