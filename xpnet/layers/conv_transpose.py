"""ConvTranspose1d, ConvTranspose2d, ConvTranspose3d: the adjoint of a convolution (a
"fractionally strided" convolution), with PyTorch's arguments, layout and initialisation."""

from __future__ import annotations

import math
import numbers

from .. import backends
from ._conv_args import transposed_padding
from .conv import ConvNd
from .im2col import col2im, from_grid, grouped_matmul, im2col, to_grid


class ConvTransposeNd(ConvNd):
    """The transposed convolution in ``dims`` spatial dimensions (a subclass sets ``dims``):
    the gradient of ``ConvNd(out_channels, in_channels, ...)`` with respect to its input, as
    ``torch.nn.ConvTransposeNd``. With ``G = groups``, ``Cg = in_channels / G``, ``Og =
    out_channels / G``, every input entry spreads over a window of the output::

        y[n, g Og + o, p * stride + k * dilation - padding] += weight[g Cg + c, o, k] * x[n, g Cg + c, p]

    plus ``bias``, for every group ``g``, ``c < Cg``, ``o < Og``, kernel offset ``k`` and input
    position ``p``; entries landing in the padding are dropped.

    Shapes: ``x (N, in_channels, *S)`` -> ``y (N, out_channels, *OS)`` (or unbatched, without
    ``N``), per axis ``OS = (S - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1``;
    ``weight (in_channels, out_channels / groups, *kernel_size)``, ``bias (out_channels,)``.
    ``forward(x, output_size)``: ``output_size`` (``OS``, optionally with the leading ``N, C``
    or ``C``) picks the output padding instead, as torch's, from the sizes in
    ``[min, min + stride - 1]`` per axis.

    Arguments as torch (note the order: ``output_padding`` before ``groups``, ``dilation``
    after ``bias``); ``padding`` is ints only, ``padding_mode`` ``"zeros"`` only, as torch's.
    Initialisation as torch: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with torch's ``fan_in`` of
    this weight layout, ``out_channels / groups * prod(kernel_size)``.

    Method (:mod:`xpnet.layers.im2col`, with the geometry of the convolution it is the adjoint
    of: input ``y``'s shape, output ``x``'s): forward ``y = col2im(W.T @ x)``; backward
    ``cols = im2col(dy)``, ``dx = W @ cols``, ``dW += x @ cols.T``. Keeps ``x``, in the matrix
    layout of the product.
    """

    _config_fields = ('in_channels', 'out_channels', 'kernel_size', 'stride', 'padding', 'output_padding', 'groups',
                      'bias', 'dilation', 'padding_mode')

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", *, backend=None,
                 dtype=None):
        self._setup(in_channels, out_channels, kernel_size, stride, dilation, groups, bias)
        self._transposed_args(padding, output_padding, padding_mode)
        self._reset_parameters(backends.get(backend), dtype, bias)

    def _transposed_args(self, padding, output_padding, padding_mode):
        name = type(self).__name__
        if padding_mode != "zeros":
            raise ValueError(f"{name}: padding_mode must be 'zeros' (the only one torch's transposed convolutions "
                             f"take), got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.padding, self.output_padding = transposed_padding(self, padding, output_padding)
        self._pads = tuple((p, p) for p in self.padding)

    def _weight_shape(self):
        return (self.in_channels, self.out_channels // self.groups) + self.kernel_size

    def _fan_in(self):
        return self.out_channels // self.groups * math.prod(self.kernel_size)

    # -- forward -------------------------------------------------------------------------
    def forward(self, x, output_size=None):
        w, tag = self.weight.data, self._tag()
        xp, x, batched = self._batched(x)
        size = tuple(x.shape[2:])
        extra = self._output_padding(size, output_size, batched)
        out = tuple((s - 1) * st - 2 * p + d * (k - 1) + e + 1
                    for s, st, p, d, k, e in zip(size, self.stride, self.padding, self.dilation, self.kernel_size, extra))
        if min(out) < 1:
            raise ValueError(f"{tag}: an input of size {size} gives an output of size {out}: padding {self.padding} "
                             f"is too large for it")
        # the geometry of the convolution this is the adjoint of: y's shape in, x's out
        geo = self._geometry(tag, (x.shape[0], self.out_channels) + out, self._pads, size)
        o, g = self.out_channels, self.groups
        # x in the layout of a convolution's output (its workspace buffer is fresh while an
        # earlier call's still awaits its backward)
        xg = to_grid(xp, x, geo, self._work, "x", fresh=self.pending > 0)  # (C, N*prod(grid))
        dcols = grouped_matmul(xp, xp.reshape(w, (self.in_channels, o // g * geo.kk)), xg, g, ta=True)
        y = col2im(xp, dcols, geo, self._work)  # (N, O, *OS), fresh
        del dcols
        if self.bias is not None:
            y += xp.reshape(self.bias.data, (1, o) + (1,) * self.dims)
        self.save_for_backward(xg, geo, batched)  # dW needs x; dx and dW need im2col(dy), made then
        return y if batched else xp.reshape(y, tuple(y.shape[1:]))

    def _output_padding(self, size, output_size, batched):
        """The output padding per axis: the layer's, or what ``output_size`` asks for (torch's rule)."""
        if output_size is None:
            return self.output_padding
        name, d = type(self).__name__, self.dims
        lead = 2 if batched else 1
        sizes = tuple(output_size) if isinstance(output_size, (tuple, list)) else None
        if sizes is None or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in sizes):
            raise TypeError(f"{name}: output_size must be a tuple or list of ints, got {output_size!r}")
        if len(sizes) == d + lead:
            sizes = sizes[lead:]
        if len(sizes) != d:
            raise ValueError(f"{name}: for {d + lead}-D input, output_size must have {d} or {d + lead} elements "
                             f"(got {len(tuple(output_size))})")
        lo = [(s - 1) * st - 2 * p + dil * (k - 1) + 1
              for s, st, p, dil, k in zip(size, self.stride, self.padding, self.dilation, self.kernel_size)]
        hi = [m + st - 1 for m, st in zip(lo, self.stride)]
        if any(not a <= int(v) <= b for v, a, b in zip(sizes, lo, hi)):
            raise ValueError(f"{name}: requested an output size of {list(sizes)}, but valid sizes range from {lo} to "
                             f"{hi} (for an input of {list(size)})")
        return tuple(int(v) - a for v, a in zip(sizes, lo))

    # -- backward ------------------------------------------------------------------------
    def backward(self, dy, input_grad: bool = True):
        xg, geo, batched = self.saved()
        if dy is None:
            return None
        c, o, g = self.in_channels, self.out_channels, self.groups
        shape = (geo.n, o) + (geo.size[1:] if geo.lifted else geo.size)
        todo = self._batched_grad(dy, xg, shape, batched, input_grad)  # xg: y's dtype and place
        if todo is None:
            return None
        xp, dy, want_w, want_b = todo
        if want_b:
            self.bias.accumulate(xp.sum(dy, axis=(0,) + tuple(range(2, dy.ndim))))
        if not (input_grad or want_w):
            return None
        cols = im2col(xp, dy, geo, self._work)  # (O*K, N*prod(grid)); nothing saved holds the buffer
        if want_w:
            dw = grouped_matmul(xp, xg, cols, g, tb=True)  # (C, Og*K)
            self.weight.accumulate(xp.reshape(dw, tuple(self.weight.shape)))
        del xg
        if not input_grad:
            return None
        dx = from_grid(xp, grouped_matmul(xp, xp.reshape(self.weight.data, (c, o // g * geo.kk)), cols, g), geo)
        return dx if batched else xp.reshape(dx, tuple(dx.shape[1:]))


class ConvTranspose1d(ConvTransposeNd):
    """1-D transposed convolution, as ``torch.nn.ConvTranspose1d``: ``(N, C, L)`` or ``(C, L)``;
    see :class:`ConvTransposeNd`."""

    dims = 1


class ConvTranspose2d(ConvTransposeNd):
    """2-D transposed convolution, as ``torch.nn.ConvTranspose2d``: ``(N, C, H, W)`` or ``(C, H, W)``;
    see :class:`ConvTransposeNd`."""

    dims = 2


class ConvTranspose3d(ConvTransposeNd):
    """3-D transposed convolution, as ``torch.nn.ConvTranspose3d``: ``(N, C, D, H, W)`` or
    ``(C, D, H, W)``; see :class:`ConvTransposeNd`."""

    dims = 3
