"""A TransformerEncoderLayer training step (forward + backward) in xpnet against torch.nn on the CPU,
and where xpnet's time goes.

    python benchmarks/transformer_steps.py           # batch 32, T 64, d_model 128, 4 heads, ff 512, dropout 0.1
    python benchmarks/transformer_steps.py --norm-first --batch-first --dropout 0 --backends numpy,torch

Both sides run one thread (threadpoolctl for numpy's BLAS, torch.set_num_threads(1)), in
training mode, with the same input, weights and cotangent. A step: the parameters' gradients
cleared, then xpnet ``y = layer(x); layer.backward(dy)``, torch ``m(leaf).backward(dy)`` on a
fresh leaf (the input's gradient is computed on both sides). Rounds alternate xpnet and torch;
each reports the median of its repeats, and the table the median over rounds, with throughput
ratio = torch time / xpnet time (>= 1: xpnet is faster).

``--profile`` then times each part of xpnet's step (every child's forward and backward, the
attention maths inside MultiheadAttention, and what is left: the residual adds and the
composite's own work), as medians over steps.
Not a test: timings move 10-20% between runs on a shared machine.
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import statistics
import sys
import time

import numpy as np

import xpnet as xn
from xpnet import backends
from xpnet.layers.attention import multihead as _multihead

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from layer_steps import compare  # noqa: E402  (the same timing loop as the other layer benchmarks)


class _Timer:
    """Wraps functions to add their wall time (exclusive of the wrapped functions they call)."""

    def __init__(self):
        self.total = collections.defaultdict(float)
        self._stack = []

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            self._stack.append(0.0)
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - t
                inner = self._stack.pop()
                self.total[name] += spent - inner
                if self._stack:
                    self._stack[-1] += spent
        return timed


def profile(layer, x, dy, steps):
    """``{part: median ms per step}`` of xpnet's step; parts wrapped on the instance and module."""
    timer = _Timer()
    for name, child in layer.named_children():
        for method in ("forward", "backward"):
            setattr(child, method, timer.wrap(f"{name}.{method}", getattr(child, method)))
    attn = layer.self_attn
    for method in ("forward", "backward"):
        setattr(attn.out_proj, method, timer.wrap(f"self_attn.out_proj.{method}", getattr(attn.out_proj, method)))
    saved = _multihead.sdpa_forward, _multihead.sdpa_backward
    _multihead.sdpa_forward = timer.wrap("self_attn: sdpa_forward (scores, softmax, dropout, P V)", saved[0])
    _multihead.sdpa_backward = timer.wrap("self_attn: sdpa_backward", saved[1])
    step_fn = timer.wrap("the layer itself (residual adds, the q+k+v sum, calls)", lambda: _step(layer, x, dy))
    per = collections.defaultdict(list)
    try:
        for _ in range(steps):
            timer.total.clear()
            step_fn()
            for k, v in timer.total.items():
                per[k].append(v)
    finally:
        _multihead.sdpa_forward, _multihead.sdpa_backward = saved
        for name, child in layer.named_children():
            for method in ("forward", "backward"):
                child.__dict__.pop(method, None)
        for method in ("forward", "backward"):
            attn.out_proj.__dict__.pop(method, None)
    return {k: statistics.median(v) * 1e3 for k, v in per.items()}


def _step(layer, x, dy):
    for p in layer.parameters():
        p.grad = None
    layer(x)
    layer.backward(dy)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--nhead", type=int, default=4)
    ap.add_argument("--ff", type=int, default=512)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--activation", default="relu")
    ap.add_argument("--batch-first", action="store_true")
    ap.add_argument("--norm-first", action="store_true")
    ap.add_argument("--causal", action="store_true", help="with a causal src_mask")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--backends", default="numpy")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="then time the parts of xpnet's step")
    a = ap.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)
    rng = np.random.default_rng(0)
    kw = dict(dim_feedforward=a.ff, dropout=a.dropout, activation=a.activation, batch_first=a.batch_first,
              norm_first=a.norm_first)
    module = torch.nn.TransformerEncoderLayer(a.d_model, a.nhead, **kw).to(getattr(torch, a.dtype)).train()
    shape = (a.batch, a.seq, a.d_model) if a.batch_first else (a.seq, a.batch, a.d_model)
    x_np = rng.standard_normal(shape).astype(a.dtype)
    dy_np = rng.standard_normal(shape).astype(a.dtype)
    mask_np = np.triu(np.full((a.seq, a.seq), -np.inf, dtype=a.dtype), 1) if a.causal else None
    xt, dyt = torch.from_numpy(x_np), torch.from_numpy(dy_np)
    tmask = None if mask_np is None else torch.from_numpy(mask_np)

    def torch_step():
        module.zero_grad(set_to_none=True)
        leaf = xt.detach().requires_grad_(True)
        module(leaf, tmask).backward(dyt)

    print(f"TransformerEncoderLayer({a.d_model}, {a.nhead}, {kw}) training step, input {shape}, {a.dtype}, "
          f"causal mask: {a.causal}; 1 thread, median of {a.rounds} rounds x {a.repeats} repeats x {a.inner}")
    print(f"{'backend':<26} {'xpnet ms':>9} {'torch ms':>9} {'ratio':>6} {'fastest':>8} {'ratio':>6}")
    for spec in a.backends.split(","):
        be = backends.get(spec)
        layer = xn.TransformerEncoderLayer(a.d_model, a.nhead, **kw, backend=be, dtype=a.dtype)
        layer.load_state_dict({k: v.detach().numpy() for k, v in module.state_dict().items()})
        x, dy = be.asarray(x_np), be.asarray(dy_np)
        mask = None if mask_np is None else be.asarray(mask_np)

        def xpnet_step():
            for p in layer.parameters():
                p.grad = None
            layer(x, mask)
            layer.backward(dy)

        o, t, fo, ft, spread = compare(xpnet_step, torch_step, a.rounds, a.repeats, a.inner)
        print(f"{spec:<26} {o * 1e3:>9.2f} {t * 1e3:>9.2f} {t / o:>6.2f} {fo * 1e3:>8.2f} {ft / fo:>6.2f}   "
              f"rounds {spread[0]:.2f}-{spread[-1]:.2f}")
        if a.profile and mask is None:
            parts = profile(layer, x, dy, a.repeats * a.inner)
            total = sum(parts.values())
            print(f"  where xpnet's {total:.2f} ms go ({spec}):")
            for k, v in sorted(parts.items(), key=lambda kv: -kv[1]):
                print(f"    {k:<62} {v:>7.2f} ms {100 * v / total:>5.1f}%")


if __name__ == "__main__":
    main()
