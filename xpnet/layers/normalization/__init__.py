"""Normalization layers, as ``torch.nn`` defines them (names, arguments, defaults, parameter
and buffer layouts: state dicts move between the two unchanged).

- :mod:`.batch_norm`: :class:`BatchNorm1d`, :class:`BatchNorm2d`, :class:`BatchNorm3d`
- :mod:`.instance_norm`: :class:`InstanceNorm1d`, :class:`InstanceNorm2d`, :class:`InstanceNorm3d`
- :mod:`.group_norm`: :class:`GroupNorm`
- :mod:`.layer_norm`: :class:`LayerNorm`, :class:`RMSNorm`
- :mod:`.local_response_norm`: :class:`LocalResponseNorm`

The channel norms share one forward and backward (:mod:`._channel`); every layer reduces rows
with the helpers of :mod:`._core`.
"""

from .batch_norm import BatchNorm1d, BatchNorm2d, BatchNorm3d
from .group_norm import GroupNorm
from .instance_norm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d
from .layer_norm import LayerNorm, RMSNorm
from .local_response_norm import LocalResponseNorm

__all__ = [
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d",
    "InstanceNorm3d", "LayerNorm", "LocalResponseNorm", "RMSNorm",
]
