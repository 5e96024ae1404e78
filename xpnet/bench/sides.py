"""Who runs a row: xpnet on one backend, or the PyTorch peer on one device.

Names used throughout the tables and the JSON file:

============================  ===============  ===============  ==============
side                          ``label``        ``ceiling``      peer device
============================  ===============  ===============  ==============
xpnet, backend ``numpy``      xpnet numpy      numpy            cpu
xpnet, backend ``torch``      xpnet torch:cpu  torch:cpu        cpu
xpnet, backend ``torch:cuda`` xpnet torch:cuda torch:cuda       cuda
xpnet, backend ``cupy``       xpnet cupy       cupy             cuda
PyTorch peer, ``cpu``         PyTorch cpu      torch:cpu        -
PyTorch peer, ``cuda``        PyTorch cuda     torch:cuda       -
============================  ===============  ===============  ==============

``ceiling`` names the library and device whose GEMM ceiling judges the side's GFLOP/s.
"""

from __future__ import annotations

import dataclasses

#: xpnet's performance backends (array_api_strict checks conformance; it is not timed)
BACKENDS = ("numpy", "torch", "torch:cuda", "cupy")
GPU_BACKENDS = ("torch:cuda", "cupy")


@dataclasses.dataclass(frozen=True)
class Side:
    side: str  # "xpnet" or "pytorch"
    backend: str  # an xpnet backend of BACKENDS, or the peer's device "cpu" / "cuda"

    @property
    def gpu(self) -> bool:
        return self.backend in GPU_BACKENDS or self.backend == "cuda"

    @property
    def key(self) -> str:
        return f"{self.side}:{self.backend}"

    @property
    def label(self) -> str:
        if self.side == "pytorch":
            return f"PyTorch {self.backend}"
        return "xpnet torch:cpu" if self.backend == "torch" else f"xpnet {self.backend}"

    @property
    def ceiling(self) -> str:
        if self.side == "pytorch":
            return f"torch:{self.backend}"
        return "torch:cpu" if self.backend == "torch" else self.backend

    @property
    def peer_device(self) -> str:
        """The device of the PyTorch peer this xpnet side is compared with."""
        return "cuda" if self.gpu else "cpu"

    def job(self, kind: str, threads: int, **fields) -> dict:
        """A worker job (see :mod:`xpnet.bench.worker`) run by this side."""
        return {"job": kind, "side": self.side, "backend": self.backend, "threads": threads, **fields}


def peer(device: str) -> Side:
    return Side("pytorch", device)
