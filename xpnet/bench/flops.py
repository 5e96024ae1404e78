"""Floating-point operations per step, counted from the model's layers.

One multiply-add is 2 FLOPs. Per sample, for the layers that hold the arithmetic:

- ``Linear(in, out)``: forward ``2 * in * out``;
- ``Conv2d``: forward ``2 * Cout * (Cin / groups) * KH * KW * Hout * Wout``, i.e. twice the
  weight's size times the output positions.

In both, forward is ``2 * weight.size * positions`` with ``positions = output elements /
output channels`` (1 for ``Linear``), which is how :func:`layer_flops` counts it; the output
shape comes from running the net once on a single random sample.

A training step needs, per layer, the forward, the weight gradient (``dW``: the same
product, transposed, so the same count) and the input gradient (``dx``: again the same
count), except that the first parametrised layer needs no ``dx``, because nothing wants the
data's gradient. Both sides do exactly that: xpnet through ``net.backward(dy,
input_grad=False)``, PyTorch because the input does not require grad. So::

    train = 3 * sum(forward) - forward(first parametrised layer)
    infer = sum(forward)

per sample, times the batch. Element-wise work (ReLU, pooling, softmax, bias adds and
gradients, the SGD update) is O(activations) or O(parameters), not O(products), and is left
out, as is customary; achieved GFLOP/s therefore measures the share of the step's time that
goes into products.
"""

from __future__ import annotations

import functools
import math


def _leaves(net):
    """The layers of a Sequential (nested Sequentials flattened), in order."""
    for layer in getattr(net, "layers", None) or [net]:
        if getattr(layer, "layers", None) is not None:
            yield from _leaves(layer)
        else:
            yield layer


def layer_flops(net, sample_shape) -> list[dict]:
    """``[{"layer", "forward_per_sample"}]`` for each Linear and Conv2d of ``net`` (a Sequential
    chain), in order. Runs one forward pass on a single N(0, 1) sample on the net's backend
    to learn every output shape (like any forward, it leaves the layers' caches behind: count on
    a throwaway net, as :func:`workload_flops` does)."""
    import xpnet as xn
    from xpnet import backends

    weight = next(iter(net.parameters()), None)
    be = backends.backend_of(weight.data) if weight is not None else backends.get("numpy")
    gen = type(be.rng)(be, 0)  # a private generator: counting must not move the backend's stream
    x = gen.normal((1, *sample_shape), dtype=be.dtype("float32"))
    out = []
    for layer in _leaves(net):
        x = layer.forward(x)
        if isinstance(layer, (xn.Linear, xn.Conv2d)):
            w = layer.weight.data
            channels = x.shape[1]
            positions = math.prod(x.shape[1:]) // channels
            out.append({"layer": layer._tag(), "forward_per_sample": 2 * math.prod(w.shape) * positions})
    return out


def step_flops(per_layer, batch: int, mode: str) -> int:
    """FLOPs of one step of ``batch`` samples: ``mode`` is ``"train"`` or ``"infer"`` (see the module docstring)."""
    fwd = sum(p["forward_per_sample"] for p in per_layer)
    if mode == "infer":
        return batch * fwd
    if mode == "train":
        first = per_layer[0]["forward_per_sample"] if per_layer else 0
        return batch * (3 * fwd - first)
    raise ValueError(f"mode must be 'train' or 'infer', got {mode!r}")


@functools.lru_cache(maxsize=None)
def _workload_layers(layers, sample_shape):
    from .workloads import Workload, build_xpnet

    throwaway = build_xpnet(Workload("", "", layers, sample_shape, 0, 1), "numpy")
    return tuple(layer_flops(throwaway, sample_shape))


def workload_flops(workload, batch: int, mode: str) -> int:
    """FLOPs of one step of ``workload`` (a :class:`~xpnet.bench.workloads.Workload`), counted
    from its net built on the numpy backend (once per architecture)."""
    return step_flops(_workload_layers(workload.layers, workload.sample_shape), batch, mode)
