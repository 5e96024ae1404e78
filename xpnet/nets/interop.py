"""PyTorch interop: ``to_torch(net)`` builds the same ``torch.nn`` model with the same weights,
``from_torch(module)`` the reverse. Both go through the architecture spec and the state dict,
whose names and layouts xpnet shares with ``torch.nn``.

Supported: ``torch.nn.Sequential`` (nested too) of the layers xpnet has under the same name,
with the options xpnet implements (e.g. ``Conv2d(padding_mode="zeros")``). Anything else
raises a ValueError naming the module.
"""

from __future__ import annotations

import inspect

from .. import backends
from . import spec as _spec
from .evaluate import net_backend

# options a torch module may carry beyond xpnet's config, with the values xpnet implements
_TORCH_ONLY = {
    "Conv2d": {"padding_mode": ("zeros",)},
    "MaxPool2d": {"dilation": (1, (1, 1)), "return_indices": (False,), "ceil_mode": (False,)},
    "AvgPool2d": {"ceil_mode": (False,), "count_include_pad": (True,), "divisor_override": (None,)},
    "Embedding": {"max_norm": (None,), "scale_grad_by_freq": (False,), "sparse": (False,)},
}


def to_torch(net):
    """A ``torch.nn`` model equal to ``net``: same architecture, weights and buffers (copied),
    dtype, and train/eval mode, on the CPU (``.to("cuda")`` it as usual)."""
    torch = backends.torch_module()
    be = net_backend(net, "to_torch")
    module = _torch_from_spec(torch, _spec.layer_spec(net))
    state = {k: torch.from_numpy(be.to_numpy(v)) for k, v in net.state_dict().items()}
    dtype = next((v.dtype for v in state.values() if v.is_floating_point()), torch.float32)
    module.to(dtype)
    module.load_state_dict(state)
    module.train(net.training)
    return module


def from_torch(module, *, backend=None, dtype=None):
    """An xpnet net equal to the ``torch.nn`` ``module``: same architecture, weights and
    buffers (copied), train/eval mode; on ``backend`` (default: the current one) in ``dtype``
    (default: the module's float dtype)."""
    torch = backends.torch_module()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch expected a torch.nn.Module, got {type(module).__name__}")
    spec = _spec_from_torch(torch, module, "module")
    if dtype is None:
        dtype = next((str(v.dtype).removeprefix("torch.") for v in module.state_dict().values()
                      if v.is_floating_point()), "float32")  # buffers count: BatchNorm(affine=False)
    net = _spec.build(spec, backend=backend, dtype=dtype)
    net.load_state_dict({k: v.detach() for k, v in module.state_dict().items()})
    net.train(module.training)
    return net


def _torch_from_spec(torch, spec):
    kind = spec["type"]
    if kind == "Sequential":
        return torch.nn.Sequential(*(_torch_from_spec(torch, s) for s in spec["layers"]))
    cls = getattr(torch.nn, kind, None)
    if cls is None:
        raise ValueError(f"to_torch: torch.nn has no layer equal to xpnet's {kind}")
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items() if k != "type"}
    if "bias" in args and "affine" in args and "bias" not in inspect.signature(cls).parameters:
        # torch's BatchNorm took a bias option only recently; before, it has a bias exactly when affine
        if args["bias"] != args["affine"]:
            raise ValueError(f"to_torch: this torch's {kind} has no bias option; xpnet's has affine=True, bias=False")
        del args["bias"]
    return cls(**args)


def _spec_from_torch(torch, m, where):
    kind = type(m).__name__
    if isinstance(m, torch.nn.Sequential):
        return {"type": "Sequential", "layers": [_spec_from_torch(torch, c, f"{where}[{i}]") for i, c in enumerate(m)]}
    cls = _spec._registry().get(kind)
    if cls is None or type(m) is not getattr(torch.nn, kind, None):
        raise ValueError(f"from_torch: {where} is a {type(m).__module__}.{kind}, which xpnet has no layer for")
    for opt, allowed in _TORCH_ONLY.get(kind, {}).items():
        value = getattr(m, opt)
        if (tuple(value) if isinstance(value, list) else value) not in allowed:
            raise ValueError(f"from_torch: {where} ({kind}) has {opt}={value!r}; xpnet implements only {opt}={allowed[0]!r}")
    out = {"type": kind}
    for f in cls._config_fields:
        v = getattr(m, f)
        out[f] = (v is not None) if f == "bias" else list(v) if isinstance(v, tuple) else v
    return out
