"""AvgPool2d: each window's sum divided by its divisor, with torch's rules for the divisor."""

from __future__ import annotations

import functools

from ... import backends
from .._checks import require_float
from ..base import Signature
from ...validate import flag, integer
from ._windows import Pool2d


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
def _divisors(h, w, k, s, p, oh, ow, include_pad):
    """The divisor as a float when every window has the same one, else ``(rows, cols)``, the
    factors of ``D[a, b] = rows[a] * cols[b]`` (remembered: a training loop pays once per size)."""
    rows = _counts(h, k[0], s[0], p[0], oh, include_pad)
    cols = _counts(w, k[1], s[1], p[1], ow, include_pad)
    if min(rows) == max(rows) and min(cols) == max(cols):
        return rows[0] * cols[0]
    return tuple(rows), tuple(cols)


class AvgPool2d(Pool2d):
    """Mean over each ``KH x KW`` window, as ``torch.nn.AvgPool2d``.

    ``y[n, c, a, b] = (1 / D[a, b]) * sum_{i < KH, j < KW} xpad[n, c, a*SH + i, b*SW + j]``, where
    ``xpad`` is the input padded with zeros, and the divisor ``D[a, b]`` is, as in torch:

    - ``divisor_override`` (a nonzero int) when given;
    - else, with ``count_include_pad=True`` (the default), the window's size clipped to the
      padded input: ``KH * KW`` except for a ceil-mode window reaching past the padding;
    - else the number of real (unpadded) input elements in the window.

    ``ceil_mode`` keeps a last partial window (see :mod:`._windows`). Shapes as ``MaxPool2d``.

    The divisor is separable (``D[a, b] = rows[a] * cols[b]``), so it is one scalar when every
    window has the same one, else an ``(OH, OW)`` array made once per forward. Backward: ``dx``
    adds ``dy / D`` into every element of each window. Keeps the divisor and the shapes: the
    gradient does not depend on the input's values.
    """

    _config_fields = ('kernel_size', 'stride', 'padding', 'ceil_mode', 'count_include_pad', 'divisor_override')

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = flag("AvgPool2d", "count_include_pad", count_include_pad)
        if divisor_override is not None:
            try:
                d = integer("AvgPool2d", "divisor_override", divisor_override)
            except ValueError:
                d = 0
            if d == 0:  # torch: "divisor must be not zero"
                raise ValueError(f"AvgPool2d: divisor_override must be a nonzero int or None, got {divisor_override!r}")
            divisor_override = d
        self.divisor_override = divisor_override

    def _divisor(self, xp, geo, dtype, device):
        """A Python float when every window has the same divisor, else an ``(OH, OW)`` array."""
        if self.divisor_override is not None:
            return float(self.divisor_override)
        d = _divisors(geo.h, geo.w, self._k, self._s, self._p, geo.oh, geo.ow, self.count_include_pad)
        if isinstance(d, float):
            return d
        rows, cols = d
        return xp.asarray(rows, dtype=dtype, device=device)[:, None] * xp.asarray(cols, dtype=dtype, device=device)[None, :]

    def forward(self, x):
        xp = require_float(self._tag(), x).xp
        x4, unbatched, geo = self._geometry(x)
        xpad = self._pad(xp, x4, geo, 0.0)
        first, *rest = self._slices(xpad, geo)
        divisor = self._divisor(xp, geo, x.dtype, x.device)
        if not rest:
            y = xp.asarray(first, copy=True)  # a 1x1 kernel: still a fresh array, never a view of x
        else:
            y = first + rest[0]
            for s in rest[1:]:
                y += s  # y is our own fresh array
        if not (isinstance(divisor, float) and divisor == 1.0):
            y /= divisor
        y = y[0, ...] if unbatched else y
        self.save_for_backward(geo, unbatched, divisor, Signature(y))  # dx does not depend on x
        return y

    def backward(self, dy, input_grad: bool = True):
        geo, unbatched, divisor, out = self.saved()
        if dy is None or not input_grad:
            return None
        dy = self._dy4(dy, out, geo, unbatched)  # of the output's dtype: the divisor's too
        xp = backends.namespace_of(dy)
        g = dy / divisor
        dx, put = self._grad_buffer(xp, geo, dy.dtype, dy.device)
        for i, j in self._offsets:
            put(dx, i, j, g)
        return self._input_grad(dx, geo, unbatched)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
