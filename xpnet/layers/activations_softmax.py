"""Softmax's relatives along one axis: LogSoftmax, Softmin, Softmax2d (Softmax itself is in
:mod:`~xpnet.layers.activations`).

As Softmax: the axis ``dim`` (an int; 0 or -1 for a 0-d input), the exponentials and sums in
float32 for a float16/bfloat16 input with the results in the input's dtype, and the output ``y``
kept for backward.
"""

from __future__ import annotations

from ._checks import shape_str
from .activations import _AlongDim, softmax, softmax_backward


class LogSoftmax(_AlongDim):
    """``y = x - max x - log(sum exp(x - max x))`` along ``dim``: never overflows, and stays
    finite where the softmax underflows to 0. Backward: ``dx = dy - exp(y) * sum(dy, dim)``."""

    def _along(self, xp, x, axis):
        s = x - xp.max(x, axis=axis, keepdims=True)
        s -= xp.log(xp.sum(xp.exp(s), axis=axis, keepdims=True))  # s is our own fresh array
        return s

    def _along_backward(self, xp, dy, y, axis):
        return dy - xp.exp(y) * xp.sum(dy, axis=axis, keepdims=True)


class Softmin(_AlongDim):
    """``y = softmax(-x)`` along ``dim``; ``dx = -y * (dy - sum(dy * y, dim))``."""

    def _along(self, xp, x, axis):
        return softmax(xp, -x, axis)

    def _along_backward(self, xp, dy, y, axis):
        return -softmax_backward(xp, dy, y, axis)


class Softmax2d(_AlongDim):
    """Softmax over the channels of each location: ``dim=-3`` of a ``(N, C, H, W)`` or
    ``(C, H, W)`` input (torch refuses other ranks, and so does xpnet)."""

    _config_fields = ()

    def __init__(self):
        super().__init__(-3)

    def forward(self, x):
        nd = getattr(x, "ndim", None)
        if nd is not None and nd not in (3, 4):
            raise ValueError(f"{self._tag()} expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, "
                             f"got {nd}-D input of shape {shape_str(x.shape)}")
        return super().forward(x)

    def _along(self, xp, x, axis):
        return softmax(xp, x, axis)

    def _along_backward(self, xp, dy, y, axis):
        return softmax_backward(xp, dy, y, axis)

    def extra_repr(self):
        return ""
