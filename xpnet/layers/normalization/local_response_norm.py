"""LocalResponseNorm, as ``torch.nn.LocalResponseNorm``."""

from __future__ import annotations

from ... import backends
from ...validate import positive_int, real
from .._checks import shape_str
from ..base import Layer, Signature
from ._core import check_input


class LocalResponseNorm(Layer):
    """Each value divided by a power of the squares of its neighbours across channels, as torch::

        d_c = k + alpha / size * sum_{j = c - size // 2}^{c + (size - 1) // 2} x_j^2   (zeros beyond the channels)
        y_c = x_c * d_c^(-beta)

    ``LocalResponseNorm(size, alpha=1e-4, beta=0.75, k=1.0)``; input ``(N, C, *)`` of 3 or more
    dimensions, output of its shape; no parameters.

    Backward: with ``W^T`` the adjoint window sum (over ``c = i - (size - 1) // 2 .. i + size // 2``)::

        dx = dy * d^(-beta) - (2 alpha beta / size) * x * W^T(dy * x * d^(-beta) / d)
    """

    _config_fields = ('size', 'alpha', 'beta', 'k')

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        name = "LocalResponseNorm"
        self.size = positive_int(name, "size", size)
        self.alpha, self.beta, self.k = (_as_given(name, n, v) for n, v in (("alpha", alpha), ("beta", beta), ("k", k)))

    def forward(self, x):
        tag = self._tag()
        check_input(tag, x, None)
        if x.ndim < 3:
            raise ValueError(f"{tag} expected input (N, C, *) of 3 or more dimensions, got {shape_str(tuple(x.shape))}")
        be = backends.backend_of(x)
        xp = be.xp
        like = Signature(x) if x.dtype in be.low_float_dtypes else x
        xw = be.widened(x)  # float16/bfloat16: in float32
        n = self.size
        d = _window_sum(xp, xw * xw, n // 2, (n - 1) // 2, n)
        d *= self.alpha / n
        d += self.k
        p = d ** (-self.beta)
        # Kept: x, d and d^(-beta) (dx needs all three), and what has y's shape, dtype and place
        self.save_for_backward(xw, d, p, like)
        return be.narrowed(xw * p, x.dtype)

    def backward(self, dy, input_grad: bool = True):
        x, d, p, like = self.saved()
        if dy is None:
            return None
        self.check_grad(dy, like)
        if not input_grad:
            return None
        be = backends.backend_of(dy)
        xp = be.xp
        n = self.size
        dyw = be.widened(dy)
        t = dyw * x
        t *= p
        t /= d
        u = _window_sum(xp, t, (n - 1) // 2, n // 2, n)
        u *= x
        u *= 2.0 * self.alpha * self.beta / n
        dx = dyw * p
        dx -= u
        return be.narrowed(dx, dy.dtype)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"

    def _tag(self):
        return f"LocalResponseNorm({self.size})"


def _as_given(name, arg, v):
    """A real number, kept as given (an int ``k`` prints as torch prints it)."""
    real(name, arg, v)
    return v if type(v) in (int, float) else float(v)


def _window_sum(xp, a, before, after, size):
    """``out_c = sum_{j = c - before}^{c + after} a_j`` along axis 1, zeros beyond its ends
    (``before + after + 1 == size``); ``a`` is a fresh array the result may be."""
    if size == 1:
        return a
    c = a.shape[1]

    def zeros(k):
        return [xp.zeros((a.shape[0], k) + tuple(a.shape[2:]), dtype=a.dtype, device=a.device)] if k else []

    padded = xp.concat(zeros(before) + [a] + zeros(after), axis=1)
    out = padded[:, 0:c, ...] + padded[:, 1:1 + c, ...]
    for o in range(2, size):
        out += padded[:, o:o + c, ...]
    return out
