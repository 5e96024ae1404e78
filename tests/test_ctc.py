"""CTCLoss against torch.nn.CTCLoss in float64: random lengths (input lengths below T, empty
targets, no steps at all), blanks at either end and inside the classes, repeated labels,
impossible alignments (inf and NaN, or 0 with zero_infinity), padded and concatenated targets,
lengths as arrays and as tuples, unbatched inputs, every reduction; the gradient through a
log-softmax against finite differences; the value checks (eager and deferred) and every error.
Then the contract of the losses of several inputs (MultiInputLoss) that CTCLoss shares."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.layers.deferred import deferred_checks
from tests.conftest import host

PLACES = ["numpy", "array_api_strict:device1", "torch"]


def draw(rng, T, N, C, S, blank, padded=True):
    """log_probs (log-softmax outputs), targets with repeats, lengths: some short, some empty,
    some impossible (more labels than steps)."""
    z = rng.standard_normal((T, N, C)) * 2.0
    lp = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
    il = rng.integers(0, T + 1, size=N)
    il[0] = T
    tl = rng.integers(0, S + 1, size=N)
    others = np.array([c for c in range(C) if c != blank])
    tg = others[rng.integers(0, len(others), size=(N, S))]
    repeat = rng.random((N, S)) < 0.4  # runs of one label need a blank between them
    for s in range(1, S):
        tg[:, s] = np.where(repeat[:, s], tg[:, s - 1], tg[:, s])
    if not padded:
        tg = np.concatenate([tg[n, :tl[n]] for n in range(N)]).astype(np.int64)
    return lp, tg.astype(np.int64), il.astype(np.int64), tl.astype(np.int64)


def reference(torch, lp, tg, il, tl, w, **kw):
    """torch's loss and d(sum(loss * w))/d(log_probs), in float64."""
    t = torch.from_numpy(lp.copy()).requires_grad_(True)
    out = torch.nn.CTCLoss(**kw)(t, torch.from_numpy(tg), torch.from_numpy(il), torch.from_numpy(tl))
    (g,) = torch.autograd.grad(out, t, torch.from_numpy(np.asarray(w, dtype=np.float64)))
    return out.detach().numpy(), g.numpy()


def ours(be, lp, tg, il, tl, w, as_tuples=False, **kw):
    loss = xn.CTCLoss(**kw)
    lengths = (tuple(int(v) for v in il.reshape(-1)), tuple(int(v) for v in tl.reshape(-1))) if as_tuples else \
        (be.asarray(il), be.asarray(tl))
    out = loss(be.asarray(lp), be.asarray(tg), *lengths)
    dy = float(w) if out.ndim == 0 else be.asarray(np.asarray(w, dtype=np.float64))
    grads = loss.backward(dy)
    assert isinstance(grads, tuple) and len(grads) == 4 and grads[1:] == (None, None, None)
    return host(out), host(grads[0])


def same(a, b, what):
    """Equal to 1e-10 of the largest finite magnitude, NaN and inf where torch has them."""
    assert a.shape == b.shape, (what, a.shape, b.shape)
    finite = np.abs(b[np.isfinite(b)])
    scale = max(float(finite.max(initial=0.0)), 1e-2)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * scale, equal_nan=True, err_msg=what)


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("seed", range(6))
def test_random_batches_as_torch(torch, place, seed):
    rng = np.random.default_rng(seed)
    T, N, C, S = int(rng.integers(1, 9)), int(rng.integers(1, 5)), int(rng.integers(2, 6)), int(rng.integers(1, 5))
    blank = [0, C - 1, int(rng.integers(0, C))][seed % 3]
    padded = seed % 2 == 0
    be = backends.get(place)
    for reduction in ("none", "sum", "mean"):
        for zero_infinity in (False, True):
            kw = dict(blank=blank, reduction=reduction, zero_infinity=zero_infinity)
            lp, tg, il, tl = draw(rng, T, N, C, S, blank, padded)
            w = rng.standard_normal(N) if reduction == "none" else rng.standard_normal()
            want, want_g = reference(torch, lp, tg, il, tl, w, **kw)
            got, got_g = ours(be, lp, tg, il, tl, w, as_tuples=reduction == "sum", **kw)
            case = f"T={T} N={N} C={C} S={S} blank={blank} padded={padded} {kw} il={il} tl={tl}"
            same(got, want, f"loss: {case}")
            same(got_g, want_g, f"gradient: {case}")


def test_the_corners_torch_defines(torch):
    """No step and no label (loss 0), no step but a label (inf), more labels than steps (inf, a NaN
    gradient; 0 with zero_infinity), a repeat that needs a blank step it does not have, and the
    "mean" of an empty target (divided by 1)."""
    be = backends.get("numpy")
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, 5, 3))
    lp = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
    tg = np.array([[1, 2], [1, 2], [1, 2, ], [1, 1], [2, 1]], dtype=np.int64)
    il = np.array([0, 0, 1, 2, 4], dtype=np.int64)
    tl = np.array([0, 1, 2, 2, 0], dtype=np.int64)
    for kw in (dict(reduction="none"), dict(reduction="none", zero_infinity=True), dict(reduction="mean"),
               dict(reduction="mean", zero_infinity=True)):
        w = np.arange(1.0, 6.0) if kw["reduction"] == "none" else 1.5
        want, want_g = reference(torch, lp, tg, il, tl, w, **kw)
        got, got_g = ours(be, lp, tg, il, tl, w, **kw)
        same(got, want, f"loss {kw}")
        same(got_g, want_g, f"gradient {kw}")
    out, _ = ours(be, lp, tg, il, tl, np.ones(5), reduction="none")
    assert out[0] == 0.0 and np.isinf(out[1:4]).all() and np.isfinite(out[4])


@pytest.mark.parametrize("place", PLACES)
def test_unbatched_as_torch(torch, place):
    be = backends.get(place)
    rng = np.random.default_rng(11)
    lp, tg, il, tl = draw(rng, 7, 1, 4, 3, blank=1)
    il[0], tl[0] = 6, 3
    for targets in (tg[:, :3], tg[0, :3]):  # padded (1, S), and 1-d: concatenated, of length L
        for lengths in ((il, tl), (il.reshape(()), tl.reshape(()))):
            for reduction in ("none", "mean"):
                want, want_g = reference(torch, lp[:, 0], targets, *lengths, 0.7, blank=1, reduction=reduction)
                got, got_g = ours(be, lp[:, 0], targets, *lengths, 0.7, blank=1, reduction=reduction)
                assert got.shape == () and got_g.shape == (7, 4)
                same(got, want, "unbatched loss")
                same(got_g, want_g, "unbatched gradient")


def test_gradient_through_log_softmax_against_finite_differences():
    """z -> log_softmax -> CTC: xpnet's gradient (torch's, with its exp(log_probs) term) sent back
    through the log-softmax equals the finite differences of the whole, for every reduction."""
    be = backends.get("numpy")
    rng = np.random.default_rng(5)
    T, N, C = 6, 3, 4
    z = rng.standard_normal((T, N, C))
    tg = np.array([[1, 1, 3], [2, 3, 0], [3, 0, 0]], dtype=np.int64)
    il, tl = np.array([6, 5, 2], dtype=np.int64), np.array([3, 2, 1], dtype=np.int64)

    def log_softmax(z):
        return z - np.log(np.exp(z).sum(axis=2, keepdims=True))

    for reduction in ("mean", "sum", "none"):
        loss = xn.CTCLoss(reduction=reduction)
        w = rng.standard_normal(N) if reduction == "none" else 1.0

        def f(z):
            with xn.no_grad():
                return float(np.sum(host(loss(be.asarray(log_softmax(z)), be.asarray(tg), be.asarray(il),
                                              be.asarray(tl))) * w))

        lp = log_softmax(z)
        loss(be.asarray(lp), be.asarray(tg), be.asarray(il), be.asarray(tl))
        g = host(loss.backward(w if reduction != "none" else be.asarray(w))[0])
        dz = g - np.exp(lp) * g.sum(axis=2, keepdims=True)  # log_softmax's backward
        for _ in range(3):
            v = rng.standard_normal(z.shape)
            numeric = (f(z + 1e-6 * v) - f(z - 1e-6 * v)) / 2e-6
            assert numeric == pytest.approx(float(np.sum(dz * v)), rel=1e-6, abs=1e-8), reduction


# -- the value checks -------------------------------------------------------------------------------

def _inputs(be, tg=None, il=(4, 3), tl=(2, 1), T=4, C=3):
    lp = np.log(np.full((T, 2, C), 1.0 / C))
    tg = np.array([[1, 2], [2, 0]]) if tg is None else np.asarray(tg)
    return (be.asarray(lp), be.asarray(tg.astype(np.int64)), be.asarray(np.array(il, dtype=np.int64)),
            be.asarray(np.array(tl, dtype=np.int64)))


BAD_VALUES = [
    (dict(il=(5, 3)), r"^CTCLoss expected input_lengths in \[0, 4\] \(the steps of log_probs\), got lengths from 3 to 5$"),
    (dict(il=(-1, 3)), r"expected input_lengths in \[0, 4\] .*, got lengths from -1 to 3$"),
    (dict(tl=(-1, 1)), r"^CTCLoss expected target_lengths >= 0, got lengths from -1 to 1$"),
    (dict(tl=(3, 1)), r"^CTCLoss expected target_lengths of at most 2 \(the padded targets' length\), got up to 3$"),
    (dict(tg=[1, 2, 2, 1]), r"^CTCLoss expected 1-d targets of length sum\(target_lengths\) = 3, got length 4$"),
    (dict(tg=[[1, 3], [2, 0]]), r"^CTCLoss expected class labels in \[0, 3\) as targets, got labels from 1 to 3$"),
    (dict(tg=[[1, 2], [-2, 7]]), r"^CTCLoss expected class labels in \[0, 3\) as targets, got labels from -2 to 2$"),
]


@pytest.mark.parametrize("change,message", BAD_VALUES)
def test_bad_values_raise_at_once_or_deferred(backend, change, message):
    loss = xn.CTCLoss()
    with pytest.raises(ValueError, match=message):
        loss(*_inputs(backend, **change))
    with pytest.raises(ValueError, match=message.rstrip("$") + r"; first at step 4$"):
        with deferred_checks() as checks:
            checks.step = 4
            out = loss(*_inputs(backend, **change))  # nothing read: the loss is NaN instead
            assert math.isnan(float(host(out)))
            loss.backward()


def test_labels_past_a_target_end_are_not_checked(backend):
    """Padding after a target's end may hold anything (as torch: it is never read)."""
    lp, tg, il, tl = _inputs(backend, tg=[[1, 99], [-5, 7]], tl=(1, 0))
    assert np.isfinite(host(xn.CTCLoss()(lp, tg, il, tl)))


def _errors():
    be = backends.get("numpy")
    lp, tg, il, tl = _inputs(be)
    f64 = be.asarray(np.zeros((2, 2)))
    other = backends.get("array_api_strict:device1")
    return [
        (lambda: xn.CTCLoss()(be.asarray(np.zeros((4, 2, 3, 1))), tg, il, tl), ValueError,
         r"^CTCLoss expected log_probs of shape \(T, N, C\) or unbatched \(T, C\), got \(4, 2, 3, 1\)$"),
        (lambda: xn.CTCLoss()(be.asarray(np.zeros((4, 2, 3), dtype=np.int64)), tg, il, tl), TypeError,
         r"^CTCLoss expected a floating-point log_probs, got int64"),
        (lambda: xn.CTCLoss(blank=3)(lp, tg, il, tl), ValueError,
         r"^CTCLoss expected blank in \[0, C\) = \[0, 3\), the classes of log_probs \(4, 2, 3\), got blank=3$"),
        (lambda: xn.CTCLoss()(lp, f64, il, tl), TypeError,
         r"^CTCLoss expected integer class labels as targets, got float64; convert them with xp.astype"),
        (lambda: xn.CTCLoss()(lp, be.asarray(np.ones((3, 2), dtype=np.int64)), il, tl), ValueError,
         r"^CTCLoss expected targets padded to \(2, S\) or concatenated to 1-d .*, got \(3, 2\)$"),
        (lambda: xn.CTCLoss()(lp, other.asarray(np.ones((2, 2), dtype=np.int64)), il, tl), ValueError,
         r"^CTCLoss got its targets on array_api_strict:device1 but the log_probs on numpy"),
        (lambda: xn.CTCLoss()(lp, tg, be.asarray(np.array([4.0, 3.0])), tl), TypeError,
         r"^CTCLoss expected integer input_lengths, got float64"),
        (lambda: xn.CTCLoss()(lp, tg, il, be.asarray(np.array([2, 1, 1]))), ValueError,
         r"^CTCLoss expected target_lengths of shape \(2,\), got \(3,\)$"),
        (lambda: xn.CTCLoss()(lp, tg, (4, 3, 2), tl), ValueError, r"^CTCLoss expected 2 input_lengths \(one per sample\), got 3$"),
        (lambda: xn.CTCLoss()(lp, tg, (4, 3.0), tl), TypeError, r"^CTCLoss expected input_lengths as ints, got \(4, 3\.0\)$"),
        (lambda: xn.CTCLoss()(lp, tg, 4, tl), TypeError, r"^CTCLoss expected its input_lengths to be an array"),
        (lambda: xn.CTCLoss()(lp, tg, other.asarray(np.array([4, 3])), tl), ValueError,
         r"^CTCLoss got its input_lengths on array_api_strict:device1 but the log_probs on numpy"),
        (lambda: xn.CTCLoss(blank=-1), ValueError, r"^CTCLoss: blank must be an int >= 0, got -1$"),
        (lambda: xn.CTCLoss(zero_infinity=1), ValueError, r"^CTCLoss: zero_infinity must be True or False, got 1$"),
        (lambda: xn.CTCLoss(reduction="batchmean"), ValueError, r"^CTCLoss: reduction must be one of"),
    ]


@pytest.mark.parametrize("k", range(len(_errors())))
def test_errors_name_what_was_expected(k):
    call, kind, pattern = _errors()[k]
    with pytest.raises(kind, match=pattern):
        call()


def test_dy_of_none_reduction_is_checked_and_gradients_keep_their_place(backend):
    loss = xn.CTCLoss(reduction="none")
    loss(*_inputs(backend))
    with pytest.raises(ValueError, match=r"^CTCLoss.backward expected dy of shape \(2,\) \(its output's, reduction='none'\), got \(3,\)$"):
        loss.backward(backend.asarray(np.ones(3)))
    loss(*_inputs(backend))
    g = loss.backward(backend.asarray(np.ones(2)))[0]
    assert backend.owns(g) and tuple(g.shape) == (4, 2, 3)


# -- the contract of the losses of several inputs ---------------------------------------------------

def test_every_float_input_gets_a_gradient_and_target_grad_false_skips_the_targets(backend):
    x1, x2, y = (backend.asarray(np.array(v)) for v in ([0.5, -1.0, 2.0], [0.0, 0.5, 2.5], [1.0, -1.0, 1.0]))
    loss = xn.MarginRankingLoss(margin=0.1)
    loss(x1, x2, y)
    d1, d2, dy = loss.backward()
    assert all(backend.owns(g) and tuple(g.shape) == (3,) for g in (d1, d2, dy))
    loss(x1, x2, y)
    assert loss.backward(target_grad=False)[2] is None
    loss(x1, x2, y)
    assert loss.backward(input_grad=False) is None and loss.pending == 0
    loss(x1, x2, y)
    assert loss.backward(None) is None and loss.pending == 0


def test_low_precision_inputs_are_computed_in_float32_and_get_gradients_in_their_dtype():
    be = backends.get("numpy")
    rng = np.random.default_rng(2)
    a, p, n = (be.asarray(rng.standard_normal((4, 3)), dtype="float16") for _ in range(3))
    loss = xn.TripletMarginLoss()
    out = loss(a, p, n)
    assert out.dtype == be.dtype("float32")
    assert all(g.dtype == be.dtype("float16") for g in loss.backward())
    lp, tg, il, tl = _inputs(be)
    ctc = xn.CTCLoss()
    assert ctc(be.xp.astype(lp, be.dtype("float16")), tg, il, tl).dtype == be.dtype("float32")
    assert ctc.backward()[0].dtype == be.dtype("float16")


def test_gaussian_nll_negative_variance_raises_at_once_or_deferred(backend):
    loss = xn.GaussianNLLLoss()
    x, t = backend.asarray(np.zeros((2, 3))), backend.asarray(np.ones((2, 3)))
    v = backend.asarray(np.array([[1.0], [-0.5]]))
    message = r"^GaussianNLLLoss expected var >= 0 everywhere \(variances\), got a negative entry \(the smallest: -0\.5\)"
    with pytest.raises(ValueError, match=message + "$"):
        loss(x, t, v)
    with pytest.raises(ValueError, match=message + r"; first at step 2$"):
        with deferred_checks() as checks:
            checks.step = 2
            assert math.isnan(float(host(loss(x, t, v))))
            loss.backward()
    with pytest.raises(ValueError, match=r"^GaussianNLLLoss expected var >= 0 \(a variance\), got -1\.0$"):
        loss(x, t, -1.0)


def test_gaussian_nll_with_a_number_as_variance_as_torch(torch):
    be = backends.get("numpy")
    rng = np.random.default_rng(4)
    x, t = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    want = torch.nn.GaussianNLLLoss(full=True)(xt, torch.from_numpy(t), 0.5)
    (gx,) = torch.autograd.grad(want, xt)
    loss = xn.GaussianNLLLoss(full=True)
    got = loss(be.asarray(x), be.asarray(t), 0.5)
    dx, dt, dv = loss.backward()
    np.testing.assert_allclose(host(got), want.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(host(dx), gx.numpy(), rtol=1e-12)
    np.testing.assert_allclose(host(dt), -gx.numpy(), rtol=1e-12)
    assert dv is None
