"""LayerNorm and RMSNorm, as ``torch.nn`` defines them: each sample normalized over its last
``len(normalized_shape)`` axes, with an elementwise affine map of that shape.

Both view the input as ``(R, m)`` rows, ``m = prod(normalized_shape)``, and reduce each row in
one BLAS pass (:mod:`._core`); the weight varies along the row, so, unlike the channel norms,
the backward's row sums are matrix-vector products with the weight itself. On numpy in
float32 with numba installed, LayerNorm's step runs as two fused kernels instead
(:mod:`xpnet.backends._fused`: one pass each way, the same formulas).
"""

from __future__ import annotations

import math

from ... import backends
from ...validate import float_dtype
from .._checks import shape_str
from ..base import Layer, Parameter, Signature, trains
from ._core import check_input, col_sums, column, eps_arg, flags, normalized_shape_arg, row_dots, row_sums


class _TrailingNorm(Layer):
    """What LayerNorm and RMSNorm share: ``normalized_shape``, the input check, the rows."""

    weight = bias = None

    def _rows(self, x):
        """``(R, m)``, after checking ``x`` (dtype, place, trailing shape)."""
        tag = self._tag()
        check_input(tag, x, None if self.weight is None else self.weight.data)
        k = len(self.normalized_shape)
        shape = tuple(x.shape)
        if len(shape) < k or shape[len(shape) - k:] != self.normalized_shape:
            want = "(*, " + ", ".join(str(s) for s in self.normalized_shape) + ")"
            raise ValueError(f"{tag} expected input {want}, got {shape_str(shape)}")
        m = math.prod(self.normalized_shape)
        return math.prod(shape[:len(shape) - k]), m

    def _grad_rows(self, dy, like, rows):
        """``(backend, xp, dy as float32-or-wider rows, the flat weight)``, after checking ``dy``."""
        self.check_grad(dy, like)
        be = backends.backend_of(dy)
        return be, be.xp, be.xp.reshape(be.widened(dy), tuple(rows)), self._flat(be, self.weight)

    def _flat(self, be, p):
        """A parameter as float32-or-wider ``(m,)`` (None stays None)."""
        return None if p is None else be.xp.reshape(be.widened(p.data), (-1,))

    def _accumulate(self, be, p, g):
        p.accumulate(be.narrowed(be.xp.reshape(g, self.normalized_shape), p.data.dtype))

    def _tag(self):
        return f"{type(self).__name__}({self.normalized_shape})"


class LayerNorm(_TrailingNorm):
    """Layer normalization over the last ``len(normalized_shape)`` axes, as ``torch.nn.LayerNorm``.

    Per row of ``m = prod(normalized_shape)`` trailing values::

        xhat = (x - mean) / sqrt(var + eps)   (biased variance),   y = weight * xhat + bias

    Shapes: ``x (*, *normalized_shape)`` -> ``y`` of the same shape; ``weight`` (ones) and
    ``bias`` (zeros) of shape ``normalized_shape`` when ``elementwise_affine`` (``bias=False``
    drops the bias).

    Backward (per row, sums over its ``m`` values; the parameters' over the rows)::

        dweight = sum_rows(dy * xhat),   dbias = sum_rows(dy),   s1 = dy @ weight,   s2 = (dy * xhat) @ weight
        dx = inv_std * (dy * weight - (s1 + xhat * s2) / m)

    A float16/bfloat16 input (mixed precision) is normalized in float32 (statistics, ``y``, the
    backward's sums); ``y``, ``dx`` and the parameter gradients come back in their own dtypes.
    """

    _config_fields = ('normalized_shape', 'eps', 'elementwise_affine', 'bias')

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 *, backend=None, dtype=None):
        self.normalized_shape = shape = normalized_shape_arg("LayerNorm", normalized_shape)
        self.eps = eps_arg("LayerNorm", eps)
        self.elementwise_affine, _ = flags("LayerNorm", elementwise_affine=elementwise_affine, bias=bias)
        be = backends.get(backend)
        xp, dev = be.xp, be.device
        dt = float_dtype("LayerNorm", be, dtype)
        self.weight = Parameter(xp.ones(shape, dtype=dt, device=dev)) if elementwise_affine else None
        self.bias = Parameter(xp.zeros(shape, dtype=dt, device=dev)) if elementwise_affine and bias else None

    def forward(self, x):
        r, m = self._rows(x)
        be = backends.backend_of(x)
        xp = be.xp
        x2 = xp.reshape(be.widened(x), (r, m))  # float16/bfloat16: statistics and y in float32
        w, b = self._flat(be, self.weight), self._flat(be, self.bias)
        like = x if x2.dtype == x.dtype else Signature(x)
        fused = be.fused()
        if fused is not None and fused.takes(x2, w, b):  # numpy float32 with numba: two passes
            y, mean, inv_std = fused.layer_norm(x2, w, b, self.eps)
            # Kept: the rows of x, the statistics per row (backward recomputes xhat from them)
            self.save_for_backward(x2, (mean, inv_std), like, fused)
            return be.narrowed(xp.reshape(y, tuple(x.shape)), x.dtype)
        xc = x2 - column(xp, row_sums(xp, x2) * (1.0 / m))
        inv_std = 1.0 / xp.sqrt(row_dots(xp, xc, xc) * (1.0 / m) + self.eps)
        xc *= column(xp, inv_std)  # xhat, in the fresh x - mean
        y = xp.asarray(xc, copy=True) if w is None else xc * w  # y never aliases xhat, which is kept
        if b is not None:
            y += b
        # Kept: xhat (backward overwrites it: nothing else holds it), inv_std per row, and what
        # has y's shape, dtype and place (x, or its Signature when computed in float32)
        self.save_for_backward(xc, inv_std, like, None)
        return be.narrowed(xp.reshape(y, tuple(x.shape)), x.dtype)

    def backward(self, dy, input_grad: bool = True):
        xhat, inv_std, like, fused = self.saved()
        if dy is None:
            return None
        be, xp, dy2, w = self._grad_rows(dy, like, xhat.shape)
        if fused is not None:  # xhat holds the rows of x, inv_std (mean, inv_std)
            dx, dw, db = fused.layer_norm_backward(dy2, xhat, *inv_std, w, input_grad)
            if trains(self.weight):
                self._accumulate(be, self.weight, dw)
            if trains(self.bias):
                self._accumulate(be, self.bias, db)
            return None if dx is None else be.narrowed(xp.reshape(dx, tuple(like.shape)), dy.dtype)
        m, out_dtype = xhat.shape[1], dy.dtype
        g = dy2 * xhat if trains(self.weight) or input_grad else None
        if trains(self.weight):
            self._accumulate(be, self.weight, col_sums(xp, g))
        if trains(self.bias):
            self._accumulate(be, self.bias, col_sums(xp, dy2))
        if not input_grad:
            return None
        s1 = row_sums(xp, dy2) if w is None else dy2 @ w
        s2 = row_sums(xp, g) if w is None else g @ w
        xhat *= column(xp, s2 * (1.0 / m))  # xhat is not needed after this: overwritten, no temporary
        xhat += column(xp, s1 * (1.0 / m))
        dx = dy2 - xhat if w is None else dy2 * w
        if w is not None:
            dx -= xhat
        dx *= column(xp, inv_std)
        return be.narrowed(xp.reshape(dx, tuple(like.shape)), out_dtype)

    def extra_repr(self):
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )


class RMSNorm(_TrailingNorm):
    """Root-mean-square normalization over the last ``len(normalized_shape)`` axes, as
    ``torch.nn.RMSNorm``. Per row of ``m = prod(normalized_shape)`` trailing values::

        r = 1 / sqrt(mean(x^2) + eps),   y = x * r * weight

    ``eps=None`` is ``finfo(dtype).eps`` of the dtype computed in (float32 for a float16/bfloat16
    input, as torch). Shapes: ``x (*, *normalized_shape)`` -> ``y`` of the same shape; ``weight``
    (ones) of shape ``normalized_shape`` when ``elementwise_affine``; no bias.

    Backward, with ``p = sum(dy * weight * x)`` per row::

        dweight = sum_rows(dy * x * r),   dx = r * dy * weight - x * r^3 * p / m
    """

    _config_fields = ('normalized_shape', 'eps', 'elementwise_affine')

    def __init__(self, normalized_shape, eps: float | None = None, elementwise_affine: bool = True,
                 *, backend=None, dtype=None):
        self.normalized_shape = shape = normalized_shape_arg("RMSNorm", normalized_shape)
        self.eps = eps_arg("RMSNorm", eps, optional=True)
        (self.elementwise_affine,) = flags("RMSNorm", elementwise_affine=elementwise_affine)
        be = backends.get(backend)
        dt = float_dtype("RMSNorm", be, dtype)
        self.weight = Parameter(be.xp.ones(shape, dtype=dt, device=be.device)) if elementwise_affine else None

    def forward(self, x):
        rows, m = self._rows(x)
        be = backends.backend_of(x)
        xp = be.xp
        x2 = xp.reshape(be.widened(x), (rows, m))  # float16/bfloat16: in float32
        eps = xp.finfo(x2.dtype).eps if self.eps is None else self.eps
        r = 1.0 / xp.sqrt(row_dots(xp, x2, x2) * (1.0 / m) + eps)
        y = x2 * column(xp, r)
        w = self._flat(be, self.weight)
        if w is not None:
            y *= w
        # Kept: x (as rows), r per row, and what has y's shape, dtype and place
        self.save_for_backward(x2, r, x if x2.dtype == x.dtype else Signature(x))
        return be.narrowed(xp.reshape(y, tuple(x.shape)), x.dtype)

    def backward(self, dy, input_grad: bool = True):
        x2, r, like = self.saved()
        if dy is None:
            return None
        be, xp, dy2, w = self._grad_rows(dy, like, x2.shape)
        m, out_dtype = x2.shape[1], dy.dtype
        want_w = trains(self.weight)
        g = dy2 * x2 if want_w or input_grad else None
        if want_w:
            self._accumulate(be, self.weight, r @ g)  # sum over rows of dy * xhat
        if not input_grad:
            return None
        p = row_sums(xp, g) if w is None else g @ w
        dx = dy2 * column(xp, r) if w is None else dy2 * w
        if w is not None:
            dx *= column(xp, r)
        dx -= x2 * column(xp, r * r * r * p * (1.0 / m))
        return be.narrowed(xp.reshape(dx, tuple(like.shape)), out_dtype)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
