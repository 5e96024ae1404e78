"""Cases of the padding layers, Upsample, PixelShuffle/PixelUnshuffle, channel and alpha dropout,
CosineSimilarity, PairwiseDistance, Bilinear and Embedding's max_norm / scale_grad_by_freq."""

from __future__ import annotations

import numpy as np

import xpnet as xn
from tests.layer_cases import FLOAT_ONLY, Case, _placed, ints, normal

RANDOM = "dropout masks are random: xpnet's and torch's generators differ"


def two(s1, s2, scale=1.0):
    """Two float inputs of shapes ``s1`` and ``s2``."""
    return lambda rng: (rng.standard_normal(s1) * scale, rng.standard_normal(s2) * scale)


def _pad(name, args, shape, bad_shape, error=None):
    """A padding case: ``name(*args)`` on ``normal(*shape)``; the bad input has ``bad_shape``."""
    cls = getattr(xn, name)
    mode_error = (ValueError, rf"{name}\(.*\) expected ")
    return Case(f"{name}-{len(shape)}d", cls,
                lambda be, dt: cls(*args), normal(*shape), lambda nn: getattr(nn, name)(*args),
                normal(*bad_shape) if bad_shape else ints(*shape), error or (mode_error if bad_shape else FLOAT_ONLY))


CASES = [
    # padding: every class, int and tuple forms, negative pads, unbatched inputs
    _pad("ZeroPad1d", (2,), (2, 3, 4), None),
    _pad("ZeroPad2d", ((1, 2, -1, 3),), (2, 3, 4, 5), None),
    _pad("ZeroPad2d", (1,), (4, 5), (3,), (ValueError, r"ZeroPad2d\(\(1, 1, 1, 1\)\) expected at least 2 axes, got shape \(3,\)")),
    _pad("ZeroPad3d", ((1, 0, 2, 1, 0, 1),), (1, 2, 3, 2, 3), None),
    _pad("ConstantPad1d", ((2, -1), 1.5), (3, 5), None),
    _pad("ConstantPad2d", (1, -2.0), (2, 2, 3, 3), None),
    _pad("ConstantPad3d", ((1, 2, 0, 1, 1, 0), 0.5), (2, 2, 2, 3), None),
    _pad("ReflectionPad1d", ((3, 1),), (2, 3, 4), (4,)),
    _pad("ReflectionPad2d", ((1, 2, 2, -1),), (3, 4, 5), (2, 2, 3, 4, 5)),
    Case("ReflectionPad2d-too-large", xn.ReflectionPad2d, lambda be, dt: xn.ReflectionPad2d(3), normal(1, 2, 4, 5),
         lambda nn: nn.ReflectionPad2d(3), normal(1, 2, 3, 5),
         (ValueError, r"ReflectionPad2d\(\(3, 3, 3, 3\)\): reflect padding must be less than the input size along the "
                      r"axis, got padding \(3, 3\) for axis 2 of size 3")),
    _pad("ReflectionPad3d", (1,), (1, 2, 3, 3, 4), (2, 3, 3)),
    _pad("ReplicationPad1d", ((4, 2),), (3, 5), (1, 2, 3, 4)),
    _pad("ReplicationPad2d", ((2, 0, -1, 3),), (2, 2, 3, 4), (3, 4)),
    _pad("ReplicationPad3d", ((1, 2, 1, 0, 2, 1),), (2, 2, 2, 3), (2, 3)),
    _pad("CircularPad1d", ((3, 1),), (2, 2, 3), (3,)),
    _pad("CircularPad2d", ((1, 2, -1, 2),), (2, 3, 4, 5), (4, 5)),
    Case("CircularPad2d-wraps-twice", xn.CircularPad2d, lambda be, dt: xn.CircularPad2d(2), normal(1, 1, 3, 3),
         lambda nn: nn.CircularPad2d(2), normal(1, 1, 1, 3),
         (ValueError, r"CircularPad2d\(\(2, 2, 2, 2\)\): circular padding \(2, 2\) for axis 2 of size 1 wraps around "
                      r"more than once")),
    _pad("CircularPad3d", ((1, 1, 2, 0, 1, 2),), (1, 2, 2, 3, 3), (2, 2, 3)),

    # Upsample
    Case("Upsample-nearest-2x", xn.Upsample, lambda be, dt: xn.Upsample(scale_factor=2), normal(2, 3, 3, 4),
         lambda nn: nn.Upsample(scale_factor=2), normal(3, 4),
         (ValueError, r"Upsample\(scale_factor=2\.0, mode='nearest'\) expected a 3-D, 4-D or 5-D \(N, C, \*spatial\) "
                      r"input for mode 'nearest', got shape \(3, 4\)")),
    Case("Upsample-nearest-size-1d", xn.Upsample, lambda be, dt: xn.Upsample(size=7), normal(2, 2, 5),
         lambda nn: nn.Upsample(size=7), ints(2, 2, 5), FLOAT_ONLY),
    Case("Upsample-nearest-fraction-3d", xn.Upsample, lambda be, dt: xn.Upsample(scale_factor=(1.7, 0.6, 2.5)),
         normal(1, 2, 3, 5, 2), lambda nn: nn.Upsample(scale_factor=(1.7, 0.6, 2.5)), normal(1, 2, 3, 5),
         (ValueError, r"Upsample\(.*\) has a scale_factor for 3 spatial axes, but its input has 2")),
    Case("Upsample-nearest-exact", xn.Upsample, lambda be, dt: xn.Upsample(size=(5, 3), mode="nearest-exact"),
         normal(2, 2, 3, 4), lambda nn: nn.Upsample(size=(5, 3), mode="nearest-exact"), normal(2, 2, 3),
         (ValueError, r"Upsample\(.*\) has a size for 2 spatial axes, but its input has 1")),
    Case("Upsample-linear", xn.Upsample, lambda be, dt: xn.Upsample(scale_factor=2.5, mode="linear"), normal(2, 3, 4),
         lambda nn: nn.Upsample(scale_factor=2.5, mode="linear"), normal(2, 3, 4, 4),
         (ValueError, r"Upsample\(scale_factor=2\.5, mode='linear'\) expected a 3-D \(N, C, 1 spatial\) input")),
    Case("Upsample-bilinear", xn.Upsample, lambda be, dt: xn.Upsample(size=(5, 7), mode="bilinear"), normal(2, 2, 3, 4),
         lambda nn: nn.Upsample(size=(5, 7), mode="bilinear"), ints(2, 2, 3, 4), FLOAT_ONLY),
    Case("Upsample-bilinear-align-corners", xn.Upsample,
         lambda be, dt: xn.Upsample(scale_factor=(2, 1.5), mode="bilinear", align_corners=True), normal(1, 3, 3, 4),
         lambda nn: nn.Upsample(scale_factor=(2, 1.5), mode="bilinear", align_corners=True), normal(3, 3, 4),
         (ValueError, r"Upsample\(.*\) expected a 4-D \(N, C, 2 spatial\) input for mode 'bilinear', got shape \(3, 3, 4\)")),
    Case("Upsample-bilinear-down-recompute", xn.Upsample,
         lambda be, dt: xn.Upsample(scale_factor=0.6, mode="bilinear", recompute_scale_factor=True), normal(2, 2, 5, 6),
         lambda nn: nn.Upsample(scale_factor=0.6, mode="bilinear", recompute_scale_factor=True), normal(2, 2, 1, 1),
         (ValueError, r"Upsample\(.*\): scale_factor 0\.6 gives output sizes \[0, 0\] for input sizes \[1, 1\]")),
    Case("Upsample-trilinear", xn.Upsample, lambda be, dt: xn.Upsample(scale_factor=(1.5, 2, 0.8), mode="trilinear"),
         normal(1, 2, 2, 3, 5), lambda nn: nn.Upsample(scale_factor=(1.5, 2, 0.8), mode="trilinear"), ints(1, 2, 2, 3, 5),
         FLOAT_ONLY),
    Case("Upsample-trilinear-align-corners", xn.Upsample,
         lambda be, dt: xn.Upsample(size=(3, 1, 4), mode="trilinear", align_corners=True), normal(2, 1, 2, 3, 2),
         lambda nn: nn.Upsample(size=(3, 1, 4), mode="trilinear", align_corners=True), ints(2, 1, 2, 3, 2), FLOAT_ONLY),
    Case("UpsamplingNearest2d", xn.UpsamplingNearest2d, lambda be, dt: xn.UpsamplingNearest2d(scale_factor=3),
         normal(2, 2, 2, 3), lambda nn: nn.UpsamplingNearest2d(scale_factor=3), ints(2, 2, 2, 3), FLOAT_ONLY),
    Case("UpsamplingBilinear2d", xn.UpsamplingBilinear2d, lambda be, dt: xn.UpsamplingBilinear2d(size=(4, 5)),
         normal(2, 3, 3, 3), lambda nn: nn.UpsamplingBilinear2d(size=(4, 5)), normal(2, 3, 3),
         (ValueError, r"UpsamplingBilinear2d\(.*\) expected a 4-D")),

    # PixelShuffle / PixelUnshuffle
    Case("PixelShuffle", xn.PixelShuffle, lambda be, dt: xn.PixelShuffle(2), normal(2, 8, 3, 2),
         lambda nn: nn.PixelShuffle(2), normal(2, 6, 3, 2),
         (ValueError, r"PixelShuffle\(upscale_factor=2\) expected an input \(\*, C \* 4, H, W\) .*got shape \(2, 6, 3, 2\)")),
    Case("PixelShuffle-unbatched", xn.PixelShuffle, lambda be, dt: xn.PixelShuffle(3), normal(9, 2, 1),
         lambda nn: nn.PixelShuffle(3), normal(9, 2), (ValueError, r"PixelShuffle\(upscale_factor=3\) expected")),
    Case("PixelShuffle-5d", xn.PixelShuffle, lambda be, dt: xn.PixelShuffle(2), normal(2, 1, 4, 2, 3),
         lambda nn: nn.PixelShuffle(2), normal(2, 1, 3, 2, 3), (ValueError, r"PixelShuffle\(upscale_factor=2\) expected")),
    Case("PixelUnshuffle", xn.PixelUnshuffle, lambda be, dt: xn.PixelUnshuffle(2), normal(2, 2, 4, 6),
         lambda nn: nn.PixelUnshuffle(2), normal(2, 2, 4, 5),
         (ValueError, r"PixelUnshuffle\(downscale_factor=2\) expected an input \(\*, C, H \* 2, W \* 2\) .*got shape \(2, 2, 4, 5\)")),
    Case("PixelUnshuffle-unbatched", xn.PixelUnshuffle, lambda be, dt: xn.PixelUnshuffle(3), normal(2, 3, 6),
         lambda nn: nn.PixelUnshuffle(3), normal(3, 6), (ValueError, r"PixelUnshuffle\(downscale_factor=3\) expected")),

    # channel and alpha dropout
    Case("Dropout1d-train", xn.Dropout1d, lambda be, dt: xn.Dropout1d(0.4), normal(4, 6, 3), lambda nn: nn.Dropout1d(0.4),
         normal(4), (ValueError, r"Dropout1d\(p=0\.4\) expected a 3-D \(N, C, L\) or 2-D \(C, L\) input, got shape \(4,\)"),
         parity=RANDOM),
    Case("Dropout1d-unbatched-eval", xn.Dropout1d, lambda be, dt: xn.Dropout1d(0.4).eval(), normal(6, 3),
         lambda nn: nn.Dropout1d(0.4), ints(6, 3), FLOAT_ONLY),
    Case("Dropout2d-train", xn.Dropout2d, lambda be, dt: xn.Dropout2d(0.5), normal(3, 5, 2, 2), lambda nn: nn.Dropout2d(0.5),
         normal(3, 5), (ValueError, r"Dropout2d\(p=0\.5\) expected a 4-D \(N, C, H, W\) or 3-D \(N, C, L\) input"),
         parity=RANDOM),
    Case("Dropout2d-p1", xn.Dropout2d, lambda be, dt: xn.Dropout2d(1.0), normal(2, 3, 2, 2), lambda nn: nn.Dropout2d(1.0),
         ints(2, 3, 2, 2), FLOAT_ONLY),
    Case("Dropout3d-unbatched-train", xn.Dropout3d, lambda be, dt: xn.Dropout3d(0.3), normal(5, 2, 2, 2),
         lambda nn: nn.Dropout3d(0.3), normal(5, 2, 2), (ValueError, r"Dropout3d\(p=0\.3\) expected a 5-D"), parity=RANDOM),
    Case("Dropout3d-eval", xn.Dropout3d, lambda be, dt: xn.Dropout3d(0.3).eval(), normal(2, 3, 2, 2, 2),
         lambda nn: nn.Dropout3d(0.3), ints(2, 3, 2, 2, 2), FLOAT_ONLY),
    Case("AlphaDropout-train", xn.AlphaDropout, lambda be, dt: xn.AlphaDropout(0.2), normal(5, 6), lambda nn: nn.AlphaDropout(0.2),
         ints(3), FLOAT_ONLY, parity=RANDOM),
    Case("AlphaDropout-eval", xn.AlphaDropout, lambda be, dt: xn.AlphaDropout(0.2).eval(), normal(5, 6),
         lambda nn: nn.AlphaDropout(0.2), ints(3), FLOAT_ONLY),
    Case("AlphaDropout-p1", xn.AlphaDropout, lambda be, dt: xn.AlphaDropout(1.0), normal(3, 4), lambda nn: nn.AlphaDropout(1.0),
         ints(3), FLOAT_ONLY),
    Case("FeatureAlphaDropout-train", xn.FeatureAlphaDropout, lambda be, dt: xn.FeatureAlphaDropout(0.5), normal(4, 5, 3),
         lambda nn: nn.FeatureAlphaDropout(0.5), normal(4),
         (ValueError, r"FeatureAlphaDropout\(p=0\.5\) expected an input of at least 2 axes \(N, C, \*\), got shape \(4,\)"),
         parity=RANDOM),
    Case("FeatureAlphaDropout-eval", xn.FeatureAlphaDropout, lambda be, dt: xn.FeatureAlphaDropout(0.5).eval(),
         normal(4, 5, 3), lambda nn: nn.FeatureAlphaDropout(0.5), ints(4, 5), FLOAT_ONLY),

    # two inputs
    Case("CosineSimilarity", xn.CosineSimilarity, lambda be, dt: xn.CosineSimilarity(), two((4, 5), (4, 5)),
         lambda nn: nn.CosineSimilarity(), two((4, 5), (3, 5)),
         (ValueError, r"CosineSimilarity\(dim=1, eps=1e-08\) expected inputs that broadcast together, got shapes \(4, 5\) and \(3, 5\)")),
    Case("CosineSimilarity-broadcast-zero-row", xn.CosineSimilarity, lambda be, dt: xn.CosineSimilarity(dim=-1, eps=1e-3),
         lambda rng: (np.concatenate([np.zeros((1, 1, 4)), rng.standard_normal((2, 1, 4))]), rng.standard_normal((3, 4))),
         lambda nn: nn.CosineSimilarity(dim=-1, eps=1e-3), two((2, 4), (3, 4)),
         (ValueError, r"CosineSimilarity\(dim=-1, eps=0\.001\) expected inputs that broadcast together"),
         grad_inputs=two((3, 1, 4), (3, 4))),
    Case("CosineSimilarity-unbatched", xn.CosineSimilarity, lambda be, dt: xn.CosineSimilarity(dim=0), two((6,), (6,)),
         lambda nn: nn.CosineSimilarity(dim=0), lambda rng: (rng.standard_normal(6), rng.integers(0, 3, size=6)),
         (TypeError, r"CosineSimilarity\(dim=0, eps=1e-08\) expected a floating-point second input, got int64")),
    Case("PairwiseDistance", xn.PairwiseDistance, lambda be, dt: xn.PairwiseDistance(), two((4, 5), (4, 5)),
         lambda nn: nn.PairwiseDistance(), two((4, 5), (4, 3)),
         (ValueError, r"PairwiseDistance\(p=2\.0, eps=1e-06, keepdim=False\) expected inputs that broadcast together")),
    Case("PairwiseDistance-p1-keepdim-broadcast", xn.PairwiseDistance, lambda be, dt: xn.PairwiseDistance(1.0, keepdim=True),
         two((3, 1, 4), (2, 4)), lambda nn: nn.PairwiseDistance(1.0, keepdim=True), two((), ()),
         (ValueError, r"PairwiseDistance\(.*\) expected inputs of at least 1 axis")),
    Case("PairwiseDistance-p3-unbatched", xn.PairwiseDistance, lambda be, dt: xn.PairwiseDistance(3.0, eps=0.0),
         two((5,), (5,)), lambda nn: nn.PairwiseDistance(3.0, eps=0.0), two((5,), (4,)),
         (ValueError, r"PairwiseDistance\(p=3\.0, eps=0\.0, keepdim=False\) expected inputs that broadcast")),
    Case("PairwiseDistance-p0.5", xn.PairwiseDistance, lambda be, dt: xn.PairwiseDistance(0.5), two((3, 4), (3, 4)),
         lambda nn: nn.PairwiseDistance(0.5), two((3, 4), (3, 5)),
         (ValueError, r"PairwiseDistance\(p=0\.5, .*\) expected inputs that broadcast together")),
    Case("PairwiseDistance-inf", xn.PairwiseDistance, lambda be, dt: xn.PairwiseDistance(float("inf")), two((3, 6), (3, 6)),
         lambda nn: nn.PairwiseDistance(float("inf")), lambda rng: (rng.standard_normal((3, 6)), ints(3, 6)(rng)[0]),
         (TypeError, r"PairwiseDistance\(p=inf.*\) expected a floating-point second input, got int64")),
    Case("Bilinear", xn.Bilinear, lambda be, dt: xn.Bilinear(3, 4, 2, **_placed(be, dt)), two((5, 3), (5, 4)),
         lambda nn: nn.Bilinear(3, 4, 2), two((5, 3), (4, 4)),
         (ValueError, r"Bilinear\(3, 4 -> 2\) expected inputs \(\*, 3\) and \(\*, 4\) with the same leading axes, "
                      r"got \(5, 3\) and \(4, 4\)")),
    Case("Bilinear-no-bias-3d", xn.Bilinear, lambda be, dt: xn.Bilinear(2, 3, 4, bias=False, **_placed(be, dt)),
         two((2, 3, 2), (2, 3, 3)), lambda nn: nn.Bilinear(2, 3, 4, bias=False), two((2, 3), (2, 2)),
         (ValueError, r"Bilinear\(2, 3 -> 4\) expected inputs")),
    Case("Bilinear-unbatched", xn.Bilinear, lambda be, dt: xn.Bilinear(3, 2, 3, **_placed(be, dt)), two((3,), (2,)),
         lambda nn: nn.Bilinear(3, 2, 3), lambda rng: (rng.standard_normal(3), ints(2)(rng)[0]),
         (TypeError, r"Bilinear\(3, 2 -> 3\) expected a floating-point")),
]


def _big_rows(layer, rows):
    """``layer`` with the embedding ``rows`` at norm about 17 (the case builder adds N(0, 0.3)
    noise: the other rows stay near 0.5), so that ``max_norm`` rescales exactly those rows."""
    w = np.zeros(tuple(layer.weight.shape))
    w[rows] = 10.0
    return layer.load_state_dict({"weight": w})


def _rows(*values):
    return lambda rng: (np.array(values, dtype=np.int64),)


CASES += [
    # the parity inputs look rows 3-5 up (rescaled) and repeat indices (frequency scaling); the
    # gradcheck's look up each small row once: max_norm's rescaling and the frequency scaling
    # take no gradient by design (torch's), so finite differences see them only there
    Case("Embedding-max-norm-freq", xn.Embedding,
         lambda be, dt: _big_rows(xn.Embedding(6, 3, max_norm=3.0, scale_grad_by_freq=True, **_placed(be, dt)), [3, 4, 5]),
         lambda rng: (np.array([[3, 1, 3], [5, 1, 1], [0, 4, 2]], dtype=np.int64),),
         lambda nn: nn.Embedding(6, 3, max_norm=3.0, scale_grad_by_freq=True), normal(2, 3),
         (TypeError, r"Embedding\(6, 3, max_norm=3\.0, scale_grad_by_freq=True\) expected integer indices"),
         grad_inputs=_rows(2, 0, 1)),
    Case("Embedding-max-norm-p1-padding", xn.Embedding,
         lambda be, dt: _big_rows(xn.Embedding(5, 4, padding_idx=1, max_norm=3.0, norm_type=1.0, **_placed(be, dt)), [0, 3]),
         _rows(0, 1, 3, 2, 0), lambda nn: nn.Embedding(5, 4, padding_idx=1, max_norm=3.0, norm_type=1.0),
         _rows(0, 5), (ValueError, r"Embedding\(5, 4, padding_idx=1, max_norm=3\.0, norm_type=1\.0\) expected indices in \[0, 5\)"),
         grad_inputs=_rows(2, 4, 2)),
]
