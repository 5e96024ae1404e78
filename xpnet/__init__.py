"""xpnet: neural networks from scratch, with explicit forward and backward passes,
written once against the Python array API and run on NumPy, CuPy, PyTorch and array-api-strict.
"""

from . import backends, layers, nets
from .backends import manual_seed
from .layers import *  # noqa: F401,F403  (the layer and loss classes at top level, as in torch.nn)
from .layers import __all__ as _layer_names
from .nets import *  # noqa: F401,F403  (Sequential, the optimizers, schedules and clipping)
from .nets import __all__ as _net_names

__version__ = "0.1.0"

__all__ = ["backends", "layers", "nets", "manual_seed", *_net_names, *_layer_names]
