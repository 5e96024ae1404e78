"""Inverted dropout: zero each element with probability p while training, scale the rest by 1/(1-p)."""

from __future__ import annotations

from ..backends import namespace_of
from ..validate import probability
from ._checks import require_float, shape_str
from .base import Layer


class Dropout(Layer):
    """Training: ``y = x * m / (1 - p)`` with ``m ~ Bernoulli(1 - p)`` drawn on the input's device
    from its backend's generator; eval (or ``p == 0``): ``y = x``.

    Any input shape, 0-d included. Backward: ``dx = dy * m / (1 - p)``. Saves the scaled mask
    (``None`` when inactive: every forward saves an entry, so forwards and backwards pair up).
    """

    _config_fields = ('p',)

    def __init__(self, p: float = 0.5):
        self.p = probability("Dropout", "p", p)

    def forward(self, x):
        be = require_float(self._tag(), x)
        if not self.training or self.p == 0.0:
            self.save_for_backward(None)
            return x
        keep = 1.0 - self.p
        mask = be.rng.bernoulli(tuple(x.shape), keep, dtype=x.dtype, device=x.device)
        mask *= 1.0 / keep  # our own fresh array: scale in place
        self.save_for_backward(mask)
        y = x * mask
        return be.xp.asarray(y) if x.ndim == 0 else y  # numpy: 0-d times 0-d is a scalar

    def backward(self, dy, input_grad: bool = True):
        (mask,) = self.saved()
        if dy is None or not input_grad:
            return None
        if mask is None:
            return dy
        if dy.shape != mask.shape:
            raise ValueError(
                f"{self._tag()}.backward expected dy of shape {shape_str(mask.shape)}, got {shape_str(dy.shape)}"
            )
        dx = dy * mask
        return namespace_of(dy).asarray(dx) if dy.ndim == 0 else dx

    def extra_repr(self):
        return f"p={self.p}"
