"""The arguments the convolutions share: ``padding`` (ints, or ``"same"``/``"valid"``) and
``padding_mode``, validated as ``torch.nn.ConvNd`` does, with messages naming the layer."""

from __future__ import annotations

from ..validate import choice, int_tuple

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def check_padding_mode(name, mode):
    return choice(name, "padding_mode", mode, PADDING_MODES)


def conv_padding(layer, padding):
    """``padding`` as given (a ``dims``-tuple or a string) and as ``((before, after), ...)`` per
    axis, for a layer whose ``kernel_size``, ``stride`` and ``dilation`` are set. ``"same"``
    needs stride 1 and puts an odd total ``d (k - 1)`` 's extra entry after, as torch does."""
    name, d = type(layer).__name__, layer.dims
    if not isinstance(padding, str):
        what = "a pair" if d == 2 else "a tuple"
        try:
            p = int_tuple(name, "padding", padding, d, 0)
        except ValueError:
            raise ValueError(f"{name}: padding must be an int >= 0 or {what} of them, or 'same' or 'valid', "
                             f"got {padding!r}") from None
        return p, tuple((v, v) for v in p)
    if padding == "valid":
        return padding, ((0, 0),) * d
    if padding != "same":
        raise ValueError(f"{name}: padding must be an int, {'a pair' if d == 2 else 'a tuple'}, 'same' or 'valid', "
                         f"got {padding!r}")
    if layer.stride != (1,) * d:
        raise ValueError(
            f"{name}: padding='same' needs stride 1 (an output as large as the input), "
            f"got stride={layer.stride}; give the padding explicitly for a strided convolution"
        )
    pads = []
    for dil, k in zip(layer.dilation, layer.kernel_size):
        total = dil * (k - 1)
        pads.append((total // 2, total - total // 2))  # the odd one after, as torch
    return padding, tuple(pads)


def transposed_padding(layer, padding, output_padding):
    """A transposed convolution's ``padding`` and ``output_padding`` as ``dims``-tuples: ints
    only (torch has no ``"same"`` for them), each output padding below the axis's stride or
    dilation (torch's rule, checked here at construction rather than at the first forward)."""
    name, d = type(layer).__name__, layer.dims
    if isinstance(padding, str):
        raise ValueError(f"{name}: padding must be an int >= 0 or {'a pair' if d == 2 else 'a tuple'} of them "
                         f"(a transposed convolution has no {padding!r} padding), got {padding!r}")
    p = int_tuple(name, "padding", padding, d, 0)
    op = int_tuple(name, "output_padding", output_padding, d, 0)
    if any(o >= max(s, dil) for o, s, dil in zip(op, layer.stride, layer.dilation)):
        raise ValueError(f"{name}: output_padding must be smaller than either stride or dilation on every axis, "
                         f"got output_padding={op} with stride={layer.stride} and dilation={layer.dilation}")
    return p, op
