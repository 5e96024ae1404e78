"""Streaming metrics merged over the ranks, once an epoch.

A :class:`~xpnet.metrics.Metric` keeps running sums: counts ``n``, hits, confusion counts,
per-output sums (arrays, or tuples of arrays). Merging the ranks' metrics sums them, which is
what one process that saw every rank's batches would hold. :class:`~xpnet.metrics.R2` keeps
running means and spreads instead of sums: those merge by Chan et al.'s pairwise formula. The
states travel as host copies through ``allgather_object`` (small, and once an epoch).
"""

from __future__ import annotations

import numbers

from .. import backends
from .. import metrics as _metrics

#: attributes that describe a metric rather than count: every rank has rank 0's
_SETTINGS = ("name", "k", "average", "given", "figure")


def merge_metrics(comm, metrics):
    """Replace each metric's state by the merge of every rank's (in place)."""
    mine = [_state(m) for m in metrics]
    states = comm.allgather_object(mine)
    for j, m in enumerate(metrics):
        seen = [ranks[j] for ranks in states if ranks[j]["n"]]
        if not seen:
            continue
        merged = _merge_r2(seen) if isinstance(m, _metrics.R2) else _merge_sums(seen)
        _load(m, merged, _place(mine[j]))


def _state(m):
    """``{attribute: value}`` of ``m``'s counts, arrays as ``(host array, dtype name, backend label)``."""
    out = {}
    for k, v in vars(m).items():
        if k in _SETTINGS:
            continue
        if isinstance(v, tuple):
            out[k] = tuple(_host(a) for a in v)
        else:
            out[k] = _host(v)
    return out


def _host(v):
    try:
        be = backends.backend_of(v)
    except TypeError:  # a number, None, or a setting
        return v
    return ("array", backends.to_numpy(v), be.dtype_name(v.dtype), be.label)


def _is_array(v):
    return isinstance(v, tuple) and len(v) == 4 and v[0] == "array"


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if _is_array(a):
        return ("array", a[1] + b[1], a[2], a[3])
    if isinstance(a, tuple):
        return tuple(_add(x, y) for x, y in zip(a, b))
    if isinstance(a, numbers.Number) and not isinstance(a, bool):  # numpy's sums are numpy scalars
        return a + b
    return a


def _merge_sums(states):
    out = dict(states[0])
    for st in states[1:]:
        for k, v in st.items():
            if k == "num_classes":  # the same on every rank that saw a batch
                out[k] = v if out.get(k) is None else out[k]
            else:
                out[k] = _add(out.get(k), v)
    return out


def _merge_r2(states):
    """R2's ``(mean, m2, sse)`` per output merged pairwise: ``d = mean_b - mean``,
    ``mean += d n_b / n``, ``m2 += m2_b + d^2 n_a n_b / n``, ``sse += sse_b``."""
    out = dict(states[0])
    for st in states[1:]:
        (_, mean, dt, lb), (_, m2, _, _), (_, sse, _, _) = out["sums"]
        (_, mean_b, _, _), (_, m2_b, _, _), (_, sse_b, _, _) = st["sums"]
        na, nb = out["n"], st["n"]
        n = na + nb
        d = mean_b - mean
        out["sums"] = (("array", mean + d * (nb / n), dt, lb), ("array", m2 + m2_b + d * d * (na * nb / n), dt, lb),
                       ("array", sse + sse_b, dt, lb))
        out["n"] = n
    return out


def _place(state):
    """The backend label of this rank's arrays in a metric's state (its own device, not rank 0's)."""
    for v in state.values():
        for a in (v if isinstance(v, tuple) and not _is_array(v) else (v,)):
            if _is_array(a):
                return a[3]
    return None


def _load(m, state, label):
    for k, v in state.items():
        if isinstance(v, tuple) and not _is_array(v):
            setattr(m, k, tuple(_device(a, label) for a in v))
        else:
            setattr(m, k, _device(v, label))


def _device(v, label):
    if not _is_array(v):
        return v
    _, host, dtype, theirs = v
    return backends.get(label or theirs).asarray(host, dtype=dtype)
