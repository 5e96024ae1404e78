"""Linear: y = x W^T + b, with PyTorch's parameter layout and default initialisation."""

from __future__ import annotations

import math

from .. import backends
from ._checks import check_like, no_forward_error, positive_int, shape_str
from .base import Layer, Parameter


class Linear(Layer):
    """``y = x @ W.T + b``.

    Shapes: ``x (N, in_features)`` -> ``y (N, out_features)``; ``weight (out_features, in_features)``,
    ``bias (out_features,)``, as ``torch.nn.Linear``.

    Initialisation as PyTorch: ``W, b ~ U(-1/sqrt(in), 1/sqrt(in))`` (Kaiming-uniform with
    ``a = sqrt(5)``), drawn from the backend's generator, in ``dtype`` (default float32) on
    ``backend`` (default: the current default backend).

    Backward: ``dW += dy.T @ x``, ``db += sum_n dy``, ``dx = dy @ W``.
    """

    _config_fields = ('in_features', 'out_features', 'bias')

    # Sequential may ask this layer to skip dx when it is first: no one needs the data's gradient.
    _input_grad_optional = True

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, backend=None, dtype=None):
        self.in_features = positive_int("Linear", "in_features", in_features)
        self.out_features = positive_int("Linear", "out_features", out_features)
        be = backends.get(backend)
        dt = be.dtype("float32" if dtype is None else dtype)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(be.rng.uniform((out_features, in_features), -bound, bound, dtype=dt))
        self.bias = Parameter(be.rng.uniform((out_features,), -bound, bound, dtype=dt)) if bias else None
        self._x = None  # the input: dW needs it

    def forward(self, x):
        w = self.weight.data
        check_like(self._tag(), x, w)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"{self._tag()} expected input of shape (N, {self.in_features}), got {shape_str(x.shape)}"
            )
        y = x @ w.T
        if self.bias is not None:
            y += self.bias.data  # y is our own fresh array: adding in place saves a temporary
        self._x = x
        return y

    def backward(self, dy, input_grad: bool = True):
        x = self._x
        if x is None:
            raise no_forward_error(self._tag())
        self._x = None
        if tuple(dy.shape) != (x.shape[0], self.out_features):
            raise ValueError(
                f"{self._tag()}.backward expected dy of shape ({x.shape[0]}, {self.out_features}), "
                f"got {shape_str(dy.shape)}"
            )
        self.weight.accumulate(dy.T @ x)
        if self.bias is not None:
            self.bias.accumulate(backends.namespace_of(dy).sum(dy, axis=0))
        return dy @ self.weight.data if input_grad else None

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def _tag(self):
        return f"Linear({self.in_features} -> {self.out_features})"
