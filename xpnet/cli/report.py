"""Which model each printed figure describes, in the same words for ``xpnet train`` and
``xpnet evaluate``.

``xpnet train`` writes two checkpoints, and marks each in its ``extra["role"]``:
``last.xpnet``, the net after the last epoch trained ("last epoch (40)"), and ``best.xpnet``,
the net after the epoch of the best validation accuracy ("best.xpnet (epoch 35, val 98.61%)").
"""

from __future__ import annotations

import math

#: the figures of evaluate() printed first, then those of --metrics
_MAIN = ("accuracy", "loss")


def model_label(role, epoch, history=None, name=None, stopped=False) -> str:
    """How a model is named next to its figures: ``role`` "last" or "best" (a checkpoint of
    ``xpnet train``), else the checkpoint file ``name``; ``history``: its run's history (for the
    best epoch's validation accuracy); ``stopped``: early stopping ended the run there."""
    if role == "last":
        return f"last epoch ({epoch}{', stopped early' if stopped else ''})"
    if role == "best":
        val = _val_accuracy(history, epoch)
        return f"best.xpnet (epoch {epoch}{'' if val is None else f', val {val:.2%}'})"
    return f"{name} (epoch {epoch})" if name else f"epoch {epoch}"


def role_of(extra) -> str | None:
    """``"last"``, ``"best"`` or None: which of ``xpnet train``'s checkpoints ``extra`` belongs to."""
    role = extra.get("role") if isinstance(extra, dict) else None
    return role if role in ("last", "best") else None


def _val_accuracy(history, epoch):
    if not isinstance(history, dict):
        return None
    epochs, val = history.get("epoch"), history.get("val_accuracy")
    if not isinstance(epochs, list) or not isinstance(val, list) or len(val) != len(epochs) or epoch not in epochs:
        return None
    v = val[epochs.index(epoch)]
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def figure(key, value) -> str:
    """One figure for a line: accuracies as percentages, the rest with 4 significant digits."""
    return f"{value:.2%}" if key.endswith("accuracy") else f"{value:.4g}"


def lines(models) -> list:
    """The lines that say the test figures of each ``(label, result)`` in ``models``: first
    ``test accuracy: LABEL 98.05% (loss 0.07); LABEL ...``, then one line per other figure,
    with the labels cut short (``test f1: last epoch 0.9801; best.xpnet 0.9833``)."""
    first = "; ".join(f"{label} {figure('accuracy', r['accuracy'])} (loss {r['loss']:.4g})" if "accuracy" in r
                      else f"{label} loss {r['loss']:.4g}" for label, r in models)
    out = [f"test {'accuracy' if 'accuracy' in models[0][1] else 'loss'}: {first}"]
    keys = [k for k in models[0][1] if k not in _MAIN]
    for k in keys:
        out.append(f"test {k}: " + "; ".join(f"{label.split(' (')[0]} {figure(k, r[k])}" for label, r in models
                                              if k in r))
    return out


def metric_names(spec) -> list:
    """The metric names of a ``--metrics`` value (``"f1,top5"``), or [] for None."""
    return [n for n in (spec or "").split(",") if n]
