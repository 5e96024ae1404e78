"""BatchNorm1d, BatchNorm2d and BatchNorm3d, one N-D layer, as ``torch.nn`` defines them; and
:class:`_NormBase`, the constructor, parameters and buffers they share with InstanceNorm."""

from __future__ import annotations

from ... import backends
from ...validate import float_dtype, positive_int
from .._checks import shape_str
from ..base import Parameter
from ._channel import _ChannelNorm
from ._core import eps_arg, flags, momentum_arg


class _NormBase(_ChannelNorm):
    """``(num_features, eps=1e-5, momentum=0.1, affine, track_running_stats, *, bias=True)`` as
    torch's ``_NormBase``: parameters ``weight (C,)`` (ones) and ``bias (C,)`` (zeros) when
    ``affine`` (``bias=False`` drops the bias); buffers ``running_mean (C,)`` (zeros),
    ``running_var (C,)`` (ones) and ``num_batches_tracked`` (0-d int64) when ``track_running_stats``."""

    _config_fields = ('num_features', 'eps', 'momentum', 'affine', 'track_running_stats', 'bias')

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, *, bias: bool = True, backend=None, dtype=None):
        name = type(self).__name__
        self.num_features = c = positive_int(name, "num_features", num_features)
        self.eps = eps_arg(name, eps)
        self.momentum = momentum_arg(name, momentum)
        self.affine, self.track_running_stats, _ = flags(
            name, affine=affine, track_running_stats=track_running_stats, bias=bias)
        be = backends.get(backend)
        xp, dev = be.xp, be.device
        dt = float_dtype(name, be, dtype)
        self.weight = Parameter(xp.ones((c,), dtype=dt, device=dev)) if affine else None
        self.bias = Parameter(xp.zeros((c,), dtype=dt, device=dev)) if affine and bias else None
        if track_running_stats:
            self.running_mean = xp.zeros((c,), dtype=dt, device=dev)
            self.running_var = xp.ones((c,), dtype=dt, device=dev)
            self.num_batches_tracked = xp.asarray(0, dtype=xp.int64, device=dev)

    def extra_repr(self):
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )

    def _tag(self):
        return f"{type(self).__name__}({self.num_features})"


class _BatchNorm(_NormBase):
    """Batch normalization over every axis but the channel axis 1 (see :mod:`._channel`).

    Training mode (or eval mode without running statistics), per channel ``c`` over the
    ``m = N * prod(spatial)`` values of that channel::

        xhat = (x - mean) / sqrt(var + eps)   (biased variance),   y = weight * xhat + bias

    and, when ``track_running_stats`` and training, with ``f = momentum`` (or ``1 / num_batches_tracked``
    when ``momentum`` is None: a cumulative moving average, as in torch)::

        running_mean <- (1 - f) running_mean + f mean
        running_var  <- (1 - f) running_var  + f var * m / (m - 1)   (unbiased)
        num_batches_tracked <- num_batches_tracked + 1

    Eval mode with running statistics: ``xhat = (x - running_mean) / sqrt(running_var + eps)``.
    An empty batch gives an empty output and zero parameter gradients; in training it only
    advances ``num_batches_tracked``, as torch does. Batch statistics over one value per channel
    are refused, as torch refuses them.
    """

    _spatial_dims: tuple = ()  # allowed numbers of axes after (N, C)

    def _geometry(self, tag, x):
        shape = tuple(x.shape)
        if len(shape) - 2 not in self._spatial_dims or shape[1] != self.num_features:
            raise ValueError(f"{tag} expected input {self._expected()}, got {shape_str(shape)}")
        s = 1
        for d in shape[2:]:
            s *= d
        return shape[0], shape[1], s

    def _expected(self):
        c = self.num_features
        forms = {0: f"(N, {c})", 1: f"(N, {c}, L)", 2: f"(N, {c}, H, W)", 3: f"(N, {c}, D, H, W)"}
        return " or ".join(forms[k] for k in self._spatial_dims)

    def _pool(self, xp, v):
        return xp.sum(v, axis=0, keepdims=True)

    def _count(self, n, c, s):
        return n * s

    def _too_few(self, tag, shape):
        return ValueError(
            f"{tag}: expected more than 1 value per channel when training, got input of shape "
            f"{shape_str(shape)} (1 value per channel); "
            "use a larger batch, or call .eval() to use the running statistics"
        )

    def _advance(self, xp):
        # asarray: numpy turns 0-d arithmetic into a scalar, which is not an array
        nbt = self.num_batches_tracked
        self.num_batches_tracked = xp.asarray(nbt + 1, dtype=nbt.dtype, device=nbt.device)

    def _factor(self, xp):
        if self.momentum is not None:
            return self.momentum
        # the cumulative average's 1 / count stays on the device: no host read in a step
        return 1.0 / xp.astype(self.num_batches_tracked, self.running_mean.dtype)


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


class BatchNorm3d(_BatchNorm):
    """Batch normalization of ``(N, C, D, H, W)`` input, per channel ``C``; see :class:`_BatchNorm`.

    ``BatchNorm3d(num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True)``
    as ``torch.nn.BatchNorm3d``; output has the input's shape.
    """

    _spatial_dims = (3,)
