"""MixedPrecision: forward and backward in float16/bfloat16 over float32 master weights.

The recipe of Micikevicius et al. (2018), without autograd: xpnet has no graph to insert casts
into, so the policy swaps the parameters instead. Outside :meth:`MixedPrecision.autocast` the
net holds its float32 weights (the master weights, which the optimizer steps, evaluation uses
and checkpoints save); inside it each parameter's ``data`` is a low-precision copy (rebound,
never modified in place), so the forward and backward run in low precision, while the layers
that need range do their reductions, softmax, losses and normalization statistics in float32
(they widen a float16/bfloat16 input themselves). Leaving the block puts the master weights back
and casts the gradients the copies received up onto them; buffers (BatchNorm's running
statistics) are never cast and stay float32.
"""

from __future__ import annotations

import contextlib

from .. import backends
from ..layers.base import Layer
from .scaler import GradScaler

#: the precisions MixedPrecision takes, and the dtype each computes in
PRECISIONS = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16"}


def precision_dtype(precision, who="MixedPrecision"):
    """The dtype name (``"bfloat16"``, ``"float16"``) of ``precision`` (``"bf16"``, ``"fp16"`` or
    those dtype names), or None for None (full precision); ValueError for anything else."""
    if precision is None:
        return None
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"{who}: precision must be 'bf16', 'fp16' or None, got {precision!r}")
    return PRECISIONS[precision]


class MixedPrecision:
    """A precision policy for a hand-written training loop over ``net`` and ``optimizer``.

    ``MixedPrecision(net, optimizer, precision="bf16", scaler=None)``: ``precision`` ``"bf16"``
    (bfloat16: float32's range, no loss scaling needed) or ``"fp16"`` (float16: a
    :class:`~xpnet.amp.GradScaler` scales the loss), or None (everything as it is, in the net's
    own precision: one loop serves both). ``scaler``: the GradScaler to use; by default an
    enabled one for fp16, a disabled one otherwise. The net's backend must have the dtype
    (torch: both; numpy: float16 only; array-api-strict: neither), else ValueError naming the
    backend and what it has. The net's parameters must be float32 or float64: they are the
    master weights. One step::

        amp = xn.MixedPrecision(net, opt, "fp16")
        opt.zero_grad()
        with amp.autocast():                  # the parameters are float16 copies in here
            out = net(amp.cast(xb))           # the input cast to float16 (labels untouched)
            value = loss(out, yb)             # float32: losses compute in float32
            amp.backward(loss)                # net.backward(loss.backward(S), input_grad=False)
        amp.unscale_()                        # only to clip: the true gradients, then clip them
        amp.step()                            # unscale, one finiteness read, step or skip, update S

    Gradients accumulate across several ``autocast`` blocks before a step, as they do in
    full precision. The optimizer's state is float32 throughout, since it only ever sees the
    master weights and their float32 gradients.
    """

    def __init__(self, net, optimizer, precision="bf16", scaler=None):
        from ..nets.evaluate import net_backend
        from ..nets.optim import Optimizer

        if not isinstance(net, Layer):
            raise TypeError(f"MixedPrecision: net must be an xpnet Layer, got {type(net).__name__}")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"MixedPrecision: optimizer must be an xpnet Optimizer, got {type(optimizer).__name__}")
        name = precision_dtype(precision)
        if scaler is None:
            scaler = GradScaler(enabled=name == "float16")
        elif not isinstance(scaler, GradScaler):
            raise TypeError(f"MixedPrecision: scaler must be a GradScaler or None, got {type(scaler).__name__}")
        self.net, self.optimizer, self.scaler = net, optimizer, scaler
        self.precision = None if name is None else {"bfloat16": "bf16", "float16": "fp16"}[name]
        self.dtype = None
        self._backend = net_backend(net, "MixedPrecision")
        if name is not None:
            self.dtype = self._backend.low_precision_dtype(name, "MixedPrecision")
        self._dtype_name = name
        own = {id(p) for p in net.parameters()}
        if any(id(p) not in own for p in optimizer.params):
            raise ValueError("MixedPrecision: the optimizer holds parameters that are not the net's")
        if name is not None:
            for pname, p in net.named_parameters():
                be = backends.backend_of(p.data)
                if p.data.dtype in be.low_float_dtypes or not be.is_float(p.data.dtype):
                    raise ValueError(
                        f"MixedPrecision: the net's parameters are the float32 master weights, but {pname!r} "
                        f"is {be.dtype_name(p.data.dtype)}; build the net in float32 (or .to(dtype='float32'))"
                    )
        self._active = False

    # -- the low-precision region -------------------------------------------------------------
    @contextlib.contextmanager
    def autocast(self):
        """Inside: every parameter's ``data`` is a low-precision copy of its master weight and its
        ``grad`` starts empty. On leaving (also on an error): the master weights are back, and
        each gradient received inside is cast up and added to the one the parameter had before."""
        if self.dtype is None:
            yield self
            return
        if self._active:
            raise RuntimeError("MixedPrecision.autocast() is already active; it does not nest")
        params = self.net.parameters()
        masters = [p.data for p in params]
        before = [p.grad for p in params]
        for p in params:
            p.data = self._low(p.data)
            p.grad = None
        self._active = True
        try:
            yield self
        finally:
            self._active = False
            for p, master, g0 in zip(params, masters, before):
                g = p.grad
                p.data = master
                if g is not None:
                    g = backends.backend_of(g).xp.astype(g, master.dtype)
                    g = g if g0 is None else g0 + g
                else:
                    g = g0
                p.grad = g

    def cast(self, x):
        """``x`` in the low-precision dtype when it is a float array (an input batch); integer
        arrays (class labels) and everything when the policy is off are returned as they are."""
        if self.dtype is None:
            return x
        be = backends.backend_of(x)
        if not be.is_float(x.dtype):
            return x
        return self._low(x, be)

    def _low(self, x, be=None):
        be = backends.backend_of(x) if be is None else be
        return be.xp.astype(x, be.low_precision_dtype(self._dtype_name, "MixedPrecision"))

    # -- the step ---------------------------------------------------------------------------
    def scale(self, value=1.0):
        """``value`` times the loss scale ``S`` (``value`` itself without an enabled scaler)."""
        return self.scaler.scale(value)

    def backward(self, loss, dy=1.0):
        """``net.backward(loss.backward(S * dy), input_grad=False)``, inside :meth:`autocast`
        (the gradients belong to the low-precision copies the forward used); ``loss``: the Loss
        whose forward ended the net's forward. Returns None."""
        if self.dtype is not None and not self._active:
            raise RuntimeError("MixedPrecision.backward must run inside the autocast() block of its forward")
        # a scale too large overflows some float16 gradients: expected, and detected by step()
        quiet = self._backend.ignore_overflow() if self.scaler.is_enabled() else contextlib.nullcontext()
        with quiet:
            self.net.backward(loss.backward(self.scale(dy)), input_grad=False)

    def unscale_(self):
        """Divide the master gradients by ``S`` now (before clipping them); at most once a step."""
        self._outside("unscale_")
        self.scaler.unscale_(self.optimizer)

    def step(self) -> bool:
        """After the ``autocast`` block: unscale, step unless a gradient overflowed (one host read),
        update ``S``. Returns False when the step was skipped."""
        self._outside("step")
        skipped = self.scaler.skipped
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return self.scaler.skipped == skipped

    def _outside(self, what):
        if self._active:
            raise RuntimeError(f"MixedPrecision.{what} must run after the autocast() block, on the master weights")

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The scaler's state (torch's GradScaler keys); the master weights are the net's."""
        return self.scaler.state_dict()

    def load_state_dict(self, state_dict):
        self.scaler.load_state_dict(state_dict)

    def __repr__(self):
        return f"MixedPrecision(precision={self.precision!r}, scaler={self.scaler!r})"
