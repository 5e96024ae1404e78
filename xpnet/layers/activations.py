"""Elementwise activations and softmax. Each saves one array for backward, and says which.

Inputs of any shape, 0-d included (numpy's ufuncs turn 0-d arrays into numpy scalars, so a
0-d result is wrapped back into a 0-d array).
"""

from __future__ import annotations

from ..backends import backend_of, namespace_of
from ..validate import dim as _dim, real
from ._checks import require_array, require_float
from .base import Layer, Signature


def stable_sigmoid(xp, x):
    """1 / (1 + exp(-x)) without overflow: exp is only ever taken of -|x|."""
    e = xp.exp(-xp.abs(x))
    r = 1.0 / (1.0 + e)
    return xp.where(x >= 0, r, e * r)


class _Activation(Layer):
    """Shared plumbing: float check, one saved array per forward, dy check, 0-d results.

    A subclass gives ``_forward(xp, x) -> (y, kept)`` and ``_backward(xp, dy, kept) -> dx``;
    ``kept`` has the output's shape, dtype and place, so backward checks ``dy`` against it.
    """

    def forward(self, x):
        be = require_float(self._tag(), x)
        y, kept = self._forward(be.xp, x)
        if x.ndim == 0:
            y, kept = be.xp.asarray(y), be.xp.asarray(kept)
        self.save_for_backward(kept)
        return y

    def backward(self, dy, input_grad: bool = True):
        (kept,) = self.saved()
        if dy is None or not input_grad:
            return None
        self.check_grad(dy, kept)
        xp = namespace_of(dy)
        dx = self._backward(xp, dy, kept)
        return xp.asarray(dx) if dy.ndim == 0 else dx


class ReLU(_Activation):
    """``y = max(x, 0)``; ``dx = dy * [y != 0]``. Keeps ``y`` (the mask is derived from it).

    As in torch: a NaN input gives a NaN output and passes ``dy`` (``y != 0`` holds for NaN, as
    torch's ``x <= 0 ? 0 : dy`` does); ``x = 0`` gets no gradient. One difference: torch
    selects, xpnet multiplies, so where ``x <= 0`` a NaN or infinite ``dy`` gives NaN here, 0 in
    torch (a ``dy`` that is already not finite).
    """

    def _forward(self, xp, x):
        y = xp.maximum(x, 0.0)  # NaN stays NaN (maximum propagates it)
        return y, y

    def _backward(self, xp, dy, y):
        # multiplying by a float mask is ~14x faster than where() on numpy (measured, 1024x512)
        return dy * xp.astype(y != 0, dy.dtype)


class LeakyReLU(_Activation):
    """``y = x`` for ``x > 0``, else ``negative_slope * x``. Keeps the per-element slope.

    A NaN input gives NaN and ``dx = negative_slope * dy``, as torch's ``x > 0 ? dy : a dy``.
    """

    _config_fields = ('negative_slope',)

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = real("LeakyReLU", "negative_slope", negative_slope)

    def _forward(self, xp, x):
        a = self.negative_slope
        slope = xp.astype(x > 0, x.dtype) * (1.0 - a) + a
        return x * slope, slope

    def _backward(self, xp, dy, slope):
        return dy * slope

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(_Activation):
    """``y = 1 / (1 + exp(-x))`` (overflow-free); ``dx = dy * y * (1 - y)``. Keeps ``y``."""

    def _forward(self, xp, x):
        y = stable_sigmoid(xp, x)
        return y, y

    def _backward(self, xp, dy, y):
        return dy * y * (1.0 - y)


class Tanh(_Activation):
    """``y = tanh(x)``; ``dx = dy * (1 - y^2)``. Keeps ``y``."""

    def _forward(self, xp, x):
        y = xp.tanh(x)
        return y, y

    def _backward(self, xp, dy, y):
        return dy * (1.0 - y * y)


class Softmax(_Activation):
    """``y_i = exp(x_i - max x) / sum_j exp(x_j - max x)`` along ``dim``.

    Backward: ``dx = y * (dy - sum(dy * y, dim))``. Keeps ``y``.

    A 0-d input accepts ``dim`` 0 or -1 (as torch: a 0-d array counts as one axis of
    length 1) and gives 1 (NaN for a NaN input), with a zero gradient.

    A float16/bfloat16 input is computed in float32 (its exponentials and sums, forward and
    backward), and ``y`` and ``dx`` are given back in the input's dtype.
    """

    _config_fields = ('dim',)

    def __init__(self, dim: int = -1):
        self.dim = _dim("Softmax", "dim", dim)

    def _forward(self, xp, x):
        nd = max(x.ndim, 1)
        if not -nd <= self.dim < nd:
            raise ValueError(f"{self._tag()} expected an input with axis {self.dim}, got {x.ndim}-d input")
        be = backend_of(x)
        wide = be.widened(x)  # float16/bfloat16: exp and sum in float32
        if x.ndim == 0:  # the standard's reductions take no axis on 0-d arrays: use one of length 1
            y = xp.reshape(self._softmax(xp, xp.reshape(wide, (1,)), 0), ())
        else:
            y = self._softmax(xp, wide, self.dim)
        y = be.narrowed(y, x.dtype)
        return y, y

    @staticmethod
    def _softmax(xp, x, axis):
        e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
        e /= xp.sum(e, axis=axis, keepdims=True)  # e is our own fresh array
        return e

    def _backward(self, xp, dy, y):
        be = backend_of(dy)
        dyw, yw = be.widened(dy), be.widened(y)
        if dy.ndim == 0:
            return be.narrowed(yw * (dyw - dyw * yw), dy.dtype)  # the sum over a single element is the element
        return be.narrowed(yw * (dyw - xp.sum(dyw * yw, axis=self.dim, keepdims=True)), dy.dtype)

    def extra_repr(self):
        return f"dim={self.dim}"


class Identity(Layer):
    """``y = x``; ``dx = dy``. Accepts any array; saves the output's :class:`Signature` (not the
    array), against which backward checks ``dy``."""

    def forward(self, x):
        require_array(self._tag(), x)
        self.save_for_backward(Signature(x))
        return x

    def backward(self, dy, input_grad: bool = True):
        (sig,) = self.saved()
        if dy is None or not input_grad:
            return None
        self.check_grad(dy, sig)
        return dy
