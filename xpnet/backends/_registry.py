"""Choosing a backend: by name, by context, by environment, or from an array."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib
import os

from ._backend import Backend

#: the backend names :func:`get` accepts ("auto" picks cupy when a GPU is usable, else numpy)
NAMES = ("numpy", "cupy", "torch", "array_api_strict", "auto")
ENV_VAR = "XPNET_BACKEND"

_MODULES = {"numpy": "_numpy", "torch": "_torch", "cupy": "_cupy", "array_api_strict": "_strict"}
_INSTALL_HINT = {
    "numpy": "pip install 'numpy>=2'",
    "torch": "pip install 'xpnet[torch]'",
    "cupy": "pip install 'xpnet[cuda13]' (or 'xpnet[cuda12]' where nvidia-smi reports CUDA 12) on a machine with an NVIDIA GPU",
    "array_api_strict": "pip install array-api-strict",
}

_current: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("xpnet_backend", default=None)
_instances: dict = {}  # (name, device request) -> Backend
_canonical: dict = {}  # Backend.label -> Backend: one instance (and one generator) per place
_by_type: dict = {}  # array type -> backend name
_by_place: dict = {}  # (name, device) -> Backend, for backend_of()


class BackendUnavailable(RuntimeError):
    """A known backend that cannot run here; the message says why and what to install."""


@dataclasses.dataclass(frozen=True)
class Availability:
    """Whether a backend is usable here; ``detail`` is its description, or why not."""

    name: str
    usable: bool
    detail: str


def _module(name):
    try:
        return importlib.import_module(f"{__package__}.{_MODULES[name]}")
    except ImportError as e:
        raise BackendUnavailable(
            f"backend {name!r} is unusable: {e.name or name} is not installed ({e}); install it with {_INSTALL_HINT[name]}"
        ) from None


def _split(spec):
    """'torch:cuda' -> ('torch', 'cuda'); 'numpy' -> ('numpy', None)."""
    name, _, device = spec.partition(":")
    return name.strip(), (device.strip() or None)


def _auto_name():
    try:
        _module("cupy").make()
        return "cupy"
    except Exception:  # any failure to start CuPy means "no usable GPU", and auto falls back
        return "numpy"


def get(name=None, device=None) -> Backend:
    """The Backend called ``name`` (optionally ``"name:device"``), on ``device``.

    ``name=None`` gives the current default: the innermost :func:`use`, else the
    environment variable ``XPNET_BACKEND``, else numpy. A Backend passes through.
    The same place always gives the same instance, so its generator is shared.
    """
    if isinstance(name, Backend):
        return name
    if name is None:
        cur = _current.get()
        if cur is not None and device is None:
            return cur
        name = os.environ.get(ENV_VAR, "").strip() or "numpy"
    if not isinstance(name, str):
        raise TypeError(f"backend must be a name or a Backend, got {type(name).__name__}")
    key = (name, None if device is None else str(device))
    be = _instances.get(key)
    if be is not None:
        return be
    base, dev = _split(name)
    if device is not None:
        dev = device
    if base not in NAMES:
        raise ValueError(f"unknown backend {base!r}; valid names are {', '.join(NAMES)}")
    if base == "auto":
        base = _auto_name()
    try:
        made = _module(base).make(dev)
    except (RuntimeError, OSError) as e:
        if isinstance(e, BackendUnavailable):
            raise
        raise BackendUnavailable(f"backend {base!r} is unusable here: {e}") from None
    be = _canonical.setdefault(made.label, made)
    _instances[key] = be
    return be


@contextlib.contextmanager
def use(name, device=None):
    """Make ``name`` the default backend inside a ``with`` block (per thread and task).

    >>> with use("torch"):
    ...     net = Sequential(Linear(2, 3))   # parameters are torch tensors
    """
    token = _current.set(get(name, device))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def available() -> dict:
    """``{name: Availability}`` for every backend (and torch on CUDA): usable here, and if not, why."""
    out = {}
    for spec in ("numpy", "torch", "torch:cuda", "cupy", "array_api_strict"):
        try:
            be = get(spec)
            out[spec] = Availability(spec, True, be.describe())
        except (BackendUnavailable, ValueError) as e:
            out[spec] = Availability(spec, False, str(e))
    return out


def _classify(x):
    root = type(x).__module__.partition(".")[0]
    if root in _MODULES:
        try:
            mod = _module(root)
        except BackendUnavailable:
            mod = None
        if mod is not None and mod.is_array(x):
            _by_type[type(x)] = root
            return root
    raise TypeError(
        f"expected an array of numpy, torch, cupy or array_api_strict, got {type(x).__module__}.{type(x).__name__}"
    )


def backend_of(x) -> Backend:
    """The Backend that ``x`` lives on (its library and its device). Cheap: cached by type and device."""
    name = _by_type.get(type(x)) or _classify(x)
    key = (name, None if name == "numpy" else x.device)
    be = _by_place.get(key)
    if be is None:
        be = _by_place[key] = get(name, device=key[1])
    return be


def namespace_of(x):
    """The array namespace of ``x``; resolve it once per call, not once per operation."""
    return backend_of(x).xp


def _foreign_to_host(obj, copy=False):
    """A host (numpy) copy of an array of any backend; Python data and numpy arrays pass as they
    are unless ``copy``."""
    name = _by_type.get(type(obj))
    if name is None:
        root = type(obj).__module__.partition(".")[0]
        if root in _MODULES and root != "numpy":
            try:
                name = _classify(obj)
            except TypeError:
                name = None
    if name is not None and name != "numpy":
        return backend_of(obj).to_numpy(obj)
    return _module("numpy").host_array(obj, copy)


def to_numpy(x):
    """A host numpy copy of an array of any backend."""
    return backend_of(x).to_numpy(x)


def manual_seed(seed: int) -> None:
    """Reseed the generator of every backend created so far, and the default seed of those to come."""
    Backend.default_seed = seed
    for be in _canonical.values():
        be.manual_seed(seed)


def torch_module():
    """The ``torch`` package itself, for interop with ``torch.nn`` (:func:`xpnet.to_torch`);
    raises BackendUnavailable with the install hint where it is not installed."""
    return _module("torch").torch
