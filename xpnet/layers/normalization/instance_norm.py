"""InstanceNorm1d, InstanceNorm2d and InstanceNorm3d, one N-D layer, as ``torch.nn`` defines them."""

from __future__ import annotations

import warnings

from .._checks import shape_str
from .batch_norm import _NormBase


class _InstanceNorm(_NormBase):
    """Instance normalization: per sample and channel ``(n, c)``, over the ``m = prod(spatial)``
    values of that channel in that sample (see :mod:`._channel`)::

        xhat = (x - mean) / sqrt(var + eps)   (biased variance),   y = weight * xhat + bias

    ``InstanceNorm*d(num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False,
    *, bias=True)`` as torch: no parameters and no buffers by default, the instance statistics in
    training and in eval mode alike. With ``track_running_stats``, training updates
    ``running_mean``/``running_var`` with the statistics averaged over the batch (``f = momentum``;
    ``momentum=None`` leaves them as they are, as torch's ``instance_norm`` takes it as 0)::

        running_mean <- (1 - f) running_mean + f mean_n(mean)
        running_var  <- (1 - f) running_var  + f mean_n(var * m / (m - 1))

    and eval mode normalizes with them; ``num_batches_tracked`` stays 0 (torch never counts).

    Input ``(N, C, *spatial)`` or, unbatched, ``(C, *spatial)``; the output has its shape.
    As torch: a channel count other than ``num_features`` is an error when ``affine`` (and with
    running statistics), a warning otherwise; one value per channel in training is an error.
    """

    _spatial: int = 1  # spatial axes after the channel axis

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = False,
                 track_running_stats: bool = False, *, bias: bool = True, backend=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, bias=bias,
                         backend=backend, dtype=dtype)

    def _geometry(self, tag, x):
        shape = tuple(x.shape)
        k = self._spatial
        if len(shape) not in (k + 1, k + 2):
            raise ValueError(f"{tag} expected input {self._expected()}, got {shape_str(shape)}")
        batched = len(shape) == k + 2
        axis = 1 if batched else 0
        c = shape[axis]
        if c != self.num_features:
            if self.affine or self.track_running_stats:
                why = "its weight and bias" if self.affine else "its running statistics"
                raise ValueError(
                    f"{tag} expected input with {self.num_features} channels at axis {axis} (the size of {why}), "
                    f"got {shape_str(shape)}"
                )
            warnings.warn(
                f"{tag}: the input's size at dim={axis} ({c}) does not match num_features "
                f"({self.num_features}); num_features is not used because affine=False",
                UserWarning, stacklevel=4,  # the caller's line: layer(x) -> forward -> here
            )
        s = 1
        for d in shape[axis + 1:]:
            s *= d
        return (shape[0] if batched else 1), c, s

    def _expected(self):
        c = self.num_features
        spatial = {1: "L", 2: "H, W", 3: "D, H, W"}[self._spatial]
        return f"(N, {c}, {spatial}) or ({c}, {spatial})"

    def _pool(self, xp, v):
        return v

    def _count(self, n, c, s):
        return s

    def _too_few(self, tag, shape):
        return ValueError(
            f"{tag}: expected more than 1 spatial element when training, got input of shape {shape_str(shape)}"
        )

    def _factor(self, xp):
        return 0.0 if self.momentum is None else self.momentum


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of ``(N, C, L)`` or ``(C, L)`` input; see :class:`_InstanceNorm`."""

    _spatial = 1


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of ``(N, C, H, W)`` or ``(C, H, W)`` input; see :class:`_InstanceNorm`."""

    _spatial = 2


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization of ``(N, C, D, H, W)`` or ``(C, D, H, W)`` input; see :class:`_InstanceNorm`."""

    _spatial = 3
