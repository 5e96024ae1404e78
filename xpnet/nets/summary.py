"""``summary(net, input_shape)``: a torchinfo-style table of a net's layers, their output shapes
and parameter counts, from one forward pass on zeros.

>>> print(xn.summary(net, (64,)))
Layer (type)   Output shape   Param #   Trainable
Sequential     (1, 10)        --        True
  0: Linear    (1, 128)       8,320     True
  ...
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re

from .. import backends
from ..layers._checks import shape_str
from ..layers.base import Parameter
from .evaluate import eval_mode, net_backend


@dataclasses.dataclass(frozen=True)
class Row:
    """One call of one layer, in the order the forward pass made them.

    ``name``: the layer's path in the net (``"body.0"``; ``""`` for the net itself); ``depth``:
    how many layers enclose the call; ``output_shape``: a tuple, a list of tuples for a layer with
    several outputs, or None for a layer the forward never called; ``params``: the elements of the
    parameters the layer holds itself (not its children's), each Parameter counted at its first
    row only, so that the column sums to ``total_params``; ``trainable``: ``"True"``, ``"False"``
    or ``"Partial"`` for the parameters of the layer and its children, ``"--"`` for none;
    ``note``: ``"shared with 0"`` for a layer object met before, ``"tied"`` for a layer whose
    parameters were all counted before, else ``""``.
    """

    name: str
    layer: str
    depth: int
    output_shape: object
    params: int
    trainable: str
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Summary:
    """What :func:`summary` found. ``str()`` is the table.

    Counts are of parameter elements, each Parameter once (tied weights count once);
    ``frozen_params`` (also ``non_trainable_params``) are those with ``requires_grad=False``.
    Sizes are in bytes.
    """

    rows: tuple
    input_shape: tuple
    dtype: str
    input_bytes: int
    output_shape: object
    total_params: int
    trainable_params: int
    param_bytes: int
    buffer_bytes: int

    @property
    def frozen_params(self) -> int:
        return self.total_params - self.trainable_params

    non_trainable_params = frozen_params

    def __str__(self):
        head = ("Layer (type)", "Output shape", "Param #", "Trainable")
        body = [(_label(r), _shape_text(r.output_shape), f"{r.params:,}" if r.params else "--", r.trainable)
                for r in self.rows]
        widths = [max(len(line[i]) for line in [head, *body]) for i in range(4)]
        rule = "=" * (sum(widths) + 3 * 3)

        def fmt(line):
            return "   ".join(c.ljust(w) if i == 0 else c.rjust(w) if i == 2 else c.ljust(w)
                              for i, (c, w) in enumerate(zip(line, widths))).rstrip()

        lines = [rule, fmt(head), rule, *(fmt(b) for b in body), rule,
                 f"Total params: {self.total_params:,}",
                 f"Trainable params: {self.trainable_params:,}",
                 f"Non-trainable params: {self.frozen_params:,}",
                 f"Params size: {_size(self.param_bytes)}",
                 f"Buffers size: {_size(self.buffer_bytes)}",
                 f"Input size: {_shape_text(self.input_shape)} {self.dtype}, {_size(self.input_bytes)}",
                 rule]
        return "\n".join(lines)

    __repr__ = __str__


def summary(net, input_shape, *, dtype=None, batch_size=1) -> Summary:
    """Run ``net`` once, in eval mode under ``no_grad``, on zeros of shape ``(batch_size, *input_shape)``
    on the net's backend, and return a :class:`Summary` of every layer call.

    ``input_shape``: the shape of one sample (an int or a tuple), or a list of such shapes for a
    net with several inputs. ``dtype``: the input's dtype (a name such as ``"int64"`` for an
    Embedding); default: the net's floating dtype (float32 when it has no parameters). Nothing
    in the net changes (no running statistics move, modes are restored).

    Raises ValueError (TypeError for a dtype mismatch) naming the layer that could not take its
    input and the shape it got, when the shape does not fit the net.
    """
    from ..layers.base import Layer

    if not isinstance(net, Layer):
        raise TypeError(f"summary: net must be an xpnet Layer, got {type(net).__name__}")
    shapes = _input_shapes(input_shape)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"summary: batch_size must be a positive int, got {batch_size!r}")
    try:
        be = net_backend(net, "summary")
    except ValueError:  # no parameters nor buffers: the default backend
        be = backends.get()
    dt = be.dtype(dtype) if dtype is not None else _float_dtype(net, be)
    xs = [be.xp.zeros((int(batch_size), *s), dtype=dt, device=be.device) for s in shapes]
    recorder = _Recorder(net)
    with recorder, eval_mode(net):
        try:
            out = net(*xs)
        except Exception as e:
            raise recorder.failure_error(e) from e
    rows = _rows(recorder, net)
    params = net.parameters()
    buffers = {id(b): b for _, b in net.named_buffers()}
    in_shapes = [tuple(x.shape) for x in xs]
    return Summary(
        rows=tuple(rows),
        input_shape=in_shapes[0] if len(in_shapes) == 1 else in_shapes,
        dtype=be.dtype_name(dt),
        input_bytes=sum(math.prod(s) for s in in_shapes) * _itemsize(be, dt),
        output_shape=_shapes(out),
        total_params=sum(math.prod(p.shape) for p in params),
        trainable_params=sum(math.prod(p.shape) for p in params if p.requires_grad),
        param_bytes=sum(math.prod(p.shape) * _itemsize(be, p.data.dtype) for p in params),
        buffer_bytes=sum(math.prod(b.shape) * _itemsize(be, b.dtype) for b in buffers.values()),
    )


class _Recorder:
    """Wraps the ``forward`` of every layer of the tree (an instance attribute shadowing the
    method, removed on exit) to record each call: its path, depth and output shape."""

    def __init__(self, net):
        self.net = net
        self.calls = []  # [path, layer, depth, output shape]
        self.stack = []  # (layer, path, {id(child): calls made by this call so far})
        self.failure = None  # (path, layer, input shapes) of the innermost call that raised
        self.saved = {}

    def __enter__(self):
        for _, layer in self.net.named_modules():
            self.saved[id(layer)] = (layer, layer.__dict__.get("forward"))
            layer.forward = self._wrap(layer, layer.forward)
        return self

    def __exit__(self, *exc):
        for layer, own in self.saved.values():
            if own is None:
                del layer.__dict__["forward"]
            else:
                layer.forward = own

    def _wrap(self, layer, forward):
        def recorded(*inputs, **kwargs):
            path = self._path(layer)
            call = [path, layer, len(self.stack), None]
            self.calls.append(call)
            self.stack.append((layer, path, {}))
            try:
                out = forward(*inputs, **kwargs)
            except Exception:
                if self.failure is None:
                    self.failure = (path, layer, [_shapes(x) for x in inputs])
                raise
            finally:
                self.stack.pop()
            call[3] = _shapes(out)
            return out

        return recorded

    def _path(self, layer):
        """The path of this call: the parent's path and the name under which the parent holds
        ``layer`` (the k-th name for its k-th call, when it holds it under several)."""
        if not self.stack:
            return ""
        parent, ppath, seen = self.stack[-1]
        names = [n for n, c in parent.named_children() if c is layer]
        k = seen.get(id(layer), 0)
        seen[id(layer)] = k + 1
        if not names:  # called by a layer that does not hold it: its first path in the tree
            return next((n for n, m in self.net.named_modules() if m is layer), type(layer).__name__)
        name = names[min(k, len(names) - 1)]
        return f"{ppath}.{name}" if ppath else name

    def failure_error(self, e):
        if self.failure is None:
            return e
        path, layer, shapes = self.failure
        where = f"{path}: {type(layer).__name__}" if path else type(layer).__name__
        got = shapes[0] if len(shapes) == 1 else shapes
        cls = TypeError if isinstance(e, TypeError) else ValueError
        return cls(f"summary: layer {where} failed on an input of shape {_shape_text(got)}: {e}")


def _rows(recorder, net):
    rows, counted, met = [], set(), {}
    for path, layer, depth, shape in recorder.calls:
        rows.append(_row(layer, path, depth, shape, counted, met))
    depths = dict(_tree_depths(net))
    for name, layer in net.named_modules():
        if id(layer) not in met:  # never called by the forward
            rows.append(_row(layer, name, depths[name], None, counted, met))
    return rows


def _row(layer, path, depth, shape, counted, met):
    own = [v for v in vars(layer).values() if isinstance(v, Parameter)]
    new = [p for p in own if id(p) not in counted]
    counted.update(id(p) for p in own)
    note = ""
    if id(layer) in met:
        note = f"shared with {met[id(layer)]}" if met[id(layer)] != path else "called again"
    elif own and not new:
        note = "tied"
    met.setdefault(id(layer), path)
    flags = {p.requires_grad for p in layer.parameters()}
    trainable = "--" if not flags else "Partial" if len(flags) == 2 else str(flags.pop())
    return Row(path, type(layer).__name__, depth, shape, sum(math.prod(p.shape) for p in new), trainable, note)


def _tree_depths(net):
    def walk(layer, pre, depth):
        yield pre, depth
        for name, child in layer.named_children():
            yield from walk(child, f"{pre}.{name}" if pre else name, depth + 1)

    return walk(net, "", 0)


def _input_shapes(input_shape):
    """``[shape, ...]``: one shape per input, each a tuple of positive ints."""
    many = isinstance(input_shape, list) and input_shape and all(isinstance(s, (tuple, list)) for s in input_shape)
    out = []
    for s in (input_shape if many else [input_shape]):
        s = (s,) if isinstance(s, numbers.Integral) and not isinstance(s, bool) else s
        if not isinstance(s, (tuple, list)) or any(
                isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in s):
            raise ValueError(f"summary: input_shape must be a tuple of positive ints (one sample's shape, "
                             f"without the batch axis), got {input_shape!r}")
        out.append(tuple(int(d) for d in s))
    return out


def _float_dtype(net, be):
    for p in net.parameters():
        if be.is_float(p.data.dtype):
            return p.data.dtype
    return be.dtype("float32")


def _itemsize(be, dt):
    name = be.dtype_name(dt)
    bits = re.search(r"\d+", name)
    return 1 if bits is None else int(bits.group()) // 8


def _shapes(out):
    if isinstance(out, (tuple, list)):
        return [_shapes(o) for o in out]
    shape = getattr(out, "shape", None)
    return None if shape is None else tuple(int(d) for d in shape)


def _shape_text(s):
    if s is None:
        return "--"
    if isinstance(s, list):
        return "[" + ", ".join(_shape_text(e) for e in s) + "]"
    return shape_str(s)


def _label(r):
    name = f"{r.name}: {r.layer}" if r.name else r.layer
    return "  " * r.depth + name + (f" ({r.note})" if r.note else "")


def _size(n):
    """Bytes, with KB or MB (10^3, 10^6 bytes, as torchinfo) where it reads better."""
    if n < 1000:
        return f"{n:,} B"
    unit, div = ("KB", 1e3) if n < 1e6 else ("MB", 1e6)
    return f"{n / div:,.2f} {unit} ({n:,} B)"
