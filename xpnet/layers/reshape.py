"""Flatten, Unflatten and Reshape: shapes only, no arithmetic. Each forward saves its input's
shape and its output's :class:`~xpnet.layers.base.Signature`; backward checks ``dy`` against the
latter and reshapes it back."""

from __future__ import annotations

import math

from .. import backends
from ..validate import dim as _dim
from ._checks import require_array, shape_str
from .base import Layer, Signature


class Flatten(Layer):
    """Merge axes ``start_dim..end_dim`` into one: ``(N, C, H, W) -> (N, C*H*W)`` by default.

    A 0-d input becomes ``(1,)``, as in torch. Backward reshapes ``dy`` back to the input's shape.
    """

    _config_fields = ('start_dim', 'end_dim')

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        self.start_dim = _dim("Flatten", "start_dim", start_dim)
        self.end_dim = _dim("Flatten", "end_dim", end_dim)

    def forward(self, x):
        require_array(self._tag(), x)
        shape = tuple(x.shape)
        nd = len(shape)
        n = max(nd, 1)  # as torch: a 0-d input counts as one axis
        s = self.start_dim + n if self.start_dim < 0 else self.start_dim
        e = self.end_dim + n if self.end_dim < 0 else self.end_dim
        if not (0 <= s < n and 0 <= e < n and s <= e):
            raise ValueError(
                f"{self._tag()} cannot flatten axes {self.start_dim}..{self.end_dim} of an input of shape {shape_str(shape)}"
            )
        out = (1,) if nd == 0 else shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:]
        self.save_for_backward(shape, Signature(x, out))
        return backends.namespace_of(x).reshape(x, out)

    def backward(self, dy, input_grad: bool = True):
        return _reshape_back(self, dy, input_grad)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


def _sizes(owner, name, sizes):
    """A tuple of positive ints with at most one -1, or ValueError."""
    try:
        out = tuple(sizes)
    except TypeError:
        out = None
    if (
        not out
        or any(isinstance(s, bool) or not isinstance(s, int) or (s <= 0 and s != -1) for s in out)
        or out.count(-1) > 1
    ):
        raise ValueError(f"{owner}: {name} must be a non-empty sequence of positive ints with at most one -1, got {sizes!r}")
    return out


def _reshape_back(layer, dy, input_grad):
    """``dy`` reshaped to the input shape that ``layer``'s forward saved (with the output's
    signature), after checking it; None when there is no ``dy`` or no input gradient is wanted."""
    shape, out = layer.saved()
    if dy is None or not input_grad:
        return None
    layer.check_grad(dy, out)
    return backends.namespace_of(dy).reshape(dy, shape)


def _resolve(sizes, total):
    """``sizes`` with its -1 filled in so that the product is ``total``; None when impossible."""
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if known == 0 or total % known:
            return None
        return tuple(total // known if s == -1 else s for s in sizes)
    return sizes if known == total else None


class Unflatten(Layer):
    """Split axis ``dim`` into ``unflattened_size``, as ``torch.nn.Unflatten``:
    ``Unflatten(1, (2, 5))`` maps ``(N, 10, ...) -> (N, 2, 5, ...)``; one size may be -1.

    Backward reshapes ``dy`` back to the input's shape.
    """

    _config_fields = ('dim', 'unflattened_size')

    def __init__(self, dim: int, unflattened_size):
        self.dim = _dim("Unflatten", "dim", dim)
        self.unflattened_size = _sizes("Unflatten", "unflattened_size", unflattened_size)

    def forward(self, x):
        require_array(self._tag(), x)
        shape = tuple(x.shape)
        nd = len(shape)
        d = self.dim + nd if self.dim < 0 else self.dim
        if not 0 <= d < nd:
            raise ValueError(f"{self._tag()} expected an input with axis {self.dim}, got {nd}-d input of shape {shape_str(shape)}")
        new = _resolve(self.unflattened_size, shape[d])
        if new is None:
            raise ValueError(
                f"{self._tag()} cannot split axis {self.dim} of size {shape[d]} (input shape {shape_str(shape)}) "
                f"into {shape_str(self.unflattened_size)}: the sizes must multiply to {shape[d]}"
            )
        out = shape[:d] + new + shape[d + 1:]
        self.save_for_backward(shape, Signature(x, out))
        return backends.namespace_of(x).reshape(x, out)

    def backward(self, dy, input_grad: bool = True):
        return _reshape_back(self, dy, input_grad)

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Reshape(Layer):
    """Reshape every sample, keeping the batch axis: ``Reshape(1, 28, 28)`` maps ``(N, 784) -> (N, 1, 28, 28)``.

    ``shape`` is the per-sample shape (given as arguments or as one tuple); one entry may be -1.
    Backward reshapes ``dy`` back to the input's shape.
    """

    _config_fields = ("shape",)

    def __init__(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        self.shape = _sizes("Reshape", "shape", shape)

    def forward(self, x):
        require_array(self._tag(), x)
        shape = tuple(x.shape)
        if not shape:
            raise ValueError(f"{self._tag()} expected an input with a batch axis, got a 0-d array")
        per_sample = math.prod(shape[1:])
        new = _resolve(self.shape, per_sample)
        if new is None:
            need = math.prod(self.shape)
            need_s = f"{need} values" if -1 not in self.shape else f"a multiple of {abs(need)} values"
            raise ValueError(
                f"{self._tag()} cannot reshape an input of shape {shape_str(shape)} ({per_sample} values per sample) "
                f"into (N, {', '.join(str(s) for s in self.shape)}), which needs {need_s} per sample"
            )
        out = (shape[0],) + new
        self.save_for_backward(shape, Signature(x, out))
        return backends.namespace_of(x).reshape(x, out)

    def backward(self, dy, input_grad: bool = True):
        return _reshape_back(self, dy, input_grad)

    def extra_repr(self):
        return ", ".join(str(s) for s in self.shape)
