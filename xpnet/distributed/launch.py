"""Which launcher started this process, and :func:`init`: the communicator for it.

Launchers are recognised by the variables they set in each rank's environment:

- torchrun: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``;
- ``mpiexec``: MPICH's and Intel MPI's ``PMI_RANK``/``PMI_SIZE``, Open MPI's
  ``OMPI_COMM_WORLD_RANK``/``OMPI_COMM_WORLD_SIZE``, MVAPICH's ``MV2_COMM_WORLD_RANK``/``..._SIZE``.

Neither: the process runs alone (:class:`~xpnet.distributed.base.Single`), with no engine.
"""

from __future__ import annotations

import dataclasses
import os

#: seconds a torch.distributed collective may wait before it fails
TIMEOUT_VAR = "XPNET_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 300.0
ENGINES = ("auto", "single", "mpi", "nccl", "torch")

_MPI_VARS = (("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
             ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"))
_LOCAL_VARS = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")
_LOCAL_SIZE_VARS = ("LOCAL_WORLD_SIZE", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")


@dataclasses.dataclass(frozen=True)
class Launch:
    """What the environment says: ``launcher`` (``"torchrun"`` or ``"mpi"``), ``rank``, ``size``,
    ``local_rank`` (the rank among this machine's ranks) and ``local_size`` (how many run here)."""

    launcher: str
    rank: int
    size: int
    local_rank: int
    local_size: int = 1


def env_int(name, default=None, environ=None):
    """``$name`` as an int >= 0 (``default`` when unset); ValueError naming the variable otherwise."""
    environ = os.environ if environ is None else environ
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        if default is None:
            raise ValueError(f"xpnet.distributed: ${name} is not set")
        return default
    try:
        v = int(raw)
    except ValueError:
        v = -1
    if v < 0:
        raise ValueError(f"xpnet.distributed: ${name}={raw!r}: expected an int >= 0")
    return v


def detect(environ=None):
    """The :class:`Launch` of this process, or None when no launcher started it."""
    environ = os.environ if environ is None else environ
    local = next((env_int(v, environ=environ) for v in _LOCAL_VARS if environ.get(v, "").strip()), 0)
    here = next((env_int(v, environ=environ) for v in _LOCAL_SIZE_VARS if environ.get(v, "").strip()), None)
    if environ.get("RANK", "").strip() and environ.get("WORLD_SIZE", "").strip():
        size = env_int("WORLD_SIZE", environ=environ)
        return Launch("torchrun", env_int("RANK", environ=environ), size, local, here or size)
    for rank_var, size_var in _MPI_VARS:
        if environ.get(rank_var, "").strip() and environ.get(size_var, "").strip():
            size = env_int(size_var, environ=environ)
            return Launch("mpi", env_int(rank_var, environ=environ), size, local, here or size)
    return None


def rank_device(spec, launch):
    """The backend ``spec`` with this rank's GPU: ``"cupy"`` and ``"torch:cuda"`` (no index given)
    become ``"cupy:L"`` and ``"torch:cuda:L"``, ``L`` the local rank; anything else is kept."""
    if launch is None or spec not in ("cupy", "torch:cuda"):
        return spec
    return f"{spec}:{launch.local_rank}"


def timeout(environ=None) -> float:
    """``$XPNET_DIST_TIMEOUT`` in seconds (default 300), checked."""
    environ = os.environ if environ is None else environ
    raw = environ.get(TIMEOUT_VAR, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        v = float(raw)
    except ValueError:
        v = -1.0
    if not v > 0:
        raise ValueError(f"${TIMEOUT_VAR}={raw!r}: expected a positive number of seconds")
    return v


def engine_for(launch, backend) -> str:
    """The engine ``init("auto")`` picks: none alone; under torchrun torch.distributed; under
    mpiexec NCCL for CuPy, torch.distributed for torch, MPI for numpy and array-api-strict."""
    if launch is None:
        return "single"
    if launch.launcher == "torchrun":
        return "torch"
    name = getattr(backend, "name", "numpy")
    return {"cupy": "nccl", "torch": "torch"}.get(name, "mpi")


_started: dict = {}  # engine -> its Communicator: one per process


def init(engine="auto", backend=None):
    """The communicator of this process: ``engine`` ``"auto"`` (from the launcher's environment
    and ``backend``, see :func:`engine_for`), ``"single"``, ``"mpi"``, ``"nccl"`` or ``"torch"``.
    ``backend``: the Backend (or its name) trained on (default: the current default backend).
    The same engine asked for again gives the same communicator."""
    from .. import backends

    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"xpnet.distributed.init: engine must be one of {', '.join(map(repr, ENGINES))}, got {engine!r}")
    be = backends.get(backend)
    if engine == "auto":
        engine = engine_for(detect(), be)
    comm = _started.get(engine)
    if comm is None:
        comm = _started[engine] = _make(engine, be)
    return comm


def _make(engine, be):
    if engine == "single":
        from .base import Single

        return Single()
    if engine == "mpi":
        from .mpi import MPICommunicator

        return MPICommunicator()
    if engine == "nccl":
        from .nccl import NCCLCommunicator

        return NCCLCommunicator(_started.get("mpi"))
    from .torchdist import TorchCommunicator

    mpi = _started.get("mpi")
    launch = detect()
    if mpi is None and launch is not None and launch.launcher == "mpi":
        from .mpi import MPICommunicator

        mpi = _started["mpi"] = MPICommunicator()
    return TorchCommunicator(be, mpi)
