"""Error messages that name the layer, what it expected and what it got.

The checks themselves are inlined in each layer's forward as one or two cheap
comparisons; these helpers only build the message once a check has failed.
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


def shape_str(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
