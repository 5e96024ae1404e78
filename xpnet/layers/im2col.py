"""im2col and col2im in any number of spatial dimensions: the input's kernel windows as the
columns of one matrix, for the convolutions (``Conv1d/2d/3d`` and their transposes).

Layout. A 1-D problem is lifted to 2-D (a unit axis in front: ``(N, C, L)`` is ``(N, C, 1, L)``),
so the work arrays always have ``S >= 2`` spatial axes. The columns are ``(C, K, N, *grid)``,
flattened to ``(C*K, N*prod(grid))``: rows ``(c, k)`` in the weight's order (``k`` runs over the
kernel offsets, last axis fastest), so that a group of channels is one block of rows and the
product ``W (O, C/G*K) @ cols`` is channels first, ``(O, N, *grid)``. The ``grid`` is the output's
shape with its last axis ``WB >= OW`` wide: columns ``OW:WB`` are computed, then cropped.

Two ways to fill them, chosen by :func:`geometry`:

- stride 1, "shift": the input sits channels first in a zero buffer whose last two axes are
  ``rows x WB`` with ``WB = max(W, OW)`` and no left/right padding columns (the other axes hold
  their padding). Flattening those two axes, kernel offset ``(.., i, j)`` reads, for each
  position of the leading output axes, ONE contiguous run of ``OH * WB`` entries, starting
  ``(i dh) WB + j dw - pad_left`` after the first output row's origin (:attr:`Geometry.starts`).
  Where ``b + j dw - pad_left`` falls outside ``[0, W)`` the run has wrapped into the
  neighbouring row: those few columns of the block are zeroed, since they stand for padding
  (:attr:`Geometry.wrapped`). Long contiguous copies and slice-adds, and no GEMM work on
  padding columns (with ``padding="same"``, ``WB = OW``: none wasted).
- any stride (or when ``WB - OW`` would waste more than ``max_waste`` of the GEMM work, or the
  output counts are imposed): the ``K`` strided windows of the padded input, which copy in
  short runs. Also for a 1-D problem, whose stride-1 windows are single contiguous runs
  already (measured on Conv1d 64 -> 64, length 256, kernel 5: 6% faster than the shift method).

col2im is the adjoint: each offset's block of ``dcols`` is added back where im2col read it, in
a zero buffer (slice-adds), which is then cropped to the input's shape. :func:`to_grid` and
:func:`from_grid` move an output-shaped array into and out of the grid layout.

Large work arrays (the padded input, the columns, the gradient buffers) come from a
:class:`Workspace` kept by the layer from one call to the next.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

from ._spatial import out_size

_ALL = slice(None)


class Geometry(NamedTuple):
    """Everything im2col and col2im need to know about one input shape.

    The input is ``(n, c, *size)``; ``kernel``, ``stride``, ``dilation`` and ``pads`` (one
    ``(before, after)`` pair per axis) describe the windows, ``out`` the output positions per
    axis. These six are over the LIFTED axes (``lifted``: a 1-D problem with a unit axis in
    front); :attr:`spatial_out` is the output shape as the caller sees it.

    The work layout: ``buf`` is the buffer's shape per channel and sample, with the input at
    offsets ``at``; ``wb`` the width of the computed output rows (``out[-1]`` with the windowed
    method, where they are exact). The shift method stores no left/right padding columns
    (``at[-1] = 0``) and has slack rows above (the first run starts up to ``pad_left`` entries
    early) and below (the last run overhangs by up to ``dw (kw - 1) - pad_left``).
    """

    n: int
    c: int
    size: tuple
    out: tuple
    kernel: tuple
    stride: tuple
    dilation: tuple
    pads: tuple
    lifted: bool
    shift: bool
    wb: int
    buf: tuple
    at: tuple
    #: shift method: where offset ``(i, j)`` of the last two kernel axes starts its run in a
    #: flattened ``rows x wb`` plane
    starts: tuple
    #: shift method: ``(j, lo, hi)``: at output columns ``lo:hi``, kernel column ``j`` reads
    #: outside the input (``b + j dw - pad_left`` not in ``[0, w)``), i.e. padding, which the
    #: buffer does not store: the run holds a neighbouring row's entries there. The same
    #: columns for every other kernel index: blocks ``k = j, j + kw, ...``
    wrapped: tuple

    #: derived once per shape (the layer keeps its last geometry): the number of kernel
    #: offsets ``kk``; ``grid``, the computed output per channel and sample, ``(*out[:-1], wb)``;
    #: ``m``, the number of columns, ``n * prod(grid)``; ``region``, the input's index in the
    #: ``(C, N, *buf)`` buffer; ``windows``, each kernel offset's index (weight order) into the
    #: buffer: a strided window, or with the shift method a run of the view ``(C, N, *flat)``
    #: whose last axis is the buffer's last two
    kk: int
    grid: tuple
    m: int
    region: tuple
    windows: tuple
    flat: tuple

    @property
    def spatial_out(self) -> tuple:
        """The output's spatial shape, unlifted."""
        return self.out[1:] if self.lifted else self.out


def geometry(tag, shape, kernel, stride, dilation, pads, max_waste, out=None) -> Geometry:
    """The :class:`Geometry` of an ``(N, C, *size)`` input ``shape``, after checking that the
    dilated kernel fits the padded input (``ValueError`` naming ``tag`` otherwise).

    ``pads``: ``((before, after), ...)`` per axis. ``out``: output counts to use instead of
    those the sizes give (no larger: a transposed convolution's, whose output padding adds rows
    that no window starts in). The shift method is taken at stride 1 unless its wasted output
    columns, ``WB - OW``, would exceed ``max_waste * OW``.
    """
    n, c, *size = shape
    padded = [s + lo + hi for s, (lo, hi) in zip(size, pads)]
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]  # the kernel's extent once dilated
    if any(e > p for e, p in zip(extent, padded)):
        x = "x".join
        raise ValueError(
            f"{tag}: kernel_size {tuple(kernel)} with dilation {tuple(dilation)} spans {x(map(str, extent))}, larger "
            f"than the padded input {x(map(str, padded))} (input {x(map(str, size))} plus padding "
            f"{', '.join(f'{lo}+{hi}' for lo, hi in pads)})"
        )
    counts = tuple(out_size(p, k, s, 0, d) for p, k, s, d in zip(padded, kernel, stride, dilation))
    imposed = out is not None and tuple(out) != counts
    if out is not None:
        counts = tuple(out)
    lifted = len(size) == 1
    if lifted:
        size, counts, padded = [1] + size, (1,) + counts, [1] + padded
        kernel, stride, dilation, pads = (1, *kernel), (1, *stride), (1, *dilation), ((0, 0), *pads)
    common = dict(n=n, c=c, size=tuple(size), out=counts, kernel=tuple(kernel), stride=tuple(stride),
                  dilation=tuple(dilation), pads=tuple(tuple(p) for p in pads), lifted=lifted)
    if all(s == 1 for s in stride) and not imposed and not lifted:  # 1-D: its windows are contiguous already
        # Rows as wide as the output or the input, whichever is wider: the columns of the
        # left/right padding are not stored (the wrapped entries are zeroed instead).
        w, ow, (kh, kw), (dh, dw) = size[-1], counts[-1], kernel[-2:], dilation[-2:]
        wb = max(w, ow)
        if wb - ow <= max_waste * ow:
            pl = pads[-1][0]
            front = -(-pl // wb)  # ceil: enough slack for the left padding of the first row
            back = -(-max(0, dw * (kw - 1) - pl) // wb)  # and for the last run's overhang
            # offset (i, j) starts i dh rows below the first output row's origin, j dw - pad_left across
            starts = tuple((front + i * dh) * wb + j * dw - pl for i in range(kh) for j in range(kw))
            buf = tuple(padded[:-2]) + (front + padded[-2] + back, wb)
            at = tuple(lo for lo, _ in pads[:-2]) + (front + pads[-2][0], 0)
            return _derived(dict(common, shift=True, wb=wb, buf=buf, at=at, starts=starts,
                                 wrapped=_wrapped(w, wb, kw, dw, pl)))
    return _derived(dict(common, shift=False, wb=counts[-1], buf=tuple(padded), at=tuple(lo for lo, _ in pads),
                         starts=(), wrapped=()))


def _derived(f) -> Geometry:
    """The Geometry of the fields ``f``, its derived fields added."""
    out, wb = f["out"], f["wb"]
    grid = out[:-1] + (wb,)
    region = (_ALL, _ALL) + tuple(slice(a, a + s) for a, s in zip(f["at"], f["size"]))
    if f["shift"]:
        run = out[-2] * wb
        lead = [(_ALL, _ALL) + tuple(slice(i * d, i * d + o) for i, d, o in zip(idx, f["dilation"], out))
                for idx in itertools.product(*map(range, f["kernel"][:-2]))]  # the leading axes: stride 1 windows
        windows = tuple(ix + (slice(s, s + run),) for ix in lead for s in f["starts"])
        flat = f["buf"][:-2] + (f["buf"][-2] * f["buf"][-1],)
    else:
        windows = tuple((_ALL, _ALL) + tuple(slice(i * d, i * d + s * (o - 1) + 1, s)
                                             for i, d, s, o in zip(idx, f["dilation"], f["stride"], out))
                        for idx in itertools.product(*map(range, f["kernel"])))
        flat = f["buf"]
    return Geometry(**f, kk=math.prod(f["kernel"]), grid=grid, m=f["n"] * math.prod(grid), region=region,
                    windows=windows, flat=flat)


def _wrapped(w, wb, kw, dw, pl):
    """:attr:`Geometry.wrapped`."""
    out = []
    for j in range(kw):
        lo = min(wb, max(0, pl - j * dw))  # b < pl - j dw reads column < 0
        hi = max(lo, min(wb, w + pl - j * dw))  # b >= w + pl - j dw reads column >= w
        if lo:
            out.append((j, 0, lo))
        if hi < wb:
            out.append((j, hi, wb))
    return tuple(out)


class Workspace:
    """Named work buffers, kept from one call to the next (zeros when first made).

    Fresh multi-MB temporaries on every step let glibc's malloc return the memory to the OS and
    fault it in again on the next step: in the small-CNN benchmark process (xpnet bench), the
    step took 38-41 ms with 4,200-4,700 page faults per step when these were fresh arrays, and
    27-29 ms with none with them (Caffe keeps its im2col buffer for the same reason). A new
    shape, dtype, device or array type gets a new buffer.
    """

    def __init__(self):
        self._bufs = {}

    def get(self, xp, name, shape, like, zero=True, fresh=False):
        """The buffer ``name`` of ``shape`` with ``like``'s dtype, device and array type;
        ``fresh``: a new array that the workspace does not keep (the kept one is in use)."""
        buf = None if fresh else self._bufs.get(name)
        if (buf is None or tuple(buf.shape) != shape or buf.dtype != like.dtype or buf.device != like.device
                or type(buf) is not type(like)):
            buf = (xp.zeros if zero else xp.empty)(shape, dtype=like.dtype, device=like.device)
            if not fresh:
                self._bufs[name] = buf
        return buf


def _lift(xp, x, geo):
    return xp.expand_dims(x, axis=2) if geo.lifted else x


def _channels_first(xp, x):
    """``(N, C, *S)`` -> a ``(C, N, *S)`` view."""
    return xp.permute_dims(x, (1, 0) + tuple(range(2, x.ndim)))


def im2col(xp, x, geo: Geometry, ws: Workspace, fresh=False):
    """The columns ``(C*K, N*prod(grid))`` of ``x (N, C, *size)`` (layout in the module doc).

    They are the workspace's ``"cols"`` buffer, overwritten by the next call, unless ``fresh``
    (a new array: for a caller that still holds the previous columns).
    """
    c, n = geo.c, geo.n
    # The input, channels first, in a zero buffer (the transpose rides on this one copy); only
    # the input's region is written, so the padding stays zero from one call to the next.
    buf = ws.get(xp, "x-shift" if geo.shift else "x-window", (c, n) + geo.buf, x)
    buf[geo.region] = _channels_first(xp, _lift(xp, x, geo))
    src = xp.reshape(buf, (c, n) + geo.flat) if geo.shift else buf
    blocks = [src[ix] for ix in geo.windows]
    del buf, src
    cols = ws.get(xp, "cols", (c, geo.kk) + tuple(blocks[0].shape[1:]), x, zero=False, fresh=fresh)
    for k, block in enumerate(blocks):  # every entry is written
        cols[:, k, ...] = block
    del blocks
    cols = xp.reshape(cols, (c, geo.kk, n) + geo.grid)
    kw = geo.kernel[-1]
    for j, lo, hi in geo.wrapped:
        cols[:, j::kw, ..., lo:hi] = 0.0
    return xp.reshape(cols, (c * geo.kk, geo.m))


def col2im(xp, dcols, geo: Geometry, ws: Workspace):
    """The adjoint of :func:`im2col`: ``dcols (C*K, N*prod(grid))`` -> a fresh ``dx (N, C, *size)``.

    ``dcols`` is used as scratch (its wrapped columns are zeroed).
    """
    c, n, kw = geo.c, geo.n, geo.kernel[-1]
    dcols = xp.reshape(dcols, (c, geo.kk, n) + geo.grid)
    for j, lo, hi in geo.wrapped:
        dcols[:, j::kw, ..., lo:hi] = 0.0  # zeros in forward (padding): no gradient flows back
    dbuf = ws.get(xp, "dx", (c, n) + geo.flat, dcols, zero=False)
    dbuf[...] = 0.0
    for k, ix in enumerate(geo.windows):
        block = dcols[:, k, ...]
        dbuf[ix] += xp.reshape(block, (c, n) + geo.out[:-2] + (geo.out[-2] * geo.wb,)) if geo.shift else block
    if geo.shift:
        dbuf = xp.reshape(dbuf, (c, n) + geo.buf)
    return _unlift(xp, batch_first(xp, dbuf[geo.region]), geo)


def _unlift(xp, t, geo):
    """``t (N, A, 1, L)`` -> ``(N, A, L)`` for a lifted 1-D problem (a view of a contiguous array)."""
    return xp.reshape(t, tuple(t.shape[:2]) + tuple(t.shape[3:])) if geo.lifted else t


def to_grid(xp, t, geo: Geometry, ws: Workspace, name, fresh=False):
    """``t (N, A, *spatial_out)`` as ``(A, N*prod(grid))``: channels first, rows ``wb`` wide with
    zeros in the columns past the output (the layout of ``W @ cols``). A copy: the workspace's
    buffer ``name`` (or a new array with ``fresh``) when the rows are wider than the output."""
    a = t.shape[1]
    t = _channels_first(xp, _lift(xp, t, geo))
    ow = geo.out[-1]
    if geo.wb != ow:
        g = ws.get(xp, name, (a, geo.n) + geo.grid, t, zero=False, fresh=fresh)
        g[..., ow:] = 0.0
        g[..., :ow] = t
        t = g
    return xp.reshape(t, (a, geo.m))  # a transposed view: this reshape is its one copy


def from_grid(xp, y, geo: Geometry):
    """The inverse of :func:`to_grid`: ``y (A, N*prod(grid))`` -> a fresh ``(N, A, *spatial_out)``."""
    y = xp.reshape(y, (y.shape[0], geo.n) + geo.grid)
    if geo.wb != geo.out[-1]:
        y = y[..., :geo.out[-1]]
    return _unlift(xp, batch_first(xp, y), geo)


def grouped_matmul(xp, a, b, groups, ta=False, tb=False):
    """``op(a) @ op(b)`` per group, ``op`` a transpose where ``ta``/``tb``: the operands' rows
    (columns when transposed) split into ``groups`` consecutive blocks, block ``g`` of the
    result from block ``g`` of each; results stacked along the rows. One plain matmul when
    ``groups == 1``."""
    if groups == 1:
        return (a.T if ta else a) @ (b.T if tb else b)
    a3 = xp.reshape(a, (groups, a.shape[0] // groups, a.shape[1]))
    b3 = xp.reshape(b, (groups, b.shape[0] // groups, b.shape[1]))
    r = (xp.matrix_transpose(a3) if ta else a3) @ (xp.matrix_transpose(b3) if tb else b3)
    return xp.reshape(r, (groups * r.shape[1], r.shape[2]))


def batch_first(xp, t):
    """``t (A, N, *S)`` -> a fresh C-contiguous ``(N, A, *S)`` array."""
    out = xp.empty((t.shape[1], t.shape[0]) + tuple(t.shape[2:]), dtype=t.dtype, device=t.device)
    out[...] = _channels_first(xp, t)
    return out
