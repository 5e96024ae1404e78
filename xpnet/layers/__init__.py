"""Layers and losses, each with an explicit forward and backward written against the array API."""

from . import init
from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, Parameter, Signature, grad_enabled, no_grad, trains
from .conv import Conv2d
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, Loss, MSELoss
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .reshape import Flatten, Reshape, Unflatten

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "Conv2d",
    "CrossEntropyLoss", "Dropout", "Embedding", "Flatten", "Identity", "Layer", "LayerNorm", "LeakyReLU",
    "Linear", "Loss", "MSELoss", "MaxPool2d", "Parameter", "ReLU", "Reshape", "Sigmoid", "Signature", "Softmax", "Tanh",
    "Unflatten", "grad_enabled", "init", "no_grad", "trains",
]
