"""ONNX converters of the activations of issue 11, at inference (each is its forward):

- one operator each: ``Elu(alpha)``, ``Selu(alpha, gamma)`` (torch's constants), ``Softsign``,
  ``HardSigmoid(alpha=1/6, beta=1/2)``, ``Clip`` (Hardtanh, ReLU6), ``Shrink`` (Hardshrink with
  ``bias=0``, Softshrink with ``bias=lambd``), ``PRelu`` (the weight shaped ``(C, 1, ..., 1)`` to
  broadcast over the channel axis), ``LogSoftmax(axis)``, ``Softmax(axis=-3)`` (Softmax2d);
- ``Celu(alpha)`` for float32 (the only type ONNX defines it for); other float types compose
  ``Relu(x) + Min(0, alpha * (Exp(x / alpha) - 1))``;
- ``Gelu(approximate)`` from opset 20; below, ``x/2 * (1 + Erf(x / sqrt 2))`` or the tanh form;
- ``HardSwish`` from opset 14 (``x * HardSigmoid(x)`` below), ``Mish`` from opset 18
  (``x * Tanh(Softplus(x))`` below);
- compositions: SiLU ``x * Sigmoid(x)``; Softplus ``Where(beta x > threshold, x,
  Softplus(beta x) / beta)``; LogSigmoid ``-Softplus(-x)``; Tanhshrink ``x - Tanh(x)``; Threshold
  ``Where(x <= threshold, value, x)``; Softmin ``Softmax(-x)``; GLU ``Slice`` of each half along
  ``dim``, ``a * Sigmoid(b)`` (halving the batch axis needs ``dynamic_batch=False``).
"""

from __future__ import annotations

import math

from ... import backends
from ... import layers as L
from ...layers.activations_elu import SELU_ALPHA, SELU_SCALE
from ..graph import Value
from ..ops import child
from ..registry import converter


def _scalar(g, path, name, v):
    return g.const(f"{path}/{name}", [v], shape=[])


def _unary(g, op, x, path, **attrs):
    return g.node(op, [x], path, **attrs)


def _mul(g, a, b, path):
    return g.node("Mul", [a, b], path)


# one operator on the input, its attributes from the layer
_ONE_OP = {
    L.ELU: ("Elu", lambda layer: {"alpha": layer.alpha}),
    L.SELU: ("Selu", lambda layer: {"alpha": SELU_ALPHA, "gamma": SELU_SCALE}),
    L.Softsign: ("Softsign", lambda layer: {}),
    L.Hardsigmoid: ("HardSigmoid", lambda layer: {"alpha": 1.0 / 6.0, "beta": 0.5}),
    L.Hardshrink: ("Shrink", lambda layer: {"lambd": layer.lambd, "bias": 0.0}),
    L.Softshrink: ("Shrink", lambda layer: {"lambd": layer.lambd, "bias": layer.lambd}),
    L.LogSoftmax: ("LogSoftmax", lambda layer: {"axis": layer.dim}),
    L.Softmax2d: ("Softmax", lambda layer: {"axis": -3}),
}


def _one_op(g, layer, path, x):
    op, attrs = _ONE_OP[type(layer)]
    y = g.run(layer, path, x)
    return Value(_unary(g, op, x.name, path, **attrs(layer)), *y)


for _cls in _ONE_OP:
    converter(_cls)(_one_op)


@converter(L.CELU)
def _celu(g, layer, path, x):
    y = g.run(layer, path, x)
    if g.dtype == "float32":
        return Value(_unary(g, "Celu", x.name, path, alpha=layer.alpha), *y)
    a = layer.alpha
    e = g.node("Sub", [_unary(g, "Exp", _mul(g, x.name, _scalar(g, path, "inv_alpha", 1.0 / a), path), path),
                       _scalar(g, path, "one", 1.0)], path)
    neg = g.node("Min", [_mul(g, e, _scalar(g, path, "alpha", a), path), _scalar(g, path, "zero", 0.0)], path)
    return Value(g.node("Add", [_unary(g, "Relu", x.name, path), neg], path), *y)


@converter(L.Hardtanh)
@converter(L.ReLU6)
def _clip(g, layer, path, x):
    y = g.run(layer, path, x)
    lo, hi = _scalar(g, path, "min", layer.min_val), _scalar(g, path, "max", layer.max_val)
    return Value(g.node("Clip", [x.name, lo, hi], path), *y)


@converter(L.PReLU)
def _prelu(g, layer, path, x):
    y = g.run(layer, path, x)
    w = layer.weight.data
    if x.ndim >= 2:
        w = backends.namespace_of(w).reshape(w, (layer.num_parameters,) + (1,) * (x.ndim - 2))
    return Value(g.node("PRelu", [x.name, g.param(child(path, "weight"), w)], path), *y)


@converter(L.GELU)
def _gelu(g, layer, path, x):
    y = g.run(layer, path, x)
    if g.opset >= 20:
        return Value(_unary(g, "Gelu", x.name, path, approximate=layer.approximate), *y)
    if layer.approximate == "none":
        inner = _unary(g, "Erf", _mul(g, x.name, _scalar(g, path, "sqrt1_2", math.sqrt(0.5)), path), path)
    else:  # tanh(sqrt(2/pi) * (x + 0.044715 x^3))
        cube = _mul(g, _mul(g, x.name, x.name, path), x.name, path)
        arg = g.node("Add", [x.name, _mul(g, cube, _scalar(g, path, "kappa", 0.044715), path)], path)
        inner = _unary(g, "Tanh", _mul(g, arg, _scalar(g, path, "beta", math.sqrt(2.0 / math.pi)), path), path)
    one_plus = g.node("Add", [inner, _scalar(g, path, "one", 1.0)], path)
    half_x = _mul(g, x.name, _scalar(g, path, "half", 0.5), path)
    return Value(_mul(g, half_x, one_plus, path), *y)


@converter(L.SiLU)
def _silu(g, layer, path, x):
    y = g.run(layer, path, x)
    return Value(_mul(g, x.name, _unary(g, "Sigmoid", x.name, path), path), *y)


@converter(L.Hardswish)
def _hardswish(g, layer, path, x):
    y = g.run(layer, path, x)
    if g.opset >= 14:
        return Value(_unary(g, "HardSwish", x.name, path), *y)
    return Value(_mul(g, x.name, _unary(g, "HardSigmoid", x.name, path, alpha=1.0 / 6.0, beta=0.5), path), *y)


@converter(L.Mish)
def _mish(g, layer, path, x):
    y = g.run(layer, path, x)
    if g.opset >= 18:
        return Value(_unary(g, "Mish", x.name, path), *y)
    return Value(_mul(g, x.name, _unary(g, "Tanh", _unary(g, "Softplus", x.name, path), path), path), *y)


@converter(L.Softplus)
def _softplus(g, layer, path, x):
    y = g.run(layer, path, x)
    z = _mul(g, x.name, _scalar(g, path, "beta", layer.beta), path)
    soft = g.node("Div", [_unary(g, "Softplus", z, path), _scalar(g, path, "beta", layer.beta)], path)
    linear = g.node("Greater", [z, _scalar(g, path, "threshold", layer.threshold)], path)
    return Value(g.node("Where", [linear, x.name, soft], path), *y)


@converter(L.LogSigmoid)
def _log_sigmoid(g, layer, path, x):
    y = g.run(layer, path, x)
    return Value(_unary(g, "Neg", _unary(g, "Softplus", _unary(g, "Neg", x.name, path), path), path), *y)


@converter(L.Tanhshrink)
def _tanhshrink(g, layer, path, x):
    y = g.run(layer, path, x)
    return Value(g.node("Sub", [x.name, _unary(g, "Tanh", x.name, path)], path), *y)


@converter(L.Threshold)
def _threshold(g, layer, path, x):
    y = g.run(layer, path, x)
    below = g.node("LessOrEqual", [x.name, _scalar(g, path, "threshold", layer.threshold)], path)
    return Value(g.node("Where", [below, _scalar(g, path, "value", layer.value), x.name], path), *y)


@converter(L.Softmin)
def _softmin(g, layer, path, x):
    y = g.run(layer, path, x)
    return Value(_unary(g, "Softmax", _unary(g, "Neg", x.name, path), path, axis=layer.dim), *y)


@converter(L.GLU)
def _glu(g, layer, path, x):
    y = g.run(layer, path, x)
    d = layer.dim % x.ndim  # not the batch axis: the probes' batch sizes N and N + 1 are not both even
    h = x.shape[d] // 2
    axes = g.ints(f"{path}/axes", [d])
    a = g.node("Slice", [x.name, g.ints(f"{path}/starts", [0]), g.ints(f"{path}/ends", [h]), axes], path)
    b = g.node("Slice", [x.name, g.ints(f"{path}/starts", [h]), g.ints(f"{path}/ends", [2 * h]), axes], path)
    return Value(_mul(g, a, _unary(g, "Sigmoid", b, path), path), *y)
