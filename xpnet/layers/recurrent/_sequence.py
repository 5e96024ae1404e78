"""One direction of one recurrent layer over a whole sequence: the forward loop over time and
backpropagation through time, for every cell kind of :mod:`._steps`.

Everything is time-major: ``x (T, N, F)``, states ``(N, H)``. The reverse direction of a
bidirectional layer runs the same loop from ``t = T-1`` down to 0; what it keeps is put back in
time order, so the backward needs no flips: its reversed loop runs from 0 up.

Forward (``G`` gates, ``H`` hidden, ``P`` the size of ``h``)::

    gx = x W_ih^T + b                    one (T*N, F) x (F, G*H) product for all steps
    for each step t: h_t, c_t = step(gx_t, h_{t-1}, c_{t-1})     only the recurrent product here

Each step also keeps the factors of its backward that do not depend on the gradient coming back
(stacked over the steps after the loop). Backward: the steps in reverse order, each adding the
output's gradient to the one coming back from the later step, and keeping the pre-activation
gradients; after the loop, with ``dG`` those of every step as a ``(T*N, G*H)`` matrix and
``H_prev`` the previous state of every step::

    dW_ih += dG^T X,   dW_hh += dG_h^T H_prev,   db = sum over rows,   dx = dG W_ih

Where the backend has fused kernels for the arrays (numpy float32 with numba: ``backend.fused()``)
and the cell kind has fused loops (LSTM, GRU), the forward call takes them for its whole loop,
and its backward does too (the choice is kept with the saved values); both write every step's
values into arrays of all the steps. Otherwise the array-API steps run.
"""

from __future__ import annotations

from ..base import trains


class Weights:
    """The Parameters of one direction (``None`` for absent biases and projection)."""

    __slots__ = ("w_ih", "w_hh", "b_ih", "b_hh", "w_hr")

    def __init__(self, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None):
        self.w_ih, self.w_hh, self.b_ih, self.b_hh, self.w_hr = w_ih, w_hh, b_ih, b_hh, w_hr

    def trained(self) -> bool:
        return any(trains(p) for p in (self.w_ih, self.w_hh, self.b_ih, self.b_hh, self.w_hr))


def forward(cell, be, x, h0, c0, w, reverse, keep):
    """``(y (T, N, P) in time order, h_last, c_last, saved)``: the direction run over ``x``.

    ``be``: the Backend of ``x``; ``h0``/``c0``: the initial states (None: zeros; ``c0`` None for
    cells without one); ``keep``: whether to return what the backward needs (``saved``; None
    otherwise).
    """
    xp = be.xp
    steps, n, f = x.shape
    x2 = xp.reshape(x, (steps * n, f))
    p = cell.prepare(xp, w)
    gx = x2 @ p.wx
    if p.bx is not None:
        gx += p.bx
    gx = xp.reshape(gx, (steps, n, gx.shape[-1]))
    h, c = h0, c0
    if h is None:  # absent: zeros (and no term in dW_hh)
        h = xp.zeros((n, p.wh.shape[0]), dtype=x.dtype, device=x.device)
    if c is None and cell.has_cell:
        c = xp.zeros((n, p.wh.shape[1] // cell.gates), dtype=x.dtype, device=x.device)
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    fk = _kernels(be, cell, gx, p.wh, h, c, p.bh, p.whr)
    if fk is not None:  # the whole loop on fused kernels, whose results come in time order
        y, h, c, k = cell.fused_forward(fk, xp, gx, h, c, p, order, keep)
        return y, h, c, ((x2, h0, y, k, reverse, fk) if keep else None)
    hs, kept = [], []
    with be.ignore_overflow():  # exp(-a) of a very negative gate pre-activation: inf, its sigmoid 0
        for t in order:
            h, c, k = cell.step(xp, gx[t, ...], h, c, p, keep)
            hs.append(h)
            kept.append(k)
    if reverse:  # back in time order
        hs.reverse()
        kept.reverse()
    y = xp.stack(hs)
    saved = (x2, h0, y, cell.stack(xp, kept), reverse, None) if keep else None
    return y, h, c, saved


def _kernels(be, cell, *arrays):
    """The fused kernels for this call (see the module doc), or None."""
    if not hasattr(cell, "fused_forward"):
        return None
    fk = be.fused()
    return fk if fk is not None and fk.takes(*arrays) else None


def backward(cell, xp, dy, dh_last, dc_last, saved, w, need_dx):
    """``(dx (T, N, F) or None, dh0, dc0)``, adding every parameter's gradient.

    ``dy``: the gradient of ``y`` (None: none reaches it); ``dh_last``/``dc_last``: those of the
    final states (None: zero). ``need_dx``: whether ``dx`` is wanted.
    """
    x2, h0, hs, k, reverse, fk = saved
    steps, n, p = hs.shape
    dh = xp.zeros((n, p), dtype=hs.dtype, device=hs.device) if dh_last is None else dh_last
    dc = None
    if cell.has_cell:
        m = w.w_hh.data.shape[0] // cell.gates
        dc = xp.zeros((n, m), dtype=hs.dtype, device=hs.device) if dc_last is None else dc_last
    order = range(steps) if reverse else range(steps - 1, -1, -1)
    if fk is not None and not fk.takes(dy, dh, dc):  # a gradient the kernels do not take: array-API steps
        fk = None
    if fk is not None:
        dh, dc, (dgx, dgh, extra) = cell.fused_backward(fk, xp, order, dh, dc, dy, k, w)
    else:
        stored = []
        for t in order:
            if dy is not None:
                dh = dh + dy[t, ...]
            dh, dc, s = cell.back_step(xp, t, dh, dc, k, w)
            stored.append(s)
        if not reverse:  # in time order, as x and the states are
            stored.reverse()
        dgx, dgh, extra = cell.gate_grads(xp, stored, k)
    if trains(w.w_ih):
        w.w_ih.accumulate(dgx.T @ x2)
    if trains(w.w_hh):
        w.w_hh.accumulate(_recurrent_grad(xp, dgh, h0, hs, reverse))
    if trains(w.b_ih) or trains(w.b_hh):
        db = xp.sum(dgx, axis=0)
        if trains(w.b_ih):
            w.b_ih.accumulate(db)
        if trains(w.b_hh):  # the same sum where both sides share the pre-activations (not GRU)
            w.b_hh.accumulate(db if dgh is dgx else xp.sum(dgh, axis=0))
    cell.extra_grads(xp, extra, k, w)
    dx = xp.reshape(dgx @ w.w_ih.data, (steps, n, x2.shape[1])) if need_dx else None
    return dx, dh, dc


def _recurrent_grad(xp, dgh, h0, hs, reverse):
    """``dW_hh = sum_t dgh_t^T h_{t-1}``: the steps whose previous state is an output of the loop
    in one product, plus the first step's with ``h0`` (none when ``h0`` was absent: zeros)."""
    steps, n, p = hs.shape
    h2 = xp.reshape(hs, (steps * n, p))
    rows = (steps - 1) * n
    # forward: step t reads h_{t-1}, rows [n:] against [:-n]; reverse: step t reads h_{t+1}
    g = dgh[:rows, ...].T @ h2[n:, ...] if reverse else dgh[n:, ...].T @ h2[:rows, ...]
    if h0 is not None:
        g = g + (dgh[rows:, ...] if reverse else dgh[:n, ...]).T @ h0
    return g

