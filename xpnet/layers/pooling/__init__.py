"""Pooling, as ``torch.nn`` defines it, over 1, 2 or 3 spatial axes.

Inputs are ``(N, C, *S)`` (``S``: ``L``; ``H, W``; ``D, H, W``), or ``(C, *S)`` for one unbatched
sample (as torch accepts). The windowed pools work on the strided slices of the (padded) input,
one slice per kernel offset (:mod:`._windows`), and never materialise windows; backward adds
each slice's share of ``dy`` back into those same slices of a fresh ``dx``. Pools whose windows
are no strided slices gather them (:mod:`._gather`).

- :mod:`.max`: :class:`MaxPool1d`, :class:`MaxPool2d`, :class:`MaxPool3d` (dilation, ceil mode, ``return_indices``)
- :mod:`.avg`: :class:`AvgPool1d`, :class:`AvgPool2d`, :class:`AvgPool3d` (ceil mode, ``count_include_pad``, ``divisor_override``)
- :mod:`.lp`: :class:`LPPool1d`, :class:`LPPool2d`, :class:`LPPool3d` (``norm_type``, ceil mode)
- :mod:`.adaptive`: :class:`AdaptiveAvgPool1d`, :class:`AdaptiveAvgPool2d`, :class:`AdaptiveAvgPool3d`
- :mod:`.adaptive_max`: :class:`AdaptiveMaxPool1d`, :class:`AdaptiveMaxPool2d`, :class:`AdaptiveMaxPool3d`
- :mod:`.fractional`: :class:`FractionalMaxPool2d`, :class:`FractionalMaxPool3d`
"""

from .adaptive import AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d
from .adaptive_max import AdaptiveMaxPool1d, AdaptiveMaxPool2d, AdaptiveMaxPool3d
from .avg import AvgPool1d, AvgPool2d, AvgPool3d
from .fractional import FractionalMaxPool2d, FractionalMaxPool3d
from .lp import LPPool1d, LPPool2d, LPPool3d
from .max import MaxPool1d, MaxPool2d, MaxPool3d
from ._windows import Pool

__all__ = [
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "FractionalMaxPool2d", "FractionalMaxPool3d",
    "LPPool1d", "LPPool2d", "LPPool3d",
    "MaxPool1d", "MaxPool2d", "MaxPool3d",
]


def window_dims(cls) -> int:
    """How many axes the kernel of a windowed pool class has (0 for any other class): its
    constructor makes a table of the window's ``prod(kernel_size)`` positions."""
    return cls.nd if isinstance(cls, type) and issubclass(cls, Pool) else 0
