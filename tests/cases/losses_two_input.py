"""Cases of the two-input losses of issue 11: L1Loss, SmoothL1Loss, HuberLoss, NLLLoss, KLDivLoss,
BCELoss, PoissonNLLLoss, HingeEmbeddingLoss, SoftMarginLoss, MultiLabelSoftMarginLoss,
MultiLabelMarginLoss and MultiMarginLoss (every reduction, the options torch has, unbatched and
0-d inputs, class weights, ignored labels, integer targets)."""

from __future__ import annotations

import numpy as np

import xpnet as xn
from tests.layer_cases import CLASS_W, Case, _placed, _tensor, floats, labels, probs, with_target

W5 = np.array([0.5, 2.0, 1.0, 1.5, 0.25])
BCE_W3 = np.array([1.0, -0.5, 2.0])  # torch allows negative weights: nothing clamps them


def scaled(*shape, scale=1.0):
    return lambda rng: rng.standard_normal(shape) * scale


def signs(*shape):
    """Labels +-1 as floats."""
    return lambda rng: np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def counts(*shape):
    """Poisson counts, 1/2 added (torch's autograd gives NaN at 0 with full=True; xpnet gives the limit)."""
    return lambda rng: rng.poisson(2.0, size=shape) + 0.5


def pair(pred, target):
    """A prediction from ``pred(rng)`` and a target from ``target(rng)``."""
    return lambda rng: (np.asarray(pred(rng)), np.asarray(target(rng)))


def log_probs(*shape):
    return lambda rng: np.log(probs(shape, axis=1 if len(shape) > 1 else 0)(rng))


def fixed(values):
    return lambda rng: np.array(values, dtype=np.int64)


def bits(*shape):
    """0/1 labels as int64."""
    return lambda rng: rng.integers(0, 2, size=shape).astype(np.int64)


def _soft_margin(nn, reduction="mean"):
    """torch's SoftMarginLoss refuses a target that needs a gradient: the same loss, ``softplus(-t x)``,
    from differentiable torch functions, to check xpnet's target gradient against."""
    class SoftMargin(nn.Module):
        def forward(self, x, t):
            per = nn.functional.softplus(-t * x)
            return per.mean() if reduction == "mean" else per.sum() if reduction == "sum" else per
    return SoftMargin()


MLM_TARGET = [[3, 0, -1, 1, 2], [4, 4, 1, -1, -1], [-1, 2, 0, 0, 0], [0, 1, 2, 3, 4]]  # repeats count twice
SHAPE = r"expected target of shape"

CASES = [
    # regression
    Case("L1Loss", xn.L1Loss, lambda be, dt: xn.L1Loss(), with_target((3, 4), floats(3, 4)), lambda nn: nn.L1Loss(),
         with_target((3, 4), floats(4, 3)), (ValueError, r"L1Loss " + SHAPE + r" \(3, 4\) \(the prediction's\), got \(4, 3\)")),
    Case("L1Loss-sum-scalar", xn.L1Loss, lambda be, dt: xn.L1Loss("sum"), with_target((), floats()),
         lambda nn: nn.L1Loss(reduction="sum"), with_target((2,), lambda rng: np.zeros(2, dtype=np.int64)),
         (TypeError, r"L1Loss expected a floating-point \(float64\) target, got int64")),
    Case("L1Loss-none", xn.L1Loss, lambda be, dt: xn.L1Loss("none"), with_target((2, 3, 2), floats(2, 3, 2)),
         lambda nn: nn.L1Loss(reduction="none"), with_target((2,), floats(3)), (ValueError, r"L1Loss " + SHAPE)),
    Case("SmoothL1Loss", xn.SmoothL1Loss, lambda be, dt: xn.SmoothL1Loss(), with_target((4, 5), floats(4, 5)),
         lambda nn: nn.SmoothL1Loss(), with_target((4, 5), floats(5)), (ValueError, r"SmoothL1Loss " + SHAPE)),
    Case("SmoothL1Loss-beta-none", xn.SmoothL1Loss, lambda be, dt: xn.SmoothL1Loss("none", beta=0.7),
         with_target((3, 4), floats(3, 4)), lambda nn: nn.SmoothL1Loss(reduction="none", beta=0.7),
         with_target((3,), floats(4)), (ValueError, r"SmoothL1Loss " + SHAPE)),
    Case("SmoothL1Loss-beta0-sum", xn.SmoothL1Loss, lambda be, dt: xn.SmoothL1Loss("sum", beta=0.0),
         with_target((6,), floats(6)), lambda nn: nn.SmoothL1Loss(reduction="sum", beta=0.0),
         with_target((), floats(1)), (ValueError, r"SmoothL1Loss " + SHAPE + r" \(\)")),
    Case("HuberLoss", xn.HuberLoss, lambda be, dt: xn.HuberLoss(), with_target((4, 5), floats(4, 5)),
         lambda nn: nn.HuberLoss(), with_target((4, 5), floats(4, 4)), (ValueError, r"HuberLoss " + SHAPE)),
    Case("HuberLoss-delta-none-scalar", xn.HuberLoss, lambda be, dt: xn.HuberLoss("none", delta=0.6),
         with_target((), floats()), lambda nn: nn.HuberLoss(reduction="none", delta=0.6),
         with_target((2,), floats(2, 1)), (ValueError, r"HuberLoss " + SHAPE)),

    # class labels: NLLLoss
    Case("NLLLoss", xn.NLLLoss, lambda be, dt: xn.NLLLoss(), pair(log_probs(6, 4), labels((6,), 4)),
         lambda nn: nn.NLLLoss(), pair(log_probs(6, 4), fixed([0, 1, 4, 2, 3, 1])),
         (ValueError, r"NLLLoss expected class labels in \[0, 4\), got labels from 0 to 4")),
    Case("NLLLoss-weight-ignore-index", xn.NLLLoss,
         lambda be, dt: xn.NLLLoss(weight=CLASS_W, ignore_index=1, **_placed(be, dt)),
         pair(log_probs(6, 4), fixed([0, 1, 3, 2, 1, 3])),
         lambda nn: nn.NLLLoss(weight=_tensor(CLASS_W), ignore_index=1),
         pair(log_probs(6, 4), fixed([0, 1, -1, 2, 1, 3])),
         (ValueError, r"NLLLoss expected class labels in \[0, 4\), got labels from -1 to 3 "
                      r"\(ignore_index=1 aside\)")),
    Case("NLLLoss-4d-sum-weight", xn.NLLLoss, lambda be, dt: xn.NLLLoss(weight=CLASS_W, reduction="sum", **_placed(be, dt)),
         pair(log_probs(2, 4, 3, 2), labels((2, 3, 2), 4)),
         lambda nn: nn.NLLLoss(weight=_tensor(CLASS_W), reduction="sum"),
         pair(log_probs(2, 3, 3, 2), labels((2, 3, 2), 3)), (ValueError, r"NLLLoss.* has a weight for 4 classes but got input with 3")),
    Case("NLLLoss-3d-none-ignore", xn.NLLLoss, lambda be, dt: xn.NLLLoss(ignore_index=-1, reduction="none"),
         pair(log_probs(2, 3, 4), fixed([[0, -1, 2, 1], [2, 2, -1, 0]])),
         lambda nn: nn.NLLLoss(ignore_index=-1, reduction="none"),
         pair(log_probs(2, 3, 4), fixed([[0, 1], [2, 2]])),
         (ValueError, r"NLLLoss.* " + SHAPE + r" \(2, 4\) for input \(2, 3, 4\), got \(2, 2\)")),
    Case("NLLLoss-unbatched", xn.NLLLoss, lambda be, dt: xn.NLLLoss(weight=W5, **_placed(be, dt)),
         pair(log_probs(5), fixed(3)), lambda nn: nn.NLLLoss(weight=_tensor(W5)),
         pair(log_probs(5), lambda rng: np.array(1.0)),
         (TypeError, r"NLLLoss expected integer class labels as target, got float64 of shape \(\)")),

    # KLDivLoss
    Case("KLDivLoss", xn.KLDivLoss, lambda be, dt: xn.KLDivLoss(), pair(log_probs(3, 4), probs((3, 4), axis=1)),
         lambda nn: nn.KLDivLoss(), pair(log_probs(3, 4), probs((3, 5), axis=1)), (ValueError, r"KLDivLoss " + SHAPE)),
    Case("KLDivLoss-batchmean", xn.KLDivLoss, lambda be, dt: xn.KLDivLoss("batchmean"),
         pair(log_probs(4, 3), probs((4, 3), axis=1)), lambda nn: nn.KLDivLoss(reduction="batchmean"),
         pair(log_probs(4, 3), probs((4,))), (ValueError, r"KLDivLoss " + SHAPE)),
    Case("KLDivLoss-log-target-sum", xn.KLDivLoss, lambda be, dt: xn.KLDivLoss("sum", log_target=True),
         pair(log_probs(3, 4), log_probs(3, 4)), lambda nn: nn.KLDivLoss(reduction="sum", log_target=True),
         pair(log_probs(3, 4), log_probs(4, 3)), (ValueError, r"KLDivLoss.* " + SHAPE)),
    Case("KLDivLoss-none-scalar-batchmean", xn.KLDivLoss, lambda be, dt: xn.KLDivLoss("batchmean"),
         pair(lambda rng: np.log(rng.uniform(0.1, 0.9)), lambda rng: np.asarray(rng.uniform(0.1, 0.9))),
         lambda nn: nn.KLDivLoss(reduction="batchmean"),
         pair(log_probs(3), lambda rng: np.zeros(3, dtype=np.int64)), (TypeError, r"KLDivLoss.* target, got int64")),
    Case("KLDivLoss-none", xn.KLDivLoss, lambda be, dt: xn.KLDivLoss("none"), pair(log_probs(2, 3, 2), probs((2, 3, 2))),
         lambda nn: nn.KLDivLoss(reduction="none"), pair(log_probs(2, 3), probs((3, 2))), (ValueError, r"KLDivLoss.* " + SHAPE)),

    # BCELoss
    Case("BCELoss", xn.BCELoss, lambda be, dt: xn.BCELoss(), pair(probs((4, 3)), probs((4, 3))), lambda nn: nn.BCELoss(),
         pair(lambda rng: np.array([[0.5, 1.2], [0.0, 1.0]]), probs((2, 2))),
         (ValueError, r"BCELoss expected input probabilities in \[0, 1\] .*, got values from 0 to 1.2$")),
    Case("BCELoss-weight-sum", xn.BCELoss, lambda be, dt: xn.BCELoss(weight=BCE_W3, reduction="sum", **_placed(be, dt)),
         pair(probs((5, 3)), probs((5, 3))), lambda nn: nn.BCELoss(weight=_tensor(BCE_W3), reduction="sum"),
         pair(probs((5, 4)), probs((5, 4))), (ValueError, r"BCELoss.* has a weight of shape \(3,\), which does not broadcast")),
    Case("BCELoss-none-scalar-weight", xn.BCELoss, lambda be, dt: xn.BCELoss(weight=-1.5, reduction="none", **_placed(be, dt)),
         pair(lambda rng: np.asarray(rng.uniform(0.05, 0.95)), lambda rng: np.asarray(1.0)),
         lambda nn: nn.BCELoss(weight=_tensor(-1.5), reduction="none"),
         pair(probs((3,)), probs((2,))), (ValueError, r"BCELoss.* " + SHAPE)),

    # PoissonNLLLoss
    Case("PoissonNLLLoss", xn.PoissonNLLLoss, lambda be, dt: xn.PoissonNLLLoss(), pair(floats(3, 4), counts(3, 4)),
         lambda nn: nn.PoissonNLLLoss(), pair(floats(3, 4), counts(4)), (ValueError, r"PoissonNLLLoss " + SHAPE)),
    Case("PoissonNLLLoss-full-sum", xn.PoissonNLLLoss, lambda be, dt: xn.PoissonNLLLoss(full=True, reduction="sum"),
         pair(floats(2, 3, 2), counts(2, 3, 2)), lambda nn: nn.PoissonNLLLoss(full=True, reduction="sum"),
         pair(floats(2, 3), counts(2, 2)), (ValueError, r"PoissonNLLLoss " + SHAPE)),
    Case("PoissonNLLLoss-rate-full-none", xn.PoissonNLLLoss,
         lambda be, dt: xn.PoissonNLLLoss(log_input=False, full=True, eps=1e-6, reduction="none"),
         pair(lambda rng: rng.uniform(0.2, 3.0, size=(3, 4)), counts(3, 4)),
         lambda nn: nn.PoissonNLLLoss(log_input=False, full=True, eps=1e-6, reduction="none"),
         pair(floats(3), lambda rng: np.zeros(3, dtype=np.int64)), (TypeError, r"PoissonNLLLoss.* target, got int64")),

    # margins on labels +-1 / 0-1
    Case("HingeEmbeddingLoss", xn.HingeEmbeddingLoss, lambda be, dt: xn.HingeEmbeddingLoss(),
         pair(scaled(10, scale=2.0), signs(10)), lambda nn: nn.HingeEmbeddingLoss(),
         pair(floats(10), signs(9)), (ValueError, r"HingeEmbeddingLoss " + SHAPE + r" \(10,\)")),
    Case("HingeEmbeddingLoss-margin-none-int", xn.HingeEmbeddingLoss,
         lambda be, dt: xn.HingeEmbeddingLoss(margin=0.5, reduction="none"),
         pair(lambda rng: rng.standard_normal((3, 4)), lambda rng: np.where(rng.random((3, 4)) < 0.5, -1, 1)),
         lambda nn: nn.HingeEmbeddingLoss(margin=0.5, reduction="none"),
         pair(lambda rng: rng.integers(0, 2, size=(3, 4)), signs(3, 4)),
         (TypeError, r"HingeEmbeddingLoss.* expected a floating-point prediction, got int64")),
    Case("HingeEmbeddingLoss-scalar-sum", xn.HingeEmbeddingLoss, lambda be, dt: xn.HingeEmbeddingLoss(margin=2.0, reduction="sum"),
         pair(lambda rng: np.asarray(0.7), lambda rng: np.asarray(-1.0)),
         lambda nn: nn.HingeEmbeddingLoss(margin=2.0, reduction="sum"),
         pair(floats(2), signs(3)), (ValueError, r"HingeEmbeddingLoss.* " + SHAPE)),
    Case("SoftMarginLoss", xn.SoftMarginLoss, lambda be, dt: xn.SoftMarginLoss(),
         pair(scaled(4, 5, scale=3.0), lambda rng: np.where(rng.random((4, 5)) < 0.5, -1, 1)), lambda nn: nn.SoftMarginLoss(),
         pair(floats(4, 5), signs(5, 4)), (ValueError, r"SoftMarginLoss " + SHAPE)),
    Case("SoftMarginLoss-float-target-none", xn.SoftMarginLoss, lambda be, dt: xn.SoftMarginLoss("none"),
         pair(scaled(3, 4, scale=3.0), signs(3, 4)), lambda nn: _soft_margin(nn, "none"),
         pair(floats(3, 4), signs(3)), (ValueError, r"SoftMarginLoss.* " + SHAPE)),
    Case("SoftMarginLoss-sum-scalar", xn.SoftMarginLoss, lambda be, dt: xn.SoftMarginLoss("sum"),
         pair(lambda rng: np.asarray(-1.3), lambda rng: np.asarray(1.0)), lambda nn: _soft_margin(nn, "sum"),
         pair(floats(2), floats(2, 1)), (ValueError, r"SoftMarginLoss.* " + SHAPE)),
    Case("MultiLabelSoftMarginLoss", xn.MultiLabelSoftMarginLoss, lambda be, dt: xn.MultiLabelSoftMarginLoss(),
         pair(scaled(4, 5, scale=3.0), bits(4, 5)), lambda nn: nn.MultiLabelSoftMarginLoss(),
         pair(floats(4, 5), bits(4, 4)), (ValueError, r"MultiLabelSoftMarginLoss " + SHAPE)),
    Case("MultiLabelSoftMarginLoss-weight-none-float", xn.MultiLabelSoftMarginLoss,
         lambda be, dt: xn.MultiLabelSoftMarginLoss(weight=W5, reduction="none", **_placed(be, dt)),
         pair(scaled(3, 5, scale=2.0), probs((3, 5))),
         lambda nn: nn.MultiLabelSoftMarginLoss(weight=_tensor(W5), reduction="none"),
         pair(floats(3, 4), probs((3, 4))), (ValueError, r"MultiLabelSoftMarginLoss.* weight of shape \(5,\)")),
    Case("MultiLabelSoftMarginLoss-unbatched-sum", xn.MultiLabelSoftMarginLoss,
         lambda be, dt: xn.MultiLabelSoftMarginLoss(reduction="sum"), pair(scaled(5), bits(5)),
         lambda nn: nn.MultiLabelSoftMarginLoss(reduction="sum"),
         pair(lambda rng: np.asarray(0.5), lambda rng: np.asarray(1.0)),
         (ValueError, r"MultiLabelSoftMarginLoss.* expected input of shape \(C,\) or \(N, C\) with C >= 1, got \(\)")),

    # margins over classes
    Case("MultiMarginLoss", xn.MultiMarginLoss, lambda be, dt: xn.MultiMarginLoss(), pair(scaled(5, 4), labels((5,), 4)),
         lambda nn: nn.MultiMarginLoss(), pair(scaled(5, 4), fixed([0, 3, 4, 1, 2])),
         (ValueError, r"MultiMarginLoss expected class labels in \[0, 4\), got labels from 0 to 4")),
    Case("MultiMarginLoss-p2-margin-weight-sum", xn.MultiMarginLoss,
         lambda be, dt: xn.MultiMarginLoss(p=2, margin=0.7, weight=CLASS_W, reduction="sum", **_placed(be, dt)),
         pair(scaled(6, 4), labels((6,), 4)),
         lambda nn: nn.MultiMarginLoss(p=2, margin=0.7, weight=_tensor(CLASS_W), reduction="sum"),
         pair(scaled(6, 5), labels((6,), 5)), (ValueError, r"MultiMarginLoss.* has a weight for 4 classes but got input with 5")),
    Case("MultiMarginLoss-none-unbatched", xn.MultiMarginLoss, lambda be, dt: xn.MultiMarginLoss(margin=1.5, reduction="none"),
         pair(scaled(5), fixed(2)), lambda nn: nn.MultiMarginLoss(margin=1.5, reduction="none"),
         pair(scaled(5), fixed([2])), (ValueError, r"MultiMarginLoss.* " + SHAPE + r" \(\) for input \(5,\), got \(1,\)")),
    Case("MultiLabelMarginLoss", xn.MultiLabelMarginLoss, lambda be, dt: xn.MultiLabelMarginLoss(),
         pair(scaled(4, 5), fixed(MLM_TARGET)), lambda nn: nn.MultiLabelMarginLoss(),
         pair(scaled(2, 5), fixed([[0, 5, -1, 1, 2], [-2, 1, 0, 0, 0]])),
         (ValueError, r"MultiLabelMarginLoss expected class labels in \[-1, 5\) \(-1 ends a sample's labels\), "
                      r"got labels from -2 to 5")),
    Case("MultiLabelMarginLoss-none", xn.MultiLabelMarginLoss, lambda be, dt: xn.MultiLabelMarginLoss("none"),
         pair(scaled(4, 5), fixed(MLM_TARGET)), lambda nn: nn.MultiLabelMarginLoss(reduction="none"),
         pair(scaled(4, 5), fixed(MLM_TARGET[:3])), (ValueError, r"MultiLabelMarginLoss.* " + SHAPE + r" \(4, 5\)")),
    Case("MultiLabelMarginLoss-unbatched-sum", xn.MultiLabelMarginLoss, lambda be, dt: xn.MultiLabelMarginLoss("sum"),
         pair(scaled(5), fixed(MLM_TARGET[0])), lambda nn: nn.MultiLabelMarginLoss(reduction="sum"),
         pair(scaled(5), lambda rng: np.array(MLM_TARGET[0], dtype=np.float64)),
         (TypeError, r"MultiLabelMarginLoss.* expected integer class labels as target, got float64")),
]
