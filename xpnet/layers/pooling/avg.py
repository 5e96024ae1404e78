"""AvgPool1d, AvgPool2d, AvgPool3d: each window's sum divided by its divisor, with torch's rules
for the divisor; and the window sums and divisors that LPPool shares."""

from __future__ import annotations

import functools
import math

from ... import backends
from .._checks import require_float
from ..base import Signature
from ...validate import flag, integer
from ._windows import Pool, unbatch


def _counts(size, k, s, p, out, include_pad):
    """How many positions of each window along one axis count in the divisor, as torch counts:
    the window clipped to the padded input (``include_pad``) or to the input itself."""
    counts = []
    for a in range(out):
        start = a * s - p
        end = min(start + k, size + p)
        if not include_pad:
            start, end = max(start, 0), min(end, size)
        counts.append(float(end - start))
    return counts


@functools.lru_cache(maxsize=512)
def _divisors(size, k, s, p, out, include_pad):
    """The divisor as a float when every window has the same one, else one tuple of counts per
    axis, the factors of ``D[a, b, ...] = counts_0[a] * counts_1[b] * ...`` (remembered: a
    training loop pays once per size)."""
    counts = [_counts(*a, include_pad) for a in zip(size, k, s, p, out)]
    if all(min(c) == max(c) for c in counts):
        return math.prod(c[0] for c in counts)
    return tuple(tuple(c) for c in counts)


def window_divisor(pool, xp, geo, include_pad, override, dtype, device):
    """A Python float when every window has the same divisor, else an array of the output's
    spatial shape (the outer product of the per-axis counts)."""
    if override is not None:
        return float(override)
    d = _divisors(geo.size, pool._k, pool._s, pool._p, geo.out, include_pad)
    if isinstance(d, float):
        return d
    nd, out = len(d), 1.0
    for a, counts in enumerate(d):
        out = out * xp.reshape(xp.asarray(counts, dtype=dtype, device=device), (len(counts),) + (1,) * (nd - 1 - a))
    return out


def window_sum(pool, xp, xb, geo):
    """The sum of every window of ``xb`` (batched), padded with zeros: a fresh array."""
    first, *rest = pool._slices(pool._pad(xp, xb, geo, 0.0), geo)
    if not rest:
        return xp.asarray(first, copy=True)  # a one-element kernel: still a fresh array, never a view of x
    y = first + rest[0]
    for s in rest[1:]:
        y += s  # y is our own fresh array
    return y


def window_sum_grad(pool, xp, g, geo):
    """The gradient of the padded input of :func:`window_sum` for its gradient ``g``: ``g`` added
    into every element of each window."""
    dx, put = pool._grad_buffer(xp, geo, g.dtype, g.device)
    for w in geo.windows:
        put(dx, w, g)
    return dx


class _AvgPool(Pool):
    """Mean over each window, as ``torch.nn.AvgPoolNd`` (the subclasses fix ``nd``).

    ``y[n, c, a] = (1 / D[a]) * sum_{i < k} xpad[n, c, a * s + i]`` per spatial axis, where
    ``xpad`` is the input padded with zeros, and the divisor ``D`` is, as in torch:

    - ``divisor_override`` (a nonzero int) when given (2-D and 3-D only, as in torch);
    - else, with ``count_include_pad=True`` (the default), the window's size clipped to the
      padded input: ``prod(kernel_size)`` except for a ceil-mode window reaching past the padding;
    - else the number of real (unpadded) input elements in the window.

    ``ceil_mode`` keeps a last partial window (see :mod:`._windows`). Shapes as the max pools.

    The divisor is separable (``D[a, b] = rows[a] * cols[b]``), so it is one scalar when every
    window has the same one, else an array of the output's spatial shape made once per
    forward. Backward: ``dx`` adds ``dy / D`` into every element of each window. Keeps the
    divisor and the shapes: the gradient does not depend on the input's values.
    """

    _config_fields = ('kernel_size', 'stride', 'padding', 'ceil_mode', 'count_include_pad', 'divisor_override')

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        owner = type(self).__name__
        self.count_include_pad = flag(owner, "count_include_pad", count_include_pad)
        if divisor_override is not None:
            try:
                d = integer(owner, "divisor_override", divisor_override)
            except ValueError:
                d = 0
            if d == 0:  # torch: "divisor must be not zero"
                raise ValueError(f"{owner}: divisor_override must be a nonzero int or None, got {divisor_override!r}")
            divisor_override = d
        self.divisor_override = divisor_override

    def forward(self, x):
        xp = require_float(self._tag(), x).xp
        xb, unbatched, geo = self._geometry(x)
        y = window_sum(self, xp, xb, geo)
        divisor = window_divisor(self, xp, geo, self.count_include_pad, self.divisor_override, x.dtype, x.device)
        if not (isinstance(divisor, float) and divisor == 1.0):
            y /= divisor
        y = unbatch(y, unbatched)
        self.save_for_backward(geo, unbatched, divisor, Signature(y))  # dx does not depend on x
        return y

    def backward(self, dy, input_grad: bool = True):
        geo, unbatched, divisor, out = self.saved()
        if dy is None or not input_grad:
            return None
        dy = self._dy(dy, out, geo, unbatched)  # of the output's dtype: the divisor's too
        xp = backends.namespace_of(dy)
        return self._input_grad(window_sum_grad(self, xp, dy / divisor, geo), geo, unbatched)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPool):
    """Mean over each window of ``(N, C, L)`` (or ``(C, L)``), as ``torch.nn.AvgPool1d``:
    ``y[n, c, a] = (1 / D[a]) sum_{i < k} xpad[n, c, a*s + i]``, the divisor ``D`` as in
    :class:`_AvgPool` (torch's AvgPool1d has no ``divisor_override``). Shapes: ``(N, C, L) ->
    (N, C, OL)``, ``OL = (L + 2p - k) // s + 1`` (rounded up with ``ceil_mode``). Its arguments
    are stored as 1-tuples, as torch stores them."""

    nd = 1
    _config_fields = ('kernel_size', 'stride', 'padding', 'ceil_mode', 'count_include_pad')

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self.kernel_size, self.stride, self.padding = self._k, self._s, self._p


class AvgPool2d(_AvgPool):
    """Mean over each ``KH x KW`` window, as ``torch.nn.AvgPool2d``.

    ``y[n, c, a, b] = (1 / D[a, b]) * sum_{i < KH, j < KW} xpad[n, c, a*SH + i, b*SW + j]``, where
    ``xpad`` is the input padded with zeros, the divisor ``D`` as in :class:`_AvgPool`. Shapes:
    ``(N, C, H, W) -> (N, C, OH, OW)`` (or 3-D), ``OH = (H + 2*PH - KH) // SH + 1`` (rounded up
    with ``ceil_mode``) and likewise ``OW``."""

    nd = 2


class AvgPool3d(_AvgPool):
    """Mean over each ``KD x KH x KW`` window of ``(N, C, D, H, W)`` (or ``(C, D, H, W)``), as
    ``torch.nn.AvgPool3d``; the divisor as in :class:`_AvgPool`. Each spatial axis gives
    ``(L + 2p - k) // s + 1`` windows (rounded up with ``ceil_mode``). An input smaller than the
    kernel whose padded size has a window is pooled, as the 1-D and 2-D pools (and torch's other
    pools) do; torch's AvgPool3d alone refuses it."""

    nd = 3
