"""LazyConv1d/2d/3d and LazyConvTranspose1d/2d/3d: convolutions whose ``in_channels`` is read
from the first input, as ``torch.nn``'s lazy modules.

Until then the layer holds an :class:`UninitializedParameter` in place of ``weight`` (and
``bias``): no array, so ``parameters()`` and ``state_dict()`` leave it out (torch lists its
placeholders; xpnet has no array to give), and ``to(backend, dtype)`` records where the
parameters will be made. The first forward (or :meth:`initialize_parameters`, or loading a
state dict, which gives the weight's shape) materializes them: drawn from that backend's
generator exactly as the eager layer's constructor draws them, and the layer becomes the eager
class (``LazyConv2d`` -> ``Conv2d``), as torch's lazy modules do after their first forward. So a
lazy layer that has run is saved (spec, checkpoint, ``to_torch``) as the plain convolution with
its ``in_channels``; one that has not is saved as the lazy class, with no arrays.

As torch advises: place the net (``.to(...)``), run one batch through it (a dry run), and only
then make the optimizer, which takes the parameters that exist when it is made.
"""

from __future__ import annotations

from .. import backends
from ._checks import require_array, shape_str
from ._conv_args import check_padding_mode, conv_padding
from .conv import AXES, Conv1d, Conv2d, Conv3d, ConvNd
from .conv_transpose import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d


class UninitializedParameter:
    """Stands for a parameter whose shape is not known yet (torch's ``UninitializedParameter``):
    it has no array; reading its ``shape`` or ``data`` raises."""

    __slots__ = ()

    def _missing(self):
        return RuntimeError("this parameter is uninitialized: its lazy layer makes it at its first forward; "
                            "run a batch through the layer (a dry run) first")

    @property
    def shape(self):
        raise self._missing()

    @property
    def data(self):
        raise self._missing()

    def __repr__(self):
        return "<UninitializedParameter>"


class _Lazy:
    """What the lazy convolutions share; the class's ``cls_to_become`` is the eager one."""

    _lazy = True
    cls_to_become: type = ConvNd

    def _defer(self, bias, backend, dtype):
        be = backends.get(backend)
        self._place = (be.label, be.dtype_name(be.dtype("float32" if dtype is None else dtype)))
        self.weight = UninitializedParameter()
        self.bias = UninitializedParameter() if bias else None

    def has_uninitialized_params(self) -> bool:
        return isinstance(self.weight, UninitializedParameter)

    def _moved_to(self, backend, dtype):
        if self.has_uninitialized_params():
            label, name = self._place
            if backend is not None:
                label = backend.label
            if dtype is not None:
                name = dtype if isinstance(dtype, str) else backends.dtype_name(dtype)
            self._place = (label, name)

    def initialize_parameters(self, x):
        """Materialize the parameters for input ``x`` (``(N, C, *S)`` or ``(C, *S)``): ``in_channels = C``."""
        if not self.has_uninitialized_params():
            return
        require_array(self._tag(), x)
        d = self.dims
        if x.ndim not in (d + 1, d + 2):
            raise ValueError(f"{self._tag()} expected input (N, C, {AXES[d]}) or (C, {AXES[d]}), got {shape_str(x.shape)}")
        self._materialize(int(x.shape[-d - 1]), "from the input")

    def _materialize(self, in_channels, whence):
        name = type(self).__name__
        if in_channels < 1 or in_channels % self.groups:
            raise ValueError(f"{name}: in_channels ({in_channels}, {whence}) must be a positive multiple of "
                             f"groups ({self.groups})")
        label, dtype = self._place
        bias = self.bias is not None
        del self._place
        self.__class__ = self.cls_to_become
        self.in_channels = in_channels
        self._reset_parameters(backends.get(label), dtype, bias)

    def forward(self, x, *args, **kwargs):
        self.initialize_parameters(x)
        return self.forward(x, *args, **kwargs)  # the eager class's, now

    def load_state_dict(self, state, strict: bool = True):
        """As :meth:`Layer.load_state_dict`; before the first forward, a ``weight`` in ``state``
        gives ``in_channels`` and materializes the parameters first (torch's lazy load)."""
        w = state.get("weight") if self.has_uninitialized_params() else None
        shape = _shape(w)
        if shape is None:
            # nothing to take a shape from (a torch placeholder has none): nothing to load
            return super().load_state_dict({k: v for k, v in state.items() if _shape(v) is not None}, strict)
        c = self._in_channels_of(shape)
        if c < 1 or shape != self._expected(c):
            raise ValueError(f"{type(self).__name__}.load_state_dict: 'weight' expected shape "
                             f"{self._expected('in_channels')}, got {shape}")
        self._materialize(c, "from the state dict's weight")
        return self.load_state_dict(state, strict)


def _shape(v):
    """``v.shape`` as a tuple, or None (no array, or torch's uninitialized placeholder)."""
    try:
        return None if v is None else tuple(int(s) for s in v.shape)
    except (RuntimeError, ValueError, AttributeError, TypeError):
        return None


class _LazyConv(_Lazy):
    _config_fields = ('out_channels', 'kernel_size', 'stride', 'padding', 'dilation', 'groups', 'bias', 'padding_mode')

    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, dilation=1, groups: int = 1,
                 bias: bool = True, padding_mode: str = "zeros", *, backend=None, dtype=None):
        self._setup(0, out_channels, kernel_size, stride, dilation, groups, bias)
        self.padding, self._pads = conv_padding(self, padding)
        self.padding_mode = check_padding_mode(type(self).__name__, padding_mode)
        self._defer(bias, backend, dtype)

    def _in_channels_of(self, shape):
        return shape[1] * self.groups if len(shape) == self.dims + 2 else 0

    def _expected(self, c):
        """The weight's shape for ``c`` input channels (a name: the shape as words)."""
        return (self.out_channels, c // self.groups if isinstance(c, int) else f"{c} / {self.groups}") + self.kernel_size


class _LazyConvTranspose(_Lazy):
    _config_fields = ('out_channels', 'kernel_size', 'stride', 'padding', 'output_padding', 'groups', 'bias',
                      'dilation', 'padding_mode')

    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0, groups: int = 1,
                 bias: bool = True, dilation=1, padding_mode: str = "zeros", *, backend=None, dtype=None):
        self._setup(0, out_channels, kernel_size, stride, dilation, groups, bias)
        self._transposed_args(padding, output_padding, padding_mode)
        self._defer(bias, backend, dtype)

    def _in_channels_of(self, shape):
        return shape[0] if len(shape) == self.dims + 2 else 0

    def _expected(self, c):
        """The weight's shape for ``c`` input channels (a name: the shape as words)."""
        return (c, self.out_channels // self.groups) + self.kernel_size


def _lazy(base, eager):
    """The lazy twin of ``eager``: ``Lazy`` + its name, becoming ``eager`` at its first forward."""
    name = f"Lazy{eager.__name__}"
    doc = (f":class:`~{eager.__module__}.{eager.__name__}` with ``in_channels`` read from the first input, as "
           f"``torch.nn.{name}`` (see :mod:`xpnet.layers.conv_lazy`).")
    return type(name, (base, eager), {"cls_to_become": eager, "__doc__": doc, "__module__": __name__,
                                      "__qualname__": name})


LazyConv1d = _lazy(_LazyConv, Conv1d)
LazyConv2d = _lazy(_LazyConv, Conv2d)
LazyConv3d = _lazy(_LazyConv, Conv3d)
LazyConvTranspose1d = _lazy(_LazyConvTranspose, ConvTranspose1d)
LazyConvTranspose2d = _lazy(_LazyConvTranspose, ConvTranspose2d)
LazyConvTranspose3d = _lazy(_LazyConvTranspose, ConvTranspose3d)
