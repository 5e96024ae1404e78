"""Parameter and Layer: the contract every layer, loss and container follows.

- ``forward(*inputs)`` returns one array or a tuple of arrays, and keeps what ``backward``
  needs with ``self.save_for_backward(...)``: a stack, so a layer called k times in one
  forward pass holds k entries.
- ``backward(*grads, input_grad=True)`` takes one gradient per output (``None`` for an output
  nobody used), pops the newest entry with ``self.saved()`` (calls come in reverse order of
  the forwards), ADDS ``dL/dp`` into each trainable ``Parameter.grad`` (never overwrites) and
  returns the gradient of each input: one array for a one-input layer, a tuple otherwise,
  ``None`` for an input that has no gradient (indices, masks), and ``None`` for every input
  when ``input_grad=False`` (the caller does not need it; a layer may then skip computing it).
  When every gradient it gets is ``None``, a layer still pops its entry and returns ``None``.
  Each gradient it gets must have its output's place (backend and device), dtype and shape
  (``self.check_grad(dy, like)``: torch's autograd refuses a mismatch too); a composite whose
  children check their own gradients gets the check from them.
- Parameters are rebound, never mutated in place: ``p.data = p.data - lr * p.grad``.
- A frozen parameter (``requires_grad=False``) gets no gradient; layers skip computing it
  (test with :func:`trains`).

Containers and composites recurse through attributes: a ``Parameter`` or ``Layer`` stored on a
layer (or in a list attribute of layers) is found by ``named_parameters``/``state_dict``/``to``
in attribute order, with names as in ``torch.nn`` (``weight``, ``0.bias``, ``body.1.weight``).
A parameter reachable under several names (tied weights) is listed once by
``named_parameters``/``parameters``, and under every name by ``state_dict``, as in torch.

Inference that will never be followed by a backward runs under :func:`no_grad`, where
``save_for_backward`` keeps nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import warnings

from .. import backends
from ._checks import grad_error, no_forward_error

_NO_GRAD = contextvars.ContextVar("xpnet_no_grad", default=False)

# numpy's array type: its arrays all live on the one "cpu" device, so check_grad compares no
# devices for it (reading .device twice costs ~0.2 us, a tenth of a tiny net's check budget)
_HOST_ARRAY = type(backends.get("numpy").xp.empty(0))

# A stack this deep is almost surely forwards without backwards (inference outside no_grad()).
_DEEP_STACK = 10_000


@contextlib.contextmanager
def no_grad():
    """Within this context forward passes keep nothing for backward (inference, evaluation).

    ``with xpnet.no_grad(): y = net(x)``. A backward after such a forward raises, as there is
    nothing to differentiate.
    """
    token = _NO_GRAD.set(True)
    try:
        yield
    finally:
        _NO_GRAD.reset(token)


def grad_enabled() -> bool:
    """False inside :func:`no_grad`."""
    return not _NO_GRAD.get()


def trains(p) -> bool:
    """``p`` is a Parameter that takes gradients (not None, not frozen)."""
    return p is not None and p.requires_grad


class Parameter:
    """A trainable array ``data``, its accumulated gradient ``grad`` (``None`` until backward),
    and ``requires_grad`` (False: frozen; layers then compute no gradient for it and
    optimizers leave it alone)."""

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad: bool = True):
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    def accumulate(self, g):
        """Add ``g`` into ``grad``: the first contribution is taken as is, later ones are summed.
        A frozen parameter ignores it."""
        if self.requires_grad:
            self.grad = g if self.grad is None else self.grad + g

    def requires_grad_(self, requires_grad: bool = True):
        """Freeze (False) or unfreeze (True) this parameter; returns it, as torch does."""
        self.requires_grad = bool(requires_grad)
        if not requires_grad:
            self.grad = None
        return self

    def __repr__(self):
        be = backends.backend_of(self.data)
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.shape}, dtype={be.dtype_name(self.data.dtype)}, backend={be.label}{frozen})"


class Signature:
    """What a gradient for one output must match: the output's array type, device, dtype and
    shape. Forward saves one (``self.save_for_backward(Signature(y))``) where it keeps no array
    of the output's dtype and place; it holds no reference to the output, whose memory is freed
    when nothing else holds it."""

    __slots__ = ("kind", "device", "dtype", "shape")

    def __init__(self, x, shape=None):
        self.kind, self.device, self.dtype = type(x), x.device, x.dtype
        self.shape = tuple(x.shape) if shape is None else tuple(shape)

    def __repr__(self):
        return f"Signature(shape={self.shape}, dtype={self.dtype}, kind={self.kind.__name__}, device={self.device})"


class Layer:
    """Base class of layers, losses and containers.

    Subclasses set their parameters and sub-layers as attributes (``self.weight = Parameter(...)``,
    ``self.body = Sequential(...)``), name any non-trainable state arrays in ``_buffer_names``
    (saved in the state dict), and implement ``forward``/``backward`` (see the module doc).
    """

    training = True
    _buffer_names: tuple = ()
    #: the constructor arguments :meth:`config` reports, read from attributes of the same name
    _config_fields: tuple = ()

    def __call__(self, *inputs, **kwargs):
        return self.forward(*inputs, **kwargs)

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, *grads, input_grad: bool = True):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    # -- what forward keeps ----------------------------------------------------------
    def save_for_backward(self, *values):
        """Push ``values`` for the matching backward (nothing is kept under :func:`no_grad`)."""
        if _NO_GRAD.get():
            return
        stack = self.__dict__.get("_saved")
        if stack is None:
            stack = self.__dict__["_saved"] = []
        stack.append(values)
        if len(stack) == _DEEP_STACK:
            warnings.warn(
                f"{self._tag()} holds {_DEEP_STACK} forward results awaiting backward; "
                "run inference under xpnet.no_grad() (or call clear_saved()) so that they are not kept",
                RuntimeWarning, stacklevel=3,
            )

    def saved(self) -> tuple:
        """Pop what the newest unmatched forward saved (a tuple), or raise if there is none."""
        stack = self.__dict__.get("_saved")
        if not stack:
            raise no_forward_error(self._tag())
        return stack.pop()

    @property
    def pending(self) -> int:
        """How many forwards of this layer (itself, not its children) await their backward."""
        return len(self.__dict__.get("_saved") or ())

    def trim_saved(self, keep: int):
        """Drop this layer's newest saved entries, keeping the oldest ``keep`` (not its children's)."""
        stack = self.__dict__.get("_saved")
        if stack:
            del stack[keep:]

    def clear_saved(self):
        """Drop everything this layer and its children keep for backward (after a forward
        whose backward will never run); returns self."""
        self.__dict__.pop("_saved", None)
        for _, child in self.named_children():
            child.clear_saved()
        return self

    # -- what backward is given ---------------------------------------------------------
    def check_grad(self, dy, like, shape=None):
        """Raise unless ``dy``, a gradient this layer's backward received for one of its outputs,
        has that output's place (array type and device), dtype and shape, as torch's autograd
        requires ("Mismatch in shape"): a wrong ``dy`` would otherwise broadcast silently into
        wrong gradients.

        ``like``: an array that forward kept with the output's type, device and dtype (often
        the output itself, or its input), or the output's :class:`Signature`; ``shape``: the
        output's shape, when it is not ``like``'s. Four comparisons; the message (naming the
        layer, what it expected and what it got) is built only on failure.
        """
        if type(like) is Signature:
            kind, device, dtype = like.kind, like.device, like.dtype
            if shape is None:
                shape = like.shape
            if type(dy) is not kind or dy.dtype != dtype or dy.shape != shape or (
                    kind is not _HOST_ARRAY and dy.device != device):
                raise grad_error(self._tag(), dy, kind, device, dtype, shape, self._grad_note())
            return
        if shape is None:
            shape = like.shape
        kind = type(like)
        if type(dy) is not kind or dy.dtype != like.dtype or dy.shape != shape or (
                kind is not _HOST_ARRAY and dy.device != like.device):
            raise grad_error(self._tag(), dy, kind, like.device, like.dtype, shape, self._grad_note())

    def _grad_note(self) -> str:
        """Whose shape a gradient must have, as error messages say it."""
        return "its output's"

    # -- the tree ----------------------------------------------------------------
    def named_children(self):
        """``(name, layer)`` for each direct sub-layer: Layer attributes, and the items of list
        or tuple attributes of Layers (named ``attr.i``)."""
        for name, v in vars(self).items():
            if isinstance(v, Layer):
                yield name, v
            elif isinstance(v, (list, tuple)) and v and name != "_saved" and all(isinstance(e, Layer) for e in v):
                for i, e in enumerate(v):
                    yield f"{name}.{i}", e

    def named_modules(self, prefix=""):
        """``(name, layer)`` for this layer (name ``prefix``) and every layer below it, each once."""
        seen = set()

        def walk(layer, pre):
            if id(layer) in seen:
                return
            seen.add(id(layer))
            yield pre, layer
            for name, child in layer.named_children():
                yield from walk(child, f"{pre}.{name}" if pre else name)

        yield from walk(self, prefix)

    def named_parameters(self, prefix="", remove_duplicate: bool = True):
        """``(name, Parameter)`` pairs, names as ``torch.nn`` gives them; a tied parameter is
        listed once, under its first name, unless ``remove_duplicate=False``."""
        seen = set()
        for name, owner, attr, is_param in self.state_entries(prefix):
            if not is_param:
                continue
            p = getattr(owner, attr)
            if remove_duplicate:
                if id(p) in seen:
                    continue
                seen.add(id(p))
            yield name, p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=""):
        """``(name, array)`` for non-trainable state (running statistics and the like)."""
        for name, owner, attr, is_param in self.state_entries(prefix):
            if not is_param:
                yield name, getattr(owner, attr)

    def state_entries(self, prefix=""):
        """``(full name, owner layer, attribute, is_parameter)`` for every parameter and buffer,
        under every name it is reachable by (what ``state_dict`` and ``to`` walk)."""
        for name, v in vars(self).items():
            if isinstance(v, Parameter):
                yield prefix + name, self, name, True
        for name in self._buffer_names:
            if getattr(self, name) is not None:
                yield prefix + name, self, name, False
        for name, child in self.named_children():
            yield from child.state_entries(f"{prefix}{name}.")

    def tied_parameters(self):
        """Groups of names that reach one Parameter: ``[["0.weight", "2.weight"], ...]``."""
        names = {}
        for name, p in self.named_parameters(remove_duplicate=False):
            names.setdefault(id(p), []).append(name)
        return [group for group in names.values() if len(group) > 1]

    def get_parameter(self, name):
        """The Parameter called ``name`` (``"0.weight"``), or KeyError."""
        owner, attr = self._split(name)
        p = getattr(owner, attr, None)
        if not isinstance(p, Parameter):
            raise KeyError(f"{type(self).__name__} has no parameter {name!r}")
        return p

    def get_submodule(self, path):
        """The layer at ``path`` (``"body.0"``; ``""`` is this layer), or KeyError."""
        layer = self
        rest = path.split(".") if path else []
        while rest:
            children = dict(layer.named_children())
            # list attributes are named "attr.i": take two components when one does not match
            for k in (1, 2):
                key = ".".join(rest[:k])
                if key in children:
                    layer, rest = children[key], rest[k:]
                    break
            else:
                raise KeyError(f"{type(self).__name__} has no sub-layer {path!r}")
        return layer

    def tie(self, *names):
        """Make every named parameter the first one (``net.tie("0.weight", "4.weight")``)."""
        first = self.get_parameter(names[0])
        for name in names[1:]:
            other = self.get_parameter(name)
            if other.shape != first.shape:
                raise ValueError(f"{type(self).__name__}.tie: {name!r} has shape {other.shape}, {names[0]!r} has {first.shape}")
            owner, attr = self._split(name)
            setattr(owner, attr, first)
        return self

    def shared_layers(self):
        """Groups of paths that reach one layer object (a layer used in several places):
        ``[["0", "2"], ...]``; a shared composite's children are not listed again."""
        paths = {}

        def walk(layer, pre):
            for name, child in layer.named_children():
                path = f"{pre}.{name}" if pre else name
                seen = id(child) in paths
                paths.setdefault(id(child), []).append(path)
                if not seen:
                    walk(child, path)

        walk(self, "")
        return [group for group in paths.values() if len(group) > 1]

    def share(self, *paths):
        """Put the layer at ``paths[0]`` in place of each other path (``net.share("0", "2")``)."""
        first = self.get_submodule(paths[0])
        for path in paths[1:]:
            parent, _, name = path.rpartition(".")
            holder = self.get_submodule(parent) if parent else self
            if name not in dict(holder.named_children()):  # a list attribute: "attr.i"
                parent, _, attr = parent.rpartition(".")
                holder, name = (self.get_submodule(parent) if parent else self), f"{attr}.{name}"
            holder.set_child(name, first)
        return self

    def set_child(self, name, layer):
        """Replace the direct sub-layer ``name`` (as ``named_children`` names it) by ``layer``."""
        attr, _, index = name.partition(".")
        if index:
            getattr(self, attr)[int(index)] = layer
        elif isinstance(getattr(self, attr, None), Layer):
            setattr(self, attr, layer)
        else:
            raise KeyError(f"{type(self).__name__} has no sub-layer {name!r}")

    def _split(self, name):
        """``(layer, attribute)`` for a dotted parameter name."""
        path, _, attr = name.rpartition(".")
        try:
            return self.get_submodule(path), attr
        except KeyError:
            raise KeyError(f"{type(self).__name__} has no parameter {name!r}") from None

    # -- modes and gradients -----------------------------------------------------------
    def train(self, mode: bool = True):
        """Training mode (dropout active, batch statistics); returns self."""
        self.training = bool(mode)
        for _, child in self.named_children():
            child.train(mode)
        return self

    def eval(self):
        """Evaluation mode; returns self."""
        return self.train(False)

    def zero_grad(self):
        """Forget accumulated gradients (set them to ``None``, as ``torch`` does by default)."""
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, requires_grad: bool = True):
        """Freeze (False) or unfreeze every parameter of this layer and its children; returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # -- state -----------------------------------------------------------------------
    def state_dict(self):
        """``{name: array}`` of parameters and buffers, keys and layouts as in ``torch.nn``
        (a tied parameter appears under each of its names).

        The arrays are the live ones; since xpnet never updates in place, the dict is
        a consistent snapshot.
        """
        out = {}
        for full, owner, attr, is_param in self.state_entries():
            v = getattr(owner, attr)
            out[full] = v.data if is_param else v
        return out

    def load_state_dict(self, state, strict: bool = True):
        """Load ``{name: array}``: numpy arrays, or arrays of any backend, or torch tensors.

        Every value is converted to the backend, device and dtype of the entry it
        replaces. Missing or unexpected keys and shape mismatches raise ``KeyError``/``ValueError``.
        A lazy layer below this one that has not run yet takes its shapes from ``state`` first
        (as torch's lazy modules do), so a saved net loads into a fresh one before any dry run.
        """
        for name, m in list(self.named_modules()):
            if name and getattr(m, "has_uninitialized_params", None) and m.has_uninitialized_params():
                sub = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
                if sub:
                    m.load_state_dict(sub, strict=False)
        slots = {full: (owner, attr, is_param) for full, owner, attr, is_param in self.state_entries()}
        missing = [k for k in slots if k not in state]
        unexpected = [k for k in state if k not in slots]
        if strict and (missing or unexpected):
            raise KeyError(
                f"{type(self).__name__}.load_state_dict: missing keys {missing}, unexpected keys {unexpected}"
            )
        for full, (owner, attr, is_param) in slots.items():
            if full not in state:
                continue
            cur = getattr(owner, attr).data if is_param else getattr(owner, attr)
            value = state[full]
            shape = tuple(getattr(value, "shape", ()))
            if shape != tuple(cur.shape):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {full!r} expected shape {tuple(cur.shape)}, got {shape}"
                )
            be = backends.backend_of(cur)
            new = be.asarray(value, dtype=be.dtype_name(cur.dtype), copy=True)  # never alias the caller's array
            if is_param:
                getattr(owner, attr).data = new
            else:
                setattr(owner, attr, new)
        return self

    def to(self, backend=None, dtype=None):
        """Move every parameter (and its gradient) and buffer to ``backend`` and/or floating ``dtype``.

        ``backend``: a name (``"torch"``, ``"array_api_strict:device1"``) or a Backend.
        ``dtype``: a name (``"float64"``) or a namespace dtype; integer buffers keep theirs.
        Returns self.
        """
        target = None if backend is None else backends.get(backend)
        done = set()
        for _, owner, attr, is_param in self.state_entries():
            if is_param:
                p = getattr(owner, attr)
                if id(p) in done:  # tied: moved once
                    continue
                done.add(id(p))
                p.data = _moved(p.data, target, dtype)
                if p.grad is not None:
                    p.grad = _moved(p.grad, target, dtype)
            else:
                setattr(owner, attr, _moved(getattr(owner, attr), target, dtype))
        for _, layer in self.named_modules():
            layer._moved_to(target, dtype)
        return self

    def _moved_to(self, backend, dtype):
        """Hook for a layer holding arrays outside parameters and buffers (e.g. a loss's class
        weights that are not in the state dict) to move them too."""

    # -- architecture ----------------------------------------------------------------------
    def config(self) -> dict:
        """The constructor arguments that rebuild this layer, as JSON-compatible values (and
        layers, for a container's children): ``type(layer)(**layer.config())`` makes an equal
        architecture (fresh weights).

        Checkpoints store it (see :mod:`xpnet.nets.spec`). A subclass lists its arguments in
        ``_config_fields``; a ``bias`` field reports whether the layer has a bias.
        """
        return {f: _jsonable(getattr(self, f) is not None if f == "bias" else getattr(self, f))
                for f in self._config_fields}

    # -- printing ------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The arguments shown inside ``Name(...)``."""
        return ""

    def __repr__(self):
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in children]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"

    def __str__(self):
        return repr(self)

    def _tag(self) -> str:
        """How error messages name this layer, e.g. ``Linear(784 -> 256)``."""
        return f"{type(self).__name__}({self.extra_repr()})"


def _jsonable(v):
    """Tuples become lists (JSON has no tuples); numbers, strings, booleans, None and layers pass."""
    if isinstance(v, (tuple, list)):
        return [_jsonable(e) for e in v]
    return v


def _moved(x, target, dtype):
    src = backends.backend_of(x)
    be = src if target is None else target
    if dtype is not None and src.is_float(x.dtype):
        name = dtype if isinstance(dtype, str) else backends.dtype_name(dtype)
    else:
        name = src.dtype_name(x.dtype)
    if be is src and name == src.dtype_name(x.dtype):
        return x
    return be.asarray(x, dtype=name)
