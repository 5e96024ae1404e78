"""``xpnet bench``: what a GPU buys over the CPU, and how xpnet stands against plain PyTorch.

Every figure comes from a fresh worker process (``python -m xpnet.bench.worker``) whose
BLAS/OpenMP thread variables were set before numpy or torch was imported:

- ``workloads``: the nets timed (MLP, small CNN, wide MLP, tiny net by default; by name, the
  layer workloads: Conv1d, ConvTranspose2d, GRU, LSTM, a Transformer encoder layer; training
  step and inference), their data, and the sweep families for the scaling curves;
- ``flops``: floating-point operations per step, counted from the model's layers;
- ``xpnet_side`` / ``peer``: the same model on an xpnet backend and in plain PyTorch;
- ``timing``: warm-up, repeats, device synchronisation, medians and spread;
- ``gemm`` / ``transfer`` / ``memory``: each backend's GEMM ceiling, the host-to-device copy,
  peak host and device memory;
- ``processes`` / ``worker``: the worker processes and what each job does;
- ``settings``, ``run``, ``combine``: the plan of a run, its driver, and the rows it yields;
- ``table``, ``document``, ``charts``, ``machine``: terminal tables, the JSON file, PNG charts and
  the machine description.

This package imports no array library at import time; :func:`xpnet.bench.run.main` is the
entry point behind ``xpnet bench``.
"""
