"""Training curves: loss and accuracy per epoch, train and validation."""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping

from . import _common as c

#: the history keys read, in this order; ``epoch`` and ``loss`` are the required ones
#: (``epoch`` defaults to 1..N), the others are drawn when present
KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")

#: the loss axis turns logarithmic when its values span more than this factor (two decades)
LOG_SPAN = 100.0

#: pixel sizes: loss and accuracy side by side, or the loss alone
SIZE_TWO = (1000, 400)
SIZE_ONE = (550, 400)


def _load(history):
    fn = "curves"
    if isinstance(history, (str, os.PathLike)):
        with open(history, encoding="utf-8") as f:
            history = json.load(f)
    if not isinstance(history, Mapping):
        raise TypeError(
            f"{fn}: history must be a mapping of per-epoch lists (as xpnet.fit returns) or the path "
            f"of such a JSON file, got {type(history).__name__}"
        )
    present = {k: history[k] for k in KEYS if history.get(k) is not None}
    if not present:
        raise ValueError(f"{fn}: history is empty: it has none of the keys {', '.join(KEYS)}")
    if "loss" not in present:
        raise ValueError(f"{fn}: history needs a 'loss' list, got keys {', '.join(map(repr, history))}")
    lengths = {}
    for k, v in present.items():
        try:
            lengths[k] = len(v)
        except TypeError:
            raise ValueError(f"{fn}: history[{k!r}] must be a list of numbers, got {type(v).__name__}") from None
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"{fn}: history lists must have equal lengths (one entry per epoch), got "
            + ", ".join(f"{k}: {n}" for k, n in lengths.items())
        )
    if lengths["loss"] == 0:
        raise ValueError(
            f"{fn}: history is empty (no epochs): " + ", ".join(f"{k}: {n}" for k, n in lengths.items())
        )
    out = {k: [_number(fn, k, i, v) for i, v in enumerate(vals)] for k, vals in present.items()}
    out.setdefault("epoch", list(range(1, lengths["loss"] + 1)))
    return out


def _number(fn, key, i, v):
    """``v`` as a float; ``None`` (an epoch without that measurement) becomes NaN, a gap in the line.

    0-d arrays of any backend are accepted (``float()`` reads them)."""
    if v is None:
        return math.nan
    if isinstance(v, (bool, str)) or not (isinstance(v, numbers.Real) or hasattr(v, "__float__")):
        raise ValueError(f"{fn}: history[{key!r}][{i}] must be a number, got {v!r}")
    return float(v)


def _best(values, lowest):
    """``(index, value)`` of the best finite entry, or None when there is none."""
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
    if not finite:
        return None
    v, i = min(finite) if lowest else max(finite, key=lambda t: (t[0], -t[1]))
    return i, v


def _panel(m, ax, h, key, label, lowest, fmt):
    epochs = h["epoch"]
    # markers only while they can be told apart
    style = {"marker": "o", "markersize": 3} if len(epochs) <= 40 else {}
    drawn = False
    for k, name, color in ((key, "train", "C0"), ("val_" + key, "validation", "C1")):
        if k not in h:
            continue
        values = h[k]
        best = _best(values, lowest) if k.startswith("val_") else None
        if best is not None:
            i, v = best
            name = f"{name} (best {fmt(v)} at epoch {epochs[i]:g})"
        ax.plot(epochs, values, color=color, label=name, **style)
        if best is not None:
            ax.plot([epochs[best[0]]], [best[1]], marker="*", markersize=11, color=color, linestyle="none")
        drawn = True
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.set_title(label)
    if key == "loss" and _spans_decades([v for k in (key, "val_" + key) for v in h.get(k, ())]):
        ax.set_yscale("log")
        ax.set_title(f"{label} (log scale)")
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_locator(m.ticker.MaxNLocator(integer=True))
    if drawn:
        ax.legend()


def _spans_decades(values):
    """Whether positive ``values`` span more than :data:`LOG_SPAN` (on a linear axis the late
    epochs would be a flat line at the bottom); never for a zero or negative value."""
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) / min(finite) > LOG_SPAN


def curves(history, path, *, title=None):
    """Draw the training curves of ``history`` and save them as a PNG at ``path``.

    ``history``: a mapping of equal-length per-epoch lists, as ``xpnet.fit`` returns and
    ``history.json`` holds, or the path of such a JSON file. Keys read: ``epoch``
    (default 1..N), ``loss`` (required), and ``accuracy``, ``val_loss``, ``val_accuracy``
    when present (``lr`` and ``time`` are accepted and not drawn; other keys are ignored).
    ``None`` entries are gaps.

    Drawn: the loss per epoch, train and validation, on the left; the accuracy, train and
    validation, on the right when the history has one (shown as percentages when the
    values are fractions). The loss axis is logarithmic when the losses (all positive) span
    more than two decades (:data:`LOG_SPAN`), linear otherwise. The best validation epoch is
    starred and named in the legend.
    Size: 1000 x 400 pixels with the accuracy panel, 550 x 400 without.

    Returns the ``pathlib.Path`` written. Raises ValueError, naming the keys and their
    lengths, for an empty history or lists of unequal lengths.
    """
    fig = _figure(history, title)
    return c.save(c.mpl(), fig, path)


def _figure(history, title):
    """The matplotlib Figure that :func:`curves` saves."""
    h = _load(history)
    m = c.mpl()
    has_acc = "accuracy" in h or "val_accuracy" in h
    fig = c.figure(m, *(SIZE_TWO if has_acc else SIZE_ONE))
    axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)[0]
    _panel(m, axes[0], h, "loss", "loss", True, lambda v: f"{v:.4g}")
    if has_acc:
        acc = [v for k in ("accuracy", "val_accuracy") for v in h.get(k, ()) if math.isfinite(v)]
        fraction = bool(acc) and max(acc) <= 1.0
        _panel(m, axes[1], h, "accuracy", "accuracy", False, (lambda v: f"{v:.2%}") if fraction else (lambda v: f"{v:.4g}"))
        if fraction:
            axes[1].yaxis.set_major_formatter(m.ticker.PercentFormatter(xmax=1.0))
    if title:
        fig.suptitle(title)
    return fig
