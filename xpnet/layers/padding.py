"""The padding layers of ``torch.nn``: ZeroPad, ConstantPad, ReflectionPad, ReplicationPad and
CircularPad in 1, 2 and 3 dimensions, one base class and a table (the arithmetic is
:mod:`xpnet.layers._pad`'s).

A ``k``-d layer pads the last ``k`` axes by ``padding``: an int (every side) or ``2k`` ints in
``torch.nn.functional.pad``'s order, last axis first: ``(left, right)``, ``(left, right, top,
bottom)``, ``(left, right, top, bottom, front, back)``. Negative entries crop. Output size along
a padded axis: ``size + before + after``.

Inputs: ``(N, C, *spatial)`` or unbatched ``(C, *spatial)`` with ``k`` spatial axes; the
constant modes (ZeroPad, ConstantPad) take any input with at least ``k`` axes, as torch does.
Reflection needs each padding below the axis size; circular padding at most the (cropped) size.

Backward: :func:`~xpnet.layers._pad.pad_backward` (cropped entries get zero, padded borders
fold back onto the entries they copied). Forward keeps only the input's shape and the output's
:class:`~xpnet.layers.base.Signature`.
"""

from __future__ import annotations

from ..validate import _is_int, real
from ._checks import require_float, shape_str
from ._pad import pad, pad_backward
from .base import Layer, Signature


def _padding(name, value, k):
    """``value`` (an int or ``2k`` ints) as a tuple of ``2k`` ints."""
    if _is_int(value):
        return (int(value),) * (2 * k)
    if isinstance(value, (tuple, list)) and len(value) == 2 * k and all(_is_int(v) for v in value):
        return tuple(int(v) for v in value)
    order = ("(left, right)", "(left, right, top, bottom)", "(left, right, top, bottom, front, back)")[k - 1]
    raise ValueError(f"{name}: padding must be an int or a tuple of {2 * k} ints {order}, got {value!r}")


class _PadNd(Layer):
    """What every padding layer shares; a subclass sets ``_dims`` (the padded axes) and ``_mode``."""

    _dims: int = 1
    _mode: str = "constant"
    _config_fields = ("padding",)
    value = 0.0

    def __init__(self, padding):
        self.padding = _padding(type(self).__name__, padding, self._dims)

    def forward(self, x):
        tag = self._tag()
        require_float(tag, x)
        k = self._dims
        ok = x.ndim >= k if self._mode == "constant" else x.ndim in (k + 1, k + 2)
        if not ok:
            want = f"at least {k} axes" if self._mode == "constant" else (
                f"a {k + 1}-D (C, {k} spatial) or {k + 2}-D (N, C, {k} spatial) input")
            raise ValueError(f"{tag} expected {want}, got shape {shape_str(x.shape)}")
        y = pad(x, self.padding, self._mode, self.value, who=tag)
        self.save_for_backward(tuple(x.shape), Signature(x, y.shape))
        return y

    def backward(self, dy, input_grad: bool = True):
        in_shape, sig = self.saved()
        if dy is None or not input_grad:
            return None
        self.check_grad(dy, sig)
        return pad_backward(dy, self.padding, self._mode, in_shape, who=self._tag())

    def extra_repr(self):
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    """Pads with ``value`` (``y = value`` outside the input)."""

    _config_fields = ("padding", "value")

    def __init__(self, padding, value):
        super().__init__(padding)
        self.value = real(type(self).__name__, "value", value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class _ZeroPadNd(_PadNd):
    """Pads with zeros."""


class _ReflectionPadNd(_PadNd):
    """Pads with the reflection of the input about its edge entries (not repeated):
    ``... x[2] x[1] | x[0] x[1] ... x[n-1] | x[n-2] x[n-3] ...``; each padding must be below the size."""

    _mode = "reflect"


class _ReplicationPadNd(_PadNd):
    """Pads by repeating the edge entries: ``x[0] x[0] | x[0] ... x[n-1] | x[n-1] x[n-1]``."""

    _mode = "replicate"


class _CircularPadNd(_PadNd):
    """Pads by wrapping around: ``x[n-2] x[n-1] | x[0] ... x[n-1] | x[0] x[1]`` (at most once)."""

    _mode = "circular"


def _sized(base, k):
    """The ``k``-dimensional layer of ``base``'s family, named as torch names it."""
    name = base.__name__[1:].replace("Nd", f"{k}d")
    doc = f"``torch.nn.{name}``: {base.__doc__}\n\n    Pads the last {k} axes; see :mod:`xpnet.layers.padding`."
    return type(name, (base,), {"_dims": k, "__doc__": doc, "__module__": __name__, "__qualname__": name})


ZeroPad1d, ZeroPad2d, ZeroPad3d = (_sized(_ZeroPadNd, k) for k in (1, 2, 3))
ConstantPad1d, ConstantPad2d, ConstantPad3d = (_sized(_ConstantPadNd, k) for k in (1, 2, 3))
ReflectionPad1d, ReflectionPad2d, ReflectionPad3d = (_sized(_ReflectionPadNd, k) for k in (1, 2, 3))
ReplicationPad1d, ReplicationPad2d, ReplicationPad3d = (_sized(_ReplicationPadNd, k) for k in (1, 2, 3))
CircularPad1d, CircularPad2d, CircularPad3d = (_sized(_CircularPadNd, k) for k in (1, 2, 3))

PADDING_LAYERS = (
    ZeroPad1d, ZeroPad2d, ZeroPad3d, ConstantPad1d, ConstantPad2d, ConstantPad3d,
    ReflectionPad1d, ReflectionPad2d, ReflectionPad3d, ReplicationPad1d, ReplicationPad2d, ReplicationPad3d,
    CircularPad1d, CircularPad2d, CircularPad3d,
)
