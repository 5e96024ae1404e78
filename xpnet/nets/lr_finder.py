"""Leslie Smith's learning-rate range test (as fastai's ``lr_find`` and torch-lr-finder).

Train for up to ``num_steps`` batches while the lr grows exponentially from ``start_lr`` to
``end_lr``, recording a smoothed loss, and stop once that loss exceeds ``diverge`` times the
best so far. The lr where the smoothed loss falls fastest is the ``suggestion``; a good lr is
there or a little lower. The net's weights, buffers, gradients and layer modes and the
optimizer's state and lrs are put back afterwards, so the test leaves no trace but the random
draws it made (shuffles, dropout masks)::

    result = xn.lr_find(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y))
    result.suggestion, result.plot("runs/lr.png")
"""

from __future__ import annotations

import dataclasses
import math

from .. import backends
from ..validate import integer, real
from .callbacks import Callback
from .evaluate import as_loader, net_backend
from .fit import fit


class LRFinder(Callback):
    """The range test as a :func:`~xpnet.fit` callback (what :func:`lr_find` runs).

    Before batch ``i`` (0-based, counted across epochs) it sets every group's lr to
    ``start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))``; after it, it records that lr
    (``lrs``), the batch loss (``raw_losses``) and the smoothed loss (``losses``, fastai's
    debiased moving average: ``avg = smooth * avg + (1 - smooth) * loss``, reported as
    ``avg / (1 - smooth ** (i + 1))``). It halts fit (``state.halt``) after ``num_steps``
    batches, or once the smoothed loss is not finite or exceeds ``diverge`` times the lowest so
    far (``diverged`` is then True). One batch should be one optimizer step (``accumulate=1``).

    It reads every batch loss (``float``: one host synchronisation per batch on a GPU), as it
    must: whether to go on depends on it.
    """

    order = -10  # the lr is set before any other hook sees the batch

    def __init__(self, start_lr=1e-7, end_lr=10.0, num_steps=100, smooth=0.98, diverge=4.0):
        n = "LRFinder"
        self.start_lr = real(n, "start_lr", start_lr, lo=0.0, lo_open=True)
        self.end_lr = real(n, "end_lr", end_lr, lo=self.start_lr, lo_open=True)
        if math.isinf(self.end_lr):
            raise ValueError(f"{n}: end_lr must be finite, got {end_lr!r}")
        self.num_steps = integer(n, "num_steps", num_steps, minimum=2)
        self.smooth = real(n, "smooth", smooth, lo=0.0, hi=1.0, hi_open=True)
        self.diverge = real(n, "diverge", diverge, lo=1.0, lo_open=True)
        self.lrs, self.losses, self.raw_losses = [], [], []
        self.best, self.diverged = math.inf, False
        self._avg = 0.0

    def lr_at(self, i):
        """The lr of batch ``i`` (0-based)."""
        return self.start_lr * (self.end_lr / self.start_lr) ** (i / (self.num_steps - 1))

    def on_batch_begin(self, state, logs):
        lr = self.lr_at(len(self.lrs))
        for g in state.optimizer.param_groups:
            g["lr"] = lr

    def on_batch_end(self, state, logs):
        i = len(self.lrs)
        v = float(logs["loss"])  # the one host read per batch that the test needs
        self._avg = self.smooth * self._avg + (1.0 - self.smooth) * v
        smoothed = self._avg / (1.0 - self.smooth ** (i + 1))
        self.lrs.append(self.lr_at(i))
        self.raw_losses.append(v)
        self.losses.append(smoothed)
        if math.isfinite(smoothed):
            self.best = min(self.best, smoothed)
        if not math.isfinite(smoothed) or smoothed > self.diverge * self.best:
            self.diverged = state.halt = True
        elif len(self.lrs) >= self.num_steps:
            state.halt = True


@dataclasses.dataclass
class LRFinderResult:
    """What :func:`lr_find` measured: per batch, the ``lrs``, the smoothed ``losses`` and the
    ``raw_losses``; ``diverged``: whether it stopped on divergence; ``suggestion``: the lr of
    steepest descent of the smoothed loss against log(lr) (None with fewer than 2 finite points)."""

    lrs: list
    losses: list
    raw_losses: list
    diverged: bool
    suggestion: float | None

    def plot(self, path, *, title=None):
        """The smoothed loss against the lr (log scale), the suggestion marked, as a PNG at
        ``path`` (needs matplotlib: ``pip install 'xpnet[plot]'``); returns the path."""
        from ..plot import _common as c

        m = c.mpl()
        fig = c.figure(m, 550, 400)
        ax = fig.subplots()
        ax.plot(self.lrs, self.losses, color="C0", label="smoothed loss")
        if self.suggestion is not None:
            y = self.losses[self.lrs.index(self.suggestion)]
            ax.plot([self.suggestion], [y], marker="o", markersize=8, color="C3", linestyle="none",
                    label=f"steepest descent: lr {self.suggestion:.3g}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title(title or "learning-rate range test")
        ax.grid(True, alpha=0.3)
        ax.legend()
        return c.save(m, fig, path)


def steepest(lrs, losses, skip_start=10, skip_end=5):
    """The lr where ``losses`` fall fastest against log(lr): the minimum of the central
    difference ``(l[i+1] - l[i-1]) / (log lr[i+1] - log lr[i-1])`` (one-sided at the ends), over
    the finite points less the first ``skip_start`` and last ``skip_end`` (torch-lr-finder's
    defaults) where more than twice as many as those remain; None with fewer than 2 points."""
    pts = [(math.log(lr), v, lr) for lr, v in zip(lrs, losses) if math.isfinite(v)]
    if len(pts) > 2 * (skip_start + skip_end):
        pts = pts[skip_start:len(pts) - skip_end]
    if len(pts) < 2:
        return None

    def slope(i):
        a, b = max(i - 1, 0), min(i + 1, len(pts) - 1)
        return (pts[b][1] - pts[a][1]) / (pts[b][0] - pts[a][0])

    return pts[min(range(len(pts)), key=slope)][2]


def lr_find(net, loss, optimizer, train, *, start_lr=1e-7, end_lr=10.0, num_steps=100, batch_size=32,
            smooth=0.98, diverge=4.0, shuffle=True, progress=False) -> LRFinderResult:
    """Run the range test (:class:`LRFinder`) on ``train`` (an ``(X, y)`` pair or a DataLoader)
    with ``optimizer`` (its lrs are overwritten during the test), for ``num_steps`` batches
    (over several epochs where the data hold fewer) or until the loss diverges, then put the
    net and the optimizer back as they were. The NaN guard is off: a diverging loss is the
    expected end of the test. Returns an :class:`LRFinderResult`."""
    finder = LRFinder(start_lr, end_lr, num_steps, smooth, diverge)
    be = net_backend(net, "lr_find")
    loader = as_loader(train, batch_size, shuffle, be, "lr_find")
    saved = _Snapshot(net, optimizer)
    try:
        fit(net, loss, optimizer, loader, epochs=-(-finder.num_steps // len(loader)), callbacks=[finder],
            progress=progress, guard=False)
    finally:
        saved.restore()
    return LRFinderResult(finder.lrs, finder.losses, finder.raw_losses, finder.diverged,
                          steepest(finder.lrs, finder.losses))


class _Snapshot:
    """The net's parameters (data, grad), buffers and layer modes, and the optimizer's state
    dict with its buffers copied (steps update them in place), to put back afterwards."""

    def __init__(self, net, optimizer):
        self.net, self.optimizer = net, optimizer
        # xpnet rebinds parameters and buffers rather than updating them: the objects are a snapshot
        self.entries = [(owner, attr, is_param, getattr(owner, attr)) for _, owner, attr, is_param in net.state_entries()]
        self.values = [(e[3].data, e[3].grad) if e[2] else e[3] for e in self.entries]
        self.modes = [(layer, layer.training) for _, layer in net.named_modules()]
        sd = optimizer.state_dict()
        sd["state"] = {i: {k: _copy(v) for k, v in st.items()} for i, st in sd["state"].items()}
        self.opt_state = sd

    def restore(self):
        for (owner, attr, is_param, obj), value in zip(self.entries, self.values):
            if is_param:
                obj.data, obj.grad = value
            else:
                setattr(owner, attr, value)
        for layer, mode in self.modes:
            layer.training = mode
        self.optimizer.load_state_dict(self.opt_state)


def _copy(v):
    if isinstance(v, (bool, int, float)) or v is None:
        return v
    return backends.backend_of(v).asarray(v, copy=True)
