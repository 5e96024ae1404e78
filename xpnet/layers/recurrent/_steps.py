"""The maths of one recurrent step, forward and backward, for each cell kind: the Elman cell
(tanh or ReLU), the LSTM cell (with an optional projection) and the GRU cell.

The sequence engine (:mod:`._sequence`) and the single-step cells (:mod:`.cells`) both run these
steps: a cell is a sequence of length one. Each kind provides

- ``prepare(xp, w)``: the weights as the forward loop uses them (transposed, biases folded);
- ``step(xp, gx_t, h, c, p, keep)``: one step from the input projection ``gx_t = x_t W_ih^T + b``
  (``(N, G*H)``, computed for every step in one product before the loop), giving
  ``(h_t, c_t, kept)``. With ``keep``, ``kept`` holds the factors of this step's backward that
  do not depend on the gradient coming back (derivatives of the activations, and the values they
  multiply): computed here, while the step's values are fresh in the cache, they make the
  reversed step a handful of operations;
- ``stack(xp, kept)``: those factors of every step (in time order) stacked, ``(T, N, .)`` each;
- ``back_step(xp, t, dh, dc, k, w)``: the reversed step, giving ``(dh_{t-1}, dc_{t-1}, stored)``;
- ``gate_grads(xp, stored, k)``: the gradients of the pre-activations of every step, ``dgx``
  (input side: ``dW_ih``, ``db_ih``, ``dx``) and ``dgh`` (recurrent side: ``dW_hh``, ``db_hh``),
  as ``(T*N, G*H)`` matrices, so that each weight gradient is one matrix product after the loop,
  and ``extra``: what ``extra_grads`` takes (None, or LSTM's ``(T*N, P)`` gradients of ``h_t``);
- ``extra_grads(xp, extra, k, w)``: the gradients of any other weight (LSTM's ``W_hr``).

LSTM and GRU also run their loops on fused kernels (``backend.fused()``: numpy float32 with
numba), one call per step for the pointwise part around numpy's recurrent product:
``fused_forward(fk, xp, gx, h, c, p, order, keep)`` gives ``(y, h_last, c_last, kept)`` and
``fused_backward(fk, xp, order, dh, dc, dy, k, w)`` gives ``(dh_first, dc_first, gate_grads)``.
They write every step's values straight into ``(T, N, .)`` arrays (no stacking after the loop),
laid out as ``stack`` and the reversed loop lay them out, so that the array-API backward can
take a fused forward's ``kept``. The formulas are the array-API steps' (the docstrings below), in
the same order of operations; the kernels' ``exp`` and ``tanh`` are within about 1.5e-7 of
numpy's. Measured on the 2-core CI machine (``benchmarks/recurrent_steps.py``: batch 64, T = 40,
float32, one thread), they make the LSTM training step 1.8x and the GRU's 2.3x faster at hidden
size 32, both 1.3x at 256.

The gates of a step take one ``exp`` for all their sigmoids, ``s(a) = 1 / (1 + exp(-a))``,
with the sign (and LSTM's doubling for ``g = 2 s(2a) - 1``) folded into the weight columns once
per forward (a multiplication by -1 or -2 is exact in binary floating point): an exponential
costs about half a ``tanh`` on numpy. ``exp`` overflows to inf for very negative ``a``, where
``1 / (1 + inf) = 0`` is the right limit; the loops run under the backend's ``ignore_overflow``.
"""

from __future__ import annotations


class Prepared:
    """The weights of one direction as its forward loop uses them: ``wx (F, G*H)`` and ``bx``
    (the input projection's matrix and bias, sigmoid columns scaled as the step needs them),
    ``wh (P, G*H)`` (the recurrent product's matrix), ``bh`` (the bias added in the loop: GRU's
    ``b_hn``), ``whr (H, P)`` (LSTM's projection, transposed) and ``d`` (a constant row the
    step's derivatives take)."""

    __slots__ = ("wx", "bx", "wh", "bh", "whr", "d")

    def __init__(self, wx, bx, wh, bh=None, whr=None, d=None):
        self.wx, self.bx, self.wh, self.bh, self.whr, self.d = wx, bx, wh, bh, whr, d


def gate_vector(xp, values, h, like):
    """``(len(values) * h,)``: each value repeated ``h`` times, in ``like``'s dtype and place."""
    col = xp.asarray([[v] for v in values], dtype=like.dtype, device=like.device)
    return xp.reshape(xp.broadcast_to(col, (len(values), h)), (len(values) * h,))


def _stacked(xp, kept):
    """Each position of the per-step tuples ``kept``, stacked over the steps."""
    return tuple(xp.stack([k[j] for k in kept]) for j in range(len(kept[0])))


def _bias_sum(w):
    if w.b_ih is None:
        return None
    return w.b_ih.data + w.b_hh.data


def _flat(xp, stored):
    """The per-step ``(N, G*H)`` gradients of ``stored`` as one ``(T*N, G*H)`` matrix."""
    d = xp.stack(stored)
    return _rows(xp, d)


def _rows(xp, a):
    """``a (T, N, K)`` as ``(T*N, K)``."""
    return xp.reshape(a, (-1, a.shape[-1]))


def _empty(xp, shape, like):
    return xp.empty(shape, dtype=like.dtype, device=like.device)


def _pair(xp, shape, like):
    """Two buffers that a fused loop's steps write in turn: step ``j`` reads what step ``j-1``
    wrote into the other one (the first reads the caller's array, never written into)."""
    return _empty(xp, shape, like), _empty(xp, shape, like)


class Elman:
    """``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, ``act`` tanh or ReLU.

    Backward: ``da_t = dh_t * act'``, with ``act' = 1 - h_t^2`` (tanh) or ``[h_t > 0]`` (ReLU),
    kept by the forward; ``dh_{t-1} = da_t W_hh``; both weights' gradients come from ``da``.
    """

    gates = 1
    has_cell = False

    def __init__(self, nonlinearity):
        self.relu = nonlinearity == "relu"

    def prepare(self, xp, w):
        return Prepared(w.w_ih.data.T, _bias_sum(w), w.w_hh.data.T)

    def step(self, xp, gx_t, h, c, p, keep):
        a = h @ p.wh
        a += gx_t
        if self.relu:
            h = xp.maximum(a, 0.0)
            return h, None, (xp.astype(h > 0, h.dtype),) if keep else None
        h = xp.tanh(a)
        return h, None, (1.0 - h * h,) if keep else None

    def stack(self, xp, kept):
        return _stacked(xp, kept)

    def back_step(self, xp, t, dh, dc, k, w):
        da = dh * k[0][t, ...]
        return da @ w.w_hh.data, None, da

    def gate_grads(self, xp, stored, k):
        da = _flat(xp, stored)
        return da, da, None

    def extra_grads(self, xp, extra, k, w):
        pass


class LSTM:
    """The LSTM step, gates in torch's order ``i, f, g, o``::

        [i, f, g, o] = [s, s, tanh, s](x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)     (s: sigmoid)
        c_t = f * c_{t-1} + i * g,    h_t = o * tanh(c_t)    (then h_t W_hr^T with a projection)

    Backward, ``dh_t`` the gradient reaching ``h_t`` (from the output and from step ``t+1``),
    ``dc_t`` the one reaching ``c_t`` from step ``t+1``; with a projection, ``dh_t`` becomes
    ``dh_t W_hr`` first (and ``dW_hr += dh_t^T (o * tanh(c_t))``)::

        dc   = dc_t + dh_t * o * (1 - tanh(c_t)^2)
        d[i, f, g, o] = [dc * g, dc * c_{t-1}, dc * i, dh_t * tanh(c_t)]
        da   = d[i, f, g, o] * [i(1-i), f(1-f), 1-g^2, o(1-o)]       (pre-activations)
        dc_{t-1} = dc * f,    dh_{t-1} = da W_hh

    The forward step keeps ``A = o * (1 - tanh(c_t)^2)``, ``PD = [g, c_{t-1}, i, tanh(c_t)] *
    [i(1-i), f(1-f), 1-g^2, o(1-o)]`` and ``f``, so a reversed step is ``dc = dc_t + dh A_t``,
    ``da = [dc, dc, dc, dh] * PD_t``, ``dc_{t-1} = dc f_t``, ``dh_{t-1} = da W_hh``.

    The four gates take one ``exp``: their weight columns are scaled by ``[-1, -1, -2, -1]``, so
    ``1 / (1 + exp(.))`` of the step's pre-activations gives ``s(a)`` on ``i, f, o`` and
    ``s(2a)`` on the ``g`` column, whence ``g = tanh(a) = 2 s(2a) - 1`` and ``1 - g^2 =
    4 s(2a)(1 - s(2a))``.
    """

    gates = 4
    has_cell = True

    def prepare(self, xp, w):
        like = w.w_hh.data
        n = like.shape[0] // 4
        neg = gate_vector(xp, (-1.0, -1.0, -2.0, -1.0), n, like)
        bx = _bias_sum(w)
        return Prepared(w.w_ih.data.T * neg, None if bx is None else bx * neg, like.T * neg,
                        whr=None if w.w_hr is None else w.w_hr.data.T,
                        d=gate_vector(xp, (1.0, 1.0, 4.0, 1.0), n, like))

    def step(self, xp, gx_t, h, c, p, keep):
        n = c.shape[-1]
        act = h @ p.wh
        act += gx_t
        act = xp.exp(act)
        act += 1.0
        act = 1.0 / act  # [s(a_i), s(a_f), s(2 a_g), s(a_o)]
        g = act[:, 2 * n:3 * n] * 2.0 - 1.0
        i, f, o = act[:, :n], act[:, n:2 * n], act[:, 3 * n:]
        c_new = f * c
        c_new += i * g
        tc = xp.tanh(c_new)
        hc = o * tc
        h = hc if p.whr is None else hc @ p.whr
        if not keep:
            return h, c_new, None
        pd = act * (1.0 - act)
        pd *= p.d  # the derivatives: s(1-s), and 1 - g^2 on g
        pd *= xp.concat([g, c, i, tc], axis=-1)
        # f as a copy: a view would keep all of act alive until the backward
        a_t = o - hc * tc  # o (1 - tanh(c)^2)
        return h, c_new, (pd, a_t, xp.asarray(f, copy=True)) + (() if p.whr is None else (hc,))

    def stack(self, xp, kept):
        return _stacked(xp, kept)

    def back_step(self, xp, t, dh, dc, k, w):
        dhc = dh if w.w_hr is None else dh @ w.w_hr.data
        dc_new = dhc * k[1][t, ...]
        dc_new += dc  # dc may be the caller's d_c_n: never written into
        dc = dc_new
        da = xp.concat([dc, dc, dc, dhc], axis=-1)
        da *= k[0][t, ...]
        return da @ w.w_hh.data, dc * k[2][t, ...], (da, dh)

    def gate_grads(self, xp, stored, k):
        da = _flat(xp, [d for d, _ in stored])
        return da, da, (_flat(xp, [d for _, d in stored]) if len(k) == 4 else None)

    def extra_grads(self, xp, extra, k, w):
        if w.w_hr is not None and w.w_hr.requires_grad:
            w.w_hr.accumulate(extra.T @ _rows(xp, k[3]))

    def fused_forward(self, fk, xp, gx, h, c, p, order, keep):
        """The forward loop on the fused kernels (see the module doc): per step one product ``h W'``
        and one kernel call, which writes ``o tanh(c_t)`` into ``y[t]`` (``hc[t]`` with a
        projection, whose product follows), ``c_t``, and the kept ``pd``, ``A``, ``f`` at ``t``."""
        steps, n, g4 = gx.shape
        m = g4 // 4
        proj = p.whr is not None
        out = _empty(xp, (steps, n, m), gx)  # y, or hc with a projection
        kept = tuple(_empty(xp, (steps, n, s), gx) for s in (g4, m, m)) if keep else (fk.NONE,) * 3
        cells = _pair(xp, (n, m), gx)
        c = fk.contiguous(c)
        hs = []
        wh, whr, step = p.wh, p.whr, fk.lstm_step
        for j, t in enumerate(order):
            c_new = cells[j & 1]
            step(h @ wh, gx, t, c, out, c_new, *kept)
            c = c_new
            h = out[t, ...]
            if proj:
                h = h @ whr
                hs.append(h)
        if not proj:
            return out, h, c, (kept if keep else None)
        if order[0] > order[-1]:  # reversed: back in time order
            hs.reverse()
        return xp.stack(hs), h, c, (kept + (out,) if keep else None)

    def fused_backward(self, fk, xp, order, dh, dc, dy, k, w):
        """The reversed loop on the fused kernels: per step one kernel call, which writes the step's
        pre-activation gradients into ``da[t]`` and ``dc_{t-1}``, then the product ``da[t] W_hh``
        (with a projection, ``dh_t`` and ``dh_t W_hr`` are formed first)."""
        pd = k[0]
        steps, n, g4 = pd.shape
        whh, proj = w.w_hh.data, w.w_hr is not None
        da = _empty(xp, pd.shape, pd)
        cells = _pair(xp, (n, g4 // 4), pd)
        dh, dc = fk.contiguous(dh), fk.contiguous(dc)
        dy = fk.NONE if dy is None else fk.contiguous(dy)
        dhs, step = [], fk.lstm_back_step
        for j, t in enumerate(order):
            g, gy = dh, dy
            if proj:  # the projection's input gradient, dy folded in first
                if dy.shape[0]:
                    dh = dh + dy[t, ...]
                dhs.append(dh)
                g, gy = dh @ w.w_hr.data, fk.NONE
            dc_prev = cells[j & 1]
            step(g, gy, t, dc, k[0], k[1], k[2], da, dc_prev)
            dc = dc_prev
            dh = da[t, ...] @ whh
        extra = None
        if proj:
            if order[0] > order[-1]:  # the steps ran from the last: back in time order
                dhs.reverse()
            extra = _flat(xp, dhs)
        flat = _rows(xp, da)
        return dh, dc, (flat, flat, extra)


class GRU:
    """The GRU step, gates in torch's order ``r, z, n``::

        gh = h_{t-1} W_hh^T + b_hh                        (split [gh_r, gh_z, gh_n])
        r = s(gx_r + gh_r),   z = s(gx_z + gh_z),   n = tanh(gx_n + r * gh_n)
        h_t = (1 - z) * n + z * h_{t-1}

    Backward, ``dh`` the gradient reaching ``h_t``::

        dn_pre = dh (1 - z)(1 - n^2),   dz_pre = dh (h_{t-1} - n) z (1 - z),
        dr_pre = dn_pre gh_n r (1 - r)
        dgx = [dr_pre, dz_pre, dn_pre],   dgh = [dr_pre, dz_pre, dn_pre * r]
        dh_{t-1} = dgh W_hh + dh * z

    Every factor besides ``dh`` is known in the forward step, which keeps ``K = [Cr, Cz, Cn]``
    (``dgx = dh * K``), ``KR = [Cr, Cz, Cn r]`` (``dgh = dh * KR``) and ``z``; the reversed loop
    then keeps only ``dh`` per step, and ``dgx`` is formed after it.

    ``r`` and ``z`` take one ``exp``: their weight columns are negated, so ``1 / (1 + exp(.))``
    of their pre-activations is the sigmoid; ``b_hr`` and ``b_hz`` join ``gx``'s bias, and only
    ``b_hn`` is added in the loop (it sits inside ``r * gh_n``).
    """

    gates = 3
    has_cell = False

    def prepare(self, xp, w):
        like = w.w_hh.data
        m = like.shape[0] // 3
        neg = gate_vector(xp, (-1.0, -1.0, 1.0), m, like)
        bx = bn = None
        if w.b_ih is not None:
            bh = w.b_hh.data
            bx = (w.b_ih.data + bh * gate_vector(xp, (1.0, 1.0, 0.0), m, like)) * neg
            bn = bh[2 * m:]
        return Prepared(w.w_ih.data.T * neg, bx, like.T * neg, bn)

    def step(self, xp, gx_t, h, c, p, keep):
        m = h.shape[-1]
        gh = h @ p.wh
        rz = 1.0 / (xp.exp(gx_t[:, :2 * m] + gh[:, :2 * m]) + 1.0)  # [r, z]
        r, z = rz[:, :m], rz[:, m:]
        ghn = gh[:, 2 * m:]
        if p.bh is not None:
            ghn = ghn + p.bh
        n = xp.tanh(gx_t[:, 2 * m:] + r * ghn)
        d = h - n
        h = n + z * d
        if not keep:
            return h, None, None
        omz = 1.0 - z
        cn = omz * (1.0 - n * n)
        cz = d * z * omz
        cr = cn * ghn * r * (1.0 - r)
        return h, None, (xp.stack([cr, cz, cn], axis=1), xp.stack([cr, cz, cn * r], axis=1), z)

    def stack(self, xp, kept):
        return _stacked(xp, kept)

    def back_step(self, xp, t, dh, dc, k, w):
        kr = k[1][t, ...]
        dgh = xp.reshape(xp.expand_dims(dh, axis=1) * kr, (kr.shape[0], -1))
        dh_prev = dgh @ w.w_hh.data
        dh_prev += dh * k[2][t, ...]
        return dh_prev, None, dh

    def gate_grads(self, xp, stored, k):
        dh = xp.expand_dims(xp.stack(stored), axis=2)
        rows = dh.shape[0] * dh.shape[1]
        return xp.reshape(dh * k[0], (rows, -1)), xp.reshape(dh * k[1], (rows, -1)), None

    def extra_grads(self, xp, extra, k, w):
        pass

    def fused_forward(self, fk, xp, gx, h, c, p, order, keep):
        """The forward loop on the fused kernels (see the module doc): per step one product ``h W'``
        and one kernel call, which writes ``h_t`` into ``y[t]`` and the kept ``K``, ``KR``, ``z``
        at ``t`` (``K``, ``KR`` as ``(T, N, 3, H)``, seen by the kernel as ``(T, N, 3H)``)."""
        steps, n, g3 = gx.shape
        m = g3 // 3
        y = _empty(xp, (steps, n, m), gx)
        kept = None
        k, kr, z = (fk.NONE,) * 3
        if keep:
            kept = (_empty(xp, (steps, n, 3, m), gx), _empty(xp, (steps, n, 3, m), gx), _empty(xp, (steps, n, m), gx))
            k, kr, z = xp.reshape(kept[0], (steps, n, g3)), xp.reshape(kept[1], (steps, n, g3)), kept[2]
        bn = p.bh if p.bh is not None else xp.zeros((m,), dtype=gx.dtype, device=gx.device)
        h = fk.contiguous(h)
        wh, step = p.wh, fk.gru_step
        for t in order:
            step(h @ wh, gx, t, bn, h, y, k, kr, z)
            h = y[t, ...]
        return y, h, None, kept

    def fused_backward(self, fk, xp, order, dh, dc, dy, k, w):
        """The reversed loop on the fused kernels: per step one kernel call, which forms ``dh_t``
        (adding ``dh_{t+1} z_{t+1}`` and ``dy_t`` to the product of the later step) and writes
        ``dgx[t]``, ``dgh[t]``, then the product ``dgh[t] W_hh``; ``dh_{t0} z_{t0}`` of the last
        step run is added after the loop."""
        z = k[2]
        steps, n, m = z.shape
        g3 = 3 * m
        kk, kr = xp.reshape(k[0], (steps, n, g3)), xp.reshape(k[1], (steps, n, g3))
        dgx, dgh = _empty(xp, (steps, n, g3), z), _empty(xp, (steps, n, g3), z)
        bufs = _pair(xp, (n, m), z)
        mm, later, t_later = fk.contiguous(dh), bufs[1], -1
        dy = fk.NONE if dy is None else fk.contiguous(dy)
        whh, step = w.w_hh.data, fk.gru_back_step
        for j, t in enumerate(order):
            dh = bufs[j & 1]
            step(mm, dy, t, later, z, t_later, kk, kr, dh, dgx, dgh)
            mm = dgh[t, ...] @ whh
            later, t_later = dh, t
        mm += later * z[t_later, ...]  # mm: a fresh product
        return mm, None, (_rows(xp, dgx), _rows(xp, dgh), None)


def kind(mode):
    """The step maths of ``mode``: ``"RNN_TANH"``, ``"RNN_RELU"``, ``"LSTM"`` or ``"GRU"``."""
    return {"RNN_TANH": Elman("tanh"), "RNN_RELU": Elman("relu"), "LSTM": LSTM(), "GRU": GRU()}[mode]
