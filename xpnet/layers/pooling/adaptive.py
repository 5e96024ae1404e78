"""AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d: a mean over windows sized to give a
fixed output; and the adaptive windows and output sizes that AdaptiveMaxPool shares."""

from __future__ import annotations

import math

from ... import backends
from .._checks import require_float, shape_str
from ..base import Layer, Signature
from ._windows import AXES, batched, given, unbatch


def _adaptive_windows(size, out):
    """torch's adaptive windows along one axis: ``[floor(i*size/out), ceil((i+1)*size/out))``."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def output_sizes(owner, output_size, nd):
    """``output_size`` (an int, or ``nd`` of them, ``None`` for "the input's size" where ``nd >
    1``, as torch takes them) as an ``nd``-tuple; raises naming ``owner`` otherwise."""
    vals = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * nd
    if len(vals) != nd or not all(
        (v is None and nd > 1) or (not isinstance(v, bool) and isinstance(v, int) and v >= 1) for v in vals
    ):
        what = {1: "a 1-tuple of an int >= 1", 2: "a pair of ints >= 1 (or None)"}.get(nd, f"a tuple of {nd} ints >= 1 (or None)")
        raise ValueError(f"{owner}: output_size must be an int >= 1 or {what}, got {output_size!r}")
    return tuple(vals)


class Adaptive(Layer):
    """What the adaptive pools share: ``output_size`` and the input's checks."""

    nd = 2

    def __init__(self, output_size):
        self._out = output_sizes(type(self).__name__, output_size, self.nd)
        self.output_size = given(output_size)

    def _sizes(self, x):
        """``(x with a batch axis, unbatched?, input's spatial sizes, output's)``."""
        xb, unbatched = batched(self, x)
        size = tuple(xb.shape[2:])
        if min(size) < 1:
            names = ", ".join(AXES[self.nd])
            raise ValueError(f"{self._tag()} expected an input with {names} >= 1, got shape {shape_str(x.shape)}")
        return xb, unbatched, size, tuple(s if o is None else o for s, o in zip(size, self._out))

    def extra_repr(self):
        return f"output_size={self.output_size}"


def _along(axis, a, b):
    """The index of positions ``[a, b)`` along ``axis`` (the leading axes whole)."""
    return (slice(None),) * axis + (slice(a, b), ...)


class _AdaptiveAvgPool(Adaptive):
    """Mean over adaptive windows giving a fixed output size, as ``torch.nn.AdaptiveAvgPoolNd``
    (the subclasses fix ``nd``).

    Output cell ``a`` along an axis of input size ``L`` and output size ``O`` averages positions
    ``[floor(a*L/O), ceil((a+1)*L/O))`` (windows of uneven sizes, overlapping where ``O`` does not
    divide ``L``). ``output_size`` is an int or ``nd`` of them; ``None`` keeps that axis's input
    size (2-D and 3-D, as in torch). Shapes: ``(N, C, *S) -> (N, C, *O)`` (the batch axis optional).

    An output of size 1 everywhere (global average pooling) is one mean over the spatial axes.
    Other sizes are separable (a box's mean is the mean of its row means), so they pool one axis
    after another: ``sum(O)`` slice means rather than ``prod(O)``. Backward is the adjoint, in
    the opposite order. Keeps only the input's shape.
    """

    _config_fields = ('output_size',)

    def forward(self, x):
        xp = require_float(self._tag(), x).xp
        xb, unbatched, size, out = self._sizes(x)
        axes = tuple(range(2, 2 + self.nd))
        if set(out) == {1}:
            y = xp.mean(xb, axis=axes, keepdims=True)
        else:
            y = xb
            for ax, n, o in zip(axes, size, out):
                if o != n:
                    y = xp.stack([xp.mean(y[_along(ax, a, b)], axis=ax) for a, b in _adaptive_windows(n, o)], axis=ax)
            if y is xb:
                y = xp.asarray(xb, copy=True)  # output size == input size: still a fresh array
        y = unbatch(y, unbatched)
        self.save_for_backward(tuple(xb.shape), unbatched, Signature(y))  # dx does not depend on x
        return y

    def backward(self, dy, input_grad: bool = True):
        shape, unbatched, out = self.saved()
        if dy is None or not input_grad:
            return None
        self.check_grad(dy, out)
        xp = backends.namespace_of(dy)
        g = dy[None, ...] if unbatched else dy
        dt, dev = dy.dtype, dy.device
        size, osize = shape[2:], tuple(g.shape[2:])
        if set(osize) == {1}:
            dx = xp.empty(shape, dtype=dt, device=dev)
            dx[...] = g / float(math.prod(size))  # broadcast into our own fresh array
        else:
            dx = g
            for ax in range(1 + self.nd, 1, -1):  # the last axis first: the adjoint of the forward's last step
                n, o = shape[ax], osize[ax - 2]
                if o == n:
                    continue
                t = xp.zeros(tuple(dx.shape[:ax]) + (n,) + tuple(dx.shape[ax + 1:]), dtype=dt, device=dev)
                for k, (a, b) in enumerate(_adaptive_windows(n, o)):
                    t[_along(ax, a, b)] += dx[_along(ax, k, k + 1)] / float(b - a)
                dx = t
            if dx is g:
                dx = xp.asarray(g, copy=True)
        return unbatch(dx, unbatched)


class AdaptiveAvgPool1d(_AdaptiveAvgPool):
    """Mean over adaptive windows of ``(N, C, L)`` (or ``(C, L)``), as ``torch.nn.AdaptiveAvgPool1d``:
    output ``a`` of ``O`` averages ``[floor(a*L/O), ceil((a+1)*L/O))``; see :class:`_AdaptiveAvgPool`.
    Shapes: ``(N, C, L) -> (N, C, O)``."""

    nd = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPool):
    """Mean over adaptive windows giving a fixed output size, as ``torch.nn.AdaptiveAvgPool2d``.

    Output cell ``(a, b)`` of an ``H x W`` input averages rows ``[floor(a*H/OH), ceil((a+1)*H/OH))``
    and columns ``[floor(b*W/OW), ceil((b+1)*W/OW))``. ``output_size`` is an int or a pair; ``None``
    in the pair keeps that axis's input size. Shapes: ``(N, C, H, W) -> (N, C, OH, OW)`` (or 3-D);
    see :class:`_AdaptiveAvgPool` for how it computes.
    """

    nd = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPool):
    """Mean over adaptive windows of ``(N, C, D, H, W)`` (or 4-D), as ``torch.nn.AdaptiveAvgPool3d``:
    each axis's windows as in :class:`_AdaptiveAvgPool`. Shapes: ``(N, C, D, H, W) -> (N, C, OD, OH, OW)``."""

    nd = 3
