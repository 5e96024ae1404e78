"""Parameter and Layer: the contract every layer follows.

- ``forward(x)`` returns ``y`` and keeps only what ``backward`` needs.
- ``backward(dy)`` returns ``dx = dL/dx`` and ADDS ``dL/dp`` into each ``Parameter.grad``
  (never overwrites), then drops what forward kept.
- Parameters are rebound, never mutated in place: ``p.data = p.data - lr * p.grad``.

Containers recurse through attributes: a ``Parameter`` or ``Layer`` stored on a layer
is found by ``named_parameters``/``state_dict``/``to`` in attribute order, with names
as in ``torch.nn`` (``weight``, ``0.bias``).
"""

from __future__ import annotations

from .. import backends


class Parameter:
    """A trainable array ``data`` and its accumulated gradient ``grad`` (``None`` until backward)."""

    __slots__ = ("data", "grad")

    def __init__(self, data):
        self.data = data
        self.grad = None

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    def accumulate(self, g):
        """Add ``g`` into ``grad``: the first contribution is taken as is, later ones are summed."""
        self.grad = g if self.grad is None else self.grad + g

    def __repr__(self):
        be = backends.backend_of(self.data)
        return f"Parameter(shape={self.shape}, dtype={be.dtype_name(self.data.dtype)}, backend={be.label})"


class Layer:
    """Base class of layers and containers.

    Subclasses set their parameters as attributes (``self.weight = Parameter(...)``),
    name any non-trainable state arrays in ``_buffer_names`` (saved in the state dict),
    and implement ``forward``/``backward``.
    """

    training = True
    _buffer_names: tuple = ()
    #: the constructor arguments :meth:`config` reports, read from attributes of the same name
    _config_fields: tuple = ()

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    # -- the tree ----------------------------------------------------------------
    def named_children(self):
        """``(name, layer)`` for each direct sub-layer."""
        for name, v in vars(self).items():
            if isinstance(v, Layer):
                yield name, v

    def named_parameters(self, prefix=""):
        """``(name, Parameter)`` pairs, names as ``torch.nn`` gives them."""
        for name, v in vars(self).items():
            if isinstance(v, Parameter):
                yield prefix + name, v
        for name, child in self.named_children():
            yield from child.named_parameters(f"{prefix}{name}.")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=""):
        """``(name, array)`` for non-trainable state (running statistics and the like)."""
        for name in self._buffer_names:
            v = getattr(self, name)
            if v is not None:
                yield prefix + name, v
        for name, child in self.named_children():
            yield from child.named_buffers(f"{prefix}{name}.")

    def _slots(self, prefix=""):
        """``(full name, owner, attribute, is_parameter)`` for every parameter and buffer."""
        for name, v in vars(self).items():
            if isinstance(v, Parameter):
                yield prefix + name, self, name, True
        for name in self._buffer_names:
            if getattr(self, name) is not None:
                yield prefix + name, self, name, False
        for name, child in self.named_children():
            yield from child._slots(f"{prefix}{name}.")

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

    # -- state -----------------------------------------------------------------------
    def state_dict(self):
        """``{name: array}`` of parameters and buffers, keys and layouts as in ``torch.nn``.

        The arrays are the live ones; since xpnet never updates in place, the dict is
        a consistent snapshot.
        """
        out = {}
        for full, owner, attr, is_param in self._slots():
            v = getattr(owner, attr)
            out[full] = v.data if is_param else v
        return out

    def load_state_dict(self, state, strict: bool = True):
        """Load ``{name: array}``: numpy arrays, or arrays of any backend, or torch tensors.

        Every value is converted to the backend, device and dtype of the entry it
        replaces. Missing or unexpected keys and shape mismatches raise ``KeyError``/``ValueError``.
        """
        slots = {full: (owner, attr, is_param) for full, owner, attr, is_param in self._slots()}
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
        for _, owner, attr, is_param in self._slots():
            if is_param:
                p = getattr(owner, attr)
                p.data = _moved(p.data, target, dtype)
                if p.grad is not None:
                    p.grad = _moved(p.grad, target, dtype)
            else:
                setattr(owner, attr, _moved(getattr(owner, attr), target, dtype))
        return self

    # -- architecture ----------------------------------------------------------------------
    def config(self) -> dict:
        """The constructor arguments that rebuild this layer, as JSON-compatible values:
        ``type(layer)(**layer.config())`` makes an equal architecture (fresh weights).

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
    """Tuples become lists (JSON has no tuples); numbers, strings, booleans and None pass."""
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
