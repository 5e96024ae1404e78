"""The three tutorial networks xpnet grew from (GUIDE section 6), trained end to end on every backend.

1. y = x^2 regression: Xavier-initialised Linear(1,100)-Sigmoid-Linear(100,1) with MSE;
   its loss and gradients equal torch.nn.Sequential's, and SGD fits it.
2. The 3-4-1 ReLU net without biases, loss 1/2 (y - t)^2 summed, dropout on the hidden layer.
3. Ring-vs-blob: Linear(2,4)-ReLU-Linear(4,2), cross-entropy, full-batch SGD at lr 0.1, 100%
   training accuracy.

The hyperparameters below were checked offline on the numpy, array_api_strict and torch (CPU)
backends over many seeds; the margins are stated next to each threshold.
"""

from __future__ import annotations

import numpy as np

import xpnet as xn
from xpnet import backends, data
from xpnet.layers import init

from .conftest import host


def _numpy_built(seed, make):
    """Build ``make()`` on numpy from a fixed seed, so every backend starts from the same weights."""
    backends.get("numpy").manual_seed(seed)
    return make()


# -- 1. y = x^2 ----------------------------------------------------------------------------------
def _full_batch_steps(net, loss_fn, opt, X, Y, steps):
    """``steps`` of full-batch gradient descent; the loss is never read back inside."""
    for _ in range(steps):
        loss_fn(net(X), Y)
        opt.zero_grad()
        net.backward(loss_fn.backward(), input_grad=False)
        opt.step()


def _x_squared_net(dtype="float32"):
    net = xn.Sequential(xn.Linear(1, 100, dtype=dtype), xn.Sigmoid(), xn.Linear(100, 1, dtype=dtype))
    init.xavier_uniform(net[0].weight)
    init.xavier_uniform(net[2].weight)
    return net


def test_x_squared_matches_torch(backend, torch):
    """Output, loss, input gradient, every parameter gradient and three momentum-SGD steps
    equal torch.nn's in float64."""
    X, Y = data.x_squared(200, seed=0, dtype="float64")
    net = _x_squared_net("float64")
    ref = torch.nn.Sequential(torch.nn.Linear(1, 100), torch.nn.Sigmoid(), torch.nn.Linear(100, 1)).double()
    ref.load_state_dict({k: torch.as_tensor(host(v)) for k, v in net.state_dict().items()})
    loss_fn, ref_loss_fn = xn.MSELoss(), torch.nn.MSELoss()
    opt = xn.SGD(net.parameters(), lr=0.05, momentum=0.9)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    tx, ty = torch.as_tensor(host(X)).requires_grad_(True), torch.as_tensor(host(Y))

    for step in range(3):
        pred = net(X)
        loss = loss_fn(pred, Y)
        opt.zero_grad()
        dx = net.backward(loss_fn.backward())
        ref_pred = ref(tx)
        ref_loss = ref_loss_fn(ref_pred, ty)
        ref_opt.zero_grad()
        tx.grad = None
        ref_loss.backward()

        assert loss.ndim == 0
        np.testing.assert_allclose(host(pred), ref_pred.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(float(loss), ref_loss.item(), rtol=1e-10)
        np.testing.assert_allclose(host(dx), tx.grad.numpy(), rtol=1e-10, atol=1e-14)
        ref_params = dict(ref.named_parameters())
        for name, p in net.named_parameters():
            np.testing.assert_allclose(
                host(p.grad), ref_params[name].grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=f"step {step}: {name}"
            )
        opt.step()
        ref_opt.step()

    for name, v in ref.state_dict().items():
        np.testing.assert_allclose(host(net.state_dict()[name]), v.numpy(), rtol=1e-10, atol=1e-14, err_msg=name)


def test_x_squared_trains(backend):
    """SGD (lr 0.05, momentum 0.9) cuts the MSE below 10% of its initial value in 200 full-batch steps.

    Checked over 50 init seeds on numpy and on torch: the worst final/initial ratio at step 200
    was 0.024 (0.011 at step 300; still above 0.6 at step 100), so the bound has a 4x margin.
    """
    X, Y = data.x_squared(200, seed=0)
    net = _x_squared_net()  # Xavier draws from this backend's own generator
    loss_fn = xn.MSELoss()
    opt = xn.SGD(net.parameters(), lr=0.05, momentum=0.9)
    first = float(loss_fn(net(X), Y))
    _full_batch_steps(net, loss_fn, opt, X, Y, 200)
    last = float(loss_fn(net(X), Y))
    assert last < 0.1 * first, f"MSE went from {first:.4f} to {last:.4f}"


# -- 2. the 3-4-1 ReLU net with dropout ----------------------------------------------------------
INPUTS = [[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
TARGETS = [[0.0], [0.0], [1.0], [1.0]]  # the first input column (the constant third column acts as a bias)
P_DROP = 0.1


def _half_sse(loss_fn, pred, target):
    """1/2 sum (y - t)^2 and its gradient factor: MSELoss(reduction="sum") scaled by 1/2."""
    return 0.5 * float(loss_fn(pred, target))


def test_relu_dropout_net_trains(backend):
    """Plain SGD at lr 0.1, 300 full-batch steps, dropout p = 0.1 on the 4 hidden units.

    Weights are built on numpy from seed 0 (eval loss 0.635 at the start); the dropout masks come
    from each backend's own generator. Over dropout seeds 0..99 and 1234 on numpy and on torch the
    final eval loss was at most 0.015 (median 0.006), so the bound 0.05 has a 3x margin.
    """
    net = _numpy_built(0, lambda: xn.Sequential(
        xn.Linear(3, 4, bias=False, backend="numpy"), xn.ReLU(), xn.Dropout(P_DROP),
        xn.Linear(4, 1, bias=False, backend="numpy"),
    )).to(backend)
    backend.manual_seed(1234)  # the dropout stream (the numpy backend's was used for the weights)
    assert net[0].bias is None and net[3].bias is None
    X, T = backend.asarray(INPUTS, dtype="float32"), backend.asarray(TARGETS, dtype="float32")
    loss_fn = xn.MSELoss(reduction="sum")
    opt = xn.SGD(net.parameters(), lr=0.1)

    first = _half_sse(loss_fn, net.eval()(X), T)
    net.train()
    for _ in range(300):
        loss_fn(net(X), T)
        opt.zero_grad()
        net.backward(0.5 * loss_fn.backward(), input_grad=False)  # d(1/2 sum (y-t)^2)/dy = y - t
        opt.step()
    net.eval()
    last = _half_sse(loss_fn, net(X), T)
    assert first > 0.5 and last < 0.05, f"eval loss went from {first:.4f} to {last:.4f}"
    assert np.all(np.abs(host(net(X)) - np.asarray(TARGETS)) < 0.25)

    # Eval mode: dropout is off, the output is deterministic and equals relu(X W1^T) W2^T.
    W1, W2 = host(net[0].weight.data), host(net[3].weight.data)
    h = np.maximum(np.asarray(INPUTS, dtype=np.float32) @ W1.T, 0.0)
    expected = h @ W2.T
    out_eval = host(net(X))
    np.testing.assert_allclose(out_eval, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(host(net(X)), out_eval)

    # Training mode: outputs vary between calls, and inverted dropout keeps their mean at the eval
    # output. Var(out_n) = p/(1-p) sum_j (W2_j h_nj)^2; allow 5 standard errors of the mean.
    net.train()
    calls = 200
    outs = np.stack([host(net(X)) for _ in range(calls)])
    assert len({o.tobytes() for o in outs}) > 1, "dropout is inactive in training mode"
    assert np.any(outs != out_eval)
    var = P_DROP / (1 - P_DROP) * ((h * W2[0]) ** 2).sum(axis=1, keepdims=True)
    np.testing.assert_array_less(np.abs(outs.mean(axis=0) - out_eval), 5 * np.sqrt(var / calls) + 1e-6)
    # every training output is some mask of the hidden units: each unit is kept (scaled 1/(1-p)) or dropped
    masks = np.array([[int(b) for b in f"{m:04b}"] for m in range(16)], dtype=np.float32) / (1 - P_DROP)
    possible = (h[None, :, :] * masks[:, None, :]) @ W2.T  # (16 masks, 4 samples, 1)
    for o in outs[:20]:
        assert np.all(np.min(np.abs(possible[:, :, :] - o[None]), axis=0) < 1e-4)


# -- 3. ring vs blob ---------------------------------------------------------------------------
def test_ring_vs_blob_reaches_full_training_accuracy(backend):
    """Full-batch SGD at lr 0.1, no momentum, from the same numpy-built weights (seed 3) and the
    same data (ring_vs_blob(100, seed=0)) on every backend.

    On numpy, torch and array_api_strict the training accuracy first reaches 100% at epoch 455 and
    stays there through epoch 3000; the test trains 1000 epochs (2.2x margin) and checks the end.
    """
    X, y = data.ring_vs_blob(100, seed=0)
    net = _numpy_built(3, lambda: xn.Sequential(
        xn.Linear(2, 4, backend="numpy"), xn.ReLU(), xn.Linear(4, 2, backend="numpy"),
    )).to(backend)
    loss_fn = xn.CrossEntropyLoss()
    opt = xn.SGD(net.parameters(), lr=0.1)
    labels = host(y)

    first = float(loss_fn(net(X), y))
    _full_batch_steps(net, loss_fn, opt, X, y, 1000)
    logits = net(X)
    last = float(loss_fn(logits, y))
    accuracy = float(np.mean(host(logits).argmax(axis=1) == labels))
    assert accuracy == 1.0, f"training accuracy {accuracy:.3f} (loss {first:.4f} -> {last:.4f})"
    assert last < 0.5 * first
