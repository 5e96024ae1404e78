"""Losses: ``forward(pred, target)`` returns the loss; ``backward(dy=1.0)`` returns d(loss)/d(pred).

Every loss takes ``reduction="mean"`` (default), ``"sum"`` or ``"none"`` (the per-element or
per-sample loss), as in ``torch.nn``; ``backward(..., target_grad=True)`` also gives the
gradient with respect to a float target. A loss of three or more inputs (a
:class:`MultiInputLoss`: MarginRankingLoss, CosineEmbeddingLoss, TripletMarginLoss,
GaussianNLLLoss, CTCLoss) returns a tuple of one gradient per input instead.
"""

from .base import Loss
from .bce import BCEWithLogitsLoss
from .cross_entropy import CrossEntropyLoss
from .mse import MSELoss
from .bce import BCELoss  # the two-input losses of issue 11
from .kl_div import KLDivLoss
from .margin import HingeEmbeddingLoss, MultiLabelSoftMarginLoss, SoftMarginLoss
from .multi_margin import MultiLabelMarginLoss, MultiMarginLoss
from .nll import NLLLoss
from .poisson import PoissonNLLLoss
from .regression import HuberLoss, L1Loss, SmoothL1Loss
from .base import MultiInputLoss  # the losses of three or more inputs, and CTC (issue 11)
from .ctc import CTCLoss
from .gaussian_nll import GaussianNLLLoss
from .ranking import CosineEmbeddingLoss, MarginRankingLoss
from .triplet import TripletMarginLoss
from .linear_cross_entropy import LinearCrossEntropyLoss  # issue 11: LinearCrossEntropyLoss

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "Loss", "MSELoss"]
__all__ += ["BCELoss", "HingeEmbeddingLoss", "HuberLoss", "KLDivLoss", "L1Loss", "MultiLabelMarginLoss",
            "MultiLabelSoftMarginLoss", "MultiMarginLoss", "NLLLoss", "PoissonNLLLoss", "SmoothL1Loss", "SoftMarginLoss"]
__all__ += ["CTCLoss", "CosineEmbeddingLoss", "GaussianNLLLoss", "MarginRankingLoss", "MultiInputLoss",
            "TripletMarginLoss"]
__all__ += ["LinearCrossEntropyLoss"]  # issue 11: LinearCrossEntropyLoss
