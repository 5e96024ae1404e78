"""Converters of InstanceNorm1d/2d/3d, GroupNorm, RMSNorm and LocalResponseNorm, at inference
(BatchNorm and LayerNorm: :mod:`xpnet.onnx.normalization`, whose helpers these share).

- ``InstanceNorm*d``: ``InstanceNormalization`` (scale ones and bias zeros where the layer has
  none); with running statistics (``track_running_stats``, which eval mode uses),
  ``BatchNormalization`` with them. An unbatched input gets an ``Unsqueeze`` before and a
  ``Squeeze`` after.
- ``GroupNorm``: ``Reshape`` to ``(N, G, -1)``, the standardization from ``ReduceMean``, ``Sub``,
  ``Mul``, ``Sqrt`` and ``Div`` over the last axis, ``Reshape`` back to the input's shape, then
  the per-channel affine map (ONNX's own ``GroupNormalization`` changed its scale's meaning in
  opset 21: not used).
- ``RMSNorm``: ``x / sqrt(ReduceMean(x * x) + eps) * weight`` over the last
  ``len(normalized_shape)`` axes (``eps=None``: the eps of the dtype computed in, as xpnet).
- ``LocalResponseNorm``: the window sum over channels as one ``MatMul`` by a 0/1 band matrix
  (ONNX's ``LRN`` centres an even window on the other side than torch), then
  ``x / (k + alpha / size * sum) ** beta``.
"""

from __future__ import annotations

from ... import backends
from ... import layers as L
from ..graph import Value
from ..normalization import _affine, _param_or_filled, _standardize, _with_running_stats
from ..registry import converter


@converter(L.InstanceNorm1d)
@converter(L.InstanceNorm2d)
@converter(L.InstanceNorm3d)
def _instance_norm(g, layer, path, x):
    y = g.run(layer, path, x)
    unbatched = x.ndim == layer._spatial + 1
    xin = g.unsqueeze(x.name, [0], path) if unbatched else x.name
    c = x.shape[0 if unbatched else 1]
    if layer.running_mean is not None:
        out = _with_running_stats(g, layer, path, xin, c)
    else:
        scale, bias = (_param_or_filled(g, layer, path, a, v, (c,)) for a, v in (("weight", 1.0), ("bias", 0.0)))
        out = g.node("InstanceNormalization", [xin, scale, bias], path, epsilon=layer.eps)
    return Value(g.squeeze(out, [0], path) if unbatched else out, *y)


@converter(L.GroupNorm)
def _group_norm(g, layer, path, x):
    y = g.run(layer, path, x)
    grouped = g.node("Reshape", [x.name, g.ints(f"{path}/groups", [0, layer.num_groups, -1])], path)
    xhat = _standardize(g, grouped, [2], layer.eps, path)
    xhat = g.node("Reshape", [xhat, g.node("Shape", [x.name], path)], path)
    return Value(_affine(g, layer, xhat, path, (x.shape[1],) + (1,) * (x.ndim - 2)), *y)


@converter(L.RMSNorm)
def _rms_norm(g, layer, path, x):
    y = g.run(layer, path, x)
    k = len(layer.normalized_shape)
    eps = layer.eps
    if eps is None:  # the eps of the dtype computed in: float32 for float16/bfloat16 nets
        be = backends.get("numpy")
        eps = float(be.xp.finfo(be.dtype("float64" if g.dtype == "float64" else "float32")).eps)
    ms = g.reduce_mean(g.node("Mul", [x.name, x.name], path), list(range(x.ndim - k, x.ndim)), path)
    rms = g.node("Sqrt", [g.node("Add", [ms, g.const(f"{path}/eps", [eps], shape=[])], path)], path)
    return Value(_affine(g, layer, g.node("Div", [x.name, rms], path), path), *y)


@converter(L.LocalResponseNorm)
def _local_response_norm(g, layer, path, x):
    y = g.run(layer, path, x)
    c, n = x.shape[1], layer.size
    # band[i, j] = 1 where channel j is in channel i's window [i - n // 2, i + (n - 1) // 2]
    band = [1.0 if -(n // 2) <= j - i <= (n - 1) // 2 else 0.0 for i in range(c) for j in range(c)]
    sq = g.node("Mul", [x.name, x.name], path)
    if x.ndim > 3:
        sq = g.node("Reshape", [sq, g.ints(f"{path}/rows", [0, c, -1])], path)
    s = g.node("MatMul", [g.const(f"{path}/band", band, shape=[c, c]), sq], path)
    if x.ndim > 3:
        s = g.node("Reshape", [s, g.node("Shape", [x.name], path)], path)
    d = g.node("Add", [g.node("Mul", [s, g.const(f"{path}/alpha", [layer.alpha / n], shape=[])], path),
                       g.const(f"{path}/k", [float(layer.k)], shape=[])], path)
    d = g.node("Pow", [d, g.const(f"{path}/beta", [float(layer.beta)], shape=[])], path)
    return Value(g.node("Div", [x.name, d], path), *y)
