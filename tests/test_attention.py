"""Attention (issue 12): scaled_dot_product_attention and MultiheadAttention on every backend.

Gradchecks (float64) of the SDPA layer (masks of both kinds, causal with L != S, scale, 4-D and
2-D inputs, fully masked rows, dropout) and of MultiheadAttention (self-attention through the
fused projection, cross-attention, kdim/vdim, add_bias_kv, add_zero_attn, every mask kind, both
need_weights and average settings, batch_first, unbatched, a longer sequence, the is_causal
hint); parity with torch in float64 and float32, the weights output and its gradient included;
fully masked rows as torch gives them; the errors; from_torch/to_torch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.layers.attention import ScaledDotProductAttention, scaled_dot_product_attention
from xpnet.testing import gradcheck
from tests.conftest import host

TOL = {"float64": 1e-10, "float32": 3e-5}
PARITY_PLACES = ["numpy", "array_api_strict:device1", "torch"]


def on(be, a, dtype):
    """A numpy array on ``be``: floats in ``dtype``, booleans as they are."""
    return be.asarray(a, dtype=dtype if a.dtype.kind == "f" else None)


def close(ours, theirs, dtype, what):
    a, b = host(ours), theirs.detach().cpu().numpy()
    assert a.shape == b.shape, f"{what}: shape {a.shape}, torch's {b.shape}"
    scale = max(float(np.nanmax(np.abs(b), initial=0.0)), 1e-3)
    tol = TOL[dtype]
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale, err_msg=what)


def keep_some(mask):
    """A boolean take-part mask with each row's first key kept (no row fully masked)."""
    mask = mask.copy()
    mask[..., 0] = True
    return mask


# -- scaled_dot_product_attention ----------------------------------------------------------------

def _rows_masked(rng, shape, full_row=None):
    m = keep_some(rng.random(shape) < 0.6)
    if full_row is not None:
        m[full_row] = False
    return m


SDPA = {
    "plain": dict(q=(2, 3, 4), k=(2, 5, 4), v=(2, 5, 6)),
    "2d": dict(q=(3, 4), k=(5, 4), v=(5, 2)),
    "bool-mask-broadcast": dict(q=(2, 3, 4), k=(2, 5, 4), v=(2, 5, 3), mask=lambda rng: _rows_masked(rng, (3, 5))),
    "float-mask-4d": dict(q=(2, 2, 3, 4), k=(2, 2, 5, 4), v=(2, 2, 5, 3),
                          mask=lambda rng: rng.standard_normal((2, 1, 3, 5))),
    "causal-wide": dict(q=(2, 4, 3), k=(2, 6, 3), v=(2, 6, 2), causal=True),
    "causal-tall": dict(q=(1, 2, 5, 3), k=(1, 2, 3, 3), v=(1, 2, 3, 4), causal=True),
    "scale": dict(q=(2, 3, 4), k=(2, 4, 4), v=(2, 4, 4), scale=0.3, mask=lambda rng: _rows_masked(rng, (2, 3, 4))),
    "bool-masked-row": dict(q=(2, 3, 4), k=(2, 5, 4), v=(2, 5, 3),
                            mask=lambda rng: _rows_masked(rng, (2, 3, 5), full_row=(1, 2))),
    "float-inf-row": dict(q=(2, 3, 4), k=(2, 5, 4), v=(2, 5, 3),
                          mask=lambda rng: np.where(_rows_masked(rng, (3, 5), full_row=0), rng.standard_normal((3, 5)),
                                                    -np.inf)),
}


def sdpa_inputs(cfg, be, dtype, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(cfg[n]) for n in ("q", "k", "v")]
    mask = cfg["mask"](rng) if "mask" in cfg else None
    kwargs = {}
    if mask is not None:
        kwargs["attn_mask"] = on(be, mask, dtype)
    if cfg.get("causal"):
        kwargs["is_causal"] = True
    if "scale" in cfg:
        kwargs["scale"] = cfg["scale"]
    return arrays, mask, [on(be, a, dtype) for a in arrays], kwargs


@pytest.mark.parametrize("name", SDPA)
def test_sdpa_gradcheck(backend, name):
    _, _, xs, kwargs = sdpa_inputs(SDPA[name], backend, "float64")
    assert gradcheck(ScaledDotProductAttention(), *xs, kwargs=kwargs)


def test_sdpa_gradcheck_dropout_and_positional_mask(backend):
    _, mask, xs, _ = sdpa_inputs(SDPA["bool-mask-broadcast"], backend, "float64")
    # the mask and dropout_p given positionally: backward returns None for each
    assert gradcheck(ScaledDotProductAttention(), *xs, backend.asarray(mask), 0.4)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", SDPA)
@pytest.mark.parametrize("place", PARITY_PLACES)
def test_sdpa_matches_torch(torch, place, name, dtype):
    be = backends.get(place)
    arrays, mask, xs, kwargs = sdpa_inputs(SDPA[name], be, dtype)
    ts = [torch.from_numpy(a.astype(dtype)).requires_grad_(True) for a in arrays]
    tkw = dict(kwargs)
    if mask is not None:
        tkw["attn_mask"] = torch.from_numpy(mask.astype(dtype) if mask.dtype.kind == "f" else mask)
    ty = torch.nn.functional.scaled_dot_product_attention(*ts, **tkw)
    layer = ScaledDotProductAttention()
    y = layer(*xs, **kwargs)
    close(y, ty, dtype, "output")
    close(scaled_dot_product_attention(*xs, **kwargs), ty, dtype, "the function's output")
    w = np.random.default_rng(1).standard_normal(tuple(ty.shape)).astype(dtype)
    grads = layer.backward(be.asarray(w))
    tgrads = torch.autograd.grad(ty, ts, torch.from_numpy(w))
    for what, g, tg in zip(("query", "key", "value"), grads, tgrads):
        close(g, tg, dtype, f"gradient of {what}")


def test_sdpa_fully_masked_row_is_zero_as_in_torch(backend):
    _, _, xs, kwargs = sdpa_inputs(SDPA["bool-masked-row"], backend, "float64")
    layer = ScaledDotProductAttention()
    y = host(layer(*xs, **kwargs))
    assert np.all(y[1, 2] == 0.0) and np.all(np.isfinite(y))
    dq, dk, dv = (host(g) for g in layer.backward(backend.asarray(np.ones(y.shape))))
    assert np.all(dq[1, 2] == 0.0) and all(np.all(np.isfinite(g)) for g in (dq, dk, dv))


def test_sdpa_dropout_draws_on_the_device_and_p1_gives_zero(backend):
    _, _, xs, _ = sdpa_inputs(SDPA["plain"], backend, "float32")
    assert np.all(host(scaled_dot_product_attention(*xs, dropout_p=1.0)) == 0.0)
    y1, y2 = (host(scaled_dot_product_attention(*xs, dropout_p=0.5)) for _ in range(2))
    assert not np.allclose(y1, y2)  # a fresh mask each call
    assert type(y1) is np.ndarray


@pytest.mark.parametrize("call, kind, pattern", [
    (lambda q, k, v, m: scaled_dot_product_attention(q, k, v, m, is_causal=True), ValueError,
     r"scaled_dot_product_attention: give attn_mask or is_causal=True, not both"),
    (lambda q, k, v, m: scaled_dot_product_attention(q, k[:, :, :3], v), ValueError,
     r"scaled_dot_product_attention expected key of shape \(2, S, 4\) .*got \(2, 5, 3\)"),
    (lambda q, k, v, m: scaled_dot_product_attention(q, k, v[:, :4, :]), ValueError,
     r"scaled_dot_product_attention expected value of shape \(2, 5, Ev\) .*got \(2, 4, 6\)"),
    (lambda q, k, v, m: scaled_dot_product_attention(q, k, v, m[:2, :]), ValueError,
     r"scaled_dot_product_attention expected attn_mask of a shape that broadcasts to the scores' \(2, 3, 5\) "
     r"\(\.\.\., L, S\), got \(2, 5\)"),
    (lambda q, k, v, m: scaled_dot_product_attention(q, k, v, dropout_p=1.5), ValueError,
     r"scaled_dot_product_attention: dropout_p must be a probability in \[0, 1\], got 1.5"),
    (lambda q, k, v, m: scaled_dot_product_attention(q[0, 0, :], k, v), ValueError,
     r"scaled_dot_product_attention expected query of shape \(\.\.\., L, E\), got \(4,\)"),
    (lambda q, k, v, m: ScaledDotProductAttention()(q, k, v, m, mask=m), TypeError,
     r"ScaledDotProductAttention\(\)\.forward got an unexpected keyword argument 'mask'"),
])
def test_sdpa_errors(backend, call, kind, pattern):
    _, _, (q, k, v), _ = sdpa_inputs(SDPA["plain"], backend, "float32")
    mask = backend.asarray(np.ones((3, 5), dtype=bool))
    with pytest.raises(kind, match=pattern):
        call(q, k, v, mask)


def test_sdpa_mask_dtype_errors(backend):
    _, _, (q, k, v), _ = sdpa_inputs(SDPA["plain"], backend, "float32")
    ints = backend.asarray(np.ones((3, 5), dtype=np.int64))
    with pytest.raises(TypeError, match=r"expected attn_mask to be boolean or floating-point, got int64"):
        scaled_dot_product_attention(q, k, v, ints)
    wide = backend.asarray(np.zeros((3, 5)), dtype="float64")  # another float precision: cast, as torch does
    np.testing.assert_allclose(host(scaled_dot_product_attention(q, k, v, wide)),
                               host(scaled_dot_product_attention(q, k, v)), rtol=1e-6)
    with pytest.raises(TypeError, match=r"expected key of the query's dtype float32, got float64"):
        scaled_dot_product_attention(q, backend.asarray(host(k), dtype="float64"), v)


# -- MultiheadAttention ------------------------------------------------------------------------------

def _kpm(n, s, float_mask=False):
    def draw(rng):
        m = rng.random((n, s)) < 0.35
        m[:, 0] = False  # every query keeps a key
        return np.where(m, -1e9, rng.standard_normal((n, s))) if float_mask else m
    return draw


def _attn(shape, float_mask=False):
    def draw(rng):
        m = rng.random(shape) < 0.35
        m[..., 0] = False
        return rng.standard_normal(shape) * 2.0 if float_mask else m
    return draw


# ctor: the constructor's arguments; L, S, N: lengths and batch (N=None: unbatched); same:
# "qkv" (one array), "kv" (key is value) or ""; masks: forward keyword -> draw(rng); opts: flags
MHA = {
    "self": dict(ctor=dict(embed_dim=8, num_heads=2), L=5, S=5, N=3, same="qkv"),
    "self-batch-first-causal-hint": dict(ctor=dict(embed_dim=8, num_heads=4, batch_first=True), L=4, S=4, N=2,
                                         same="qkv", masks=dict(attn_mask=_attn((4, 4))),
                                         opts=dict(is_causal=True, need_weights=False)),
    "cross-kv": dict(ctor=dict(embed_dim=6, num_heads=3), L=4, S=6, N=2, same="kv"),
    "kdim-vdim": dict(ctor=dict(embed_dim=4, num_heads=2, kdim=3, vdim=5), L=3, S=4, N=2),
    "bias-kv-zero-attn-kpm": dict(ctor=dict(embed_dim=4, num_heads=2, add_bias_kv=True, add_zero_attn=True),
                                  L=3, S=5, N=2, masks=dict(key_padding_mask=_kpm(2, 5))),
    "float-kpm-3d-bool-mask": dict(ctor=dict(embed_dim=4, num_heads=2), L=3, S=5, N=2,
                                   masks=dict(key_padding_mask=_kpm(2, 5, True), attn_mask=_attn((4, 3, 5)))),
    "float-2d-mask-per-head": dict(ctor=dict(embed_dim=6, num_heads=2, batch_first=True), L=4, S=3, N=2,
                                   masks=dict(attn_mask=_attn((4, 3), True)), opts=dict(average_attn_weights=False)),
    "no-weights-bool-masks": dict(ctor=dict(embed_dim=4, num_heads=2), L=3, S=5, N=2, same="kv",
                                  masks=dict(key_padding_mask=_kpm(2, 5), attn_mask=_attn((3, 5))),
                                  opts=dict(need_weights=False)),
    "causal-hint-with-kpm": dict(ctor=dict(embed_dim=4, num_heads=2), L=4, S=4, N=2, same="qkv",
                                 masks=dict(key_padding_mask=_kpm(2, 4), attn_mask=_attn((4, 4))),
                                 opts=dict(is_causal=True, need_weights=False)),
    "unbatched-3d-mask": dict(ctor=dict(embed_dim=4, num_heads=2, batch_first=True, add_bias_kv=True), L=3, S=4,
                              N=None, masks=dict(key_padding_mask=_kpm(1, 4), attn_mask=_attn((2, 3, 4)))),
    "unbatched-self-no-bias": dict(ctor=dict(embed_dim=4, num_heads=1, bias=False), L=5, S=5, N=None, same="qkv",
                                   opts=dict(average_attn_weights=False)),
    "long": dict(ctor=dict(embed_dim=8, num_heads=4, batch_first=True), L=17, S=17, N=2, same="qkv"),
}


def mha_inputs(cfg, be, dtype, seed=0):
    """``(numpy arrays, numpy masks, xpnet inputs, xpnet keyword arguments)`` of a config."""
    rng = np.random.default_rng(seed)
    c = cfg["ctor"]
    e, n, bf = c["embed_dim"], cfg["N"], c.get("batch_first", False)

    def shape(length, dim):
        return (length, dim) if n is None else (n, length, dim) if bf else (length, n, dim)

    q = rng.standard_normal(shape(cfg["L"], e))
    k = rng.standard_normal(shape(cfg["S"], c.get("kdim", e)))
    v = rng.standard_normal(shape(cfg["S"], c.get("vdim", e)))
    same = cfg.get("same", "")
    arrays = [q, q, q] if same == "qkv" else [q, k, k] if same == "kv" else [q, k, v]
    masks = {name: draw(rng) for name, draw in cfg.get("masks", {}).items()}
    if n is None and "key_padding_mask" in masks:
        masks["key_padding_mask"] = masks["key_padding_mask"][0]
    xq = on(be, arrays[0], dtype)
    xk = xq if same == "qkv" else on(be, arrays[1], dtype)
    xv = xk if same else on(be, arrays[2], dtype)
    kwargs = {name: on(be, m, dtype) for name, m in masks.items()}
    kwargs.update(cfg.get("opts", {}))
    return arrays, masks, [xq, xk, xv], kwargs


def twins(torch, cfg, be, dtype, seed=0):
    """A torch MultiheadAttention with random parameters (biases too) and xpnet's copy of it."""
    torch.manual_seed(seed)
    tm = torch.nn.MultiheadAttention(**cfg["ctor"], dtype=getattr(torch, dtype))
    with torch.no_grad():
        for p in tm.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    m = xn.MultiheadAttention(**cfg["ctor"], backend=be, dtype=dtype)
    m.load_state_dict({k: t.detach().numpy() for k, t in tm.state_dict().items()})
    return tm, m


@pytest.mark.parametrize("name", MHA)
def test_mha_gradcheck(backend, name):
    cfg = MHA[name]
    layer = xn.MultiheadAttention(**cfg["ctor"], backend=backend, dtype="float64")
    for p in layer.parameters():  # zero biases would hide a swapped bias gradient
        p.data = p.data + backend.asarray(np.random.default_rng(3).standard_normal(p.shape) * 0.3)
    _, _, xs, kwargs = mha_inputs(cfg, backend, "float64")
    assert gradcheck(layer, *xs, kwargs=kwargs)


def _torch_run(torch, tm, arrays, masks, cfg, dtype):
    """torch's outputs, with each distinct input a leaf (one tensor for q is k is v, as given)."""
    same = cfg.get("same", "")
    tq = torch.from_numpy(arrays[0].astype(dtype)).requires_grad_(True)
    tk = tq if same == "qkv" else torch.from_numpy(arrays[1].astype(dtype)).requires_grad_(True)
    tv = tk if same else torch.from_numpy(arrays[2].astype(dtype)).requires_grad_(True)
    tkw = {name: torch.from_numpy(m.astype(dtype) if m.dtype.kind == "f" else m) for name, m in masks.items()}
    tkw.update(cfg.get("opts", {}))
    y, w = tm(tq, tk, tv, **tkw)
    leaves = [tq] if same == "qkv" else [tq, tk] if same == "kv" else [tq, tk, tv]
    return y, w, leaves


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")  # torch's, for a float and a bool mask
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", MHA)
@pytest.mark.parametrize("place", PARITY_PLACES)
def test_mha_matches_torch(torch, place, name, dtype):
    cfg = MHA[name]
    be = backends.get(place)
    tm, m = twins(torch, cfg, be, dtype)
    arrays, masks, xs, kwargs = mha_inputs(cfg, be, dtype)
    ty, tw, leaves = _torch_run(torch, tm, arrays, masks, cfg, dtype)
    y, w = m(*xs, **kwargs)
    close(y, ty, dtype, "attn_output")
    assert (w is None) == (tw is None)
    rng = np.random.default_rng(1)
    dy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    outs, cts = [ty], [torch.from_numpy(dy)]
    dw = None
    if tw is not None:
        close(w, tw, dtype, "attn_weights")
        dw = rng.standard_normal(tuple(tw.shape)).astype(dtype)
        outs.append(tw)
        cts.append(torch.from_numpy(dw))
    grads = m.backward(be.asarray(dy), None if dw is None else be.asarray(dw))
    tparams = list(tm.named_parameters())
    tgrads = torch.autograd.grad(outs, leaves + [p for _, p in tparams], cts)
    same = cfg.get("same", "")
    # one tensor fed several arguments: its gradient is the sum of theirs, as the caller adds them
    ours = [grads[0] + grads[1] + grads[2]] if same == "qkv" else [grads[0], grads[1] + grads[2]] if same else grads
    for i, (g, tg) in enumerate(zip(ours, tgrads)):
        close(g, tg, dtype, f"input gradient {i}")
    for (pname, _), tg in zip(tparams, tgrads[len(leaves):]):
        close(m.get_parameter(pname).grad, tg, dtype, f"gradient of {pname}")


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_fully_masked_query_as_torch(torch, backend, need_weights):
    """Every key of batch 0 padded: torch's plain softmax gives NaN with need_weights=True, its
    scaled_dot_product_attention weights 0 (an output of out_proj.bias) with need_weights=False."""
    cfg = dict(ctor=dict(embed_dim=4, num_heads=2), L=3, S=3, N=2, same="qkv", opts=dict(need_weights=need_weights))
    tm, m = twins(torch, cfg, backend, "float64")
    arrays, _, xs, kwargs = mha_inputs(cfg, backend, "float64")
    kpm = np.zeros((2, 3), dtype=bool)
    kpm[0] = True
    ty, tw, leaves = _torch_run(torch, tm, arrays, {"key_padding_mask": kpm}, cfg, "float64")
    y, w = m(*xs, key_padding_mask=backend.asarray(kpm), **kwargs)
    yh = host(y)
    if need_weights:
        assert np.all(np.isnan(yh[:, 0])) and np.all(np.isnan(host(w)[0])) and np.all(np.isfinite(yh[:, 1]))
    else:
        np.testing.assert_allclose(yh[:, 0], np.broadcast_to(host(m.out_proj.bias.data), (3, 4)), rtol=1e-12)
    close(y, ty, "float64", "attn_output")
    dy = np.ones(tuple(ty.shape))
    dx = host(sum(m.backward(backend.asarray(dy))))
    (tdx,) = torch.autograd.grad(ty, leaves, torch.from_numpy(dy))
    np.testing.assert_allclose(dx, tdx.numpy(), rtol=1e-10, atol=1e-12)  # NaN where torch has NaN
    assert np.isnan(dx).any() == need_weights


def test_mha_positional_options_get_none_and_self_attention_sums(backend):
    m = xn.MultiheadAttention(4, 2, backend=backend, dtype="float64")
    x = backend.asarray(np.random.default_rng(0).standard_normal((3, 2, 4)))
    kpm = backend.asarray(np.array([[False, False, True], [False, True, False]]))
    y, w = m(x, x, x, kpm, False)
    assert w is None
    grads = m.backward(backend.asarray(np.ones((3, 2, 4))))
    assert len(grads) == 5 and grads[3] is None and grads[4] is None
    assert m.backward is not None and m.pending == 0 and m.out_proj.pending == 0
    y, w = m(x, x, x)
    assert m.backward(None, None) is None and m.pending == 0 and m.out_proj.pending == 0


def test_mha_weights_gradient_alone_and_dropout(backend):
    m = xn.MultiheadAttention(4, 2, dropout=0.5, backend=backend, dtype="float64")
    rng = np.random.default_rng(0)
    q, k = (backend.asarray(rng.standard_normal(s)) for s in ((3, 2, 4), (5, 2, 4)))
    y, w = m(q, k, k, average_attn_weights=False)
    wh = host(w)
    assert wh.shape == (2, 2, 3, 5) and np.any(wh == 0.0)  # the weights after dropout, as torch returns them
    np.testing.assert_allclose(np.sort(np.unique(np.round(wh.sum(-1) * 0.5, 12)))[-1] <= 1.0 / 0.5, True)
    # a gradient for the weights only still reaches the projections; the values get none
    dq, dk, dv = m.backward(None, backend.asarray(rng.standard_normal(wh.shape)))
    assert np.all(host(dv) == 0.0) and np.any(host(dq) != 0.0)
    m.eval()
    y1, w1 = m(q, k, k)
    y2, w2 = m(q, k, k)
    np.testing.assert_array_equal(host(w1), host(w2))  # no dropout in eval mode
    np.testing.assert_allclose(host(w1).sum(-1), 1.0, rtol=1e-12)


def test_mha_float16_computes_the_softmax_in_float32():
    be = backends.get("numpy")
    m = xn.MultiheadAttention(8, 2, backend=be, dtype="float32")
    x = np.random.default_rng(0).standard_normal((4, 2, 8)).astype(np.float32)
    y32, w32 = m(x, x, x)
    m.to(dtype="float16")
    y16, w16 = m(x.astype(np.float16), x.astype(np.float16), x.astype(np.float16))
    assert y16.dtype == np.float16 and w16.dtype == np.float16
    np.testing.assert_allclose(y16.astype(np.float32), y32, atol=2e-2)
    dq, dk, dv = m.backward(np.ones_like(y16), np.ones_like(w16))
    assert dq.dtype == np.float16 and np.all(np.isfinite(dq.astype(np.float32)))


TAG = r"MultiheadAttention\(embed_dim=4, num_heads=2\)"


@pytest.mark.parametrize("make, call, kind, pattern", [
    (lambda be: xn.MultiheadAttention(6, 4), None, ValueError,
     r"MultiheadAttention: embed_dim must be divisible by num_heads, got embed_dim=6 and num_heads=4"),
    (lambda be: xn.MultiheadAttention(4, 2, dropout=1.5), None, ValueError,
     r"MultiheadAttention: dropout must be a probability in \[0, 1\], got 1.5"),
    (None, lambda m, x, xp: m(x[..., :3], x, x), ValueError,
     TAG + r" expected query of shape \(L, N, 4\) or \(L, 4\) unbatched, got \(3, 2, 3\)"),
    (None, lambda m, x, xp: m(x, x, x, key_padding_mask=xp.ones((3, 2), dtype=xp.bool, device=x.device)), ValueError,
     TAG + r" expected key_padding_mask of shape \(2, 3\) \(\(N, S\)\), got \(3, 2\)"),
    (None, lambda m, x, xp: m(x, x, x, key_padding_mask=xp.ones((2, 3), dtype=xp.int64, device=x.device)), TypeError,
     TAG + r" expected key_padding_mask to be boolean or floating-point, got int64"),
    (None, lambda m, x, xp: m(x, x, x, attn_mask=xp.zeros((2, 3, 3), dtype=xp.bool, device=x.device)), ValueError,
     TAG + r" expected attn_mask of shape \(3, 3\) \(L, S\) or \(4, 3, 3\) \(N \* num_heads, L, S\), got \(2, 3, 3\)"),
    (None, lambda m, x, xp: m(x[:, 0, :], x[:, 0, :], x[:, 0, :], attn_mask=xp.zeros((4, 3, 3), dtype=xp.bool, device=x.device)), ValueError,
     TAG + r" expected attn_mask of shape .* \(2, 3, 3\) \(num_heads, L, S\), got \(4, 3, 3\)"),
    (None, lambda m, x, xp: m(x, x, x, is_causal=True), ValueError,
     TAG + r": is_causal=True is a hint that attn_mask is the causal mask, and needs that attn_mask"),
    (None, lambda m, x, xp: m(x, x, x, need_weights=1), ValueError,
     TAG + r": need_weights must be True or False, got 1"),
    (None, lambda m, x, xp: m(x, x, x, None, True, None, True, False, 7), TypeError,
     TAG + r"\.forward takes at most 8 positional arguments"),
    (None, lambda m, x, xp: m(x, x, x, None, key_padding_mask=None), TypeError,
     TAG + r"\.forward got multiple values for argument 'key_padding_mask'"),
    (None, lambda m, x, xp: m(x, x[:, :1, :], x[:, :1, :]), ValueError,
     TAG + r" expected query, key and value of one batch size \(axis 1\)"),
    (None, lambda m, x, xp: m(x, x, xp.astype(x, xp.float32)), TypeError,
     TAG + r" expected a float64 value to match its parameters, got float32"),
    (None, lambda m, x, xp: (m(x, x, x, need_weights=False), m.backward(x, x))[1], ValueError,
     TAG + r"\.backward got d_attn_weights, but its forward returned no weights \(need_weights=False\)"),
    (None, lambda m, x, xp: (m(x, x, x), m.backward(x[:, :1, :]))[1], ValueError,
     TAG + r"\.backward expected dy of shape \(3, 2, 4\)"),
])
def test_mha_errors(backend, make, call, kind, pattern):
    if make is not None:
        with pytest.raises(kind, match=pattern):
            make(backend)
        return
    m = xn.MultiheadAttention(4, 2, backend=backend, dtype="float64")
    x = backend.asarray(np.random.default_rng(0).standard_normal((3, 2, 4)))
    with pytest.raises(kind, match=pattern):
        call(m, x, backend.xp)


@pytest.mark.parametrize("ctor", [dict(embed_dim=6, num_heads=3, dropout=0.2, batch_first=True),
                                  dict(embed_dim=4, num_heads=2, bias=False, add_bias_kv=True, add_zero_attn=True,
                                       kdim=3, vdim=5)])
def test_mha_from_torch_to_torch_round_trip(torch, ctor):
    tm = torch.nn.MultiheadAttention(**ctor)
    m = xn.from_torch(tm)
    assert m.config() == {**dict(dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False, kdim=ctor["embed_dim"],
                                 vdim=ctor["embed_dim"], batch_first=False), **ctor}
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(host(m.state_dict()[k]), v.numpy())
    back = xn.to_torch(m)
    assert type(back) is torch.nn.MultiheadAttention
    for attr in ("embed_dim", "num_heads", "dropout", "kdim", "vdim", "batch_first", "add_zero_attn"):
        assert getattr(back, attr) == getattr(tm, attr), attr
    assert (back.in_proj_bias is None) == (tm.in_proj_bias is None) and (back.bias_k is None) == (tm.bias_k is None)
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k].numpy(), v.numpy())


def test_mha_initialisation_as_torch():
    m = xn.MultiheadAttention(64, 4, add_bias_kv=True, backend="numpy")
    w = host(m.in_proj_weight.data)
    bound = math.sqrt(6.0 / (64 + 3 * 64))  # xavier_uniform of (3E, E)
    assert w.shape == (192, 64) and np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.all(host(m.in_proj_bias.data) == 0.0) and np.all(host(m.out_proj.bias.data) == 0.0)
    assert abs(host(m.bias_k.data).std() - math.sqrt(2.0 / (64 + 64))) < 0.05  # xavier_normal of (1, 1, E)
    sep = xn.MultiheadAttention(4, 2, kdim=3, vdim=5, bias=False)
    assert [n for n, _ in sep.named_parameters()] == ["q_proj_weight", "k_proj_weight", "v_proj_weight",
                                                       "out_proj.weight"]


def test_mha_float_mask_of_another_precision_is_cast(backend):
    m = xn.MultiheadAttention(4, 2, backend=backend, dtype="float64")
    x = backend.asarray(np.random.default_rng(0).standard_normal((3, 2, 4)))
    mask = np.random.default_rng(1).standard_normal((3, 3))
    y64, w64 = m(x, x, x, attn_mask=backend.asarray(mask))
    y32, w32 = m(x, x, x, attn_mask=backend.asarray(mask, dtype="float32"))
    assert y32.dtype == x.dtype
    np.testing.assert_allclose(host(y32), host(y64), rtol=1e-6)
    m.clear_saved()


def test_docs_section_runs(tmp_path):
    """docs/sequences.md's "Attention's backward" section: its python blocks run and assert."""
    import pathlib

    from tests.conftest import run_markdown

    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "sequences.md").read_text()
    start = text.index("## Attention's backward")
    end = text.find("\n## ", start + 1)
    part = tmp_path / "attention.md"
    part.write_text(text[start:] if end < 0 else text[start:end])
    run_markdown(part, 3)
