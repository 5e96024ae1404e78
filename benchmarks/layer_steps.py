"""One layer's training step (forward + backward) in xpnet against torch.nn on the CPU.

    python benchmarks/layer_steps.py                 # issue 11's targets: GELU, SiLU, LayerNorm, GroupNorm, Conv1d, ConvTranspose2d
    python benchmarks/layer_steps.py --layers GELU,Mish --shape 64,4096 --dtype float64 --backends numpy,torch
    python benchmarks/layer_steps.py --no-fused      # numpy without its fused kernels (the array-API code)

Each layer has its own input shape (``--shape`` replaces it for every layer named); the
cotangent has the output's shape.

Both sides run one thread (threadpoolctl for numpy's BLAS, torch.set_num_threads(1)) and take
the same input and cotangent. xpnet: ``y = layer(x); layer.backward(dy)``; torch: ``y = m(x);
y.backward(dy)`` on a fresh leaf. Rounds alternate xpnet and torch; each reports the median of
its repeats, and the table the median over rounds, with throughput ratio = torch time / xpnet time
(>= 1: xpnet is faster), and the same from the fastest repeats (steadier on a loaded machine).
Not a test: timings move 10-20% between runs on a shared machine, whose load (the 1-minute load
average, before and after) is printed with the table. On numpy in float32, GELU, SiLU, LayerNorm
and GroupNorm run as fused kernels where numba is installed (``pip install 'xpnet[fast]'``;
the header says whether); ``--no-fused`` times the array-API code they replace.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import xpnet as xn
from xpnet import backends

#: name -> (xpnet layer, torch module, input shape): the activations on (256, 1024); the shapes
#: issue 11 sets for Conv1d and ConvTranspose2d; norms at a size one step takes ~10-50 ms here
LAYERS = {
    "GELU": (lambda: xn.GELU(), lambda nn: nn.GELU(), (256, 1024)),
    "GELU-tanh": (lambda: xn.GELU("tanh"), lambda nn: nn.GELU("tanh"), (256, 1024)),
    "SiLU": (lambda: xn.SiLU(), lambda nn: nn.SiLU(), (256, 1024)),
    "Mish": (lambda: xn.Mish(), lambda nn: nn.Mish(), (256, 1024)),
    "ELU": (lambda: xn.ELU(), lambda nn: nn.ELU(), (256, 1024)),
    "Softplus": (lambda: xn.Softplus(), lambda nn: nn.Softplus(), (256, 1024)),
    "Hardswish": (lambda: xn.Hardswish(), lambda nn: nn.Hardswish(), (256, 1024)),
    "LogSoftmax": (lambda: xn.LogSoftmax(1), lambda nn: nn.LogSoftmax(1), (256, 1024)),
    "LayerNorm": (lambda: xn.LayerNorm(512), lambda nn: nn.LayerNorm(512), (2048, 512)),
    "GroupNorm": (lambda: xn.GroupNorm(8, 64), lambda nn: nn.GroupNorm(8, 64), (16, 64, 32, 32)),
    "BatchNorm2d": (lambda: xn.BatchNorm2d(64), lambda nn: nn.BatchNorm2d(64), (16, 64, 32, 32)),
    "Conv1d": (lambda: xn.Conv1d(64, 64, 5), lambda nn: nn.Conv1d(64, 64, 5), (64, 64, 256)),
    "ConvTranspose2d": (lambda: xn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
                        lambda nn: nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), (32, 64, 16, 16)),
}


def _times(step, repeats, inner):
    """(median, fastest) seconds per step over ``repeats`` timings of ``inner`` steps."""
    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            step()
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times), min(times)


def compare(xpnet_step, torch_step, rounds, repeats, inner):
    """Rounds alternating the two steps: ``(xpnet median, torch median, xpnet fastest, torch
    fastest, sorted per-round ratios torch/xpnet)``, in seconds per step."""
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(_times(xpnet_step, repeats, inner))
        theirs.append(_times(torch_step, repeats, inner))
    o, t = statistics.median(m for m, _ in ours), statistics.median(m for m, _ in theirs)
    fo, ft = min(f for _, f in ours), min(f for _, f in theirs)
    return o, t, fo, ft, sorted(tt / oo for (oo, _), (tt, _) in zip(ours, theirs))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default="GELU,SiLU,LayerNorm,GroupNorm,Conv1d,ConvTranspose2d")
    ap.add_argument("--shape", default=None, help="one input shape for every layer named (default: each its own)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--backends", default="numpy")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--inner", type=int, default=5)
    ap.add_argument("--no-fused", action="store_true", help="numpy without its fused kernels")
    a = ap.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    from xpnet.backends import _fused

    if a.no_fused:
        os.environ[_fused.ENV_VAR] = "0"  # read on first use, which is below
    torch.set_num_threads(1)
    threadpool_limits(1)
    rng = np.random.default_rng(0)
    fused, why = _fused.available()
    print(f"training step, {a.dtype}, 1 thread, median of {a.rounds} rounds x {a.repeats} repeats; "
          f"numpy fused kernels: {'on' if fused else 'off (' + why + ')'}; load {os.getloadavg()[0]:.2f}")
    print(f"{'layer':<16} {'input':<18} {'backend':<8} {'xpnet ms':>9} {'torch ms':>9} {'ratio':>6} {'fastest':>8} {'ratio':>6}")
    for name in a.layers.split(","):
        make, make_torch, shape = LAYERS[name]
        if a.shape:
            shape = tuple(int(s) for s in a.shape.split(","))
        module = make_torch(torch.nn).to(getattr(torch, a.dtype))
        x_np = (rng.standard_normal(shape) * 2.0).astype(a.dtype)
        xt = torch.from_numpy(x_np)
        with torch.no_grad():
            out_shape = tuple(module(xt).shape)
        dy_np = rng.standard_normal(out_shape).astype(a.dtype)
        dyt = torch.from_numpy(dy_np)

        def torch_step():
            leaf = xt.detach().requires_grad_(True)
            module(leaf).backward(dyt)

        for spec in a.backends.split(","):
            be = backends.get(spec)
            with backends.use(be):
                layer = make().to(be, a.dtype)
            x, dy = be.asarray(x_np), be.asarray(dy_np)

            def xpnet_step():
                layer(x)
                layer.backward(dy)

            o, t, fo, ft, spread = compare(xpnet_step, torch_step, a.rounds, a.repeats, a.inner)
            print(f"{name:<16} {str(shape):<18} {spec:<8} {o * 1e3:>9.3f} {t * 1e3:>9.3f} {t / o:>6.2f} "
                  f"{fo * 1e3:>8.3f} {ft / fo:>6.2f}   rounds {spread[0]:.2f}-{spread[-1]:.2f}")
    print(f"load {os.getloadavg()[0]:.2f} (1-minute average, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
