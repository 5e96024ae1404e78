"""Linear: y = x W^T + b, with PyTorch's parameter layout and default initialisation."""

from __future__ import annotations

import math

from .. import backends
from ._checks import check_like, shape_str
from .base import Layer, Parameter, trains
from ..validate import flag, positive_int


class Linear(Layer):
    """``y = x @ W.T + b``.

    Shapes: ``x (*, in_features)`` -> ``y (*, out_features)``, any number of leading axes
    (none: a 1-D input gives a 1-D output); ``weight (out_features, in_features)``,
    ``bias (out_features,)``, as ``torch.nn.Linear``.

    Initialisation as PyTorch: ``W, b ~ U(-1/sqrt(in), 1/sqrt(in))`` (Kaiming-uniform with
    ``a = sqrt(5)``), drawn from the backend's generator, in ``dtype`` (default float32) on
    ``backend`` (default: the current default backend).

    Backward, with the leading axes flattened into one of size ``M``, ``X (M, in)`` and
    ``dY (M, out)``: ``dW += dY.T @ X``, ``db += sum_m dY``, ``dx = dY @ W``. Keeps ``x``.
    """

    _config_fields = ('in_features', 'out_features', 'bias')

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, backend=None, dtype=None):
        self.in_features = positive_int("Linear", "in_features", in_features)
        self.out_features = positive_int("Linear", "out_features", out_features)
        flag("Linear", "bias", bias)
        be = backends.get(backend)
        dt = be.dtype("float32" if dtype is None else dtype)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(be.rng.uniform((out_features, in_features), -bound, bound, dtype=dt))
        self.bias = Parameter(be.rng.uniform((out_features,), -bound, bound, dtype=dt)) if bias else None

    def forward(self, x):
        w = self.weight.data
        check_like(self._tag(), x, w)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{self._tag()} expected input of shape (*, {self.in_features}), got {shape_str(x.shape)}"
            )
        y = x @ w.T
        if self.bias is not None:
            y += self.bias.data  # y is our own fresh array: adding in place saves a temporary
        self.save_for_backward(x)  # dW needs the input
        return y

    def backward(self, dy, input_grad: bool = True):
        (x,) = self.saved()
        if dy is None:
            return None
        self.check_grad(dy, x, x.shape[:-1] + (self.out_features,))  # y has x's place and dtype
        w = self.weight
        if x.ndim != 2 and (trains(w) or trains(self.bias)):
            xp = backends.namespace_of(dy)
            x2, dy2 = xp.reshape(x, (-1, self.in_features)), xp.reshape(dy, (-1, self.out_features))
        else:
            x2, dy2 = x, dy
        if trains(w):
            w.accumulate(dy2.T @ x2)
        if trains(self.bias):
            self.bias.accumulate(backends.namespace_of(dy).sum(dy2, axis=0))
        return dy @ w.data if input_grad else None

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def _tag(self):
        return f"Linear({self.in_features} -> {self.out_features})"
