"""Layers and losses, each with an explicit forward and backward written against the array API."""

from . import init
from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, Parameter
from .dropout import Dropout
from .linear import Linear
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, Loss, MSELoss
from .reshape import Flatten

__all__ = [
    "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout", "Flatten", "Identity", "Layer", "LeakyReLU",
    "Linear", "Loss", "MSELoss", "Parameter", "ReLU", "Sigmoid", "Softmax", "Tanh", "init",
]
