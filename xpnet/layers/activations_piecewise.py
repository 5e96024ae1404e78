"""Piecewise-linear activations: Hardtanh, ReLU6, Hardsigmoid, Hardswish, Hardshrink,
Softshrink, Threshold.

Each keeps its slope ``dy/dx`` (``dx = dy * slope``). Any input shape, 0-d included. At a kink
the slope is torch's: every flat piece takes its closed end (Hardtanh's ``x <= min_val`` and
``x >= max_val`` get no gradient, the shrinks' ``|x| <= lambd``, Threshold's ``x <= threshold``).
A NaN input gives NaN and the gradient torch's vectorised kernels give (each docstring says);
torch's scalar loop, which takes the last few elements of a tensor, differs for some of them.
Where torch selects 0, xpnet multiplies by 0, so a NaN or infinite ``dy`` there gives NaN (as
ReLU; a ``dy`` that is already not finite).
"""

from __future__ import annotations

import struct

from ..validate import real
from .activations import _Elementwise, inplace_flag


class Hardtanh(_Elementwise):
    """``y = clip(x, min_val, max_val)``; ``dx = dy`` strictly between the bounds, 0 at and beyond
    them (and at NaN). ``inplace``: accepted and ignored."""

    _config_fields = ('min_val', 'max_val')

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        name = type(self).__name__
        self.min_val = real(name, "min_val", min_val)
        self.max_val = real(name, "max_val", max_val)
        if not self.max_val > self.min_val:
            raise ValueError(f"{name}: max_val must be greater than min_val, got min_val={min_val!r}, "
                             f"max_val={max_val!r}")
        self.inplace = inplace_flag(name, inplace)

    def _forward(self, xp, x):
        lo, hi = self.min_val, self.max_val
        return xp.clip(x, lo, hi), xp.astype((x > lo) & (x < hi), x.dtype)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


class ReLU6(Hardtanh):
    """``y = min(max(x, 0), 6)``: ``Hardtanh(0, 6)``, as in torch (no gradient at 0 and 6).
    ``inplace``: accepted and ignored."""

    _config_fields = ()

    def __init__(self, inplace: bool = False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self):
        return ""


# torch's Hardsigmoid backward multiplies by 1/6 rounded to float32, in every dtype
_TORCH_SIXTH = struct.unpack("f", struct.pack("f", 1.0 / 6.0))[0]


class Hardsigmoid(_Elementwise):
    """``y = min(max(x + 3, 0), 6) / 6``; ``dx = dy / 6`` for ``-3 < x < 3``, else 0 (NaN: 0, as
    torch). The slope 1/6 is torch's, rounded to float32 (0.16666667163), in float64 too, so that
    gradients equal torch's. ``inplace``: accepted and ignored."""

    def __init__(self, inplace: bool = False):
        self.inplace = inplace_flag("Hardsigmoid", inplace)

    def _forward(self, xp, x):
        y = xp.clip(x + 3.0, 0.0, 6.0)
        y /= 6.0
        slope = xp.astype((x > -3.0) & (x < 3.0), x.dtype)
        slope *= _TORCH_SIXTH
        return y, slope


class Hardswish(_Elementwise):
    """``y = x * min(max(x + 3, 0), 6) / 6``; ``dx = 0`` for ``x <= -3``, ``dy * (x / 3 + 1/2)`` for
    ``-3 < x < 3`` (and NaN), ``dy`` from 3 on. ``inplace``: accepted and ignored."""

    def __init__(self, inplace: bool = False):
        self.inplace = inplace_flag("Hardswish", inplace)

    def _forward(self, xp, x):
        y = x * xp.clip(x + 3.0, 0.0, 6.0)
        y /= 6.0
        slope = xp.where(x >= 3.0, 1.0, x / 3.0 + 0.5)
        return y, xp.where(x <= -3.0, 0.0, slope)


class _Shrink(_Elementwise):
    """Hardshrink and Softshrink: flat on ``[-lambd, lambd]``, where ``dx = 0`` (and at NaN), and
    ``dx = dy`` elsewhere."""

    _config_fields = ('lambd',)

    def __init__(self, lambd: float = 0.5):
        self.lambd = real(type(self).__name__, "lambd", lambd)

    def _slope(self, xp, x):
        return xp.astype((x < -self.lambd) | (x > self.lambd), x.dtype)

    def extra_repr(self):
        return f"{self.lambd}"


class Hardshrink(_Shrink):
    """``y = 0`` for ``-lambd <= x <= lambd``, ``x`` elsewhere (NaN gives NaN)."""

    def _forward(self, xp, x):
        slope = self._slope(xp, x)
        return x * slope, slope


class Softshrink(_Shrink):
    """``y = x - lambd`` for ``x > lambd``, ``x + lambd`` for ``x < -lambd``, 0 between (that is,
    ``x - clip(x, -lambd, lambd)``); ``lambd >= 0``."""

    def __init__(self, lambd: float = 0.5):
        super().__init__(real("Softshrink", "lambd", lambd, lo=0.0))

    def _forward(self, xp, x):
        return x - xp.clip(x, -self.lambd, self.lambd), self._slope(xp, x)


class Threshold(_Elementwise):
    """``y = x`` for ``x > threshold``, ``value`` otherwise; ``dx = dy`` or 0 likewise (NaN gives NaN
    and passes ``dy``, as torch). ``inplace``: accepted and ignored."""

    _config_fields = ('threshold', 'value')

    def __init__(self, threshold: float, value: float, inplace: bool = False):
        self.threshold = real("Threshold", "threshold", threshold)
        self.value = real("Threshold", "value", value)
        self.inplace = inplace_flag("Threshold", inplace)

    def _forward(self, xp, x):
        below = x <= self.threshold
        return xp.where(below, self.value, x), 1.0 - xp.astype(below, x.dtype)  # NaN is not below

    def extra_repr(self):
        return f"threshold={self.threshold}, value={self.value}"
