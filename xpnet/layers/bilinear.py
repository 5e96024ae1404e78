"""Bilinear: ``y = x1^T W x2 + b`` for two inputs, as ``torch.nn.Bilinear``."""

from __future__ import annotations

import math

from .. import backends
from ..validate import flag, positive_int
from ._checks import check_like, shape_str
from .base import Layer, Parameter, trains


class Bilinear(Layer):
    """``y[..., o] = sum_{i, j} x1[..., i] weight[o, i, j] x2[..., j] + bias[o]``.

    Shapes: ``x1 (*, in1_features)`` and ``x2 (*, in2_features)`` with the same leading axes
    (none: unbatched) -> ``y (*, out_features)``; ``weight (out_features, in1_features,
    in2_features)``, ``bias (out_features,)``. Initialisation as torch: ``weight, bias ~ U(-1/sqrt(in1),
    1/sqrt(in1))`` from the backend's generator, in ``dtype`` (default float32).

    Method, with the leading axes flattened to ``M``: ``T = (x1 @ W') (M, out, in2)`` with
    ``W' (in1, out * in2)`` the weight's axes reordered, then ``y = sum_j T * x2``. Backward:
    ``dx2 = dy @ T``, ``dx1[m] = dy[m] @ (W x2[m]) (out, in1)``, ``dW = (dy x1)^T @ x2`` and
    ``db = sum_m dy``. Forward keeps ``x1``, ``x2`` and ``T``.
    """

    _config_fields = ("in1_features", "in2_features", "out_features", "bias")

    def __init__(self, in1_features: int, in2_features: int, out_features: int, bias: bool = True, *,
                 backend=None, dtype=None):
        sizes = {"in1_features": in1_features, "in2_features": in2_features, "out_features": out_features}
        for name, v in sizes.items():
            setattr(self, name, positive_int("Bilinear", name, v))
        flag("Bilinear", "bias", bias)
        be = backends.get(backend)
        dt, bound = be.dtype("float32" if dtype is None else dtype), 1.0 / math.sqrt(in1_features)
        shapes = {"weight": (out_features, in1_features, in2_features), "bias": (out_features,) if bias else None}
        for name, shape in shapes.items():
            setattr(self, name, None if shape is None else Parameter(be.rng.uniform(shape, -bound, bound, dtype=dt)))

    def forward(self, x1, x2):
        w, tag = self.weight.data, self._tag()
        check_like(tag, x1, w)
        check_like(tag, x2, w)
        i1, i2, o = self.in1_features, self.in2_features, self.out_features
        if x1.ndim < 1 or x1.shape[-1] != i1 or x2.ndim < 1 or x2.shape[-1] != i2 or x1.shape[:-1] != x2.shape[:-1]:
            raise ValueError(f"{tag} expected inputs (*, {i1}) and (*, {i2}) with the same leading axes, "
                             f"got {shape_str(x1.shape)} and {shape_str(x2.shape)}")
        xp = backends.namespace_of(x1)
        lead = tuple(x1.shape[:-1])
        a, b = xp.reshape(x1, (-1, i1)), xp.reshape(x2, (-1, i2))
        wt = xp.reshape(xp.permute_dims(w, (1, 0, 2)), (i1, o * i2))
        t = xp.reshape(a @ wt, (-1, o, i2))  # t[m, o, j] = sum_i x1[m, i] W[o, i, j]
        y = xp.sum(t * b[:, None, :], axis=2)
        if self.bias is not None:
            y = y + self.bias.data
        self.save_for_backward(a, b, t, lead)
        return xp.reshape(y, lead + (o,))

    def backward(self, dy, input_grad: bool = True):
        a, b, t, lead = self.saved()
        if dy is None:
            return None
        i1, i2, o = self.in1_features, self.in2_features, self.out_features
        self.check_grad(dy, a, lead + (o,))
        xp = backends.namespace_of(dy)
        g = xp.reshape(dy, (-1, o))
        w = self.weight
        if trains(w):  # dW[o, i, j] = sum_m g[m, o] x1[m, i] x2[m, j]
            gx = xp.reshape(g[:, :, None] * a[:, None, :], (-1, o * i1))
            w.accumulate(xp.reshape(gx.T @ b, (o, i1, i2)))
        if trains(self.bias):
            self.bias.accumulate(xp.sum(g, axis=0))
        if not input_grad:
            return None
        dx2 = (g[:, None, :] @ t)[:, 0, :]
        s = xp.reshape(b @ xp.reshape(w.data, (o * i1, i2)).T, (-1, o, i1))  # s[m, o, i] = sum_j W[o, i, j] x2[m, j]
        dx1 = (g[:, None, :] @ s)[:, 0, :]
        return xp.reshape(dx1, lead + (i1,)), xp.reshape(dx2, lead + (i2,))

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")

    def _tag(self):
        return f"Bilinear({self.in1_features}, {self.in2_features} -> {self.out_features})"
