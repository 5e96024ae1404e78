"""The tiny GPT and the LSTM language model of xpnet.examples: gradients, torch parity, the tied
head, causality, generation (greedy, temperature, top-k), the token loss and accuracy, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.examples.gpt import GPT
from xpnet.examples.seq_lstm import SeqLSTM
from xpnet.examples.tokens import SequenceAccuracy, TokenCrossEntropyLoss
from xpnet.testing import gradcheck
from tests.conftest import host

TINY = dict(n_layer=2, n_head=2, n_embd=8)


def _tokens(be, shape, V, seed=0):
    return be.asarray(np.random.default_rng(seed).integers(0, V, size=shape), dtype="int64")


@pytest.mark.parametrize("spec, tie", [("numpy", False), ("numpy", True), ("array_api_strict:device1", True)])
def test_gpt_gradcheck(spec, tie):
    be = backends.get(spec)
    be.manual_seed(0)
    # one block: the stacking of blocks is checked against torch below
    net = GPT(5, 6, n_layer=1, n_head=2, n_embd=8, tie_weights=tie, backend=be, dtype="float64")
    assert gradcheck(net, _tokens(be, (2, 5), 5), directions=2)


@pytest.mark.parametrize("spec", ["numpy", "array_api_strict:device1"])
def test_lstm_model_gradcheck(spec):
    be = backends.get(spec)
    be.manual_seed(0)
    net = SeqLSTM(5, 4, 6, num_layers=2, backend=be, dtype="float64")
    assert gradcheck(net, _tokens(be, (3, 4), 5), directions=2)


def test_tied_head_is_one_parameter_and_survives_a_checkpoint(tmp_path):
    net = GPT(7, 8, **TINY, tie_weights=True)
    assert net.head.weight is net.wte.weight
    assert net.tied_parameters() == [["wte.weight", "head.weight"]]
    untied = GPT(7, 8, **TINY)
    assert len(net.parameters()) == len(untied.parameters()) - 1
    path = tmp_path / "gpt.xpnet"
    xn.save(path, net, xn.Adam(net, lr=1e-3), loss=TokenCrossEntropyLoss())
    ck = xn.load(path)
    assert type(ck.net) is GPT and ck.net.head.weight is ck.net.wte.weight
    assert isinstance(ck.loss, TokenCrossEntropyLoss) and ck.loss.ignore_index == -1
    idx = _tokens(backends.get("numpy"), (2, 8), 7)
    with xn.no_grad():
        assert np.array_equal(host(ck.net(idx)), host(net(idx)))


def _torch_twin(torch, net):
    """minGPT's model in torch.nn, with ``net``'s weights (float64)."""
    nn = torch.nn
    V, B, L, E = net.vocab_size, net.block_size, net.n_layer, net.n_embd

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(V, E), nn.Embedding(B, E)
            self.blocks = nn.ModuleList(nn.TransformerEncoderLayer(E, net.n_head, 4 * E, 0.0, activation="gelu",
                                                                   batch_first=True, norm_first=True)
                                        for _ in range(L))
            self.ln_f, self.head = nn.LayerNorm(E), nn.Linear(E, V, bias=False)

        def forward(self, idx):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(T))
            mask = nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64)
            for b in self.blocks:
                x = b(x, src_mask=mask, is_causal=True)
            return self.head(self.ln_f(x))

    twin = TorchGPT().double()
    twin.load_state_dict({k: torch.tensor(host(v)) for k, v in net.state_dict().items()})
    return twin


def test_gpt_matches_the_same_model_in_torch(torch):
    net = GPT(6, 7, n_layer=2, n_head=2, n_embd=8, dtype="float64")
    twin = _torch_twin(torch, net)
    idx = np.random.default_rng(1).integers(0, 6, size=(3, 7))
    y = net(idx)
    w = np.random.default_rng(2).normal(size=y.shape)
    net.backward(w)
    ty = twin(torch.tensor(idx))
    (ty * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    grads = dict(twin.named_parameters())
    for name, p in net.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name].grad.numpy(), rtol=1e-8, atol=1e-11, err_msg=name)


def test_initialisation_is_mingpts():
    net = GPT(50, 16, n_layer=4, n_head=2, n_embd=64)
    sd = {k: host(v) for k, v in net.state_dict().items()}
    assert abs(sd["wte.weight"].std() - 0.02) < 0.002 and abs(sd["blocks.0.linear1.weight"].std() - 0.02) < 0.002
    assert abs(sd["blocks.1.linear2.weight"].std() - 0.02 / np.sqrt(8)) < 0.001
    assert abs(sd["blocks.2.self_attn.out_proj.weight"].std() - 0.02 / np.sqrt(8)) < 0.001
    assert not sd["blocks.0.linear1.bias"].any() and not sd["blocks.0.self_attn.in_proj_bias"].any()
    assert (sd["ln_f.weight"] == 1).all() and (sd["blocks.3.norm2.weight"] == 1).all()


@pytest.mark.parametrize("make", [lambda: GPT(5, 8, **TINY), lambda: SeqLSTM(5, 4, 8)])
def test_models_are_causal(make):
    net = make()
    be = backends.get("numpy")
    a = host(_tokens(be, (2, 8), 5, seed=3))
    b = a.copy()
    b[:, 5:] = (b[:, 5:] + 1) % 5
    with xn.no_grad():
        ya, yb = host(net(a)), host(net(b))
    assert np.array_equal(ya[:, :5], yb[:, :5]) and not np.allclose(ya[:, 5:], yb[:, 5:])


@pytest.mark.parametrize("make", [lambda be: GPT(6, 5, **TINY, backend=be), lambda be: SeqLSTM(6, 4, 8, backend=be)])
def test_greedy_generation_is_the_argmax_of_each_next_position(make, backend):
    net = make(backend).train()
    xp = backend.xp
    idx = _tokens(backend, (3, 2), 6)
    out = net.generate(idx, 6)                               # past block_size: the GPT crops its context
    assert tuple(out.shape) == (3, 8) and net.training       # eval mode inside, the mode given back after
    assert np.array_equal(host(out[:, :2]), host(idx)) and np.array_equal(host(net.generate(idx, 6)), host(out))
    seq = idx
    with xn.no_grad():
        for _ in range(6):
            context = seq[:, int(seq.shape[1]) - 5:] if isinstance(net, GPT) and int(seq.shape[1]) > 5 else seq
            nxt = xp.argmax(net(context)[:, -1, :], axis=1, keepdims=True)
            seq = xp.concat((seq, xp.astype(nxt, xp.int64)), axis=1)
    assert np.array_equal(host(seq), host(out))
    assert net.pending == 0 and all(layer.pending == 0 for _, layer in net.named_modules())


def test_sampling_is_seeded_and_follows_temperature_and_top_k():
    net = SeqLSTM(8, 4, 16)
    be = backends.get("numpy")
    idx = _tokens(be, (64, 3), 8)
    a = net.generate(idx, 10, do_sample=True, seed=5)
    assert np.array_equal(a, net.generate(idx, 10, do_sample=True, seed=5))
    assert not np.array_equal(a, net.generate(idx, 10, do_sample=True, seed=6))
    greedy = net.generate(idx, 10)
    assert not np.array_equal(a, greedy)
    assert np.array_equal(net.generate(idx, 10, do_sample=True, top_k=1, seed=1), greedy)
    assert np.array_equal(net.generate(idx, 10, do_sample=True, temperature=1e-4, seed=1), greedy)
    g = be.rng.__class__(be, 9)
    assert np.array_equal(net.generate(idx, 4, do_sample=True, generator=g),
                          net.generate(idx, 4, do_sample=True, generator=be.rng.__class__(be, 9)))


def test_sampled_tokens_follow_the_softmax():
    from xpnet.examples.sampling import next_tokens

    be = backends.get("numpy")
    p = np.array([0.1, 0.2, 0.3, 0.4])
    z = np.tile(np.log(p), (40_000, 1))
    g = be.rng.__class__(be, 0)
    freq = np.bincount(next_tokens(z, do_sample=True, generator=g)[:, 0], minlength=4) / 40_000
    np.testing.assert_allclose(freq, p, atol=0.01)
    hot = p**2 / (p**2).sum()                               # temperature 0.5 squares the probabilities
    freq = np.bincount(next_tokens(z, 0.5, True, generator=g)[:, 0], minlength=4) / 40_000
    np.testing.assert_allclose(freq, hot, atol=0.01)
    top2 = np.array([0, 0, 0.3, 0.4]) / 0.7
    freq = np.bincount(next_tokens(z, 1.0, True, 2, generator=g)[:, 0], minlength=4) / 40_000
    np.testing.assert_allclose(freq, top2, atol=0.01)


@pytest.mark.parametrize("call, error, message", [
    (lambda: GPT(5, 8, n_head=3, n_embd=8), ValueError, "GPT: n_embd must be divisible by n_head"),
    (lambda: GPT(0, 8), ValueError, "GPT: vocab_size must be a positive int, got 0"),
    (lambda: GPT(5, 4, **TINY)(np.zeros((1, 5), dtype=np.int64)), ValueError,
     "GPT: the sequence has 5 tokens; the model takes 1 to block_size=4"),
    (lambda: GPT(5, 4, **TINY)(np.zeros((5,), dtype=np.int64)), TypeError,
     "GPT: expected integer token ids (N, T), got int64 of shape (5,)"),
    (lambda: SeqLSTM(5)(np.zeros((2, 3))), TypeError, "SeqLSTM: expected integer token ids (N, T), got float64"),
    (lambda: GPT(5, 4, **TINY).generate(np.zeros((1, 2)), 3), ValueError,
     "GPT.generate: idx must be an integer array (N, T)"),
    (lambda: GPT(5, 4, **TINY).generate([[1, 2]], 3), TypeError, "GPT.generate: idx must be an int64 array"),
    (lambda: GPT(5, 4, **TINY).generate(np.zeros((1, 2), dtype=np.int64), 3, temperature=0.0), ValueError,
     "GPT.generate: temperature must be a positive real number, got 0.0"),
    (lambda: SeqLSTM(5).generate(np.zeros((1, 2), dtype=np.int64), 3, do_sample=True, top_k=6), ValueError,
     "SeqLSTM.generate: top_k=6 exceeds the vocabulary of 5 tokens"),
    (lambda: SeqLSTM(5).generate(np.zeros((1, 2), dtype=np.int64), -1), ValueError,
     "SeqLSTM.generate: max_new_tokens must be an int >= 0, got -1"),
])
def test_errors(call, error, message):
    with pytest.raises(error) as e:
        call()
    assert message in str(e.value)


# -- the loss and the accuracy ----------------------------------------------------------------
def test_token_loss_is_torchs_cross_entropy_over_rows(torch, backend):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 5, 4))
    y = rng.integers(0, 4, size=(3, 5))
    y[:, :2] = -1
    loss = TokenCrossEntropyLoss(label_smoothing=0.1)
    zb = backend.asarray(z, dtype="float64")
    v = loss(zb, backend.asarray(y, dtype="int64"))
    dz = loss.backward()
    tz = torch.tensor(z, requires_grad=True)
    tv = torch.nn.functional.cross_entropy(tz.reshape(-1, 4), torch.tensor(y).reshape(-1), ignore_index=-1,
                                           label_smoothing=0.1)
    tv.backward()
    np.testing.assert_allclose(float(v), tv.item(), rtol=1e-12)
    np.testing.assert_allclose(host(dz), tz.grad.numpy(), rtol=1e-10, atol=1e-14)
    per = TokenCrossEntropyLoss(reduction="none")
    assert tuple(per(zb, backend.asarray(y, dtype="int64")).shape) == (3, 5)
    assert gradcheck(per, zb, backend.asarray(y, dtype="int64"))


def test_token_loss_errors():
    loss = TokenCrossEntropyLoss()
    with pytest.raises(ValueError, match=r"expected logits \(N, T, V\) and targets \(N, T\), got \(2, 4\) and \(2,\)"):
        loss(np.zeros((2, 4)), np.zeros((2,), dtype=np.int64))
    with pytest.raises(TypeError, match="expected integer token ids as target, got float64"):
        loss(np.zeros((2, 3, 4)), np.zeros((2, 3)))


def test_sequence_accuracy_exact_and_per_token():
    z = np.zeros((3, 4, 3))
    pred = np.array([[0, 1, 2, 0], [0, 1, 1, 1], [2, 2, 2, 2]])
    np.put_along_axis(z, pred[..., None], 1.0, axis=2)
    y = np.array([[-1, -1, 2, 0], [-1, -1, 1, 2], [-1, 0, 2, 2]])
    exact, tokens = SequenceAccuracy(), SequenceAccuracy(exact=False)
    for m in (exact, tokens):
        m.update(z, y)
    assert exact.result() == {"accuracy": 1 / 3}               # only the first row is right everywhere scored
    assert tokens.result() == {"accuracy": 5 / 7}


def test_the_example_command(capsys):
    from xpnet.examples import gpt, seq_lstm

    assert gpt.main(["--epochs", "1", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and "GPT on sort: exact-sequence accuracy" in out and "of 183 held-out problems" in out
    for argv, message in ((["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
                          (["--backend", "nope"], "unknown backend 'nope'")):
        with pytest.raises(SystemExit) as e:
            seq_lstm.main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_the_readme_section_runs_as_printed(capsys):
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Sequence models", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    scope = {}
    exec(compile(block, "README.md (Sequence models)", "exec"), scope)
    assert scope["accuracy"] >= 0.95
    out = capsys.readouterr().out
    assert "220210 -> 00122 [-1, -1, -1, -1, -1, 0, 0, 1, 2, 2, 2]" in out and "held-out exact-sequence" in out


@pytest.mark.parametrize("make", [lambda: GPT(5, 8, **TINY, dropout=0.1, tie_weights=True), lambda: SeqLSTM(5, 4, 8)])
def test_a_training_step_reads_nothing_back(make):
    """On a device backend (array-api-strict stands in for one) a step's forward, loss, backward,
    accuracy and update make no host read: the label checks are deferred, the figures stay 0-d."""
    from xpnet.layers.deferred import deferred_checks
    from tests.host_reads import count_host_reads

    be = backends.get("array_api_strict:device1")
    be.manual_seed(0)
    with backends.use(be):
        net = make()
        task_x = _tokens(be, (4, 8), 5)
        y = be.xp.where(be.xp.arange(8, device=be.device)[None, :] < 3, -1, _tokens(be, (4, 8), 5, seed=1))
        loss, opt, acc = TokenCrossEntropyLoss(), xn.Adam(net, lr=1e-3), SequenceAccuracy()
        with deferred_checks():
            with count_host_reads() as reads:
                for _ in range(2):
                    opt.zero_grad()
                    out = net(task_x)
                    loss(out, y)
                    net.backward(loss.backward())
                    opt.step()
                    acc.update(out, y)
    assert reads.count == 0, reads
