"""FractionalMaxPool2d, FractionalMaxPool3d: max pooling over windows placed at pseudo-random
steps (Graham, "Fractional Max-Pooling", 2014), exactly as torch places them."""

from __future__ import annotations

from ... import backends
from .._checks import place, require_array, require_float, shape_str
from ...validate import flag, int_tuple, real
from ._gather import GatheredMax
from ._windows import AXES, batched


def fractional_starts(xp, u, size, out, k):
    """torch's window starts along one axis, ``(N, C, out)`` int64, from each plane's sample
    ``u`` ``(N, C)`` in ``[0, 1)``: with ``alpha = (size - k) / (out - 1)``, window ``i < out - 1``
    starts at ``int((i + u) alpha) - int(u alpha)`` and the last at ``size - k``; computed in
    ``u``'s dtype, as torch computes them in the input's."""
    n, c = u.shape
    last = xp.full((n, c, 1), size - k, dtype=xp.int64, device=u.device)
    if out == 1:
        return last
    alpha = xp.asarray(float(size - k), dtype=u.dtype, device=u.device) / float(out - 1)
    i = xp.arange(out - 1, dtype=u.dtype, device=u.device)
    u = u[..., None]
    starts = xp.astype((i + u) * alpha, xp.int64) - xp.astype(u * alpha, xp.int64)
    return xp.concat([starts, last], axis=-1)


def _ratios(owner, value, nd):
    vals = value if isinstance(value, (tuple, list)) else (value,) * nd
    if len(vals) != nd:
        raise ValueError(f"{owner}: output_ratio must be a number in (0, 1) or {nd} of them, got {value!r}")
    return tuple(real(owner, "output_ratio", v, 0.0, 1.0, lo_open=True, hi_open=True) for v in vals)


class _FractionalMaxPool(GatheredMax):
    """Max over ``kernel_size`` windows at pseudo-random steps, as ``torch.nn.FractionalMaxPoolNd``
    (the subclasses fix ``nd``).

    Along an axis of input size ``L``, output size ``O`` (``output_size``, or ``int(L *
    output_ratio)`` with a ratio in (0, 1)) and kernel ``k``, window ``i`` covers ``[start_i,
    start_i + k)`` with ``alpha = (L - k) / (O - 1)``, ``start_i = int((i + u) alpha) - int(u alpha)``
    for ``i < O - 1`` and ``start_{O-1} = L - k``: a step of ``floor(alpha)`` or ``ceil(alpha)``,
    fixed by one sample ``u`` in [0, 1) per plane and axis. The samples are ``_random_samples``
    ``(N', C, nd)`` (``N' >= N``; plane ``(n, c)`` uses row ``n``; in 2-D ``[..., 0]`` drives the
    width and ``[..., 1]`` the height, in 3-D ``[..., 0, 1, 2]`` depth, height, width, as torch
    reads them) when given (a buffer: saved in the state dict), else drawn from the input
    backend's generator at every forward, as torch draws them (training or not). The window
    starts are computed in the input's dtype, as torch computes them (given samples of another
    float dtype are rounded to it first, where torch would refuse them).

    Each window's winner is torch's (its last NaN if any, else its first maximum in scan
    order); ``return_indices=True`` gives ``(y, indices)``, the winners' flat positions in their
    input plane. Shapes: ``(N, C, *S) -> (N, C, *O)`` (the batch axis optional). Needs
    ``O + k - 1 <= L`` per axis (3-D: ``O + k - 1 < L``, as torch's FractionalMaxPool3d checks).
    Keeps the winners' indices and the input's shape.
    """

    nd = 2
    _sample_axes = (1, 0)  # which sample drives each spatial axis (torch's 2-D reads (W, H))
    _buffer_names = ("_random_samples",)
    _config_fields = ('kernel_size', 'output_size', 'output_ratio', 'return_indices', '_random_samples')

    def __init__(self, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                 _random_samples=None, *, backend=None, dtype=None):
        owner, nd = type(self).__name__, self.nd
        self.kernel_size = int_tuple(owner, "kernel_size", kernel_size, nd, 1)
        if (output_size is None) == (output_ratio is None):
            raise ValueError(f"{owner}: give exactly one of output_size and output_ratio, "
                             f"got output_size={output_size!r}, output_ratio={output_ratio!r}")
        self.output_size = None if output_size is None else int_tuple(owner, "output_size", output_size, nd, 1)
        self.output_ratio = None if output_ratio is None else _ratios(owner, output_ratio, nd)
        self.return_indices = flag(owner, "return_indices", return_indices)
        self._random_samples = self._samples(_random_samples, backend, dtype)

    def _samples(self, value, backend, dtype):
        """``value`` (None, an array of any backend, or nested lists) as a float buffer of shape
        ``(N, C, nd)`` with values in [0, 1), on ``backend`` (default: the array's, else the
        current one) in ``dtype`` (default: the array's float dtype, else float32, as every
        layer's arrays)."""
        if value is None:
            return None
        owner = type(self).__name__
        src = require_array(owner, value, "_random_samples") if hasattr(value, "shape") else None
        be = backends.get(backend) if backend is not None or src is None else src
        if dtype is None:
            dtype = src.dtype_name(value.dtype) if src is not None and src.is_float(value.dtype) else "float32"
        try:
            arr = be.asarray(value, dtype=dtype, copy=True)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{owner}: _random_samples must be None, an array or nested lists of numbers ({e})") from None
        host = backends.to_numpy(arr)  # the constructor may read: checked once here
        if arr.ndim != 3 or arr.shape[2] != self.nd or not ((host >= 0) & (host < 1)).all():
            raise ValueError(f"{owner}: _random_samples must be of shape (N, C, {self.nd}) with values in [0, 1), "
                             f"got shape {shape_str(arr.shape)}")
        return arr

    def config(self):
        out = {f: getattr(self, f) for f in self._config_fields}
        for f in ("kernel_size", "output_size", "output_ratio"):
            out[f] = None if out[f] is None else list(out[f])
        s = self._random_samples
        out["_random_samples"] = None if s is None else backends.to_numpy(s).astype("float64").tolist()
        return out

    def _output(self, x, size):
        """The output's spatial size for an input of spatial ``size``, after torch's checks."""
        out = self.output_size or tuple(int(n * r) for n, r in zip(size, self.output_ratio))
        strict = self.nd == 3  # torch's 3-D kernel wants O + k - 1 < L, its 2-D one O + k - 1 <= L
        need = tuple(o + k - (0 if strict else 1) for o, k in zip(out, self.kernel_size))
        if min(out) < 1 or any(n < m for n, m in zip(size, need)):
            rule = "output_size + kernel_size" + ("" if strict else " - 1")
            raise ValueError(
                f"{self._tag()} expected an input of at least {'x'.join(map(str, need))} ({rule}, output size "
                f"{'x'.join(map(str, out))}), got {shape_str(x.shape)}"
            )
        return out

    def _plane_samples(self, be, x, n, c):
        """The samples of the ``n x c`` planes in the input's dtype: the buffer's first ``n`` rows
        (rounded to that dtype, as torch wants them in it), or fresh draws."""
        s = self._random_samples
        if s is None:
            return be.rng.uniform((n, c, self.nd), dtype=x.dtype, device=x.device)
        tag = self._tag()
        if type(s) is not type(x) or s.device != x.device:
            raise ValueError(f"{tag} has its _random_samples on {place(s)} but the input on {place(x)}; "
                             f"move the layer with .to({be.label!r})")
        if s.shape[0] < n or s.shape[1] != c:
            raise ValueError(f"{tag} has _random_samples of shape {shape_str(s.shape)}, which needs a batch of at "
                             f"most {s.shape[0]} and {s.shape[1]} channels, got an input of shape {shape_str(x.shape)}")
        return s[:n, ...] if s.dtype == x.dtype else be.xp.astype(s[:n, ...], x.dtype)

    def forward(self, x):
        be = require_float(self._tag(), x)
        xp = be.xp
        xb, unbatched = batched(self, x)
        n, c, *size = xb.shape
        if n < 1 or c < 1 or min(size) < 1:
            names = ", ".join(("N", "C") + AXES[self.nd])
            raise ValueError(f"{self._tag()} expected a non-empty input ({names} >= 1), got shape {shape_str(x.shape)}")
        out = self._output(x, size)
        u = self._plane_samples(be, x, n, c)
        positions = []
        for a, (L, o, k) in enumerate(zip(size, out, self.kernel_size)):
            starts = fractional_starts(xp, u[:, :, self._sample_axes[a]], L, o, k)
            positions.append([starts + j for j in range(k)])
        return self._max_over(xp, xb, unbatched, positions)

    def extra_repr(self):
        size = f"output_size={self.output_size}" if self.output_size else f"output_ratio={self.output_ratio}"
        return f"kernel_size={self.kernel_size}, {size}"


class FractionalMaxPool2d(_FractionalMaxPool):
    """Fractional max pooling of ``(N, C, H, W)`` (or 3-D), as ``torch.nn.FractionalMaxPool2d``:
    ``KH x KW`` windows at pseudo-random steps giving an ``OH x OW`` output; see
    :class:`_FractionalMaxPool`. ``_random_samples``: ``(N, C, 2)``, ``[..., 0]`` for the width,
    ``[..., 1]`` for the height."""

    nd = 2
    _sample_axes = (1, 0)


class FractionalMaxPool3d(_FractionalMaxPool):
    """Fractional max pooling of ``(N, C, D, H, W)`` (or 4-D), as ``torch.nn.FractionalMaxPool3d``:
    ``KD x KH x KW`` windows at pseudo-random steps; see :class:`_FractionalMaxPool`.
    ``_random_samples``: ``(N, C, 3)``, for depth, height and width."""

    nd = 3
    _sample_axes = (0, 1, 2)
