"""``torch.distributed`` calls for :class:`xpnet.distributed.TorchCommunicator`.

Process groups: gloo for tensors on the CPU (and for numpy arrays, which ``torch.from_numpy``
wraps without a copy), NCCL for CUDA tensors. Each collective works in place on a flat
buffer that the caller made for it.
"""

from __future__ import annotations

import datetime

import numpy as np
import torch
import torch.distributed as dist


def available():
    """None when torch.distributed can run here, else why not."""
    if not dist.is_available():
        return f"torch {torch.__version__} was built without torch.distributed"
    return None


def group_backend(device_type: str) -> str:
    """The process-group backend for arrays on ``device_type``: ``"nccl"`` for CUDA, else ``"gloo"``."""
    return "nccl" if device_type == "cuda" else "gloo"


def init(backend: str, rank: int, size: int, init_method: str, timeout_s: float, device_index=None):
    """Start the default process group (once per process); ``device_index``: the CUDA device
    of this rank, for NCCL."""
    if dist.is_initialized():
        return
    if backend == "nccl":
        if not dist.is_nccl_available():
            raise RuntimeError(f"torch {torch.__version__} has no NCCL process group (a CPU build?)")
        if device_index is not None:
            torch.cuda.set_device(int(device_index))
    elif not dist.is_gloo_available():
        raise RuntimeError(f"torch {torch.__version__} has no gloo process group")
    dist.init_process_group(backend, init_method=init_method, rank=int(rank), world_size=int(size),
                            timeout=datetime.timedelta(seconds=float(timeout_s)))


def rank_and_size():
    return dist.get_rank(), dist.get_world_size()


def _tensor(flat, device):
    """``flat`` as a tensor the process group can reduce: numpy wrapped without a copy; a CPU
    tensor moved to ``device`` (CUDA) for NCCL. Returns ``(tensor, back)``."""
    t = torch.from_numpy(flat) if isinstance(flat, np.ndarray) else flat
    if device is not None and t.device != device:
        moved = t.to(device)
        return moved, lambda: t.copy_(moved.to(t.device))
    return t, None


def allreduce_(flat, device=None):
    """Sum ``flat`` (a fresh flat tensor or numpy array) over the ranks, in place; returns it."""
    t, back = _tensor(flat, device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    if back is not None:
        back()
    return flat


def broadcast_(flat, root: int, device=None):
    """``flat`` on every rank takes rank ``root``'s values, in place; returns it."""
    t, back = _tensor(flat, device)
    dist.broadcast(t, src=int(root))
    if back is not None:
        back()
    return flat


def barrier():
    dist.barrier()


def allgather_object(obj):
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, root: int):
    box = [obj]
    dist.broadcast_object_list(box, src=int(root))
    return box[0]


def device_of(be):
    """The CUDA device the NCCL group reduces on, for a backend of torch on CUDA; else None."""
    dev = getattr(be, "device", None)
    return dev if isinstance(dev, torch.device) and dev.type == "cuda" else None


def close():
    if dist.is_initialized():
        dist.destroy_process_group()
