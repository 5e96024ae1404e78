"""Converters of the 2-D layers: Conv2d and the pools. ONNX's operators take ``(N, C, H, W)``
only: an unbatched ``(C, H, W)`` input gets an ``Unsqueeze`` before and a ``Squeeze`` after.

- ``Conv2d``: ``Conv`` with xpnet's padding (``"same"`` resolved: the odd row/column at the
  bottom/right, as PyTorch), strides, dilations and groups.
- ``MaxPool2d``: ``MaxPool``. With ``ceil_mode`` the last partial windows are made explicit:
  ``Pad`` with ``-inf`` (what xpnet pads with), then a pool without ceil mode, so that no runtime's
  own ceil-mode rule (they differ on a window starting in the padding) is involved.
  ``return_indices=True`` is refused (the output is a pair, and ONNX's indices count over the
  whole tensor, not per plane as torch's and xpnet's).
- ``AvgPool2d``: ``AveragePool`` with ``count_include_pad``. Where the divisor is not one ONNX
  computes (``divisor_override``, or ceil-mode windows with ``count_include_pad=True``, whose
  divisor torch clips to the padded input): ``Pad`` with zeros, an ``AveragePool`` giving
  ``sum / (KH KW)``, then ``Mul`` by ``KH KW / D`` with xpnet's own divisor ``D`` (a scalar or
  an ``(OH, OW)`` array).
- ``AdaptiveAvgPool2d``: ``GlobalAveragePool`` for a 1x1 output; ``AveragePool`` where the
  input size is a multiple of the output size (every window alike); otherwise the mean over
  torch's uneven windows as two matrix products, ``P_h @ x @ P_w^T``, ``P[i, j] = 1 / len(window i)``
  on window ``i``'s positions (exact up to rounding).
"""

from __future__ import annotations

import math

from .. import backends
from .. import layers as L
from ..layers.pooling.adaptive import _adaptive_windows
from .graph import Value
from .ops import child
from .registry import converter, refuse


def _as_4d(g, x, path):
    """``x``'s name as ``(N, C, H, W)`` and whether it came unbatched."""
    if x.ndim == 3:
        return g.unsqueeze(x.name, [0], path), True
    return x.name, False


def _back(g, out, unbatched, path):
    return g.squeeze(out, [0], path) if unbatched else out


def _pad(g, xin, pads, value, path):
    """``xin`` padded on the spatial axes by ``pads = (top, left, bottom, right)`` with ``value``."""
    top, left, bottom, right = pads
    spec = g.ints(f"{path}/pads", [0, 0, top, left, 0, 0, bottom, right])
    return g.node("Pad", [xin, spec, g.const(f"{path}/value", [value], shape=[])], path, mode="constant")


@converter(L.Conv2d)
def _conv2d(g, layer, path, x):
    y = g.run(layer, path, x)
    top, bottom, left, right = layer._pads  # the explicit padding, "same" resolved as the layer does
    xin, unbatched = _as_4d(g, x, path)
    bias = [] if layer.bias is None else [g.param(child(path, "bias"), layer.bias.data)]
    out = g.node("Conv", [xin, g.param(child(path, "weight"), layer.weight.data), *bias], path,
                 kernel_shape=list(layer.kernel_size), strides=list(layer.stride), dilations=list(layer.dilation),
                 pads=[top, left, bottom, right], group=layer.groups)
    return Value(_back(g, out, unbatched, path), *y)


def _window_pads(layer, geo):
    """``(top, left, bottom, right)``: the padding, and the extra that ceil-mode windows reach."""
    ph, pw = layer._p
    return ph, pw, ph + geo.eh, pw + geo.ew


@converter(L.MaxPool2d)
def _max_pool(g, layer, path, x):
    if layer.return_indices:
        raise refuse(path, layer, "return_indices=True gives a pair, and ONNX's MaxPool counts its indices over "
                                  "the whole tensor, not per plane; export a MaxPool2d without return_indices")
    y = g.run(layer, path, x)
    _, _, geo = layer._geometry(x.a)
    pads = _window_pads(layer, geo)
    xin, unbatched = _as_4d(g, x, path)
    if geo.eh or geo.ew:  # ceil mode: the partial windows as explicit -inf padding
        xin, pads = _pad(g, xin, pads, -math.inf, path), (0, 0, 0, 0)
    out = g.node("MaxPool", [xin], path, kernel_shape=list(layer._k), strides=list(layer._s),
                 dilations=list(layer._d), pads=list(pads))
    return Value(_back(g, out, unbatched, path), *y)


@converter(L.AvgPool2d)
def _avg_pool(g, layer, path, x):
    y = g.run(layer, path, x)
    _, _, geo = layer._geometry(x.a)
    pads = _window_pads(layer, geo)
    (kh, kw), strides = layer._k, list(layer._s)
    xin, unbatched = _as_4d(g, x, path)
    if layer.divisor_override is None and not (geo.eh or geo.ew):
        out = g.node("AveragePool", [xin], path, kernel_shape=[kh, kw], strides=strides, pads=list(pads),
                     count_include_pad=int(layer.count_include_pad))
    else:  # sum / (KH KW) over explicitly padded windows, then times KH KW / D with xpnet's divisor D
        if any(pads):
            xin = _pad(g, xin, pads, 0.0, path)
        out = g.node("AveragePool", [xin], path, kernel_shape=[kh, kw], strides=strides)
        xp = backends.namespace_of(x.a)
        divisor = layer._divisor(xp, geo, x.a.dtype, x.a.device)
        if isinstance(divisor, float):
            factor = g.const(f"{path}/scale", [kh * kw / divisor], shape=[])
        else:
            factor = g.param(f"{path}/scale", (kh * kw) / divisor)
        out = g.node("Mul", [out, factor], path)
    return Value(_back(g, out, unbatched, path), *y)


@converter(L.AdaptiveAvgPool2d)
def _adaptive_avg_pool(g, layer, path, x):
    y = g.run(layer, path, x)
    (h, w), (oh, ow) = x.shape[-2:], tuple(int(s) for s in y[0].shape[-2:])
    if (oh, ow) == (1, 1) or (h % oh == 0 and w % ow == 0):
        xin, unbatched = _as_4d(g, x, path)
        if (oh, ow) == (1, 1):
            out = g.node("GlobalAveragePool", [xin], path)
        else:  # every window alike: a plain pool
            k = [h // oh, w // ow]
            out = g.node("AveragePool", [xin], path, kernel_shape=k, strides=k)
        return Value(_back(g, out, unbatched, path), *y)
    rows = g.const(f"{path}/rows", _window_matrix(h, oh), shape=[oh, h])        # (OH, H)
    cols = g.const(f"{path}/cols_T", _window_matrix(w, ow, True), shape=[w, ow])  # (W, OW)
    out = g.node("MatMul", [rows, g.node("MatMul", [x.name, cols], path)], path)
    return Value(out, *y)


def _window_matrix(size, out, transposed=False):
    """The flat ``(out, size)`` matrix (``(size, out)`` if ``transposed``) averaging each of
    torch's adaptive windows along one axis."""
    m = [[0.0] * size for _ in range(out)]
    for i, (a, b) in enumerate(_adaptive_windows(size, out)):
        for j in range(a, b):
            m[i][j] = 1.0 / (b - a)
    if transposed:
        m = [list(col) for col in zip(*m)]
    return [v for row in m for v in row]
