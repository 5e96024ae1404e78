"""Containers and training tools: Sequential and the optimizers."""

from .clip import clip_grad_norm
from .optim import SGD, Optimizer
from .optimizers import Adam, AdamW, RMSprop
from .schedules import CosineAnnealingLR, LinearWarmup, OneCycleLR, Schedule, StepLR
from .sequential import Sequential

__all__ = [
    "SGD", "Adam", "AdamW", "CosineAnnealingLR", "LinearWarmup", "OneCycleLR", "Optimizer", "RMSprop",
    "Schedule", "Sequential", "StepLR", "clip_grad_norm",
]
