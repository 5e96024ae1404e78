"""The transformer layers (issue 12) beyond the case table (tests/cases/transformer.py): masks
given by name (float, causal, the is_causal hint, padding), dropout in training, a longer
sequence, on every backend; parity with torch (same state dict) in float64 and float32 with
those masks; torch's nested-tensor zeros in eval; one gradient per positional argument; deep
copies; Transformer's init and causal mask; the errors; from_torch/to_torch round trips.
module_db's samples: tests/test_module_db.py (``-k Transformer``)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.testing import gradcheck
from tests.conftest import host

TOL = {"float64": 1e-10, "float32": 3e-5}
PARITY_PLACES = ["numpy", "array_api_strict:device1", "torch"]
NP = backends.get("numpy")


def on(be, a, dtype="float64"):
    """A numpy array on ``be``: floats in ``dtype``, booleans as they are."""
    return be.asarray(a, dtype=dtype if a.dtype.kind == "f" else None)


def causal(n):
    return np.triu(np.full((n, n), -np.inf), 1)


def padding(n, s, rng):
    """A boolean (N, S) key padding mask that keeps each row's first key."""
    m = rng.random((n, s)) < 0.4
    m[:, 0] = False
    return m


def enc_layer(be, dtype="float64", **kw):
    args = dict(d_model=4, nhead=2, dim_feedforward=6, dropout=0.0)
    return xn.TransformerEncoderLayer(**{**args, **kw}, backend=be, dtype=dtype)


def dec_layer(be, dtype="float64", **kw):
    args = dict(d_model=4, nhead=2, dim_feedforward=6, dropout=0.0)
    return xn.TransformerDecoderLayer(**{**args, **kw}, backend=be, dtype=dtype)


# -- gradchecks with masks by name, on every backend ---------------------------------------------------

def _encoder_cases(rng):
    x = rng.standard_normal((3, 2, 4))
    return [
        ("float-causal", dict(), x, {"src_mask": causal(3)}),
        ("is-causal-hint", dict(norm_first=True), x, {"src_mask": causal(3), "is_causal": True}),
        ("float-padding", dict(batch_first=True), rng.standard_normal((2, 3, 4)),
         {"src_key_padding_mask": np.where(padding(2, 3, rng), -1e9, 0.0), "src_mask": rng.standard_normal((3, 3))}),
        ("per-head-mask", dict(), x, {"src_mask": rng.standard_normal((4, 3, 3))}),
        ("unbatched-padding", dict(norm_first=True, bias=False), x[:, 0],
         {"src_key_padding_mask": padding(1, 3, rng)[0]}),
    ]


@pytest.mark.parametrize("which", range(5))
def test_encoder_layer_gradcheck_masks_by_name(backend, which):
    rng = np.random.default_rng(which)
    _, kw, x, masks = _encoder_cases(rng)[which]
    layer = enc_layer(backend, **kw)
    assert gradcheck(layer, on(backend, x), kwargs={k: on(backend, v) if isinstance(v, np.ndarray) else v
                                                     for k, v in masks.items()}, directions=2)


def test_decoder_layer_gradcheck_masks_by_name(backend):
    rng = np.random.default_rng(1)
    layer = dec_layer(backend, norm_first=False, batch_first=True)
    tgt, mem = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    masks = {"tgt_mask": causal(3), "memory_mask": rng.standard_normal((3, 5)), "tgt_is_causal": True,
             "memory_key_padding_mask": padding(2, 5, rng)}
    assert gradcheck(layer, on(backend, tgt), on(backend, mem), kwargs={k: on(backend, v) if isinstance(v, np.ndarray)
                                                                        else v for k, v in masks.items()}, directions=2)


def test_transformer_gradcheck_causal_and_padding(backend):
    rng = np.random.default_rng(2)
    net = xn.Transformer(4, 2, 1, 1, 4, 0.0, backend=backend, dtype="float64")
    src, tgt = rng.standard_normal((5, 2, 4)), rng.standard_normal((3, 2, 4))
    masks = {"tgt_mask": xn.Transformer.generate_square_subsequent_mask(3, backend, "float64"),
             "src_key_padding_mask": on(backend, padding(2, 5, rng)),
             "memory_key_padding_mask": on(backend, padding(2, 5, rng))}
    assert gradcheck(net, on(backend, src), on(backend, tgt), kwargs=masks, directions=1)


def test_dropout_in_training_and_a_longer_sequence(backend):
    """Dropout's masks are redrawn alike for every finite-difference forward (gradcheck resets
    the generator); T = 9 attends over more than the tables' 3 to 5 positions."""
    rng = np.random.default_rng(3)
    layer = enc_layer(backend, dropout=0.2, activation="gelu")
    assert gradcheck(layer, on(backend, rng.standard_normal((9, 2, 4))), kwargs={"src_mask": on(backend, causal(9))},
                     directions=1)


# -- parity with torch --------------------------------------------------------------------------------

def _torch_twin(torch, layer, module, dtype):
    module.to(getattr(torch, dtype))
    module.load_state_dict({k: torch.from_numpy(host(v)) for k, v in layer.state_dict().items()})
    return module.train(layer.training)


def _random_state(layer, seed):
    rng = np.random.default_rng(seed)
    layer.load_state_dict({k: host(v) + rng.standard_normal(tuple(v.shape)) * 0.3
                           for k, v in layer.state_dict().items()})
    return layer


def _parity(torch, layer, module, arrays, masks, be, dtype):
    """Outputs, input gradients and every parameter gradient equal torch's."""
    tol = TOL[dtype]
    xs = [on(be, a, dtype) for a in arrays]
    ts = [torch.from_numpy(a.astype(dtype)).requires_grad_(True) for a in arrays]
    y = layer(*xs, **{k: on(be, v, dtype) if isinstance(v, np.ndarray) else v for k, v in masks.items()})
    ty = module(*ts, **{k: torch.from_numpy(v.astype(dtype) if v.dtype.kind == "f" else v)
                        if isinstance(v, np.ndarray) else v for k, v in masks.items()})
    w = np.random.default_rng(0).standard_normal(tuple(ty.shape)).astype(dtype)
    grads = layer.backward(be.asarray(w))
    grads = grads if isinstance(grads, tuple) else (grads,)
    tparams = dict(module.named_parameters())
    names = [n for n, _ in layer.named_parameters()]
    tgrads = torch.autograd.grad(ty, ts + [tparams[n] for n in names], torch.from_numpy(w))
    pairs = [(y, ty, "output")] + [(g, tg, f"input {i}") for i, (g, tg) in enumerate(zip(grads, tgrads))]
    pairs += [(layer.get_parameter(n).grad, tg, n) for n, tg in zip(names, tgrads[len(ts):])]
    for ours, theirs, what in pairs:
        a, b = host(ours), theirs.detach().numpy()
        scale = max(float(np.max(np.abs(b))), 1e-3)
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale, err_msg=what)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("place", PARITY_PLACES)
def test_encoder_layer_parity_with_float_masks(torch, place, dtype):
    be = backends.get(place)
    rng = np.random.default_rng(4)
    layer = _random_state(enc_layer(be, dtype, batch_first=True, norm_first=True, activation="gelu"), 5)
    module = _torch_twin(torch, layer, torch.nn.TransformerEncoderLayer(4, 2, 6, 0.0, "gelu", batch_first=True,
                                                                        norm_first=True), dtype)
    masks = {"src_mask": causal(4), "src_key_padding_mask": np.where(padding(2, 4, rng), -np.inf, 0.0)}
    _parity(torch, layer, module, [rng.standard_normal((2, 4, 4))], masks, be, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("place", PARITY_PLACES)
def test_transformer_parity_causal(torch, place, dtype):
    be = backends.get(place)
    rng = np.random.default_rng(6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "enable_nested_tensor is True, but ..."
        module = torch.nn.Transformer(4, 2, 2, 1, 6, 0.0)
    net = _random_state(xn.Transformer(4, 2, 2, 1, 6, 0.0, backend=be, dtype=dtype), 7)
    module = _torch_twin(torch, net, module, dtype)
    masks = {"tgt_mask": causal(3), "src_key_padding_mask": padding(2, 5, rng), "tgt_is_causal": True}
    _parity(torch, net, module, [rng.standard_normal((5, 2, 4)), rng.standard_normal((3, 2, 4))], masks, be, dtype)


def test_a_sequence_of_padding_only_as_torch(torch):
    """Every key of the second sequence padding: torch's training path gives finite values
    (attention weights 0), and so does xpnet, gradients included."""
    layer = _random_state(enc_layer(NP, batch_first=True), 13)
    module = _torch_twin(torch, layer, torch.nn.TransformerEncoderLayer(4, 2, 6, 0.0, batch_first=True), "float64")
    pad = np.array([[False, False, True], [True, True, True]])
    _parity(torch, layer, module, [np.random.default_rng(14).standard_normal((2, 3, 4))],
            {"src_key_padding_mask": pad}, NP, "float64")


def test_training_steps_match_torch(torch):
    """Three Adam steps of an encoder stack and a head, float64, against torch's. (The key bias's
    gradient is zero in exact arithmetic, softmax ignoring a shift of every score of a query:
    Adam scales its rounding noise up to ~1e-10, hence the absolute tolerance.)"""
    rng = np.random.default_rng(8)
    layer = enc_layer(NP, batch_first=True)
    net = xn.Sequential(xn.TransformerEncoder(layer, 2, xn.LayerNorm(4, dtype="float64")),
                        xn.Linear(4, 3, dtype="float64"))
    nn = torch.nn
    tnet = nn.Sequential(nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 6, 0.0, batch_first=True), 2,
                                               nn.LayerNorm(4), enable_nested_tensor=False), nn.Linear(4, 3))
    _torch_twin(torch, net, tnet, "float64")
    opt, topt = xn.Adam(net, lr=1e-2), torch.optim.Adam(tnet.parameters(), lr=1e-2)
    x, w = rng.standard_normal((3, 5, 4)), rng.standard_normal((3, 5, 3))
    for _ in range(3):
        opt.zero_grad()
        net(NP.asarray(x))
        net.backward(NP.asarray(w), input_grad=False)
        opt.step()
        topt.zero_grad()
        (tnet(torch.from_numpy(x)) * torch.from_numpy(w)).sum().backward()
        topt.step()
    for k, v in tnet.state_dict().items():
        np.testing.assert_allclose(host(net.state_dict()[k]), v.numpy(), rtol=1e-9, atol=1e-8, err_msg=k)


# -- torch's behaviours ----------------------------------------------------------------------------

@pytest.mark.parametrize("aligned, mask_check", [(True, True), (False, True), (False, False)])
def test_eval_no_grad_encoder_zeroes_padded_positions_as_torch(torch, aligned, mask_check):
    """torch's nested-tensor path (eval, no grad, a padding mask, a qualifying layer): 0 at the
    padded positions before the final norm, when every row's padding is at its end; without
    mask_check, the mask read as lengths."""
    rng = np.random.default_rng(9)
    layer = _random_state(enc_layer(NP, batch_first=True), 10)
    net = xn.TransformerEncoder(layer, 2, xn.LayerNorm(4, dtype="float64"), mask_check=mask_check).eval()
    assert net.use_nested_tensor
    tnet = _torch_twin(torch, net, torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(
        4, 2, 6, 0.0, batch_first=True), 2, torch.nn.LayerNorm(4), mask_check=mask_check), "float64")
    x = rng.standard_normal((3, 4, 4))
    pad = np.array([[False, False, True, True], [False, False, False, True], [False] * 4])
    if not aligned:
        pad[2, 1] = True
    with xn.no_grad():
        y = host(net(NP.asarray(x), src_key_padding_mask=NP.asarray(pad)))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "The PyTorch API of nested tensors is in prototype stage"
        ty = tnet(torch.from_numpy(x), src_key_padding_mask=torch.from_numpy(pad)).numpy()
    np.testing.assert_allclose(y, ty, rtol=1e-10, atol=1e-12)
    bias = host(net.norm.bias.data)
    zeroed = pad if mask_check else np.arange(4)[None, :] >= (~pad).sum(axis=1)[:, None]
    assert np.allclose(y[zeroed], bias) == (aligned or not mask_check)  # norm(0) = its bias
    y_grad = host(net(NP.asarray(x), src_key_padding_mask=NP.asarray(pad)))  # grad enabled: torch's full path
    net.clear_saved()
    assert not np.allclose(y_grad[pad], bias)


def test_use_nested_tensor_follows_torch(torch):
    def pair(**kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(4, 2, 6, **kw), 1)
        ours = xn.TransformerEncoder(xn.TransformerEncoderLayer(4, 2, 6, **kw), 1)
        return ours.use_nested_tensor, t.use_nested_tensor

    for kw in ({"batch_first": True}, {}, {"batch_first": True, "norm_first": True},
               {"batch_first": True, "bias": False}, {"batch_first": True, "activation": "gelu"}):
        ours, theirs = pair(**kw)
        assert ours == theirs, kw


def test_generate_square_subsequent_mask(torch, backend):
    m = xn.Transformer.generate_square_subsequent_mask(4, backend, "float64")
    np.testing.assert_array_equal(host(m), torch.nn.Transformer.generate_square_subsequent_mask(4, dtype=torch.float64))
    assert xn.Transformer.generate_square_subsequent_mask(3).dtype == backends.get().dtype("float32")


def test_transformer_init_is_xavier_uniform():
    net = xn.Transformer(16, 2, 1, 1, 48, backend="numpy")
    for name, p in net.named_parameters():
        a = host(p.data)
        if a.ndim > 1:
            bound = math.sqrt(6.0 / sum(a.shape[:2]))
            assert np.abs(a).max() <= bound and np.abs(a).max() > 0.8 * bound, name
    assert np.all(host(net.encoder.norm.weight.data) == 1)


# -- the contract ------------------------------------------------------------------------------------

def test_one_gradient_per_positional_argument():
    rng = np.random.default_rng(11)
    layer = enc_layer(NP)
    x, m = NP.asarray(rng.standard_normal((3, 2, 4))), NP.asarray(causal(3))
    layer(x)
    assert layer.backward(NP.xp.ones_like(x)).shape == x.shape
    layer(x, m)
    dx, dm = layer.backward(NP.xp.ones_like(x))
    assert dm is None and dx.shape == x.shape
    layer(x, m, None, True)
    assert len(layer.backward(NP.xp.ones_like(x))) == 4
    layer(x, src_mask=m)
    assert layer.backward(NP.xp.ones_like(x), input_grad=False) is None
    dec = xn.TransformerDecoder(dec_layer(NP), 2)
    y = dec(x, x, m)
    assert [g is None for g in dec.backward(NP.xp.ones_like(y))] == [False, False, True]
    assert all(child.pending == 0 for _, child in dec.named_modules())


def test_stacks_are_deep_copies():
    proto = enc_layer(NP)
    stack = xn.TransformerEncoder(proto, 3)
    ws = [layer.linear1.weight for layer in stack.layers]
    assert len({id(w) for w in ws}) == 3 and all(w is not proto.linear1.weight for w in ws)
    assert all(np.array_equal(host(w.data), host(proto.linear1.weight.data)) for w in ws)
    assert list(stack.state_dict())[:2] == ["layers.0.self_attn.in_proj_weight", "layers.0.self_attn.in_proj_bias"]
    assert len(stack.parameters()) == 3 * len(proto.parameters())


def test_state_dict_names_are_torchs(torch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torch.nn.Transformer(8, 2, 2, 1, 16, bias=False)
    ours = xn.Transformer(8, 2, 2, 1, 16, bias=False)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]


def test_spec_round_trip_with_custom_parts():
    enc = xn.TransformerEncoder(xn.TransformerEncoderLayer(4, 2, 6, activation=xn.GELU(approximate="tanh")), 2)
    net = xn.Transformer(4, 2, dim_feedforward=6, custom_encoder=enc, batch_first=True)
    spec = xn.nets.spec.layer_spec(net)
    assert spec["custom_encoder"]["encoder_layer"]["activation"] == {"type": "GELU", "approximate": "tanh"}
    assert spec["custom_decoder"] is None and spec["num_decoder_layers"] == 6
    back = xn.nets.spec.build(spec)
    assert xn.nets.spec.layer_spec(back) == spec and list(back.state_dict()) == list(net.state_dict())


# -- errors ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, error, pattern", [
    (lambda: xn.TransformerEncoderLayer(6, 4), ValueError,
     r"TransformerEncoderLayer: d_model \(6\) must be divisible by nhead \(4\)"),
    (lambda: xn.TransformerDecoderLayer(4, 2, activation="tanh"), ValueError,
     r"TransformerDecoderLayer: activation must be one of \('relu', 'gelu'\), got 'tanh'"),
    (lambda: xn.TransformerEncoderLayer(4, 2, activation=abs), TypeError,
     r"TransformerEncoderLayer: activation must be 'relu', 'gelu' or an xpnet Layer \(a function has no backward\), "
     r"got builtin_function_or_method"),
    (lambda: xn.TransformerEncoderLayer(4, 2, dropout=1.0), ValueError,
     r"TransformerEncoderLayer: dropout must be a probability"),
    (lambda: xn.TransformerEncoderLayer(4, 2, batch_first=1), ValueError,
     r"TransformerEncoderLayer: batch_first must be True or False"),
    (lambda: xn.TransformerEncoder(xn.TransformerEncoderLayer(4, 2), 0), ValueError,
     r"TransformerEncoder: num_layers must be a positive int, got 0"),
    (lambda: xn.TransformerDecoder("layer", 2), TypeError,
     r"TransformerDecoder: the layer to stack must be an xpnet Layer, got str"),
    (lambda: xn.TransformerEncoder(xn.TransformerEncoderLayer(4, 2), 1, norm="LayerNorm"), TypeError,
     r"TransformerEncoder: norm must be an xpnet Layer"),
    (lambda: xn.Transformer(4, 2, custom_decoder=3), TypeError,
     r"Transformer: custom_decoder must be an xpnet Layer or None, got int"),
    (lambda: xn.Transformer(4, 3), ValueError, r"Transformer: d_model \(4\) must be divisible by nhead \(3\)"),
    (lambda: xn.Transformer.generate_square_subsequent_mask(-1), ValueError,
     r"Transformer.generate_square_subsequent_mask: sz must be an int >= 0, got -1"),
])
def test_constructor_errors(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_forward_errors():
    x = NP.asarray(np.ones((3, 2, 4)))
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer\(d_model=4, nhead=2\): is_causal=True is a hint "
                                         r"that src_mask is the causal mask, and needs that mask"):
        enc_layer(NP)(x, is_causal=True)
    with pytest.raises(ValueError, match=r"TransformerDecoder\(num_layers=1\): tgt_is_causal=True is a hint"):
        xn.TransformerDecoder(dec_layer(NP), 1)(x, x, tgt_is_causal=True)
    with pytest.raises(ValueError, match=r"TransformerDecoderLayer\(d_model=4, nhead=2\) expected tgt of shape "
                                         r"\(S, 4\) or \(N, S, 4\), got \(3, 2, 5\)"):
        dec_layer(NP, batch_first=True)(NP.asarray(np.ones((3, 2, 5))), x)
    with pytest.raises(ValueError, match=r"MultiheadAttention\(embed_dim=4, num_heads=2\) expected attn_mask of shape"):
        enc_layer(NP)(x, NP.asarray(np.zeros((2, 2), dtype=bool)))
    with pytest.raises(TypeError, match=r"TransformerEncoderLayer\(d_model=4, nhead=2\) expected its src to be an "
                                        r"array"):
        enc_layer(NP)([[1.0] * 4])
    layer = enc_layer(NP)
    with pytest.raises(RuntimeError, match=r"TransformerEncoderLayer.*backward was called before forward"):
        layer.backward(x)


# -- interop -----------------------------------------------------------------------------------------

def _torch_modules(torch):
    F = torch.nn.functional
    nn = torch.nn
    return [
        nn.TransformerEncoderLayer(4, 2, 6, 0.0, F.gelu, batch_first=True, norm_first=True, bias=False),
        nn.TransformerDecoderLayer(4, 2, 6, 0.1, nn.GELU("tanh")),
        nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 6, 0.0), 3, nn.LayerNorm(4), enable_nested_tensor=False),
        nn.TransformerDecoder(nn.TransformerDecoderLayer(4, 2, 6, 0.0, batch_first=True), 2),
        nn.Transformer(4, 2, 1, 2, 6, 0.0),
    ]


def test_from_torch_and_back(torch):
    rng = np.random.default_rng(12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        modules = [m.double().eval() for m in _torch_modules(torch)]
    for t in modules:
        net = xn.from_torch(t, backend="numpy")
        assert type(net).__name__ == type(t).__name__
        assert not net.training
        two = type(net).__name__ in ("TransformerDecoderLayer", "TransformerDecoder", "Transformer")
        arrays = [rng.standard_normal((3, 2, 4))] + ([rng.standard_normal((3, 2, 4))] if two else [])
        y = host(net(*[NP.asarray(a) for a in arrays]))
        with torch.no_grad():
            np.testing.assert_allclose(y, t(*[torch.from_numpy(a) for a in arrays]).numpy(), rtol=1e-10, atol=1e-12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch: "enable_nested_tensor is True, but ..."
            back = xn.to_torch(net)
        assert type(back) is type(t)
        sd = back.state_dict()
        assert list(sd) == list(t.state_dict()) and all(torch.equal(v, t.state_dict()[k]) for k, v in sd.items())
    layer = xn.from_torch(modules[0])
    assert layer.config()["activation"] == "gelu" and type(layer.activation).__name__ == "GELU"
    assert xn.from_torch(modules[1]).activation.approximate == "tanh"


def test_a_layer_activation_survives_a_checkpoint(tmp_path):
    """A layer given as the activation is walked as a child by the checkpoint loader."""
    from xpnet.nets import checkpoint

    net = xn.Sequential(xn.TransformerEncoderLayer(8, 2, 16, 0.0, activation=xn.GELU(approximate="tanh"), batch_first=True))
    checkpoint.save(tmp_path / "m.xpnet", net)
    back = checkpoint.load(tmp_path / "m.xpnet").net
    x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype("float32")
    assert repr(back[0].activation) == "GELU(approximate='tanh')"
    np.testing.assert_array_equal(np.asarray(back.eval()(x)), np.asarray(net.eval()(x)))
