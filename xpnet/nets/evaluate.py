"""Evaluation: ``evaluate`` (loss, accuracy and any :mod:`~xpnet.metrics` over a data set) and
``predict`` (outputs), in eval mode.

Both run in batches on the device; running sums stay on the device and are read back once.
"""

from __future__ import annotations

import contextlib
import math

from .. import backends
from .. import metrics as _metrics
from ..data.loader import DataLoader
from ..layers.base import no_grad
from ..layers.losses import BCEWithLogitsLoss, CrossEntropyLoss, Loss


def net_backend(net, where="fit"):
    """The Backend the net's parameters (or buffers) live on."""
    for p in net.parameters():
        return backends.backend_of(p.data)
    for _, b in net.named_buffers():
        return backends.backend_of(b)
    raise ValueError(f"{where}: the net has no parameters or buffers to say which backend it runs on")


def as_loader(data, batch_size, shuffle, be, where):
    """``data`` (an ``(X, y)`` pair or a DataLoader) as a DataLoader on backend ``be``."""
    if isinstance(data, DataLoader):
        if data.backend is not be:
            raise ValueError(f"{where}: the data are on {data.backend.label} but the net is on {be.label}")
        loader = data
    elif not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{where}: expected an (X, y) pair or a DataLoader, got {type(data).__name__}")
    else:
        loader = DataLoader(data[0], data[1], batch_size=batch_size, shuffle=shuffle, backend=be)
    return _nonempty(loader, where)


def _nonempty(loader, where):
    if len(loader) == 0:
        raise ValueError(f"{where}: no batches: the data have {loader.dataset_size} samples"
                         + (" (fewer than one batch, with drop_last)" if loader.dataset_size else ""))
    return loader


@contextlib.contextmanager
def eval_mode(net):
    """Inference inside the block: evaluation mode (dropout off, running statistics) and
    :func:`~xpnet.layers.base.no_grad` (forwards keep nothing for a backward). Afterwards every
    layer gets back its own previous mode, so a net that was partly in eval mode stays so."""
    saved = [(layer, layer.training) for _, layer in net.named_modules()]
    net.eval()
    try:
        with no_grad():
            yield net
    finally:
        for layer, mode in saved:
            layer.training = mode


def _class_hits(xp, out, yb, ignore_index):
    """``(hits, counted)`` of a CrossEntropyLoss batch: the argmax over the class axis (1)
    against the labels, at every position of ``(N, C, d1, ...)`` logits, without the targets
    equal to ``ignore_index``; probability targets count their own argmax as the label. Both
    are device values (``counted`` a Python int where nothing is ignored)."""
    pred = xp.argmax(out, axis=1)
    if yb.ndim == out.ndim:  # class probabilities, of the logits' shape
        return xp.sum(xp.astype(pred == xp.argmax(yb, axis=1), xp.int64)), math.prod(pred.shape)
    hit = pred == yb
    if ignore_index is None:
        return xp.sum(xp.astype(hit, xp.int64)), math.prod(pred.shape)
    keep = yb != ignore_index
    return xp.sum(xp.astype(hit & keep, xp.int64)), xp.sum(xp.astype(keep, xp.int64))


class Tally:
    """Running sums over batches for one epoch: ``loss`` (per sample), ``accuracy``, and the
    figures of each :class:`~xpnet.metrics.Metric` in ``metrics`` (reset here, updated per batch).

    Accuracy is defined for CrossEntropyLoss (argmax of the logits equals the label) and
    BCEWithLogitsLoss (``logit > 0`` equals ``target >= 0.5``, per element); other losses
    report loss only. Sums are 0-d device arrays; :meth:`result` reads them back.

    The loss per sample: a "mean" batch loss counts as its value times the batch size (for
    CrossEntropyLoss with class weights or ignored targets, whose mean divides by another
    count, that is the batches' means weighted by their sizes); a "sum" or "none" loss counts as
    the sum of its elements.
    """

    def __init__(self, loss: Loss, xp, metrics=()):
        self.xp = xp
        self.metrics = tuple(metrics)
        for m in self.metrics:
            m.reset()
        self.kind = "ce" if isinstance(loss, CrossEntropyLoss) else "bce" if isinstance(loss, BCEWithLogitsLoss) else None
        self.ignore_index = getattr(loss, "ignore_index", None)
        self.per_mean = loss.reduction == "mean"
        self.per_element = loss.reduction == "none"
        self.loss_sum = self.correct = None
        self.n = self.n_acc = 0

    def add(self, value, out, yb):
        """Count one batch: its loss ``value`` (0-d, or per element for "none"), outputs ``out`` and targets ``yb``."""
        xp, b = self.xp, int(out.shape[0])
        part = value * b if self.per_mean else xp.sum(value) if self.per_element else value
        self.loss_sum = part if self.loss_sum is None else self.loss_sum + part
        self.n += b
        for m in self.metrics:
            m.update(out, yb)
        if self.kind == "ce":
            hit, counted = _class_hits(xp, out, yb, self.ignore_index)
            self.n_acc = counted if isinstance(self.n_acc, int) and self.n_acc == 0 else self.n_acc + counted
        elif self.kind == "bce":
            hit = xp.sum(xp.astype((out > 0) == (yb >= 0.5), xp.int64))
            self.n_acc += math.prod(out.shape)
        else:
            return
        self.correct = hit if self.correct is None else self.correct + hit

    def result(self) -> dict:
        """``{"loss": float, "accuracy": float, **each metric's result()}`` (accuracy only where
        defined); one host read each."""
        if self.n == 0:
            raise ValueError("no batches were seen")
        out = {"loss": float(self.loss_sum) / self.n}
        if self.correct is not None:
            if isinstance(self.n_acc, int):
                out["accuracy"] = int(self.correct) / self.n_acc
            else:  # hits and the targets counted (ignored ones left out), in one read
                hits, counted = (int(v) for v in backends.to_numpy(self.xp.stack([self.correct, self.n_acc])))
                out["accuracy"] = hits / counted if counted else float("nan")
        for m in self.metrics:
            out.update(m.result())
        return out


def evaluate(net, loss, data, batch_size=1024, metrics=None):
    """``{"loss": mean loss per sample, "accuracy": fraction, ...}`` of ``net`` on ``data`` (an
    ``(X, y)`` pair or a DataLoader), computed in eval mode (dropout off, running statistics), in
    batches. ``metrics``: names or :class:`~xpnet.metrics.Metric` objects (see
    :func:`xpnet.metrics.get`) whose figures join the dict (``"f1"``, ``"top5_accuracy"``, ``"mae"``...)."""
    if not isinstance(loss, Loss):
        raise TypeError(f"evaluate: loss must be an xpnet Loss, got {type(loss).__name__}")
    from .fit import _two_inputs

    _two_inputs(loss, "evaluate")
    tracked = _metrics.resolve(metrics, "evaluate")
    be = net_backend(net, "evaluate")
    loader = as_loader(data, batch_size, False, be, "evaluate")
    tally = Tally(loss, be.xp, tracked)
    with eval_mode(net):  # no backward follows: keep nothing for one
        for xb, yb in loader:
            out = net(xb)
            tally.add(loss(out, yb), out, yb)
    return tally.result()


def predict(net, X, batch_size=1024):
    """The outputs of ``net`` on ``X (N, ...)``, concatenated ``(N, ...)`` on the net's device,
    computed in eval mode (see :func:`eval_mode`) in batches of ``batch_size``."""
    be = net_backend(net, "predict")
    loader = _nonempty(DataLoader(X, batch_size=batch_size, backend=be), "predict")
    with eval_mode(net):
        outs = [net(xb) for xb in loader]
    return outs[0] if len(outs) == 1 else be.xp.concat(outs, axis=0)

