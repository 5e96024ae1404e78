"""The engine of RNN, LSTM and GRU: layers stacked on layers, one or two directions each,
batch-first and unbatched inputs, dropout between layers, and the packing of the states, around
the per-direction loops of :mod:`._sequence` (whose step maths is :mod:`._steps`).

Layer ``l`` reads the output of layer ``l-1`` (the input for ``l = 0``); with two directions its
output is ``[forward, reverse]`` concatenated along the features, so layer ``l > 0`` reads
``D * P`` features (``P``: ``proj_size`` or ``hidden_size``). In training, dropout multiplies the
input of every layer but the first (torch's "dropout on the outputs of each layer except the
last") by a mask drawn on its device. The states stack every layer and direction on the first
axis, index ``l * D + d``: ``h (L*D, N, P)``, LSTM's ``c (L*D, N, H)``.

The backward runs the layers top down: the gradient of layer ``l``'s input is the sum over its
directions, times the dropout mask, and is the output gradient of layer ``l-1``; each direction
also gets the gradient of its final states (``h_n``, ``c_n``). A direction's backward is skipped
when nothing needs it: no trainable parameter in it, no input gradient asked below it, no state
gradient wanted.
"""

from __future__ import annotations

import warnings

from ... import backends
from .._checks import shape_str
from ..base import Layer, Signature, grad_enabled
from . import _sequence, _steps
from ._args import (GATES, FlagConfig, check_input, check_state, make_parameters, split_hx, stack_shapes,
                    state_pair)


class RecurrentStack(FlagConfig, Layer):
    """What RNN, LSTM and GRU share (see the module doc); a subclass's constructor calls
    ``_setup`` with its step kind, and its ``backward`` names the state gradients as torch does."""

    _config_fields = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional")

    def _setup(self, mode, args, backend, dtype):
        name = type(self).__name__
        for k, v in args.items():
            setattr(self, k, v)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(f"{name}: dropout={self.dropout} applies between layers (after every layer but the last), "
                          "so with num_layers=1 it does nothing", UserWarning, stacklevel=3)
        self._cell = _steps.kind(mode)
        shapes = stack_shapes(GATES[mode], self.input_size, self.hidden_size, self.num_layers, self.bias,
                              self.bidirectional, args.get("proj_size", 0))
        make_parameters(self, shapes, self.hidden_size, name, backend, dtype)

    # -- layout -------------------------------------------------------------------------------
    @property
    def _dirs(self):
        return 2 if self.bidirectional else 1

    @property
    def _out_size(self):
        return getattr(self, "proj_size", 0) or self.hidden_size

    def _weights(self, layer, d):
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        g = self.__dict__.get
        return _sequence.Weights(g(f"weight_ih{sfx}"), g(f"weight_hh{sfx}"), g(f"bias_ih{sfx}"), g(f"bias_hh{sfx}"),
                                 g(f"weight_hr{sfx}"))

    # -- forward ------------------------------------------------------------------------------
    def forward(self, input, *args, hx=None):
        tag = self._tag()
        hx, positional = split_hx(tag, args, hx)
        w0 = self.weight_ih_l0.data
        f = self.input_size
        check_input(tag, input, w0, f, (2, 3),
                    f"({'N, T' if self.batch_first else 'T, N'}, {f}), or ({f},) per step unbatched: (T, {f})")
        be = backends.backend_of(input)
        xp = be.xp
        batched = input.ndim == 3
        if not batched:
            x = xp.expand_dims(input, axis=1)
        else:
            x = xp.permute_dims(input, (1, 0, 2)) if self.batch_first else input
        steps, n = x.shape[0], x.shape[1]
        if steps == 0:
            raise ValueError(f"{tag} expected a sequence of at least one step, got input of shape "
                             f"{shape_str(input.shape)}")
        h0s, c0s = self._initial_states(tag, xp, hx, input, batched, n, w0)
        cell, dirs, keep = self._cell, self._dirs, grad_enabled()
        layer_in, saved, hn, cn = x, [], [], []
        for layer in range(self.num_layers):
            mask = None
            if layer and self.training and self.dropout > 0:
                mask = _dropout_mask(be, tuple(layer_in.shape), self.dropout, layer_in)
                layer_in = layer_in * mask
            ys, kept = [], []
            for d in range(dirs):
                i = layer * dirs + d
                w = self._weights(layer, d)
                y, h, c, s = _sequence.forward(cell, be, layer_in, h0s[i], c0s[i], w, d == 1, keep)
                ys.append(y)
                kept.append(s)
                hn.append(h)
                cn.append(c)
            saved.append((mask, kept))
            layer_in = ys[0] if dirs == 1 else xp.concat(ys, axis=-1)
        out, h_n = layer_in, xp.stack(hn)
        c_n = xp.stack(cn) if cell.has_cell else None
        if not batched:
            out, h_n = out[:, 0, :], h_n[:, 0, :]
            c_n = None if c_n is None else c_n[:, 0, :]
        elif self.batch_first:
            out = xp.permute_dims(out, (1, 0, 2))
        # Kept: per layer its dropout mask and each direction's saved loop values (._sequence),
        # the outputs' signatures (to check the gradients), the layout, and how hx was given
        self.save_for_backward(saved, Signature(out), Signature(h_n), None if c_n is None else Signature(c_n),
                               tuple(x.shape), batched, positional, hx is not None)
        return out, (h_n if c_n is None else (h_n, c_n))

    def _initial_states(self, tag, xp, hx, x, batched, n, w):
        """Per layer and direction, ``h0`` ``(N, P)`` and ``c0`` ``(N, H)`` (None: absent)."""
        count = self.num_layers * self._dirs
        lead = (count, n) if batched else (count,)
        meaning = "num_layers * num_directions, " + ("batch, " if batched else "")
        h0, c0 = state_pair(tag, hx) if self._cell.has_cell else (hx, None)
        p, hid = self._out_size, self.hidden_size
        states = []
        for s, size, name in ((h0, p, "h0"), (c0, hid, "c0")):
            if s is None:  # absent (zeros, made by the loop), or a layer without c
                states.append([None] * count)
                continue
            axis = "proj_size" if size != hid else "hidden_size"
            check_state(tag, name, s, lead + (size,), meaning + axis, x, batched, w)
            if not batched:
                s = xp.expand_dims(s, axis=1)
            states.append([s[i, ...] for i in range(count)])
        return states

    # -- backward -----------------------------------------------------------------------------
    def _backward(self, d_output, dh_n, dc_n, input_grad):
        saved, sig_out, sig_h, sig_c, shape, batched, positional, had_hx = self.saved()
        if d_output is None and dh_n is None and dc_n is None:
            return None
        for g, sig in ((d_output, sig_out), (dh_n, sig_h), (dc_n, sig_c)):
            if g is not None:
                self.check_grad(g, sig)
        xp = backends.namespace_of(next(g for g in (d_output, dh_n, dc_n) if g is not None))
        dy = d_output
        if dy is not None:
            if not batched:
                dy = xp.expand_dims(dy, axis=1)
            elif self.batch_first:
                dy = xp.permute_dims(dy, (1, 0, 2))
        dh_n, dc_n = (s if s is None or batched else xp.expand_dims(s, axis=1) for s in (dh_n, dc_n))
        dirs, p, layers = self._dirs, self._out_size, self.num_layers
        trained = [any(self._weights(layer, d).trained() for d in range(dirs)) for layer in range(layers)]
        want_h0 = input_grad and positional and had_hx
        dh0s, dc0s = [None] * (layers * dirs), [None] * (layers * dirs)
        for layer in range(layers - 1, -1, -1):
            mask, kept = saved[layer]
            need_dx = input_grad or any(trained[:layer])
            dx = None
            for d in range(dirs):
                i, w = layer * dirs + d, self._weights(layer, d)
                dyd = dy if dy is None or dirs == 1 else dy[..., d * p:(d + 1) * p]
                dht = None if dh_n is None else dh_n[i, ...]
                dct = None if dc_n is None else dc_n[i, ...]
                if (dyd is None and dht is None and dct is None) or not (need_dx or want_h0 or w.trained()):
                    continue
                dxd, dh0s[i], dc0s[i] = _sequence.backward(self._cell, xp, dyd, dht, dct, kept[d], w, need_dx)
                if dxd is not None:
                    dx = dxd if dx is None else dx + dxd
            dy = dx if mask is None or dx is None else dx * mask
        if not input_grad:
            return None
        like = saved[0][1][0][0]  # the input (as (T*N, F)): dx's dtype and place
        if dy is None:
            dy = xp.zeros(shape, dtype=like.dtype, device=like.device)
        dx = dy[:, 0, :] if not batched else xp.permute_dims(dy, (1, 0, 2)) if self.batch_first else dy
        if not positional:
            return dx
        if not had_hx:
            return dx, None
        dh0 = self._state_grad(xp, dh0s, shape[1], p, batched, like)
        if not self._cell.has_cell:
            return dx, dh0
        return dx, (dh0, self._state_grad(xp, dc0s, shape[1], self.hidden_size, batched, like))

    def _state_grad(self, xp, grads, n, size, batched, like):
        zero = None
        for i, g in enumerate(grads):
            if g is None:
                if zero is None:
                    zero = xp.zeros((n, size), dtype=like.dtype, device=like.device)
                grads[i] = zero
        out = xp.stack(grads)
        return out if batched else out[:, 0, :]

    # -- printing -----------------------------------------------------------------------------
    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if getattr(self, "proj_size", 0):
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += f", bidirectional={self.bidirectional}"
        return s


def _dropout_mask(be, shape, p, like):
    """Inverted dropout's ``m / (1 - p)``, ``m ~ Bernoulli(1 - p)``, drawn on ``like``'s device
    (all zeros for ``p = 1``, as torch's)."""
    if p >= 1.0:
        return be.xp.zeros(shape, dtype=like.dtype, device=like.device)
    keep = 1.0 - p
    mask = be.rng.bernoulli(shape, keep, dtype=like.dtype, device=like.device)
    mask *= 1.0 / keep  # our own fresh array: scale in place
    return mask
