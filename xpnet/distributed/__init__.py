"""Data-parallel training over many processes: MPI, NCCL and torch.distributed.

>>> import xpnet as xn
>>> comm = xn.distributed.init()           # from the launcher's environment; alone: a world of one
>>> comm.rank, comm.size
>>> xn.fit(net, loss, opt, (X, y), epochs=5, batch_size=64, distributed=comm)

Launch with ``mpiexec -n 2 python train.py`` (``pip install 'xpnet[mpi]'``) or
``torchrun --nproc-per-node 2 train.py``; ``xpnet train`` does the same
(``mpiexec -n 2 xpnet train``, ``torchrun --nproc-per-node 2 -m xpnet train --backend torch``).

Engines (:func:`init` picks one from the launcher and the backend, or takes it by name):

- ``"single"``: :class:`Single`, the world of one, no engine (what a process run alone gets);
- ``"mpi"``: :class:`~xpnet.distributed.mpi.MPICommunicator`, mpi4py over host buffers
  (numpy, torch on the CPU; other arrays staged through the host);
- ``"nccl"``: :class:`~xpnet.distributed.nccl.NCCLCommunicator`, CuPy arrays GPU to GPU,
  started over MPI (unverified: written without a GPU);
- ``"torch"``: :class:`~xpnet.distributed.torchdist.TorchCommunicator`, torch.distributed
  (gloo on the CPU, NCCL on CUDA), from torchrun's environment or from MPI ranks.

``batch_size`` is the global batch: each of N ranks trains on about ``batch_size / N`` of
it, and gradients are weighted by each rank's share, so N ranks compute what one process
computes (:mod:`xpnet.distributed.parallel`).
"""

from .base import Communicator, Single
from .failure import together
from .launch import ENGINES, TIMEOUT_VAR, Launch, detect, init
from .parallel import BUCKET_BYTES, DataParallel, parameters_agree

__all__ = [
    "BUCKET_BYTES", "Communicator", "DataParallel", "ENGINES", "Launch", "Single", "TIMEOUT_VAR", "detect", "init",
    "parameters_agree", "together",
]
