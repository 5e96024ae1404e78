"""GLU, the gated linear unit: one half of the input gates the other."""

from __future__ import annotations

from ..backends import namespace_of
from ..validate import dim as _dim
from ._checks import require_float, shape_str
from .activations import stable_sigmoid
from .base import Layer


class GLU(Layer):
    """``y = a * sigmoid(b)``, where ``a`` and ``b`` are the first and second halves of the input
    along ``dim`` (whose size must be even).

    Shapes: ``x (*, 2n, *)`` -> ``y (*, n, *)`` (``dim`` the axis of size ``2n``; 1-D included,
    0-d refused, as torch). Backward: ``da = dy * s``, ``db = dy * y * (1 - s)``, ``s = sigmoid(b)``,
    and ``dx`` is ``(da, db)`` joined along ``dim``. Keeps ``s`` and ``y``.
    """

    _config_fields = ('dim',)

    def __init__(self, dim: int = -1):
        self.dim = _dim("GLU", "dim", dim)

    def forward(self, x):
        be = require_float(self._tag(), x)
        xp = be.xp
        if not -x.ndim <= self.dim < x.ndim:
            what = "a 0-d input (it has no axis to halve)" if x.ndim == 0 else f"{x.ndim}-d input"
            raise ValueError(f"{self._tag()} expected an input with axis {self.dim}, got {what}")
        axis = self.dim % x.ndim
        n = x.shape[axis]
        if n % 2:
            raise ValueError(f"{self._tag()} expected an even size along axis {self.dim} (it is halved), "
                             f"got input of shape {shape_str(x.shape)}")
        lead = (slice(None),) * axis
        a, b = x[lead + (slice(0, n // 2), ...)], x[lead + (slice(n // 2, n), ...)]
        s = stable_sigmoid(xp, b)
        y = a * s
        self.save_for_backward(s, y)
        return y

    def backward(self, dy, input_grad: bool = True):
        s, y = self.saved()
        if dy is None or not input_grad:
            return None
        self.check_grad(dy, y)
        xp = namespace_of(dy)
        db = dy * y
        db *= 1.0 - s  # db is our own fresh array
        return xp.concat([dy * s, db], axis=self.dim % dy.ndim)

    def extra_repr(self):
        return f"dim={self.dim}"
