"""GroupNorm, as ``torch.nn.GroupNorm``."""

from __future__ import annotations

from ... import backends
from ...validate import float_dtype, positive_int
from .._checks import shape_str
from ..base import Parameter
from ._channel import _ChannelNorm
from ._core import eps_arg, flags


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
