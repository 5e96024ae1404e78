"""Inverted dropout: zero each element with probability p while training, scale the rest by 1/(1-p)."""

from __future__ import annotations

import numbers

from ._checks import no_forward_error, require_float
from .base import Layer


class Dropout(Layer):
    """Training: ``y = x * m / (1 - p)`` with ``m ~ Bernoulli(1 - p)`` drawn on the input's device
    from its backend's generator; eval (or ``p == 0``): ``y = x``.

    Backward: ``dx = dy * m / (1 - p)``. Keeps the scaled mask (``None`` when inactive).
    """

    _config_fields = ('p',)

    def __init__(self, p: float = 0.5):
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1), got {p!r}")
        self.p = float(p)
        self._mask = None
        self._ready = False

    def forward(self, x):
        be = require_float(self._tag(), x)
        self._ready = True
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        keep = 1.0 - self.p
        mask = be.rng.bernoulli(tuple(x.shape), keep, dtype=x.dtype, device=x.device)
        mask *= 1.0 / keep  # our own fresh array: scale in place
        self._mask = mask
        return x * mask

    def backward(self, dy):
        if not self._ready:
            raise no_forward_error(self._tag())
        self._ready = False
        mask, self._mask = self._mask, None
        return dy if mask is None else dy * mask

    def extra_repr(self):
        return f"p={self.p}"
