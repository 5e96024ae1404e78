"""Recurrent layers' training steps in xpnet against torch.nn on the CPU, side by side.

    python benchmarks/recurrent_steps.py                       # issue 12's targets: GRU and LSTM, hidden 32 and 256
    python benchmarks/recurrent_steps.py --layers LSTM,RNN --hidden 64 --batch 32 --steps 100 --input-grad
    python benchmarks/recurrent_steps.py --array-api          # xpnet without its fused kernels

A training step: forward of a (T, N, input) sequence, backward of a random cotangent of the
output, every parameter gradient (zeroed before each step, on both sides). The data takes no
gradient (``backward(..., input_grad=False)``; the torch input is no leaf that requires grad),
as in a training loop; ``--input-grad`` asks for it on both sides.

Both sides run one thread (threadpoolctl for numpy's BLAS, torch.set_num_threads(1)), in one
process, on the same float32 input, weights (through the state dict) and cotangent. Within a
round, xpnet and torch alternate repeat by repeat (each repeat times ``inner`` steps), so that
both see the same load; a round's ratio is the median of its per-repeat ratios. The table gives
the medians over rounds of each side's time and of the ratio = torch time / xpnet time (>= 1:
xpnet is faster), and the spread of the rounds' ratios (lowest-highest). Not a test: timings
move 10-20% between runs on a shared machine, hence CPU time by default.

On numpy in float32 with numba installed, LSTM and GRU run their steps' pointwise maths on fused
kernels (``xpnet/backends/_fused.py``); ``--array-api`` measures the array-API steps instead
(``XPNET_FUSED=0``), as on the other backends and without numba.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import xpnet as xn
from xpnet import backends
from xpnet.backends import _fused


def _time(step, inner, clock):
    """Seconds per step over ``inner`` steps, by ``clock``."""
    t = clock()
    for _ in range(inner):
        step()
    return (clock() - t) / inner


def bench(torch, name, hidden, a, rng):
    """``(xpnet ms, torch ms, ratios per round)`` for one layer type and hidden size."""
    kw = dict(input_size=a.input, hidden_size=hidden, num_layers=a.num_layers, bidirectional=a.bidirectional)
    be = backends.get(a.backend)
    layer = getattr(xn, name)(**kw, backend=be, dtype="float32")
    module = getattr(torch.nn, name)(**kw)
    module.load_state_dict({k: torch.from_numpy(backends.to_numpy(v)) for k, v in layer.state_dict().items()})
    x_np = rng.standard_normal((a.steps, a.batch, a.input)).astype(np.float32)
    with torch.no_grad():
        out_shape = tuple(module(torch.from_numpy(x_np))[0].shape)
    dy_np = rng.standard_normal(out_shape).astype(np.float32)
    x, dy = be.asarray(x_np), be.asarray(dy_np)
    xt, dyt = torch.from_numpy(x_np), torch.from_numpy(dy_np)
    params = layer.parameters()

    def xpnet_step():
        for p in params:
            p.grad = None
        layer(x)
        layer.backward(dy, input_grad=a.input_grad)

    def torch_step():
        module.zero_grad(set_to_none=True)
        leaf = xt.detach().requires_grad_(True) if a.input_grad else xt
        module(leaf)[0].backward(dyt)

    for step in (xpnet_step, torch_step, xpnet_step, torch_step):  # warm-up
        step()
    ours, theirs, ratios = [], [], []
    for _ in range(a.rounds):
        o, t = [], []
        for _ in range(a.repeats):  # alternate at a fine grain: a shared machine's load moves
            o.append(_time(xpnet_step, a.inner, a.clock))
            t.append(_time(torch_step, a.inner, a.clock))
        ours.append(statistics.median(o))
        theirs.append(statistics.median(t))
        ratios.append(statistics.median(tt / oo for oo, tt in zip(o, t)))
    return statistics.median(ours), statistics.median(theirs), sorted(ratios)


def _path(backend):
    if backends.get(backend).fused() is not None:
        return "fused kernels (LSTM, GRU in float32)"
    return f"array-API ({_fused.available()[1] or 'no fused kernels on ' + backend})"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default="GRU,LSTM")
    ap.add_argument("--hidden", default="32,256", help="hidden sizes, comma-separated")
    ap.add_argument("--input", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=40, help="sequence length T")
    ap.add_argument("--num-layers", type=int, default=1)
    ap.add_argument("--bidirectional", action="store_true")
    ap.add_argument("--input-grad", action="store_true", help="also compute the input's gradient (both sides)")
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="cpu",
                    help="cpu: this process's CPU time, steadier where other processes share the cores")
    ap.add_argument("--array-api", action="store_true", help="xpnet without its fused kernels (XPNET_FUSED=0)")
    a = ap.parse_args(argv)
    if a.array_api:  # read when the kernels are first asked for: before any layer runs
        os.environ[_fused.ENV_VAR] = "0"
    a.clock = time.perf_counter if a.clock == "wall" else time.process_time
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)
    rng = np.random.default_rng(0)
    print(f"training step, float32, 1 thread, T={a.steps}, batch {a.batch}, input {a.input}, "
          f"{a.num_layers} layer(s){', bidirectional' if a.bidirectional else ''}, "
          f"input gradient {'yes' if a.input_grad else 'no'}; median of {a.rounds} rounds x {a.repeats} repeats, "
          f"{'wall' if a.clock is time.perf_counter else 'CPU'} time; xpnet steps: {_path(a.backend)}")
    print(f"{'layer':<6} {'hidden':>6} {'backend':<8} {'xpnet ms':>9} {'torch ms':>9} {'ratio':>6}   spread")
    for name in a.layers.split(","):
        for hidden in (int(h) for h in a.hidden.split(",")):
            o, t, spread = bench(torch, name, hidden, a, rng)
            print(f"{name:<6} {hidden:>6} {a.backend:<8} {o * 1e3:>9.3f} {t * 1e3:>9.3f} "
                  f"{statistics.median(spread):>6.2f}   "
                  f"{spread[0]:.2f}-{spread[-1]:.2f}")


if __name__ == "__main__":
    main()
