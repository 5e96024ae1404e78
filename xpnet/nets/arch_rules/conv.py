"""Checkpoint architecture rules of the convolutions (:mod:`xpnet.layers.conv`,
:mod:`~xpnet.layers.conv_transpose`, :mod:`~xpnet.layers.conv_lazy`): ``weight`` of shape
``(out, in / groups, *kernel)`` (transposed: ``(in, out / groups, *kernel)``) and ``bias
(out,)``. A lazy convolution makes no array before its first forward (one that has run is saved
as the eager class), so its rule predicts none."""

from __future__ import annotations


def _conv(cls, transposed):
    def rule(a):
        from ...validate import flag, int_tuple, positive_int
        from ..checkpoint_arch import FLOAT

        name = cls.__name__
        i = positive_int(name, "in_channels", a["in_channels"])
        o = positive_int(name, "out_channels", a["out_channels"])
        g = positive_int(name, "groups", a["groups"])
        if i % g or o % g:
            raise ValueError(f"{name}: in_channels ({i}) and out_channels ({o}) must both be divisible by groups ({g})")
        k = int_tuple(name, "kernel_size", a["kernel_size"], cls.dims, 1)
        w = ((i, o // g) if transposed else (o, i // g)) + k
        return [("weight", w, True, FLOAT)] + ([("bias", (o,), True, FLOAT)] if flag(name, "bias", a["bias"]) else [])
    return rule


def rules(L):
    from ..checkpoint_arch import _stateless

    out = {cls: _conv(cls, False) for cls in (L.Conv1d, L.Conv2d, L.Conv3d)}
    out.update({cls: _conv(cls, True) for cls in (L.ConvTranspose1d, L.ConvTranspose2d, L.ConvTranspose3d)})
    out.update({cls: _stateless for cls in (L.LazyConv1d, L.LazyConv2d, L.LazyConv3d, L.LazyConvTranspose1d,
                                            L.LazyConvTranspose2d, L.LazyConvTranspose3d)})
    return out
