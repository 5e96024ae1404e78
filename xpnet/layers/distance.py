"""Norms and distances between two inputs: CosineSimilarity and PairwiseDistance, as ``torch.nn``,
and the p-norm (:func:`vector_norm`) with its gradient (:func:`vector_norm_backward`) they share
(Embedding's ``max_norm`` uses the norm too).

Both layers take two inputs ``x1``, ``x2`` that broadcast together (shape ``S``); forward
returns one output and backward two gradients, each summed back to its input's shape.
"""

from __future__ import annotations

import math

from .. import backends
from ..validate import dim as _dim
from ..validate import flag, positive_real, real
from ._checks import place, require_float, shape_str
from .base import Layer


# -- the p-norm -----------------------------------------------------------------------------------
def vector_norm(xp, x, p, axis):
    """``||x||_p`` along ``axis``, kept as a size-1 axis: ``(sum |x|^p)^(1/p)``; ``p = inf``: max
    ``|x|``, ``-inf``: min ``|x|``, ``0``: the count of non-zeros (as ``torch.linalg.vector_norm``)."""
    if p == 2.0:
        return xp.sqrt(xp.sum(x * x, axis=axis, keepdims=True))
    if p == 1.0:
        return xp.sum(xp.abs(x), axis=axis, keepdims=True)
    if p == math.inf:
        return xp.max(xp.abs(x), axis=axis, keepdims=True)
    if p == -math.inf:
        return xp.min(xp.abs(x), axis=axis, keepdims=True)
    if p == 0.0:
        return xp.sum(xp.astype(x != 0, x.dtype), axis=axis, keepdims=True)
    return xp.sum(xp.abs(x) ** p, axis=axis, keepdims=True) ** (1.0 / p)


def vector_norm_backward(xp, x, norm, g, p, axis):
    """``d||x||_p / dx`` times ``g`` (``norm`` and ``g`` with the size-1 axis), torch's rule: 0
    where the norm is 0 (``p >= 1``) or where ``x`` is 0 (``p < 1``); for ``p = +-inf`` the
    gradient is shared among the entries where ``|x|`` attains the norm (and NaNs)."""
    if p == 0.0:
        return xp.zeros(x.shape, dtype=x.dtype, device=x.device)
    if p == 1.0:
        return xp.sign(x) * g
    zero = norm == 0
    if p == 2.0:
        return x * xp.where(zero, 0.0, g / xp.where(zero, 1.0, norm))
    if math.isinf(p):
        hit = xp.astype((xp.abs(x) == norm) | xp.isnan(x), x.dtype)
        return xp.sign(x) * (g / xp.sum(hit, axis=axis, keepdims=True)) * hit
    ax = xp.abs(x)
    if p < 1.0:
        scaled = xp.sign(x) * xp.where(x == 0, 0.0, xp.where(x == 0, 1.0, ax) ** (p - 1.0))
        return scaled * g * norm ** (1.0 - p)
    per = xp.where(zero, 0.0, g / xp.where(zero, 1.0, norm) ** (p - 1.0))
    if p < 2.0:
        return xp.sign(x) * ax ** (p - 1.0) * per
    return x * ax ** (p - 2.0) * per


# -- two broadcasting inputs ---------------------------------------------------------------------
def sum_to(xp, g, shape):
    """``g`` summed over the axes that broadcasting added or stretched, to ``shape``."""
    extra = g.ndim - len(shape)
    if extra:
        g = xp.sum(g, axis=tuple(range(extra)))
    stretched = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if stretched:
        g = xp.sum(g, axis=stretched, keepdims=True)
    return g


def _pair(layer, x1, x2):
    """The namespace and broadcast shape of ``x1``, ``x2``, after checking they are float arrays
    of one place and dtype that broadcast together."""
    tag = layer._tag()
    be = require_float(tag, x1, "first input")
    require_float(tag, x2, "second input")
    if type(x2) is not type(x1) or x2.device != x1.device:
        raise ValueError(f"{tag} got its inputs on {place(x1)} and {place(x2)}; move one with backends.get(...).asarray(...)")
    if x2.dtype != x1.dtype:
        raise TypeError(f"{tag} got inputs of dtypes {be.dtype_name(x1.dtype)} and {be.dtype_name(x2.dtype)}; "
                        "convert one with xp.astype(x, other.dtype)")
    shape = _broadcast(tuple(x1.shape), tuple(x2.shape))
    if shape is None:
        raise ValueError(f"{tag} expected inputs that broadcast together, got shapes {shape_str(x1.shape)} "
                         f"and {shape_str(x2.shape)}")
    return be.xp, shape


def _broadcast(s1, s2):
    """The broadcast shape of ``s1`` and ``s2``, or None (``broadcast_shapes`` is API 2025.12)."""
    n = max(len(s1), len(s2))
    a, b = (1,) * (n - len(s1)) + s1, (1,) * (n - len(s2)) + s2
    if any(p != q and 1 not in (p, q) for p, q in zip(a, b)):
        return None
    return tuple(q if p == 1 else p for p, q in zip(a, b))


def _scalar(xp, y):
    """numpy reduces a 1-D array to a numpy scalar: make it a 0-d array again."""
    return xp.asarray(y) if y.ndim == 0 else y


class CosineSimilarity(Layer):
    """``torch.nn.CosineSimilarity(dim=1, eps=1e-8)``::

        y = sum_dim (x1 / max(||x1||, eps)) * (x2 / max(||x2||, eps))

    norms (2-norms) along ``dim`` of the broadcast inputs. Shapes: ``x1``, ``x2`` broadcasting to
    ``S`` -> ``S`` without axis ``dim``. Backward as torch's: the clamp at ``eps`` passes the
    gradient of the norm through unchanged. Forward keeps the broadcast inputs (views), their
    norms and clamped norms.
    """

    _config_fields = ("dim", "eps")

    def __init__(self, dim: int = 1, eps: float = 1e-8):
        self.dim = _dim("CosineSimilarity", "dim", dim)
        self.eps = positive_real("CosineSimilarity", "eps", eps)

    def forward(self, x1, x2):
        xp, shape = _pair(self, x1, x2)
        nd = len(shape)
        if not -nd <= self.dim < nd:
            raise ValueError(f"{self._tag()} expected inputs with axis {self.dim}, got broadcast shape {shape_str(shape)}")
        d = self.dim % nd
        a, b = xp.broadcast_to(x1, shape), xp.broadcast_to(x2, shape)
        na, nb = vector_norm(xp, a, 2.0, d), vector_norm(xp, b, 2.0, d)
        ca, cb = xp.maximum(na, self.eps), xp.maximum(nb, self.eps)
        y = _scalar(xp, xp.sum((a / ca) * (b / cb), axis=d))
        self.save_for_backward(a, b, na, nb, ca, cb, d, tuple(x1.shape), tuple(x2.shape))
        return y

    def backward(self, dy, input_grad: bool = True):
        a, b, na, nb, ca, cb, d, s1, s2 = self.saved()
        if dy is None or not input_grad:
            return None
        self.check_grad(dy, a, a.shape[:d] + a.shape[d + 1:])
        xp = backends.namespace_of(dy)
        g = xp.expand_dims(dy, axis=d)
        ua, ub = a / ca, b / cb

        def side(x, u, other, n, c):
            du = g * other
            dn = -xp.sum(du * u, axis=d, keepdims=True) / c  # through the clamp unchanged, as torch
            return du / c + vector_norm_backward(xp, x, n, dn, 2.0, d)

        return sum_to(xp, side(a, ua, ub, na, ca), s1), sum_to(xp, side(b, ub, ua, nb, cb), s2)

    def extra_repr(self):
        return f"dim={self.dim}, eps={self.eps}"


class PairwiseDistance(Layer):
    """``torch.nn.PairwiseDistance(p=2.0, eps=1e-6, keepdim=False)``::

        y = ||x1 - x2 + eps||_p   along the last axis

    Shapes: ``x1``, ``x2`` broadcasting to ``(*, D)`` -> ``(*)`` (``(*, 1)`` with ``keepdim``);
    1-D inputs give a 0-d output. ``p`` any real or ``inf`` (see :func:`vector_norm`). Forward
    keeps the difference and its norm.
    """

    _config_fields = ("p", "eps", "keepdim")

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
        self.p = real("PairwiseDistance", "p", p)
        self.eps = real("PairwiseDistance", "eps", eps)
        self.keepdim = flag("PairwiseDistance", "keepdim", keepdim)

    def forward(self, x1, x2):
        xp, shape = _pair(self, x1, x2)
        if not shape:
            raise ValueError(f"{self._tag()} expected inputs of at least 1 axis (*, D), got 0-d ones")
        diff = x1 - x2 + self.eps
        n = vector_norm(xp, diff, self.p, -1)
        self.save_for_backward(diff, n, tuple(x1.shape), tuple(x2.shape))
        return n if self.keepdim else _scalar(xp, xp.squeeze(n, axis=-1))

    def backward(self, dy, input_grad: bool = True):
        diff, n, s1, s2 = self.saved()
        if dy is None or not input_grad:
            return None
        self.check_grad(dy, n, n.shape if self.keepdim else n.shape[:-1])
        xp = backends.namespace_of(dy)
        g = vector_norm_backward(xp, diff, n, dy if self.keepdim else xp.expand_dims(dy, axis=-1), self.p, -1)
        return sum_to(xp, g, s1), -sum_to(xp, g, s2)

    def extra_repr(self):
        return f"p={self.p}, eps={self.eps}, keepdim={self.keepdim}"
