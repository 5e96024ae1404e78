"""xpnet: neural networks from scratch, with explicit forward and backward passes,
written once against the Python array API and run on NumPy, CuPy, PyTorch and array-api-strict.

>>> import xpnet as xn
>>> net = xn.Sequential(xn.Linear(64, 128), xn.ReLU(), xn.Linear(128, 10))
>>> history = xn.fit(net, xn.CrossEntropyLoss(), xn.Adam(net), xn.data.load_digits("train", flatten=True), epochs=20)
>>> xn.save("digits.xpnet", net)           # and xn.load("digits.xpnet").net
"""

import importlib

from . import amp, backends, data, distributed, layers, metrics, nets
from .amp import GradScaler, MixedPrecision
from .backends import manual_seed
from .layers import *  # noqa: F401,F403  (the layer and loss classes at top level, as in torch.nn)
from .layers import __all__ as _layer_names
from .nets import *  # noqa: F401,F403  (Sequential, optimizers, schedules, fit, callbacks, save/load)
from .nets import __all__ as _net_names
from .nets.interop import from_torch, to_torch
from .onnx import to_onnx
from .nets.spec import register

__version__ = "0.1.0"

__all__ = [
    "backends", "data", "distributed", "layers", "metrics", "nets", "plot", "manual_seed", "from_torch", "to_torch", "to_onnx", "register",
    "amp", "GradScaler", "MixedPrecision",
    *_net_names, *_layer_names,
]


def __getattr__(name):
    # xpnet.plot imports matplotlib (an optional extra) only when it is first used
    if name == "plot":
        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module 'xpnet' has no attribute {name!r}")
