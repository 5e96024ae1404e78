"""Mini-batches of a data set that lives on the device.

>>> from xpnet import data
>>> X, y = data.moons(200, backend="torch")
>>> for xb, yb in data.DataLoader(X, y, batch_size=32, shuffle=True):
...     ...                     # xb (32, 2), yb (32,); the last batch holds 200 - 6*32 = 8 samples
"""

from __future__ import annotations

import numbers

from .. import backends

__all__ = ["DataLoader", "ShardedLoader"]


def _backend_of_or_none(x):
    try:
        return backends.backend_of(x)
    except TypeError:  # Python data or another non-array
        return None


class DataLoader:
    """Iterate over mini-batches ``(xb, yb)`` of ``(X, y)`` (or ``xb`` alone when ``y`` is None).

    Shapes: ``X (N, *feature_shape)``, ``y (N, *target_shape)``; each batch is
    ``xb (B, *feature_shape)``, ``yb (B, *target_shape)`` with ``B = batch_size``, except
    the last one, which holds the ``N % batch_size`` remaining samples unless ``drop_last``.

    ``X`` and ``y`` may be arrays of any backend or numpy-convertible data. They are moved
    once, at construction, to ``backend`` (default: the backend ``X`` lives on when it is an
    array, else the current default backend) with :meth:`Backend.asarray`, and stay there
    for every epoch; dtypes are kept.

    Without ``shuffle`` each batch is a contiguous slice of the data (no copy). With
    ``shuffle`` every epoch (every ``iter()``) draws one permutation of ``range(N)`` on the
    device from ``generator`` (default: the backend's own generator, so a run is
    reproducible after ``backend.manual_seed(s)``), and each batch is one
    ``xp.take(X, idx, axis=0)`` with ``idx`` a slice of that permutation: no host round trip.

    ``len(loader)`` is the number of batches per epoch; ``loader.dataset_size`` is ``N``.
    """

    def __init__(self, X, y=None, batch_size=32, shuffle=False, drop_last=False, *, backend=None, generator=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if backend is None:
            target = _backend_of_or_none(X) or backends.get()
        else:
            target = backends.get(backend)
        X = target.asarray(X)
        if X.ndim < 1:
            raise ValueError(f"DataLoader: X must have at least one dimension (the samples), got shape {tuple(X.shape)}")
        if y is not None:
            y = target.asarray(y)
            if y.ndim < 1 or y.shape[0] != X.shape[0]:
                raise ValueError(
                    f"DataLoader: X and y must have the same first dimension (the samples), "
                    f"got X of shape {tuple(X.shape)} and y of shape {tuple(y.shape)}"
                )
            bx, by = backends.backend_of(X), backends.backend_of(y)
            if bx is not by:
                raise ValueError(f"DataLoader: X is on {bx.label} but y is on {by.label}")
        if generator is not None:
            if not isinstance(generator, backends.Generator):
                raise TypeError(f"DataLoader: generator must be an xpnet.backends.Generator, got {type(generator).__name__}")
            if getattr(generator, "_backend", target).name != target.name:
                raise ValueError(
                    f"DataLoader: the generator draws on {generator.backend.label}, but the data are on {target.label}"
                )
        self.backend = target
        self.X, self.y = X, y
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.generator = generator
        self.dataset_size = int(X.shape[0])

    def __len__(self) -> int:
        n, b = self.dataset_size, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def _bounds(self):
        n, b = self.dataset_size, self.batch_size
        for i in range(len(self)):
            yield i * b, min((i + 1) * b, n)

    def __iter__(self):
        X, y = self.X, self.y
        if not self.shuffle:
            for a, b in self._bounds():
                xb = X[a:b, ...]
                yield xb if y is None else (xb, y[a:b, ...])
            return
        be = self.backend
        xp = be.xp
        g = self.generator if self.generator is not None else be.rng
        perm = g.permutation(self.dataset_size, device=be.device)
        if backends.backend_of(perm) is not be:  # a generator of the same library on another device
            perm = be.asarray(perm)
        for a, b in self._bounds():
            idx = perm[a:b]
            xb = xp.take(X, idx, axis=0)
            yield xb if y is None else (xb, xp.take(y, idx, axis=0))

    def __repr__(self) -> str:
        return (f"DataLoader(dataset_size={self.dataset_size}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, backend={self.backend.label})")


class ShardedLoader:
    """One rank's part of every global batch of ``loader``, for data-parallel training.

    ``loader`` (a :class:`DataLoader`) defines the global batches: ``batch_size`` is the
    global batch, ``len(sharded) == len(loader)`` on every rank (a rank that took fewer steps
    would leave the others waiting in a collective). Global batch ``i`` holds the samples
    ``order[a:b]`` (``order``: ``range(N)``, or with ``loader.shuffle`` one permutation per epoch
    drawn from ``(seed, epoch)`` alone, the same on every rank and for every number of ranks);
    rank ``r`` of ``R`` takes its contiguous share ``order[a + m*r//R : a + m*(r+1)//R]``,
    ``m = b - a``: shares differ by at most one sample, none is taken twice, and a rank may get
    none of a last batch smaller than ``R`` (it then trains on nothing and sends zeros).
    :meth:`global_size` gives ``m``: the trainer weights each rank's gradient by its share
    ``n_r / m``, so the sum over the ranks is the global batch's. :meth:`set_epoch` picks the
    epoch (0-based) whose permutation the next ``iter()`` uses.
    """

    def __init__(self, loader, rank, world_size, seed=0):
        if not isinstance(loader, DataLoader):
            raise TypeError(f"ShardedLoader: expected a DataLoader, got {type(loader).__name__}")
        for name, v, low in (("world_size", world_size, 1), ("rank", rank, 0), ("seed", seed, 0)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise ValueError(f"ShardedLoader: {name} must be an int >= {low}, got {v!r}")
        if rank >= world_size:
            raise ValueError(f"ShardedLoader: rank {rank} is not below world_size {world_size}")
        self.loader, self.rank, self.world_size, self.seed = loader, int(rank), int(world_size), int(seed)
        self.backend, self.dataset_size, self.batch_size = loader.backend, loader.dataset_size, loader.batch_size
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def global_size(self, i) -> int:
        """The number of samples of global batch ``i`` (1-based), over all ranks."""
        b = self.batch_size
        return min(i * b, self.dataset_size) - (i - 1) * b

    def _share(self, a, b):
        m, r, n = b - a, self.rank, self.world_size
        return a + m * r // n, a + m * (r + 1) // n

    def __iter__(self):
        from ..backends import _buffers

        X, y, be = self.loader.X, self.loader.y, self.backend
        perm = None
        if self.loader.shuffle:
            perm = be.asarray(_buffers.permutation(self.dataset_size, self.seed, self.epoch))
        for a, b in self.loader._bounds():
            lo, hi = self._share(a, b)
            if perm is None:
                xb, yb = X[lo:hi, ...], None if y is None else y[lo:hi, ...]
            else:
                idx = perm[lo:hi]
                xb, yb = be.xp.take(X, idx, axis=0), None if y is None else be.xp.take(y, idx, axis=0)
            yield xb if y is None else (xb, yb)

    def __repr__(self) -> str:
        return (f"ShardedLoader(rank={self.rank}, world_size={self.world_size}, seed={self.seed}, "
                f"{self.loader!r})")
