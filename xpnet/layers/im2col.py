"""im2col and col2im for Conv2d: the input's kernel windows as the columns of one matrix.

Layout: the columns are ``(C, KH*KW, N, OH, WB)`` (flattened to ``(C*KH*KW, N*OH*WB)``), rows
``(c, i, j)`` in the weight's order, so that a group of channels is one block of rows and the
product ``W (O, C/G*KH*KW) @ cols`` is already channels-first ``(O, N, OH, WB)``. ``WB >= OW``
is the width of the computed output rows; columns ``OW:WB`` are cropped afterwards.

Two ways to fill them, chosen by :func:`geometry`:

- stride 1, "shift": the input sits channels first in a zero buffer of rows ``WB = max(W, OW)``
  wide, without the left/right padding columns; flattened per sample, kernel offset ``(i, j)``
  reads ONE contiguous run of ``OH * WB`` entries, starting ``(i dh) WB + j dw - pad_left``
  after the first output row's origin (:attr:`Geometry.starts`). Where ``b + j dw - pad_left``
  falls outside ``[0, W)`` the run has wrapped into the neighbouring row: those few columns of
  the block are zeroed, since they stand for padding (:attr:`Geometry.wrapped`). Long
  contiguous copies and slice-adds, and no GEMM work on padding columns (with
  ``padding="same"``, ``WB = OW``: none wasted).
- any stride (or when ``WB - OW`` would waste more than ``max_waste`` of the GEMM work): the
  ``KH*KW`` strided windows of the padded input (``_spatial.window``), which copy in short runs.

col2im is the adjoint: each offset's block of ``dcols`` is added back where im2col read it, in
a zero buffer (slice-adds), which is then cropped to the input's shape.

Large work arrays (the padded input, the columns, the gradient buffers) come from a
:class:`Workspace` kept by the layer from one call to the next.
"""

from __future__ import annotations

from typing import NamedTuple

from ._spatial import out_size, window


class Geometry(NamedTuple):
    """Everything im2col and col2im need to know about one input shape.

    The input is ``(n, c, h, w)``, the output ``(n, O, oh, ow)``; the kernel ``kh x kw`` with
    stride ``(sh, sw)``, dilation ``(dh, dw)`` and padding ``pads = (top, bottom, left, right)``.
    ``wb`` is the width of the computed output rows (``ow`` with the windowed method, where
    they are exact). The input buffer is ``rows x bw`` per channel and sample, with the input at
    ``[top:top+h, left:left+w]``. The shift method stores no padding columns: ``bw = wb``,
    ``left = 0``, and slack rows above (the first run starts up to ``pad_left`` entries early)
    and below (the last run overhangs by up to ``dw (kw - 1) - pad_left``).
    """

    n: int
    c: int
    h: int
    w: int
    oh: int
    ow: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pads: tuple
    wb: int
    shift: bool
    rows: int
    bw: int
    top: int
    left: int

    #: shift method: where offset ``(i, j)``'s run starts in a sample's flattened buffer
    starts: tuple
    #: shift method: ``(j, lo, hi)``: at output columns ``lo:hi``, kernel column ``j`` reads
    #: outside the input (``b + j dw - pad_left`` not in ``[0, w)``), i.e. padding, which the
    #: buffer does not store: the run holds a neighbouring row's entries there. The same
    #: columns for every kernel row ``i``: blocks ``k = j, j + kw, ...``
    wrapped: tuple

    @property
    def kk(self) -> int:
        return self.kh * self.kw

    @property
    def m(self) -> int:
        """The number of columns: ``n * oh * wb``."""
        return self.n * self.oh * self.wb


def geometry(tag, shape, kernel, stride, dilation, pads, max_waste) -> Geometry:
    """The :class:`Geometry` of an ``(N, C, H, W)`` input ``shape``, after checking that the
    dilated kernel fits the padded input (``ValueError`` naming ``tag`` otherwise).

    The shift method is taken at stride 1 unless its wasted output columns, ``WB - OW``, would
    exceed ``max_waste * OW``.
    """
    n, c, h, w = shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    pt, pb, pl, pr = pads
    hp, wp = h + pt + pb, w + pl + pr
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1  # the kernel's extent once dilated
    if eh > hp or ew > wp:
        raise ValueError(
            f"{tag}: kernel_size {tuple(kernel)} with dilation {tuple(dilation)} spans {eh}x{ew}, larger than "
            f"the padded input {hp}x{wp} (input {h}x{w} plus padding {pt}+{pb}, {pl}+{pr})"
        )
    oh, ow = out_size(hp, kh, sh, 0, dh), out_size(wp, kw, sw, 0, dw)
    common = dict(n=n, c=c, h=h, w=w, oh=oh, ow=ow, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw, pads=tuple(pads))
    if (sh, sw) == (1, 1):
        # Rows as wide as the output or the input, whichever is wider: the columns of the
        # left/right padding are not stored (the wrapped entries are zeroed instead).
        wb = max(w, ow)
        if wb - ow <= max_waste * ow:
            front = -(-pl // wb)  # ceil: enough slack for the left padding of the first row
            back = -(-max(0, dw * (kw - 1) - pl) // wb)  # and for the last run's overhang
            # offset (i, j) starts i dh rows below the first output row's origin, j dw - pad_left across
            starts = tuple((front + i * dh) * wb + j * dw - pl for i in range(kh) for j in range(kw))
            return Geometry(**common, wb=wb, shift=True, rows=front + hp + back, bw=wb, top=front + pt, left=0,
                            starts=starts, wrapped=_wrapped(w, wb, kw, dw, pl))
    return Geometry(**common, wb=ow, shift=False, rows=hp, bw=wp, top=pt, left=pl, starts=(), wrapped=())


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


def im2col(xp, x, geo: Geometry, ws: Workspace, fresh=False):
    """The columns ``(C*KH*KW, N*OH*WB)`` of ``x (N, C, H, W)`` (layout in the module doc).

    They are the workspace's ``"cols"`` buffer, overwritten by the next call, unless ``fresh``
    (a new array: for a caller that still holds the previous columns).
    """
    n, c, h, w, oh, ow, wb = geo.n, geo.c, geo.h, geo.w, geo.oh, geo.ow, geo.wb
    # The input, channels first, in a zero buffer (the transpose rides on this one copy); only
    # the input's region is written, so the padding stays zero from one call to the next.
    buf = ws.get(xp, "x-shift" if geo.shift else "x-window", (c, n, geo.rows, geo.bw), x)
    buf[:, :, geo.top:geo.top + h, geo.left:geo.left + w] = xp.permute_dims(x, (1, 0, 2, 3))
    if geo.shift:
        # Offset (i, j) reads one contiguous run of OH * WB entries per sample; its entries that
        # fall outside the input's columns wrapped into a neighbouring row and are zeroed below.
        run = oh * wb
        flat = xp.reshape(buf, (c, n, geo.rows * wb))
        blocks = [flat[:, :, s:s + run] for s in geo.starts]
    else:
        blocks = [window(buf, i * geo.dh, j * geo.dw, oh, ow, geo.sh, geo.sw)
                  for i in range(geo.kh) for j in range(geo.kw)]
    del buf
    cols = ws.get(xp, "cols", (c, geo.kk) + tuple(blocks[0].shape[1:]), x, zero=False, fresh=fresh)
    for k, block in enumerate(blocks):  # every entry is written
        cols[:, k, ...] = block
    del blocks
    cols = xp.reshape(cols, (c, geo.kk, n, oh, wb))
    if geo.shift:
        for j, lo, hi in geo.wrapped:
            cols[:, j::geo.kw, :, :, lo:hi] = 0.0
    return xp.reshape(cols, (c * geo.kk, geo.m))


def col2im(xp, dcols, geo: Geometry, ws: Workspace):
    """The adjoint of :func:`im2col`: ``dcols (C*KH*KW, N*OH*WB)`` -> a fresh ``dx (N, C, H, W)``.

    ``dcols`` is used as scratch (its wrapped columns are zeroed).
    """
    n, c, oh, wb, kw = geo.n, geo.c, geo.oh, geo.wb, geo.kw
    dcols = xp.reshape(dcols, (c, geo.kk, n, oh, wb))
    if geo.shift:
        for j, lo, hi in geo.wrapped:
            dcols[:, j::kw, :, :, lo:hi] = 0.0  # zeros in forward (padding): no gradient flows back
        run = oh * wb
        dflat = ws.get(xp, "dx", (c, n, geo.rows * geo.bw), dcols, zero=False)
        dflat[...] = 0.0
        for k, s in enumerate(geo.starts):
            dflat[:, :, s:s + run] += xp.reshape(dcols[:, k, :, :, :], (c, n, run))
        dbuf = xp.reshape(dflat, (c, n, geo.rows, geo.bw))
    else:
        sh, sw, ow = geo.sh, geo.sw, geo.ow
        dbuf = ws.get(xp, "dx", (c, n, geo.rows, geo.bw), dcols, zero=False)
        dbuf[...] = 0.0
        for i in range(geo.kh):
            for j in range(kw):
                a, b = i * geo.dh, j * geo.dw
                dbuf[:, :, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw] += dcols[:, i * kw + j, :, :, :]
    return nchw(xp, dbuf[:, :, geo.top:geo.top + geo.h, geo.left:geo.left + geo.w])


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


def nchw(xp, t):
    """``t (A, N, H, W)`` -> a fresh C-contiguous ``(N, A, H, W)`` array."""
    out = xp.empty((t.shape[1], t.shape[0], t.shape[2], t.shape[3]), dtype=t.dtype, device=t.device)
    out[...] = xp.permute_dims(t, (1, 0, 2, 3))
    return out
