"""Elementwise activations and softmax, and the bases every activation family builds on.

Inputs of any shape, 0-d included: a 0-d input is computed as shape ``(1,)`` and its results
reshaped back (numpy's ufuncs turn 0-d arrays into numpy scalars, and the standard's reductions
take no axis on 0-d arrays).

The activation families (``activations_*.py``) accept torch's ``inplace`` argument where torch
has one, True or False, and ignore it: xpnet never overwrites an input (the layer before may
still need it for its backward). It is not part of ``config()`` or the repr: it changes nothing.
"""

from __future__ import annotations

from ..backends import backend_of, namespace_of
from ..validate import dim as _dim, flag, real
from ._checks import require_array, require_float
from .base import Layer, Signature


def stable_sigmoid(xp, x):
    """1 / (1 + exp(-x)) without overflow: exp is only ever taken of -|x|."""
    e = xp.exp(-xp.abs(x))
    r = 1.0 / (1.0 + e)
    return xp.where(x >= 0, r, e * r)


def inplace_flag(owner: str, inplace) -> bool:
    """torch's ``inplace`` argument: checked (True or False), then ignored (see the module doc)."""
    return flag(owner, "inplace", inplace)


class _Activation(Layer):
    """Shared plumbing: float check, one saved array per forward, dy check, 0-d inputs.

    A subclass gives ``_forward(xp, x) -> (y, kept)`` and ``_backward(xp, dy, kept) -> dx``;
    ``kept`` has the output's shape, dtype and place, so backward checks ``dy`` against it.
    Both see at least one axis: a 0-d array arrives as shape ``(1,)``.
    """

    def forward(self, x):
        be = require_float(self._tag(), x)
        xp = be.xp
        if x.ndim == 0:
            y, kept = self._forward(xp, xp.reshape(x, (1,)))
            y, kept = xp.reshape(y, ()), xp.reshape(kept, ())
        else:
            y, kept = self._forward(xp, x)
        self.save_for_backward(kept)
        return y

    def backward(self, dy, input_grad: bool = True):
        (kept,) = self.saved()
        if dy is None or not input_grad:
            return None
        self.check_grad(dy, kept)
        xp = namespace_of(dy)
        if dy.ndim == 0:
            return xp.reshape(self._backward(xp, xp.reshape(dy, (1,)), xp.reshape(kept, (1,))), ())
        return self._backward(xp, dy, kept)


class _Elementwise(_Activation):
    """``y = f(x)`` elementwise, ``dx = dy * f'(x)``: ``_forward`` gives ``(y, f'(x))``, and the
    slope ``f'(x)`` is all that is kept (one array, computed while the forward's intermediates
    are at hand, instead of keeping ``x`` and recomputing them)."""

    def _backward(self, xp, dy, slope):
        return dy * slope


class _AlongDim(_Activation):
    """Activations along one axis ``dim`` (softmax and its relatives), computed in float32 for a
    float16/bfloat16 input (the exponentials and sums, forward and backward) and given back in
    the input's dtype. A 0-d input accepts ``dim`` 0 or -1 (as torch: one axis of length 1).

    A subclass gives ``_along(xp, x, dim) -> y`` and ``_along_backward(xp, dy, y, dim) -> dx`` on
    the widened arrays; the output ``y`` is what is kept.
    """

    _config_fields = ('dim',)

    def __init__(self, dim: int = -1):
        if dim is None:  # torch's implicit dim: deprecated there, refused here
            raise ValueError(f"{type(self).__name__}: dim must be an int, got None (torch's implicit dim=None is "
                             f"deprecated; pass the axis, e.g. {type(self).__name__}(dim=-1))")
        self.dim = _dim(type(self).__name__, "dim", dim)

    def forward(self, x):
        nd = max(getattr(x, "ndim", 1), 1)  # not an array: the base's check says so
        if not -nd <= self.dim < nd:
            raise ValueError(f"{self._tag()} expected an input with axis {self.dim}, got {x.ndim}-d input")
        return super().forward(x)

    def _forward(self, xp, x):
        be = backend_of(x)
        y = be.narrowed(self._along(xp, be.widened(x), self.dim), x.dtype)
        return y, y

    def _backward(self, xp, dy, y):
        be = backend_of(dy)
        return be.narrowed(self._along_backward(xp, be.widened(dy), be.widened(y), self.dim), dy.dtype)

    def extra_repr(self):
        return f"dim={self.dim}"


def softmax(xp, x, axis):
    """``exp(x - max x) / sum exp(x - max x)`` along ``axis`` (a fresh array)."""
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    e /= xp.sum(e, axis=axis, keepdims=True)  # e is our own fresh array
    return e


def softmax_backward(xp, dy, y, axis):
    """``y * (dy - sum(dy * y, axis))``: the gradient through ``y = softmax(x, axis)``."""
    return y * (dy - xp.sum(dy * y, axis=axis, keepdims=True))


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


class LeakyReLU(_Elementwise):
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


class Softmax(_AlongDim):
    """``y_i = exp(x_i - max x) / sum_j exp(x_j - max x)`` along ``dim``.

    Backward: ``dx = y * (dy - sum(dy * y, dim))``. Keeps ``y``.

    A 0-d input accepts ``dim`` 0 or -1 (as torch: a 0-d array counts as one axis of
    length 1) and gives 1 (NaN for a NaN input), with a zero gradient.

    A float16/bfloat16 input is computed in float32 (its exponentials and sums, forward and
    backward), and ``y`` and ``dx`` are given back in the input's dtype.
    """

    def _along(self, xp, x, axis):
        return softmax(xp, x, axis)

    def _along_backward(self, xp, dy, y, axis):
        return softmax_backward(xp, dy, y, axis)


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
