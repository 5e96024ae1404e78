"""TransformerEncoder and TransformerDecoder: ``num_layers`` deep copies of one layer, then an
optional norm, as ``torch.nn.TransformerEncoder`` / ``torch.nn.TransformerDecoder``."""

from __future__ import annotations

import copy

from ... import backends
from ...validate import flag, positive_int
from ..activations import ReLU
from ..activations_smooth import GELU
from ..base import Layer, grad_enabled
from ._common import PositionalLayer, add, causal_flag
from .encoder_layer import TransformerEncoderLayer


def _clones(owner, layer, num_layers):
    """``num_layers`` deep copies of ``layer`` (torch's ``_get_clones``: each its own weights,
    all starting equal); a copy keeps none of what ``layer`` had saved for a backward."""
    if not isinstance(layer, Layer):
        raise TypeError(f"{owner}: the layer to stack must be an xpnet Layer, got {type(layer).__name__}")
    n = positive_int(owner, "num_layers", num_layers)
    return [copy.deepcopy(layer).clear_saved() for _ in range(n)]


def _norm_arg(owner, norm):
    if norm is not None and not isinstance(norm, Layer):
        raise TypeError(f"{owner}: norm must be an xpnet Layer (a LayerNorm, say) or None, got {type(norm).__name__}")
    return norm


class _Stack(PositionalLayer):
    def _norm_backward(self, dy):
        return dy if self.norm is None else self.norm.backward(dy)

    def _tag(self):
        return f"{type(self).__name__}(num_layers={self.num_layers})"


class TransformerEncoder(_Stack):
    """``num_layers`` encoder layers in turn, then ``norm`` (when given), as
    ``torch.nn.TransformerEncoder``::

        x = src;  x = layer_i(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask) for each i;  y = norm(x)

    ``encoder_layer`` (a TransformerEncoderLayer, or any Layer taking those arguments) is deep
    copied ``num_layers`` times, as torch does: ``layers.0.``, ``layers.1.``, ... in the state
    dict, each its own weights, all equal at the start; ``norm.`` after them.

    Shapes and masks: as TransformerEncoderLayer's (``mask`` is its ``src_mask``).
    ``is_causal=None`` (torch: detect a causal ``mask``) is False here: torch's detection only
    chooses a faster path to the same result.

    torch's nested-tensor fast path, reproduced: in eval mode under :func:`~xpnet.no_grad`, with
    ``enable_nested_tensor`` (and a layer that qualifies, ``use_nested_tensor``: a post-norm
    TransformerEncoderLayer with ``batch_first``, biases, ReLU or GELU, equal norm eps and an
    even ``nhead``), a batched ``src`` and a ``src_key_padding_mask`` without ``mask``, torch
    computes only the unpadded positions and returns 0 at the padded ones (before ``norm``), when
    every row's padding is at its end (``mask_check`` checks that; xpnet checks it on the device).
    With ``mask_check=False`` torch takes the mask for lengths (each row's first positions, as
    many as it keeps, wherever its padding is): so does xpnet.

    Backward: ``norm``'s, then each layer's in reverse order. Returns ``dsrc`` (then None for each
    mask given positionally). Keeps only that count.
    """

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        name = type(self).__name__
        self.layers = _clones(name, encoder_layer, num_layers)
        self.num_layers = len(self.layers)
        self.norm = _norm_arg(name, norm)
        self.enable_nested_tensor = flag(name, "enable_nested_tensor", enable_nested_tensor)
        self.mask_check = flag(name, "mask_check", mask_check)
        self.use_nested_tensor = enable_nested_tensor and _nested_qualifies(encoder_layer)

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        n = self._take_positional(1)
        is_causal = causal_flag(self._tag(), "is_causal", is_causal, mask, "mask")
        pad = src_key_padding_mask
        nested = pad is not None and mask is None and self._nested_path(src)
        if nested:
            pad = _padded_positions(pad, self.mask_check)
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, is_causal=is_causal, src_key_padding_mask=pad)
        if nested:
            x = _zero_padded(x, pad, self.mask_check)
        if self.norm is not None:
            x = self.norm(x)
        self.save_for_backward(n)
        return x

    def _nested_path(self, src):
        """Whether torch would take its nested-tensor path (see the class doc)."""
        return (self.use_nested_tensor and not grad_enabled() and not self.layers[0].training
                and getattr(src, "ndim", 0) == 3)

    def backward(self, dy, input_grad: bool = True):
        (n,) = self.saved()
        d = self._norm_backward(dy)
        last = len(self.layers) - 1
        for i, layer in enumerate(reversed(self.layers)):
            d = layer.backward(d, input_grad=input_grad or i < last)
        return None if dy is None else self._per_argument(n, (d,), input_grad)

    def config(self):
        return {"encoder_layer": self.layers[0], "num_layers": self.num_layers, "norm": self.norm,
                "enable_nested_tensor": self.enable_nested_tensor, "mask_check": self.mask_check}


def _nested_qualifies(layer) -> bool:
    """torch's conditions (at construction) on the layer for its nested-tensor path."""
    return (isinstance(layer, TransformerEncoderLayer) and not layer.norm_first and layer.batch_first
            and layer.bias and isinstance(layer.activation, (ReLU, GELU))
            and layer.norm1.eps == layer.norm2.eps and layer.nhead % 2 == 0)


def _padded_positions(key_padding_mask, mask_check):
    """The ``(N, S)`` boolean padding of torch's nested tensor: True (or a nonzero additive
    value) in the mask; without ``mask_check`` torch reads the mask as lengths (each row's first
    ``count(kept)`` positions kept, wherever its padding is), and so does this."""
    xp = backends.namespace_of(key_padding_mask)
    pad = key_padding_mask if key_padding_mask.dtype == xp.bool else key_padding_mask != 0
    if mask_check:
        return pad
    kept = xp.sum(xp.astype(xp.logical_not(pad), xp.int64), axis=1)
    return xp.arange(pad.shape[1], device=pad.device)[None, :] >= kept[:, None]


def _zero_padded(x, pad, mask_check):
    """``x`` with 0 at the ``pad`` positions, as torch's nested tensor gives back; with
    ``mask_check``, only where every row's padding is at its end (else torch keeps its full
    path); computed on the device, with no host read."""
    xp = backends.namespace_of(x)
    if mask_check:  # every row left-aligned: no kept position after a padded one
        pad = xp.logical_and(pad, xp.all(xp.logical_or(pad[:, 1:], xp.logical_not(pad[:, :-1]))))
    return xp.where(pad[:, :, None], 0.0, x)


class TransformerDecoder(_Stack):
    """``num_layers`` decoder layers in turn, each attending to ``memory``, then ``norm`` (when
    given), as ``torch.nn.TransformerDecoder``::

        x = tgt;  x = layer_i(x, memory, tgt_mask=..., memory_mask=..., ...) for each i;  y = norm(x)

    ``decoder_layer`` is deep copied ``num_layers`` times (``layers.0.``, ...), as torch does.
    Shapes and masks: as TransformerDecoderLayer's; ``tgt_is_causal=None`` is False (see
    TransformerEncoder).

    Backward: ``norm``'s, then each layer's in reverse order; ``memory`` feeds every layer, so its
    gradient is the sum of theirs. Returns ``(dtgt, dmemory)``, then None for each further
    positional argument. Keeps only that count.
    """

    def __init__(self, decoder_layer, num_layers, norm=None):
        name = type(self).__name__
        self.layers = _clones(name, decoder_layer, num_layers)
        self.num_layers = len(self.layers)
        self.norm = _norm_arg(name, norm)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        n = self._take_positional(2)
        tgt_is_causal = causal_flag(self._tag(), "tgt_is_causal", tgt_is_causal, tgt_mask, "tgt_mask")
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask, tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                      memory_is_causal=memory_is_causal)
        if self.norm is not None:
            x = self.norm(x)
        self.save_for_backward(n)
        return x

    def backward(self, dy, input_grad: bool = True):
        (n,) = self.saved()
        d, dmemory = self._norm_backward(dy), None
        for layer in reversed(self.layers):
            grads = layer.backward(d)
            d, dm = (None, None) if grads is None else grads
            dmemory = add(dmemory, dm)
        return None if dy is None else self._per_argument(n, (d, dmemory), input_grad)

    def config(self):
        return {"decoder_layer": self.layers[0], "num_layers": self.num_layers, "norm": self.norm}
