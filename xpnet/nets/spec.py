"""Architectures as JSON data: what a checkpoint stores, and what ``xpnet train --model spec.json`` reads.

A layer's spec is ``{"type": class name, **layer.config()}``; a Sequential's is
``{"type": "Sequential", "layers": [spec, ...]}`` (a bare list is taken as a Sequential)::

    {"type": "Sequential", "layers": [
        {"type": "Flatten"},
        {"type": "Linear", "in_features": 64, "out_features": 128},
        {"type": "ReLU"},
        {"type": "Linear", "in_features": 128, "out_features": 10}]}

Building a spec only calls the constructors of registered classes with plain JSON values:
nothing in a spec can run other code. Every layer and loss of :mod:`xpnet.layers` is
registered; :func:`register` adds a layer of your own.
"""

from __future__ import annotations

import inspect
import json

from .. import layers as _layers
from ..layers.base import Layer
from ..layers.losses import Loss
from .sequential import Sequential

_REGISTRY: dict = {}


def register(cls):
    """Make a Layer or Loss subclass buildable from specs (and so loadable from checkpoints);
    usable as a class decorator. Its ``config()`` must return its constructor arguments."""
    if not (isinstance(cls, type) and issubclass(cls, (Layer, Loss))):
        raise TypeError(f"register expected a Layer or Loss subclass, got {cls!r}")
    known = _registry().get(cls.__name__)
    if known is not None and known is not cls:
        raise ValueError(f"register: another class named {cls.__name__!r} is already registered ({known.__module__})")
    _REGISTRY[cls.__name__] = cls
    return cls


def _registry():
    if not _REGISTRY:
        for name in _layers.__all__:
            obj = getattr(_layers, name)
            if isinstance(obj, type) and issubclass(obj, (Layer, Loss)) and obj not in (Layer, Loss):
                _REGISTRY[name] = obj
        _REGISTRY["Sequential"] = Sequential
    return _REGISTRY


def layer_spec(layer) -> dict:
    """The JSON-compatible spec of ``layer`` (a Layer, Sequential or Loss)."""
    cls = type(layer)
    if _registry().get(cls.__name__) is not cls:
        raise TypeError(
            f"cannot describe {cls.__module__}.{cls.__name__}: it is not a registered layer; "
            f"decorate it with @xpnet.nets.spec.register and give it a config() of its constructor arguments"
        )
    if isinstance(layer, Sequential):
        return {"type": "Sequential", "layers": [layer_spec(child) for child in layer]}
    return {"type": cls.__name__, **layer.config()}


def build(spec, *, backend=None, dtype=None):
    """A new layer (or loss) from ``spec``, its parameters freshly initialised on ``backend``
    (default: the current one) in ``dtype`` (default float32)."""
    return _build(spec, backend, dtype, "model")


def _build(spec, backend, dtype, where):
    if isinstance(spec, list):
        spec = {"type": "Sequential", "layers": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ValueError(f"{where}: expected a layer spec, an object with a string \"type\", got {_short(spec)}")
    args = {k: v for k, v in spec.items() if k != "type"}
    kind = spec["type"]
    cls = _registry().get(kind)
    if cls is None:
        raise ValueError(f"{where}: unknown layer type {kind!r}; known types: {', '.join(sorted(_registry()))}")
    if cls is Sequential:
        children = args.pop("layers", None)
        if args or not isinstance(children, list):
            raise ValueError(f"{where}: a Sequential spec has exactly one key besides \"type\": \"layers\", a list")
        return Sequential(*(_build(c, backend, dtype, f"{where}.layers[{i}]") for i, c in enumerate(children)))
    params = inspect.signature(cls).parameters
    positional = [p for p in params.values() if p.kind is inspect.Parameter.VAR_POSITIONAL]
    try:
        placement = {k: v for k, v in (("backend", backend), ("dtype", dtype)) if k in params and v is not None}
        if positional and list(args) == [positional[0].name]:  # Reshape(*shape): {"shape": [1, 28, 28]}
            return cls(args[positional[0].name], **placement)
        return cls(**args, **placement)
    except TypeError as e:
        raise ValueError(f"{where}: bad arguments for {kind}: {e}") from None


def load_spec(path):
    """The spec in the JSON file ``path``; a missing file or bad JSON raises with the path named."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"model spec {path}: no such file") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"model spec {path}: not valid JSON ({e})") from None


def optimizer_spec(opt) -> dict:
    """``{"type": "Adam", **hyperparameters}``: the optimizer without its parameters or state."""
    return {"type": type(opt).__name__, **_jsonable(opt._hyper())}


def build_optimizer(spec, params):
    """The optimizer that ``spec`` (from :func:`optimizer_spec`) describes, over ``params``."""
    from . import optim, optimizers

    kinds = {c.__name__: c for c in (optim.SGD, optimizers.Adam, optimizers.AdamW, optimizers.RMSprop)}
    if not isinstance(spec, dict) or spec.get("type") not in kinds:
        raise ValueError(f"optimizer: expected a spec with \"type\" one of {sorted(kinds)}, got {_short(spec)}")
    args = {k: v for k, v in spec.items() if k != "type"}
    try:
        return kinds[spec["type"]](params, **args)
    except TypeError as e:
        raise ValueError(f"optimizer: bad arguments for {spec['type']}: {e}") from None


def _jsonable(d):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _short(obj):
    s = repr(obj)
    return s if len(s) <= 80 else s[:77] + "..."
