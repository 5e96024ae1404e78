"""Cases of LinearCrossEntropyLoss (issue 11): class indices and class probabilities, a bias,
class weights, ignore_index, label smoothing, every reduction, out_features (a K-dimensional
loss), unbatched input, and a frozen Linear weight."""

from __future__ import annotations

import numpy as np

import xpnet as xn
from tests.layer_cases import CLASS_W, Case, _frozen, _placed, _tensor, labels, probs

LCE = xn.LinearCrossEntropyLoss


def xt(x_shape, target):
    """An input of ``x_shape`` and a target from ``target(rng)``."""
    return lambda rng: (np.asarray(rng.standard_normal(x_shape)), np.asarray(target(rng)))


def fixed(values):
    return lambda rng: np.array(values, dtype=np.int64)


def _lce(be, dt, *args, **kwargs):
    return LCE(*args, **kwargs, **_placed(be, dt))


def _torch_lce(nn, *args, weight=None, **kwargs):
    return nn.LinearCrossEntropyLoss(*args, weight=None if weight is None else _tensor(weight), **kwargs)


CASES = [
    Case("LinearCrossEntropyLoss", LCE, lambda be, dt: _lce(be, dt, 5, 4), xt((6, 5), labels((6,), 4)),
         lambda nn: _torch_lce(nn, 5, 4), xt((6, 3), labels((6,), 4)),
         (ValueError, r"LinearCrossEntropyLoss expected input of shape \(N, 5\) or \(5,\), got \(6, 3\)")),
    Case("LinearCrossEntropyLoss-bias-weight-ignore-sum", LCE,
         lambda be, dt: _lce(be, dt, 5, 4, bias=True, weight=CLASS_W, ignore_index=1, reduction="sum"),
         xt((6, 5), fixed([0, 1, 3, 1, 2, 3])),
         lambda nn: _torch_lce(nn, 5, 4, bias=True, weight=CLASS_W, ignore_index=1, reduction="sum"),
         xt((6, 5), fixed([0, 1, 3, 1, 2])),
         (ValueError, r"LinearCrossEntropyLoss expected integer class labels of shape \(6,\) or float class "
                      r"probabilities of shape \(6, 4\) \(the logits'\) for input \(6, 5\), got integer labels of shape \(5,\)")),
    Case("LinearCrossEntropyLoss-probs-smoothing-none", LCE,
         lambda be, dt: _lce(be, dt, 5, 4, weight=CLASS_W, label_smoothing=0.2, reduction="none"),
         xt((6, 5), probs((6, 4), axis=1)),
         lambda nn: _torch_lce(nn, 5, 4, weight=CLASS_W, label_smoothing=0.2, reduction="none"),
         xt((6, 5), probs((6, 3), axis=1)),
         (TypeError, r"LinearCrossEntropyLoss expected integer class labels .* got a float64 target of shape \(6, 3\)")),
    Case("LinearCrossEntropyLoss-kdim-weight-ignore-smoothing", LCE,
         lambda be, dt: _lce(be, dt, 5, 4, out_features=(3, 2), weight=CLASS_W, ignore_index=2, label_smoothing=0.1),
         xt((4, 5), labels((4, 3, 2), 4)),
         lambda nn: _torch_lce(nn, 5, 4, out_features=(3, 2), weight=CLASS_W, ignore_index=2, label_smoothing=0.1),
         xt((5,), fixed(1)),
         (ValueError, r"LinearCrossEntropyLoss with out_features=\(3, 2\) \(a K-dimensional loss\) expected batched "
                      r"input \(N, 5\), got unbatched \(5,\)")),
    Case("LinearCrossEntropyLoss-kdim-probs-bias-mean", LCE,
         lambda be, dt: _lce(be, dt, 3, 4, out_features=(2,), bias=True),
         xt((5, 3), probs((5, 4, 2), axis=1)),
         lambda nn: _torch_lce(nn, 3, 4, out_features=(2,), bias=True),
         xt((5, 3), fixed([[0, 1], [2, 3], [4, 0], [1, 1], [2, 2]])),
         (ValueError, r"LinearCrossEntropyLoss expected class labels in \[0, 4\), got labels from 0 to 4")),
    Case("LinearCrossEntropyLoss-unbatched-bias", LCE, lambda be, dt: _lce(be, dt, 5, 4, bias=True, label_smoothing=0.3),
         xt((5,), fixed(2)), lambda nn: _torch_lce(nn, 5, 4, bias=True, label_smoothing=0.3),
         xt((6, 5), fixed([0, 1, 2, 3, 4, 0])),
         (ValueError, r"LinearCrossEntropyLoss expected class labels in \[0, 4\), got labels from 0 to 4")),
    Case("LinearCrossEntropyLoss-unbatched-probs-sum", LCE, lambda be, dt: _lce(be, dt, 5, 4, reduction="sum"),
         xt((5,), probs((4,), axis=0)), lambda nn: _torch_lce(nn, 5, 4, reduction="sum"),
         xt((5,), fixed([0, 1, 2, 3])),
         (ValueError, r"LinearCrossEntropyLoss expected integer class labels of shape \(\) or float class probabilities "
                      r"of shape \(4,\) .* got integer labels of shape \(4,\)")),
    Case("LinearCrossEntropyLoss-frozen-weight", LCE,
         lambda be, dt: _frozen(_lce(be, dt, 5, 3, bias=True), "linear.weight"), xt((4, 5), labels((4,), 3)),
         lambda nn: _torch_lce(nn, 5, 3, bias=True), xt((4, 5), lambda rng: np.zeros(4)),
         (TypeError, r"LinearCrossEntropyLoss expected integer class labels .* got a float64 target of shape \(4,\); "
                     r"labels must be integers")),
]
