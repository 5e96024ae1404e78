"""Converters of the dense, elementwise and shape layers, of the containers, and the refusals.

Each gives inference (eval-mode) semantics, as :func:`xpnet.nets.predict` computes:

- ``Linear``: ``Gemm`` (``transB=1``) on 2-D input; ``MatMul`` with the transposed weight, then
  ``Add``, on 1-D or >2-D input;
- ``Embedding``: ``Gather`` along the rows of the weight (int64 indices);
- ``ReLU``, ``Sigmoid``, ``Tanh``, ``LeakyReLU(alpha)``, ``Softmax(axis)`` (opset 13's per-axis form);
- ``Identity`` and ``Dropout`` (identity at inference): no node;
- ``Flatten``, ``Unflatten``, ``Reshape``: one ``Reshape`` to xpnet's output shape, -1 on the axis
  that follows the batch;
- ``Sequential``: its layers in order; ``Residual``: ``Add`` of the body and the shortcut (or the
  input); ``Concat``: ``Concat`` of the branches along ``dim``.

Refused (:data:`~xpnet.onnx.registry.REFUSED`): the losses, which are no part of a net's
inference (export the net; apply the loss to its output).
"""

from __future__ import annotations

from .. import backends
from .. import layers as L
from ..nets.concat import Concat
from ..nets.residual import Residual
from ..nets.sequential import Sequential
from .graph import Value, where
from .registry import REFUSED, convert, converter


def child(path: str, name: str) -> str:
    """The path of sub-layer ``name`` of the layer at ``path`` (``"body.1"``)."""
    return f"{path}.{name}" if path else name


# -- dense ---------------------------------------------------------------------------------------
@converter(L.Linear)
def _linear(g, layer, path, x):
    y = g.run(layer, path, x)
    bias = [] if layer.bias is None else [g.param(child(path, "bias"), layer.bias.data)]
    if x.ndim == 2:
        out = g.node("Gemm", [x.name, g.param(child(path, "weight"), layer.weight.data), *bias], path, transB=1)
    else:  # Gemm takes matrices only; MatMul broadcasts over leading axes (and takes a vector)
        out = g.node("MatMul", [x.name, g.param(child(path, "weight_T"), layer.weight.data, transpose=True)], path)
        if bias:
            out = g.node("Add", [out, *bias], path)
    return Value(out, *y)


@converter(L.Embedding)
def _embedding(g, layer, path, x):
    y = g.run(layer, path, x)
    return Value(g.node("Gather", [g.param(child(path, "weight"), layer.weight.data), x.name], path, axis=0), *y)


# -- elementwise ---------------------------------------------------------------------------------
_ELEMENTWISE = {L.ReLU: "Relu", L.Sigmoid: "Sigmoid", L.Tanh: "Tanh"}


def _elementwise(g, layer, path, x):
    y = g.run(layer, path, x)
    return Value(g.node(_ELEMENTWISE[type(layer)], [x.name], path), *y)


for _cls in _ELEMENTWISE:
    converter(_cls)(_elementwise)


@converter(L.LeakyReLU)
def _leaky_relu(g, layer, path, x):
    y = g.run(layer, path, x)
    return Value(g.node("LeakyRelu", [x.name], path, alpha=layer.negative_slope), *y)


@converter(L.Softmax)
def _softmax(g, layer, path, x):
    y = g.run(layer, path, x)
    return Value(g.node("Softmax", [x.name], path, axis=layer.dim), *y)


@converter(L.Identity)
@converter(L.Dropout)
def _identity(g, layer, path, x):
    return Value(x.name, *g.run(layer, path, x))


# -- shapes --------------------------------------------------------------------------------------
@converter(L.Flatten)
@converter(L.Unflatten)
@converter(L.Reshape)
def _reshape(g, layer, path, x):
    y = Value(x.name, *g.run(layer, path, x))
    return y._replace(name=g.reshape(x.name, y, path, where(path, layer)))


# -- containers ----------------------------------------------------------------------------------
@converter(Sequential)
def _sequential(g, layer, path, x):
    for name, sub in layer.named_children():
        x = convert(g, sub, child(path, name), x)
    return x


def _own_error(g, layer, path, x):
    """Raise the error xpnet's own forward gives for ``x`` (its children's outputs do not fit together)."""
    g.run(layer, path, x)
    raise ValueError(f"to_onnx: {where(path, layer)}: the outputs of its parts do not fit together")


@converter(Residual)
def _residual(g, layer, path, x):
    body = convert(g, layer.body, child(path, "body"), x)
    short = x if layer.shortcut is None else convert(g, layer.shortcut, child(path, "shortcut"), x)
    if body.shape != short.shape:
        _own_error(g, layer, path, x)
    b = None if x.b is None else body.b + short.b
    return Value(g.node("Add", [body.name, short.name], path), body.a + short.a, b)


@converter(Concat)
def _concat(g, layer, path, x):
    outs = [convert(g, sub, child(path, name), x) for name, sub in layer.named_children()]
    nd = outs[0].ndim
    d = layer.dim + nd if layer.dim < 0 else layer.dim
    if not 0 <= d < nd or any(o.ndim != nd or any(o.shape[i] != outs[0].shape[i] for i in range(nd) if i != d)
                              for o in outs):
        _own_error(g, layer, path, x)
    xp = backends.namespace_of(outs[0].a)
    b = None if x.b is None else xp.concat([o.b for o in outs], axis=d)
    return Value(g.node("Concat", [o.name for o in outs], path, axis=d), xp.concat([o.a for o in outs], axis=d), b)


# -- refused -------------------------------------------------------------------------------------
for _cls in (L.Loss, L.MSELoss, L.CrossEntropyLoss, L.BCEWithLogitsLoss):
    REFUSED[_cls] = "a loss is no part of the net's inference; export the net and apply the loss to its output"
