"""Cases of the activations of issue 11: ELU, CELU, SELU, GELU (both forms), SiLU, Mish, Softplus,
LogSigmoid, Softsign, Tanhshrink, the piecewise family (Hardtanh, ReLU6, Hardsigmoid, Hardswish,
Hardshrink, Softshrink, Threshold), LogSoftmax, Softmin, Softmax2d, GLU and PReLU: their options,
0-d and unbatched inputs, wide inputs that cross every piece, and the errors."""

from __future__ import annotations

import xpnet as xn
from tests.layer_cases import FLOAT_ONLY, Case, _placed, ints, normal


def plain(cls, *args, **kwargs):
    """``make`` for a stateless activation: ``cls(*args, **kwargs)``."""
    return lambda be, dt: cls(*args, **kwargs)


def twin(name, *args, **kwargs):
    return lambda nn: getattr(nn, name)(*args, **kwargs)


def elementwise(cid, cls, args=(), kwargs=None, shape=(3, 4), scale=2.0, bad=None, error=FLOAT_ONLY):
    """A case of an elementwise activation: inputs ``N(0, scale^2)``, an integer input refused."""
    kwargs = kwargs or {}
    return Case(cid, cls, plain(cls, *args, **kwargs), normal(*shape, scale=scale), twin(cls.__name__, *args, **kwargs),
                bad or ints(*shape), error)


AXIS_2 = r"\(dim=2\) expected an input with axis 2, got 2-d input"

CASES = [
    elementwise("ELU", xn.ELU),
    elementwise("ELU-alpha-unbatched", xn.ELU, (0.5,), shape=(5,)),
    elementwise("ELU-scalar", xn.ELU, kwargs=dict(alpha=2.0), shape=()),
    elementwise("CELU", xn.CELU, (2.0,), shape=(2, 3, 4)),
    elementwise("CELU-negative-alpha", xn.CELU, (-0.5,), scale=0.5),  # 1/alpha exact in float32: see CELU
    elementwise("SELU", xn.SELU, shape=(2, 5)),
    elementwise("SELU-scalar", xn.SELU, shape=()),
    elementwise("GELU", xn.GELU, shape=(4, 6), scale=3.0),
    elementwise("GELU-tanh", xn.GELU, ("tanh",), shape=(2, 3, 4), scale=3.0),
    elementwise("GELU-scalar", xn.GELU, shape=()),
    elementwise("SiLU", xn.SiLU, shape=(3, 5), scale=4.0),
    elementwise("SiLU-scalar", xn.SiLU, shape=()),
    elementwise("Mish", xn.Mish, shape=(2, 3, 2)),
    elementwise("Softplus", xn.Softplus),
    elementwise("Softplus-beta-threshold", xn.Softplus, (2.0, 1.5), shape=(4, 5)),
    elementwise("Softplus-negative-beta-unbatched", xn.Softplus, kwargs=dict(beta=-0.5), shape=(6,)),
    elementwise("LogSigmoid", xn.LogSigmoid, shape=(3, 4), scale=5.0),
    elementwise("Softsign", xn.Softsign, shape=(2, 6)),
    elementwise("Tanhshrink", xn.Tanhshrink, shape=(3, 2, 2)),
    elementwise("Hardtanh", xn.Hardtanh, shape=(4, 5)),
    elementwise("Hardtanh-bounds-unbatched", xn.Hardtanh, (-0.5, 2.0), shape=(7,)),
    elementwise("ReLU6", xn.ReLU6, shape=(3, 4), scale=5.0),
    elementwise("ReLU6-scalar", xn.ReLU6, shape=()),
    elementwise("Hardsigmoid", xn.Hardsigmoid, shape=(3, 5), scale=4.0),
    elementwise("Hardswish", xn.Hardswish, shape=(2, 3, 4), scale=4.0),
    elementwise("Hardshrink", xn.Hardshrink, shape=(4, 4)),
    elementwise("Hardshrink-lambd", xn.Hardshrink, (1.5,), shape=(3, 4), scale=3.0),
    elementwise("Softshrink", xn.Softshrink, shape=(4, 4)),
    elementwise("Softshrink-zero-unbatched", xn.Softshrink, (0.0,), shape=(5,)),
    elementwise("Threshold", xn.Threshold, (0.1, 20.0), shape=(3, 4)),
    elementwise("Threshold-scalar", xn.Threshold, (-0.5, -2.0), shape=()),

    # along an axis
    Case("LogSoftmax", xn.LogSoftmax, plain(xn.LogSoftmax, dim=1), normal(3, 5, scale=3.0), twin("LogSoftmax", dim=1),
         ints(3, 5), FLOAT_ONLY),
    Case("LogSoftmax-dim0-3d", xn.LogSoftmax, plain(xn.LogSoftmax, 0), normal(4, 2, 3), twin("LogSoftmax", 0),
         ints(4, 2, 3), FLOAT_ONLY),
    Case("LogSoftmax-scalar", xn.LogSoftmax, plain(xn.LogSoftmax, -1), normal(), twin("LogSoftmax", -1),
         ints(), FLOAT_ONLY),
    Case("LogSoftmax-dim2", xn.LogSoftmax, plain(xn.LogSoftmax, 2), normal(2, 3, 4), twin("LogSoftmax", 2),
         normal(3, 4), (ValueError, r"LogSoftmax" + AXIS_2)),
    Case("Softmin", xn.Softmin, plain(xn.Softmin, -1), normal(4, 3, scale=2.0), twin("Softmin", -1),
         ints(4, 3), FLOAT_ONLY),
    Case("Softmin-dim1-4d", xn.Softmin, plain(xn.Softmin, 1), normal(2, 3, 2, 2), twin("Softmin", 1),
         normal(4), (ValueError, r"Softmin\(dim=1\) expected an input with axis 1, got 1-d input")),
    Case("Softmax2d", xn.Softmax2d, plain(xn.Softmax2d), normal(2, 3, 2, 3, scale=2.0), twin("Softmax2d"),
         normal(3, 4), (ValueError, r"Softmax2d\(\) expected a 3-D \(C, H, W\) or 4-D \(N, C, H, W\) input, "
                                    r"got 2-D input of shape \(3, 4\)")),
    Case("Softmax2d-unbatched", xn.Softmax2d, plain(xn.Softmax2d), normal(4, 2, 3), twin("Softmax2d"),
         ints(4, 2, 3), FLOAT_ONLY),

    # gated
    Case("GLU", xn.GLU, plain(xn.GLU), normal(3, 6), twin("GLU"), normal(3, 5),
         (ValueError, r"GLU\(dim=-1\) expected an even size along axis -1 \(it is halved\), got input of shape \(3, 5\)")),
    Case("GLU-dim1-3d", xn.GLU, plain(xn.GLU, 1), normal(2, 4, 3, scale=2.0), twin("GLU", 1), normal(),
         (ValueError, r"GLU\(dim=1\) expected an input with axis 1, got a 0-d input \(it has no axis to halve\)")),
    Case("GLU-unbatched", xn.GLU, plain(xn.GLU, 0), normal(8), twin("GLU", 0), ints(8), FLOAT_ONLY),

    # learned
    Case("PReLU", xn.PReLU, lambda be, dt: xn.PReLU(**_placed(be, dt)), normal(4, 3, 2), twin("PReLU"),
         ints(4, 3), (TypeError, r"PReLU\(num_parameters=1\) expected a floating-point")),
    Case("PReLU-channels", xn.PReLU, lambda be, dt: xn.PReLU(3, 0.1, **_placed(be, dt)), normal(2, 3, 2, 2),
         twin("PReLU", 3, 0.1), normal(2, 4, 2),
         (ValueError, r"PReLU\(num_parameters=3\) expected an input with 3 channels \(axis 1\), got input of shape "
                      r"\(2, 4, 2\); or use PReLU\(num_parameters=1\)")),
    Case("PReLU-channels-2d", xn.PReLU, lambda be, dt: xn.PReLU(4, **_placed(be, dt)), normal(5, 4), twin("PReLU", 4),
         normal(4), (ValueError, r"PReLU\(num_parameters=4\) expected an input with 4 channels \(axis 1\), got input of "
                                 r"shape \(4,\)")),
    Case("PReLU-unbatched", xn.PReLU, lambda be, dt: xn.PReLU(init=-0.4, **_placed(be, dt)), normal(6), twin("PReLU", init=-0.4),
         ints(6), FLOAT_ONLY),
    Case("PReLU-scalar", xn.PReLU, lambda be, dt: xn.PReLU(**_placed(be, dt)), normal(), twin("PReLU"),
         ints(3), FLOAT_ONLY),
    Case("PReLU-frozen", xn.PReLU, lambda be, dt: _frozen(xn.PReLU(2, **_placed(be, dt))), normal(3, 2, 4), twin("PReLU", 2),
         normal(3, 5, 4), (ValueError, r"PReLU\(num_parameters=2\) expected an input with 2 channels")),
]


def _frozen(layer):
    layer.weight.requires_grad_(False)
    return layer
