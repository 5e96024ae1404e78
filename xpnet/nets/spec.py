"""Architectures as JSON data: what a checkpoint stores, and what ``xpnet train --model spec.json`` reads.

A layer's spec is ``{"type": class name, **layer.config()}``, where a config value that is a
layer becomes its own spec and a list of layers a list of specs, so composites nest to any
depth (a bare list is taken as a Sequential)::

    {"type": "Sequential", "layers": [
        {"type": "Conv2d", "in_channels": 3, "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"type": "Residual",
         "body": {"type": "Sequential", "layers": [{"type": "ReLU"}, {"type": "Conv2d", ...}]},
         "shortcut": null},
        {"type": "Concat", "branches": [{"type": "Identity"}, {"type": "Conv2d", ...}], "dim": 1}]}

Building is the reverse: an argument that is an object with a ``"type"`` key is built as a layer,
a list of such objects as a list of layers, and a constructor taking ``*args`` (``Sequential(*layers)``,
``Concat(*branches)``, ``Reshape(*shape)``) receives that argument's list positionally. Errors name
the place in the spec (``model.layers[3].body``).

Building a spec only calls the constructors of registered classes with plain JSON values:
nothing in a spec can run other code. Every layer and loss of :mod:`xpnet.layers`, and
Sequential, Residual and Concat, are registered; :func:`register` adds a layer of your own.
"""

from __future__ import annotations

import functools
import inspect
import json

from .. import layers as _layers
from ..layers.base import Layer
from ..layers.losses import Loss
from .concat import Concat
from .residual import Residual
from .sequential import Sequential

_REGISTRY: dict = {}
#: xpnet type name -> the torch.nn.Module class (or factory) given to ``register(..., torch=)``
_TORCH_TWINS: dict = {}
_PLACEMENT = ("backend", "dtype")


def register(cls=None, *, torch=None):
    """Make a Layer or Loss subclass buildable from specs (and so loadable from checkpoints).

    Usable as ``register(cls)``, ``@register`` or ``@register(torch=TwinModule)``. The class's
    ``config()`` must return its constructor arguments (layers allowed as values: a composite's
    children). ``torch``: a ``torch.nn.Module`` class (or a factory of one) computing the same
    function, used by :func:`~xpnet.nets.interop.to_torch`/``from_torch`` (see there).
    """
    if cls is None:
        return functools.partial(register, torch=torch)
    if not (isinstance(cls, type) and issubclass(cls, (Layer, Loss))):
        raise TypeError(f"register expected a Layer or Loss subclass, got {cls!r}")
    if torch is not None and not callable(torch):
        raise TypeError(f"register: torch= must be a torch.nn.Module class or a factory of one, got {torch!r}")
    known = _registry().get(cls.__name__)
    if known is not None and known is not cls:
        raise ValueError(f"register: another class named {cls.__name__!r} is already registered ({known.__module__})")
    _REGISTRY[cls.__name__] = cls
    if torch is not None:
        _TORCH_TWINS[cls.__name__] = torch
    return cls


def _registry():
    if not _REGISTRY:
        _REGISTRY.update(builtin_classes())
    return _REGISTRY


@functools.lru_cache(maxsize=1)
def _builtins():
    out = {}
    for name in _layers.__all__:
        obj = getattr(_layers, name)
        if isinstance(obj, type) and issubclass(obj, (Layer, Loss)) and obj not in (Layer, Loss):
            out[name] = obj
    for cls in (Sequential, Residual, Concat):
        out[cls.__name__] = cls
    return out


def builtin_classes() -> dict:
    """``{name: class}`` of what xpnet itself registers (its layers, losses and containers)."""
    return dict(_builtins())


def _is_layer(v):
    return isinstance(v, (Layer, Loss))


def layer_spec(layer) -> dict:
    """The JSON-compatible spec of ``layer`` (a layer, composite or loss), children included."""
    cls = type(layer)
    if _registry().get(cls.__name__) is not cls:
        raise TypeError(
            f"cannot describe {cls.__module__}.{cls.__name__}: it is not a registered layer; "
            f"decorate it with @xpnet.nets.spec.register and give it a config() of its constructor arguments"
        )
    return {"type": cls.__name__, **{k: _describe(v) for k, v in layer.config().items()}}


def _describe(v):
    if _is_layer(v):
        return layer_spec(v)
    if isinstance(v, (list, tuple)):
        return [_describe(e) for e in v]
    return v


def build(spec, *, backend=None, dtype=None):
    """A new layer (or loss) from ``spec``, its parameters freshly initialised on ``backend``
    (default: the current one) in ``dtype`` (default float32)."""
    return _build(spec, backend, dtype, "model")


def _is_spec(v):
    return isinstance(v, dict) and "type" in v


def _build(spec, backend, dtype, where):
    if isinstance(spec, list):
        spec = {"type": "Sequential", "layers": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ValueError(f"{where}: expected a layer spec, an object with a string \"type\", got {_short(spec)}")
    kind = spec["type"]
    cls = _registry().get(kind)
    if cls is None:
        raise ValueError(f"{where}: unknown layer type {kind!r}; known types: {', '.join(sorted(_registry()))}")
    args = {k: v for k, v in spec.items() if k != "type"}
    if cls is Sequential:
        if list(args) != ["layers"] or not isinstance(args["layers"], list):
            raise ValueError(f"{where}: a Sequential spec has exactly one key besides \"type\": \"layers\", a list")
        args["layers"] = [_build(c, backend, dtype, f"{where}.layers[{i}]") for i, c in enumerate(args["layers"])]
    else:
        for k, v in args.items():
            if _is_spec(v):
                args[k] = _build(v, backend, dtype, f"{where}.{k}")
            elif isinstance(v, list) and any(_is_spec(e) for e in v):  # a list of layers: each must be a spec
                args[k] = [_build(e, backend, dtype, f"{where}.{k}[{i}]") for i, e in enumerate(v)]
    params, var_positional = _signature(cls)
    placement = {k: v for k, v in (("backend", backend), ("dtype", dtype)) if k in params and v is not None}
    try:
        return construct(cls, args, var_positional, **placement)
    except TypeError as e:
        raise ValueError(f"{where}: bad arguments for {kind}: {e}") from None
    except ValueError as e:  # the constructor's own message, located
        raise ValueError(f"{where}: {e}") from None
    except (OverflowError, MemoryError) as e:  # sizes no array can have: Linear(10**400, 2)
        raise ValueError(f"{where}: {kind} with {_short(args)} is too large to build ({type(e).__name__}: {e})") from None


def construct(factory, args, var_positional, **extra):
    """``factory(**args, **extra)``, with the ``var_positional`` argument's list (if any) passed
    positionally: how a spec's arguments reach a constructor (and a torch twin, in interop)."""
    if var_positional is not None and var_positional in args:
        args = dict(args)
        rest = args.pop(var_positional)
        return factory(*(rest if isinstance(rest, (list, tuple)) else (rest,)), **args, **extra)
    return factory(**args, **extra)


@functools.lru_cache(maxsize=None)
def _signature(cls):
    """(parameter names, name of the ``*args`` parameter or None), looked up once per class."""
    params = inspect.signature(cls).parameters
    var = next((p.name for p in params.values() if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
    return frozenset(params), var


def config_fields(cls) -> tuple:
    """The names of the config entries of ``cls``: its ``_config_fields``, or else its
    constructor's arguments (less ``backend``/``dtype``/``**kwargs``), ``*args`` included."""
    fields = getattr(cls, "_config_fields", ())
    if fields:
        return tuple(fields)
    return tuple(p.name for p in inspect.signature(cls).parameters.values()
                 if p.kind is not inspect.Parameter.VAR_KEYWORD and p.name not in _PLACEMENT)


def var_positional(cls):
    """The name of the ``*args`` constructor argument of ``cls`` (``"layers"`` for Sequential), or None."""
    return _signature(cls)[1]


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
    """``{"type": "Adam", **defaults}``: the optimizer's ``config()`` (its hyperparameters,
    without parameters, groups or state), JSON-compatible."""
    return jsonable(opt.config())


def build_optimizer(spec, params):
    """The optimizer that ``spec`` (from :func:`optimizer_spec`) describes, over ``params``
    (Parameters, or param-group dicts); lists in the spec become tuples (``betas``)."""
    from . import optim

    if isinstance(spec, dict):
        spec = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
    return optim.build_optimizer(spec, params)


def jsonable(v):
    """``v`` with tuples turned into lists, recursively (JSON has no tuples)."""
    if isinstance(v, dict):
        return {k: jsonable(e) for k, e in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(e) for e in v]
    return v


def _short(obj):
    s = repr(obj)
    return s if len(s) <= 80 else s[:77] + "..."
