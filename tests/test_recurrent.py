"""RNN, LSTM, GRU and their cells beyond the case table (tests/cases/recurrent.py, which runs the
gradcheck, torch parity, spec, error and contract tests of every backend): states given by
keyword, gradients of only some outputs, frozen weights, parity of every output and both state
gradients, the skipped work of ``input_grad=False``, dropout between layers, cells chained by hand
against the sequence layer, constructor and input errors, repr, state dicts and interop."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.testing import gradcheck
from tests.conftest import host


def _on(be, make):
    with backends.use(be):
        return make().to(dtype="float64")


def _arrays(be, rng, *shapes):
    return [be.asarray(rng.standard_normal(s)) for s in shapes]


# -- gradients: more forms than the table's ------------------------------------------------------

def test_gradcheck_state_by_keyword_gets_no_gradient(backend):
    rng = np.random.default_rng(0)
    lstm = _on(backend, lambda: xn.LSTM(2, 3, bidirectional=True, proj_size=2))
    x, h0, c0 = _arrays(backend, rng, (3, 2, 2), (2, 2, 2), (2, 2, 3))
    assert gradcheck(lstm, x, kwargs={"hx": (h0, c0)})
    dx = lstm.backward(*_cotangents(backend, rng, lstm(x, hx=(h0, c0))))
    assert not isinstance(dx, tuple) and tuple(dx.shape) == (3, 2, 2)


def test_gradcheck_frozen_weights_and_none_state(backend):
    rng = np.random.default_rng(1)
    gru = _on(backend, lambda: xn.GRU(2, 3, 2, batch_first=True))
    gru.weight_hh_l0.requires_grad_(False)
    gru.bias_ih_l1.requires_grad_(False)
    (x,) = _arrays(backend, rng, (2, 5, 2))
    assert gradcheck(gru, x, None)  # hx None given positionally: its gradient is None
    gru(x, None)
    dx, dh0 = gru.backward(be_normal(backend, rng, (2, 5, 3)), None)
    assert dh0 is None and gru.weight_hh_l0.grad is None and gru.bias_ih_l1.grad is None


def be_normal(be, rng, shape):
    return be.asarray(rng.standard_normal(shape))


def _cotangents(be, rng, out):
    """One random cotangent per output, in the outputs' structure."""
    if isinstance(out, tuple):
        return tuple(_cotangents(be, rng, o) for o in out)
    return be_normal(be, rng, tuple(out.shape))


# -- parity with torch: every output, both states' gradients, partial cotangents ------------------

PARITY = [
    ("LSTM", dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True, proj_size=2), (5, 2, 3),
     ((4, 2, 2), (4, 2, 4))),
    ("LSTM", dict(input_size=3, hidden_size=4, batch_first=True), (2, 5, 3), ((1, 2, 4), (1, 2, 4))),
    ("GRU", dict(input_size=3, hidden_size=4, num_layers=3, bidirectional=True), (6, 3), (6, 4)),
    ("RNN", dict(input_size=3, hidden_size=4, num_layers=2, nonlinearity="relu", batch_first=True), (2, 6, 3),
     (2, 2, 4)),
]


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 2e-5)])
@pytest.mark.parametrize("which", ["all", "output", "state"])
@pytest.mark.parametrize("kind,kw,xshape,sshape", PARITY, ids=[f"{p[0]}-{i}" for i, p in enumerate(PARITY)])
def test_parity_with_torch(torch, kind, kw, xshape, sshape, which, dtype, tol):
    """Outputs and the gradients of the input, both states and every weight, with the output's
    gradient only, the states' only (for LSTM: d_h_n only), or all; float64 and float32."""
    rng = np.random.default_rng(2)
    lstm = kind == "LSTM"
    layer = getattr(xn, kind)(**kw, backend="numpy", dtype=dtype)
    module = getattr(torch.nn, kind)(**kw).to(getattr(torch, dtype))
    module.load_state_dict({k: torch.from_numpy(host(v)) for k, v in layer.state_dict().items()})
    x = rng.standard_normal(xshape).astype(dtype)
    states = [rng.standard_normal(s).astype(dtype) for s in (sshape if lstm else (sshape,))]
    tx, ts = torch.from_numpy(x).requires_grad_(), [torch.from_numpy(s).requires_grad_() for s in states]
    out, st = layer(x, tuple(states) if lstm else states[0])
    tout, tst = module(tx, tuple(ts) if lstm else ts[0])
    ours, theirs = [out] + (list(st) if lstm else [st]), [tout] + (list(tst) if lstm else [tst])
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=tol, atol=tol * float(b.detach().abs().max()))
    cts = [rng.standard_normal(a.shape).astype(dtype) for a in ours]
    use = {"all": [0, 1, 2], "output": [0], "state": [1]}[which]
    given = [c if i in use else None for i, c in enumerate(cts)]
    if lstm:
        grads = layer.backward(given[0], None if given[1] is None and given[2] is None else (given[1], given[2]))
        dx, (dh0, dc0) = grads
        mine = [dx, dh0, dc0]
    else:
        dx, dh0 = layer.backward(given[0], given[1])
        mine = [dx, dh0]
    wrt = [tx] + ts + list(module.parameters())
    touts = [t for t, g in zip(theirs, given) if g is not None]
    tcts = [torch.from_numpy(g) for g in given if g is not None]
    tgrads = torch.autograd.grad(touts, wrt, tcts, allow_unused=True)
    mine += [p.grad for p in layer.parameters()]
    assert len(mine) == len(tgrads)
    for a, b, name in zip(mine, tgrads, ["x"] + ["h0", "c0"][:len(ts)] + [n for n, _ in layer.named_parameters()]):
        b = np.zeros(a.shape, dtype) if b is None else b.numpy()
        assert a.dtype == b.dtype, name
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(float(np.abs(b).max()), 1e-3), err_msg=name)


def test_lstm_cell_gradient_alone(torch):
    """LSTMCell.backward(None, dc): only c' has a gradient."""
    rng = np.random.default_rng(3)
    cell = xn.LSTMCell(3, 4, backend="numpy", dtype="float64")
    module = torch.nn.LSTMCell(3, 4).double()
    module.load_state_dict({k: torch.from_numpy(host(v)) for k, v in cell.state_dict().items()})
    x, h, c = (rng.standard_normal(s) for s in ((2, 3), (2, 4), (2, 4)))
    tx, th, tc = (torch.from_numpy(a).requires_grad_() for a in (x, h, c))
    cell(x, (h, c))
    _, tc1 = module(tx, (th, tc))
    dc = rng.standard_normal((2, 4))
    dx, (dh, dc0) = cell.backward(None, dc)
    want = torch.autograd.grad(tc1, [tx, th, tc], torch.from_numpy(dc))
    for a, b in zip((dx, dh, dc0), want):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-12)


# -- the contract -------------------------------------------------------------------------------

def test_what_backward_returns():
    rng = np.random.default_rng(4)
    lstm = xn.LSTM(2, 3, backend="numpy", dtype="float64")
    x = rng.standard_normal((4, 2, 2))
    out, (h, c) = lstm(x)
    assert tuple(lstm.backward(np.ones_like(out)).shape) == (4, 2, 2)  # no hx given: dx alone
    lstm(x, None)
    dx, dstate = lstm.backward(np.ones_like(out))
    assert dstate is None
    lstm(x, (h, c))
    dx, (dh0, dc0) = lstm.backward(None, (None, np.ones_like(c)))
    assert dh0.shape == h.shape and dc0.shape == c.shape
    lstm(x, (h, c))
    assert lstm.backward(None, None) is None  # nothing reaches it: pops, returns None
    assert lstm.pending == 0
    lstm(x, (h, c))
    lstm.zero_grad()
    assert lstm.backward(np.ones_like(out), input_grad=False) is None
    assert all(p.grad is not None for p in lstm.parameters())
    with xn.no_grad():
        lstm(x)
    assert lstm.pending == 0
    with pytest.raises(RuntimeError, match=r"LSTM\(2, 3\)\.backward was called before forward"):
        lstm.backward(np.ones_like(out))


def test_skipped_work_gives_the_same_weight_gradients():
    """input_grad=False with the first layer frozen skips that layer's backward entirely; the
    second layer's gradients do not change."""
    rng = np.random.default_rng(5)
    x, dy = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 8))
    full = xn.GRU(3, 4, 2, bidirectional=True, backend="numpy", dtype="float64")
    part = xn.GRU(3, 4, 2, bidirectional=True, backend="numpy", dtype="float64")
    part.load_state_dict(full.state_dict())
    for name, p in part.named_parameters():
        if "_l0" in name:
            p.requires_grad_(False)
    full(x)
    full.backward(dy)
    part(x)
    assert part.backward(dy, input_grad=False) is None
    for name, p in part.named_parameters():
        if "_l0" in name:
            assert p.grad is None
        else:
            np.testing.assert_allclose(p.grad, full.get_parameter(name).grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_cells_chained_by_hand_equal_the_sequence_layer(kind):
    """T calls of the cell, then T backward calls in reverse order, give the sequence layer's
    outputs and gradients (the cells run the same steps)."""
    rng = np.random.default_rng(6)
    seq = getattr(xn, kind)(3, 4, backend="numpy", dtype="float64")
    cell = getattr(xn, kind + "Cell")(3, 4, backend="numpy", dtype="float64")
    cell.load_state_dict({k[:-3]: v for k, v in seq.state_dict().items()})
    lstm = kind == "LSTM"
    x, dy = rng.standard_normal((6, 2, 3)), rng.standard_normal((6, 2, 4))
    h0 = [rng.standard_normal((2, 4)) for _ in range(2 if lstm else 1)]
    out, _ = seq(x, tuple(a[None] for a in h0) if lstm else h0[0][None])
    seq_dx = seq.backward(dy)[0]  # hx given positionally: (dx, state gradient)
    state, hs = tuple(h0) if lstm else h0[0], []
    for t in range(6):
        state = cell(x[t], state)
        hs.append(state[0] if lstm else state)
    np.testing.assert_allclose(np.stack(hs), out, rtol=1e-12)
    dh, dc, dxs = np.zeros((2, 4)), np.zeros((2, 4)), []
    for t in range(5, -1, -1):
        if lstm:
            dx, (dh, dc) = cell.backward(dh + dy[t], dc)
        else:
            dx, dh = cell.backward(dh + dy[t])
        dxs.append(dx)
    np.testing.assert_allclose(np.stack(dxs[::-1]), seq_dx, rtol=1e-10, atol=1e-12)
    for name, p in cell.named_parameters():
        np.testing.assert_allclose(p.grad, seq.get_parameter(name + "_l0").grad, rtol=1e-10, atol=1e-12)


# -- dropout between layers -------------------------------------------------------------------

def test_dropout_acts_between_layers_in_training_only():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 3, 2))
    lstm = xn.LSTM(2, 3, 2, dropout=1.0, backend="numpy", dtype="float64")
    top = xn.LSTM(3, 3, backend="numpy", dtype="float64")
    top.load_state_dict({k.replace("_l1", "_l0"): v for k, v in lstm.state_dict().items() if "_l1" in k})
    out, (h, c) = lstm(x)  # dropout 1: the second layer reads zeros, and its output is not dropped
    ref, (hr, cr) = top(np.zeros((4, 3, 3)))
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    np.testing.assert_allclose(h[1], hr[0], rtol=1e-12)
    lstm.eval()
    same = xn.LSTM(2, 3, 2, backend="numpy", dtype="float64")
    same.load_state_dict(lstm.state_dict())
    np.testing.assert_array_equal(lstm(x)[0], same(x)[0])
    with pytest.warns(UserWarning, match=r"GRU: dropout=0\.2 applies between layers .* num_layers=1"):
        xn.GRU(2, 3, dropout=0.2)


def test_dropout_masks_come_from_the_backend_generator(backend):
    gru = _on(backend, lambda: xn.GRU(2, 3, 2, dropout=0.5))
    x = be_normal(backend, np.random.default_rng(8), (5, 2, 2))
    backend.manual_seed(3)
    a = host(gru(x)[0])
    backend.manual_seed(3)
    b = host(gru(x)[0])
    c = host(gru(x)[0])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    gru.clear_saved()


# -- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,kind,pattern", [
    (lambda: xn.LSTM(3, 4, proj_size=4), ValueError, r"LSTM: proj_size must be smaller than hidden_size \(4\), got 4"),
    (lambda: xn.LSTM(3, 4, proj_size=-1), ValueError, r"LSTM: proj_size must be an int >= 0, got -1"),
    (lambda: xn.RNN(3, 4, nonlinearity="sigmoid"), ValueError,
     r"RNN: nonlinearity must be one of \('tanh', 'relu'\), got 'sigmoid'"),
    (lambda: xn.GRU(3, 0), ValueError, r"GRU: hidden_size must be a positive int, got 0"),
    (lambda: xn.GRU(3, 4, num_layers=0), ValueError, r"GRU: num_layers must be a positive int, got 0"),
    (lambda: xn.RNN(3, 4, 2, dropout=1.5), ValueError, r"RNN: dropout must be a probability in \[0, 1\], got 1\.5"),
    (lambda: xn.LSTM(3, 4, bidirectional=1), ValueError, r"LSTM: bidirectional must be True or False, got 1"),
    (lambda: xn.RNNCell(3, 4, nonlinearity="gelu"), ValueError, r"RNNCell: nonlinearity must be one of"),
    (lambda: xn.LSTMCell(0, 4), ValueError, r"LSTMCell: input_size must be a positive int, got 0"),
])
def test_constructor_errors(make, kind, pattern):
    with pytest.raises(kind, match=pattern):
        make()


def test_input_and_state_errors():
    rng = np.random.default_rng(9)
    lstm = xn.LSTM(3, 4, 2, backend="numpy", dtype="float64")
    x = rng.standard_normal((5, 2, 3))
    tag = r"LSTM\(3, 4, num_layers=2\)"
    with pytest.raises(ValueError, match=tag + r" expected input of shape \(T, N, 3\), or \(3,\) per step unbatched: "
                                               r"\(T, 3\), got \(5, 2, 3, 1\)"):
        lstm(x[..., None])
    with pytest.raises(TypeError, match=tag + r" expected hx to be a tuple \(h0, c0\) of two arrays, got ndarray"):
        lstm(x, np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match=tag + r" expected c0 of shape \(2, 2, 4\) \(num_layers \* num_directions, "
                                               r"batch, hidden_size\) for the batched input of shape \(5, 2, 3\), "
                                               r"got \(2, 4\)"):
        lstm(x, (np.zeros((2, 2, 4)), np.zeros((2, 4))))
    with pytest.raises(TypeError, match=tag + r" expected a float64 h0 to match its parameters, got float32"):
        lstm(x, (np.zeros((2, 2, 4), np.float32), np.zeros((2, 2, 4))))
    with pytest.raises(TypeError, match=tag + r" expected its h0 to be an array .*, got list"):
        lstm(x, ([0.0], np.zeros((2, 2, 4))))
    with pytest.raises(TypeError, match=tag + r"\.forward takes \(input, hx=None\), got 3 positional arguments"):
        lstm(x, None, None)
    with pytest.raises(TypeError, match=tag + r"\.forward got hx both positionally and as a keyword"):
        lstm(x, None, hx=(np.zeros((2, 2, 4)), np.zeros((2, 2, 4))))
    out, _ = lstm(x)
    with pytest.raises(TypeError, match=tag + r"\.backward expected d_state to be None or a pair \(d_h_n, d_c_n\), "
                                          r"got ndarray"):
        lstm.backward(out, np.zeros((2, 2, 4)))
    lstm(x)
    with pytest.raises(ValueError, match=tag + r"\.backward expected dy of shape \(2, 2, 4\) .*, got \(2, 4\)"):
        lstm.backward(out, (np.zeros((2, 4)), None))


def test_place_errors():
    strict = backends.get("array_api_strict:device1")
    gru = xn.GRU(3, 4, backend=strict, dtype="float64")
    x = strict.asarray(np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"GRU\(3, 4\) got its input on numpy but its parameters are on "
                                         r"array_api_strict:device1"):
        gru(np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"GRU\(3, 4\) got its h0 on numpy but its parameters are on "
                                         r"array_api_strict:device1"):
        gru(x, np.zeros((1, 2, 4)))


# -- layout, names, repr, interop --------------------------------------------------------------

CONFIGS = [
    ("RNN", dict(input_size=3, hidden_size=4)),
    ("RNN", dict(input_size=3, hidden_size=4, num_layers=2, nonlinearity="relu", bias=False, batch_first=True,
                 dropout=0.5, bidirectional=True)),
    ("GRU", dict(input_size=2, hidden_size=5, num_layers=3, bidirectional=True)),
    ("LSTM", dict(input_size=3, hidden_size=5, num_layers=2, proj_size=2, bidirectional=True, dropout=0.25)),
    ("LSTM", dict(input_size=3, hidden_size=4, bias=False)),
    ("RNNCell", dict(input_size=3, hidden_size=4, nonlinearity="relu")),
    ("LSTMCell", dict(input_size=3, hidden_size=4, bias=False)),
    ("GRUCell", dict(input_size=3, hidden_size=4)),
]


@pytest.mark.parametrize("kind,kw", CONFIGS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CONFIGS)])
def test_names_shapes_repr_init_and_interop(torch, kind, kw):
    layer = getattr(xn, kind)(**kw, backend="numpy")
    module = getattr(torch.nn, kind)(**kw)
    assert repr(layer) == repr(module)
    assert [(k, tuple(v.shape)) for k, v in layer.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in module.state_dict().items()]
    bound = 1.0 / np.sqrt(kw["hidden_size"])
    assert all(float(np.max(np.abs(host(p.data)))) <= bound for p in layer.parameters())
    back = xn.from_torch(module)
    assert type(back) is type(layer) and back.config() == layer.config()
    for k, v in module.state_dict().items():
        np.testing.assert_array_equal(host(back.state_dict()[k]), v.numpy())
    again = xn.to_torch(layer)
    assert repr(again) == repr(module)
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[k].numpy(), host(v))
