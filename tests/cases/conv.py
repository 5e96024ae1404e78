"""Cases of the convolutions: Conv1d/3d (Conv2d's are in tests/layer_cases.py), the padding
modes, ConvTranspose1d/2d/3d and the lazy convolutions."""

from __future__ import annotations

import xpnet as xn
from tests.layer_cases import Case, _placed, ints, normal

LAZY = ("a lazy layer draws its weights at its first forward, so no state dict reaches torch's twin "
        "beforehand; tests/test_conv.py compares both after materializing them")


def _input_error(name, channels, axes):
    return (ValueError, rf"{name}\(.*\) expected input \(N, {channels}, {axes}\) or \({channels}, {axes}\), got")


def _conv(cid, name, args, kwargs, shape, bad, error):
    cls = getattr(xn, name)
    return Case(cid, cls, lambda be, dt: cls(*args, **kwargs, **_placed(be, dt)), normal(*shape),
                lambda nn: getattr(nn, name)(*args, **kwargs), bad, error)


def _lazy(cid, name, args, kwargs, shape, bad, error):
    cls = getattr(xn, name)
    return Case(cid, cls, lambda be, dt: cls(*args, **kwargs, **_placed(be, dt)), normal(*shape),
                lambda nn: getattr(nn, name)(*args, **kwargs), bad, error, parity=LAZY)


FLOAT = (TypeError, r"\(.*\) expected a floating-point")

CASES = [
    # Conv1d, Conv3d
    _conv("Conv1d", "Conv1d", (2, 3, 3), {}, (2, 2, 7), normal(2, 3, 7), _input_error("Conv1d", 2, "L")),
    _conv("Conv1d-stride-dilation-groups-unbatched", "Conv1d", (4, 2, 2), dict(stride=2, padding=2, dilation=3, groups=2),
          (4, 9), ints(4, 9), FLOAT),
    _conv("Conv1d-same-no-bias", "Conv1d", (2, 4, 4), dict(padding="same", bias=False), (3, 2, 6),
          normal(3, 2, 6, 1), _input_error("Conv1d", 2, "L")),
    _conv("Conv3d", "Conv3d", (2, 3, (2, 3, 2)), dict(padding=(1, 0, 1)), (2, 2, 3, 4, 3), normal(2, 3, 3, 4, 3),
          _input_error("Conv3d", 2, "D, H, W")),
    _conv("Conv3d-stride-groups-unbatched", "Conv3d", (2, 4, 2), dict(stride=(1, 2, 2), groups=2, dilation=(2, 1, 1)),
          (2, 3, 4, 5), ints(2, 3, 4, 5), FLOAT),
    # the border padding modes
    _conv("Conv2d-reflect", "Conv2d", (2, 3, 3), dict(padding=(1, 2), padding_mode="reflect"), (2, 2, 4, 5),
          normal(2, 2, 4, 2), (ValueError, r"Conv2d\(2 -> 3\): reflect padding must be less than the input size")),
    _conv("Conv1d-replicate-same", "Conv1d", (2, 2, 4), dict(padding="same", padding_mode="replicate"), (2, 2, 5),
          ints(2, 2, 5), FLOAT),
    _conv("Conv3d-circular-unbatched", "Conv3d", (2, 2, (1, 2, 3)), dict(padding=(1, 0, 2), padding_mode="circular"),
          (2, 2, 3, 4), normal(2, 2, 3, 1), (ValueError, r"Conv3d\(2 -> 2\): circular padding \(2, 2\) .* wraps around")),
    # transposed
    _conv("ConvTranspose1d", "ConvTranspose1d", (2, 3, 3), {}, (2, 2, 5), normal(2, 3, 5),
          _input_error("ConvTranspose1d", 2, "L")),
    _conv("ConvTranspose1d-stride-output-padding-unbatched", "ConvTranspose1d", (4, 2, 3),
          dict(stride=3, padding=1, output_padding=2, groups=2, dilation=2), (4, 5), ints(4, 5), FLOAT),
    _conv("ConvTranspose2d", "ConvTranspose2d", (3, 2, 4), dict(stride=2, padding=1), (2, 3, 4, 5),
          normal(2, 2, 4, 5), _input_error("ConvTranspose2d", 3, "H, W")),
    _conv("ConvTranspose2d-dilation-output-padding-groups", "ConvTranspose2d", (4, 6, (3, 2)),
          dict(padding=(1, 0), output_padding=(2, 1), dilation=(3, 2), groups=2, bias=False), (2, 4, 3, 4),
          ints(2, 4, 3, 4), FLOAT),
    _conv("ConvTranspose3d", "ConvTranspose3d", (2, 3, 2), dict(stride=(1, 2, 2), padding=(0, 1, 0)), (2, 2, 2, 3, 3),
          normal(2, 3, 3), _input_error("ConvTranspose3d", 2, "D, H, W")),
    # lazy
    _lazy("LazyConv1d", "LazyConv1d", (3, 3), {}, (2, 4, 6), normal(2, 4, 6, 1),
          (ValueError, r"LazyConv1d\(\? -> 3\) expected input \(N, C, L\) or \(C, L\), got \(2, 4, 6, 1\)")),
    _lazy("LazyConv2d-same-unbatched", "LazyConv2d", (4, 3), dict(padding="same", groups=2), (2, 4, 5),
          normal(3, 4, 5), (ValueError, r"LazyConv2d: in_channels \(3, from the input\) must be a positive multiple "
                                        r"of groups \(2\)")),
    _lazy("LazyConv3d", "LazyConv3d", (2, 2), dict(stride=2), (2, 3, 3, 4, 5), ints(2, 3, 3, 4, 5), FLOAT),
    _lazy("LazyConvTranspose1d", "LazyConvTranspose1d", (3, 3), dict(stride=2), (2, 4, 5), ints(2, 4, 5), FLOAT),
    _lazy("LazyConvTranspose2d-unbatched", "LazyConvTranspose2d", (2, 3), dict(output_padding=1, stride=2), (3, 4, 4),
          normal(4), (ValueError, r"LazyConvTranspose2d\(\? -> 2\) expected input \(N, C, H, W\) or \(C, H, W\)")),
    _lazy("LazyConvTranspose3d", "LazyConvTranspose3d", (2, 2), {}, (2, 3, 2, 3, 2), ints(2, 3, 2, 3, 2), FLOAT),
]
