"""Converters of BatchNorm1d/2d/3d and LayerNorm, at inference (the other normalization layers:
:mod:`xpnet.onnx.families.normalization`, with the helpers of this module).

- ``BatchNorm1d``/``BatchNorm2d``/``BatchNorm3d`` with running statistics: ``BatchNormalization`` with them
  (scale ones and bias zeros where the layer has none). Without running statistics
  (``track_running_stats=False``) xpnet, as torch, normalizes with the batch's own statistics
  even in eval mode: so does the graph, with ``ReduceMean`` over every axis but the channels.
- ``LayerNorm``: ``LayerNormalization`` (opset 17) over the last ``len(normalized_shape)`` axes;
  below opset 17 the same arithmetic from ``ReduceMean``, ``Sub``, ``Mul``, ``Sqrt`` and ``Div``.
"""

from __future__ import annotations

import math

from .. import backends
from .. import layers as L
from .graph import Value
from .ops import child
from .registry import converter


def _standardize(g, x, axes, eps, path):
    """``(x - mean) / sqrt(var + eps)`` over ``axes`` (biased variance), as xpnet computes it."""
    mean = g.reduce_mean(x, axes, path)
    xc = g.node("Sub", [x, mean], path)
    var = g.reduce_mean(g.node("Mul", [xc, xc], path), axes, path)
    std = g.node("Sqrt", [g.node("Add", [var, g.const(f"{path}/eps", [eps], shape=[])], path)], path)
    return g.node("Div", [xc, std], path)


def _affine(g, layer, xhat, path, shape=None):
    """``xhat * weight + bias`` for the parameters the layer has (reshaped to ``shape`` to broadcast)."""
    for attr, op in (("weight", "Mul"), ("bias", "Add")):
        p = getattr(layer, attr)
        if p is not None:
            data = p.data if shape is None else backends.namespace_of(p.data).reshape(p.data, shape)
            xhat = g.node(op, [xhat, g.param(child(path, attr), data)], path)
    return xhat


def _param_or_filled(g, layer, path, attr, value, shape):
    """The layer's parameter ``attr`` as an initializer, or, where the layer has none, a constant
    of ``shape`` full of ``value`` (scale ones, bias zeros: the operator needs the input)."""
    p = getattr(layer, attr)
    if p is not None:
        return g.param(child(path, attr), p.data)
    return g.const(f"{path}/{attr}", [value] * math.prod(shape), shape=list(shape))


@converter(L.BatchNorm1d)
@converter(L.BatchNorm2d)
@converter(L.BatchNorm3d)
def _batch_norm(g, layer, path, x):
    y = g.run(layer, path, x)
    c = layer.num_features
    if layer.running_mean is None:  # batch statistics, even at inference
        xhat = _standardize(g, x.name, [0, *range(2, x.ndim)], layer.eps, path)
        return Value(_affine(g, layer, xhat, path, (1, c) + (1,) * (x.ndim - 2)), *y)
    return Value(_with_running_stats(g, layer, path, x.name, c), *y)


def _with_running_stats(g, layer, path, xin, c):
    """``BatchNormalization`` of ``xin`` (``(N, C, ...)``) with the layer's running statistics."""
    scale, bias = (_param_or_filled(g, layer, path, a, v, (c,)) for a, v in (("weight", 1.0), ("bias", 0.0)))
    stats = [g.param(child(path, n), getattr(layer, n)) for n in ("running_mean", "running_var")]
    return g.node("BatchNormalization", [xin, scale, bias, *stats], path, epsilon=layer.eps)


@converter(L.LayerNorm)
def _layer_norm(g, layer, path, x):
    y = g.run(layer, path, x)
    k = len(layer.normalized_shape)
    if g.opset < 17:
        xhat = _standardize(g, x.name, list(range(x.ndim - k, x.ndim)), layer.eps, path)
        return Value(_affine(g, layer, xhat, path), *y)
    scale = _param_or_filled(g, layer, path, "weight", 1.0, layer.normalized_shape)
    bias = [] if layer.bias is None else [g.param(child(path, "bias"), layer.bias.data)]
    return Value(g.node("LayerNormalization", [x.name, scale, *bias], path, axis=-k, epsilon=layer.eps), *y)
