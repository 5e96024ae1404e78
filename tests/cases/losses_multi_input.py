"""Cases of the losses of three or more inputs (issue 11): MarginRankingLoss, CosineEmbeddingLoss,
TripletMarginLoss, GaussianNLLLoss and CTCLoss (every reduction, torch's options, broadcasting,
unbatched inputs, integer labels and lengths). Each backward returns one gradient per input."""

from __future__ import annotations

import numpy as np

import xpnet as xn
from tests.layer_cases import Case

SHIFT = 30.0  # see ctc_inputs


def signs(*shape, dtype=np.float64):
    """Labels +-1 (float64 ones get a gradient in the parity test; int64 ones none)."""
    return lambda rng: np.where(rng.random(shape) < 0.5, -1, 1).astype(dtype)


def three(a, b, c):
    """Inputs from ``a(rng)``, ``b(rng)``, ``c(rng)``."""
    return lambda rng: (np.asarray(a(rng)), np.asarray(b(rng)), np.asarray(c(rng)))


def normal(*shape, scale=1.0):
    return lambda rng: rng.standard_normal(shape) * scale


def positive(*shape):
    """Variances well above GaussianNLLLoss's eps (its clamp would make the finite differences differ)."""
    return lambda rng: rng.uniform(0.5, 2.0, size=shape)


def ctc_inputs(T, N, C, S, *, padded=True, blank=0, lengths=None, shift=0.0, unbatched=False):
    """``(log_probs, targets, input_lengths, target_lengths)`` for CTCLoss: log-softmax outputs
    (less ``shift``), labels other than ``blank`` with repeats, random lengths (``lengths``:
    fixed ``(input_lengths, target_lengths)``).

    A gradcheck takes ``shift=SHIFT``: torch's backward (which xpnet's gives) adds ``exp(log_probs)``
    to the derivative of the loss, a term that the log-softmax before a CTC loss cancels; with
    log-probabilities 30 below a normalised log-softmax that term is ``e^-30`` of the others,
    and the finite differences check the alpha-beta posteriors alone (the term itself is checked
    against torch by the parity test)."""
    def draw(rng):
        z = rng.standard_normal((T, N, C))
        lp = z - np.log(np.exp(z).sum(axis=2, keepdims=True)) - shift
        il, tl = lengths if lengths is not None else (rng.integers(T // 2, T + 1, size=N), rng.integers(1, S + 1, size=N))
        il, tl = np.asarray(il, dtype=np.int64), np.asarray(tl, dtype=np.int64)
        others = [c for c in range(C) if c != blank]
        tg = rng.choice(others, size=(N, S)).astype(np.int64)
        tg[:, 1] = tg[:, 0]  # a repeated label: the alignment needs a blank between them
        if not padded:
            tg = np.concatenate([tg[n, :tl[n]] for n in range(N)])
        if unbatched:
            return lp[:, 0, :], tg, il.reshape(()), tl.reshape(())
        return lp, tg, il, tl
    return draw


def _bad_ctc(T, N, C, S, change):
    def draw(rng):
        out = list(ctc_inputs(T, N, C, S)(rng))
        return tuple(change(out))
    return draw


def _set(i, value):
    def change(out):
        out[i] = value(out[i])
        return out
    return change


DIMS = r"with one number of dimensions"

CASES = [
    # MarginRankingLoss
    Case("MarginRankingLoss", xn.MarginRankingLoss, lambda be, dt: xn.MarginRankingLoss(),
         three(normal(6), normal(6), signs(6)), lambda nn: nn.MarginRankingLoss(),
         three(normal(6), normal(6, 1), signs(6)),
         (ValueError, r"MarginRankingLoss expected input1, input2 and target " + DIMS + r", got input1 \(6,\), "
                      r"input2 \(6, 1\), target \(6,\)")),
    Case("MarginRankingLoss-margin-sum-int-target", xn.MarginRankingLoss,
         lambda be, dt: xn.MarginRankingLoss(margin=0.5, reduction="sum"),
         three(normal(7), normal(7), signs(7, dtype=np.int64)), lambda nn: nn.MarginRankingLoss(margin=0.5, reduction="sum"),
         three(normal(7), signs(7, dtype=np.int64), signs(7)),
         (TypeError, r"MarginRankingLoss expected a float64 input2 to match the input1, got int64")),
    Case("MarginRankingLoss-none-broadcast", xn.MarginRankingLoss,
         lambda be, dt: xn.MarginRankingLoss(margin=-0.2, reduction="none"),
         three(normal(4, 3), normal(1, 3), signs(4, 1)), lambda nn: nn.MarginRankingLoss(margin=-0.2, reduction="none"),
         three(normal(4, 3), normal(2, 3), signs(4, 1)),
         (ValueError, r"MarginRankingLoss expected inputs whose shapes broadcast together, got input1 \(4, 3\), "
                      r"input2 \(2, 3\), target \(4, 1\)")),

    # CosineEmbeddingLoss: a float label's finite differences would leave y = +-1 (a selector), so
    # the gradcheck takes integer labels
    Case("CosineEmbeddingLoss", xn.CosineEmbeddingLoss, lambda be, dt: xn.CosineEmbeddingLoss(),
         three(normal(6, 4), normal(6, 4), signs(6)), lambda nn: nn.CosineEmbeddingLoss(),
         three(normal(6, 4), normal(6, 4), signs(6, 1)),
         (ValueError, r"CosineEmbeddingLoss expected a 0-d or 1-d target \(one label per pair; multi-target is "
                      r"not supported\), got shape \(6, 1\)"),
         grad_inputs=three(normal(6, 4), normal(6, 4), signs(6, dtype=np.int64))),
    Case("CosineEmbeddingLoss-margin-none-int-target", xn.CosineEmbeddingLoss,
         lambda be, dt: xn.CosineEmbeddingLoss(margin=-0.3, reduction="none"),
         three(normal(8, 3), normal(8, 3), lambda rng: rng.integers(-1, 2, size=8)),  # 0: no loss
         lambda nn: nn.CosineEmbeddingLoss(margin=-0.3, reduction="none"),
         three(normal(8, 3), normal(8), signs(8)),
         (ValueError, r"CosineEmbeddingLoss expected 2-d \(N, D\) inputs for a 1-d target \(N,\), got input1 "
                      r"\(8, 3\), input2 \(8,\), target \(8,\)")),
    Case("CosineEmbeddingLoss-unbatched-sum", xn.CosineEmbeddingLoss,
         lambda be, dt: xn.CosineEmbeddingLoss(margin=0.2, reduction="sum"),
         three(normal(5), normal(5), lambda rng: np.array(-1, dtype=np.int64)),
         lambda nn: nn.CosineEmbeddingLoss(margin=0.2, reduction="sum"),
         three(normal(5), normal(5), signs(3)),
         (ValueError, r"CosineEmbeddingLoss expected 2-d \(N, D\) inputs for a 1-d target")),

    # TripletMarginLoss
    Case("TripletMarginLoss", xn.TripletMarginLoss, lambda be, dt: xn.TripletMarginLoss(),
         three(normal(5, 4), normal(5, 4), normal(5, 4)), lambda nn: nn.TripletMarginLoss(),
         three(normal(5, 4), normal(4), normal(5, 4)),
         (ValueError, r"TripletMarginLoss expected anchor, positive and negative " + DIMS + r", got anchor \(5, 4\), "
                      r"positive \(4,\), negative \(5, 4\)")),
    Case("TripletMarginLoss-swap-p1-sum", xn.TripletMarginLoss,
         lambda be, dt: xn.TripletMarginLoss(margin=2.0, p=1.0, swap=True, reduction="sum"),
         three(normal(6, 3), normal(6, 3), normal(6, 3)),
         lambda nn: nn.TripletMarginLoss(margin=2.0, p=1.0, swap=True, reduction="sum"),
         lambda rng: (rng.standard_normal((6, 3)), rng.standard_normal((6, 3)), rng.integers(0, 3, size=(6, 3))),
         (TypeError, r"TripletMarginLoss expected a float64 negative to match the anchor, got int64")),
    Case("TripletMarginLoss-p3-swap-none-broadcast", xn.TripletMarginLoss,
         lambda be, dt: xn.TripletMarginLoss(margin=0.5, p=3.0, eps=1e-3, swap=True, reduction="none"),
         three(normal(4, 3), normal(1, 3), normal(4, 3)),
         lambda nn: nn.TripletMarginLoss(margin=0.5, p=3.0, eps=1e-3, swap=True, reduction="none"),
         three(normal(4, 3), normal(2, 3), normal(4, 3)),
         (ValueError, r"TripletMarginLoss expected inputs whose shapes broadcast together")),
    Case("TripletMarginLoss-pinf-unbatched", xn.TripletMarginLoss,
         lambda be, dt: xn.TripletMarginLoss(margin=3.0, p=float("inf")),
         three(normal(5), normal(5), normal(5)), lambda nn: nn.TripletMarginLoss(margin=3.0, p=float("inf")),
         three(normal(5), normal(5), normal(1, 5)),
         (ValueError, r"TripletMarginLoss expected anchor, positive and negative " + DIMS)),

    # GaussianNLLLoss
    Case("GaussianNLLLoss", xn.GaussianNLLLoss, lambda be, dt: xn.GaussianNLLLoss(),
         three(normal(4, 3), normal(4, 3), positive(4, 3)), lambda nn: nn.GaussianNLLLoss(),
         three(normal(4, 3), normal(4, 3), positive(4, 2)),
         (ValueError, r"GaussianNLLLoss expected var of the input's shape \(4, 3\), that shape without its last "
                      r"axis, or with one of its sizes 1, got \(4, 2\)")),
    Case("GaussianNLLLoss-homoscedastic-full-sum", xn.GaussianNLLLoss,
         lambda be, dt: xn.GaussianNLLLoss(full=True, eps=1e-3, reduction="sum"),
         three(normal(5, 3), normal(5, 3), positive(5, 1)),
         lambda nn: nn.GaussianNLLLoss(full=True, eps=1e-3, reduction="sum"),
         three(normal(5, 3), normal(5, 3), lambda rng: -positive(5, 1)(rng)),
         (ValueError, r"GaussianNLLLoss expected var >= 0 everywhere "
                      r"\(variances\), got a negative entry \(the smallest: -")),
    Case("GaussianNLLLoss-var-short-none", xn.GaussianNLLLoss, lambda be, dt: xn.GaussianNLLLoss(reduction="none"),
         three(normal(2, 4, 3), normal(2, 4, 3), positive(2, 4)), lambda nn: nn.GaussianNLLLoss(reduction="none"),
         lambda rng: (rng.standard_normal((2, 4, 3)), rng.integers(0, 3, size=(2, 4, 3)), rng.uniform(1, 2, (2, 4))),
         (TypeError, r"GaussianNLLLoss expected a float64 target to match the input, got int64")),
    Case("GaussianNLLLoss-target-broadcast", xn.GaussianNLLLoss, lambda be, dt: xn.GaussianNLLLoss(),
         three(normal(3, 4), normal(1, 4), positive(1, 4)), lambda nn: nn.GaussianNLLLoss(),
         three(normal(3, 4), normal(2, 4), positive(1, 4)),
         (ValueError, r"GaussianNLLLoss expected inputs whose shapes broadcast together, got input \(3, 4\), "
                      r"target \(2, 4\), var \(1, 4\)")),

    # CTCLoss
    Case("CTCLoss", xn.CTCLoss, lambda be, dt: xn.CTCLoss(), ctc_inputs(8, 3, 5, 3), lambda nn: nn.CTCLoss(),
         _bad_ctc(8, 3, 5, 3, _set(1, lambda tg: np.concatenate([np.full((3, 1), 5), tg[:, 1:]], axis=1))),
         (ValueError, r"CTCLoss expected class labels in \[0, 5\) as targets, got labels from \d to 5"),
         grad_inputs=ctc_inputs(8, 3, 5, 3, shift=SHIFT)),
    Case("CTCLoss-concatenated-blank-sum", xn.CTCLoss, lambda be, dt: xn.CTCLoss(blank=3, reduction="sum"),
         ctc_inputs(7, 4, 4, 3, padded=False, blank=3), lambda nn: nn.CTCLoss(blank=3, reduction="sum"),
         _bad_ctc(7, 4, 4, 3, _set(2, lambda il: il + 1)),
         (ValueError, r"CTCLoss expected input_lengths in \[0, 7\] \(the steps of "
                      r"log_probs\), got lengths from \d to 8"),
         grad_inputs=ctc_inputs(7, 4, 4, 3, padded=False, blank=3, shift=SHIFT)),
    Case("CTCLoss-impossible-zero-infinity-none", xn.CTCLoss,
         lambda be, dt: xn.CTCLoss(reduction="none", zero_infinity=True),
         # sample 1: 4 labels with a repeat need 5 steps, it has 4; sample 2: no label at all
         ctc_inputs(6, 3, 4, 4, lengths=([6, 4, 5], [3, 4, 0])),
         lambda nn: nn.CTCLoss(reduction="none", zero_infinity=True),
         _bad_ctc(6, 3, 4, 4, _set(3, lambda tl: tl + 2)),
         (ValueError, r"CTCLoss expected target_lengths of at most 4 "
                      r"\(the padded targets' length\), got up to \d"),
         grad_inputs=ctc_inputs(6, 3, 4, 4, lengths=([6, 4, 5], [3, 4, 0]), shift=SHIFT)),
    Case("CTCLoss-unbatched-mean", xn.CTCLoss, lambda be, dt: xn.CTCLoss(blank=2),
         ctc_inputs(6, 1, 4, 3, padded=False, blank=2, lengths=([5], [3]), unbatched=True),
         lambda nn: nn.CTCLoss(blank=2), lambda rng: (rng.standard_normal((6, 2, 4)), np.ones((1, 2), dtype=np.int64),
                                                     np.array([6], dtype=np.int64), np.array([2], dtype=np.int64)),
         (ValueError, r"CTCLoss expected target_lengths of shape \(2,\), got \(1,\)"),
         grad_inputs=ctc_inputs(6, 1, 4, 3, padded=False, blank=2, lengths=([5], [3]), unbatched=True, shift=SHIFT)),
]
