"""CTCLoss: connectionist temporal classification (Graves et al. 2006), as ``torch.nn.CTCLoss``,
its forward-backward (alpha-beta) recursion written out in log space.

The recursions run over the batch and the extended label positions at once, with a Python loop
over time only: a sample whose input is shorter than ``T`` is masked by time (its alpha frozen
after its last step, its beta -inf before its last step), never sliced by a length read back
from the device.
"""

from __future__ import annotations

import math
import numbers

from ... import backends
from ...validate import flag, integer
from .. import deferred
from .._checks import place, require_array, require_float, shape_str
from ..base import grad_enabled
from .base import MultiInputLoss

_NEG = -math.inf
_BIG = 2**62  # beyond any label


class CTCLoss(MultiInputLoss):
    """``torch.nn.CTCLoss(blank=0, reduction="mean", zero_infinity=False)``: the negative
    log-likelihood of each target sequence under all alignments of the log-probabilities.

    Inputs: ``log_probs (T, N, C)`` (log-softmax outputs over ``C`` classes, ``blank`` among
    them), or unbatched ``(T, C)``; ``targets`` integer labels, padded ``(N, S)`` (sample ``n``'s
    first ``L_n`` entries) or concatenated 1-D ``(sum L_n,)`` (an unbatched 1-D target is
    concatenated: its length is ``L``; ``(1, S)`` is padded); ``input_lengths`` ``T_n <= T`` and
    ``target_lengths`` ``L_n``, each an integer array ``(N,)`` (``()`` or ``(1,)`` unbatched) or a
    tuple of ints. The output is ``()``, or ``(N,)`` (``()`` unbatched) for ``"none"``;
    ``"mean"`` divides each sample's loss by ``max(L_n, 1)``, then averages over the batch.
    ``zero_infinity=True`` makes an impossible sample's loss (``T_n`` too short for its labels)
    and gradient 0 instead of inf (and NaN).

    With the extended labels ``l' = (blank, l_1, blank, l_2, ..., l_L, blank)`` (``2L + 1``
    positions ``s``), ``y_t(s) = log_probs[t, l'_s]`` and ``lse`` the log of a sum of exps::

        alpha_0(0) = y_0(0),  alpha_0(1) = y_0(1),  alpha_0(s > 1) = -inf
        alpha_t(s) = y_t(s) + lse(alpha_{t-1}(s), alpha_{t-1}(s-1), [alpha_{t-1}(s-2) if l'_s != l'_{s-2}])
        loss = -lse(alpha_{T_n-1}(2L), alpha_{T_n-1}(2L-1))
        beta_{T_n-1}(2L) = y(2L),  beta_{T_n-1}(2L-1) = y(2L-1),  else -inf
        beta_t(s) = y_t(s) + lse(beta_{t+1}(s), beta_{t+1}(s+1), [beta_{t+1}(s+2) if l'_{s+2} != l'_s])

    (``T_n = 0``: the loss is 0 for an empty target, inf otherwise). The posterior of position
    ``s`` at ``t`` is ``exp(alpha_t(s) + beta_t(s) - y_t(s) + loss)``; summed over the positions
    of class ``c`` it gives ``gamma_t(c)`` (a scatter-add), and backward returns torch's
    gradient ``dlog_probs[t, n, c] = g_n (exp(log_probs[t, n, c]) - gamma_t(c))`` for
    ``t < T_n`` and 0 after, with ``g_n`` the upstream gradient (``/ (N max(L_n, 1))`` for
    ``"mean"``). The true derivative of the loss is ``-g_n gamma_t(c)``: torch adds
    ``exp(log_probs)``, which the backward of the log-softmax before the loss cancels exactly
    (its input gradient is unchanged); xpnet does as torch, so that both give one gradient.
    The other inputs get None. Keeps ``log_probs``, the gathered ``y``, the alphas and the labels.

    Value checks (``0 <= T_n <= T``, ``0 <= L_n``, ``L_n <= S`` for padded targets, ``sum L_n``
    the concatenated length, labels in ``[0, C)``) read one boolean back from the device; inside
    :func:`~xpnet.layers.deferred.deferred_checks` nothing is read, a bad batch's loss is NaN and
    the error is raised when the loop reads its checks. (torch does not check labels: one
    outside ``[0, C)`` reads outside the array.)
    """

    _config_fields = ("blank", "reduction", "zero_infinity")
    _inputs = ("log_probs", "targets", "input_lengths", "target_lengths")

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False):
        super().__init__(reduction)
        self.blank = integer("CTCLoss", "blank", blank, minimum=0)
        self.zero_infinity = flag("CTCLoss", "zero_infinity", zero_infinity)

    def forward(self, log_probs, targets, input_lengths, target_lengths):
        tag = self._tag()
        log_probs, targets, input_lengths, target_lengths = self._lift(log_probs, targets, input_lengths, target_lengths)
        be = require_float(tag, log_probs, "log_probs")
        xp = be.xp
        if log_probs.ndim not in (2, 3):
            raise ValueError(f"{tag} expected log_probs of shape (T, N, C) or unbatched (T, C), "
                             f"got {shape_str(log_probs.shape)}")
        unbatched = log_probs.ndim == 2
        lp = xp.reshape(log_probs, (log_probs.shape[0], 1, log_probs.shape[1])) if unbatched else log_probs
        T, N, C = lp.shape
        if self.blank >= C:
            raise ValueError(f"{tag} expected blank in [0, C) = [0, {C}), the classes of log_probs "
                             f"{shape_str(log_probs.shape)}, got blank={self.blank}")
        tl = self._lengths(be, target_lengths, "target_lengths", N, unbatched, lp)
        il = self._lengths(be, input_lengths, "input_lengths", N, unbatched, lp)
        tg = self._targets_of(be, targets, N, unbatched, lp)
        bad, il, tl, labels = self._checked(xp, il, tl, tg, T, C)
        ext, skip = self._extended(xp, labels, lp.device)
        s = xp.reshape(xp.arange(ext.shape[1], dtype=tl.dtype, device=lp.device), (1, -1))
        # y_t(s) = log_probs[t, n, l'_s], one gather: flat (n, class) indices, rows of (n, s)
        index = xp.reshape(xp.reshape(xp.arange(N, dtype=ext.dtype, device=lp.device) * C, (N, 1)) + ext, (-1,))
        y = xp.reshape(xp.take(xp.reshape(lp, (T, N * C)), index, axis=1), (T, N, ext.shape[1]))
        alphas = _alphas(xp, y, skip, il, tl, s, keep=grad_enabled())
        last = alphas[-1]
        ends = (s == 2 * tl[:, None]) | (s == 2 * tl[:, None] - 1)
        nll = -_lse_rows(xp, xp.where(ends, last, _NEG))
        nll = xp.where(il == 0, xp.where(tl == 0, xp.zeros_like(nll), math.inf), nll)  # no step: only an empty target fits
        self.save_for_backward(lp, y, alphas, index, skip, ends, il, tl, nll, unbatched)
        per = xp.where(nll == math.inf, 0.0, nll) if self.zero_infinity else nll
        if self.reduction == "mean":
            per = per / xp.astype(xp.maximum(tl, 1), per.dtype)
        out = self._reduce(xp, per, N)
        if unbatched and self.reduction == "none":
            out = xp.reshape(out, ())
        return out if bad is None else xp.where(bad, math.nan, out)

    def _backward(self, saved, dy, wanted):
        lp, y, alphas, index, skip, ends, il, tl, nll, unbatched = saved
        xp = backends.namespace_of(lp)
        T, N, C = lp.shape
        g = self._seed(dy, nll, () if unbatched else (N,), N)
        g = xp.reshape(g, (N,)) if not isinstance(g, float) and g.ndim else g * xp.ones_like(nll)
        if self.reduction == "mean":
            g = g / xp.astype(xp.maximum(tl, 1), g.dtype)
        grad = self._grad(xp, lp, y, alphas, index, skip, ends, il, nll, g) if T else xp.zeros_like(lp)
        return (xp.reshape(grad, (T, C)) if unbatched else grad), None, None, None

    def _grad(self, xp, lp, y, alphas, index, skip, ends, il, nll, g):
        """torch's ``dlog_probs``: ``g_n (exp(log_probs) - gamma_t(c))`` before each sample's end."""
        T, N, C = lp.shape
        impossible = nll == math.inf
        safe = xp.where(impossible, 0.0, nll)  # no inf - inf below: those samples are set apart after
        betas = _betas(xp, y, skip, ends, il)
        post = xp.exp(xp.stack(alphas) + betas - y + safe[None, :, None])  # (T, N, 2S+1)
        flat = xp.reshape(xp.permute_dims(post, (1, 2, 0)), (-1, T))  # (N (2S+1), T): row (n, s) adds into (n, l'_s)
        zeros = xp.zeros((N * C, T), dtype=lp.dtype, device=lp.device)
        gamma = xp.permute_dims(xp.reshape(backends.backend_of(lp).scatter_add(zeros, index, flat), (N, C, T)), (2, 0, 1))
        grad = (xp.exp(lp) - gamma) * g[None, :, None]
        lost = 0.0 if self.zero_infinity else math.nan  # torch: NaN where the loss is inf, 0 with zero_infinity
        grad = xp.where(impossible[None, :, None], lost, grad)
        t = xp.reshape(xp.arange(T, dtype=il.dtype, device=lp.device), (T, 1, 1))
        return xp.where(t < il[None, :, None], grad, 0.0)  # nothing after a sample's last step

    # -- the inputs -------------------------------------------------------------------------
    def _lengths(self, be, lengths, name, n, unbatched, ref):
        """``lengths`` (a tuple/list of ints, or an integer array) as an int64 array ``(N,)`` on
        ``ref``'s device."""
        xp, tag = be.xp, self._tag()
        want = "() or (1,)" if unbatched else f"({n},)"
        if isinstance(lengths, (tuple, list)):
            if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in lengths):
                raise TypeError(f"{tag} expected {name} as ints, got {_short(lengths)}")
            if len(lengths) != n:
                raise ValueError(f"{tag} expected {n} {name} (one per sample), got {len(lengths)}")
            return xp.asarray([int(v) for v in lengths], dtype=be.dtype("int64"), device=ref.device)
        require_array(tag, lengths, name)
        if type(lengths) is not type(ref) or lengths.device != ref.device:
            raise ValueError(f"{tag} got its {name} on {place(lengths)} but the log_probs on {place(ref)}; "
                             f"move the {name} with backends.get(...).asarray(...)")
        if lengths.dtype not in be.int_dtypes:
            raise TypeError(f"{tag} expected integer {name}, got {be.dtype_name(lengths.dtype)}; "
                            f"convert them with xp.astype({name}, xp.int64)")
        if tuple(lengths.shape) not in ([(n,), ()] if unbatched else [(n,)]):
            raise ValueError(f"{tag} expected {name} of shape {want}, got {shape_str(lengths.shape)}")
        return xp.reshape(xp.astype(lengths, be.dtype("int64")), (n,))

    def _targets_of(self, be, targets, n, unbatched, ref):
        """The integer targets as int64: ``(N, S)`` padded, or 1-D concatenated."""
        tag = self._tag()
        self._check_target_place(targets, ref, "log_probs", "targets")
        if targets.dtype not in be.int_dtypes:
            raise TypeError(f"{tag} expected integer class labels as targets, got {be.dtype_name(targets.dtype)}; "
                            "convert them with xp.astype(targets, xp.int64)")
        if targets.ndim not in (1, 2) or (targets.ndim == 2 and targets.shape[0] != n):
            raise ValueError(f"{tag} expected targets padded to ({n}, S) or concatenated to 1-d (sum of the "
                             f"target lengths,), got {shape_str(targets.shape)}")
        return be.xp.astype(targets, be.dtype("int64"))

    def _checked(self, xp, il, tl, tg, T, C):
        """``(bad, il, tl, labels)``: the value checks (raised here, or deferred: ``bad``), the
        lengths clipped to what can be indexed, and the labels ``(N, min(S, T))``, with ``blank``
        past each target's end (positions beyond ``T`` can never be reached: a longer target is
        impossible, its loss inf)."""
        padded, n = tg.ndim == 2, il.shape[0]
        size = tg.shape[1] if padded else tg.shape[0]
        bad = None
        if n:
            pos = xp.reshape(xp.arange(size, dtype=tl.dtype, device=tl.device), (1, -1))
            inside = pos < tl[:, None] if padded else None  # padding past a target's end is never read
            if not size:
                lab_lo = lab_hi = xp.zeros((), dtype=tg.dtype, device=tg.device)
            elif inside is None:
                lab_lo, lab_hi = xp.min(tg), xp.max(tg)
            else:  # the smallest and largest label inside the targets (bounds that pass where none is)
                lab_lo, lab_hi = xp.min(xp.where(inside, tg, _BIG)), xp.max(xp.where(inside, tg, -_BIG))
            total = xp.sum(tl)
            values = (xp.min(il), xp.max(il), xp.min(tl), xp.max(tl), total, lab_lo, lab_hi)
            flag = (values[0] < 0) | (values[1] > T) | (values[2] < 0) | (lab_lo < 0) | (lab_hi >= C)
            flag = flag | ((values[3] > size) if padded else (total != size))
            describe = self._describer(T, C, size, padded)
            checks = deferred.active()
            if checks is not None:
                checks.record(self, xp, flag, values, describe, key=(T, C, size, padded))
                bad = flag
            elif bool(flag):
                raise ValueError(describe(*(int(v) for v in values)))
        il, tl = xp.clip(il, 0, T), xp.clip(tl, 0, size)
        width = min(size, T)
        pos = xp.reshape(xp.arange(width, dtype=tl.dtype, device=tl.device), (1, -1))
        if padded:
            labels = tg[:, :width]
        elif width:
            start = xp.cumulative_sum(tl) - tl
            labels = xp.take(tg, xp.reshape(xp.clip(start[:, None] + pos, 0, size - 1), (-1,)), axis=0)
            labels = xp.reshape(labels, (n, width))
        else:
            labels = xp.zeros((n, 0), dtype=tg.dtype, device=tg.device)
        fine = (pos < tl[:, None]) & (labels >= 0) & (labels < C)
        return bad, il, tl, xp.where(fine, labels, self.blank)

    def _describer(self, T, C, size, padded):
        tag = self._tag()

        def describe(il_lo, il_hi, tl_lo, tl_hi, total, lab_lo, lab_hi):
            if il_lo < 0 or il_hi > T:
                return f"{tag} expected input_lengths in [0, {T}] (the steps of log_probs), got lengths from {il_lo} to {il_hi}"
            if tl_lo < 0:
                return f"{tag} expected target_lengths >= 0, got lengths from {tl_lo} to {tl_hi}"
            if padded and tl_hi > size:
                return f"{tag} expected target_lengths of at most {size} (the padded targets' length), got up to {tl_hi}"
            if not padded and total != size:
                return f"{tag} expected 1-d targets of length sum(target_lengths) = {total}, got length {size}"
            return f"{tag} expected class labels in [0, {C}) as targets, got labels from {lab_lo} to {lab_hi}"

        return describe

    def _extended(self, xp, labels, device):
        """The extended labels ``l'`` ``(N, 2W + 1)`` (blank, l_1, blank, ..., l_W, blank) and the
        positions the recursion may reach by a skip, ``l'_s != l'_{s-2}`` (torch's rule)."""
        n, w = labels.shape
        blanks = xp.full((n, w), self.blank, dtype=labels.dtype, device=device)
        ext = xp.concat([xp.reshape(xp.stack([blanks, labels], axis=2), (n, 2 * w)),
                         xp.full((n, 1), self.blank, dtype=labels.dtype, device=device)], axis=1)
        if not w:  # blanks only: no skip
            return ext, xp.zeros((n, 1), dtype=xp.bool, device=device)
        return ext, xp.concat([xp.zeros((n, 2), dtype=xp.bool, device=device), ext[:, 2:] != ext[:, :-2]], axis=1)

    def extra_repr(self):
        parts = [f"blank={self.blank}"] if self.blank else []
        parts += [super().extra_repr()] if self.reduction != "mean" else []
        return ", ".join(parts + (["zero_infinity=True"] if self.zero_infinity else []))


# -- the recursions -----------------------------------------------------------------------------

def _lse(xp, *terms):
    """``log(sum_k exp(terms_k))`` elementwise, exact where every term is -inf (no inf - inf)."""
    m = terms[0]
    for t in terms[1:]:
        m = xp.maximum(m, t)
    some = m != _NEG
    base = xp.where(some, m, 0.0)
    total = xp.exp(terms[0] - base)
    for t in terms[1:]:
        total = total + xp.exp(t - base)
    return xp.where(some, xp.log(xp.where(some, total, 1.0)) + base, _NEG)


def _lse_rows(xp, x):
    """``log(sum_s exp(x[:, s]))`` per row of ``x (N, S)``, -inf for a row of -inf."""
    m = xp.max(x, axis=1, keepdims=True)
    some = m != _NEG
    base = xp.where(some, m, 0.0)
    total = xp.sum(xp.exp(x - base), axis=1, keepdims=True)
    return xp.reshape(xp.where(some, xp.log(xp.where(some, total, 1.0)) + base, _NEG), (-1,))


def _shifted(xp, a, k, pad):
    """``a[:, s - k]`` (``k > 0``: from the left) or ``a[:, s + |k|]``, -inf where that is outside."""
    width = a.shape[1]
    if k > 0:
        return xp.concat([pad[:, :k], a], axis=1)[:, :width]
    return xp.concat([a, pad[:, :-k]], axis=1)[:, -k:]


def _alphas(xp, y, skip, il, tl, s, keep=True):
    """The forward variables ``alpha_t`` (each ``(N, 2W + 1)``), for every t (``keep``) or the
    last; a sample's alpha stays as it was after its last step ``T_n - 1``."""
    T, n, width = y.shape
    if T == 0:
        return [xp.full((n, width), _NEG, dtype=y.dtype, device=y.device)]
    pad = xp.full((n, 2), _NEG, dtype=y.dtype, device=y.device)
    a = xp.where((s == 0) | ((s == 1) & (tl[:, None] > 0)), y[0, ...], _NEG)
    out = [a]
    for t in range(1, T):
        step = y[t, ...] + _lse(xp, a, _shifted(xp, a, 1, pad), xp.where(skip, _shifted(xp, a, 2, pad), _NEG))
        a = xp.where(t < il[:, None], step, a)
        out = out + [a] if keep else [a]
    return out


def _betas(xp, y, skip, ends, il):
    """The backward variables ``beta_t``, stacked ``(T, N, 2W + 1)``: -inf after a sample's last
    step, its end positions (``ends``) at that step, the recursion before it."""
    T, n, width = y.shape
    pad = xp.full((n, 2), _NEG, dtype=y.dtype, device=y.device)
    # s -> s+2 allowed where l'_{s+2} != l'_s: the skips into s+2
    ahead = xp.zeros((n, width), dtype=xp.bool, device=y.device)
    if width > 2:
        ahead = xp.concat([skip[:, 2:], ahead[:, :2]], axis=1)
    last = xp.reshape(il - 1, (n, 1))
    b = xp.full((n, width), _NEG, dtype=y.dtype, device=y.device)
    out = [None] * T
    for t in range(T - 1, -1, -1):
        step = y[t, ...] + _lse(xp, b, _shifted(xp, b, -1, pad), xp.where(ahead, _shifted(xp, b, -2, pad), _NEG))
        b = xp.where(t == last, xp.where(ends, y[t, ...], _NEG), xp.where(t < last, step, _NEG))
        out[t] = b
    return xp.stack(out) if T else xp.zeros((0, n, width), dtype=y.dtype, device=y.device)


def _short(obj):
    s = repr(obj)
    return s if len(s) <= 60 else s[:57] + "..."
