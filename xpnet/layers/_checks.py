"""Error messages that name the layer, what it expected and what it got.

The checks themselves are inlined in each layer's forward as one or two cheap
comparisons (and, for the gradients backward receives, in :meth:`Layer.check_grad
<xpnet.layers.base.Layer.check_grad>`); these helpers only build the message once a check has failed.
"""

from __future__ import annotations

from .. import backends
from ..validate import positive_int  # noqa: F401  (re-exported for the layers)


def place(x) -> str:
    """Where ``x`` lives, e.g. ``numpy``, ``torch:cpu``, ``array_api_strict:device1``."""
    try:
        return backends.backend_of(x).label
    except TypeError:
        return f"{type(x).__module__}.{type(x).__name__} (not an array)"


def require_array(layer, x, what="input"):
    """Raise TypeError unless ``x`` is an array of a known backend."""
    try:
        return backends.backend_of(x)
    except TypeError:
        raise TypeError(
            f"{layer} expected its {what} to be an array (numpy, torch, cupy or array_api_strict), "
            f"got {type(x).__name__}; convert it with backends.get(...).asarray(...)"
        ) from None


def place_error(layer, x, ref, what="input"):
    """The input lives on another backend or device than the parameters: never copy silently."""
    require_array(layer, x, what)
    return ValueError(
        f"{layer} got its {what} on {place(x)} but its parameters are on {place(ref)}; "
        f"move the {what} with backends.get(...).asarray(...) or the layer with .to(...)"
    )


def dtype_error(layer, x, expected_dtype=None, what="input"):
    """An integer/bool input where floats are needed, or floats of another precision."""
    be = require_array(layer, x, what)
    got = be.dtype_name(x.dtype)
    if not be.is_float(x.dtype):
        want = "floating-point" if expected_dtype is None else f"floating-point ({be.dtype_name(expected_dtype)})"
        return TypeError(
            f"{layer} expected a {want} {what}, got {got}; convert it with xp.astype(x, xp.float32)"
        )
    return TypeError(
        f"{layer} expected a {be.dtype_name(expected_dtype)} {what} to match its parameters, got {got}; "
        f"convert the {what} or move the layer with .to(dtype={got!r})"
    )


def check_like(layer, x, w):
    """``x`` must live where the parameter ``w`` lives and have its dtype (two cheap comparisons)."""
    if type(x) is not type(w) or x.device != w.device:
        raise place_error(layer, x, w)
    if x.dtype != w.dtype:
        raise dtype_error(layer, x, w.dtype)


def require_float(layer, x, what="input"):
    """The backend of ``x``, after checking that ``x`` is a floating-point array."""
    be = require_array(layer, x, what)
    if x.dtype not in be.float_dtypes:
        raise dtype_error(layer, x, what=what)
    return be


def no_forward_error(layer):
    return RuntimeError(
        f"{layer}.backward was called before forward (or more often than forward: each backward "
        "consumes what one forward kept, and a forward under xpnet.no_grad() keeps nothing); "
        "run the forward pass first"
    )


def place_of(kind, device) -> str:
    """The label of the place of an array of type ``kind`` on ``device`` (as :func:`place` gives it)."""
    root = kind.__module__.partition(".")[0]
    try:
        return backends.get(root, device=None if root == "numpy" else device).label
    except Exception:  # a type no backend knows: name it as it is
        return f"{kind.__module__}.{kind.__name__} on {device}"


def grad_error(layer, dy, kind, device, dtype, shape, note="its output's"):
    """Why the gradient ``dy`` that ``layer.backward`` received is not one for an output of array
    type ``kind`` on ``device``, of ``dtype`` and ``shape``: the first of place, dtype, shape
    that differs (``note`` says whose shape that is)."""
    tag = f"{layer}.backward"
    try:
        be = backends.backend_of(dy)
    except TypeError:  # a list, a number, a numpy scalar (numpy's 0-d arithmetic gives those)
        got = type(dy).__name__ if type(dy).__module__ == "builtins" else f"{type(dy).__module__}.{type(dy).__name__}"
        return TypeError(f"{tag} expected dy to be an array (numpy, torch, cupy or array_api_strict), got {got}")
    where = place_of(kind, device)
    if type(dy) is not kind and be.label == where:  # a subclass, say
        return TypeError(
            f"{tag} expected dy to be a {kind.__module__}.{kind.__name__} (its output's type), "
            f"got {type(dy).__module__}.{type(dy).__name__}"
        )
    if type(dy) is not kind or dy.device != device:
        return ValueError(
            f"{tag} got dy on {be.label} but its output is on {where}; move dy with backends.get(...).asarray(...)"
        )
    if dy.dtype != dtype:
        return TypeError(
            f"{tag} expected dy of dtype {be.dtype_name(dtype)} (its output's), got {be.dtype_name(dy.dtype)}"
        )
    return ValueError(f"{tag} expected dy of shape {shape_str(shape)} ({note}), got {shape_str(dy.shape)}")


def shape_str(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
