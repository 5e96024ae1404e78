"""A checkpoint's architecture as a model, before (or without) building it.

:func:`from_spec` walks a spec (:mod:`xpnet.nets.spec`) and predicts, for every layer xpnet
knows, the parameters and buffers its constructor will make (names, shapes, float or integer)
from its arguments alone, so that a checkpoint's tensors can be compared with them, and the
memory the net will take bounded, before one array is allocated. The rules below mirror the
constructors (``tests/test_checkpoint_fuzz.py`` checks them against the real layers).

A layer registered by the user (:func:`~xpnet.nets.spec.register`) has no rule: its own
arrays are unknown until its constructor runs. The walk still goes through its child specs
(their sizes count), marks the model *opaque*, and the loader compares such a net with the
file only after building it, which it does only once the file's own tensors are within the
size bound. :func:`from_net` makes the same model from a built net.

The model is a tree of :class:`Node` (children by the names ``named_children`` gives), on
which :func:`share` and :func:`tie` replay ``Layer.share``/``Layer.tie`` exactly, so that the
names a loaded net's ``state_dict`` will have and the order of its ``parameters()`` (what an
optimizer's positions index) are known in advance. Problems raise :class:`Invalid` with the
field they concern (``model.layers[3].in_features``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math

from ..layers.base import Layer, Parameter
from ..layers.losses import Loss
from ..validate import flag, int_tuple, positive_int
from . import spec as _spec
from .concat import Concat
from .residual import Residual
from .sequential import Sequential

#: nesting of layers inside layers (composites in composites) that a spec may have
MAX_DEPTH = 100
#: layers a spec may have, all nesting counted
MAX_LAYERS = 100_000
#: a pooling window's positions (its constructor makes a table of them)
MAX_POOL_WINDOW = 2**16
#: every integer in a spec must fit in 64 bits
MAX_INT = 2**63 - 1

FLOAT, INT = "float", "int"
_PLACEMENT = ("backend", "dtype")


class Invalid(Exception):
    """A problem at ``field`` (a path into the checkpoint's metadata), said in ``message``."""

    def __init__(self, field, message):
        if len(field) > 100:  # a path deep into a nested spec: its ends say where
            field = f"{field[:45]}...{field[-50:]}"
        super().__init__(f"{field}: {message}" if field else message)
        self.field, self.message = field, message


class Unbuildable(Invalid):
    """A layer type this process does not know (a layer of one's own, not registered here)."""

    def __init__(self, field, message):
        super().__init__(field, message)
        self.args = (f"cannot rebuild it: {field}: {message}",)

    def __str__(self):
        return self.args[0]


class Param:
    """One Parameter of the model (compared by identity, as tied parameters are)."""

    __slots__ = ("shape",)

    def __init__(self, shape):
        self.shape = tuple(shape)


class Node:
    """A layer: its parameters ``slots`` (attribute -> Param, in attribute order), its
    ``buffers`` (attribute -> (shape, FLOAT or INT)), its ``children`` (name -> Node) and its
    ``spec`` (the JSON it was walked from; None for a node of a built net, see ``layer``)."""

    __slots__ = ("slots", "buffers", "children", "spec", "layer")

    def __init__(self, spec=None, layer=None):
        self.slots, self.buffers, self.children = {}, {}, {}
        self.spec, self.layer = spec, layer

    def spec_json(self):
        return self.spec if self.layer is None else _spec.layer_spec(self.layer)


@dataclasses.dataclass
class Walk:
    """What :func:`from_spec` found: ``root`` (None when opaque), the number of float and
    integer values the built net will hold (``floats``, ``ints``; a lower bound when opaque)
    and the number of ``layers``."""

    root: Node | None
    floats: int = 0
    ints: int = 0
    layers: int = 0

    def nbytes(self, itemsize):
        """Bytes of the net's arrays with floats of ``itemsize`` bytes."""
        return self.floats * itemsize + self.ints * 8


# -- the rules: a known layer's arrays from its arguments --------------------------------------

def _linear(a):
    i = positive_int("Linear", "in_features", a["in_features"])
    o = positive_int("Linear", "out_features", a["out_features"])
    return [("weight", (o, i), True, FLOAT)] + ([("bias", (o,), True, FLOAT)] if flag("Linear", "bias", a["bias"]) else [])


def _embedding(a):
    n = positive_int("Embedding", "num_embeddings", a["num_embeddings"])
    d = positive_int("Embedding", "embedding_dim", a["embedding_dim"])
    return [("weight", (n, d), True, FLOAT)]


def _stateless(a):
    return []


def _rules():
    from .. import layers as L

    rules = {L.Linear: _linear, L.Embedding: _embedding}  # normalization: arch_rules/normalization.py
    for cls in (L.Identity, L.ReLU, L.LeakyReLU, L.Sigmoid, L.Tanh, L.Softmax, L.Dropout, L.Flatten,
                L.Unflatten, L.Reshape, L.AdaptiveAvgPool2d, L.MaxPool2d, L.AvgPool2d):
        rules[cls] = _stateless
    from . import arch_rules  # the families' rules (xpnet/nets/arch_rules/*.py)

    rules.update(arch_rules.collect(L))
    return rules


_RULES: dict = {}


def rule_for(cls):
    """The rule predicting the arrays of a layer of class ``cls`` (None: no rule, opaque)."""
    if not _RULES:
        _RULES.update(_rules())
    return _RULES.get(cls)


def _pool_window(cls):
    """How many axes the window of a windowed pool class has (0: not a windowed pool)."""
    from ..layers.pooling import window_dims

    return window_dims(cls)


# -- walking a spec ------------------------------------------------------------------------

def from_spec(spec, field="model", *, loss=False) -> Walk:
    """The model of ``spec`` (a layer's, or with ``loss=True`` a loss's); see the module doc."""
    walk = Walk(root=None)
    complete = [True]
    root = _walk(spec, field, 0, walk, complete, loss)
    walk.root = root if complete[0] else None
    return walk


def _walk(spec, field, depth, walk, complete, want_loss=False):
    if depth > MAX_DEPTH:
        raise Invalid(field, f"layers nested more than {MAX_DEPTH} deep")
    walk.layers += 1
    if walk.layers > MAX_LAYERS:
        raise Invalid(field, f"the architecture has more than {MAX_LAYERS} layers")
    if isinstance(spec, list):  # a bare list is a Sequential, as spec.build reads it
        spec = {"type": "Sequential", "layers": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise Invalid(field, f"expected a layer spec, an object with a string \"type\", got {_short(spec)}")
    kind = spec["type"]
    cls = _spec._registry().get(kind)
    if cls is None:
        raise Unbuildable(field, f"unknown layer type {_short(kind)}; register it (xpnet.register) before loading; "
                             f"known types: {', '.join(sorted(_spec._registry()))}")
    if want_loss and not issubclass(cls, Loss):
        raise Invalid(field, f"expected a loss, got a {kind} (a layer, not a Loss)")
    if not want_loss and issubclass(cls, Loss) and depth == 0:
        raise Invalid(field, f"expected a layer or a composite, got the loss {kind}")
    args = {k: v for k, v in spec.items() if k != "type"}
    _check_names(cls, kind, args, field)
    node = Node(spec)
    if cls is Sequential:
        if list(args) != ["layers"] or not isinstance(args["layers"], list):
            raise Invalid(field, "a Sequential spec has exactly one key besides \"type\": \"layers\", a list")
        for i, c in enumerate(args["layers"]):
            node.children[str(i)] = _walk(c, f"{field}.layers[{i}]", depth + 1, walk, complete)
        return node
    if cls is Residual:
        _scalars(args, field, skip=("body", "shortcut"))
        if "body" not in args:
            raise Invalid(field, "a Residual spec needs a \"body\"")
        for name in ("body", "shortcut"):
            v = args.get(name)
            if v is None and name == "shortcut":
                continue
            if not _spec._is_spec(v):  # spec.build makes a layer of an object only (a list would stay a list)
                raise Invalid(f"{field}.{name}", f"expected a layer spec, an object with a string \"type\", got {_short(v)}")
            node.children[name] = _walk(v, f"{field}.{name}", depth + 1, walk, complete)
        return node
    if cls is Concat:
        _scalars(args, field, skip=("branches",))
        branches = args.get("branches")
        branches = [branches] if isinstance(branches, dict) else branches
        if not isinstance(branches, list) or not branches:
            raise Invalid(f"{field}.branches", f"expected a non-empty list of layer specs, got {_short(branches)}")
        for i, b in enumerate(branches):
            node.children[str(i)] = _walk(_layer_arg(b, f"{field}.branches[{i}]"), f"{field}.branches[{i}]",
                                          depth + 1, walk, complete)
        return node
    rule = rule_for(cls)
    if rule is not None and any(_spec._is_spec(args.get(k)) for k in getattr(cls, "_layer_arguments", ())):
        rule = None  # a layer where the class takes one (a transformer's activation): walked as a composite
    if rule is None and issubclass(cls, Loss) and _spec.builtin_classes().get(kind) is cls:
        _scalars(args, field)  # xpnet's losses take no layers; their class weights come from these lists
        complete[0] = False
        return node
    if rule is None:  # a layer of one's own: its arrays are known once it is built
        complete[0] = False
        for k, v in args.items():
            if _spec._is_spec(v):
                _walk(v, f"{field}.{k}", depth + 1, walk, complete)
            elif isinstance(v, list) and any(_spec._is_spec(e) for e in v):
                for i, e in enumerate(v):
                    _walk(_layer_arg(e, f"{field}.{k}[{i}]"), f"{field}.{k}[{i}]", depth + 1, walk, complete)
            else:
                _scalar(v, f"{field}.{k}")
        return node
    _scalars(args, field)
    try:
        entries = rule(_with_defaults(cls, args))
        dims = _pool_window(cls)
        if dims:
            k = int_tuple(kind, "kernel_size", args.get("kernel_size"), dims, 1)
            if math.prod(k) > MAX_POOL_WINDOW:  # its constructor makes a table of the window's positions
                raise ValueError(f"{kind}: a {'x'.join(map(str, k))} window has more than {MAX_POOL_WINDOW} positions")
    except ValueError as e:
        raise Invalid(field, str(e)) from None
    for attr, shape, is_param, kind_ in entries:
        n = math.prod(shape)
        if kind_ == FLOAT:
            walk.floats += n
        else:
            walk.ints += n
        if is_param:
            node.slots[attr] = Param(shape)
        else:
            node.buffers[attr] = (tuple(shape), kind_)
    return node


def _layer_arg(v, field):
    if not _spec._is_spec(v) and not isinstance(v, list):
        raise Invalid(field, f"expected a layer spec, an object with a string \"type\", got {_short(v)}")
    return v


@functools.lru_cache(maxsize=None)
def _signature(cls):
    """``(parameters, their defaults)`` of ``cls``'s constructor, looked up once per class
    (``inspect.signature`` takes milliseconds for a class without its own ``__init__``)."""
    params = inspect.signature(cls).parameters
    return params, {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}


def _check_names(cls, kind, args, field):
    params = _signature(cls)[0]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        names = None
    else:
        names = {n for n in params if n not in _PLACEMENT}
    for k in args:
        if k in _PLACEMENT:
            raise Invalid(f"{field}.{k}", f"a spec does not choose its {k} (the loader does)")
        if names is not None and k not in names:
            raise Invalid(field, f"{kind} takes no argument {_short(k)}; it takes {', '.join(sorted(names)) or 'none'}")
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in args
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        raise Invalid(field, f"{kind} needs {', '.join(missing)}")


def _with_defaults(cls, args):
    return {**_signature(cls)[1], **args}


def _scalars(args, field, skip=()):
    """The arguments of a known layer that are not its children: no layer specs among them
    (``spec.build`` would build those, whatever the layer then makes of them)."""
    for k, v in args.items():
        if k in skip:
            continue
        if _spec._is_spec(v) or (isinstance(v, list) and any(_spec._is_spec(e) for e in v)):
            raise Invalid(f"{field}.{k}", "expected a value, got a layer spec (this argument takes no layers)")
        _scalar(v, f"{field}.{k}")


def _scalar(v, field):
    """A constructor argument that is not a layer: JSON data whose integers fit in 64 bits."""
    stack = [v]
    while stack:
        x = stack.pop()
        if type(x) is int and not -MAX_INT - 1 <= x <= MAX_INT:
            raise Invalid(field, f"expected integers that fit in 64 bits, got {_short(x)}")
        if isinstance(x, list):
            stack.extend(x)
        elif isinstance(x, dict):
            stack.extend(x.values())


# -- a built net -------------------------------------------------------------------------------

def from_net(net) -> Node:
    """The model of a built net (before any share or tie), layers and Parameters kept by identity."""
    layers, params = {}, {}

    def node_of(layer, depth):
        if depth > MAX_DEPTH:
            raise Invalid("model", f"layers nested more than {MAX_DEPTH} deep")
        if id(layer) in layers:
            return layers[id(layer)]
        node = layers[id(layer)] = Node(layer=layer)
        for name, v in vars(layer).items():
            if isinstance(v, Parameter):
                node.slots[name] = params.setdefault(id(v), Param(v.shape))
        for name in layer._buffer_names:
            b = getattr(layer, name)
            if b is not None:
                node.buffers[name] = (tuple(b.shape), FLOAT if _is_float(b) else INT)
        for name, child in layer.named_children():
            node.children[name] = node_of(child, depth + 1)
        return node

    if not isinstance(net, Layer):
        raise Invalid("model", f"expected a layer, got {type(net).__name__}")
    return node_of(net, 0)


def _is_float(a):
    from .. import backends

    return backends.backend_of(a).is_float(a.dtype)


# -- shares and ties, replayed ---------------------------------------------------------------------

def resolve(root, path):
    """The node at ``path`` (``""``: the root), as ``Layer.get_submodule`` finds it, or None."""
    node, rest = root, path.split(".") if path else []
    while rest:
        for k in (1, 2):  # list attributes are named "attr.i": two components
            key = ".".join(rest[:k])
            if key in node.children:
                node, rest = node.children[key], rest[k:]
                break
        else:
            return None
    return node


def share(root, groups, field="shared"):
    """Replay ``net.share(*group)`` for each group, checking each path names a sub-layer
    (not the net itself), and that every path of a group describes the same layer (its spec),
    which a layer used in several places does. That also rules out a layer made its own part."""
    seen = set()
    for gi, group in enumerate(groups):
        first = None
        for pi, path in enumerate(group):
            where = f"{field}[{gi}][{pi}]"
            node = resolve(root, path) if path else None
            if node is None:
                raise Invalid(where, f"expected the path of a sub-layer, got {_short(path)}")
            if path in seen:
                raise Invalid(where, f"{_short(path)} appears in more than one place of {field}")
            seen.add(path)
            if first is None:
                first, first_spec = node, node.spec_json()
            elif node.spec_json() != first_spec:
                raise Invalid(where, f"the layer at {_short(path)} is not the same as the one at {_short(group[0])}, "
                                     "so they cannot be one shared layer")
        for path in group[1:]:
            parent, _, name = path.rpartition(".")
            holder = resolve(root, parent)
            if holder is None or name not in holder.children:  # a list attribute: "attr.i"
                parent, _, attr = parent.rpartition(".")
                holder, name = resolve(root, parent), f"{attr}.{name}"
            holder.children[name] = first


def tie(root, groups, field="tied"):
    """Replay ``net.tie(*group)`` for each group: each name a parameter, shapes equal, each
    name in one group only."""
    seen = set()
    for gi, group in enumerate(groups):
        first = None
        for pi, name in enumerate(group):
            where = f"{field}[{gi}][{pi}]"
            owner, attr = parameter_slot(root, name)
            if owner is None:
                raise Invalid(where, f"the net has no parameter {_short(name)}")
            if name in seen:
                raise Invalid(where, f"{_short(name)} appears in more than one tied group")
            seen.add(name)
            p = owner.slots[attr]
            if first is None:
                first = p
            elif p.shape != first.shape:
                raise Invalid(where, f"{_short(name)} has shape {p.shape}, {_short(group[0])} has {first.shape}: "
                                     "they cannot be one parameter")
            owner.slots[attr] = first


def parameter_slot(root, name):
    """``(owner node, attribute)`` of parameter ``name``, or ``(None, None)``."""
    path, _, attr = name.rpartition(".")
    owner = resolve(root, path)
    if owner is None or attr not in owner.slots:
        return None, None
    return owner, attr


def entries(root):
    """``(name, shape, is_param, FLOAT/INT, Param or None)`` for every state-dict entry, in
    ``state_dict`` order (a shared layer's under each of its paths)."""
    out = []

    def walk(node, prefix, depth):
        if depth > MAX_DEPTH:
            raise Invalid("model", f"layers nested more than {MAX_DEPTH} deep")
        for attr, p in node.slots.items():
            out.append((prefix + attr, p.shape, True, FLOAT, p))
        for attr, (shape, kind) in node.buffers.items():
            out.append((prefix + attr, shape, False, kind, None))
        for name, child in node.children.items():
            walk(child, f"{prefix}{name}.", depth + 1)

    walk(root, "", 0)
    return out


def parameters(root):
    """``[(name, Param)]`` as ``net.parameters()`` lists them: each Parameter once, first name."""
    seen, out = set(), []
    for name, _, is_param, _, p in entries(root):
        if is_param and id(p) not in seen:
            seen.add(id(p))
            out.append((name, p))
    return out


def _short(v, limit=60):
    from ..io.safetensors import short

    return short(v, limit)
