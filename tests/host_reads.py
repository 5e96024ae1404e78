"""Count the device-to-host reads a block of code makes: ``with count_host_reads() as reads: ...``.

On a GPU every ``bool(x)``, ``float(x)``, ``int(x)``, ``.item()`` or copy to the host waits for
the device to finish its queue; a training step that makes none lets the host run ahead. The
counter watches the places such a read can happen through:

- array-api-strict's ``Array``: ``__bool__``, ``__float__``, ``__int__``, ``__index__``,
  ``__complex__``, ``__dlpack__`` (``np.from_dlpack``), ``__array__`` (``np.asarray``) and
  ``to_device`` onto another device. Run the code under test on strict to see them all: numpy's
  and torch's arrays are not patched, since a read of theirs costs nothing on the CPU.
- xpnet's own host copies, on every backend: each backend class's ``to_numpy`` (what
  ``backends.to_numpy`` and ``Backend.asarray`` of a foreign array call) and each backend
  module's ``to_host``.

A read made inside another counted read (``to_numpy`` calling ``__dlpack__``) counts once.
``reads.count`` is the number; ``reads.calls`` lists ``(what, where)`` for each, ``where`` being
the innermost xpnet source line that made it, so a failing assertion says where to look.

One read is exempt, and listed in ``reads.exempt`` instead: array-api-strict's ``scatter_add``
(Embedding's backward), which the strict backend simulates on the host because the standard has
no scatter; every real backend (numpy, CuPy, torch) calls a native device scatter.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys

from array_api_strict._array_object import Array as StrictArray

from xpnet import backends
from xpnet.backends import _backend, _strict

_DUNDERS = ("__bool__", "__float__", "__int__", "__index__", "__complex__", "__dlpack__", "__array__")
_XPNET = os.path.dirname(os.path.abspath(backends.__file__)).rsplit(os.sep, 1)[0] + os.sep
_BACKENDS_DIR = os.path.dirname(os.path.abspath(backends.__file__)) + os.sep


class HostReads:
    """What :func:`count_host_reads` saw: ``count``, ``calls`` and ``exempt``."""

    def __init__(self):
        self.calls = []
        self.exempt = []
        self._depth = 0
        self._exempt_depth = 0

    @property
    def count(self) -> int:
        return len(self.calls)

    def reset(self):
        """Forget what was counted so far (the patches stay)."""
        self.calls.clear()
        self.exempt.clear()

    def __repr__(self):
        lines = "".join(f"\n  {what} at {where}" for what, where in self.calls)
        return f"HostReads({self.count}){lines}"


def _where() -> str:
    """The innermost xpnet line outside xpnet/backends (else any xpnet line) on the stack."""
    f = sys._getframe(3)  # past _where, enter and the wrapper
    fallback = None
    while f is not None:
        path = os.path.abspath(f.f_code.co_filename)
        if path.startswith(_XPNET):
            line = f"{os.path.relpath(path, os.path.dirname(_XPNET))}:{f.f_lineno} ({f.f_code.co_name})"
            if not path.startswith(_BACKENDS_DIR):
                return line
            fallback = fallback or line
        f = f.f_back
    return fallback or "outside xpnet"


def _around(original, enter, leave):
    """``original`` with ``enter(*args, **kwargs)`` before it and ``leave()`` after it."""
    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        enter(*args, **kwargs)
        try:
            return original(*args, **kwargs)
        finally:
            leave()
    return wrapper


def _counting(reads, what, original, condition=None):
    def enter(*args, **kwargs):
        if reads._depth == 0 and (condition is None or condition(*args, **kwargs)):
            (reads.exempt if reads._exempt_depth else reads.calls).append((what, _where()))
        reads._depth += 1

    def leave():
        reads._depth -= 1

    return _around(original, enter, leave)


def _exempting(reads, original):
    def enter(*args, **kwargs):
        reads._exempt_depth += 1

    def leave():
        reads._exempt_depth -= 1

    return _around(original, enter, leave)


def _backend_classes():
    """Every Backend subclass defined in xpnet.backends (imported or not)."""
    seen, todo = [], [_backend.Backend]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return [cls for cls in seen if cls.__module__.startswith("xpnet.backends") and "to_numpy" in vars(cls)]


@contextlib.contextmanager
def count_host_reads():
    """Patch the read paths (see the module doc) for the duration of the block; yields a :class:`HostReads`."""
    reads = HostReads()
    patches = []

    def patch(owner, name, new):
        patches.append((owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)))
        setattr(owner, name, new)

    for name in _DUNDERS:
        patch(StrictArray, name, _counting(reads, f"strict {name}", getattr(StrictArray, name)))
    patch(StrictArray, "to_device", _counting(reads, "strict to_device (another device)", StrictArray.to_device,
                                              lambda self, device, *a, **k: device != self.device))
    for cls in _backend_classes():
        patch(cls, "to_numpy", _counting(reads, f"{cls.__name__}.to_numpy", cls.__dict__["to_numpy"]))
    for mod in [m for name, m in list(sys.modules.items()) if name.startswith("xpnet.backends._")]:
        if callable(getattr(mod, "to_host", None)):
            patch(mod, "to_host", _counting(reads, f"{mod.__name__}.to_host", mod.to_host))
    patch(_strict.StrictBackend, "scatter_add", _exempting(reads, _strict.StrictBackend.__dict__["scatter_add"]))
    try:
        yield reads
    finally:
        for owner, name, old in reversed(patches):
            setattr(owner, name, old)
