"""The graph under construction: nodes, initializers, fresh names and the opset-dependent forms
of a few operators, for the converters of :mod:`xpnet.onnx.ops`.

Every tensor a converter handles is a :class:`Value`: its ONNX name and what xpnet computes
for it on two probe inputs that differ only in their batch size (``a`` at the batch size of
``input_shape``, ``b`` at another one; ``b`` is None for a fixed batch). The probes give each
converter its tensors' exact shapes, as xpnet's own layers compute them, and the axis that
follows the batch: the one whose size differs between ``a`` and ``b``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .. import backends

#: ONNX element types (``onnx.TensorProto``'s numbers) of the dtypes a net may have
ELEMENT_TYPES = {"float32": 1, "int64": 7, "float16": 10, "float64": 11, "bfloat16": 16}
_INT64 = ELEMENT_TYPES["int64"]


class Value(NamedTuple):
    """A tensor of the graph: its name and its values on the two probe inputs."""

    name: str
    a: Any
    b: Any = None

    @property
    def shape(self):
        return tuple(int(s) for s in self.a.shape)

    @property
    def ndim(self):
        return len(self.a.shape)


def where(path, layer) -> str:
    """How messages name a layer: ``layer '0.body.1' (Linear)``, or ``the net (Linear)`` at the root."""
    kind = type(layer).__name__
    return f"layer {path!r} ({kind})" if path else f"the net ({kind})"


class Graph:
    """Collects what becomes the ONNX graph. ``helper`` is ``onnx.helper``, ``from_array``
    ``onnx.numpy_helper.from_array``; ``dtype`` the net's float dtype name (``"float32"``)."""

    def __init__(self, helper, from_array, opset: int, dtype: str):
        self.helper, self._from_array = helper, from_array
        self.opset, self.dtype = opset, dtype
        self.elem = ELEMENT_TYPES[dtype]
        self.nodes, self.initializers = [], []
        self._names = set()
        self._params = {}  # (id of the array, transposed?) -> (initializer name, array): a tied array is stored once

    # -- names ------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        """A tensor or node name not used before, ``hint`` itself when free."""
        name, k = hint, 1
        while name in self._names:
            k += 1
            name = f"{hint}_{k}"
        self._names.add(name)
        return name

    def reserve(self, name: str):
        self._names.add(name)

    # -- initializers -----------------------------------------------------------------
    def param(self, hint: str, data, transpose: bool = False) -> str:
        """An initializer holding the array ``data`` (a parameter or buffer, on any backend),
        transposed when asked (a 2-D weight for MatMul); stored once however often it is used."""
        key = (id(data), transpose)
        known = self._params.get(key)
        if known is not None:
            return known[0]
        arr = backends.namespace_of(data).permute_dims(data, (1, 0)) if transpose else data
        name = self.fresh(hint)
        self._params[key] = (name, data)  # holding data: no later array can take its id
        self.initializers.append(self._from_array(backends.to_numpy(arr), name))
        return name

    def const(self, hint: str, values, shape=None, elem=None) -> str:
        """An initializer of the flat list ``values`` with ``shape`` (default: 1-D) and ONNX element
        type ``elem`` (default: the net's float type)."""
        values = list(values)
        name = self.fresh(hint)
        dims = [len(values)] if shape is None else list(shape)
        self.initializers.append(self.helper.make_tensor(name, self.elem if elem is None else elem, dims, values))
        return name

    def ints(self, hint: str, values) -> str:
        """A 1-D int64 initializer (shapes, axes, pads)."""
        return self.const(hint, [int(v) for v in values], elem=_INT64)

    # -- the probes -------------------------------------------------------------------
    @staticmethod
    def run(layer, path: str, x: Value):
        """``(a, b)``: ``layer``'s own outputs on ``x``'s probes (its shapes, and its own error
        for an input it does not take, naming where it sits)."""
        try:
            ya = layer(x.a)
        except (ValueError, TypeError) as e:
            kind = ValueError if isinstance(e, ValueError) else TypeError
            raise kind(f"to_onnx: {where(path, layer)} does not take its input of shape {x.shape}: {e}") from None
        if x.b is None:
            return ya, None
        try:
            yb = layer(x.b)
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"to_onnx: {where(path, layer)} takes an input of shape {x.shape} but not one of another batch size "
                f"({tuple(int(s) for s in x.b.shape)}: {e}); pass dynamic_batch=False to export this batch size only"
            ) from None
        return ya, yb

    # -- nodes ------------------------------------------------------------------------
    def node(self, op: str, inputs, hint: str, **attrs) -> str:
        """Add ``op`` on the named ``inputs`` (``""`` for an omitted optional input); returns its
        output's name, made from ``hint`` (the layer's path)."""
        base = f"{hint}/{op}" if hint else op
        out = self.fresh(base + ":0")
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], name=self.fresh(base), **attrs))
        return out

    def unsqueeze(self, x: str, axes, hint: str) -> str:
        return self.node("Unsqueeze", [x, self.ints(f"{hint}/axes", axes)], hint)

    def squeeze(self, x: str, axes, hint: str) -> str:
        return self.node("Squeeze", [x, self.ints(f"{hint}/axes", axes)], hint)

    def reduce_mean(self, x: str, axes, hint: str) -> str:
        """Mean over ``axes``, kept as size-1 axes (``axes`` became an input in opset 18)."""
        if self.opset >= 18:
            return self.node("ReduceMean", [x, self.ints(f"{hint}/axes", axes)], hint, keepdims=1)
        return self.node("ReduceMean", [x], hint, axes=list(axes), keepdims=1)

    def reshape(self, x: str, out: Value, hint: str, what: str) -> str:
        """Reshape ``x`` to ``out``'s shape: its sizes, and -1 on the axis that follows the batch
        (``what`` names the layer in the error when more than one axis would)."""
        return self.node("Reshape", [x, self.ints(f"{hint}/shape", self.shape_spec(out, what))], hint)

    @staticmethod
    def shape_spec(v: Value, what: str) -> list:
        """``v``'s shape, with -1 on the axis whose size changes with the batch size."""
        shape = list(v.shape)
        if v.b is None:
            return shape
        moving = [i for i, (p, q) in enumerate(zip(v.a.shape, v.b.shape)) if p != q]
        if len(moving) > 1:
            raise ValueError(f"to_onnx: {what} gives an output whose axes {moving} all change with the batch size; "
                             "pass dynamic_batch=False to export a fixed batch size")
        for i in moving:
            shape[i] = -1
        return shape
