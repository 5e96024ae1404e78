"""Flatten: merge a range of axes into one. Shapes only; no arithmetic."""

from __future__ import annotations

import math

from .. import backends
from ._checks import no_forward_error, require_array, shape_str
from .base import Layer


class Flatten(Layer):
    """Merge axes ``start_dim..end_dim`` into one: ``(N, C, H, W) -> (N, C*H*W)`` by default.

    Backward reshapes ``dy`` back to the input's shape, which is all it keeps.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        for name, v in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"Flatten: {name} must be an int, got {v!r}")
        self.start_dim = start_dim
        self.end_dim = end_dim
        self._shape = None

    def forward(self, x):
        require_array(self._tag(), x)
        shape = tuple(x.shape)
        nd = len(shape)
        s = self.start_dim + nd if self.start_dim < 0 else self.start_dim
        e = self.end_dim + nd if self.end_dim < 0 else self.end_dim
        if not (0 <= s < max(nd, 1) and 0 <= e < max(nd, 1) and s <= e):
            raise ValueError(
                f"{self._tag()} cannot flatten axes {self.start_dim}..{self.end_dim} of an input of shape {shape_str(shape)}"
            )
        self._shape = shape
        if nd == 0:
            return backends.namespace_of(x).reshape(x, (1,))
        return backends.namespace_of(x).reshape(x, shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:])

    def backward(self, dy):
        shape = self._shape
        if shape is None:
            raise no_forward_error(self._tag())
        self._shape = None
        return backends.namespace_of(dy).reshape(dy, shape)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
