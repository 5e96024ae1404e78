"""Backends: which array library and device xpnet computes with.

This package is the only part of xpnet that imports numpy, cupy or torch by name.

>>> from xpnet import backends
>>> be = backends.get("numpy")          # or "torch", "torch:cuda", "cupy", "array_api_strict:device1", "auto"
>>> be.xp, be.device                    # array-API namespace and device
>>> with backends.use("torch"):         # default backend inside the block
...     ...
>>> backends.available()                # what is usable here, and why not
>>> backends.host.to_bytes(a)           # host-array bytes for file formats (checkpoints, IDX)
"""

from . import _files as files  # users' data files (.npz, .npy, .csv): host readers and writers
from . import _host as host
from ._backend import Backend, Generator, dtype_name
from ._registry import (
    ENV_VAR,
    NAMES,
    Availability,
    BackendUnavailable,
    available,
    backend_of,
    get,
    manual_seed,
    namespace_of,
    to_numpy,
    torch_module,
    use,
)

__all__ = [
    "Availability", "Backend", "BackendUnavailable", "ENV_VAR", "Generator", "NAMES",
    "available", "backend_of", "dtype_name", "files", "get", "host", "manual_seed", "namespace_of", "to_numpy", "torch_module", "use",
]
