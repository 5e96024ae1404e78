"""Conv1d, Conv2d, Conv3d: cross-correlation over ``(N, C, *spatial)`` arrays, with PyTorch's
arguments, layout and initialisation; one N-dimensional implementation (:class:`ConvNd`) on the
N-dimensional im2col of :mod:`xpnet.layers.im2col`."""

from __future__ import annotations

import math

from .. import backends
from ._checks import check_like, shape_str
from ._conv_args import check_padding_mode, conv_padding
from ._pad import pad, pad_backward
from .base import Layer, Parameter, trains
from .im2col import Workspace, col2im, from_grid, geometry, grouped_matmul, im2col, to_grid
from ..validate import flag, int_tuple, positive_int

#: how error messages draw the spatial axes of a 1-, 2- or 3-D input
AXES = {1: "L", 2: "H, W", 3: "D, H, W"}


class ConvNd(Layer):
    """The convolution in ``dims`` spatial dimensions (a subclass sets ``dims``).

    With ``G = groups``, ``Cg = in_channels / G`` and ``g(o)`` the group of output channel ``o``::

        y[n, o, p] = bias[o] + sum_{c < Cg, k} weight[o, c, k] * xpad[n, g(o) Cg + c, p * stride + k * dilation]

    over the kernel offsets ``k`` (a ``dims``-tuple), where ``xpad`` is ``x`` padded by
    ``padding`` in ``padding_mode`` (zeros, or the border values: ``"reflect"``,
    ``"replicate"``, ``"circular"``, as ``torch.nn.functional.pad``).

    Shapes: ``x (N, in_channels, *S)`` -> ``y (N, out_channels, *OS)``, or unbatched
    ``(in_channels, *S)`` -> ``(out_channels, *OS)``, per axis
    ``OS = (S + pad_before + pad_after - dilation (k - 1) - 1) // stride + 1``;
    ``weight (out_channels, in_channels / groups, *kernel_size)``, ``bias (out_channels,)``.

    Arguments as ``torch.nn.ConvNd``: ``kernel_size``, ``stride``, ``dilation`` are an int or a
    ``dims``-tuple; ``padding`` an int, a tuple, ``"valid"`` (no padding) or ``"same"`` (stride 1
    only; the output has the input's size; an odd total ``d (k - 1)`` puts the extra entry
    after, as PyTorch does).

    Initialisation as PyTorch (Kaiming-uniform, ``a = sqrt(5)``): ``weight, bias ~ U(-1/sqrt(fan_in),
    1/sqrt(fan_in))`` with ``fan_in = in_channels / groups * prod(kernel_size)``, drawn from the
    backend's generator, in ``dtype`` (default float32) on ``backend`` (default: the current one).

    Method: im2col, then one matrix product per group, ``Y = W (O, Cg*K) @ cols``. Backward:
    ``dW += dY @ cols.T``, ``db += sum dY``, ``dx = col2im(W.T @ dY)`` (then folded back through
    the padding for the border modes). Forward keeps the columns (``K`` times the input: the time
    of a second im2col is worth more here than the memory) and the geometry; not ``x`` itself.
    The columns live in a work buffer reused from step to step; a call made while an earlier
    one still awaits its backward (shared weights) takes fresh columns instead.
    """

    dims = 0
    _config_fields = ('in_channels', 'out_channels', 'kernel_size', 'stride', 'padding', 'dilation', 'groups', 'bias',
                      'padding_mode')

    # The shift im2col computes WB - OW wasted output columns per row (WB > OW only when the
    # input is wider than the output); beyond this fraction of OW the windowed method is used
    # (measured, 32 -> 64 channels, batch 64: equal times at 0.5, windowed 20% faster at 0.75).
    _shift_max_waste = 0.5

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", *, backend=None, dtype=None):
        self._setup(in_channels, out_channels, kernel_size, stride, dilation, groups, bias)
        self.padding, self._pads = conv_padding(self, padding)
        self.padding_mode = check_padding_mode(type(self).__name__, padding_mode)
        self._reset_parameters(backends.get(backend), dtype, bias)

    # -- construction, shared with the transposed and lazy convolutions -----------------
    def _setup(self, in_channels, out_channels, kernel_size, stride, dilation, groups, bias):
        name, d = type(self).__name__, self.dims
        # a lazy layer has in_channels 0 until its first forward, as torch's
        self.in_channels = in_channels if in_channels == 0 and self._lazy else positive_int(name, "in_channels", in_channels)
        self.out_channels = positive_int(name, "out_channels", out_channels)
        self.groups = positive_int(name, "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
                f"divisible by groups ({groups})"
            )
        self.kernel_size = int_tuple(name, "kernel_size", kernel_size, d, 1)
        self.stride = int_tuple(name, "stride", stride, d, 1)
        self.dilation = int_tuple(name, "dilation", dilation, d, 1)
        self.output_padding = (0,) * d  # a transposed convolution's own (torch's attribute on both)
        flag(name, "bias", bias)
        self._work = Workspace()
        self._last_geometry = None  # (key, Geometry): see _geometry

    _lazy = False

    def _weight_shape(self):
        return (self.out_channels, self.in_channels // self.groups) + self.kernel_size

    def _fan_in(self):
        return self.in_channels // self.groups * math.prod(self.kernel_size)

    def _reset_parameters(self, be, dtype, bias):
        """Draw ``weight`` (and ``bias``) as torch's ``reset_parameters``: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        dt = be.dtype("float32" if dtype is None else dtype)
        bound = 1.0 / math.sqrt(self._fan_in())
        self.weight = Parameter(be.rng.uniform(self._weight_shape(), -bound, bound, dtype=dt))
        self.bias = Parameter(be.rng.uniform((self.out_channels,), -bound, bound, dtype=dt)) if bias else None

    def _geometry(self, tag, shape, pads, out=None):
        """The :class:`~xpnet.layers.im2col.Geometry` of an ``(N, C, *S)`` input shape (the last
        one is kept: the same shape comes back step after step)."""
        key = (shape, pads, out, self._shift_max_waste)
        last = self._last_geometry
        if last is None or last[0] != key:
            last = self._last_geometry = (key, geometry(tag, shape, self.kernel_size, self.stride, self.dilation,
                                                        pads, self._shift_max_waste, out))
        return last[1]

    def _batched(self, x):
        """``(xp, x with a batch axis, whether it had one)`` after checking that ``x`` has the
        parameters' place and dtype and is ``(N, in_channels, *S)`` or ``(in_channels, *S)``."""
        check_like(self._tag(), x, self.weight.data)
        d, c = self.dims, self.in_channels
        if x.ndim not in (d + 1, d + 2) or x.shape[-d - 1] != c:
            raise ValueError(f"{self._tag()} expected input (N, {c}, {AXES[d]}) or ({c}, {AXES[d]}), "
                             f"got {shape_str(x.shape)}")
        xp = backends.namespace_of(x)
        return (xp, x, True) if x.ndim == d + 2 else (xp, xp.expand_dims(x, axis=0), False)

    def _batched_grad(self, dy, like, shape, batched, input_grad):
        """``(xp, dy with a batch axis, trains weight, trains bias)`` after checking ``dy`` against
        the output (``like``: an array of its place and dtype; ``shape``: its batched shape); None
        when nothing is to be computed."""
        self.check_grad(dy, like, shape if batched else shape[1:])
        want_w, want_b = trains(self.weight), trains(self.bias)
        if not (input_grad or want_w or want_b):
            return None
        xp = backends.namespace_of(dy)
        return xp, (dy if batched else xp.expand_dims(dy, axis=0)), want_w, want_b

    # -- forward -------------------------------------------------------------------------
    def forward(self, x):
        w, tag = self.weight.data, self._tag()
        xp, x, batched = self._batched(x)
        in_shape, pads = tuple(x.shape), self._pads
        if self.padding_mode != "zeros":  # the border modes pad first, then convolve unpadded
            x, pads = pad(x, self._torch_pads(), self.padding_mode, who=tag), ((0, 0),) * self.dims
        geo = self._geometry(tag, tuple(x.shape), pads)
        o, g = self.out_channels, self.groups
        # A saved entry of an earlier call (this layer applied twice before one backward) may
        # still hold the workspace's columns: then take fresh ones.
        cols = im2col(xp, x, geo, self._work, fresh=self.pending > 0)
        y = grouped_matmul(xp, xp.reshape(w, (o, geo.c // g * geo.kk)), cols, g)  # (O, N*prod(grid))
        if self.bias is not None:
            y += xp.reshape(self.bias.data, (o, 1))  # our own fresh array
        y = from_grid(xp, y, geo)
        # Kept for backward: the columns (dW needs them) and the geometry; not x (see the class doc).
        self.save_for_backward(cols, geo, batched, in_shape)
        return y if batched else xp.reshape(y, tuple(y.shape[1:]))

    # -- backward ------------------------------------------------------------------------
    def backward(self, dy, input_grad: bool = True):
        cols, geo, batched, in_shape = self.saved()
        if dy is None:
            return None
        o, g = self.out_channels, self.groups
        todo = self._batched_grad(dy, cols, (geo.n, o) + geo.spatial_out, batched, input_grad)  # cols: y's place
        if todo is None:
            return None
        xp, dy, want_w, want_b = todo
        dyc = to_grid(xp, dy, geo, self._work, "dy")  # (O, N*prod(grid)), zeros where forward cropped
        if want_b:
            self.bias.accumulate(xp.sum(dyc, axis=1))
        if want_w:
            dw = grouped_matmul(xp, dyc, cols, g, tb=True)  # (O, Cg*K)
            self.weight.accumulate(xp.reshape(dw, tuple(self.weight.shape)))
        del cols
        if not input_grad:
            return None
        w2 = xp.reshape(self.weight.data, (o, geo.c // g * geo.kk))
        dcols = grouped_matmul(xp, w2, dyc, g, ta=True)  # (C*K, N*prod(grid))
        del dyc
        dx = col2im(xp, dcols, geo, self._work)
        if self.padding_mode != "zeros":
            dx = pad_backward(dx, self._torch_pads(), self.padding_mode, in_shape, who=self._tag())
        return dx if batched else xp.reshape(dx, tuple(dx.shape[1:]))

    def _torch_pads(self):
        """The padding as ``torch.nn.functional.pad`` takes it: ``(before, after)`` pairs, last axis first."""
        return tuple(p for pair in reversed(self._pads) for p in pair)

    # -- printing ------------------------------------------------------------------------
    def extra_repr(self):
        d = self.dims
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * d:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * d:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * d:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s

    def _tag(self):
        return f"{type(self).__name__}({self.in_channels or '?'} -> {self.out_channels})"


class Conv1d(ConvNd):
    """1-D convolution, as ``torch.nn.Conv1d``: ``(N, C, L)`` or ``(C, L)``; see :class:`ConvNd`."""

    dims = 1


class Conv2d(ConvNd):
    """2-D convolution, as ``torch.nn.Conv2d``: ``(N, C, H, W)`` or ``(C, H, W)``; see :class:`ConvNd`."""

    dims = 2


class Conv3d(ConvNd):
    """3-D convolution, as ``torch.nn.Conv3d``: ``(N, C, D, H, W)`` or ``(C, D, H, W)``; see :class:`ConvNd`."""

    dims = 3
