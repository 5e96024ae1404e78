"""What the recurrent layers and cells share besides the maths: their constructor arguments and
parameter shapes (also the checkpoint architecture rules' source, :mod:`xpnet.nets.arch_rules.recurrent`),
their initialisation, and the checks of inputs and states, with errors naming the layer, what
it expected and what it got."""

from __future__ import annotations

import math

from ... import backends
from ...validate import choice, flag, integer, positive_int, probability
from .._checks import check_like, dtype_error, place_error, require_array, shape_str

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


class FlagConfig:
    """``config()`` of a layer whose ``bias`` is a flag (torch's recurrent layers keep it so),
    not a parameter: every field of ``_config_fields`` as it is."""

    def config(self):
        return {f: getattr(self, f) for f in self._config_fields}


def stack_args(owner, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
               proj_size=0, nonlinearity=None):
    """The validated constructor arguments of RNN, LSTM or GRU (``owner``), as a dict."""
    out = {
        "input_size": positive_int(owner, "input_size", input_size),
        "hidden_size": positive_int(owner, "hidden_size", hidden_size),
        "num_layers": positive_int(owner, "num_layers", num_layers),
        "bias": flag(owner, "bias", bias),
        "batch_first": flag(owner, "batch_first", batch_first),
        "dropout": probability(owner, "dropout", dropout, closed=True),
        "bidirectional": flag(owner, "bidirectional", bidirectional),
        "proj_size": integer(owner, "proj_size", proj_size, minimum=0),
    }
    if out["proj_size"] >= out["hidden_size"]:
        raise ValueError(f"{owner}: proj_size must be smaller than hidden_size ({out['hidden_size']}), "
                         f"got {out['proj_size']}")
    if nonlinearity is not None:
        out["nonlinearity"] = choice(owner, "nonlinearity", nonlinearity, ("tanh", "relu"))
    return out


def stack_shapes(gates, input_size, hidden_size, num_layers, bias, bidirectional, proj_size=0):
    """``[(name, shape)]`` of a stack's parameters, in torch's order: per layer, per direction,
    ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, ``weight_hr_l{k}``
    (with ``_reverse`` for the second direction)."""
    out = []
    p = proj_size or hidden_size
    dirs = 2 if bidirectional else 1
    for layer in range(num_layers):
        inputs = input_size if layer == 0 else p * dirs
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            out += [(f"weight_ih{sfx}", (gates * hidden_size, inputs)), (f"weight_hh{sfx}", (gates * hidden_size, p))]
            if bias:
                out += [(f"bias_ih{sfx}", (gates * hidden_size,)), (f"bias_hh{sfx}", (gates * hidden_size,))]
            if proj_size:
                out.append((f"weight_hr{sfx}", (proj_size, hidden_size)))
    return out


def cell_args(owner, input_size, hidden_size, bias, nonlinearity=None):
    """The validated constructor arguments of RNNCell, LSTMCell or GRUCell (``owner``)."""
    out = {"input_size": positive_int(owner, "input_size", input_size),
           "hidden_size": positive_int(owner, "hidden_size", hidden_size),
           "bias": flag(owner, "bias", bias)}
    if nonlinearity is not None:
        out["nonlinearity"] = choice(owner, "nonlinearity", nonlinearity, ("tanh", "relu"))
    return out


def cell_shapes(gates, input_size, hidden_size, bias):
    """``[(name, shape)]`` of a cell's parameters: ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``."""
    g = gates * hidden_size
    out = [("weight_ih", (g, input_size)), ("weight_hh", (g, hidden_size))]
    return out + ([("bias_ih", (g,)), ("bias_hh", (g,))] if bias else [])


def make_parameters(layer, shapes, hidden_size, owner, backend, dtype):
    """Set each ``(name, shape)`` of ``shapes`` on ``layer`` as a Parameter drawn from
    ``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))`` (torch's init of every recurrent weight and
    bias), in that order, on ``backend`` in ``dtype`` (default float32)."""
    from ...validate import float_dtype
    from ..base import Parameter

    be = backends.get(backend)
    dt = float_dtype(owner, be, dtype)
    bound = 1.0 / math.sqrt(hidden_size)
    for name, shape in shapes:
        setattr(layer, name, Parameter(be.rng.uniform(shape, -bound, bound, dtype=dt)))


def check_input(tag, x, w, size, ranks, shapes):
    """Check the input ``x`` of a layer whose first weight is ``w``: place and dtype, a rank in
    ``ranks`` and a last axis of ``size``; ``shapes`` says the accepted shapes in the message."""
    require_array(tag, x)
    check_like(tag, x, w)
    if x.ndim not in ranks or x.shape[-1] != size:
        raise ValueError(f"{tag} expected input of shape {shapes}, got {shape_str(x.shape)}")


def check_state(tag, name, h, want, meaning, x, batched, w):
    """Check a given initial state ``h`` against the shape ``want`` (``meaning`` names its axes),
    for the (``batched`` or not) input ``x``, in the place and dtype of the weight ``w``."""
    require_array(tag, h, name)
    if type(h) is not type(w) or h.device != w.device:
        raise place_error(tag, h, w, name)
    if h.dtype != w.dtype:
        raise dtype_error(tag, h, w.dtype, name)
    if tuple(h.shape) != tuple(want):
        kind = "batched" if batched else "unbatched"
        raise ValueError(f"{tag} expected {name} of shape {shape_str(want)} ({meaning}) for the {kind} input of "
                         f"shape {shape_str(x.shape)}, got {shape_str(h.shape)}")


def split_hx(tag, args, hx):
    """``(hx, given positionally)`` from a forward's ``*args`` and its ``hx=`` keyword: torch's
    ``forward(input, hx=None)``. A state given positionally gets a gradient from backward; one
    given as a keyword does not (the layer contract)."""
    if len(args) > 1:
        raise TypeError(f"{tag}.forward takes (input, hx=None), got {1 + len(args)} positional arguments")
    if args:
        if hx is not None:
            raise TypeError(f"{tag}.forward got hx both positionally and as a keyword")
        return args[0], True
    return hx, False


def state_pair(tag, hx):
    """An LSTM state: None, or the pair ``(h0, c0)``."""
    if hx is None:
        return None, None
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        got = f"a {type(hx).__name__} of {len(hx)}" if isinstance(hx, (tuple, list)) else type(hx).__name__
        raise TypeError(f"{tag} expected hx to be a tuple (h0, c0) of two arrays, got {got}")
    return hx[0], hx[1]
