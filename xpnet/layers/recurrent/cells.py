"""RNNCell, LSTMCell and GRUCell: one step of the recurrences, as ``torch.nn``'s cells.

A cell is a sequence of one step: it runs the same step maths (:mod:`._steps`) through the same
loop (:mod:`._sequence`) as RNN, LSTM and GRU, with ``T = 1``.
"""

from __future__ import annotations

from ... import backends
from ..base import Layer, Signature, grad_enabled
from . import _sequence, _steps
from ._args import (GATES, FlagConfig, cell_args, cell_shapes, check_input, check_state, make_parameters, split_hx,
                    state_pair)


class _Cell(FlagConfig, Layer):
    """What the three cells share: arguments, parameters, input and state checks, the step."""

    _config_fields = ("input_size", "hidden_size", "bias")

    def _setup(self, mode, args, backend, dtype):
        for k, v in args.items():
            setattr(self, k, v)
        self._cell = _steps.kind(mode)
        make_parameters(self, cell_shapes(GATES[mode], self.input_size, self.hidden_size, self.bias),
                        self.hidden_size, type(self).__name__, backend, dtype)

    def _weights(self):
        return _sequence.Weights(self.weight_ih, self.weight_hh, getattr(self, "bias_ih", None),
                                 getattr(self, "bias_hh", None))

    def forward(self, input, *args, hx=None):
        tag = self._tag()
        hx, positional = split_hx(tag, args, hx)
        w = self.weight_ih.data
        f, hid = self.input_size, self.hidden_size
        check_input(tag, input, w, f, (1, 2), f"(N, {f}), or ({f},) unbatched")
        be = backends.backend_of(input)
        xp = be.xp
        batched = input.ndim == 2
        n = input.shape[0] if batched else 1
        x = xp.reshape(input, (1, n, f))
        cell = self._cell
        h0, c0 = state_pair(tag, hx) if cell.has_cell else (hx, None)
        states = []
        for s, name in ((h0, "h0"), (c0, "c0")):
            if s is None:  # absent (zeros, made by the loop), or a cell without c
                states.append(None)
            else:
                check_state(tag, name, s, (n, hid) if batched else (hid,),
                            "batch, hidden_size" if batched else "hidden_size", input, batched, w)
                states.append(s if batched else xp.reshape(s, (1, hid)))
        _, h, c, saved = _sequence.forward(cell, be, x, states[0], states[1], self._weights(), False, grad_enabled())
        if not batched:
            h, c = h[0, ...], (None if c is None else c[0, ...])
        # Kept: the step's saved values (._sequence), the outputs' signature, the layout, how hx came
        self.save_for_backward(saved, Signature(h), batched, positional, hx is not None)
        return h if c is None else (h, c)

    def _backward(self, dh, dc, input_grad):
        saved, sig, batched, positional, had_hx = self.saved()
        if dh is None and dc is None:
            return None
        for g in (dh, dc):
            if g is not None:
                self.check_grad(g, sig)
        xp = backends.namespace_of(dh if dh is not None else dc)
        hid, w = self.hidden_size, self._weights()
        want_h0 = input_grad and positional and had_hx
        if not (input_grad or want_h0 or w.trained()):
            return None
        if not batched:
            dh, dc = (None if g is None else xp.reshape(g, (1, hid)) for g in (dh, dc))
        dx, dh0, dc0 = _sequence.backward(self._cell, xp, None, dh, dc, saved, w, input_grad)
        if not input_grad:
            return None
        dx = dx[0, ...] if batched else xp.reshape(dx, (self.input_size,))
        if not positional:
            return dx
        if not had_hx:
            return dx, None
        dh0, dc0 = (None if g is None else g if batched else g[0, ...] for g in (dh0, dc0))
        return dx, (dh0 if dc0 is None else (dh0, dc0))

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(_Cell):
    """One Elman step, as ``torch.nn.RNNCell``::

        h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh),     act = tanh or relu (nonlinearity)

    Backward: ``da = dh' * act'`` (``1 - h'^2``, or ``[h' > 0]``), ``dx = da W_ih``,
    ``dh = da W_hh``, ``dW_ih += da^T x``, ``dW_hh += da^T h``, ``db_ih = db_hh += sum da``.

    Shapes: ``input (N, input_size)`` or ``(input_size,)``; ``hx (N, H)`` or ``(H,)``, zeros when
    absent; returns ``h' (N, H)``. Parameters ``weight_ih (H, input_size)``, ``weight_hh (H, H)``,
    ``bias_ih``, ``bias_hh (H,)``, from ``U(-1/sqrt(H), 1/sqrt(H))``. ``backward(dh')`` returns
    ``dx``, or ``(dx, dh)`` when ``hx`` was given positionally (``dh`` None for a None hx).
    """

    _config_fields = ("input_size", "hidden_size", "bias", "nonlinearity")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 *, backend=None, dtype=None):
        args = cell_args("RNNCell", input_size, hidden_size, bias, nonlinearity)
        self._setup("RNN_RELU" if args["nonlinearity"] == "relu" else "RNN_TANH", args, backend, dtype)

    def backward(self, dh, input_grad: bool = True):
        return self._backward(dh, None, input_grad)


class LSTMCell(_Cell):
    """One LSTM step, as ``torch.nn.LSTMCell`` (gates ``i, f, g, o``; ``s``: the sigmoid)::

        [i, f, g, o] = [s, s, tanh, s](x W_ih^T + b_ih + h W_hh^T + b_hh)
        c' = f * c + i * g,    h' = o * tanh(c')

    Backward from ``dh'`` and ``dc'``: ``dc = dc' + dh' o (1 - tanh(c')^2)``; ``da = [dc g i(1-i),
    dc c f(1-f), dc i (1-g^2), dh' tanh(c') o(1-o)]``; ``dc_prev = dc f``, ``dh = da W_hh``,
    ``dx = da W_ih``; ``dW_ih += da^T x``, ``dW_hh += da^T h``, ``db_ih = db_hh += sum da``.

    Shapes: ``input (N, input_size)`` or ``(input_size,)``; ``hx = (h, c)``, each ``(N, H)`` or
    ``(H,)``, zeros when absent; returns ``(h', c')``. Parameters ``weight_ih (4H, input_size)``,
    ``weight_hh (4H, H)``, ``bias_ih``, ``bias_hh (4H,)``. ``backward(dh', dc')`` (either None)
    returns ``dx``, or ``(dx, (dh, dc))`` when ``hx`` was given positionally (None for a None hx).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, backend=None, dtype=None):
        self._setup("LSTM", cell_args("LSTMCell", input_size, hidden_size, bias), backend, dtype)

    def backward(self, dh, dc=None, input_grad: bool = True):
        return self._backward(dh, dc, input_grad)


class GRUCell(_Cell):
    """One GRU step, as ``torch.nn.GRUCell`` (gates ``r, z, n``; ``s``: the sigmoid)::

        [gh_r, gh_z, gh_n] = h W_hh^T + b_hh
        r = s(gx_r + gh_r),  z = s(gx_z + gh_z),  n = tanh(gx_n + r * gh_n),  h' = (1 - z) n + z h

    Backward from ``dh'``: ``dn_pre = dh' (1-z)(1-n^2)``, ``dz_pre = dh' (h - n) z(1-z)``,
    ``dr_pre = dn_pre gh_n r(1-r)``; ``dgx = [dr_pre, dz_pre, dn_pre]``, ``dgh = [dr_pre, dz_pre,
    dn_pre r]``; ``dx = dgx W_ih``, ``dh = dgh W_hh + dh' z``.

    Shapes: ``input (N, input_size)`` or ``(input_size,)``; ``hx (N, H)`` or ``(H,)``, zeros when
    absent; returns ``h' (N, H)``. Parameters ``weight_ih (3H, input_size)``, ``weight_hh (3H, H)``,
    ``bias_ih``, ``bias_hh (3H,)``. ``backward(dh')`` returns ``dx``, or ``(dx, dh)`` when ``hx``
    was given positionally (``dh`` None for a None hx).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, backend=None, dtype=None):
        self._setup("GRU", cell_args("GRUCell", input_size, hidden_size, bias), backend, dtype)

    def backward(self, dh, input_grad: bool = True):
        return self._backward(dh, None, input_grad)
