"""Small synthetic data sets for tutorials and end-to-end tests.

Every function draws its data on the host from a *private* numpy-backend generator
seeded with ``seed`` (the shared generators of the backends are neither used nor
reseeded), computes in float64, casts to ``dtype``, and only then moves the result
to ``backend`` (default: the current default backend) with ``Backend.asarray``.
So for a given ``seed`` and ``dtype`` the data are bit-for-bit identical on every
backend and device.

Each function returns ``(X, y)``: ``X`` floating point in ``dtype``, ``y`` int64 class
labels (classification) or floating point in ``dtype`` (regression).
"""

from __future__ import annotations

import math
import numbers

from .. import backends

__all__ = ["moons", "ring_vs_blob", "spirals", "x_squared"]


# -- helpers -------------------------------------------------------------------------------
def _count(fn, name, n, minimum=1):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < minimum:
        raise ValueError(f"{fn}: {name} must be an int >= {minimum}, got {n!r}")
    return int(n)


def _nonneg(fn, name, v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v >= 0:
        raise ValueError(f"{fn}: {name} must be a real number >= 0, got {v!r}")
    return float(v)


def _host():
    """The numpy backend and a private generator of its own: no shared state is touched."""
    return backends.get("numpy")


def _stream(fn, seed):
    host = _host()
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{fn}: seed must be a non-negative int, got {seed!r}")
    return type(host.rng)(host, int(seed))


def _float_name(fn, dtype):
    name = dtype if isinstance(dtype, str) else backends.dtype_name(dtype)
    if name not in ("float16", "bfloat16", "float32", "float64"):
        raise ValueError(f"{fn}: dtype must be a floating-point dtype, got {name!r}")
    return name


def _finish(fn, arrays, backend, dtype):
    """Cast the float64 host arrays (int64 ones keep their dtype) and move them to ``backend``.

    The cast happens on the host, so every backend receives the same rounded values.
    """
    target = backends.get(backend)
    host = _host()
    name = _float_name(fn, dtype)
    target.dtype(name)  # a clear ValueError when the target lacks it (array_api_strict has no float16)
    f64 = host.dtype("float64")
    try:
        dt = host.dtype(name)
    except ValueError:  # numpy has no bfloat16: let the target backend round
        return tuple(target.asarray(a, dtype=name if a.dtype == f64 else None) for a in arrays)
    return tuple(target.asarray(host.xp.astype(a, dt) if a.dtype == f64 else a) for a in arrays)


def _polar(xp, r, t):
    """Columns ``(r cos t, r sin t)`` as an ``(n, 2)`` array."""
    return xp.stack((r * xp.cos(t), r * xp.sin(t)), axis=1)


# -- data sets -------------------------------------------------------------------------------
def ring_vs_blob(n_per_class=100, *, seed=0, backend=None, dtype="float32", radius=1.0, ring_noise=0.1, blob_std=0.2):
    """A blob at the origin (label 0) inside a noisy ring (label 1).

    Blob: ``x ~ N(0, blob_std^2 I_2)``. Ring: ``theta ~ U[0, 2 pi)``,
    ``r = radius + ring_noise * e`` with ``e ~ N(0, 1)``, ``x = (r cos theta, r sin theta)``.

    Returns ``X (2 n_per_class, 2)`` in ``dtype`` and ``y (2 n_per_class,)`` int64:
    the ``n_per_class`` blob points first, then the ring points.
    """
    fn = "ring_vs_blob"
    n = _count(fn, "n_per_class", n_per_class)
    radius, ring_noise, blob_std = (_nonneg(fn, k, v) for k, v in
                                    (("radius", radius), ("ring_noise", ring_noise), ("blob_std", blob_std)))
    g, host = _stream(fn, seed), _host()
    xp, f64 = host.xp, host.dtype("float64")
    blob = g.normal((n, 2), 0.0, blob_std, dtype=f64)
    theta = g.uniform((n,), 0.0, 2.0 * math.pi, dtype=f64)
    r = radius + ring_noise * g.normal((n,), dtype=f64)
    X = xp.concat((blob, _polar(xp, r, theta)), axis=0)
    y = xp.concat((xp.zeros((n,), dtype=xp.int64, device=host.device), xp.ones((n,), dtype=xp.int64, device=host.device)))
    return _finish(fn, (X, y), backend, dtype)


def x_squared(n=200, *, seed=0, backend=None, dtype="float32"):
    """The regression ``y = x^2`` with ``x ~ N(0, 1)``.

    Returns ``X (n, 1)`` and ``y (n, 1)``, both in ``dtype`` (``y`` is squared in float64, then cast).
    """
    fn = "x_squared"
    n = _count(fn, "n", n)
    g, host = _stream(fn, seed), _host()
    x = g.normal((n, 1), dtype=host.dtype("float64"))
    return _finish(fn, (x, x * x), backend, dtype)


def spirals(n_per_class=100, classes=2, noise=0.2, *, seed=0, backend=None, dtype="float32"):
    """Interleaved spiral arms, one per class (the CS231n definition).

    For class ``k`` and ``i = 0 .. n-1``: ``r_i = i / (n - 1)``,
    ``t_i = 4 k + 4 i / (n - 1) + noise * e_i`` with ``e_i ~ N(0, 1)``, and
    ``x_i = (r_i sin t_i, r_i cos t_i)``.

    Returns ``X (classes * n_per_class, 2)`` in ``dtype`` and ``y (classes * n_per_class,)``
    int64, grouped by class (all of class 0 first).
    """
    fn = "spirals"
    n = _count(fn, "n_per_class", n_per_class)
    c = _count(fn, "classes", classes, minimum=2)
    noise = _nonneg(fn, "noise", noise)
    g, host = _stream(fn, seed), _host()
    xp, f64, dev = host.xp, host.dtype("float64"), host.device
    r = xp.linspace(0.0, 1.0, n, dtype=f64, device=dev)
    Xs, ys = [], []
    for k in range(c):
        t = xp.linspace(4.0 * k, 4.0 * (k + 1), n, dtype=f64, device=dev) + noise * g.normal((n,), dtype=f64)
        Xs.append(xp.stack((r * xp.sin(t), r * xp.cos(t)), axis=1))
        ys.append(xp.full((n,), k, dtype=xp.int64, device=dev))
    return _finish(fn, (xp.concat(Xs, axis=0), xp.concat(ys)), backend, dtype)


def moons(n=200, noise=0.1, *, seed=0, backend=None, dtype="float32"):
    """Two interleaving half circles (scikit-learn's ``make_moons``).

    With ``n0 = n // 2`` and ``n1 = n - n0``:
    outer moon (label 0) ``(cos s, sin s)`` for ``s = linspace(0, pi, n0)``;
    inner moon (label 1) ``(1 - cos s, 0.5 - sin s)`` for ``s = linspace(0, pi, n1)``;
    then ``N(0, noise^2)`` added to every coordinate.

    Returns ``X (n, 2)`` in ``dtype`` and ``y (n,)`` int64, the outer moon first.
    """
    fn = "moons"
    n = _count(fn, "n", n, minimum=2)
    noise = _nonneg(fn, "noise", noise)
    g, host = _stream(fn, seed), _host()
    xp, f64, dev = host.xp, host.dtype("float64"), host.device
    n0, n1 = n // 2, n - n // 2
    s0 = xp.linspace(0.0, math.pi, n0, dtype=f64, device=dev)
    s1 = xp.linspace(0.0, math.pi, n1, dtype=f64, device=dev)
    X = xp.concat((
        xp.stack((xp.cos(s0), xp.sin(s0)), axis=1),
        xp.stack((1.0 - xp.cos(s1), 0.5 - xp.sin(s1)), axis=1),
    ), axis=0)
    if noise:
        X = X + noise * g.normal((n, 2), dtype=f64)
    y = xp.concat((xp.zeros((n0,), dtype=xp.int64, device=dev), xp.ones((n1,), dtype=xp.int64, device=dev)))
    return _finish(fn, (X, y), backend, dtype)
