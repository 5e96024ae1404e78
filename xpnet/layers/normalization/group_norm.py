"""GroupNorm, as ``torch.nn.GroupNorm``: the channel norms' array-API step (:mod:`._channel`),
or, on numpy in float32 with numba installed, two fused kernels (:mod:`xpnet.backends._fused`:
one pass each way, the same formulas)."""

from __future__ import annotations

from ... import backends
from ...validate import float_dtype, positive_int
from .._checks import shape_str
from ..base import Parameter, Signature, trains
from ._channel import _ChannelNorm
from ._core import check_input, eps_arg, flags


class _FusedStep:
    """What the fused forward keeps: ``x`` as ``(N, C, S)`` float32, the statistics per sample
    and group, what has ``y``'s shape, dtype and place, and the kernels."""

    __slots__ = ("x3", "mean", "rstd", "like", "kernels")

    def __init__(self, x3, mean, rstd, like, kernels):
        self.x3, self.mean, self.rstd, self.like, self.kernels = x3, mean, rstd, like, kernels


class GroupNorm(_ChannelNorm):
    """Group normalization: the ``C`` channels split into ``num_groups`` groups of ``C / G``
    consecutive channels; per sample and group ``(n, g)``, over the ``m = C / G * prod(spatial)``
    values of the group's channels (see :mod:`._channel`)::

        xhat = (x - mean) / sqrt(var + eps)   (biased variance),   y = weight * xhat + bias

    ``GroupNorm(num_groups, num_channels, eps=1e-5, affine=True, *, bias=True)`` as torch:
    ``weight (C,)`` (ones) and ``bias (C,)`` (zeros), per channel, when ``affine``
    (``bias=False`` drops the bias); no running statistics: training and eval mode are alike.
    Input ``(N, C, *)`` (at least 2-D), the output of its shape.
    """

    _config_fields = ('num_groups', 'num_channels', 'eps', 'affine', 'bias')

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 *, bias: bool = True, backend=None, dtype=None):
        name = "GroupNorm"
        self.num_groups = g = positive_int(name, "num_groups", num_groups)
        self.num_channels = c = positive_int(name, "num_channels", num_channels)
        if c % g:
            raise ValueError(f"{name}: num_channels ({c}) must be divisible by num_groups ({g})")
        self.eps = eps_arg(name, eps)
        self.affine, _ = flags(name, affine=affine, bias=bias)
        be = backends.get(backend)
        xp, dev = be.xp, be.device
        dt = float_dtype(name, be, dtype)
        self.weight = Parameter(xp.ones((c,), dtype=dt, device=dev)) if affine else None
        self.bias = Parameter(xp.zeros((c,), dtype=dt, device=dev)) if affine and bias else None

    def forward(self, x):
        tag = self._tag()
        check_input(tag, x, self._ref(), stats=self.weight is None)
        n, c, s = self._geometry(tag, x)
        be = backends.backend_of(x)
        fused = be.fused()
        if fused is None or self._count(n, c, s) == 0:
            return super().forward(x)
        xp = be.xp
        x3 = xp.reshape(be.widened(x), (n, c, s))
        w = None if self.weight is None else be.widened(self.weight.data)
        b = None if self.bias is None else be.widened(self.bias.data)
        if not fused.takes(x3, w, b):
            return super().forward(x)
        y, mean, rstd = fused.group_norm(x3, self.num_groups, w, b, self.eps)
        like = Signature(x) if x.dtype in be.low_float_dtypes else x
        self.save_for_backward(_FusedStep(x3, mean, rstd, like, fused))
        return be.narrowed(xp.reshape(y, tuple(x.shape)), x.dtype)

    def backward(self, dy, input_grad: bool = True):
        stack = self.__dict__.get("_saved")  # the newest forward's kind decides (peeked, not popped)
        if not stack or type(stack[-1][0]) is not _FusedStep:
            return super().backward(dy, input_grad)
        (st,) = self.saved()
        if dy is None:
            return None
        self.check_grad(dy, st.like)
        be = backends.backend_of(dy)
        xp = be.xp
        dy3 = xp.reshape(be.widened(dy), tuple(st.x3.shape))
        w = None if self.weight is None else be.widened(self.weight.data)
        dx, dw, db = st.kernels.group_norm_backward(dy3, st.x3, self.num_groups, st.mean, st.rstd, w, input_grad)
        if trains(self.weight):
            self.weight.accumulate(be.narrowed(dw, self.weight.data.dtype))
        if trains(self.bias):
            self.bias.accumulate(be.narrowed(db, self.bias.data.dtype))
        return None if dx is None else be.narrowed(xp.reshape(dx, tuple(st.like.shape)), dy.dtype)

    def _geometry(self, tag, x):
        shape = tuple(x.shape)
        if len(shape) < 2:
            raise ValueError(f"{tag} expected input (N, {self.num_channels}, *) of 2 or more dimensions, "
                             f"got {shape_str(shape)}")
        c = shape[1]
        # without parameters any channel count that splits into the groups does, as in torch
        if (self.affine and c != self.num_channels) or c % self.num_groups:
            raise ValueError(f"{tag} expected input (N, {self.num_channels}, *), got {shape_str(shape)}")
        s = 1
        for d in shape[2:]:
            s *= d
        return shape[0], c, s

    def _pool(self, xp, v):
        n, c = v.shape
        return xp.sum(xp.reshape(v, (n, self.num_groups, c // self.num_groups)), axis=2)

    def _spread(self, xp, s, n, c):
        g = self.num_groups
        return xp.reshape(xp.broadcast_to(xp.reshape(s, (n, g, 1)), (n, g, c // g)), (n, c))

    def _count(self, n, c, s):
        return c // self.num_groups * s

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")

    def _tag(self):
        return f"GroupNorm({self.num_groups}, {self.num_channels})"
