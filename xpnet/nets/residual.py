"""Residual: ``y = body(x) + shortcut(x)``, the building block of ResNets."""

from __future__ import annotations

from ..layers._checks import shape_str
from ..layers.base import Layer


def add_grads(a, b):
    """``a + b`` where either may be None (no gradient from that path)."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b


class Residual(Layer):
    """``y = body(x) + shortcut(x)``; the shortcut is the identity when None.

    ``x`` fans out into two paths, so its gradient is the sum of theirs::

        dx = body.backward(dy) + shortcut.backward(dy)     (dy itself for the identity)

    Shapes: ``body(x)`` and ``shortcut(x)`` must have the same shape (give a shortcut, e.g. a
    1x1 ``Conv2d`` with stride, where the body changes the shape). Keeps nothing itself: its
    children keep what they need.
    """

    def __init__(self, body, shortcut=None):
        for name, v in (("body", body), ("shortcut", shortcut)):
            if v is not None and not isinstance(v, Layer):
                raise TypeError(f"Residual: {name} must be a Layer, got {type(v).__name__}")
        if body is None:
            raise TypeError("Residual: body must be a Layer, got None")
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        y = self.body(x)
        s = x if self.shortcut is None else self.shortcut(x)
        if tuple(y.shape) != tuple(s.shape):
            raise ValueError(
                f"{self._tag()}: the body gives shape {shape_str(y.shape)} but the "
                f"{'input' if self.shortcut is None else 'shortcut'} has shape {shape_str(s.shape)}; "
                "they are added, so give a shortcut that maps x to the body's output shape"
            )
        return y + s

    def backward(self, dy, input_grad: bool = True):
        dx = self.body.backward(dy, input_grad=input_grad)
        ds = dy if self.shortcut is None else self.shortcut.backward(dy, input_grad=input_grad)
        return add_grads(dx, ds) if input_grad else None

    def config(self):
        return {"body": self.body, "shortcut": self.shortcut}

    def _tag(self):
        return "Residual"
