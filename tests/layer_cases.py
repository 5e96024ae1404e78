"""One table of test cases for every layer, loss and container: tests/test_layer_cases.py runs a
gradcheck, torch parity, a spec round trip and an error check for each.

A :class:`Case` holds:

- ``make(backend, dtype)``: a fresh layer on that backend in that float dtype (a name);
- ``inputs(rng)``: the inputs as numpy arrays, from a numpy Generator (float64 arrays become the
  test's float dtype, integer arrays (indices, labels) stay int64);
- ``torch(nn)``: the same ``torch.nn`` module built from ``torch.nn``, or None where torch has no
  such module (parity then goes through :func:`xpnet.to_torch`);
- ``bad(rng)`` and ``error``: inputs the layer must refuse, and ``(exception type, regex)``;
- ``parity``: None, or why torch parity cannot be checked (dropout's masks are random);
- ``grad_inputs(rng)``: other inputs for the gradcheck, where ``inputs`` exercise a deliberate
  non-gradient (``padding_idx`` rows get none, though the forward reads them).

Shapes are small: the whole table runs on every backend in well under a minute.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Callable

import numpy as np

import xpnet as xn
from xpnet import backends


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    cls: type
    make: Callable
    inputs: Callable
    torch: Callable | None
    bad: Callable | None = None
    error: tuple = (ValueError, "")
    parity: str | None = None
    grad_inputs: Callable | None = None
    #: float32 parity tolerance (relative to the largest magnitude of each compared array)
    tol32: float = 2e-5

    def seed(self) -> int:
        return zlib.crc32(self.id.encode())


# -- building blocks --------------------------------------------------------------------------------

def normal(*shape, scale=1.0):
    return lambda rng: (np.asarray(rng.standard_normal(shape) * scale),)


def distinct(*shape):
    """Values at least 0.05 apart (max pooling has no near-ties to trip the finite differences)."""
    return lambda rng: ((rng.permutation(int(np.prod(shape))).reshape(shape) - np.prod(shape) / 2) * 0.05,)


def ints(*shape):
    """An integer array where a float one belongs (the usual bad input of a float layer)."""
    return lambda rng: (rng.integers(0, 3, size=shape).astype(np.int64),)


def with_target(pred_shape, target):
    """A prediction and a target from ``target(rng)``."""
    return lambda rng: (np.asarray(rng.standard_normal(pred_shape) * 2.0), np.asarray(target(rng)))


def labels(shape, classes):
    return lambda rng: rng.integers(0, classes, size=shape).astype(np.int64)


def probs(shape, axis=None):
    """Probabilities: in (0, 1) elementwise, or summing to 1 along ``axis``."""
    def draw(rng):
        p = rng.uniform(0.05, 0.95, size=shape)
        return p if axis is None else p / p.sum(axis=axis, keepdims=True)
    return draw


def floats(*shape):
    return lambda rng: np.asarray(rng.standard_normal(shape))


def inputs_to(be, arrays, dtype):
    """The numpy ``arrays`` on backend ``be``: float64 ones in ``dtype``, the rest as they are;
    a tuple among them (an LSTM's ``(h0, c0)``) stays a tuple, and None, flags and numbers
    (a mask not given, ``need_weights``) pass through."""
    def one(a):
        if isinstance(a, tuple):
            return tuple(one(e) for e in a)
        if not isinstance(a, (np.ndarray, np.generic)):  # None, a flag, a number
            return a
        return be.asarray(a, dtype=dtype if a.dtype == np.float64 else None)
    return tuple(one(a) for a in arrays)


def build(case, be, dtype):
    """``case.make(be, dtype)`` with every float parameter and running statistic randomized
    (deterministically, per case): ones and zeros would hide a swapped weight and bias."""
    layer = case.make(be, dtype)
    if isinstance(layer, xn.Loss):  # a loss's class weights are the case's
        return layer
    rng = np.random.default_rng(case.seed() + 1)
    state = {}
    for name, value in layer.state_dict().items():
        b = backends.backend_of(value)
        if not b.is_float(value.dtype):
            continue
        shape = tuple(value.shape)
        if name.endswith("running_var"):
            state[name] = rng.uniform(0.5, 2.0, size=shape)
        elif name.endswith("running_mean"):
            state[name] = rng.standard_normal(shape) * 0.5
        elif name.split(".")[-1] in ("weight", "bias"):
            state[name] = backends.to_numpy(value) + rng.standard_normal(shape) * 0.3
    if state:
        layer.load_state_dict(state, strict=False)
    return layer


def _placed(be, dtype):
    return {"backend": be, "dtype": dtype}


CLASS_W = np.array([0.5, 2.0, 1.0, 1.5])
BCE_W = np.array([1.0, 0.5, 2.0])
POS_W = np.array([2.0, 0.5, 1.5])


def _tensor(a):
    """A float64 tensor (the harness moves the twin to the tested dtype)."""
    import torch

    return torch.from_numpy(np.asarray(a, dtype=np.float64))


# -- the table -------------------------------------------------------------------------------------

FLOAT_ONLY = (TypeError, r"expected a floating-point .*input, got int64")

CASES = [
    # Linear
    Case("Linear", xn.Linear, lambda be, dt: xn.Linear(4, 3, **_placed(be, dt)), normal(5, 4),
         lambda nn: nn.Linear(4, 3), normal(5, 3), (ValueError, r"Linear\(4 -> 3\) expected input of shape \(\*, 4\), got \(5, 3\)")),
    Case("Linear-no-bias-3d", xn.Linear, lambda be, dt: xn.Linear(4, 3, bias=False, **_placed(be, dt)), normal(2, 3, 4),
         lambda nn: nn.Linear(4, 3, bias=False), ints(5, 4), (TypeError, r"Linear\(4 -> 3\) expected a floating-point")),
    Case("Linear-unbatched", xn.Linear, lambda be, dt: xn.Linear(3, 5, **_placed(be, dt)), normal(3),
         lambda nn: nn.Linear(3, 5), normal(5), (ValueError, r"Linear\(3 -> 5\) expected input of shape \(\*, 3\)")),
    Case("Linear-frozen-weight", xn.Linear,
         lambda be, dt: _frozen(xn.Linear(4, 3, **_placed(be, dt)), "weight"), normal(5, 4),
         lambda nn: nn.Linear(4, 3), normal(5, 5), (ValueError, r"Linear\(4 -> 3\) expected input")),

    # activations
    Case("ReLU", xn.ReLU, lambda be, dt: xn.ReLU(), normal(3, 4), lambda nn: nn.ReLU(), ints(3, 4), FLOAT_ONLY),
    Case("ReLU-scalar", xn.ReLU, lambda be, dt: xn.ReLU(), normal(), lambda nn: nn.ReLU(), ints(2), FLOAT_ONLY),
    Case("LeakyReLU", xn.LeakyReLU, lambda be, dt: xn.LeakyReLU(), normal(3, 2, 5), lambda nn: nn.LeakyReLU(),
         ints(3), FLOAT_ONLY),
    Case("LeakyReLU-0.5-unbatched", xn.LeakyReLU, lambda be, dt: xn.LeakyReLU(0.5), normal(4),
         lambda nn: nn.LeakyReLU(0.5), ints(3), FLOAT_ONLY),
    Case("LeakyReLU-negative-slope", xn.LeakyReLU, lambda be, dt: xn.LeakyReLU(-0.3), normal(3, 4),
         lambda nn: nn.LeakyReLU(-0.3), ints(3), FLOAT_ONLY),
    Case("Sigmoid", xn.Sigmoid, lambda be, dt: xn.Sigmoid(), normal(3, 4, scale=3.0), lambda nn: nn.Sigmoid(),
         ints(3), FLOAT_ONLY),
    Case("Sigmoid-scalar", xn.Sigmoid, lambda be, dt: xn.Sigmoid(), normal(), lambda nn: nn.Sigmoid(), ints(3), FLOAT_ONLY),
    Case("Tanh", xn.Tanh, lambda be, dt: xn.Tanh(), normal(2, 3, 4), lambda nn: nn.Tanh(), ints(3), FLOAT_ONLY),
    Case("Tanh-scalar", xn.Tanh, lambda be, dt: xn.Tanh(), normal(), lambda nn: nn.Tanh(), ints(3), FLOAT_ONLY),
    Case("Softmax", xn.Softmax, lambda be, dt: xn.Softmax(), normal(3, 5), lambda nn: nn.Softmax(dim=-1),
         ints(3), FLOAT_ONLY),
    Case("Softmax-dim0", xn.Softmax, lambda be, dt: xn.Softmax(dim=0), normal(3, 5), lambda nn: nn.Softmax(dim=0),
         ints(3), FLOAT_ONLY),
    Case("Softmax-scalar", xn.Softmax, lambda be, dt: xn.Softmax(dim=0), normal(), lambda nn: nn.Softmax(dim=0),
         ints(3), FLOAT_ONLY),
    Case("Softmax-dim1-3d", xn.Softmax, lambda be, dt: xn.Softmax(dim=1), normal(2, 3, 4), lambda nn: nn.Softmax(dim=1),
         normal(4), (ValueError, r"Softmax\(dim=1\) expected an input with axis 1, got 1-d")),
    # Identity takes anything, as torch.nn.Identity does: no bad input
    Case("Identity", xn.Identity, lambda be, dt: xn.Identity(), normal(3, 4), lambda nn: nn.Identity()),

    # dropout
    Case("Dropout-train", xn.Dropout, lambda be, dt: xn.Dropout(0.4), normal(6, 5), lambda nn: nn.Dropout(0.4),
         ints(3), FLOAT_ONLY, parity="dropout masks are random: xpnet's and torch's generators differ"),
    Case("Dropout-eval", xn.Dropout, lambda be, dt: xn.Dropout(0.4).eval(), normal(6, 5), lambda nn: nn.Dropout(0.4),
         ints(3), FLOAT_ONLY),
    Case("Dropout-p0", xn.Dropout, lambda be, dt: xn.Dropout(0.0), normal(3, 4), lambda nn: nn.Dropout(0.0),
         ints(3), FLOAT_ONLY),

    # shapes
    Case("Flatten", xn.Flatten, lambda be, dt: xn.Flatten(), normal(2, 3, 4), lambda nn: nn.Flatten(),
         normal(3), (ValueError, r"Flatten\(start_dim=1, end_dim=-1\) cannot flatten axes 1\.\.-1 of an input of shape \(3,\)")),
    Case("Flatten-0-to-2", xn.Flatten, lambda be, dt: xn.Flatten(0, -2), normal(2, 3, 4), lambda nn: nn.Flatten(0, -2),
         normal(),
         (ValueError, r"Flatten\(start_dim=0, end_dim=-2\) cannot flatten")),
    Case("Unflatten", xn.Unflatten, lambda be, dt: xn.Unflatten(1, (2, 3)), normal(4, 6), lambda nn: nn.Unflatten(1, (2, 3)),
         normal(4, 5), (ValueError, r"Unflatten\(dim=1, unflattened_size=\(2, 3\)\) cannot split axis 1 of size 5")),
    Case("Unflatten-last-minus1", xn.Unflatten, lambda be, dt: xn.Unflatten(-1, (-1, 2)), normal(2, 3, 4),
         lambda nn: nn.Unflatten(-1, (-1, 2)), normal(2, 3), (ValueError, r"Unflatten.* cannot split axis -1 of size 3")),
    Case("Reshape", xn.Reshape, lambda be, dt: xn.Reshape(2, 3), normal(4, 6), None,
         normal(4, 5), (ValueError, r"Reshape\(2, 3\) cannot reshape an input of shape \(4, 5\)")),
    Case("Reshape-minus1", xn.Reshape, lambda be, dt: xn.Reshape(-1, 2), normal(3, 2, 2), None,
         normal(3, 3), (ValueError, r"Reshape\(-1, 2\) cannot reshape")),

    # convolution
    Case("Conv2d", xn.Conv2d, lambda be, dt: xn.Conv2d(2, 3, 3, **_placed(be, dt)), normal(2, 2, 5, 6),
         lambda nn: nn.Conv2d(2, 3, 3), normal(2, 3, 5, 6), (ValueError, r"Conv2d\(.*\) expected input .*\(N, 2, H, W\)")),
    Case("Conv2d-stride-pad-dilation", xn.Conv2d,
         lambda be, dt: xn.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), **_placed(be, dt)),
         normal(2, 2, 6, 5), lambda nn: nn.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
         ints(2, 2, 6, 5), (TypeError, r"Conv2d\(.*\) expected a floating-point")),
    Case("Conv2d-groups-no-bias", xn.Conv2d,
         lambda be, dt: xn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False, **_placed(be, dt)),
         normal(2, 4, 4, 4), lambda nn: nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False),
         normal(2, 2, 4, 4), (ValueError, r"Conv2d\(.*\) expected input .*\(N, 4, H, W\)")),
    Case("Conv2d-same-even-kernel", xn.Conv2d,
         lambda be, dt: xn.Conv2d(2, 3, (3, 4), padding="same", dilation=(2, 1), **_placed(be, dt)),
         normal(2, 2, 6, 7), lambda nn: nn.Conv2d(2, 3, (3, 4), padding="same", dilation=(2, 1)),
         normal(2, 3, 6, 7), (ValueError, r"Conv2d\(.*\) expected input")),
    Case("Conv2d-unbatched", xn.Conv2d, lambda be, dt: xn.Conv2d(2, 3, 3, padding="valid", **_placed(be, dt)),
         normal(2, 4, 5), lambda nn: nn.Conv2d(2, 3, 3, padding="valid"),
         normal(2, 5), (ValueError, r"Conv2d\(.*\) expected input")),

    # pooling: tests/cases/pooling.py

    # normalization: tests/cases/normalization.py

    # embedding
    Case("Embedding", xn.Embedding, lambda be, dt: xn.Embedding(5, 3, **_placed(be, dt)),
         lambda rng: (rng.integers(0, 5, size=(2, 4)).astype(np.int64),), lambda nn: nn.Embedding(5, 3),
         normal(2, 4), (TypeError, r"Embedding\(5, 3\) expected integer indices, got float64")),
    Case("Embedding-padding", xn.Embedding, lambda be, dt: xn.Embedding(6, 2, padding_idx=-2, **_placed(be, dt)),
         lambda rng: (np.array([[4, 1, 4], [0, 5, 4]], dtype=np.int64),), lambda nn: nn.Embedding(6, 2, padding_idx=-2),
         lambda rng: (np.array([0, 6], dtype=np.int64),),
         (ValueError, r"Embedding\(6, 2, padding_idx=4\) expected indices in \[0, 6\), got 6"),
         grad_inputs=lambda rng: (np.array([[3, 1, 3], [0, 5, 2]], dtype=np.int64),)),

    # losses
    Case("MSELoss", xn.MSELoss, lambda be, dt: xn.MSELoss(), with_target((3, 4), floats(3, 4)), lambda nn: nn.MSELoss(),
         with_target((3, 4), floats(4, 3)), (ValueError, r"MSELoss expected target of shape \(3, 4\)")),
    Case("MSELoss-sum-scalar", xn.MSELoss, lambda be, dt: xn.MSELoss(reduction="sum"), with_target((), floats()),
         lambda nn: nn.MSELoss(reduction="sum"), with_target((2,), floats(3)), (ValueError, r"MSELoss.* expected target of shape \(2,\)")),
    Case("MSELoss-none", xn.MSELoss, lambda be, dt: xn.MSELoss(reduction="none"), with_target((2, 3, 2), floats(2, 3, 2)),
         lambda nn: nn.MSELoss(reduction="none"), with_target((2, 3), lambda rng: rng.integers(0, 2, size=(2, 3)).astype(np.int64)),
         (TypeError, r"MSELoss.* target")),
    Case("BCEWithLogitsLoss", xn.BCEWithLogitsLoss, lambda be, dt: xn.BCEWithLogitsLoss(), with_target((4, 3), probs((4, 3))),
         lambda nn: nn.BCEWithLogitsLoss(), with_target((4, 3), probs((4, 2))),
         (ValueError, r"BCEWithLogitsLoss expected target of shape \(4, 3\)")),
    Case("BCEWithLogitsLoss-sum-weights", xn.BCEWithLogitsLoss,
         lambda be, dt: xn.BCEWithLogitsLoss(weight=BCE_W, reduction="sum", pos_weight=POS_W, **_placed(be, dt)),
         with_target((5, 3), probs((5, 3))),
         lambda nn: nn.BCEWithLogitsLoss(weight=_tensor(BCE_W), reduction="sum", pos_weight=_tensor(POS_W)),
         with_target((5, 4), probs((5, 4))), (ValueError, r"BCEWithLogitsLoss.*weight")),
    Case("BCEWithLogitsLoss-none", xn.BCEWithLogitsLoss, lambda be, dt: xn.BCEWithLogitsLoss(reduction="none"),
         with_target((2, 3, 2), probs((2, 3, 2))), lambda nn: nn.BCEWithLogitsLoss(reduction="none"),
         with_target((2,), probs((3,))), (ValueError, r"BCEWithLogitsLoss.* expected target of shape \(2,\)")),
    Case("CrossEntropyLoss", xn.CrossEntropyLoss, lambda be, dt: xn.CrossEntropyLoss(), with_target((5, 4), labels((5,), 4)),
         lambda nn: nn.CrossEntropyLoss(), with_target((5, 4), lambda rng: np.array([0, 1, 4, 2, 3], dtype=np.int64)),
         (ValueError, r"CrossEntropyLoss.* expected class labels in \[0, 4\), got labels from 0 to 4")),
    Case("CrossEntropyLoss-sum-smoothing", xn.CrossEntropyLoss,
         lambda be, dt: xn.CrossEntropyLoss(reduction="sum", label_smoothing=0.15), with_target((5, 4), labels((5,), 4)),
         lambda nn: nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.15),
         with_target((5, 4), labels((4,), 4)), (ValueError, r"CrossEntropyLoss.* target of shape")),
    Case("CrossEntropyLoss-weight-ignore-index", xn.CrossEntropyLoss,
         lambda be, dt: xn.CrossEntropyLoss(weight=CLASS_W, ignore_index=1, **_placed(be, dt)),
         with_target((6, 4), lambda rng: np.array([0, 1, 3, 2, 1, 3], dtype=np.int64)),
         lambda nn: nn.CrossEntropyLoss(weight=_tensor(CLASS_W), ignore_index=1),
         with_target((6, 3), labels((6,), 3)), (ValueError, r"CrossEntropyLoss.* weight for 4 classes")),
    Case("CrossEntropyLoss-prob-target-weight", xn.CrossEntropyLoss,
         lambda be, dt: xn.CrossEntropyLoss(weight=CLASS_W, label_smoothing=0.1, **_placed(be, dt)),
         with_target((3, 4), probs((3, 4), axis=1)),
         lambda nn: nn.CrossEntropyLoss(weight=_tensor(CLASS_W), label_smoothing=0.1),
         with_target((3, 4), probs((3, 5), axis=1)),
         (TypeError, r"CrossEntropyLoss expected integer class labels as target, got float64 of shape \(3, 5\)"
                     r".* probabilities of the logits' shape \(3, 4\)")),
    Case("CrossEntropyLoss-4d-none", xn.CrossEntropyLoss, lambda be, dt: xn.CrossEntropyLoss(reduction="none"),
         with_target((2, 3, 2, 2), labels((2, 2, 2), 3)), lambda nn: nn.CrossEntropyLoss(reduction="none"),
         with_target((2, 3, 2, 2), labels((2, 2), 3)), (ValueError, r"CrossEntropyLoss.* target")),
    Case("CrossEntropyLoss-unbatched", xn.CrossEntropyLoss, lambda be, dt: xn.CrossEntropyLoss(label_smoothing=0.2),
         with_target((4,), lambda rng: np.array(2, dtype=np.int64)), lambda nn: nn.CrossEntropyLoss(label_smoothing=0.2),
         with_target((), lambda rng: np.array(2, dtype=np.int64)),
         (ValueError, r"CrossEntropyLoss.* expected logits of shape \(C,\), \(N, C\) or \(N, C, d1, \.\.\., dk\), got \(\)")),

    # containers
    Case("Sequential", xn.Sequential,
         lambda be, dt: xn.Sequential(xn.Linear(4, 5, **_placed(be, dt)), xn.Tanh(), xn.Linear(5, 3, **_placed(be, dt))),
         normal(3, 4), lambda nn: nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)),
         normal(3, 5), (ValueError, r"Linear\(4 -> 5\) expected input of shape \(\*, 4\), got \(3, 5\)")),
    Case("Sequential-shared-layer", xn.Sequential, lambda be, dt: _shared(xn, be, dt), normal(3, 4),
         lambda nn: _shared(nn), normal(3, 2), (ValueError, r"Linear\(4 -> 4\) expected input")),
    Case("Sequential-cnn", xn.Sequential,
         lambda be, dt: xn.Sequential(xn.Conv2d(1, 2, 3, padding=1, bias=False, **_placed(be, dt)),
                                      xn.BatchNorm2d(2, **_placed(be, dt)),
                                      xn.ReLU(), xn.MaxPool2d(2), xn.Flatten(), xn.Linear(8, 3, **_placed(be, dt))),
         normal(3, 1, 4, 4),
         lambda nn: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Flatten(), nn.Linear(8, 3)),
         normal(3, 2, 4, 4), (ValueError, r"Conv2d\(.*\) expected input")),
    Case("Residual", xn.Residual,
         lambda be, dt: xn.Residual(xn.Sequential(xn.Linear(4, 4, **_placed(be, dt)), xn.Tanh())), normal(3, 4), None,
         normal(3, 3), (ValueError, r"Linear\(4 -> 4\) expected input")),
    Case("Residual-shortcut", xn.Residual,
         lambda be, dt: xn.Residual(xn.Sequential(xn.Linear(4, 3, **_placed(be, dt)), xn.ReLU()),
                                    xn.Linear(4, 3, bias=False, **_placed(be, dt))), normal(3, 4), None,
         normal(3, 3), (ValueError, r"Linear\(4 -> 3\) expected input")),
    Case("Concat", xn.Concat,
         lambda be, dt: xn.Concat(xn.Linear(4, 2, **_placed(be, dt)), xn.Sequential(xn.Linear(4, 3, **_placed(be, dt)), xn.Sigmoid())),
         normal(3, 4), None, normal(3, 2), (ValueError, r"Linear\(4 -> 2\) expected input")),
    Case("Concat-channels", xn.Concat,
         lambda be, dt: xn.Concat(xn.Conv2d(2, 3, 1, **_placed(be, dt)), xn.Conv2d(2, 1, 3, padding=1, **_placed(be, dt)),
                                  xn.Identity(), dim=1),
         normal(2, 2, 3, 3), None, normal(2, 3, 3, 3),
         (ValueError, r"Conv2d\(.*\) expected input")),
]


def _frozen(layer, name):
    layer.get_parameter(name).requires_grad_(False)
    return layer


def _shared(mod, be=None, dt=None):
    """``Sequential(lin, ReLU, lin, Linear(4, 2))`` with one Linear used twice (tied weights), in
    xpnet (``mod`` is xpnet) or torch (``mod`` is torch.nn)."""
    if mod is xn:
        lin = xn.Linear(4, 4, backend=be, dtype=dt)
        return xn.Sequential(lin, xn.ReLU(), lin, xn.Linear(4, 2, backend=be, dtype=dt))
    lin = mod.Linear(4, 4)
    return mod.Sequential(lin, mod.ReLU(), lin, mod.Linear(4, 2))


def covered_classes():
    """Every Layer/Loss class exported by xpnet.layers, and every Layer exported by xpnet.nets."""
    out = []
    for module in (xn.layers, xn.nets):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, (xn.Layer, xn.Loss)) and obj not in (xn.Layer, xn.Loss):
                out.append(obj)
    return out


def _families():
    """Every family's cases (``tests/cases/*.py``, in file-name order)."""
    import importlib
    import pkgutil

    from tests import cases

    out = []
    for m in sorted(pkgutil.iter_modules(cases.__path__), key=lambda m: m.name):
        out += importlib.import_module(f"tests.cases.{m.name}").CASES
    return out


CASES += _families()
