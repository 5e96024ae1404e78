"""LPPool1d, LPPool2d, LPPool3d: the power-average pool ``(sum x^p)^(1/p)`` over each window, by
torch's formula (an average pool of ``x^p`` times the kernel size)."""

from __future__ import annotations

import math

from ... import backends
from .._checks import require_float
from ...validate import real
from .avg import window_divisor, window_sum, window_sum_grad
from .max import window_max, window_max_grad
from ._windows import Pool, given, unbatch


class _LPPool(Pool):
    """Power-average pooling, as ``torch.nn.LPPoolNd`` (the subclasses fix ``nd``):

    ``y = (K * avg_pool(x^p))^(1/p)``, ``K = prod(kernel_size)``, with torch's ``avg_pool``
    (no padding, ``count_include_pad``), so ``y = (sum_window x^p)^(1/p)`` except for a
    ceil-mode window past the input's end, whose sum is scaled by ``K / (its size)`` as torch's
    is. ``x^p`` of a negative ``x`` is NaN unless ``p`` is an integer, as in torch; a negative
    window sum with an even root likewise. ``p = inf``: the max of ``|x|`` over each window;
    ``p = -inf``: the min of ``|x|`` (torch's special cases, through the max pool).

    ``stride`` defaults to ``kernel_size`` (and stays ``None`` in the repr, as torch keeps it).
    Shapes as the average pools without padding.

    Gradient, as torch's autograd of that formula: ``dx = p x^(p-1) * avg_pool'(dy * (1/p)
    t^(1/p - 1) * K)`` with ``t = K * avg_pool(x^p)``, zero for a window whose sum ``t`` is 0
    (torch's ``relu`` there; the root's slope is infinite). ``p = +-inf``: the max pool's
    gradient times ``sign(x)``. Keeps the input and ``t`` (or the max pool's values).
    """

    _config_fields = ('norm_type', 'kernel_size', 'stride', 'ceil_mode')

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        owner = type(self).__name__
        p = real(owner, "norm_type", norm_type)
        if p == 0.0:  # torch divides by it (ZeroDivisionError)
            raise ValueError(f"{owner}: norm_type must be a nonzero real number, got {norm_type!r}")
        super().__init__(kernel_size, stride, 0, 1, ceil_mode)
        self.norm_type = norm_type
        self.stride = given(stride)  # None stays None, as torch keeps it

    def forward(self, x):
        be = require_float(self._tag(), x)
        xp = be.xp
        xb, unbatched, geo = self._geometry(x)
        p = float(self.norm_type)
        if math.isinf(p):
            a = xp.abs(xb)
            m, xpad, _ = window_max(self, xp, a if p > 0 else -a, geo)  # min |x| = -max(-|x|)
            self.save_for_backward(xb, xpad, m, geo, unbatched)  # the max pool's values, and x for sign(x)
            return unbatch(m if p > 0 else -m, unbatched)
        with be.ignore_overflow():  # x^p of a negative x is NaN for a fractional p, as in torch
            s = window_sum(self, xp, xp.pow(xb, p), geo)
            s /= window_divisor(self, xp, geo, True, None, x.dtype, x.device)
            t = s * float(self._window_size())
            y = xp.pow(t, 1.0 / p)
        self.save_for_backward(xb, t, geo, unbatched)  # kept: x for x^(p-1), t for the root's slope
        return unbatch(y, unbatched)

    def backward(self, dy, input_grad: bool = True):
        xb, *kept, geo, unbatched = self.saved()
        if dy is None or not input_grad:
            return None
        p = float(self.norm_type)
        dy = self._dy(dy, kept[-1], geo, unbatched)  # kept[-1]: t, or the max pool's values
        be = backends.backend_of(dy)
        xp = be.xp
        if math.isinf(p):
            xpad, m = kept
            da = window_max_grad(self, xp, dy if p > 0 else -dy, xpad, m, geo)
            da = self._input_grad(da, geo, False)
            return unbatch(da * xp.sign(xb) if p > 0 else -da * xp.sign(xb), unbatched)
        (t,) = kept
        zero = t == 0.0
        with be.ignore_overflow():
            g = dy * ((1.0 / p) * xp.pow(xp.where(zero, 1.0, t), 1.0 / p - 1.0))
            g = xp.where(zero, 0.0, g) * float(self._window_size())
            g /= window_divisor(self, xp, geo, True, None, dy.dtype, dy.device)
            dq = self._input_grad(window_sum_grad(self, xp, g, geo), geo, False)
            dx = dq * (p * xp.pow(xb, p - 1.0))
        return unbatch(dx, unbatched)

    def extra_repr(self):
        return f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, ceil_mode={self.ceil_mode}"


class LPPool1d(_LPPool):
    """Power-average pooling over each window of ``(N, C, L)`` (or ``(C, L)``), as
    ``torch.nn.LPPool1d``: ``y = (sum_{i < k} x[a*s + i]^p)^(1/p)``; see :class:`_LPPool`.
    Shapes: ``(N, C, L) -> (N, C, OL)``, ``OL = (L - k) // s + 1`` (rounded up with ``ceil_mode``)."""

    nd = 1


class LPPool2d(_LPPool):
    """Power-average pooling over each ``KH x KW`` window, as ``torch.nn.LPPool2d``:
    ``y = (sum_window x^p)^(1/p)``; see :class:`_LPPool`. Shapes: ``(N, C, H, W) -> (N, C, OH, OW)``
    (or 3-D), ``OH = (H - KH) // SH + 1`` (rounded up with ``ceil_mode``) and likewise ``OW``."""

    nd = 2


class LPPool3d(_LPPool):
    """Power-average pooling over each ``KD x KH x KW`` window of ``(N, C, D, H, W)`` (or 4-D),
    as ``torch.nn.LPPool3d``: ``y = (sum_window x^p)^(1/p)``; see :class:`_LPPool`. Each spatial
    axis gives ``(L - k) // s + 1`` windows (rounded up with ``ceil_mode``)."""

    nd = 3
