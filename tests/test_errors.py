"""Every error a user may meet: triggered, and its wording checked."""

from __future__ import annotations

import re

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends


def floats(be, *shape, dtype="float32"):
    return be.rng.normal(shape, dtype=be.dtype(dtype))


# -- shapes ------------------------------------------------------------------------------


def test_linear_shape_mismatch_names_layer_expected_and_got(backend):
    layer = xn.Linear(784, 256)
    with pytest.raises(ValueError, match=re.escape("Linear(784 -> 256) expected input of shape (*, 784), got (32, 28, 28)")):
        layer(floats(backend, 32, 28, 28))
    with pytest.raises(ValueError, match=re.escape("Linear(784 -> 256) expected input of shape (*, 784), got (32, 100)")):
        layer(floats(backend, 32, 100))


def test_shape_error_inside_sequential_names_the_layer(backend):
    net = xn.Sequential(xn.Linear(4, 8), xn.ReLU(), xn.Linear(6, 2))
    with pytest.raises(ValueError, match=re.escape("Linear(6 -> 2) expected input of shape (*, 6), got (3, 8)")):
        net(floats(backend, 3, 4))


def test_linear_backward_with_wrong_dy_shape(backend):
    layer = xn.Linear(4, 3)
    layer(floats(backend, 5, 4))
    with pytest.raises(ValueError, match=re.escape("Linear(4 -> 3).backward expected dy of shape (5, 3) (its output's), got (5, 4)")):
        layer.backward(floats(backend, 5, 4))


def test_loss_shape_mismatches(backend):
    with pytest.raises(ValueError, match=re.escape("MSELoss expected target of shape (4, 1) (the prediction's), got (4,)")):
        xn.MSELoss()(floats(backend, 4, 1), floats(backend, 4))
    with pytest.raises(ValueError, match=re.escape("CrossEntropyLoss expected target of shape () for logits (4,), got (4,)")):
        xn.CrossEntropyLoss()(floats(backend, 4), backend.asarray([0, 1, 0, 1]))  # unbatched logits: one 0-d label
    with pytest.raises(ValueError, match=re.escape("CrossEntropyLoss expected target of shape (4,) for logits (4, 3), got (4, 1)")):
        xn.CrossEntropyLoss()(floats(backend, 4, 3), backend.asarray([[0], [1], [0], [1]]))


def test_softmax_axis_out_of_range(backend):
    with pytest.raises(ValueError, match=re.escape("Softmax(dim=2) expected an input with axis 2, got 2-d input")):
        xn.Softmax(dim=2)(floats(backend, 2, 3))


def test_flatten_bad_axes(backend):
    with pytest.raises(ValueError, match=re.escape("Flatten(start_dim=2, end_dim=-1) cannot flatten axes 2..-1 of an input of shape (4, 3)")):
        xn.Flatten(2)(floats(backend, 4, 3))


# -- dtypes ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: xn.Linear(3, 2), xn.ReLU, xn.Sigmoid, xn.Tanh, xn.Softmax,
                                  lambda: xn.LeakyReLU(), lambda: xn.Dropout(0.5)], ids=lambda m: repr(m()))
@pytest.mark.parametrize("bad", ["int64", "int32", "bool"])
def test_integer_or_bool_input_is_rejected(backend, make, bad):
    layer = make()
    x = backend.asarray(np.ones((2, 3), dtype=bad))
    name = re.escape(layer._tag())
    with pytest.raises(TypeError, match=rf"{name} expected a floating-point .*input, got {bad}; convert it with xp.astype"):
        layer(x)


def test_float64_input_to_float32_layer(backend):
    with pytest.raises(TypeError, match=re.escape("Linear(3 -> 2) expected a float32 input to match its parameters, got float64")):
        xn.Linear(3, 2)(floats(backend, 4, 3, dtype="float64"))


def test_loss_target_dtypes(backend):
    with pytest.raises(TypeError, match="CrossEntropyLoss expected integer class labels as target, got float32"):
        xn.CrossEntropyLoss()(floats(backend, 4, 3), floats(backend, 4))
    with pytest.raises(TypeError, match="MSELoss expected a float32 target to match the prediction, got float64"):
        xn.MSELoss()(floats(backend, 4), floats(backend, 4, dtype="float64"))
    with pytest.raises(TypeError, match="BCEWithLogitsLoss expected a floating-point .*target, got int64"):
        xn.BCEWithLogitsLoss()(floats(backend, 4), backend.asarray([0, 1, 1, 0]))
    with pytest.raises(TypeError, match="CrossEntropyLoss expected a floating-point logits, got int64"):
        xn.CrossEntropyLoss()(backend.asarray([[1, 2]]), backend.asarray([0]))


def test_non_array_input():
    with pytest.raises(TypeError, match=re.escape("Linear(2 -> 1) expected its input to be an array (numpy, torch, cupy or array_api_strict), got list")):
        xn.Linear(2, 1)([[1.0, 2.0]])
    with pytest.raises(TypeError, match="ReLU.. expected its input to be an array"):
        xn.ReLU()([1.0])


# -- places: backend and device -----------------------------------------------------------


def _other_place(be):
    """Some usable place that is not ``be``: another library, or strict's other device."""
    for spec in ("array_api_strict:device1", "numpy", "array_api_strict"):
        other = backends.get(spec)
        if other is not be:
            return other


def test_input_on_another_backend_or_device_names_both(backend):
    layer = xn.Linear(3, 2)
    other = _other_place(backend)
    x = other.asarray(np.ones((2, 3)), dtype="float32")
    with pytest.raises(ValueError) as info:
        layer(x)
    msg = str(info.value)
    assert msg.startswith(f"Linear(3 -> 2) got its input on {other.label} but its parameters are on {backend.label}")
    assert ".asarray(...)" in msg and ".to(...)" in msg


def test_strict_second_device_is_never_mixed_silently():
    with backends.use("array_api_strict:device1"):
        layer = xn.Linear(3, 2)
    x = backends.get("array_api_strict").asarray(np.ones((2, 3)), dtype="float32")
    with pytest.raises(ValueError, match="input on array_api_strict:CPU_DEVICE but its parameters are on array_api_strict:device1"):
        layer(x)


def test_torch_input_to_numpy_layer(torch):
    layer = xn.Linear(3, 2, backend="numpy")
    with pytest.raises(ValueError, match="input on torch:cpu but its parameters are on numpy"):
        layer(torch.ones(2, 3))


def test_loss_target_on_another_place(backend):
    other = _other_place(backend)
    with pytest.raises(ValueError, match=f"MSELoss got its target on {other.label} but the prediction on {backend.label}"):
        xn.MSELoss()(floats(backend, 2), other.asarray([1.0, 2.0], dtype="float32"))
    with pytest.raises(ValueError, match=f"CrossEntropyLoss got its target on {other.label}"):
        xn.CrossEntropyLoss()(floats(backend, 2, 3), other.asarray([1, 2]))


# -- hyperparameters ------------------------------------------------------------------------


@pytest.mark.parametrize("make, message", [
    (lambda: xn.Linear(0, 3), "Linear: in_features must be a positive int, got 0"),
    (lambda: xn.Linear(3, -1), "Linear: out_features must be a positive int, got -1"),
    (lambda: xn.Linear(2.5, 3), "Linear: in_features must be a positive int, got 2.5"),
    (lambda: xn.Dropout(1.0), "Dropout: p must be a probability in [0, 1), got 1.0"),
    (lambda: xn.Dropout(-0.1), "Dropout: p must be a probability in [0, 1), got -0.1"),
    (lambda: xn.LeakyReLU("x"), "LeakyReLU: negative_slope must be a real number, got 'x'"),
    (lambda: xn.Softmax(dim=1.0), "Softmax: dim must be an int, got 1.0"),
    (lambda: xn.CrossEntropyLoss(reduction="elementwise"), "CrossEntropyLoss: reduction must be one of ('none', 'mean', 'sum'), got 'elementwise'"),
    (lambda: xn.MSELoss(reduction="avg"), "MSELoss: reduction must be one of ('none', 'mean', 'sum'), got 'avg'"),
    (lambda: xn.CrossEntropyLoss(label_smoothing=1.5), "CrossEntropyLoss: label_smoothing must be a probability in [0, 1], got 1.5"),
    (lambda: xn.SGD(xn.Linear(2, 2).parameters(), lr=-1), "SGD: lr must be >= 0, got -1"),
    (lambda: xn.SGD(xn.Linear(2, 2).parameters(), lr=-0.1), "SGD: lr must be >= 0, got -0.1"),
    (lambda: xn.SGD(xn.Linear(2, 2).parameters(), lr=0.1, weight_decay=-1e-4), "SGD: weight_decay must be >= 0, got -0.0001"),
    (lambda: xn.SGD(xn.Linear(2, 2).parameters(), lr=0.1, momentum=-0.9), "SGD: momentum must be >= 0, got -0.9"),
    (lambda: xn.SGD(xn.Linear(2, 2).parameters(), lr=0.1, nesterov=True), "SGD: nesterov momentum requires momentum > 0 and dampening = 0"),
    (lambda: xn.SGD([], lr=0.1), "SGD got an empty parameter list"),
])
def test_invalid_hyperparameters_rejected_at_construction(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_optimizer_rejects_non_parameters_and_duplicates():
    layer = xn.Linear(2, 2)
    with pytest.raises(TypeError, match="SGD expected Parameters, got ndarray at position 0"):
        xn.SGD([layer.weight.data], lr=0.1)
    with pytest.warns(UserWarning, match="SGD param group 0 lists some parameters more than once; each is kept once"):
        assert xn.SGD([layer.weight, layer.weight], lr=0.1).params == [layer.weight]
    with pytest.raises(ValueError, match=re.escape("SGD: some parameters appear in more than one parameter group (param group 1)")):
        xn.SGD([{"params": [layer.weight]}, {"params": [layer.weight]}], lr=0.1)


def test_sequential_rejects_non_layers():
    with pytest.raises(TypeError, match="Sequential expected Layer instances, got CrossEntropyLoss at position 1; losses are applied outside the net"):
        xn.Sequential(xn.Linear(2, 2), xn.CrossEntropyLoss())


# -- call order ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: xn.Linear(3, 2), xn.ReLU, lambda: xn.LeakyReLU(), xn.Sigmoid, xn.Tanh,
                                  xn.Softmax, xn.Identity, lambda: xn.Dropout(0.2), xn.Flatten,
                                  lambda: xn.Sequential(xn.Linear(3, 2), xn.ReLU())], ids=lambda m: type(m()).__name__)
def test_backward_before_forward_and_twice(backend, make):
    layer = make()
    dy = floats(backend, 4, 2)
    with pytest.raises(RuntimeError, match=r"\.backward was called before forward \(or more often than forward"):
        layer.backward(dy)
    y = layer(floats(backend, 4, 3))
    layer.backward(y * 0.0 + 1.0)
    with pytest.raises(RuntimeError, match="backward was called before forward"):
        layer.backward(y)


@pytest.mark.parametrize("loss", [xn.MSELoss(), xn.BCEWithLogitsLoss(), xn.CrossEntropyLoss()], ids=repr)
def test_loss_backward_before_forward(loss):
    with pytest.raises(RuntimeError, match=f"{type(loss).__name__}.backward was called before forward"):
        loss.backward()


@pytest.mark.parametrize("labels, lo, hi", [([0, 3, 1], 0, 3), ([-1, 0, 2], -1, 2), ([7, 7, 7], 7, 7)])
def test_labels_outside_range(backend, labels, lo, hi):
    with pytest.raises(ValueError, match=re.escape(f"CrossEntropyLoss expected class labels in [0, 3), got labels from {lo} to {hi}")):
        xn.CrossEntropyLoss()(floats(backend, 3, 3), backend.asarray(labels))


# -- state dicts -----------------------------------------------------------------------------


def test_load_state_dict_key_and_shape_errors(backend):
    net = xn.Sequential(xn.Linear(3, 2), xn.ReLU(), xn.Linear(2, 1))
    sd = {k: backend.to_numpy(v) for k, v in net.state_dict().items()}
    bad = dict(sd)
    del bad["2.bias"]
    bad["5.weight"] = sd["0.weight"]
    with pytest.raises(KeyError, match=re.escape("missing keys ['2.bias'], unexpected keys ['5.weight']")):
        net.load_state_dict(bad)
    bad = dict(sd, **{"0.weight": np.zeros((3, 3), dtype=np.float32)})
    with pytest.raises(ValueError, match=re.escape("'0.weight' expected shape (2, 3), got (3, 3)")):
        net.load_state_dict(bad)
