"""2-D pooling: MaxPool2d, AvgPool2d and AdaptiveAvgPool2d, as ``torch.nn`` defines them.

Inputs are ``(N, C, H, W)``, or ``(C, H, W)`` for one unbatched sample (as torch accepts).
Windows are never materialised: the windowed pools work on the ``KH * KW`` strided slices of
the (padded) input, one slice per kernel offset (:mod:`._windows`); backward adds each slice's
share of ``dy`` back into those same slices of a fresh ``dx``.

- :mod:`.max`: :class:`MaxPool2d` (dilation, ceil mode, ``return_indices``)
- :mod:`.avg`: :class:`AvgPool2d` (ceil mode, ``count_include_pad``, ``divisor_override``)
- :mod:`.adaptive`: :class:`AdaptiveAvgPool2d`
"""

from .adaptive import AdaptiveAvgPool2d
from .avg import AvgPool2d
from .max import MaxPool2d

__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d"]
