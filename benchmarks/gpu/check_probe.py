"""The GPU check's machine probe, run in its own process (a CUDA start-up that hangs cannot
stall the driver): ``python benchmarks/gpu/check_probe.py`` prints one JSON object.

- ``backends``: ``{spec: {"usable", "detail"}}`` from ``xpnet.backends.available()``;
- ``versions``: the installed distributions that matter to the check (None: not installed);
- ``cuda``: what the loaded libraries report (torch's CUDA and cuDNN, CuPy's runtime and driver);
- ``bench_versions``: :func:`xpnet.bench.machine.library_versions` (the bench's own view);
- ``xpnet_file``: where ``import xpnet`` came from.

The array libraries are reached through ``sys.modules`` after ``available()`` loaded them, as
:mod:`xpnet.bench.machine` does: only ``xpnet.backends`` imports them by name.
"""

from __future__ import annotations

import json
import platform
import sys

DISTRIBUTIONS = ("xpnet", "numpy", "array-api-compat", "array-api-strict", "torch", "cupy-cuda13x", "cupy-cuda12x",
                 "pytest", "pytest-xdist", "pytest-timeout", "hypothesis", "expecttest", "safetensors", "matplotlib",
                 "tqdm", "threadpoolctl")


def _cuda_facts() -> dict:
    out = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch.version.cuda"] = torch.version.cuda
        try:
            out["torch cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
            out["torch devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        except Exception as e:  # informative only: the report says what went wrong
            out["torch cuda error"] = repr(e)
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        for key, call in (("cupy runtime", "runtimeGetVersion"), ("cupy driver", "driverGetVersion")):
            try:
                out[key] = getattr(cupy.cuda.runtime, call)()
            except Exception as e:
                out[key] = f"unavailable ({type(e).__name__}: {e})"
    return out


def probe() -> dict:
    import xpnet
    from xpnet import backends
    from xpnet.bench.machine import _dist_version, library_versions

    avail = backends.available()
    return {
        "python": sys.version.replace("\n", " "),
        "executable": sys.executable,
        "platform": platform.platform(),
        "xpnet_file": xpnet.__file__,
        "backends": {k: {"usable": a.usable, "detail": a.detail} for k, a in avail.items()},
        "versions": {d: _dist_version(d) for d in DISTRIBUTIONS},
        "cuda": _cuda_facts(),
        "bench_versions": library_versions(),
    }


if __name__ == "__main__":
    print(json.dumps(probe()))
