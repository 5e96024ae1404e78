"""Checkpoint architecture rules of the pooling layers (:mod:`xpnet.layers.pooling`): none holds
a parameter; FractionalMaxPool's ``_random_samples``, when given, is a float buffer of the
given (N, C, nd) shape. The window-size bound of the windowed pools is checked where
``checkpoint_arch`` checks MaxPool2d's (``_pool_window``)."""

from __future__ import annotations


def _samples_shape(owner, value, nd):
    """The shape of nested lists of numbers ``(N, C, nd)``, or ValueError."""
    rows = value if isinstance(value, list) else None
    ok = rows is not None and all(isinstance(r, list) and r for r in rows)
    if ok:
        c = len(rows[0]) if rows else 0
        ok = all(len(r) == c and all(isinstance(p, list) and len(p) == nd and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in p) for p in r) for r in rows)
    if not ok:
        raise ValueError(f"{owner}: _random_samples must be None or nested lists of shape (N, C, {nd})")
    return (len(rows), c, nd)


def _fractional(cls, nd, kind):
    def rule(a):
        s = a["_random_samples"]
        return [] if s is None else [("_random_samples", _samples_shape(cls.__name__, s, nd), False, kind)]
    return rule


def rules(L):
    from ..checkpoint_arch import FLOAT, _stateless
    out = {cls: _stateless for cls in (
        L.MaxPool1d, L.MaxPool3d, L.AvgPool1d, L.AvgPool3d, L.LPPool1d, L.LPPool2d, L.LPPool3d,
        L.AdaptiveAvgPool1d, L.AdaptiveAvgPool3d, L.AdaptiveMaxPool1d, L.AdaptiveMaxPool2d, L.AdaptiveMaxPool3d)}
    out[L.FractionalMaxPool2d] = _fractional(L.FractionalMaxPool2d, 2, FLOAT)
    out[L.FractionalMaxPool3d] = _fractional(L.FractionalMaxPool3d, 3, FLOAT)
    return out
