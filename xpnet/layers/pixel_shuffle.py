"""PixelShuffle and PixelUnshuffle: channels to space and back, as ``torch.nn`` (one the inverse of
the other, so each one's backward is the other's forward).

With factor ``r``:

- PixelShuffle: ``(*, C r^2, H, W) -> (*, C, H r, W r)``,
  ``y[..., c, h r + i, w r + j] = x[..., c r^2 + i r + j, h, w]``;
- PixelUnshuffle: ``(*, C, H r, W r) -> (*, C r^2, H, W)``, the inverse.

``*`` is any number of leading axes (none: unbatched). Each is one reshape, one transpose and
one reshape; any dtype. Forward keeps the output's :class:`~xpnet.layers.base.Signature` only.
"""

from __future__ import annotations

from .. import backends
from ._checks import positive_int, require_array, shape_str
from .base import Layer, Signature


def _shuffle(xp, x, r):
    """``(*, C r^2, H, W) -> (*, C, H r, W r)``."""
    *lead, c, h, w = x.shape
    lead = tuple(lead)
    y = xp.reshape(x, lead + (c // (r * r), r, r, h, w))
    k = len(lead)
    y = xp.permute_dims(y, tuple(range(k)) + (k, k + 3, k + 1, k + 4, k + 2))
    return xp.reshape(y, lead + (c // (r * r), h * r, w * r))


def _unshuffle(xp, x, r):
    """``(*, C, H r, W r) -> (*, C r^2, H, W)``."""
    *lead, c, h, w = x.shape
    lead = tuple(lead)
    y = xp.reshape(x, lead + (c, h // r, r, w // r, r))
    k = len(lead)
    y = xp.permute_dims(y, tuple(range(k)) + (k, k + 2, k + 4, k + 1, k + 3))
    return xp.reshape(y, lead + (c * r * r, h // r, w // r))


class _Regroup(Layer):
    """What both share: a subclass names its factor (``_factor``), its ``_forward``/``_backward``
    regroupings, and the shapes it takes (``_fits``, ``_want``)."""

    _factor = ""

    def __init__(self, factor: int):
        setattr(self, self._factor, positive_int(type(self).__name__, self._factor, factor))

    def forward(self, x):
        require_array(self._tag(), x)
        r = getattr(self, self._factor)
        if x.ndim < 3 or not self._fits(x.shape, r):
            raise ValueError(f"{self._tag()} expected an input {self._want(r)}, got shape {shape_str(x.shape)}")
        y = self._forward(backends.namespace_of(x), x, r)
        self.save_for_backward(Signature(y))
        return y

    def backward(self, dy, input_grad: bool = True):
        (sig,) = self.saved()
        if dy is None or not input_grad:
            return None
        self.check_grad(dy, sig)
        return self._backward(backends.namespace_of(dy), dy, getattr(self, self._factor))

    def extra_repr(self):
        return f"{self._factor}={getattr(self, self._factor)}"


class PixelShuffle(_Regroup):
    """``torch.nn.PixelShuffle(upscale_factor)``: ``(*, C r^2, H, W) -> (*, C, H r, W r)`` (see the
    module doc); the channel axis must be divisible by ``r^2``."""

    _config_fields = ("upscale_factor",)
    _factor = "upscale_factor"
    _forward, _backward = staticmethod(_shuffle), staticmethod(_unshuffle)

    def __init__(self, upscale_factor: int):
        super().__init__(upscale_factor)

    @staticmethod
    def _fits(shape, r):
        return shape[-3] % (r * r) == 0

    @staticmethod
    def _want(r):
        return f"(*, C * {r * r}, H, W) (at least 3-D, channels divisible by upscale_factor**2 = {r * r})"


class PixelUnshuffle(_Regroup):
    """``torch.nn.PixelUnshuffle(downscale_factor)``: ``(*, C, H r, W r) -> (*, C r^2, H, W)`` (see
    the module doc); height and width must be divisible by ``r``."""

    _config_fields = ("downscale_factor",)
    _factor = "downscale_factor"
    _forward, _backward = staticmethod(_unshuffle), staticmethod(_shuffle)

    def __init__(self, downscale_factor: int):
        super().__init__(downscale_factor)

    @staticmethod
    def _fits(shape, r):
        return shape[-1] % r == 0 and shape[-2] % r == 0

    @staticmethod
    def _want(r):
        return f"(*, C, H * {r}, W * {r}) (at least 3-D, height and width divisible by downscale_factor = {r})"
