"""PyTorch interop: ``to_torch(net)`` builds the same ``torch.nn`` model with the same weights,
``from_torch(module)`` the reverse. Both recurse through the architecture spec
(:mod:`xpnet.nets.spec`) and copy the state dict, whose names and layouts xpnet shares with
``torch.nn``.

What converts, in either direction:

- xpnet's layers and ``Sequential`` to and from the ``torch.nn`` classes of the same name, with
  the options xpnet implements (e.g. ``Embedding(sparse=False)``);
- ``Residual`` and ``Concat`` to and from their torch twins, small ``torch.nn.Module`` classes
  made here (:func:`torch_twin`), whose state-dict keys are xpnet's (``body.0.weight``,
  ``shortcut.weight``; ``0.weight`` for a Concat's first branch);
- a layer of your own registered with ``register(MyBlock, torch=MyTorchBlock)``: ``to_torch``
  calls the twin as the spec builds ``MyBlock`` (``MyTorchBlock(**config)``, a ``*args``
  argument's list passed positionally), with layer-valued arguments converted to torch modules
  first. For ``from_torch`` the twin must be a class, and its instances must expose each config
  field of ``MyBlock`` as an attribute of the same name (a child module, a list or
  ``ModuleList`` of them, or a plain value); its children must be named so that its state-dict
  keys equal those of ``MyBlock``.

Tied parameters stay tied (one ``nn.Parameter`` in torch, one ``Parameter`` in xpnet), and every
module keeps its own train/eval mode. Anything else raises a ValueError naming the module.
"""

from __future__ import annotations

import inspect

from .. import backends
from . import spec as _spec

# options a torch module may carry beyond xpnet's config, with the values xpnet implements (an
# option that the layer's config lists is carried through the spec instead: MaxPool2d's return_indices)
_TORCH_ONLY: dict = {}

# arguments that torch.nn takes as tensors and xpnet's config gives as lists of numbers
_TENSOR_ARGS = ("weight", "pos_weight", "_random_samples")

# (type, constructor argument) -> the attribute a torch module keeps it under, where the names
# differ, or a function of the module that reads it (torch's TransformerEncoderLayer keeps no
# d_model: it is its self_attn's embed_dim)
_TORCH_ATTRS = {
    ("PairwiseDistance", "p"): "norm",
    # LinearCrossEntropyLoss (issue 11): torch keeps the Linear's sizes on the child
    ("LinearCrossEntropyLoss", "in_features"): lambda m: m.linear.in_features,
    ("LinearCrossEntropyLoss", "bias"): lambda m: m.linear.bias is not None,
    # recurrent layers
    # attention
    ("MultiheadAttention", "bias"): lambda m: m.in_proj_bias is not None,
    ("MultiheadAttention", "add_bias_kv"): lambda m: m.bias_k is not None,
    # transformers: torch keeps a layer's arguments on its children, and its activation as a
    # function (F.relu, F.gelu: xpnet's "relu", "gelu"; a module converts as a child). A
    # Transformer converts with its encoder and decoder as custom ones (exact, whatever they
    # are), which leave its other arguments unused: those are xpnet's defaults
    **{(kind, f): read for kind in ("TransformerEncoderLayer", "TransformerDecoderLayer") for f, read in (
        ("d_model", lambda m: m.self_attn.embed_dim), ("nhead", lambda m: m.self_attn.num_heads),
        ("dim_feedforward", lambda m: m.linear1.out_features), ("dropout", lambda m: m.dropout.p),
        ("activation", lambda m: next((name for name in ("relu", "gelu")
                                       if m.activation is getattr(backends.torch_module().nn.functional, name)),
                                      m.activation)),
        ("layer_norm_eps", lambda m: m.norm1.eps), ("batch_first", lambda m: m.self_attn.batch_first),
        ("bias", lambda m: m.linear1.bias is not None))},
    ("TransformerEncoder", "encoder_layer"): lambda m: m.layers[0],
    ("TransformerDecoder", "decoder_layer"): lambda m: m.layers[0],
    ("Transformer", "custom_encoder"): lambda m: m.encoder,
    ("Transformer", "custom_decoder"): lambda m: m.decoder,
    **{("Transformer", f): (lambda m, f=f: inspect.signature(_spec._registry()["Transformer"]).parameters[f].default)
       for f in ("num_encoder_layers", "num_decoder_layers", "dim_feedforward", "dropout", "activation",
                 "layer_norm_eps", "norm_first", "bias")},
}

_BUILTIN_TWINS: dict = {}


def torch_twin(kind):
    """The torch class (or factory) that ``to_torch`` makes for xpnet's type ``kind``: a twin
    given to :func:`~xpnet.nets.spec.register`, interop's own for Residual and Concat, or None."""
    twin = _spec._TORCH_TWINS.get(kind)
    if twin is None and kind in ("Residual", "Concat", "Reshape"):
        twin = _builtin_twins(backends.torch_module())[kind]
    return twin


def _builtin_twins(torch):
    """Residual, Concat and Reshape (which torch.nn lacks) as torch modules, made on first use so
    that torch stays optional."""
    if _BUILTIN_TWINS:
        return _BUILTIN_TWINS
    nn = torch.nn

    class Residual(nn.Module):
        """xpnet's Residual in torch: ``body(x) + shortcut(x)`` (``x`` when shortcut is None)."""

        def __init__(self, body, shortcut=None):
            super().__init__()
            self.body = body
            self.shortcut = shortcut

        def forward(self, x):
            return self.body(x) + (x if self.shortcut is None else self.shortcut(x))

    class Concat(nn.Module):
        """xpnet's Concat in torch: ``cat([b(x) for b in branches], dim)``; branches named ``0``, ``1``, ..."""

        def __init__(self, *branches, dim=1):
            super().__init__()
            for i, b in enumerate(branches):
                self.add_module(str(i), b)
            self.dim = dim

        @property
        def branches(self):
            return list(self._modules.values())

        def forward(self, x):
            return torch.cat([b(x) for b in self._modules.values()], dim=self.dim)

        def extra_repr(self):
            return f"dim={self.dim}"

    class Reshape(nn.Module):
        """xpnet's Reshape in torch: each sample reshaped to ``shape``, the batch axis kept."""

        def __init__(self, *shape):
            super().__init__()
            self.shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape

        def forward(self, x):
            return x.reshape(x.shape[0], *self.shape)

        def extra_repr(self):
            return ", ".join(str(s) for s in self.shape)

    for cls in (Residual, Concat, Reshape):
        # printed as torch prints modules (``Residual(...)``); found by pickle as ``interop.TorchResidual``
        cls.__module__ = __name__
        cls.__qualname__ = f"Torch{cls.__name__}"
    _BUILTIN_TWINS.update(Residual=Residual, Concat=Concat, Reshape=Reshape)
    return _BUILTIN_TWINS


def __getattr__(name):
    """``TorchResidual``, ``TorchConcat`` and ``TorchReshape``: the twins, made on first access (so
    that a pickled torch model holding them loads in a fresh process)."""
    if name in ("TorchResidual", "TorchConcat", "TorchReshape"):
        return _builtin_twins(backends.torch_module())[name.removeprefix("Torch")]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def to_torch(net):
    """A ``torch.nn`` model equal to ``net``: same architecture, weights and buffers (copied),
    tied parameters, dtype (float32 for a net without any state), and each module's train/eval
    mode, on the CPU (``.to("cuda")`` it as usual)."""
    torch = backends.torch_module()
    module = _torch_from_spec(torch, _spec.layer_spec(net), "net")
    state = {k: torch.from_numpy(backends.to_numpy(v)) for k, v in net.state_dict().items()}
    dtype = next((v.dtype for v in state.values() if v.is_floating_point()), torch.float32)
    module.to(dtype)
    for group in net.tied_parameters():
        first = module.get_parameter(group[0])
        for name in group[1:]:
            owner, _, attr = name.rpartition(".")
            setattr(module.get_submodule(owner), attr, first)
    # a lazy layer that has not run has no arrays: its twin keeps its uninitialized placeholders
    lazy = torch.nn.parameter.UninitializedParameter
    state.update({k: v for k, v in module.state_dict().items() if k not in state and isinstance(v, lazy)})
    module.load_state_dict(state)
    module.train(net.training)
    for name, layer in net.named_modules():
        try:
            module.get_submodule(name).training = layer.training
        except AttributeError:  # a twin may hold a parameterless layer under another name
            pass
    return module


def from_torch(module, *, backend=None, dtype=None):
    """An xpnet net equal to the ``torch.nn`` ``module``: same architecture, weights and
    buffers (copied), tied parameters, each module's train/eval mode; on ``backend`` (default:
    the current one) in ``dtype`` (default: the module's float dtype)."""
    torch = backends.torch_module()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch expected a torch.nn.Module, got {type(module).__name__}")
    spec = _spec_from_torch(torch, module, "module", _reverse_twins(torch))
    if dtype is None:
        dtype = next((str(v.dtype).removeprefix("torch.") for v in module.state_dict().values()
                      if v.is_floating_point()), "float32")  # buffers count: BatchNorm(affine=False)
    net = _spec.build(spec, backend=backend, dtype=dtype)
    groups = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    for names in groups.values():
        if len(names) > 1:
            net.tie(*names)
    lazy = torch.nn.parameter.UninitializedParameter  # a lazy module's placeholders: no arrays to copy
    net.load_state_dict({k: v.detach() for k, v in module.state_dict().items() if not isinstance(v, lazy)})
    net.train(module.training)
    layers = dict(net.named_modules())
    for name, m in module.named_modules():
        if name in layers:
            layers[name].training = m.training
    return net


def _torch_from_spec(torch, spec, where):
    kind = spec["type"]
    twin = torch_twin(kind)
    cls = _spec._registry()[kind]
    if twin is None:
        if kind not in _spec.builtin_classes():
            raise ValueError(f"to_torch: {where} is xpnet's {kind}, which has no torch twin; "
                             f"register it with xpnet.register({kind}, torch=...)")
        twin = getattr(torch.nn, kind, None)
        if twin is None:
            raise ValueError(f"to_torch: torch.nn has no layer equal to xpnet's {kind}")
    args = {}
    for k, v in spec.items():
        if k == "type":
            continue
        if _spec._is_spec(v):
            v = _torch_from_spec(torch, v, f"{where}.{k}")
        elif isinstance(v, list) and any(_spec._is_spec(e) for e in v):
            v = [_torch_from_spec(torch, e, f"{where}.{k}[{i}]") for i, e in enumerate(v)]
        elif isinstance(v, (list, int, float)) and k in _TENSOR_ARGS and kind in _spec.builtin_classes():
            v = torch.tensor(v, dtype=torch.float64)  # a loss's class weights (0-d: a number): a tensor in torch
        elif isinstance(v, list):
            v = tuple(v)
        args[k] = v
    if "bias" in args and "affine" in args and "bias" not in inspect.signature(twin).parameters:
        # torch's BatchNorm took a bias option only recently; before, it has a bias exactly when affine
        if args["bias"] != args["affine"]:
            raise ValueError(f"to_torch: this torch's {kind} has no bias option; xpnet's has affine=True, bias=False")
        del args["bias"]
    return _spec.construct(twin, args, _spec.var_positional(cls))


def _reverse_twins(torch):
    """``{torch class: xpnet type name}`` for the twins (registered ones that are classes)."""
    out = {cls: kind for kind, cls in _builtin_twins(torch).items()}
    for kind, twin in _spec._TORCH_TWINS.items():
        if isinstance(twin, type):
            out[twin] = kind
    return out


def _spec_from_torch(torch, m, where, twins):
    kind = twins.get(type(m))
    if kind is not None:
        return _twin_spec(torch, m, where, twins, kind)
    kind = type(m).__name__
    if isinstance(m, torch.nn.Sequential):
        return {"type": "Sequential",
                "layers": [_spec_from_torch(torch, c, f"{where}[{i}]", twins) for i, c in enumerate(m)]}
    cls = _spec.builtin_classes().get(kind)
    if cls is None or type(m) is not getattr(torch.nn, kind, None):
        raise ValueError(f"from_torch: {where} is a {type(m).__module__}.{kind}, which xpnet has no layer for")
    fields = _spec.config_fields(cls)
    for opt, allowed in _TORCH_ONLY.get(kind, {}).items():
        if opt in fields:  # xpnet has the option now: its value goes through the config
            continue
        value = getattr(m, opt)
        if (tuple(value) if isinstance(value, list) else value) not in allowed:
            raise ValueError(f"from_torch: {where} ({kind}) has {opt}={value!r}; xpnet implements only {opt}={allowed[0]!r}")
    out = {"type": kind}
    for f in fields:
        attr = _TORCH_ATTRS.get((kind, f), f)
        v = attr(m) if callable(attr) else getattr(m, attr)
        if isinstance(v, torch.nn.Module):  # a layer-valued argument (TransformerEncoder's encoder_layer)
            out[f] = _spec_from_torch(torch, v, f"{where}.{f}", twins)
            continue
        if f == "bias" and not isinstance(v, bool):
            v = v is not None
        elif isinstance(v, torch.Tensor):  # e.g. a loss's class weights
            v = v.tolist()
        out[f] = list(v) if isinstance(v, tuple) else v
    return out


def _twin_spec(torch, m, where, twins, kind):
    out = {"type": kind}
    for f in _spec.config_fields(_spec._registry()[kind]):
        try:
            v = getattr(m, f)
        except AttributeError:
            raise ValueError(f"from_torch: {where} ({type(m).__name__}, the torch twin of {kind}) has no attribute "
                             f"{f!r}; a twin must expose each config field as an attribute") from None
        here = f"{where}.{f}"
        if isinstance(v, torch.nn.Module) and not isinstance(v, torch.nn.ModuleList):
            v = _spec_from_torch(torch, v, here, twins)
        elif isinstance(v, (list, tuple, torch.nn.ModuleList)) and any(isinstance(e, torch.nn.Module) for e in v):
            v = [_spec_from_torch(torch, e, f"{here}[{i}]", twins) for i, e in enumerate(v)]
        elif isinstance(v, tuple):
            v = list(v)
        out[f] = v
    return out
