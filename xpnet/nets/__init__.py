"""Containers and training tools: Sequential and the optimizers."""

from .optim import SGD, Optimizer
from .sequential import Sequential

__all__ = ["SGD", "Optimizer", "Sequential"]
