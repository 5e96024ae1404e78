"""Inverted dropout: zero each element with probability p while training, scale the rest by 1/(1-p)."""

from __future__ import annotations

from ..backends import namespace_of
from ..validate import probability
from ._checks import require_float
from .base import Layer, Signature


class Dropout(Layer):
    """Training: ``y = x * m / (1 - p)`` with ``m ~ Bernoulli(1 - p)`` drawn on the input's device
    from its backend's generator; eval (or ``p == 0``): ``y = x``.

    Any input shape, 0-d included. Backward: ``dx = dy * m / (1 - p)``. Saves the scaled mask,
    or when inactive the output's :class:`Signature`; ``dy`` is checked against either.
    """

    _config_fields = ('p',)

    def __init__(self, p: float = 0.5):
        self.p = probability("Dropout", "p", p)

    def forward(self, x):
        be = require_float(self._tag(), x)
        if not self.training or self.p == 0.0:
            self.save_for_backward(Signature(x))
            return x
        keep = 1.0 - self.p
        mask = be.rng.bernoulli(tuple(x.shape), keep, dtype=x.dtype, device=x.device)
        mask *= 1.0 / keep  # our own fresh array: scale in place
        if x.ndim == 0:
            mask = be.xp.asarray(mask)  # numpy's generator gives a scalar for shape (): backward checks dy against an array
        self.save_for_backward(mask)
        y = x * mask
        return be.xp.asarray(y) if x.ndim == 0 else y  # numpy: 0-d times 0-d is a scalar

    def backward(self, dy, input_grad: bool = True):
        (mask,) = self.saved()
        if dy is None or not input_grad:
            return None
        self.check_grad(dy, mask)
        if type(mask) is Signature:  # inactive: y = x
            return dy
        dx = dy * mask
        return namespace_of(dy).asarray(dx) if dy.ndim == 0 else dx

    def extra_repr(self):
        return f"p={self.p}"
