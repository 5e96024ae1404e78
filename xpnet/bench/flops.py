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

The layer workloads' layers, per sample (``T`` time steps):

- ``Conv1d``: as ``Conv2d``, ``2 * weight.size * Lout``;
- ``ConvTranspose2d``: the adjoint of a convolution, ``2 * weight.size * Hin * Win`` (each
  input position meets the whole weight);
- ``GRU``/``LSTM``: ``2 * T * (weight_ih.size + weight_hh.size)`` per layer and direction;
  the first layer's spared input gradient is only ``2 * T * weight_ih_l0.size``, since the
  recurrence needs ``dh`` at every step anyway;
- ``TransformerEncoderLayer``: its four projections (``2 * T * (4 d^2 + 2 d ff)``, the
  in-projection ``3 d^2`` of that the spared input gradient), plus attention's two products
  ``QK^T`` and ``PV``, ``2 * 2 * T^2 * d``.

``train = 3 * sum(forward) - spared`` holds for all of them: each backward product is one of
the forward's, transposed, once for the weights and once for the input.
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


def _size(p):
    return math.prod(p.data.shape)


def _counted(xn, layer, x, y):
    """``(forward, spared input gradient)`` per sample of one layer (input ``x``, output ``y``,
    batch 1), or None for a layer without products (see the module docstring)."""
    if isinstance(layer, (xn.Linear, xn.Conv1d, xn.Conv2d)):
        fwd = 2 * _size(layer.weight) * (math.prod(y.shape[1:]) // y.shape[1])
        return fwd, fwd
    if isinstance(layer, xn.ConvTranspose2d):
        fwd = 2 * _size(layer.weight) * math.prod(x.shape[2:])
        return fwd, fwd
    if isinstance(layer, (xn.GRU, xn.LSTM)):
        t = x.shape[1] if layer.batch_first else x.shape[0]
        weights = [p for n, p in layer.named_parameters() if n.startswith("weight_")]
        return 2 * t * sum(_size(p) for p in weights), 2 * t * _size(layer.weight_ih_l0)
    if isinstance(layer, xn.TransformerEncoderLayer):
        t, d = (x.shape[1] if layer.batch_first else x.shape[0]), x.shape[-1]
        attn = layer.self_attn
        proj = [attn.in_proj_weight, attn.out_proj.weight, layer.linear1.weight, layer.linear2.weight]
        return 2 * t * sum(_size(p) for p in proj) + 4 * t * t * d, 2 * t * _size(attn.in_proj_weight)
    return None


def layer_flops(net, sample_shape) -> list[dict]:
    """``[{"layer", "forward_per_sample", "input_grad_per_sample"}]`` for each layer of ``net``
    (a Sequential chain) that holds products (Linear, convolutions, GRU, LSTM, Transformer
    encoder layers), in order. Runs one forward pass on a single N(0, 1) sample on the net's
    backend to learn every shape (like any forward, it leaves the layers' caches behind: count
    on a throwaway net, as :func:`workload_flops` does)."""
    import xpnet as xn
    from xpnet import backends

    from .workloads import output_of

    weight = next(iter(net.parameters()), None)
    be = backends.backend_of(weight.data) if weight is not None else backends.get("numpy")
    gen = type(be.rng)(be, 0)  # a private generator: counting must not move the backend's stream
    x = gen.normal((1, *sample_shape), dtype=be.dtype("float32"))
    out = []
    for layer in _leaves(net):
        y = output_of(layer.forward(x))
        counted = _counted(xn, layer, x, y)
        if counted is not None:
            out.append({"layer": layer._tag(), "forward_per_sample": counted[0], "input_grad_per_sample": counted[1]})
        x = y
    return out


def step_flops(per_layer, batch: int, mode: str) -> int:
    """FLOPs of one step of ``batch`` samples: ``mode`` is ``"train"`` or ``"infer"`` (see the module docstring)."""
    fwd = sum(p["forward_per_sample"] for p in per_layer)
    if mode == "infer":
        return batch * fwd
    if mode == "train":
        first = per_layer[0].get("input_grad_per_sample", per_layer[0]["forward_per_sample"]) if per_layer else 0
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
