"""AdaptiveMaxPool1d, AdaptiveMaxPool2d, AdaptiveMaxPool3d: the max over windows sized to give a
fixed output, gradient routed to one winner per window."""

from __future__ import annotations

from .._checks import require_float
from ...validate import flag
from ._gather import GatheredMax
from .adaptive import Adaptive, _adaptive_windows


def adaptive_positions(xp, size, out, device):
    """For one axis, the positions each window offset reads (see :func:`._gather.gathered_max`):
    offset ``i`` of window ``a`` reads ``min(start_a + i, end_a - 1)``, over the longest window."""
    windows = _adaptive_windows(size, out)
    longest = max(b - a for a, b in windows)
    return [xp.asarray([min(a + i, b - 1) for a, b in windows], dtype=xp.int64, device=device) for i in range(longest)]


class _AdaptiveMaxPool(GatheredMax, Adaptive):
    """Max over adaptive windows giving a fixed output size, as ``torch.nn.AdaptiveMaxPoolNd``
    (the subclasses fix ``nd``).

    Output cell ``a`` along an axis of input size ``L`` and output size ``O`` takes the max over
    positions ``[floor(a*L/O), ceil((a+1)*L/O))``; ``output_size`` is an int or ``nd`` of them,
    ``None`` keeping that axis's input size. Shapes: ``(N, C, *S) -> (N, C, *O)`` (the batch axis
    optional).

    Each window's winner is torch's: its last NaN if it holds one, else its first maximum in
    scan order (the last axis fastest), so ties never duplicate gradient; an element winning
    several (overlapping) windows gets the sum of their gradients. ``return_indices=True``:
    forward returns ``(y, indices)``, the winners' flat positions in their input plane (int64,
    as torch's), and backward is ``backward(dy, dindices=None)``. Keeps the winners' indices
    and the input's shape.
    """

    _config_fields = ('output_size', 'return_indices')

    def __init__(self, output_size, return_indices=False):
        super().__init__(output_size)
        self.return_indices = flag(type(self).__name__, "return_indices", return_indices)

    def forward(self, x):
        xp = require_float(self._tag(), x).xp
        xb, unbatched, size, out = self._sizes(x)
        return self._max_over(xp, xb, unbatched, [adaptive_positions(xp, n, o, x.device) for n, o in zip(size, out)])


class AdaptiveMaxPool1d(_AdaptiveMaxPool):
    """Max over adaptive windows of ``(N, C, L)`` (or ``(C, L)``), as ``torch.nn.AdaptiveMaxPool1d``:
    output ``a`` of ``O`` is the max over ``[floor(a*L/O), ceil((a+1)*L/O))``; see
    :class:`_AdaptiveMaxPool`. Shapes: ``(N, C, L) -> (N, C, O)``."""

    nd = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPool):
    """Max over adaptive windows of ``(N, C, H, W)`` (or 3-D), as ``torch.nn.AdaptiveMaxPool2d``:
    output ``(a, b)`` is the max over rows ``[floor(a*H/OH), ceil((a+1)*H/OH))`` and columns
    likewise; see :class:`_AdaptiveMaxPool`. Shapes: ``(N, C, H, W) -> (N, C, OH, OW)``."""

    nd = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPool):
    """Max over adaptive windows of ``(N, C, D, H, W)`` (or 4-D), as ``torch.nn.AdaptiveMaxPool3d``;
    see :class:`_AdaptiveMaxPool`. Shapes: ``(N, C, D, H, W) -> (N, C, OD, OH, OW)``."""

    nd = 3
