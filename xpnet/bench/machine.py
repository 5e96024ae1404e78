"""The machine description that goes with every run: CPU, threads, GPU, library versions, date.

:func:`library_versions` runs in the probe worker, after ``backends.available()`` has
imported whatever array libraries are installed; :func:`describe` runs in the driver.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import sys


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _dist_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def library_versions() -> dict:
    """Versions of xpnet and of the array libraries (installed ones too, when this process did
    not load them), numpy's BLAS, torch's parallel backend, and the GPU's name where a loaded
    library sees one (``"gpu": None`` if not)."""
    import xpnet

    out = {"xpnet": xpnet.__version__, "numpy": _dist_version("numpy"),
           "array_api_compat": _dist_version("array-api-compat")}
    np = sys.modules.get("numpy")
    try:
        blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        out["numpy_blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # an older numpy without dict mode: the BLAS stays unnamed
        pass
    gpu = None
    torch = sys.modules.get("torch")
    if torch is None:  # not started by this run: its installed version still describes the machine
        out["torch"] = _dist_version("torch")
    else:
        out["torch"] = torch.__version__
        try:
            info = torch.__config__.parallel_info().splitlines()
            out["torch_parallel"] = next((l.split(":", 1)[1].strip() for l in info
                                          if l.startswith("ATen parallel backend")), None)
        except Exception:  # parallel_info is informative only
            pass
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
            out["cuda"] = torch.version.cuda
    cupy = sys.modules.get("cupy")
    if cupy is None:
        out["cupy"] = next(filter(None, map(_dist_version, ("cupy", "cupy-cuda12x", "cupy-cuda11x", "cupy-cuda13x"))),
                           None)
    else:
        out["cupy"] = cupy.__version__
        if gpu is None:
            try:
                name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
                gpu = name.decode() if isinstance(name, bytes) else name
            except Exception:  # no usable device: gpu stays None
                pass
    out["gpu"] = gpu
    return out


def describe(threads: int, versions: dict) -> dict:
    """The ``machine`` object of the JSON file."""
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpus_usable": usable_cpus(),
        "threads": threads,
        "gpu": versions.get("gpu"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": {k: v for k, v in versions.items() if k != "gpu"},
    }
