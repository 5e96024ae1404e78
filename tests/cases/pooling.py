"""Cases of the pools: max, average, power-average, adaptive and fractional, over 1, 2 and 3
spatial axes. Max-pool inputs have distinct values (no near-ties to trip the finite differences); the
power-average pools with a fractional or odd ``norm_type`` take positive inputs (``x^1.5`` of a
negative ``x`` is NaN, as in torch) and are unbatched (the ONNX test draws a second batch from
a normal distribution); the fractional pools get fixed ``_random_samples``."""

from __future__ import annotations

import math

import numpy as np

import xpnet as xn
from tests.layer_cases import FLOAT_ONLY, Case, _tensor, distinct, ints, normal


def positive(*shape):
    return lambda rng: (rng.uniform(0.3, 2.0, size=shape),)


def signed_distinct(*shape):
    """Distinct magnitudes (at least 0.05 apart) with random signs: no ties of ``|x|``."""
    def draw(rng):
        n = int(np.prod(shape))
        return ((rng.permutation(n) + 1.0) * 0.05 * rng.choice([-1.0, 1.0], size=n)).reshape(shape),
    return draw


def rank(name, shape, layout):
    """The error of a pool given an input of the wrong rank."""
    got = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
    return ValueError, rf"{name}\(.*\) expected a {layout} input, got shape {re_escape(got)}"


def re_escape(s):
    return s.replace("(", r"\(").replace(")", r"\)")


R1, R2, R3 = "3-D \\(N, C, L\\) or 2-D \\(C, L\\)", "4-D \\(N, C, H, W\\) or 3-D \\(C, H, W\\)", \
    "5-D \\(N, C, D, H, W\\) or 4-D \\(C, D, H, W\\)"

_rng = np.random.default_rng(11)
S2 = _rng.uniform(size=(2, 3, 2))  # FractionalMaxPool2d's samples: batch 2, 3 channels
S2_ONE = _rng.uniform(size=(1, 3, 2))
S3 = _rng.uniform(size=(2, 2, 3))
S3_ONE = _rng.uniform(size=(1, 2, 3))


def _frac(cls, *args, samples, **kw):
    """``make`` and ``torch`` of a case: the xpnet and torch fractional pools with the same samples."""
    return dict(make=lambda be, dt: getattr(xn, cls)(*args, **kw, _random_samples=samples, backend=be, dtype=dt),
                torch=lambda nn: getattr(nn, cls)(*args, **kw, _random_samples=_tensor(samples)))


CASES = [
    # 2-D max, average and adaptive-average pools
    Case("MaxPool2d", xn.MaxPool2d, lambda be, dt: xn.MaxPool2d(2), distinct(2, 3, 4, 4), lambda nn: nn.MaxPool2d(2),
         normal(4, 4), (ValueError, r"MaxPool2d\(.*\) expected a 4-D \(N, C, H, W\) or 3-D \(C, H, W\) input, got shape \(4, 4\)")),
    Case("MaxPool2d-overlap-pad-unbatched", xn.MaxPool2d, lambda be, dt: xn.MaxPool2d(3, 2, 1), distinct(3, 7, 7),
         lambda nn: nn.MaxPool2d(3, 2, 1), ints(3, 7, 7), FLOAT_ONLY),
    Case("MaxPool2d-dilation-ceil", xn.MaxPool2d, lambda be, dt: xn.MaxPool2d(2, 2, dilation=2, ceil_mode=True),
         distinct(1, 2, 7, 6), lambda nn: nn.MaxPool2d(2, 2, dilation=2, ceil_mode=True),
         normal(1, 2), (ValueError, r"MaxPool2d\(.*\) expected a 4-D")),
    Case("MaxPool2d-return-indices", xn.MaxPool2d, lambda be, dt: xn.MaxPool2d((3, 3), (2, 2), (1, 1), return_indices=True),
         distinct(1, 3, 7, 7), lambda nn: nn.MaxPool2d((3, 3), (2, 2), (1, 1), return_indices=True),
         normal(7), (ValueError, r"MaxPool2d\(.*\) expected a 4-D")),
    Case("AvgPool2d", xn.AvgPool2d, lambda be, dt: xn.AvgPool2d(2), normal(2, 3, 4, 4), lambda nn: nn.AvgPool2d(2),
         normal(4, 4), (ValueError, r"AvgPool2d\(.*\) expected a 4-D \(N, C, H, W\) or 3-D \(C, H, W\) input")),
    Case("AvgPool2d-overlap-pad-unbatched", xn.AvgPool2d, lambda be, dt: xn.AvgPool2d(3, 2, 1), normal(3, 7, 7),
         lambda nn: nn.AvgPool2d(3, 2, 1), ints(3, 7, 7), FLOAT_ONLY),
    Case("AvgPool2d-exclude-pad-ceil", xn.AvgPool2d,
         lambda be, dt: xn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), normal(2, 2, 6, 6),
         lambda nn: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
         normal(6, 6), (ValueError, r"AvgPool2d\(.*\) expected a 4-D")),
    Case("AvgPool2d-divisor", xn.AvgPool2d, lambda be, dt: xn.AvgPool2d((2, 2), (2, 2), (1, 1), divisor_override=3),
         normal(2, 3, 5, 6), lambda nn: nn.AvgPool2d((2, 2), (2, 2), (1, 1), divisor_override=3),
         normal(6, 6), (ValueError, r"AvgPool2d\(.*\) expected a 4-D")),
    Case("AdaptiveAvgPool2d-global", xn.AdaptiveAvgPool2d, lambda be, dt: xn.AdaptiveAvgPool2d(1), normal(2, 3, 5, 6),
         lambda nn: nn.AdaptiveAvgPool2d(1), normal(5, 6),
         (ValueError, r"AdaptiveAvgPool2d\(.*\) expected a 4-D \(N, C, H, W\) or 3-D \(C, H, W\) input")),
    Case("AdaptiveAvgPool2d-3x4", xn.AdaptiveAvgPool2d, lambda be, dt: xn.AdaptiveAvgPool2d((3, 4)), normal(2, 2, 5, 6),
         lambda nn: nn.AdaptiveAvgPool2d((3, 4)), ints(2, 2, 5, 6), FLOAT_ONLY),
    Case("AdaptiveAvgPool2d-none-unbatched", xn.AdaptiveAvgPool2d, lambda be, dt: xn.AdaptiveAvgPool2d((3, None)),
         normal(3, 5, 6), lambda nn: nn.AdaptiveAvgPool2d((3, None)), normal(6),
         (ValueError, r"AdaptiveAvgPool2d\(.*\) expected a 4-D")),

    # 1-D and 3-D max pools
    Case("MaxPool1d", xn.MaxPool1d, lambda be, dt: xn.MaxPool1d(3, 2, 1), distinct(2, 3, 9), lambda nn: nn.MaxPool1d(3, 2, 1),
         normal(2, 3, 4, 5), rank("MaxPool1d", (2, 3, 4, 5), R1)),
    Case("MaxPool1d-dilation-ceil-unbatched", xn.MaxPool1d, lambda be, dt: xn.MaxPool1d(2, 2, dilation=2, ceil_mode=True),
         distinct(3, 8), lambda nn: nn.MaxPool1d(2, 2, dilation=2, ceil_mode=True), ints(3, 8), FLOAT_ONLY),
    Case("MaxPool1d-return-indices", xn.MaxPool1d, lambda be, dt: xn.MaxPool1d(4, 3, 2, return_indices=True),
         distinct(2, 3, 10), lambda nn: nn.MaxPool1d(4, 3, 2, return_indices=True), normal(2, 3, 0),
         (ValueError, r"MaxPool1d\(.*\) expected an input with C, L >= 1, got shape \(2, 3, 0\)")),
    Case("MaxPool3d", xn.MaxPool3d, lambda be, dt: xn.MaxPool3d(2), distinct(2, 2, 4, 4, 4), lambda nn: nn.MaxPool3d(2),
         normal(4, 4), rank("MaxPool3d", (4, 4), R3)),
    Case("MaxPool3d-overlap-pad-unbatched", xn.MaxPool3d, lambda be, dt: xn.MaxPool3d(3, 2, 1), distinct(2, 5, 5, 5),
         lambda nn: nn.MaxPool3d(3, 2, 1), ints(2, 5, 5, 5), FLOAT_ONLY),
    Case("MaxPool3d-dilation-ceil", xn.MaxPool3d,
         lambda be, dt: xn.MaxPool3d((2, 3, 2), (2, 1, 2), (1, 1, 0), dilation=(1, 1, 2), ceil_mode=True),
         distinct(1, 2, 5, 4, 6), lambda nn: nn.MaxPool3d((2, 3, 2), (2, 1, 2), (1, 1, 0), dilation=(1, 1, 2), ceil_mode=True),
         normal(1, 2, 5, 4, 1), (ValueError, r"MaxPool3d\(.*\) expected a padded input of at least 1x3x2 \(the dilated "
                                             r"kernel, less stride - 1 with ceil_mode=True\), got 7x6x1")),
    Case("MaxPool3d-return-indices", xn.MaxPool3d, lambda be, dt: xn.MaxPool3d(2, 2, 1, return_indices=True),
         distinct(2, 2, 5, 4, 5), lambda nn: nn.MaxPool3d(2, 2, 1, return_indices=True), normal(2, 0, 3, 3, 3),
         (ValueError, r"MaxPool3d\(.*\) expected an input with C, D, H, W >= 1, got shape \(2, 0, 3, 3, 3\)")),

    # average pools
    Case("AvgPool1d", xn.AvgPool1d, lambda be, dt: xn.AvgPool1d(3, 2, 1), normal(2, 3, 7), lambda nn: nn.AvgPool1d(3, 2, 1),
         normal(7), rank("AvgPool1d", (7,), R1)),
    Case("AvgPool1d-exclude-pad-ceil-unbatched", xn.AvgPool1d,
         lambda be, dt: xn.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False), normal(3, 8),
         lambda nn: nn.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False), ints(3, 8), FLOAT_ONLY),
    Case("AvgPool3d", xn.AvgPool3d, lambda be, dt: xn.AvgPool3d(2), normal(2, 2, 4, 4, 4), lambda nn: nn.AvgPool3d(2),
         normal(2, 2, 4, 4, 4, 4), rank("AvgPool3d", (2, 2, 4, 4, 4, 4), R3)),
    Case("AvgPool3d-pad-ceil-divisor", xn.AvgPool3d, lambda be, dt: xn.AvgPool3d(3, 2, 1, ceil_mode=True, divisor_override=5),
         normal(1, 2, 5, 6, 5), lambda nn: nn.AvgPool3d(3, 2, 1, ceil_mode=True, divisor_override=5),
         ints(1, 2, 5, 6, 5), FLOAT_ONLY),
    Case("AvgPool3d-exclude-pad-unbatched", xn.AvgPool3d,
         lambda be, dt: xn.AvgPool3d((2, 3, 2), (1, 2, 2), (1, 1, 0), count_include_pad=False), normal(2, 4, 5, 4),
         lambda nn: nn.AvgPool3d((2, 3, 2), (1, 2, 2), (1, 1, 0), count_include_pad=False), normal(4, 5),
         rank("AvgPool3d", (4, 5), R3)),

    # power-average pools
    Case("LPPool1d", xn.LPPool1d, lambda be, dt: xn.LPPool1d(2, 3), normal(2, 3, 7), lambda nn: nn.LPPool1d(2, 3),
         normal(2, 3, 2), (ValueError, r"LPPool1d\(.*\) expected a padded input of at least 3 \(the kernel\), got 2")),
    Case("LPPool1d-fractional-ceil-unbatched", xn.LPPool1d, lambda be, dt: xn.LPPool1d(1.5, 2, ceil_mode=True),
         positive(3, 7), lambda nn: nn.LPPool1d(1.5, 2, ceil_mode=True), ints(3, 7), FLOAT_ONLY),
    Case("LPPool2d", xn.LPPool2d, lambda be, dt: xn.LPPool2d(2, (2, 3), 1), normal(2, 2, 5, 6),
         lambda nn: nn.LPPool2d(2, (2, 3), 1), normal(5, 6), rank("LPPool2d", (5, 6), R2)),
    Case("LPPool2d-inf", xn.LPPool2d, lambda be, dt: xn.LPPool2d(math.inf, 2), signed_distinct(2, 2, 4, 4),
         lambda nn: nn.LPPool2d(math.inf, 2), ints(2, 2, 4, 4), FLOAT_ONLY),
    Case("LPPool2d-minus-inf-ceil", xn.LPPool2d, lambda be, dt: xn.LPPool2d(-math.inf, 3, 2, ceil_mode=True),
         signed_distinct(1, 2, 6, 5), lambda nn: nn.LPPool2d(-math.inf, 3, 2, ceil_mode=True), normal(6, 5),
         rank("LPPool2d", (6, 5), R2)),
    Case("LPPool3d", xn.LPPool3d, lambda be, dt: xn.LPPool3d(2, 2), normal(1, 2, 4, 4, 5), lambda nn: nn.LPPool3d(2, 2),
         ints(1, 2, 4, 4, 4), FLOAT_ONLY),
    Case("LPPool3d-stride-unbatched", xn.LPPool3d, lambda be, dt: xn.LPPool3d(3, (2, 1, 2), 2), positive(2, 4, 3, 5),
         lambda nn: nn.LPPool3d(3, (2, 1, 2), 2), normal(4, 3), rank("LPPool3d", (4, 3), R3)),

    # adaptive average pools
    Case("AdaptiveAvgPool1d", xn.AdaptiveAvgPool1d, lambda be, dt: xn.AdaptiveAvgPool1d(3), normal(2, 3, 7),
         lambda nn: nn.AdaptiveAvgPool1d(3), normal(7), rank("AdaptiveAvgPool1d", (7,), R1)),
    Case("AdaptiveAvgPool1d-global-unbatched", xn.AdaptiveAvgPool1d, lambda be, dt: xn.AdaptiveAvgPool1d(1), normal(3, 5),
         lambda nn: nn.AdaptiveAvgPool1d(1), ints(3, 5), FLOAT_ONLY),
    Case("AdaptiveAvgPool3d", xn.AdaptiveAvgPool3d, lambda be, dt: xn.AdaptiveAvgPool3d((2, 3, None)), normal(2, 2, 5, 7, 3),
         lambda nn: nn.AdaptiveAvgPool3d((2, 3, None)), normal(5, 7, 3), rank("AdaptiveAvgPool3d", (5, 7, 3), R3)),
    Case("AdaptiveAvgPool3d-uneven", xn.AdaptiveAvgPool3d, lambda be, dt: xn.AdaptiveAvgPool3d((3, 2, 4)), normal(1, 2, 5, 3, 6),
         lambda nn: nn.AdaptiveAvgPool3d((3, 2, 4)), ints(1, 2, 5, 3, 6), FLOAT_ONLY),
    Case("AdaptiveAvgPool3d-global-unbatched", xn.AdaptiveAvgPool3d, lambda be, dt: xn.AdaptiveAvgPool3d(1),
         normal(2, 3, 4, 5), lambda nn: nn.AdaptiveAvgPool3d(1), normal(2, 3, 0, 5),
         (ValueError, r"AdaptiveAvgPool3d\(.*\) expected an input with D, H, W >= 1, got shape \(2, 3, 0, 5\)")),
    Case("AdaptiveAvgPool3d-plain", xn.AdaptiveAvgPool3d, lambda be, dt: xn.AdaptiveAvgPool3d((2, 3, 1)),
         normal(1, 2, 4, 6, 2), lambda nn: nn.AdaptiveAvgPool3d((2, 3, 1)), ints(1, 2, 4, 6, 2), FLOAT_ONLY),

    # adaptive max pools
    Case("AdaptiveMaxPool1d", xn.AdaptiveMaxPool1d, lambda be, dt: xn.AdaptiveMaxPool1d(3), distinct(2, 3, 7),
         lambda nn: nn.AdaptiveMaxPool1d(3), normal(7), rank("AdaptiveMaxPool1d", (7,), R1)),
    Case("AdaptiveMaxPool1d-return-indices-unbatched", xn.AdaptiveMaxPool1d,
         lambda be, dt: xn.AdaptiveMaxPool1d(4, return_indices=True), distinct(3, 9),
         lambda nn: nn.AdaptiveMaxPool1d(4, return_indices=True), ints(3, 9), FLOAT_ONLY),
    Case("AdaptiveMaxPool2d", xn.AdaptiveMaxPool2d, lambda be, dt: xn.AdaptiveMaxPool2d((3, 4)), distinct(2, 2, 5, 7),
         lambda nn: nn.AdaptiveMaxPool2d((3, 4)), normal(5, 7), rank("AdaptiveMaxPool2d", (5, 7), R2)),
    Case("AdaptiveMaxPool2d-global-unbatched", xn.AdaptiveMaxPool2d, lambda be, dt: xn.AdaptiveMaxPool2d(1),
         distinct(3, 5, 6), lambda nn: nn.AdaptiveMaxPool2d(1), ints(3, 5, 6), FLOAT_ONLY),
    Case("AdaptiveMaxPool2d-plain", xn.AdaptiveMaxPool2d, lambda be, dt: xn.AdaptiveMaxPool2d((2, None)),
         distinct(1, 2, 4, 3), lambda nn: nn.AdaptiveMaxPool2d((2, None)), ints(1, 2, 4, 3), FLOAT_ONLY),
    Case("AdaptiveMaxPool2d-return-indices", xn.AdaptiveMaxPool2d,
         lambda be, dt: xn.AdaptiveMaxPool2d((3, None), return_indices=True), distinct(2, 2, 5, 4),
         lambda nn: nn.AdaptiveMaxPool2d((3, None), return_indices=True), normal(2, 2, 5, 0),
         (ValueError, r"AdaptiveMaxPool2d\(.*\) expected an input with H, W >= 1, got shape \(2, 2, 5, 0\)")),
    Case("AdaptiveMaxPool3d", xn.AdaptiveMaxPool3d, lambda be, dt: xn.AdaptiveMaxPool3d((2, 3, 2)), distinct(1, 2, 5, 4, 3),
         lambda nn: nn.AdaptiveMaxPool3d((2, 3, 2)), normal(2, 5, 4), rank("AdaptiveMaxPool3d", (2, 5, 4), R3)),
    Case("AdaptiveMaxPool3d-return-indices-unbatched", xn.AdaptiveMaxPool3d,
         lambda be, dt: xn.AdaptiveMaxPool3d(2, return_indices=True), distinct(2, 3, 5, 4),
         lambda nn: nn.AdaptiveMaxPool3d(2, return_indices=True), ints(2, 3, 5, 4), FLOAT_ONLY),

    # fractional max pools (fixed samples: the windows are the same in every forward)
    Case("FractionalMaxPool2d", xn.FractionalMaxPool2d, **_frac("FractionalMaxPool2d", 2, output_ratio=0.5, samples=S2),
         inputs=distinct(2, 3, 7, 8), bad=normal(2, 2, 7, 8),
         error=(ValueError, r"FractionalMaxPool2d\(.*\) has _random_samples of shape \(2, 3, 2\), which needs a batch "
                            r"of at most 2 and 3 channels, got an input of shape \(2, 2, 7, 8\)")),
    Case("FractionalMaxPool2d-size-return-indices-unbatched", xn.FractionalMaxPool2d,
         **_frac("FractionalMaxPool2d", (2, 3), output_size=(4, 3), return_indices=True, samples=S2_ONE),
         inputs=distinct(3, 7, 6), bad=normal(3, 4, 6),
         error=(ValueError, r"FractionalMaxPool2d\(.*\) expected an input of at least 5x5 \(output_size \+ "
                            r"kernel_size - 1, output size 4x3\), got \(3, 4, 6\)")),
    Case("FractionalMaxPool3d", xn.FractionalMaxPool3d,
         **_frac("FractionalMaxPool3d", 2, output_size=(3, 3, 2), samples=S3),
         inputs=distinct(2, 2, 6, 5, 4), bad=ints(2, 2, 6, 5, 4), error=FLOAT_ONLY),
    Case("FractionalMaxPool3d-ratio-return-indices", xn.FractionalMaxPool3d,
         **_frac("FractionalMaxPool3d", (2, 1, 2), output_ratio=(0.5, 0.6, 0.5), return_indices=True, samples=S3_ONE),
         inputs=distinct(1, 2, 6, 5, 6), bad=normal(6, 5), error=rank("FractionalMaxPool3d", (6, 5), R3)),
]
