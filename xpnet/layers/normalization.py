"""Normalization layers: BatchNorm1d, BatchNorm2d and LayerNorm, with torch.nn's names, arguments,
parameter and buffer layouts (state dicts move between the two unchanged)."""

from __future__ import annotations

import math
import numbers

from .. import backends
from ..validate import flag, float_dtype, positive_int, positive_real
from ._checks import dtype_error, place_error, require_float, shape_str
from .base import Layer, Parameter, Signature, grad_enabled, trains




def _check_place_and_dtype(tag, x, ref, stats=False):
    """``x`` must be a float array on ``ref``'s backend, device and dtype (``ref=None``: any float
    array); ``stats``: ``ref`` is a running statistic (no weight), which a float16/bfloat16 ``x``
    is normalized with in float32 (mixed precision keeps buffers in float32)."""
    if ref is None:
        require_float(tag, x)
        return
    if type(x) is not type(ref) or x.device != ref.device:
        raise place_error(tag, x, ref)
    if x.dtype != ref.dtype and not (stats and x.dtype in backends.backend_of(x).low_float_dtypes):
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
    An empty batch (``N = 0``) gives an empty output and zero parameter gradients; in training it
    only advances ``num_batches_tracked``, as torch does.

    Backward with batch statistics (sums over the reduced axes)::

        dbias = sum(dy),   dweight = sum(dy * xhat),   dxhat = dy * weight
        dx = inv_std / m * (m dxhat - sum(dxhat) - xhat sum(dxhat * xhat))
           = weight * inv_std * (dy - (dbias + xhat * dweight) / m)

    With running statistics the map is affine: ``dx = dy * weight * inv_std``.

    A float16/bfloat16 input (mixed precision) is normalized in float32: the statistics, ``y``
    before it is given back in the input's dtype, the backward's sums; the running statistics
    keep their own dtype (float32 under :class:`~xpnet.amp.MixedPrecision`), and ``x`` may then
    be float16/bfloat16 without a weight of its dtype when ``affine=False``.

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
        self.eps = positive_real(name, "eps", eps)
        if momentum is not None and (
            isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0.0 <= momentum <= 1.0
        ):
            raise ValueError(f"{name}: momentum must be a real number in [0, 1] or None, got {momentum!r}")
        self.momentum = None if momentum is None else float(momentum)
        self.affine = flag(name, "affine", affine)
        self.track_running_stats = flag(name, "track_running_stats", track_running_stats)
        flag(name, "bias", bias)
        be = backends.get(backend)
        xp, dev = be.xp, be.device
        dt = float_dtype(name, be, dtype)
        c = num_features
        self.weight = Parameter(xp.ones((c,), dtype=dt, device=dev)) if affine else None
        self.bias = Parameter(xp.zeros((c,), dtype=dt, device=dev)) if affine and bias else None
        if track_running_stats:
            self.running_mean = xp.zeros((c,), dtype=dt, device=dev)
            self.running_var = xp.ones((c,), dtype=dt, device=dev)
            self.num_batches_tracked = xp.asarray(0, dtype=xp.int64, device=dev)
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

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
        _check_place_and_dtype(tag, x, self._ref(), stats=self.weight is None)
        shape = tuple(x.shape)
        if len(shape) - 2 not in self._spatial_dims or shape[1] != self.num_features:
            raise ValueError(f"{tag} expected input {self._expected()}, got {shape_str(shape)}")
        be = backends.backend_of(x)
        xp = be.xp
        # float16/bfloat16: statistics and y in float32; dy is checked against x's Signature then
        low, like = x.dtype in be.low_float_dtypes, None
        if low:
            like, out_dtype, x = Signature(x), x.dtype, be.widened(x)
        c = self.num_features
        axes = (0,) + tuple(range(2, len(shape)))
        bshape = (1, c) + (1,) * (len(shape) - 2)  # per-channel arrays broadcast against x
        use_batch = self.training or self.running_mean is None
        m = math.prod(shape) // c

        if use_batch and m == 1:
            raise ValueError(
                f"{tag}: expected more than 1 value per channel when training, got input of shape "
                f"{shape_str(shape)} (1 value per channel); "
                "use a larger batch, or call .eval() to use the running statistics"
            )
        fused = use_batch and m > 0  # the batch statistics depend on x: dx takes the full backward
        # xhat is kept for dweight, and for dx with batch statistics; not when nothing will use it
        keep_xhat = (fused or trains(self.weight)) and grad_enabled()
        w = None if self.weight is None else xp.reshape(be.widened(self.weight.data), bshape)
        if self.training and self.running_mean is not None:
            # rebinding, never in place: state dicts handed out earlier stay as they were
            # (asarray: numpy turns 0-d arithmetic into a scalar, which is not an array)
            nbt = self.num_batches_tracked
            self.num_batches_tracked = xp.asarray(nbt + 1, dtype=nbt.dtype, device=nbt.device)
        if fused:
            xhat, mean, var, inv_std = _standardize(xp, x, axes, self.eps)
            if self.training and self.running_mean is not None:
                # the cumulative average's 1 / count stays on the device: no host read in a step
                f = self.momentum if self.momentum is not None else \
                    1.0 / xp.astype(self.num_batches_tracked, self.running_mean.dtype)
                mean_c = be.narrowed(xp.reshape(mean, (c,)), self.running_mean.dtype)
                var_c = be.narrowed(xp.reshape(var, (c,)) * (m / (m - 1)), self.running_var.dtype)
                self.running_mean = (1.0 - f) * self.running_mean + f * mean_c
                self.running_var = (1.0 - f) * self.running_var + f * var_c
        elif use_batch:
            # an empty batch (torch: an empty output, running statistics kept, the count still
            # advanced); any per-channel scale gives the same empty output and zero gradients
            xhat, inv_std = x, xp.ones(bshape, dtype=x.dtype, device=x.device)
        else:
            inv_std = xp.reshape(1.0 / xp.sqrt(be.widened(self.running_var) + self.eps), bshape)
            mean = xp.reshape(be.widened(self.running_mean), bshape)
            if not keep_xhat:
                # inference: the whole map is per-channel affine, y = x * scale + shift (two passes over x)
                scale = inv_std if w is None else w * inv_std
                shift = -mean * scale
                if self.bias is not None:
                    shift = shift + xp.reshape(be.widened(self.bias.data), bshape)
                y = x * scale
                y += shift  # y is our own fresh array
                self.save_for_backward(None, inv_std, False, shape, like or inv_std)
                return be.narrowed(y, out_dtype) if low else y
            xhat = (x - mean) * inv_std
        if w is not None:
            y = xhat * w
        else:
            y = xp.asarray(xhat, copy=True)  # xhat is kept; y must not alias it (a caller may mutate y)
        if self.bias is not None:
            y += xp.reshape(be.widened(self.bias.data), bshape)  # y is our own fresh array
        # Kept for backward: xhat (or None), inv_std (per channel, broadcastable), whether dx takes
        # the full batch-statistics backward, the input's shape (dy must match it), and what has
        # y's place and dtype (inv_std; x's Signature when computed in float32).
        self.save_for_backward(xhat if keep_xhat else None, inv_std, fused, shape, like or inv_std)
        return be.narrowed(y, out_dtype) if low else y

    def backward(self, dy, input_grad: bool = True):
        xhat, inv_std, fused, shape, like = self.saved()
        if dy is None:
            return None
        self.check_grad(dy, like, shape)  # like: y's dtype and place
        be = backends.backend_of(dy)
        xp = be.xp
        out_dtype, dy = dy.dtype, be.widened(dy)  # float16/bfloat16: the sums in float32
        c = self.num_features
        axes = (0,) + tuple(range(2, len(shape)))
        bshape = (1, c) + (1,) * (len(shape) - 2)
        w = None if self.weight is None else xp.reshape(be.widened(self.weight.data), bshape)
        fused_dx = fused and input_grad
        # the fused dx needs both sums whether or not the parameters train
        # (xhat is None: the weight was frozen, or absent, at forward time, and nothing needs it)
        want_dw = trains(self.weight) and xhat is not None
        dbias = xp.sum(dy, axis=axes, keepdims=True) if fused_dx or trains(self.bias) else None
        dweight = xp.sum(dy * xhat, axis=axes, keepdims=True) if fused_dx or want_dw else None
        if want_dw:
            self.weight.accumulate(be.narrowed(xp.reshape(dweight, (c,)), self.weight.data.dtype))
        if trains(self.bias):
            self.bias.accumulate(be.narrowed(xp.reshape(dbias, (c,)), self.bias.data.dtype))
        if not input_grad:
            return None
        scale = inv_std if w is None else w * inv_std
        if fused:
            m = math.prod(shape) // c
            # the full batch-norm backward, with sum(dxhat) = w * dbias and sum(dxhat * xhat) = w * dweight
            return be.narrowed(scale * (dy - (dbias + xhat * dweight) * (1.0 / m)), out_dtype)
        return be.narrowed(dy * scale, out_dtype)  # with fixed statistics the map is affine

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

    A float16/bfloat16 input (mixed precision) is normalized in float32 (statistics, ``y``, the
    backward's sums); ``y``, ``dx`` and the parameter gradients come back in their own dtypes.
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
        self.eps = positive_real("LayerNorm", "eps", eps)
        self.elementwise_affine = flag("LayerNorm", "elementwise_affine", elementwise_affine)
        flag("LayerNorm", "bias", bias)
        be = backends.get(backend)
        xp, dev = be.xp, be.device
        dt = float_dtype("LayerNorm", be, dtype)
        self.weight = Parameter(xp.ones(shape, dtype=dt, device=dev)) if elementwise_affine else None
        self.bias = Parameter(xp.zeros(shape, dtype=dt, device=dev)) if elementwise_affine and bias else None

    def forward(self, x):
        tag = self._tag()
        _check_place_and_dtype(tag, x, None if self.weight is None else self.weight.data)
        k = len(self.normalized_shape)
        shape = tuple(x.shape)
        if len(shape) < k or shape[len(shape) - k:] != self.normalized_shape:
            want = "(*, " + ", ".join(str(s) for s in self.normalized_shape) + ")"
            raise ValueError(f"{tag} expected input {want}, got {shape_str(shape)}")
        be = backends.backend_of(x)
        xp = be.xp
        axes = tuple(range(-k, 0))
        wide = be.widened(x)  # float16/bfloat16: statistics and y in float32
        xhat, mean, var, inv_std = _standardize(xp, wide, axes, self.eps)
        if self.weight is not None:
            y = xhat * be.widened(self.weight.data)
        else:
            y = xp.asarray(xhat, copy=True)  # xhat is kept; y must not alias it
        if self.bias is not None:
            y += be.widened(self.bias.data)
        # dx and dweight need xhat; inv_std is per sample; what has y's place and dtype (xhat, or
        # x's Signature when computed in float32)
        self.save_for_backward(xhat, inv_std, xhat if wide is x else Signature(x))
        return be.narrowed(y, x.dtype)

    def backward(self, dy, input_grad: bool = True):
        xhat, inv_std, like = self.saved()
        if dy is None:
            return None
        self.check_grad(dy, like)  # like: y's shape, dtype and place
        be = backends.backend_of(dy)
        xp = be.xp
        k = len(self.normalized_shape)
        axes = tuple(range(-k, 0))
        lead = tuple(range(dy.ndim - k))
        m = math.prod(self.normalized_shape)
        out_dtype, dy = dy.dtype, be.widened(dy)  # float16/bfloat16: the sums in float32

        if trains(self.weight):
            g = dy * xhat
            self.weight.accumulate(be.narrowed(xp.sum(g, axis=lead) if lead else g, self.weight.data.dtype))
        if trains(self.bias):
            # no leading axes: a copy, so that the grad never aliases the caller's dy
            db = xp.sum(dy, axis=lead) if lead else xp.asarray(dy, copy=True)
            self.bias.accumulate(be.narrowed(db, self.bias.data.dtype))
        if not input_grad:
            return None
        dxhat = dy if self.weight is None else dy * be.widened(self.weight.data)
        s1 = xp.sum(dxhat, axis=axes, keepdims=True)
        s2 = xp.sum(dxhat * xhat, axis=axes, keepdims=True)
        return be.narrowed((inv_std * (1.0 / m)) * (m * dxhat - s1 - xhat * s2), out_dtype)

    def extra_repr(self):
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )

    def _tag(self):
        return f"LayerNorm({self.normalized_shape})"
