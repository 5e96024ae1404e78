"""Normalization layers: BatchNorm1d, BatchNorm2d and LayerNorm, with torch.nn's names, arguments,
parameter and buffer layouts (state dicts move between the two unchanged)."""

from __future__ import annotations

import math
import numbers

from .. import backends
from ._checks import dtype_error, no_forward_error, place_error, positive_int, require_float, shape_str
from .base import Layer, Parameter


_FLOATS = ("float16", "bfloat16", "float32", "float64")


def _float_dtype(owner, be, dtype):
    """The namespace dtype for ``dtype`` (default float32), which must be floating-point."""
    dt = be.dtype("float32" if dtype is None else dtype)
    if be.dtype_name(dt) not in _FLOATS:
        raise ValueError(f"{owner}: dtype must be a floating-point dtype, got {be.dtype_name(dt)}")
    return dt


def _positive_real(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a positive real number, got {value!r}")
    return float(value)


def _flag(owner, name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{owner}: {name} must be True or False, got {value!r}")
    return value


def _check_place_and_dtype(tag, x, ref):
    """``x`` must be a float array on ``ref``'s backend, device and dtype (``ref=None``: any float array)."""
    if ref is None:
        require_float(tag, x)
        return
    if type(x) is not type(ref) or x.device != ref.device:
        raise place_error(tag, x, ref)
    if x.dtype != ref.dtype:
        raise dtype_error(tag, x, ref.dtype)



def _standardize(xp, x, axes, eps):
    """``xhat = (x - mean) / sqrt(var + eps)`` over ``axes`` (biased variance), with the statistics."""
    mean = xp.mean(x, axis=axes, keepdims=True)
    xc = x - mean
    var = xp.mean(xc * xc, axis=axes, keepdims=True)
    inv_std = 1.0 / xp.sqrt(var + eps)
    return xc * inv_std, mean, var, inv_std

class _BatchNorm(Layer):
    """Batch normalization over every axis but the channel axis 1 (shared by BatchNorm1d/2d).

    Training mode (or eval mode without running statistics), per channel ``c`` over the
    ``m = N * prod(spatial)`` values of that channel:

        mean = sum(x) / m,   var = sum((x - mean)^2) / m   (biased)
        xhat = (x - mean) / sqrt(var + eps),   y = weight * xhat + bias

    and, when ``track_running_stats`` and training, with ``f = momentum`` (or ``1 / num_batches_tracked``
    when ``momentum`` is None: a cumulative moving average, as in torch)::

        running_mean <- (1 - f) running_mean + f mean
        running_var  <- (1 - f) running_var  + f var * m / (m - 1)   (unbiased)
        num_batches_tracked <- num_batches_tracked + 1

    Eval mode with running statistics: ``xhat = (x - running_mean) / sqrt(running_var + eps)``.

    Backward with batch statistics (sums over the reduced axes)::

        dbias = sum(dy),   dweight = sum(dy * xhat),   dxhat = dy * weight
        dx = inv_std / m * (m dxhat - sum(dxhat) - xhat sum(dxhat * xhat))
           = weight * inv_std * (dy - (dbias + xhat * dweight) / m)

    With running statistics the map is affine: ``dx = dy * weight * inv_std``.

    Parameters ``weight (C,)`` (ones) and ``bias (C,)`` (zeros) when ``affine`` (``bias=False``
    drops the bias, as torch's keyword); buffers ``running_mean (C,)`` (zeros), ``running_var (C,)``
    (ones) and ``num_batches_tracked`` (0-d int64) when ``track_running_stats``.
    """

    _config_fields = ('num_features', 'eps', 'momentum', 'affine', 'track_running_stats', 'bias')

    _buffer_names = ("running_mean", "running_var", "num_batches_tracked")
    _spatial_dims: tuple = ()  # allowed numbers of axes after (N, C)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, *, bias: bool = True, backend=None, dtype=None):
        name = type(self).__name__
        self.num_features = positive_int(name, "num_features", num_features)
        self.eps = _positive_real(name, "eps", eps)
        if momentum is not None and (
            isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0.0 <= momentum <= 1.0
        ):
            raise ValueError(f"{name}: momentum must be a real number in [0, 1] or None, got {momentum!r}")
        self.momentum = None if momentum is None else float(momentum)
        self.affine = _flag(name, "affine", affine)
        self.track_running_stats = _flag(name, "track_running_stats", track_running_stats)
        _flag(name, "bias", bias)
        be = backends.get(backend)
        xp, dev = be.xp, be.device
        dt = _float_dtype(name, be, dtype)
        c = num_features
        self.weight = Parameter(xp.ones((c,), dtype=dt, device=dev)) if affine else None
        self.bias = Parameter(xp.zeros((c,), dtype=dt, device=dev)) if affine and bias else None
        if track_running_stats:
            self.running_mean = xp.zeros((c,), dtype=dt, device=dev)
            self.running_var = xp.ones((c,), dtype=dt, device=dev)
            self.num_batches_tracked = xp.asarray(0, dtype=xp.int64, device=dev)
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        # Kept by forward for backward: xhat (the normalized input: dweight needs it, and dx with
        # batch statistics), inv_std (per channel, broadcastable), and whether batch statistics were used.
        # In eval mode without a weight xhat is not needed and is not kept.
        self._xhat = None
        self._inv_std = None
        self._batch_stats = False
        self._shape = None  # the input's shape: dy must match it

    # -- checks ------------------------------------------------------------------------
    def _expected(self):
        c = self.num_features
        forms = {0: f"(N, {c})", 1: f"(N, {c}, L)", 2: f"(N, {c}, H, W)"}
        return " or ".join(forms[k] for k in self._spatial_dims)

    def _ref(self):
        if self.weight is not None:
            return self.weight.data
        return self.running_mean

    def forward(self, x):
        tag = self._tag()
        _check_place_and_dtype(tag, x, self._ref())
        shape = tuple(x.shape)
        if len(shape) - 2 not in self._spatial_dims or shape[1] != self.num_features:
            raise ValueError(f"{tag} expected input {self._expected()}, got {shape_str(shape)}")
        xp = backends.namespace_of(x)
        c = self.num_features
        axes = (0,) + tuple(range(2, len(shape)))
        bshape = (1, c) + (1,) * (len(shape) - 2)  # per-channel arrays broadcast against x
        use_batch = self.training or self.running_mean is None

        if use_batch:
            m = math.prod(shape) // c
            if m <= 1:
                raise ValueError(
                    f"{tag}: expected more than 1 value per channel when training, got input of shape "
                    f"{shape_str(shape)} ({m} value{'s' if m != 1 else ''} per channel); "
                    "use a larger batch, or call .eval() to use the running statistics"
                )
            xhat, mean, var, inv_std = _standardize(xp, x, axes, self.eps)
            if self.training and self.running_mean is not None:
                # rebinding, never in place: state dicts handed out earlier stay as they were
                # (asarray: numpy turns 0-d arithmetic into a scalar, which is not an array)
                nbt = self.num_batches_tracked
                self.num_batches_tracked = xp.asarray(nbt + 1, dtype=nbt.dtype, device=nbt.device)
                f = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                mean_c = xp.reshape(mean, (c,))
                var_c = xp.reshape(var, (c,)) * (m / (m - 1))
                self.running_mean = (1.0 - f) * self.running_mean + f * mean_c
                self.running_var = (1.0 - f) * self.running_var + f * var_c
            if self.weight is not None:
                y = xhat * xp.reshape(self.weight.data, bshape)
            else:
                y = xp.asarray(xhat, copy=True)  # xhat is kept; y must not alias it (a caller may mutate y)
        else:
            inv_std = xp.reshape(1.0 / xp.sqrt(self.running_var + self.eps), bshape)
            xhat = (x - xp.reshape(self.running_mean, bshape)) * inv_std
            if self.weight is not None:
                y = xhat * xp.reshape(self.weight.data, bshape)
            else:
                y, xhat = xhat, None  # nothing in backward needs xhat
        if self.bias is not None:
            y += xp.reshape(self.bias.data, bshape)  # y is our own fresh array
        self._xhat, self._inv_std, self._batch_stats = xhat, inv_std, use_batch
        self._shape = shape
        return y

    def backward(self, dy):
        inv_std = self._inv_std
        if inv_std is None:
            raise no_forward_error(self._tag())
        xhat, shape, batch = self._xhat, self._shape, self._batch_stats
        if tuple(dy.shape) != shape:
            raise ValueError(f"{self._tag()}.backward expected dy of shape {shape_str(shape)}, got {shape_str(dy.shape)}")
        self._xhat = self._inv_std = None
        xp = backends.namespace_of(dy)
        c = self.num_features
        axes = (0,) + tuple(range(2, len(shape)))
        bshape = (1, c) + (1,) * (len(shape) - 2)
        w = None if self.weight is None else xp.reshape(self.weight.data, bshape)

        if batch:
            m = math.prod(shape) // c
            dbias = xp.sum(dy, axis=axes, keepdims=True)
            dweight = xp.sum(dy * xhat, axis=axes, keepdims=True)
            scale = inv_std if w is None else w * inv_std
            # the full batch-norm backward, with sum(dxhat) = w * dbias and sum(dxhat * xhat) = w * dweight
            dx = scale * (dy - (dbias + xhat * dweight) * (1.0 / m))
        else:
            dbias = xp.sum(dy, axis=axes, keepdims=True) if self.bias is not None else None
            dweight = xp.sum(dy * xhat, axis=axes, keepdims=True) if w is not None else None
            dx = dy * (inv_std if w is None else w * inv_std)
        if self.weight is not None:
            self.weight.accumulate(xp.reshape(dweight, (c,)))
        if self.bias is not None:
            self.bias.accumulate(xp.reshape(dbias, (c,)))
        return dx

    def extra_repr(self):
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )

    def _tag(self):
        return f"{type(self).__name__}({self.num_features})"


class BatchNorm1d(_BatchNorm):
    """Batch normalization of ``(N, C)`` or ``(N, C, L)`` input, per channel ``C``; see :class:`_BatchNorm`.

    ``BatchNorm1d(num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True)``
    as ``torch.nn.BatchNorm1d``; output has the input's shape.
    """

    _spatial_dims = (0, 1)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of ``(N, C, H, W)`` input, per channel ``C``; see :class:`_BatchNorm`.

    ``BatchNorm2d(num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True)``
    as ``torch.nn.BatchNorm2d``; output has the input's shape.
    """

    _spatial_dims = (2,)


class LayerNorm(Layer):
    """Layer normalization over the last ``len(normalized_shape)`` axes, as ``torch.nn.LayerNorm``.

    Per sample, over the ``m = prod(normalized_shape)`` trailing values::

        xhat = (x - mean) / sqrt(var + eps)   (biased variance),   y = weight * xhat + bias

    Shapes: ``x (*, *normalized_shape)`` -> ``y`` of the same shape; ``weight`` (ones) and
    ``bias`` (zeros) of shape ``normalized_shape`` when ``elementwise_affine`` (``bias=False``
    drops the bias).

    Backward (sums over the normalized axes ``S`` and the leading axes ``L``)::

        dxhat = dy * weight,   dweight = sum_L(dy * xhat),   dbias = sum_L(dy)
        dx = inv_std / m * (m dxhat - sum_S(dxhat) - xhat sum_S(dxhat * xhat))
    """

    _config_fields = ('normalized_shape', 'eps', 'elementwise_affine', 'bias')

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 *, backend=None, dtype=None):
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        try:
            shape = tuple(shape)
        except TypeError:
            shape = None
        if (
            not shape
            or isinstance(normalized_shape, bool)
            or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in shape)
        ):
            raise ValueError(
                f"LayerNorm: normalized_shape must be a positive int or a non-empty sequence of them, "
                f"got {normalized_shape!r}"
            )
        self.normalized_shape = shape
        self.eps = _positive_real("LayerNorm", "eps", eps)
        self.elementwise_affine = _flag("LayerNorm", "elementwise_affine", elementwise_affine)
        _flag("LayerNorm", "bias", bias)
        be = backends.get(backend)
        xp, dev = be.xp, be.device
        dt = _float_dtype("LayerNorm", be, dtype)
        self.weight = Parameter(xp.ones(shape, dtype=dt, device=dev)) if elementwise_affine else None
        self.bias = Parameter(xp.zeros(shape, dtype=dt, device=dev)) if elementwise_affine and bias else None
        # Kept by forward for backward: xhat (dx and dweight need it) and inv_std (per sample).
        self._xhat = None
        self._inv_std = None

    def forward(self, x):
        tag = self._tag()
        _check_place_and_dtype(tag, x, None if self.weight is None else self.weight.data)
        k = len(self.normalized_shape)
        shape = tuple(x.shape)
        if len(shape) < k or shape[len(shape) - k:] != self.normalized_shape:
            want = "(*, " + ", ".join(str(s) for s in self.normalized_shape) + ")"
            raise ValueError(f"{tag} expected input {want}, got {shape_str(shape)}")
        xp = backends.namespace_of(x)
        axes = tuple(range(-k, 0))
        xhat, mean, var, inv_std = _standardize(xp, x, axes, self.eps)
        if self.weight is not None:
            y = xhat * self.weight.data
        else:
            y = xp.asarray(xhat, copy=True)  # xhat is kept; y must not alias it
        if self.bias is not None:
            y += self.bias.data
        self._xhat, self._inv_std = xhat, inv_std
        return y

    def backward(self, dy):
        xhat, inv_std = self._xhat, self._inv_std
        if xhat is None:
            raise no_forward_error(self._tag())
        if tuple(dy.shape) != tuple(xhat.shape):
            raise ValueError(
                f"{self._tag()}.backward expected dy of shape {shape_str(xhat.shape)}, got {shape_str(dy.shape)}"
            )
        self._xhat = self._inv_std = None
        xp = backends.namespace_of(dy)
        k = len(self.normalized_shape)
        axes = tuple(range(-k, 0))
        lead = tuple(range(dy.ndim - k))
        m = math.prod(self.normalized_shape)

        def sum_lead(a):  # no leading axes: a copy, so that the grad never aliases the caller's dy
            return xp.sum(a, axis=lead) if lead else xp.asarray(a, copy=True)

        if self.weight is not None:
            self.weight.accumulate(sum_lead(dy * xhat))
            dxhat = dy * self.weight.data
        else:
            dxhat = dy
        if self.bias is not None:
            self.bias.accumulate(sum_lead(dy))
        s1 = xp.sum(dxhat, axis=axes, keepdims=True)
        s2 = xp.sum(dxhat * xhat, axis=axes, keepdims=True)
        return (inv_std * (1.0 / m)) * (m * dxhat - s1 - xhat * s2)

    def extra_repr(self):
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )

    def _tag(self):
        return f"LayerNorm({self.normalized_shape})"
