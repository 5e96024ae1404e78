"""N-dimensional padding with ``torch.nn.functional.pad``'s conventions, and its adjoint.

``pads`` lists ``(left, right)`` pairs from the LAST axis backwards: ``(left, right)`` pads the
last axis, ``(left, right, top, bottom)`` the last two, ``(left, right, top, bottom, front,
back)`` the last three. A negative entry crops that many entries from that side. Along an axis
of size ``n`` padded by ``(l, r)`` the output has ``l + n + r`` entries; output entry ``i`` is
input entry ``j = i - l`` where ``0 <= j < n``, else:

- ``"constant"``: ``value``;
- ``"reflect"``: ``x[-j]`` left, ``x[2 (n - 1) - j]`` right (mirrored about the edge entry,
  which is not repeated); needs ``l < n`` and ``r < n``;
- ``"replicate"``: ``x[0]`` left, ``x[n - 1]`` right;
- ``"circular"``: ``x[j mod m]``, where, as in torch, the negative pads crop first and ``m`` is
  the cropped size; needs ``l <= m`` and ``r <= m`` (wrapping around at most once).

Reflect and replicate pad the whole input and then crop (torch's order); axes are padded one
after the other, so the corners are padded twice (as in torch). The backward pass is the
adjoint: the crop becomes zeros, and the padded borders are folded back, their gradients ADDED
to the entries they copied (slices, flips, sums and concatenations; no writes into shared
arrays, no scatter, no host reads).
"""

from __future__ import annotations

from .. import backends
from ..validate import _is_int

MODES = ("constant", "reflect", "replicate", "circular")


def check_pads(who, pads, ndim=None):
    """``pads`` as a tuple of ints of even length (at most ``2 * ndim`` when ``ndim`` is given),
    or ValueError naming ``who``."""
    if isinstance(pads, (tuple, list)) and all(_is_int(p) for p in pads) and len(pads) % 2 == 0:
        pads = tuple(int(p) for p in pads)
        if ndim is None or len(pads) // 2 <= ndim:
            return pads
        raise ValueError(f"{who}: {len(pads)} padding values pad {len(pads) // 2} axes, "
                         f"but the input has only {ndim}")
    raise ValueError(f"{who}: pads must be a tuple of ints of even length (left, right, top, bottom, ...), "
                     f"got {pads!r}")


def _sizes(who, shape, pads, mode):
    """``[(axis, l, r, n)]`` for each padded axis, last axis first, after checking ``mode``'s
    limits; ``n`` is the axis's input size."""
    if mode not in MODES:
        raise ValueError(f"{who}: mode must be one of {MODES}, got {mode!r}")
    pads = check_pads(who, pads, len(shape))
    out = []
    for k in range(len(pads) // 2):
        axis = len(shape) - 1 - k
        l, r, n = pads[2 * k], pads[2 * k + 1], shape[axis]
        size = l + n + r
        if mode == "reflect" and (l >= n or r >= n):
            raise ValueError(f"{who}: reflect padding must be less than the input size along the axis, "
                             f"got padding ({l}, {r}) for axis {axis} of size {n} (input shape {tuple(shape)})")
        if mode == "circular" and max(l, r) > n - max(-l, 0) - max(-r, 0):
            raise ValueError(f"{who}: circular padding ({l}, {r}) for axis {axis} of size {n} wraps around "
                             f"more than once; it must be at most the (cropped) size "
                             f"{n - max(-l, 0) - max(-r, 0)} (input shape {tuple(shape)})")
        if size < 0 or (size == 0 and mode in ("reflect", "replicate")):
            raise ValueError(f"{who}: padding ({l}, {r}) leaves {size} entries along axis {axis} of size {n} "
                             f"(input shape {tuple(shape)}); the output needs at least "
                             f"{1 if mode in ('reflect', 'replicate') else 0}")
        out.append((axis, l, r, n))
    return out


def _cut(x, axis, start, stop):
    """``x[..., start:stop, ...]`` along ``axis``."""
    return x[(slice(None),) * axis + (slice(start, stop), ...)]


def _constant(xp, x, spans, value):
    """``x`` padded (or cropped) by ``spans = [(axis, l, r, n)]`` with ``value``: one buffer
    filled with ``value`` and one slice assignment of the kept part of ``x`` into it."""
    if all(l == 0 and r == 0 for _, l, r, _ in spans):
        return x
    shape = list(x.shape)
    src = [slice(None)] * x.ndim
    dst = [slice(None)] * x.ndim
    for axis, l, r, n in spans:
        shape[axis] = l + n + r
        src[axis] = slice(max(-l, 0), n - max(-r, 0))
        dst[axis] = slice(max(l, 0), max(l, 0) + n - max(-l, 0) - max(-r, 0))
    if all(l <= 0 and r <= 0 for _, l, r, _ in spans):
        return x[tuple(src)]  # a pure crop: a view
    out = xp.full(tuple(shape), value, dtype=x.dtype, device=x.device)
    out[tuple(dst)] = x[tuple(src)]  # our own fresh buffer
    return out


def _extend(xp, x, axis, l, r, mode):
    """``x`` with ``l >= 0`` entries before and ``r >= 0`` after along ``axis``, by ``mode``."""
    n = x.shape[axis]
    if mode == "reflect":
        parts = [xp.flip(_cut(x, axis, 1, l + 1), axis=axis), x, xp.flip(_cut(x, axis, n - 1 - r, n - 1), axis=axis)]
    elif mode == "replicate":
        def edge(i, k):
            e = _cut(x, axis, i, i + 1)
            return xp.broadcast_to(e, e.shape[:axis] + (k,) + e.shape[axis + 1:])
        parts = [edge(0, l), x, edge(n - 1, r)]
    else:  # circular
        parts = [_cut(x, axis, n - l, n), x, _cut(x, axis, 0, r)]
    kept = [parts[1]] if l == 0 and r == 0 else [p for p, k in zip(parts, (l, 1, r)) if k]
    return kept[0] if len(kept) == 1 else xp.concat(kept, axis=axis)


def _add_at(xp, a, axis, start, v):
    """``a`` with ``v`` added to ``a[start:start + len(v)]`` along ``axis`` (a new array)."""
    k = v.shape[axis]
    pieces = [_cut(a, axis, 0, start), _cut(a, axis, start, start + k) + v, _cut(a, axis, start + k, a.shape[axis])]
    return xp.concat([p for p in pieces if p.shape[axis]], axis=axis)


def _fold(xp, g, axis, l, r, mode):
    """The adjoint of :func:`_extend`: ``g`` (``l + n + r`` entries along ``axis``) back to ``n``."""
    n = g.shape[axis] - l - r
    mid = _cut(g, axis, l, l + n)
    left, right = _cut(g, axis, 0, l), _cut(g, axis, l + n, l + n + r)
    if mode == "reflect":  # left came from x[1:l+1] flipped, right from x[n-1-r:n-1] flipped
        if l:
            mid = _add_at(xp, mid, axis, 1, xp.flip(left, axis=axis))
        if r:
            mid = _add_at(xp, mid, axis, n - 1 - r, xp.flip(right, axis=axis))
    elif mode == "replicate":  # every left entry copied x[0], every right one x[n-1]
        if l:
            mid = _add_at(xp, mid, axis, 0, xp.sum(left, axis=axis, keepdims=True))
        if r:
            mid = _add_at(xp, mid, axis, n - 1, xp.sum(right, axis=axis, keepdims=True))
    else:  # circular: left came from x[n-l:], right from x[:r]
        if l:
            mid = _add_at(xp, mid, axis, n - l, left)
        if r:
            mid = _add_at(xp, mid, axis, 0, right)
    return mid


def pad(x, pads, mode: str = "constant", value: float = 0.0, who: str = "pad"):
    """``x`` padded by ``pads`` (last axis first, negatives crop) in ``mode``, as
    ``torch.nn.functional.pad``; see the module doc. Any rank, as long as ``len(pads) // 2 <=
    x.ndim``; ``value`` is used by ``"constant"`` only. ``who`` names the caller in errors."""
    spans = _sizes(who, tuple(x.shape), pads, mode)
    if not any(pads):
        return x
    xp = backends.namespace_of(x)
    if mode == "constant":
        return _constant(xp, x, spans, value)
    for axis, l, r, n in spans:
        if mode == "circular":  # crop first, then wrap the cropped axis
            x = _cut(x, axis, max(-l, 0), n - max(-r, 0))
            x = _extend(xp, x, axis, max(l, 0), max(r, 0), mode)
        else:  # pad from the whole axis, then crop
            x = _extend(xp, x, axis, max(l, 0), max(r, 0), mode)
            x = _cut(x, axis, max(-l, 0), x.shape[axis] - max(-r, 0))
    return x


def pad_backward(dy, pads, mode: str, in_shape, who: str = "pad"):
    """The gradient of :func:`pad` with respect to its input: ``dy`` (the output's shape)
    folded back to ``in_shape``. Entries cropped away get zero; a padded entry's gradient is
    added to the input entry it copied (``"constant"`` padding takes none)."""
    spans = _sizes(who, tuple(in_shape), pads, mode)
    if not any(pads):
        return dy
    xp = backends.namespace_of(dy)
    if mode == "constant":
        return _constant(xp, dy, [(axis, -l, -r, l + n + r) for axis, l, r, n in spans], 0.0)
    for axis, l, r, n in reversed(spans):
        lp, rp, lc, rc = max(l, 0), max(r, 0), max(-l, 0), max(-r, 0)
        m = n - lc - rc
        if mode == "circular":
            dy = _fold(xp, dy, axis, lp, rp, mode)
            dy = _constant(xp, dy, [(axis, lc, rc, m)], 0.0)
        else:
            dy = _constant(xp, dy, [(axis, lc, rc, dy.shape[axis])], 0.0)
            dy = _fold(xp, dy, axis, lp, rp, mode)
    return dy
