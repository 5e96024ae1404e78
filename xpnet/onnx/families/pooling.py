"""Converters of the pools (:mod:`xpnet.layers.pooling`), over 1, 2 or 3 spatial axes. ONNX's
pooling operators take batched input only: an unbatched input gets an ``Unsqueeze`` before and a
``Squeeze`` after.

- ``MaxPool1d/2d/3d``: ``MaxPool``. With ``ceil_mode`` the last partial windows are made
  explicit: ``Pad`` with ``-inf`` (what xpnet pads with), then a pool without ceil mode, so that
  no runtime's own ceil-mode rule (they differ on a window starting in the padding) is involved.
  ``return_indices=True`` is refused (the output is a pair, and ONNX's indices count over the
  whole tensor, not per plane as torch's and xpnet's).
- ``AvgPool1d/2d/3d``: ``AveragePool`` with ``count_include_pad``. Where the divisor is not one
  ONNX computes (``divisor_override``, or ceil-mode windows, whose divisor torch clips to the
  padded input): ``Pad`` with zeros, an ``AveragePool`` giving ``sum / prod(k)``, then ``Mul``
  by ``prod(k) / D`` with xpnet's own divisor ``D`` (a scalar, or an array of the output's
  spatial shape).
- ``LPPool1d/2d/3d``: torch's formula, ``Pow(K * avg_pool(Pow(x, p)), 1/p)`` with the average
  pool above (no padding, ``count_include_pad``); ``p = inf``: ``MaxPool`` of ``Abs(x)``,
  ``p = -inf``: ``Neg(MaxPool(Neg(Abs(x))))``. (ONNX's ``LpPool`` takes ``|x|`` and integer
  ``p`` only.)
- ``AdaptiveAvgPool1d/2d/3d``: ``GlobalAveragePool`` for an output of size 1; ``AveragePool``
  where every input size is a multiple of the output's (every window alike); otherwise the mean
  over torch's uneven windows, one axis at a time, as a ``MatMul`` by ``P[i, j] = 1 / len(window
  i)`` on window ``i``'s positions (exact up to rounding), the axis moved next to last by a
  ``Transpose`` where it is neither of the last two.
- ``AdaptiveMaxPool1d/2d/3d``: ``GlobalMaxPool``, ``MaxPool`` where the sizes divide, otherwise
  per axis one ``Slice`` and ``ReduceMax`` per window and a ``Concat``. ``return_indices=True``
  is refused, as for the max pools.
- ``FractionalMaxPool2d/3d``: refused (:data:`~xpnet.onnx.registry.REFUSED`).
"""

from __future__ import annotations

import math

from ... import backends
from ... import layers as L
from ...layers.pooling.adaptive import _adaptive_windows
from ...layers.pooling.avg import window_divisor
from ..graph import Value
from ..registry import REFUSED, converter, refuse
from ..spatial import _back

_MAX = (L.MaxPool1d, L.MaxPool2d, L.MaxPool3d)
_AVG = (L.AvgPool1d, L.AvgPool2d, L.AvgPool3d)
_LP = (L.LPPool1d, L.LPPool2d, L.LPPool3d)
_ADAPTIVE_AVG = (L.AdaptiveAvgPool1d, L.AdaptiveAvgPool2d, L.AdaptiveAvgPool3d)
_ADAPTIVE_MAX = (L.AdaptiveMaxPool1d, L.AdaptiveMaxPool2d, L.AdaptiveMaxPool3d)

for _cls in (L.FractionalMaxPool2d, L.FractionalMaxPool3d):
    REFUSED[_cls] = ("its windows are placed at random, drawn anew at every forward (or fixed per sample "
                     "plane by _random_samples, tying the graph to one batch); ONNX has no such operator")


def _batched(g, layer, x, path):
    """``x``'s name with a batch axis, and whether it came without one."""
    if x.ndim == layer.nd + 1:
        return g.unsqueeze(x.name, [0], path), True
    return x.name, False


def _padded(g, xin, begins, ends, value, path):
    """``xin`` padded on its spatial axes by ``begins`` and ``ends`` with ``value``."""
    spec = g.ints(f"{path}/pads", [0, 0, *begins, 0, 0, *ends])
    return g.node("Pad", [xin, spec, g.const(f"{path}/value", [value], shape=[])], path, mode="constant")


def _pads(layer, geo):
    """``(begins, ends)``: the padding, and at the ends the extra that ceil-mode windows reach."""
    return list(layer._p), [p + e for p, e in zip(layer._p, geo.extra)]


def _no_indices(layer, path):
    if layer.return_indices:
        raise refuse(path, layer, "return_indices=True gives a pair, and ONNX's MaxPool counts its indices over "
                                  f"the whole tensor, not per plane; export a {type(layer).__name__} without return_indices")


def _max_nodes(g, layer, path, xin, geo):
    """The max pool of ``layer``'s windows over the batched ``xin``."""
    begins, ends = _pads(layer, geo)
    if any(geo.extra):  # ceil mode: the partial windows as explicit -inf padding
        xin = _padded(g, xin, begins, ends, -math.inf, path)
        begins = ends = [0] * layer.nd
    return g.node("MaxPool", [xin], path, kernel_shape=list(layer._k), strides=list(layer._s),
                  dilations=list(layer._d), pads=begins + ends)


def _avg_nodes(g, layer, path, xin, geo, include_pad, override, like):
    """The average pool of ``layer``'s windows over the batched ``xin``, with torch's divisor
    (``like``: an array of the net's dtype and place, for xpnet's divisor)."""
    begins, ends = _pads(layer, geo)
    if override is None and not any(geo.extra):
        return g.node("AveragePool", [xin], path, kernel_shape=list(layer._k), strides=list(layer._s),
                      pads=begins + ends, count_include_pad=int(include_pad))
    # sum / prod(k) over explicitly padded windows, then times prod(k) / D with xpnet's divisor D
    if any(begins + ends):
        xin = _padded(g, xin, begins, ends, 0.0, path)
    out = g.node("AveragePool", [xin], path, kernel_shape=list(layer._k), strides=list(layer._s))
    size = layer._window_size()
    divisor = window_divisor(layer, backends.namespace_of(like), geo, include_pad, override, like.dtype, like.device)
    if isinstance(divisor, float):
        factor = g.const(f"{path}/scale", [size / divisor], shape=[])
    else:
        factor = g.param(f"{path}/scale", size / divisor)
    return g.node("Mul", [out, factor], path)


def _windowed(body):
    """A converter of a windowed pool from ``body(g, layer, path, xin, geo, x)``, the nodes on the
    batched input."""
    def convert(g, layer, path, x):
        if isinstance(layer, _MAX):
            _no_indices(layer, path)
        y = g.run(layer, path, x)
        _, _, geo = layer._geometry(x.a)
        xin, unbatched = _batched(g, layer, x, path)
        return Value(_back(g, body(g, layer, path, xin, geo, x), unbatched, path), *y)
    return convert


def _max_pool(g, layer, path, xin, geo, x):
    return _max_nodes(g, layer, path, xin, geo)


def _avg_pool(g, layer, path, xin, geo, x):
    return _avg_nodes(g, layer, path, xin, geo, layer.count_include_pad, layer.divisor_override, x.a)


def _lp_pool(g, layer, path, xin, geo, x):
    p = float(layer.norm_type)
    if math.isinf(p):
        a = g.node("Abs", [xin], path)
        if p > 0:
            return _max_nodes(g, layer, path, a, geo)
        return g.node("Neg", [_max_nodes(g, layer, path, g.node("Neg", [a], path), geo)], path)
    q = g.node("Pow", [xin, g.const(f"{path}/p", [p], shape=[])], path)
    s = _avg_nodes(g, layer, path, q, geo, True, None, x.a)
    t = g.node("Mul", [s, g.const(f"{path}/size", [float(layer._window_size())], shape=[])], path)
    return g.node("Pow", [t, g.const(f"{path}/root", [1.0 / p], shape=[])], path)


for _cls, _body in [*((c, _max_pool) for c in _MAX), *((c, _avg_pool) for c in _AVG), *((c, _lp_pool) for c in _LP)]:
    converter(_cls)(_windowed(_body))


def _uniform(g, layer, path, x, size, out, glob, plain):
    """The adaptive pool as ONNX's global pool ``glob`` (output 1 everywhere) or plain pool
    ``plain`` (every size a multiple of the output's), or None where neither computes it."""
    if set(out) == {1}:
        op, attrs = glob, {}
    elif all(n % o == 0 for n, o in zip(size, out)):
        k = [n // o for n, o in zip(size, out)]
        op, attrs = plain, dict(kernel_shape=k, strides=k)
    else:
        return None
    xin, unbatched = _batched(g, layer, x, path)
    return _back(g, g.node(op, [xin], path, **attrs), unbatched, path)


def _adaptive(glob, plain, step):
    """The converter of an adaptive pool: ONNX's global pool ``glob`` or plain pool ``plain``
    where one computes it, else ``step(g, path, cur, rank, axis, n, o)`` for each axis whose
    size ``n`` changes to ``o`` (the last axis first; the pools are separable)."""
    def convert(g, layer, path, x):
        if isinstance(layer, _ADAPTIVE_MAX):
            _no_indices(layer, path)
        y = g.run(layer, path, x)
        nd = layer.nd
        size, out = x.shape[-nd:], tuple(int(s) for s in y[0].shape[-nd:])
        done = _uniform(g, layer, path, x, size, out, glob, plain)
        if done is not None:
            return Value(done, *y)
        cur, rank = x.name, x.ndim
        for d in range(nd - 1, -1, -1):
            if size[d] != out[d]:
                cur = step(g, path, cur, rank, rank - nd + d, size[d], out[d])
        return Value(cur, *y)
    return convert


def _mean_step(g, path, cur, rank, axis, n, o):
    """The means over one axis's windows: a matrix product, the axis moved next to last by a
    ``Transpose`` where it is neither of the last two."""
    if axis == rank - 1:
        return g.node("MatMul", [cur, g.const(f"{path}/window_T", _window_matrix(n, o, True), shape=[n, o])], path)
    perm = list(range(rank))
    perm[axis], perm[rank - 2] = rank - 2, axis
    moved = axis != rank - 2
    if moved:
        cur = g.node("Transpose", [cur], path, perm=perm)
    cur = g.node("MatMul", [g.const(f"{path}/window", _window_matrix(n, o), shape=[o, n]), cur], path)
    return g.node("Transpose", [cur], path, perm=perm) if moved else cur


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


def _reduce_max(g, x, axis, path):
    """The max over ``axis``, kept as a size-1 axis (``axes`` became an input in opset 18)."""
    if g.opset >= 18:
        return g.node("ReduceMax", [x, g.ints(f"{path}/axes", [axis])], path, keepdims=1)
    return g.node("ReduceMax", [x], path, axes=[axis], keepdims=1)


def _max_step(g, path, cur, rank, axis, n, o):
    """The maxima over one axis's windows: one ``Slice`` and ``ReduceMax`` each, concatenated."""
    where = g.ints(f"{path}/axis", [axis])
    parts = [_reduce_max(g, g.node("Slice", [cur, g.ints(f"{path}/start", [a]), g.ints(f"{path}/end", [b]), where], path),
                         axis, path) for a, b in _adaptive_windows(n, o)]
    return g.node("Concat", parts, path, axis=axis)


for _cls in _ADAPTIVE_AVG:
    converter(_cls)(_adaptive("GlobalAveragePool", "AveragePool", _mean_step))
for _cls in _ADAPTIVE_MAX:
    converter(_cls)(_adaptive("GlobalMaxPool", "MaxPool", _max_step))
