"""Conv2d: 2-D cross-correlation over (N, C, H, W) arrays, with PyTorch's layout and initialisation."""

from __future__ import annotations

import math

from .. import backends
from ._checks import check_like, no_forward_error, positive_int, shape_str
from ._spatial import out_size, pair, window
from .base import Layer, Parameter


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as ``torch.nn.Conv2d``).

    With ``G = groups``, ``Cg = in_channels / G``, and ``g(o)`` the group of output channel ``o``::

        y[n, o, a, b] = bias[o] + sum_{c < Cg, i < KH, j < KW}
                        weight[o, c, i, j] * xpad[n, g(o) Cg + c, a sh + i dh, b sw + j dw]

    where ``xpad`` is ``x`` with zeros added around (``padding``), ``(sh, sw)`` the stride and
    ``(dh, dw)`` the dilation.

    Shapes: ``x (N, in_channels, H, W)`` -> ``y (N, out_channels, OH, OW)`` with
    ``OH = (H + pad_top + pad_bottom - dh (KH - 1) - 1) // sh + 1`` (``OW`` likewise);
    ``weight (out_channels, in_channels / groups, KH, KW)``, ``bias (out_channels,)``.

    Arguments as ``torch.nn.Conv2d``: ``kernel_size``, ``stride``, ``dilation`` are an int or a
    pair; ``padding`` an int, a pair, ``"valid"`` (no padding) or ``"same"`` (stride 1 only; the
    output has the input's size; an odd total ``d (k - 1)`` puts the extra row/column at the
    bottom/right, as PyTorch does).

    Initialisation as PyTorch (Kaiming-uniform, ``a = sqrt(5)``): ``weight, bias ~ U(-1/sqrt(fan_in),
    1/sqrt(fan_in))`` with ``fan_in = in_channels / groups * KH * KW``, drawn from the backend's
    generator, in ``dtype`` (default float32) on ``backend`` (default: the current default backend).

    Method: im2col, then one matrix product (a batched one over the groups). The columns are
    laid out ``(C, KH*KW, N, OH, WB)`` (``WB`` below) so that a group is one block of rows and
    the product's result is already channels-first ``(O, N, OH, WB)``:

    - stride 1, "shift" im2col: the input sits channels first in a zero buffer of rows
      ``WB = max(W, OW)`` wide, without the left/right padding columns; flattened per sample,
      kernel offset ``(i, j)`` reads ONE contiguous run of ``OH * WB`` entries, starting
      ``(i dh) WB + j dw - pad_left`` after the first output row's origin. Where ``b + j dw -
      pad_left`` falls outside ``[0, W)`` the run has wrapped into the neighbouring row: those
      few columns of the block are zeroed (they are padding). Long contiguous copies and slice-
      adds, and no GEMM work on padding columns (with ``padding="same"``, ``WB = OW``: none wasted).
    - other strides (or when ``WB - OW`` would waste more than half the GEMM work): the
      ``KH*KW`` strided windows of the padded input (``window()``), which copy in short runs.

    Backward: ``dW += dY @ cols.T`` and ``db += sum dY``; ``dx`` by col2im: ``dcols = W.T @ dY``,
    then each offset's block is added back where forward read it, in a zero buffer
    (slice-adds: the adjoint of im2col), which is cropped to ``x``'s shape.

    Forward keeps the columns for ``dW`` (``KH*KW`` times the input: the time of a second
    im2col is worth more here than the memory) and the geometry; not ``x`` itself. The padded
    input, the columns and the gradient buffer are work arrays kept from call to call (see
    ``_work``).
    """

    _config_fields = ('in_channels', 'out_channels', 'kernel_size', 'stride', 'padding', 'dilation', 'groups', 'bias')

    # Sequential may ask this layer to skip dx when it is first: no one needs the data's gradient.
    _input_grad_optional = True
    # The shift method computes WB - OW wasted output columns per row (WB > OW only when the
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
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(
                    f"{name}: padding='same' needs stride 1 (an output as large as the input), "
                    f"got stride={self.stride}; give the padding explicitly for a strided convolution"
                )
            self.padding = padding
        else:
            self.padding = pair(name, "padding", padding, 0)
        # (top, bottom, left, right)
        if self.padding == "same":
            pads = []
            for d, k in zip(self.dilation, self.kernel_size):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            self._pads = tuple(pads)
        elif self.padding == "valid":
            self._pads = (0, 0, 0, 0)
        else:
            ph, pw = self.padding
            self._pads = (ph, ph, pw, pw)

        be = backends.get(backend)
        dt = be.dtype("float32" if dtype is None else dtype)
        kh, kw = self.kernel_size
        bound = 1.0 / math.sqrt(in_channels // groups * kh * kw)
        self.weight = Parameter(be.rng.uniform((out_channels, in_channels // groups, kh, kw), -bound, bound, dtype=dt))
        self.bias = Parameter(be.rng.uniform((out_channels,), -bound, bound, dtype=dt)) if bias else None
        self._cache = None  # (cols, geometry): see forward
        self._scratch = {}  # work buffers, kept between calls: see _work

    # -- forward -------------------------------------------------------------------------
    def forward(self, x):
        w = self.weight.data
        check_like(self._tag(), x, w)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self._tag()} expected input (N, {self.in_channels}, H, W), got {shape_str(x.shape)}"
            )
        xp = backends.namespace_of(x)
        geo = self._geometry(x.shape)
        n, c, h, wd, oh, ow, wb, shift, rows, bw, top, left = geo
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        kk = kh * kw
        # The input, channels first, in a zero buffer (the transpose rides on this one copy); only
        # the input's region is written, so the padding stays zero from one call to the next.
        buf = self._work(xp, "x", (c, n, rows, bw), x)
        buf[:, :, top:top + h, left:left + wd] = xp.permute_dims(x, (1, 0, 2, 3))
        if shift:
            # Offset (i, j) reads one contiguous run of OH * WB entries per sample, starting at
            # start(i, j); a run crosses row ends, so its entries that fall outside the input's
            # columns wrapped into a neighbouring row and are zeroed below.
            run = oh * wb
            flat = xp.reshape(buf, (c, n, rows * wb))
            blocks = [flat[:, :, s:s + run] for s in self._starts(geo)]
        else:
            blocks = [window(buf, i * dh, j * dw, oh, ow, sh, sw) for i in range(kh) for j in range(kw)]
        del buf
        # rows (c, i, j) as in the weight's layout; every entry is written below
        cols = self._work(xp, "cols", (c, kk) + tuple(blocks[0].shape[1:]), x, zero=False)
        for k, block in enumerate(blocks):
            cols[:, k, ...] = block
        del blocks
        cols = xp.reshape(cols, (c, kk, n, oh, wb))
        if shift:
            for j, lo, hi in self._wrapped(geo):
                cols[:, j::kw, :, :, lo:hi] = 0.0
        m = n * oh * wb
        cols = xp.reshape(cols, (c * kk, m))
        y = self._matmul(xp, xp.reshape(w, (self.out_channels, c // self.groups * kk)), cols)  # (O, m)
        if self.bias is not None:
            y += xp.reshape(self.bias.data, (self.out_channels, 1))  # our own fresh array
        y = xp.reshape(y, (self.out_channels, n, oh, wb))
        if wb != ow:
            y = y[:, :, :, :ow]
        # Kept for backward: the columns (dW needs them) and the geometry; not x (see the class doc).
        self._cache = (cols, geo)
        return self._nchw(xp, y)

    def _work(self, xp, name, shape, like, zero=True):
        """A work buffer of this layer, kept from one call to the next (zeros when first made).

        Only the layer itself ever sees these arrays (``cols`` goes into the backward cache, and
        the next forward, which overwrites it, replaces that cache anyway). Fresh multi-MB
        temporaries on every step let glibc's malloc return the memory to the OS and fault it
        in again on the next step: in the small-CNN benchmark process (xpnet bench), the
        step took 38-41 ms with 4,200-4,700 page faults per step when these were fresh arrays,
        and 27-29 ms with none with them (Caffe keeps its im2col buffer for the same reason).
        A new shape, dtype, device or array type gets a new buffer.
        """
        buf = self._scratch.get(name)
        if (buf is None or tuple(buf.shape) != shape or buf.dtype != like.dtype or buf.device != like.device
                or type(buf) is not type(like)):
            make = xp.zeros if zero else xp.empty
            buf = self._scratch[name] = make(shape, dtype=like.dtype, device=like.device)
        return buf

    def _geometry(self, shape):
        """Everything both passes need to know about the layout, after checking that the kernel fits.

        ``(n, c, h, w, oh, ow, wb, shift, rows, bw, top, left)``: ``wb`` is the width of the
        computed output rows (``OW`` with the windowed method, where they are exact); the input
        buffer is ``rows x bw`` per channel and sample, with the input at ``[top:top+H, left:left+W]``.

        The shift method stores no padding columns: ``bw = wb``, ``left = 0``, and slack rows
        above (the first run starts up to ``pad_left`` entries early) and below (the last run
        overhangs by up to ``dw (KW - 1) - pad_left``).
        """
        n, c, h, wd = shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        pt, pb, pl, pr = self._pads
        hp, wp = h + pt + pb, wd + pl + pr
        eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1  # the kernel's extent once dilated
        if eh > hp or ew > wp:
            raise ValueError(
                f"{self._tag()}: kernel_size {self.kernel_size} with dilation {self.dilation} spans "
                f"{eh}x{ew}, larger than the padded input {hp}x{wp} (input {h}x{wd} plus padding "
                f"{pt}+{pb}, {pl}+{pr})"
            )
        oh, ow = out_size(hp, kh, sh, 0, dh), out_size(wp, kw, sw, 0, dw)
        if (sh, sw) == (1, 1):
            # Rows as wide as the output or the input, whichever is wider: the columns of the
            # left/right padding are not stored (the wrapped entries are zeroed instead).
            wb = max(wd, ow)
            if wb - ow <= self._shift_max_waste * ow:
                front = -(-pl // wb)  # ceil: enough slack for the left padding of the first row
                back = -(-max(0, dw * (kw - 1) - pl) // wb)  # and for the last run's overhang
                return n, c, h, wd, oh, ow, wb, True, front + hp + back, wb, front + pt, 0
        return n, c, h, wd, oh, ow, ow, False, hp, wp, pt, pl

    def _starts(self, geo):
        """Shift method: where offset (i, j)'s run starts in a sample's flattened buffer."""
        wb, front = geo[6], geo[10] - self._pads[0]
        (kh, kw), (dh, dw), pl = self.kernel_size, self.dilation, self._pads[2]
        return [(front + i * dh) * wb + j * dw - pl for i in range(kh) for j in range(kw)]

    def _wrapped(self, geo):
        """Shift method: ``(j, lo, hi)``: at output columns ``lo:hi``, kernel column ``j`` reads
        outside the input (``b + j dw - pad_left`` not in ``[0, W)``), i.e. padding, which the
        buffer does not store: the run holds a neighbouring row's entries there. The same columns
        for every kernel row ``i``: blocks ``k = j, j + KW, ...``."""
        wd, wb = geo[3], geo[6]
        kw, dw, pl = self.kernel_size[1], self.dilation[1], self._pads[2]
        out = []
        for j in range(kw):
            left = min(wb, max(0, pl - j * dw))  # b < pl - j dw reads column < 0
            right = max(left, min(wb, wd + pl - j * dw))  # b >= W + pl - j dw reads column >= W
            if left:
                out.append((j, 0, left))
            if right < wb:
                out.append((j, right, wb))
        return out

    def _matmul(self, xp, a, b):
        """``a (O, K) @ b (C*KK, m)`` per group: ``(O, m)``."""
        g = self.groups
        if g == 1:
            return a @ b
        o = a.shape[0]
        return xp.reshape(xp.reshape(a, (g, o // g, a.shape[1])) @ xp.reshape(b, (g, b.shape[0] // g, b.shape[1])),
                          (o, b.shape[1]))

    @staticmethod
    def _nchw(xp, t):
        """``t (A, N, H, W)`` -> a fresh C-contiguous ``(N, A, H, W)`` array."""
        out = xp.empty((t.shape[1], t.shape[0], t.shape[2], t.shape[3]), dtype=t.dtype, device=t.device)
        out[...] = xp.permute_dims(t, (1, 0, 2, 3))
        return out

    # -- backward ------------------------------------------------------------------------
    def backward(self, dy, input_grad: bool = True):
        cache = self._cache
        if cache is None:
            raise no_forward_error(self._tag())
        self._cache = None
        cols, geo = cache
        del cache
        n, c, h, wd, oh, ow, wb, shift, rows, bw, top, left = geo
        o, g = self.out_channels, self.groups
        if tuple(dy.shape) != (n, o, oh, ow):
            raise ValueError(
                f"{self._tag()}.backward expected dy of shape ({n}, {o}, {oh}, {ow}), got {shape_str(dy.shape)}"
            )
        xp = backends.namespace_of(dy)
        # dy channels first, with zeros in the columns that forward computed and cropped
        if wb != ow:
            dyc = self._work(xp, "dy", (o, n, oh, wb), dy)  # the cropped columns stay zero
            dyc[:, :, :, :ow] = xp.permute_dims(dy, (1, 0, 2, 3))
        else:
            dyc = xp.permute_dims(dy, (1, 0, 2, 3))  # made contiguous by the reshape below: one copy
        m = n * oh * wb
        dyc = xp.reshape(dyc, (o, m))
        if self.bias is not None:
            self.bias.accumulate(xp.sum(dyc, axis=1))
        kh, kw = self.kernel_size
        kk = kh * kw
        if g == 1:
            dw = dyc @ cols.T
        else:
            dw = xp.reshape(dyc, (g, o // g, m)) @ xp.matrix_transpose(xp.reshape(cols, (g, c // g * kk, m)))
        self.weight.accumulate(xp.reshape(dw, (o, c // g, kh, kw)))
        del cols, dw
        if not input_grad:
            return None

        w2 = xp.reshape(self.weight.data, (o, c // g * kk))
        if g == 1:
            dcols = w2.T @ dyc
        else:
            dcols = xp.reshape(xp.reshape(w2, (g, o // g, c // g * kk)).mT @ xp.reshape(dyc, (g, o // g, m)), (c * kk, m))
        del dyc
        dcols = xp.reshape(dcols, (c, kk, n, oh, wb))
        # col2im: each offset's block added back where forward took it from (the adjoint)
        if shift:
            for j, lo, hi in self._wrapped(geo):
                dcols[:, j::kw, :, :, lo:hi] = 0.0  # zeros in forward (padding): no gradient flows back
            run = oh * wb
            dflat = self._work(xp, "dx", (c, n, rows * bw), dy, zero=False)
            dflat[...] = 0.0
            for k, s in enumerate(self._starts(geo)):
                dflat[:, :, s:s + run] += xp.reshape(dcols[:, k, :, :, :], (c, n, run))
            dbuf = xp.reshape(dflat, (c, n, rows, bw))
        else:
            (sh, sw), (dh, dwd) = self.stride, self.dilation
            dbuf = self._work(xp, "dx", (c, n, rows, bw), dy, zero=False)
            dbuf[...] = 0.0
            for i in range(kh):
                for j in range(kw):
                    a, b = i * dh, j * dwd
                    dbuf[:, :, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw] += dcols[:, i * kw + j, :, :, :]
        del dcols
        return self._nchw(xp, dbuf[:, :, top:top + h, left:left + wd])

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
