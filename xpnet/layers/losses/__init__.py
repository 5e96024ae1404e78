"""Losses: ``forward(pred, target)`` returns the loss; ``backward(dy=1.0)`` returns d(loss)/d(pred).

Every loss takes ``reduction="mean"`` (default), ``"sum"`` or ``"none"`` (the per-element or
per-sample loss), as in ``torch.nn``; ``backward(..., target_grad=True)`` also gives the
gradient with respect to a float target.
"""

from .base import Loss
from .bce import BCEWithLogitsLoss
from .cross_entropy import CrossEntropyLoss
from .mse import MSELoss

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "Loss", "MSELoss"]
