"""Conv2d: 2-D cross-correlation over (N, C, H, W) arrays, with PyTorch's layout and initialisation."""

from __future__ import annotations

import math

from .. import backends
from ._checks import check_like, shape_str
from .base import Layer, Parameter, trains
from .im2col import Workspace, col2im, geometry, grouped_matmul, im2col, nchw
from ..validate import flag, pair, positive_int


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as ``torch.nn.Conv2d``).

    With ``G = groups``, ``Cg = in_channels / G``, and ``g(o)`` the group of output channel ``o``::

        y[n, o, a, b] = bias[o] + sum_{c < Cg, i < KH, j < KW}
                        weight[o, c, i, j] * xpad[n, g(o) Cg + c, a sh + i dh, b sw + j dw]

    where ``xpad`` is ``x`` with zeros added around (``padding``), ``(sh, sw)`` the stride and
    ``(dh, dw)`` the dilation.

    Shapes: ``x (N, in_channels, H, W)`` -> ``y (N, out_channels, OH, OW)``, or unbatched
    ``(in_channels, H, W)`` -> ``(out_channels, OH, OW)``, with
    ``OH = (H + pad_top + pad_bottom - dh (KH - 1) - 1) // sh + 1`` (``OW`` likewise);
    ``weight (out_channels, in_channels / groups, KH, KW)``, ``bias (out_channels,)``.

    Arguments as ``torch.nn.Conv2d``: ``kernel_size``, ``stride``, ``dilation`` are an int or a
    pair; ``padding`` an int, a pair, ``"valid"`` (no padding) or ``"same"`` (stride 1 only; the
    output has the input's size; an odd total ``d (k - 1)`` puts the extra row/column at the
    bottom/right, as PyTorch does).

    Initialisation as PyTorch (Kaiming-uniform, ``a = sqrt(5)``): ``weight, bias ~ U(-1/sqrt(fan_in),
    1/sqrt(fan_in))`` with ``fan_in = in_channels / groups * KH * KW``, drawn from the backend's
    generator, in ``dtype`` (default float32) on ``backend`` (default: the current default backend).

    Method (:mod:`xpnet.layers.im2col`): im2col, then one matrix product per group,
    ``Y = W (O, Cg*KH*KW) @ cols``. Backward: ``dW += dY @ cols.T``, ``db += sum dY``, and
    ``dx = col2im(W.T @ dY)``. Forward keeps the columns (``KH*KW`` times the input: the time of
    a second im2col is worth more here than the memory) and the geometry; not ``x`` itself.
    The columns live in a work buffer reused from step to step; a call made while an earlier
    one still awaits its backward (shared weights) takes fresh columns instead.
    """

    _config_fields = ('in_channels', 'out_channels', 'kernel_size', 'stride', 'padding', 'dilation', 'groups', 'bias')

    # The shift im2col computes WB - OW wasted output columns per row (WB > OW only when the
    # input is wider than the output); beyond this fraction of OW the windowed method is used
    # (measured, 32 -> 64 channels, batch 64: equal times at 0.5, windowed 20% faster at 0.75).
    _shift_max_waste = 0.5

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, *, backend=None, dtype=None):
        name = "Conv2d"
        self.in_channels = positive_int(name, "in_channels", in_channels)
        self.out_channels = positive_int(name, "out_channels", out_channels)
        self.groups = positive_int(name, "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
                f"divisible by groups ({groups})"
            )
        self.kernel_size = pair(name, "kernel_size", kernel_size, 1)
        self.stride = pair(name, "stride", stride, 1)
        self.dilation = pair(name, "dilation", dilation, 1)
        flag(name, "bias", bias)
        self.padding, self._pads = self._padding(name, padding)

        be = backends.get(backend)
        dt = be.dtype("float32" if dtype is None else dtype)
        kh, kw = self.kernel_size
        bound = 1.0 / math.sqrt(in_channels // groups * kh * kw)
        self.weight = Parameter(be.rng.uniform((out_channels, in_channels // groups, kh, kw), -bound, bound, dtype=dt))
        self.bias = Parameter(be.rng.uniform((out_channels,), -bound, bound, dtype=dt)) if bias else None
        self._work = Workspace()
        self._last_geometry = None  # (key, Geometry): see _geometry

    def _padding(self, name, padding):
        """``padding`` as given (a pair or a string) and as ``(top, bottom, left, right)``."""
        if not isinstance(padding, str):
            ph, pw = pair(name, "padding", padding, 0)
            return (ph, pw), (ph, ph, pw, pw)
        if padding == "valid":
            return padding, (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"{name}: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
        if self.stride != (1, 1):
            raise ValueError(
                f"{name}: padding='same' needs stride 1 (an output as large as the input), "
                f"got stride={self.stride}; give the padding explicitly for a strided convolution"
            )
        pads = []
        for d, k in zip(self.dilation, self.kernel_size):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]  # the odd one at the bottom/right, as torch
        return padding, tuple(pads)

    def _geometry(self, tag, shape):
        """The :class:`~xpnet.layers.im2col.Geometry` of an ``(N, C, H, W)`` input shape (the last
        one is kept: the same shape comes back step after step)."""
        key = (shape, self._shift_max_waste)
        last = self._last_geometry
        if last is None or last[0] != key:
            last = self._last_geometry = (key, geometry(tag, shape, self.kernel_size, self.stride, self.dilation,
                                                        self._pads, self._shift_max_waste))
        return last[1]

    # -- forward -------------------------------------------------------------------------
    def forward(self, x):
        w, tag = self.weight.data, self._tag()
        check_like(tag, x, w)
        if x.ndim not in (3, 4) or x.shape[-3] != self.in_channels:
            c = self.in_channels
            raise ValueError(f"{tag} expected input (N, {c}, H, W) or ({c}, H, W), got {shape_str(x.shape)}")
        xp = backends.namespace_of(x)
        batched = x.ndim == 4
        if not batched:
            x = xp.expand_dims(x, axis=0)
        geo = self._geometry(tag, tuple(x.shape))
        o, g = self.out_channels, self.groups
        # A saved entry of an earlier call (this layer applied twice before one backward) may
        # still hold the workspace's columns: then take fresh ones.
        cols = im2col(xp, x, geo, self._work, fresh=self.pending > 0)
        y = grouped_matmul(xp, xp.reshape(w, (o, geo.c // g * geo.kk)), cols, g)  # (O, N*OH*WB)
        if self.bias is not None:
            y += xp.reshape(self.bias.data, (o, 1))  # our own fresh array
        y = xp.reshape(y, (o, geo.n, geo.oh, geo.wb))
        if geo.wb != geo.ow:
            y = y[:, :, :, :geo.ow]
        y = nchw(xp, y)
        # Kept for backward: the columns (dW needs them) and the geometry; not x (see the class doc).
        self.save_for_backward(cols, geo, batched)
        return y if batched else xp.reshape(y, tuple(y.shape[1:]))

    # -- backward ------------------------------------------------------------------------
    def backward(self, dy, input_grad: bool = True):
        cols, geo, batched = self.saved()
        if dy is None:
            return None
        o, g = self.out_channels, self.groups
        n, oh, ow, wb = geo.n, geo.oh, geo.ow, geo.wb
        self.check_grad(dy, cols, (n, o, oh, ow) if batched else (o, oh, ow))  # cols: y's dtype and place
        want_w, want_b = trains(self.weight), trains(self.bias)
        if not (input_grad or want_w or want_b):
            return None
        xp = backends.namespace_of(dy)
        if not batched:
            dy = xp.expand_dims(dy, axis=0)
        # dY channels first, (O, N*OH*WB), with zeros in the columns that forward computed and cropped
        if wb != ow:
            dyc = self._work.get(xp, "dy", (o, n, oh, wb), dy, zero=False)
            dyc[:, :, :, ow:] = 0.0
            dyc[:, :, :, :ow] = xp.permute_dims(dy, (1, 0, 2, 3))
        else:
            dyc = xp.permute_dims(dy, (1, 0, 2, 3))  # made contiguous by the reshape below: one copy
        dyc = xp.reshape(dyc, (o, geo.m))
        if want_b:
            self.bias.accumulate(xp.sum(dyc, axis=1))
        if want_w:
            dw = grouped_matmul(xp, dyc, cols, g, tb=True)  # (O, Cg*KH*KW)
            self.weight.accumulate(xp.reshape(dw, tuple(self.weight.shape)))
        del cols
        if not input_grad:
            return None
        w2 = xp.reshape(self.weight.data, (o, geo.c // g * geo.kk))
        dcols = grouped_matmul(xp, w2, dyc, g, ta=True)  # (C*KH*KW, N*OH*WB)
        del dyc
        dx = col2im(xp, dcols, geo, self._work)
        return dx if batched else xp.reshape(dx, tuple(dx.shape[1:]))

    # -- printing ------------------------------------------------------------------------
    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s

    def _tag(self):
        return f"Conv2d({self.in_channels} -> {self.out_channels})"
