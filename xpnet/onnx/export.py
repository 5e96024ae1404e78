"""``to_onnx(net, path, input_shape)``: a trained net as an ONNX model, for inference elsewhere."""

from __future__ import annotations

import pathlib

from .. import backends
from ..io.atomic import atomic_write
from ..layers.base import Layer
from ..layers.embedding import Embedding
from ..nets.evaluate import eval_mode, net_backend
from ..validate import flag
from .graph import ELEMENT_TYPES, Graph, Value
from .registry import convert

#: the opset written when none is asked for: the first with LayerNormalization, widely run
DEFAULT_OPSET = 17
#: the oldest opset written (Softmax over one axis, Unsqueeze/Squeeze axes as inputs)
MIN_OPSET = 13
#: protobuf's limit on one serialized message
_MAX_BYTES = 2**31 - 1
INSTALL_HINT = "pip install 'xpnet[onnx]'"


def import_onnx():
    """The ``onnx`` package, or ModuleNotFoundError saying how to install it."""
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper
    except ImportError as e:
        raise ModuleNotFoundError(f"to_onnx needs the onnx package: {INSTALL_HINT}", name="onnx") from e
    return onnx


def to_onnx(net, path, input_shape, *, opset=None, dynamic_batch: bool = True):
    """Write ``net`` as an ONNX model to ``path`` and return the ``onnx.ModelProto``.

    ``input_shape``: the shape of one input, batch axis first (``(1, 64)``, ``(1, 1, 28, 28)``).
    The graph has one input ``"input"`` of that shape, the net's float dtype (int64 when the
    first layer is an ``Embedding``), and one output ``"output"``; with ``dynamic_batch`` (the
    default) axis 0 of the input is the symbolic ``"batch"``, and the model takes any batch size.

    The model computes what the net computes in eval mode (dropout off, running statistics of
    batch normalization), with the weights as initializers in the net's dtype. ``opset``: the
    ONNX operator set, from 13 to the newest the installed ``onnx`` knows (default 17).

    Each layer's own forward runs on zero-filled probe inputs of ``input_shape`` (and, with
    ``dynamic_batch``, of a batch one larger) to give every tensor's shape: an input shape the
    net does not take fails with the layer's own message. A layer that cannot be expressed in
    ONNX raises ValueError naming its path in the net (``layer '3' (MyLayer) has no ONNX
    converter``). Nothing is written unless the whole model converts and passes
    ``onnx.checker.check_model``; the file is written atomically.
    """
    onnx = import_onnx()
    if not isinstance(net, Layer):
        raise TypeError(f"to_onnx expected an xpnet Layer (a net), got {type(net).__name__}")
    shape = _input_shape(input_shape)
    opset = _opset(onnx, opset)
    flag("to_onnx", "dynamic_batch", dynamic_batch)
    try:
        be = net_backend(net, "to_onnx")
    except ValueError:  # no parameters nor buffers: any backend computes the shapes
        be = backends.get("numpy")
    dtype = _float_dtype(net)
    in_dtype = "int64" if isinstance(_first_leaf(net), Embedding) else dtype
    with eval_mode(net):
        make = be.xp.zeros
        a = make(shape, dtype=be.dtype(in_dtype), device=be.device)
        b = make((shape[0] + 1,) + shape[1:], dtype=be.dtype(in_dtype), device=be.device) if dynamic_batch else None
        g = Graph(onnx.helper, onnx.numpy_helper.from_array, opset, dtype)
        for name in ("input", "output"):
            g.reserve(name)
        y = convert(g, net, "", Value("input", a, b))
    model = _model(onnx, g, net, Value("input", a, b), y, in_dtype)
    onnx.checker.check_model(model, full_check=True)
    size = model.ByteSize()
    if size > _MAX_BYTES:
        raise ValueError(f"to_onnx: the model takes {size:,} bytes, more than the {_MAX_BYTES:,} of one ONNX file "
                         "(protobuf's limit); xpnet does not write external data files")
    with atomic_write(pathlib.Path(path)) as f:
        f.write(model.SerializeToString())
    return model


def _input_shape(input_shape):
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"to_onnx: input_shape must be a non-empty sequence of positive ints, the batch size first, "
                         f"got {input_shape!r}")
    return tuple(int(s) for s in shape)


def _opset(onnx, opset):
    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        return min(DEFAULT_OPSET, newest)
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"to_onnx: opset must be an int from {MIN_OPSET} to {newest} (the newest this onnx "
                         f"{onnx.__version__} knows), got {opset!r}")
    return opset


def _float_dtype(net):
    """The dtype name of the net's first float parameter or buffer (float32 for a net with none)."""
    for _, v in net.state_dict().items():
        be = backends.backend_of(v)
        if be.is_float(v.dtype):
            name = be.dtype_name(v.dtype)
            if name not in ELEMENT_TYPES:
                raise ValueError(f"to_onnx: the net's {name} has no ONNX element type here")
            return name
    return "float32"


def _first_leaf(layer):
    """The layer that receives the net's input first (a container's first child, recursively)."""
    while True:
        first = next(iter(layer.named_children()), None)
        if first is None:
            return layer
        layer = first[1]


def _dims(v: Value, batch: tuple):
    """``v``'s shape for the graph's signature: ``"batch"`` on the axis that is the batch, an
    unnamed size on one that follows it otherwise (a batch merged with another axis)."""
    dims = list(v.shape)
    if v.b is not None:
        for i, (p, q) in enumerate(zip(v.a.shape, v.b.shape)):
            if p != q:
                dims[i] = "batch" if (int(p), int(q)) == batch else None
    return dims


def _model(onnx, g, net, x, y, in_dtype):
    from .. import __version__  # xpnet/__init__.py sets it after importing this package

    helper = onnx.helper
    if y.name == x.name:  # the net computes the identity: the output still needs a node
        y = y._replace(name=g.node("Identity", [y.name], "output"))
    for node in g.nodes:  # the net's last tensor becomes "output"
        node.output[:] = ["output" if o == y.name else o for o in node.output]
        node.input[:] = ["output" if i == y.name else i for i in node.input]
    batch = (x.shape[0], x.shape[0] + 1)
    out_dtype = backends.backend_of(y.a).dtype_name(y.a.dtype)
    graph = helper.make_graph(
        g.nodes, "xpnet",
        [helper.make_tensor_value_info("input", ELEMENT_TYPES[in_dtype], _dims(x, batch))],
        [helper.make_tensor_value_info("output", ELEMENT_TYPES[out_dtype], _dims(y, batch))],
        g.initializers,
    )
    opsets = [helper.make_opsetid("", g.opset)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets),
                             producer_name="xpnet", producer_version=__version__,
                             doc_string=f"{type(net).__name__} exported by xpnet.to_onnx")
