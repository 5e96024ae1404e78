"""MultiheadAttention, as ``torch.nn.MultiheadAttention``: the same arguments, defaults,
parameters, state-dict keys, initialisation, forward signature, outputs and mask semantics."""

from __future__ import annotations

from ... import backends
from ...validate import flag, float_dtype, positive_int, probability
from .. import init
from .._checks import dtype_error, place_error, shape_str
from ..base import Layer, Parameter, Signature, trains
from ..linear import Linear
from ._masks import additive, check_mask, padded
from ._options import bind_options
from .sdpa import sdpa_backward, sdpa_forward

_OPTIONS = ("key_padding_mask", "need_weights", "attn_mask", "average_attn_weights", "is_causal")
_DEFAULTS = (None, True, None, True, False)


class MultiheadAttention(Layer):
    """Multi-head attention, ``torch.nn.MultiheadAttention``'s layer::

        Q = query W_q^T + b_q,  K = key W_k^T + b_k,  V = value W_v^T + b_v     (then split into heads)
        head_h = softmax(Q_h K_h^T / sqrt(E / num_heads) + mask) V_h
        attn_output = concat(head_1, ..., head_H) W_o^T + b_o

    Parameters (torch's names and layouts): ``in_proj_weight (3E, E)`` when
    ``kdim == vdim == embed_dim``, else ``q_proj_weight (E, E)``, ``k_proj_weight (E, kdim)``,
    ``v_proj_weight (E, vdim)``; ``in_proj_bias (3E,)`` and ``out_proj.bias`` when ``bias``;
    ``bias_k``, ``bias_v (1, 1, E)`` with ``add_bias_kv`` (a learnt key and value appended to
    every sequence); ``out_proj`` a :class:`~xpnet.layers.Linear`. ``add_zero_attn`` appends a
    zero key and value. Initialisation as torch: Xavier-uniform projections, zero biases,
    Xavier-normal ``bias_k``/``bias_v``, ``out_proj.weight`` as Linear's.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` -> ``(attn_output, attn_weights)``:

    - ``query (L, N, E)``, ``key (S, N, kdim)``, ``value (S, N, vdim)``; ``(N, L, E)`` etc. with
      ``batch_first``; unbatched ``(L, E)``, ``(S, kdim)``, ``(S, vdim)`` (``batch_first`` then
      does not apply). ``attn_output`` has the query's layout.
    - ``attn_weights``: None unless ``need_weights``; ``(N, L, S)`` averaged over the heads, or
      ``(N, num_heads, L, S)`` per head without ``average_attn_weights`` (unbatched: ``(L, S)``,
      ``(num_heads, L, S)``); ``S`` counts the appended keys. They are the weights after
      dropout, as torch returns them, and a gradient given for them flows back too.
    - ``key_padding_mask (N, S)`` (unbatched ``(S,)``): True (boolean) marks a key to ignore; a
      float mask is added to the scores. ``attn_mask (L, S)`` or ``(N * num_heads, L, S)``
      (unbatched ``(num_heads, L, S)``): True marks a pair not to attend; float: added. A
      boolean mask becomes ``-inf`` where True, as torch makes it, and two masks are summed.
    - ``is_causal`` is torch's hint that ``attn_mask`` is the causal mask, with torch's
      semantics: it needs an ``attn_mask`` (else ValueError); without a ``key_padding_mask`` and
      with ``need_weights=False`` the mask is not read and the top-left causal mask ``j <= i`` is
      applied instead; otherwise ``attn_mask`` is applied and the hint ignored.
    - A query whose every key is masked gets NaN weights and a NaN output with
      ``need_weights=True`` (torch's plain softmax) and weights 0, an output of ``out_proj.bias``,
      with ``need_weights=False`` (torch's ``scaled_dot_product_attention``). (In evaluation
      under ``no_grad`` torch may take a fused inference path instead; xpnet always computes
      as torch's training path does.)
    - ``dropout``: on the attention weights, in training mode only.

    ``backward(d_attn_output, d_attn_weights=None, input_grad=True)`` returns ``(dquery, dkey,
    dvalue)`` and then None for each further positional argument of the forward. When
    ``query``, ``key`` and ``value`` are one array (self-attention) and the packed weight is
    used, the three projections run as one GEMM; backward still returns each argument's own
    gradient, which the caller sums (as torch's autograd does). See :mod:`.sdpa` for the
    attention's own backward. Keeps the projected inputs, the scaled queries, keys and values
    per head, the weights and the dropout mask.
    """

    _config_fields = ("embed_dim", "num_heads", "dropout", "bias", "add_bias_kv", "add_zero_attn",
                      "kdim", "vdim", "batch_first")

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim=None, vdim=None,
                 batch_first: bool = False, *, backend=None, dtype=None):
        who = "MultiheadAttention"
        e = self.embed_dim = positive_int(who, "embed_dim", embed_dim)
        h = self.num_heads = positive_int(who, "num_heads", num_heads)
        if e % h:
            raise ValueError(f"{who}: embed_dim must be divisible by num_heads, got embed_dim={e} and num_heads={h}")
        self.head_dim = e // h
        self.dropout = probability(who, "dropout", dropout, closed=True)
        flag(who, "bias", bias)
        self.add_bias_kv = flag(who, "add_bias_kv", add_bias_kv)
        self.add_zero_attn = flag(who, "add_zero_attn", add_zero_attn)
        self.batch_first = flag(who, "batch_first", batch_first)
        self.kdim = e if kdim is None else positive_int(who, "kdim", kdim)
        self.vdim = e if vdim is None else positive_int(who, "vdim", vdim)
        be = backends.get(backend)
        dt = float_dtype(who, be, dtype)

        def param(*shape):
            return Parameter(be.xp.zeros(shape, dtype=dt, device=be.device))

        self.in_proj_weight = self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        if self.kdim == e and self.vdim == e:
            self.in_proj_weight = init.xavier_uniform(param(3 * e, e))
        else:
            self.q_proj_weight = init.xavier_uniform(param(e, e))
            self.k_proj_weight = init.xavier_uniform(param(e, self.kdim))
            self.v_proj_weight = init.xavier_uniform(param(e, self.vdim))
        self.in_proj_bias = param(3 * e) if bias else None
        self.out_proj = Linear(e, e, bias=bias, backend=be, dtype=dt)
        if bias:
            init.zeros(self.out_proj.bias)
        self.bias_k = init.xavier_normal(param(1, 1, e)) if add_bias_kv else None
        self.bias_v = init.xavier_normal(param(1, 1, e)) if add_bias_kv else None

    def config(self) -> dict:
        c = {f: getattr(self, f) for f in self._config_fields if f != "bias"}
        c["bias"] = self.in_proj_bias is not None
        return {f: c[f] for f in self._config_fields}

    # -- forward -----------------------------------------------------------------------------
    def forward(self, query, key, value, *options, **named):
        tag = self._tag()
        kpm, need_weights, attn_mask, average, is_causal = bind_options(tag, _OPTIONS, _DEFAULTS, options, named)
        for name, v in (("need_weights", need_weights), ("average_attn_weights", average), ("is_causal", is_causal)):
            flag(tag, name, v)
        be = self._check_inputs(query, key, value)
        xp = be.xp
        batched = query.ndim == 3
        same_qk, same_kv = query is key, key is value
        if not batched:  # one sequence: a batch of one, sequence first
            query, key, value = (xp.reshape(a, (a.shape[0], 1, a.shape[1])) for a in (query, key, value))
        bf = self.batch_first and batched
        n = query.shape[0 if bf else 1]
        len_q, len_k = query.shape[1 if bf else 0], key.shape[1 if bf else 0]
        self._check_masks(be, query, kpm, attn_mask, batched, n, len_q, len_k, is_causal)
        h, d, e = self.num_heads, self.head_dim, self.embed_dim
        perm = (0, 2, 1, 3) if bf else (1, 2, 0, 3)  # (A, B, H, D) token-major -> (N, H, L, D)

        # the in-projection: one GEMM per distinct input (self-attention: one for q, k and v)
        if self.in_proj_weight is not None and same_qk and same_kv:
            plan = ((query, 0, 3),)
        elif self.in_proj_weight is not None and same_kv:
            plan = ((query, 0, 1), (key, 1, 3))
        else:
            plan = ((query, 0, 1), (key, 1, 2), (value, 2, 3))
        rows, heads = [], []
        for x, lo, hi in plan:
            x2 = xp.reshape(x, (-1, x.shape[-1]))
            y = x2 @ xp.matrix_transpose(self._proj_weight(lo, hi))
            if self.in_proj_bias is not None:
                y += self.in_proj_bias.data[lo * e:hi * e]  # y is our own fresh array
            y = xp.reshape(y, (x.shape[0], x.shape[1], hi - lo, h, d))
            rows.append(x2)
            heads += [xp.permute_dims(y[:, :, j, :, :], perm) for j in range(hi - lo)]
        q, k, v = heads

        extra = 0
        if self.bias_k is not None:
            k, v = (xp.concat([a, xp.broadcast_to(xp.reshape(p.data, (1, h, 1, d)), (n, h, 1, d))], axis=2)
                    for a, p in ((k, self.bias_k), (v, self.bias_v)))
            extra += 1
        if self.add_zero_attn:
            zero = xp.zeros((n, h, 1, d), dtype=q.dtype, device=q.device)
            k, v = xp.concat([k, zero], axis=2), xp.concat([v, zero], axis=2)
            extra += 1
        causal = is_causal and kpm is None and not need_weights  # torch's hint: attn_mask is not read
        mask = None if causal else self._mask(xp, q.dtype, kpm, attn_mask, n, len_q, len_k + extra, extra)

        p_drop = self.dropout if self.training else 0.0
        out, weights, saved = sdpa_forward(q, k, v, mask, p_drop, causal, None, safe=not need_weights)
        o = xp.reshape(xp.permute_dims(out, perm if bf else (2, 0, 1, 3)), (-1, e))
        y = xp.reshape(self.out_proj(o), tuple(query.shape[:2]) + (e,))
        if not batched:
            y = xp.reshape(y, (len_q, e))
        w = None
        if need_weights:
            w = xp.mean(weights, axis=1) if average else weights
            if not batched:
                w = xp.reshape(w, tuple(w.shape[1:]))
        self.save_for_backward(saved, plan_shape(plan), rows, tuple(query.shape), tuple(key.shape), batched, bf,
                               extra, Signature(y), None if w is None else Signature(w), average, len(options))
        return y, w

    def _proj_weight(self, lo, hi):
        """The in-projection weight rows of q (0), k (1), v (2) from ``lo`` to ``hi``."""
        if self.in_proj_weight is not None:
            return self.in_proj_weight.data[lo * self.embed_dim:hi * self.embed_dim, :]
        return (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[lo].data

    def _mask(self, xp, dtype, kpm, attn_mask, n, len_q, len_k, extra):
        """The one float mask added to the scores, broadcasting to ``(N, H, L, S)``, or None."""
        out = None
        if attn_mask is not None:
            m = padded(xp, additive(xp, attn_mask, dtype), extra)
            out = m if m.ndim == 2 else xp.reshape(m, (n, self.num_heads, len_q, len_k))
        if kpm is not None:
            m = xp.reshape(padded(xp, additive(xp, kpm, dtype), extra), (n, 1, 1, len_k))
            out = m if out is None else out + m
        return out

    # -- backward ----------------------------------------------------------------------------
    def backward(self, d_attn_output, d_attn_weights=None, input_grad: bool = True):
        (saved, plan, rows, q_shape, k_shape, batched, bf, extra, y_sig, w_sig, average,
         n_options) = self.saved()
        if d_attn_output is None and d_attn_weights is None:
            self.out_proj.backward(None)
            return None
        be = backends.backend_of(saved[3])
        xp = be.xp
        h, d, e = self.num_heads, self.head_dim, self.embed_dim
        perm = (0, 2, 1, 3) if bf else (1, 2, 0, 3)
        back = (0, 2, 1, 3) if bf else (2, 0, 1, 3)  # (N, H, L, D) -> token-major (A, B, H, D)
        do = None
        if d_attn_output is not None:
            self.check_grad(d_attn_output, y_sig)
            do2 = self.out_proj.backward(xp.reshape(d_attn_output, (-1, e)))
            do = xp.permute_dims(xp.reshape(do2, q_shape[:2] + (h, d)), perm)
        else:
            self.out_proj.backward(None)
        dw = None
        if d_attn_weights is not None:
            if w_sig is None:
                raise ValueError(f"{self._tag()}.backward got d_attn_weights, but its forward returned no weights "
                                 "(need_weights=False): pass None")
            self.check_grad(d_attn_weights, w_sig)
            n, len_q, len_k = saved[3].shape[0], saved[3].shape[2], saved[3].shape[3]
            dw = xp.reshape(d_attn_weights, (n, 1 if average else h, len_q, len_k))
            if average:
                dw = dw * (1.0 / h)
        want_w = any(trains(p) for p in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight,
                                         self.v_proj_weight))
        want_b = trains(self.in_proj_bias)
        need_proj = input_grad or want_w or want_b
        need = (need_proj, need_proj or trains(self.bias_k), need_proj or trains(self.bias_v))
        dq, dk, dv = sdpa_backward(do, saved, dw, need)
        if dv is None and need[2]:  # only the weights had a gradient: V's is zero
            v = saved[2]
            dv = xp.zeros(tuple(v.shape), dtype=v.dtype, device=v.device)
        len_k = k_shape[1 if bf else 0]
        if extra:
            for g, p in ((dk, self.bias_k), (dv, self.bias_v)):
                if trains(p):
                    p.accumulate(xp.reshape(xp.sum(g[:, :, len_k, :], axis=0), (1, 1, e)))
            dk, dv = dk[:, :, :len_k, :], dv[:, :, :len_k, :]
        if not need_proj:
            return None
        grads = [dq, dk, dv]
        d_in, dws, dbs = [None, None, None], [], []
        for (lo, hi, x_shape), x2 in zip(plan, rows):
            for j in range(lo, hi):
                # back to token-major rows: one copy per projection (cheaper than stacking the
                # three into the fused GEMM's layout, which gathers 32-value runs)
                dy = xp.reshape(xp.permute_dims(grads[j], back), (-1, e))
                if want_w:
                    dws.append(xp.matrix_transpose(dy) @ x2)
                if want_b:
                    dbs.append(xp.sum(dy, axis=0))
                if input_grad:
                    dx = dy @ self._proj_weight(j, j + 1)
                    d_in[j] = xp.reshape(dx, x_shape if batched else (x_shape[0], x_shape[2]))
        self._accumulate_in_proj(xp, dws, dbs)
        if not input_grad:
            return None
        return tuple(d_in) + (None,) * n_options

    def _accumulate_in_proj(self, xp, dws, dbs):
        """Add the q, k and v parts of the in-projection's gradients (``dws``, ``dbs``: empty
        where nothing trains) into the packed or the three separate weights, and the bias."""
        if dws and self.in_proj_weight is not None:
            self.in_proj_weight.accumulate(xp.concat(dws, axis=0))
        elif dws:
            for p, g in zip((self.q_proj_weight, self.k_proj_weight, self.v_proj_weight), dws):
                if trains(p):
                    p.accumulate(g)
        if dbs:
            self.in_proj_bias.accumulate(xp.concat(dbs, axis=0))

    # -- checks ----------------------------------------------------------------------------------
    def _check_inputs(self, query, key, value):
        """The backend, after checking the three inputs' place, dtype and shapes."""
        tag = self._tag()
        w = self.out_proj.weight.data
        for what, a in (("query", query), ("key", key), ("value", value)):
            if type(a) is not type(w) or a.device != w.device:
                raise place_error(tag, a, w, what)
            if a.dtype != w.dtype:
                raise dtype_error(tag, a, w.dtype, what)
        be = backends.backend_of(query)
        nd = query.ndim
        seq, batch = ("N", "L") if self.batch_first else ("L", "N")
        if nd not in (2, 3) or query.shape[-1] != self.embed_dim:
            raise ValueError(f"{tag} expected query of shape ({seq}, {batch}, {self.embed_dim}) or "
                             f"(L, {self.embed_dim}) unbatched, got {shape_str(query.shape)}")
        lead = "S, N" if not self.batch_first else "N, S"
        for what, a, size in (("key", key, self.kdim), ("value", value, self.vdim)):
            if a.ndim != nd or a.shape[-1] != size:
                want = f"({lead}, {size})" if nd == 3 else f"(S, {size})"
                raise ValueError(f"{tag} expected {what} of shape {want} (as the query is {nd}-D), "
                                 f"got {shape_str(a.shape)}")
        b_axis = 0 if self.batch_first else 1
        if nd == 3 and not (query.shape[b_axis] == key.shape[b_axis] == value.shape[b_axis]):
            raise ValueError(f"{tag} expected query, key and value of one batch size (axis {b_axis}), got "
                             f"{shape_str(query.shape)}, {shape_str(key.shape)} and {shape_str(value.shape)}")
        s_axis = 0 if nd == 2 else 1 - b_axis
        if key.shape[s_axis] != value.shape[s_axis]:
            raise ValueError(f"{tag} expected key and value of one length S (axis {s_axis}), got "
                             f"{shape_str(key.shape)} and {shape_str(value.shape)}")
        return be

    def _check_masks(self, be, query, kpm, attn_mask, batched, n, len_q, len_k, is_causal):
        tag = self._tag()
        if kpm is not None:
            check_mask(tag, "key_padding_mask", kpm, query, be)
            want = (n, len_k) if batched else (len_k,)
            if tuple(kpm.shape) != want:
                raise ValueError(f"{tag} expected key_padding_mask of shape {shape_str(want)} "
                                 f"({'(N, S)' if batched else '(S,)'}), got {shape_str(kpm.shape)}")
        if attn_mask is None:
            if is_causal:
                raise ValueError(f"{tag}: is_causal=True is a hint that attn_mask is the causal mask, and needs "
                                 "that attn_mask (as torch); pass attn_mask too")
            return
        check_mask(tag, "attn_mask", attn_mask, query, be)
        heads = n * self.num_heads if batched else self.num_heads
        if tuple(attn_mask.shape) not in ((len_q, len_k), (heads, len_q, len_k)):
            many = "N * num_heads" if batched else "num_heads"
            raise ValueError(f"{tag} expected attn_mask of shape {shape_str((len_q, len_k))} (L, S) or "
                             f"{shape_str((heads, len_q, len_k))} ({many}, L, S), got {shape_str(attn_mask.shape)}")

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"

    def _tag(self):
        return f"MultiheadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads})"


def plan_shape(plan):
    """``(lo, hi, input shape)`` of each in-projection GEMM (what backward needs of the plan)."""
    return tuple((lo, hi, tuple(x.shape)) for x, lo, hi in plan)

