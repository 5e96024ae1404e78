"""Checkpoint architecture rules of the activations of issue 11: every one is stateless but
PReLU, whose ``weight`` has ``num_parameters`` slopes."""

from __future__ import annotations


def _prelu(a):
    from ...validate import positive_int
    from ..checkpoint_arch import FLOAT

    return [("weight", (positive_int("PReLU", "num_parameters", a["num_parameters"]),), True, FLOAT)]


def rules(L):
    from ..checkpoint_arch import _stateless

    out = {cls: _stateless for cls in (L.CELU, L.ELU, L.SELU, L.GELU, L.GLU, L.Hardshrink, L.Hardsigmoid, L.Hardswish,
                                        L.Hardtanh, L.LogSigmoid, L.LogSoftmax, L.Mish, L.ReLU6, L.SiLU, L.Softmax2d,
                                        L.Softmin, L.Softplus, L.Softshrink, L.Softsign, L.Tanhshrink, L.Threshold)}
    out[L.PReLU] = _prelu
    return out
