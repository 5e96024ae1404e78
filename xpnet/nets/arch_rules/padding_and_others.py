"""Checkpoint architecture rules of the padding layers, Upsample, PixelShuffle/PixelUnshuffle, the
channel and alpha dropouts, CosineSimilarity and PairwiseDistance (no arrays), and Bilinear
(``weight (out, in1, in2)`` and ``bias (out,)``). Embedding's rule, unchanged by its
``max_norm`` options, is in :mod:`xpnet.nets.checkpoint_arch`."""

from __future__ import annotations


def _bilinear(a):
    from ...validate import flag, positive_int
    from ..checkpoint_arch import FLOAT

    name = "Bilinear"
    i1, i2 = positive_int(name, "in1_features", a["in1_features"]), positive_int(name, "in2_features", a["in2_features"])
    o = positive_int(name, "out_features", a["out_features"])
    bias = flag(name, "bias", a["bias"])
    return [("weight", (o, i1, i2), True, FLOAT)] + ([("bias", (o,), True, FLOAT)] if bias else [])


def rules(L):
    from ..checkpoint_arch import _stateless
    from ...layers.padding import PADDING_LAYERS

    out = {cls: _stateless for cls in PADDING_LAYERS}
    for cls in (L.Upsample, L.UpsamplingNearest2d, L.UpsamplingBilinear2d, L.PixelShuffle, L.PixelUnshuffle,
                L.Dropout1d, L.Dropout2d, L.Dropout3d, L.AlphaDropout, L.FeatureAlphaDropout,
                L.CosineSimilarity, L.PairwiseDistance):
        out[cls] = _stateless
    out[L.Bilinear] = _bilinear
    return out
