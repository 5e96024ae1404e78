"""Channel dropout (Dropout1d/2d/3d) and self-normalising dropout (AlphaDropout,
FeatureAlphaDropout), as ``torch.nn``.

While training, with ``m ~ Bernoulli(1 - p)`` drawn on the input's device from its backend's
generator (one draw per sample and channel for the channel and feature variants, broadcast
over the spatial axes; one per element for AlphaDropout):

- Dropout1d/2d/3d: ``y = x * m / (1 - p)``: whole channels zeroed;
- AlphaDropout, FeatureAlphaDropout (for SELU nets): ``y = a (x m + alpha' p) + alpha' a (m - 1)``,
  i.e. ``y = x * (a m) + b`` with ``alpha' = 1.7580993408473766``,
  ``a = 1 / sqrt((alpha'^2 p + 1)(1 - p))`` and ``b = alpha' a (m - 1 + p)``: a dropped entry
  becomes SELU's negative saturation value, rescaled so that a zero-mean, unit-variance input
  keeps its mean and variance.

``p = 1`` gives zeros (as torch). In eval mode, or with ``p = 0``, ``y = x``. Backward:
``dx = dy * s`` with the kept scale ``s`` (``m / (1 - p)``, or ``a m``); forward keeps ``s``, of
the mask's shape (None when inactive), and the output's :class:`~xpnet.layers.base.Signature`.

Input ranks, as torch: Dropout1d ``(N, C, L)`` or ``(C, L)``; Dropout2d ``(N, C, H, W)`` or 3-D,
which torch (and so xpnet) takes as ``(N, C, L)``; Dropout3d ``(N, C, D, H, W)`` or
``(C, D, H, W)``; FeatureAlphaDropout any input of at least 2 axes, axis 0 the batch and axis 1
the channels; AlphaDropout any shape.
"""

from __future__ import annotations

import math

from ..validate import probability
from ._checks import require_float, shape_str
from .base import Layer, Signature

#: SELU's -scale * alpha, the value a dropped entry takes before the affine correction
_ALPHA = 1.7580993408473766


class _MaskedDropout(Layer):
    """The shared forward and backward; a subclass says which axes share a draw (:meth:`_lead`)
    and whether it is the alpha variant."""

    _config_fields = ("p",)
    _alpha = False

    def __init__(self, p: float = 0.5):
        self.p = probability(type(self).__name__, "p", p, closed=True)

    def _lead(self, ndim):
        """How many leading axes get their own draws (the rest share them), or None for a rank
        this layer does not take."""
        raise NotImplementedError

    def _rank_error(self, x):
        return ValueError(f"{self._tag()} expected {self._ranks}, got shape {shape_str(x.shape)}")

    def forward(self, x):
        be = require_float(self._tag(), x)
        lead = self._lead(x.ndim)
        if lead is None:
            raise self._rank_error(x)
        if not self.training or self.p == 0.0 or math.prod(x.shape) == 0:
            self.save_for_backward(None, Signature(x))
            return x
        xp, p = be.xp, self.p
        shape = tuple(x.shape[:lead]) + (1,) * (x.ndim - lead)
        if p == 1.0:
            scale = xp.zeros(shape, dtype=x.dtype, device=x.device)
            self.save_for_backward(scale, Signature(x))
            return x * scale
        m = be.rng.bernoulli(shape, 1.0 - p, dtype=x.dtype, device=x.device)
        if not self._alpha:
            scale = m * (1.0 / (1.0 - p))
            y = x * scale
        else:
            a = 1.0 / math.sqrt((_ALPHA * _ALPHA * p + 1.0) * (1.0 - p))
            scale = m * a
            y = x * scale + (m - (1.0 - p)) * (_ALPHA * a)
        self.save_for_backward(scale, Signature(x))
        return y

    def backward(self, dy, input_grad: bool = True):
        scale, sig = self.saved()
        if dy is None or not input_grad:
            return None
        self.check_grad(dy, sig)
        return dy if scale is None else dy * scale  # None: inactive, y = x

    def extra_repr(self):
        return f"p={self.p}"


class Dropout1d(_MaskedDropout):
    """``torch.nn.Dropout1d(p=0.5)``: zeroes whole channels of ``(N, C, L)`` or ``(C, L)``
    (see :mod:`xpnet.layers.dropout_channels`)."""

    _ranks = "a 3-D (N, C, L) or 2-D (C, L) input"

    def _lead(self, ndim):
        return {2: 1, 3: 2}.get(ndim)


class Dropout2d(_MaskedDropout):
    """``torch.nn.Dropout2d(p=0.5)``: zeroes whole channels of ``(N, C, H, W)``; a 3-D input is
    taken as ``(N, C, L)``, as torch does (see :mod:`xpnet.layers.dropout_channels`)."""

    _ranks = "a 4-D (N, C, H, W) or 3-D (N, C, L) input"

    def _lead(self, ndim):
        return 2 if ndim in (3, 4) else None


class Dropout3d(_MaskedDropout):
    """``torch.nn.Dropout3d(p=0.5)``: zeroes whole channels of ``(N, C, D, H, W)`` or
    ``(C, D, H, W)`` (see :mod:`xpnet.layers.dropout_channels`)."""

    _ranks = "a 5-D (N, C, D, H, W) or 4-D (C, D, H, W) input"

    def _lead(self, ndim):
        return {4: 1, 5: 2}.get(ndim)


class AlphaDropout(_MaskedDropout):
    """``torch.nn.AlphaDropout(p=0.5)``: alpha dropout of each element, any shape (see
    :mod:`xpnet.layers.dropout_channels`)."""

    _alpha = True
    _ranks = "any input"

    def _lead(self, ndim):
        return ndim


class FeatureAlphaDropout(_MaskedDropout):
    """``torch.nn.FeatureAlphaDropout(p=0.5)``: alpha dropout of whole channels of
    ``(N, C, *)`` (see :mod:`xpnet.layers.dropout_channels`)."""

    _alpha = True
    _ranks = "an input of at least 2 axes (N, C, *)"

    def _lead(self, ndim):
        return 2 if ndim >= 2 else None
