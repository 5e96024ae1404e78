"""Cases of the normalization layers: BatchNorm1d/2d/3d, InstanceNorm1d/2d/3d, GroupNorm,
LayerNorm, RMSNorm and LocalResponseNorm (training and eval mode, running statistics or none,
affine or not, unbatched inputs, the shapes and the errors torch has)."""

from __future__ import annotations

import xpnet as xn
from tests.layer_cases import Case, _placed, ints, normal

FLOAT_ONLY = (TypeError, r"expected a floating-point .*input, got int64")


def shifted(*shape):
    """Normal values around 0.5 with spread 2: statistics far from the identity's."""
    return lambda rng: (rng.standard_normal(shape) * 2.0 + 0.5,)


CASES = [
    # BatchNorm
    Case("BatchNorm1d", xn.BatchNorm1d, lambda be, dt: xn.BatchNorm1d(5, **_placed(be, dt)), normal(4, 5),
         lambda nn: nn.BatchNorm1d(5), normal(4, 3),
         (ValueError, r"BatchNorm1d\(.*\) expected input \(N, 5\) or \(N, 5, L\), got \(4, 3\)")),
    Case("BatchNorm1d-3d-momentum-none", xn.BatchNorm1d,
         lambda be, dt: xn.BatchNorm1d(3, 1e-3, None, **_placed(be, dt)), normal(4, 3, 6),
         lambda nn: nn.BatchNorm1d(3, 1e-3, None), normal(1, 3),
         (ValueError, r"BatchNorm1d\(.*\): expected more than 1 value per channel when training")),
    Case("BatchNorm1d-eval", xn.BatchNorm1d, lambda be, dt: xn.BatchNorm1d(5, **_placed(be, dt)).eval(), normal(3, 5),
         lambda nn: nn.BatchNorm1d(5), normal(3, 5, 2, 2), (ValueError, r"BatchNorm1d\(.*\) expected input")),
    Case("BatchNorm1d-not-affine", xn.BatchNorm1d, lambda be, dt: xn.BatchNorm1d(5, affine=False, **_placed(be, dt)),
         normal(4, 5), lambda nn: nn.BatchNorm1d(5, affine=False), ints(4, 5),
         (TypeError, r"BatchNorm1d\(.*\) expected a floating-point")),
    Case("BatchNorm1d-no-running-stats", xn.BatchNorm1d,
         lambda be, dt: xn.BatchNorm1d(5, momentum=0.3, track_running_stats=False, **_placed(be, dt)).eval(),
         normal(4, 5), lambda nn: nn.BatchNorm1d(5, momentum=0.3, track_running_stats=False), normal(4, 4),
         (ValueError, r"BatchNorm1d\(.*\) expected input")),
    Case("BatchNorm1d-no-bias", xn.BatchNorm1d, lambda be, dt: xn.BatchNorm1d(5, bias=False, **_placed(be, dt)),
         normal(4, 5), lambda nn: nn.BatchNorm1d(5, bias=False), normal(4, 4), (ValueError, r"BatchNorm1d\(.*\) expected input")),
    Case("BatchNorm2d", xn.BatchNorm2d, lambda be, dt: xn.BatchNorm2d(3, momentum=0.8, **_placed(be, dt)), normal(2, 3, 3, 4),
         lambda nn: nn.BatchNorm2d(3, momentum=0.8), normal(2, 3, 4),
         (ValueError, r"BatchNorm2d\(.*\) expected input \(N, 3, H, W\), got \(2, 3, 4\)")),
    Case("BatchNorm2d-eval", xn.BatchNorm2d, lambda be, dt: xn.BatchNorm2d(3, **_placed(be, dt)).eval(), normal(2, 3, 3, 2),
         lambda nn: nn.BatchNorm2d(3), normal(2, 4, 3, 2), (ValueError, r"BatchNorm2d\(.*\) expected input")),
    Case("BatchNorm2d-not-affine", xn.BatchNorm2d, lambda be, dt: xn.BatchNorm2d(2, affine=False, **_placed(be, dt)),
         normal(3, 2, 2, 2), lambda nn: nn.BatchNorm2d(2, affine=False), normal(3, 2), (ValueError, r"BatchNorm2d\(.*\) expected input")),
    Case("BatchNorm3d", xn.BatchNorm3d, lambda be, dt: xn.BatchNorm3d(3, momentum=0.7, **_placed(be, dt)),
         shifted(2, 3, 2, 3, 2), lambda nn: nn.BatchNorm3d(3, momentum=0.7), normal(2, 3, 4, 4),
         (ValueError, r"BatchNorm3d\(3\) expected input \(N, 3, D, H, W\), got \(2, 3, 4, 4\)")),
    Case("BatchNorm3d-eval-no-bias", xn.BatchNorm3d, lambda be, dt: xn.BatchNorm3d(2, bias=False, **_placed(be, dt)).eval(),
         normal(2, 2, 2, 2, 3), lambda nn: nn.BatchNorm3d(2, bias=False), ints(2, 2, 2, 2, 3),
         (TypeError, r"BatchNorm3d\(2\) expected a floating-point")),
    Case("BatchNorm3d-cma-untracked", xn.BatchNorm3d,
         lambda be, dt: xn.BatchNorm3d(2, 1e-3, None, affine=False, track_running_stats=False, **_placed(be, dt)).eval(),
         normal(3, 2, 2, 1, 2), lambda nn: nn.BatchNorm3d(2, 1e-3, None, affine=False, track_running_stats=False),
         normal(1, 2, 1, 1, 1), (ValueError, r"BatchNorm3d\(2\): expected more than 1 value per channel")),

    # InstanceNorm
    Case("InstanceNorm1d", xn.InstanceNorm1d, lambda be, dt: xn.InstanceNorm1d(3), shifted(4, 3, 5),
         lambda nn: nn.InstanceNorm1d(3), normal(4, 3, 5, 2),
         (ValueError, r"InstanceNorm1d\(3\) expected input \(N, 3, L\) or \(3, L\), got \(4, 3, 5, 2\)")),
    Case("InstanceNorm1d-unbatched-affine", xn.InstanceNorm1d,
         lambda be, dt: xn.InstanceNorm1d(3, affine=True, **_placed(be, dt)), shifted(3, 6),
         lambda nn: nn.InstanceNorm1d(3, affine=True), normal(4, 6),
         (ValueError, r"InstanceNorm1d\(3\) expected input with 3 channels at axis 0 \(the size of its weight and bias\), "
                      r"got \(4, 6\)")),
    Case("InstanceNorm1d-tracked", xn.InstanceNorm1d,
         lambda be, dt: xn.InstanceNorm1d(3, 1e-3, 0.3, False, True, **_placed(be, dt)), shifted(4, 3, 5),
         lambda nn: nn.InstanceNorm1d(3, 1e-3, 0.3, False, True), normal(4, 3, 1),
         (ValueError, r"InstanceNorm1d\(3\): expected more than 1 spatial element when training, got input of shape \(4, 3, 1\)")),
    Case("InstanceNorm1d-tracked-momentum-none", xn.InstanceNorm1d,
         lambda be, dt: xn.InstanceNorm1d(3, momentum=None, track_running_stats=True, **_placed(be, dt)), normal(2, 3, 4),
         lambda nn: nn.InstanceNorm1d(3, momentum=None, track_running_stats=True), normal(2, 4, 4),
         (ValueError, r"InstanceNorm1d\(3\) expected input with 3 channels at axis 1 \(the size of its running statistics\)")),
    Case("InstanceNorm2d", xn.InstanceNorm2d, lambda be, dt: xn.InstanceNorm2d(2, affine=True, **_placed(be, dt)),
         shifted(3, 2, 3, 4), lambda nn: nn.InstanceNorm2d(2, affine=True), ints(3, 2, 3, 4),
         (TypeError, r"InstanceNorm2d\(2\) expected a floating-point \(float\d\d\) input, got int64")),
    Case("InstanceNorm2d-tracked-eval", xn.InstanceNorm2d,
         lambda be, dt: xn.InstanceNorm2d(3, affine=True, bias=False, track_running_stats=True, **_placed(be, dt)).eval(),
         normal(2, 3, 3, 2), lambda nn: nn.InstanceNorm2d(3, affine=True, bias=False, track_running_stats=True),
         normal(3, 2), (ValueError, r"InstanceNorm2d\(3\) expected input \(N, 3, H, W\) or \(3, H, W\), got \(3, 2\)")),
    Case("InstanceNorm2d-tracked-unbatched", xn.InstanceNorm2d,
         lambda be, dt: xn.InstanceNorm2d(2, track_running_stats=True, **_placed(be, dt)), shifted(2, 3, 3),
         lambda nn: nn.InstanceNorm2d(2, track_running_stats=True), normal(2, 1, 1),
         (ValueError, r"InstanceNorm2d\(2\): expected more than 1 spatial element")),
    Case("InstanceNorm3d", xn.InstanceNorm3d, lambda be, dt: xn.InstanceNorm3d(2, 1e-3), shifted(2, 2, 2, 3, 2),
         lambda nn: nn.InstanceNorm3d(2, 1e-3), normal(2, 2, 3),
         (ValueError, r"InstanceNorm3d\(2\) expected input \(N, 2, D, H, W\) or \(2, D, H, W\)")),
    Case("InstanceNorm3d-unbatched-tracked-eval", xn.InstanceNorm3d,
         lambda be, dt: xn.InstanceNorm3d(2, affine=True, track_running_stats=True, **_placed(be, dt)).eval(),
         normal(2, 2, 2, 3), lambda nn: nn.InstanceNorm3d(2, affine=True, track_running_stats=True),
         normal(3, 2, 2, 3), (ValueError, r"InstanceNorm3d\(2\) expected input with 2 channels at axis 0")),

    # GroupNorm
    Case("GroupNorm", xn.GroupNorm, lambda be, dt: xn.GroupNorm(2, 4, **_placed(be, dt)), shifted(3, 4, 5),
         lambda nn: nn.GroupNorm(2, 4), normal(3, 5, 5),
         (ValueError, r"GroupNorm\(2, 4\) expected input \(N, 4, \*\), got \(3, 5, 5\)")),
    Case("GroupNorm-2d-input", xn.GroupNorm, lambda be, dt: xn.GroupNorm(3, 6, 1e-3, **_placed(be, dt)), normal(4, 6),
         lambda nn: nn.GroupNorm(3, 6, 1e-3), normal(6),
         (ValueError, r"GroupNorm\(3, 6\) expected input \(N, 6, \*\) of 2 or more dimensions, got \(6,\)")),
    Case("GroupNorm-4d-no-bias", xn.GroupNorm, lambda be, dt: xn.GroupNorm(1, 3, bias=False, **_placed(be, dt)),
         shifted(2, 3, 2, 3), lambda nn: nn.GroupNorm(1, 3, bias=False), ints(2, 3, 2, 3),
         (TypeError, r"GroupNorm\(1, 3\) expected a floating-point \(float\d\d\) input")),
    Case("GroupNorm-5d-not-affine", xn.GroupNorm, lambda be, dt: xn.GroupNorm(4, 4, affine=False), normal(2, 4, 2, 2, 2),
         lambda nn: nn.GroupNorm(4, 4, affine=False), normal(2, 6, 2),
         (ValueError, r"GroupNorm\(4, 4\) expected input \(N, 4, \*\), got \(2, 6, 2\)")),

    # LayerNorm, RMSNorm
    Case("LayerNorm", xn.LayerNorm, lambda be, dt: xn.LayerNorm(4, **_placed(be, dt)), normal(3, 4),
         lambda nn: nn.LayerNorm(4), normal(3, 5), (ValueError, r"LayerNorm\(.*\) expected input \(\*, 4\), got \(3, 5\)")),
    Case("LayerNorm-2d-no-affine", xn.LayerNorm, lambda be, dt: xn.LayerNorm((2, 3), 1e-3, False, **_placed(be, dt)),
         normal(4, 2, 3), lambda nn: nn.LayerNorm((2, 3), 1e-3, False), normal(4, 3, 2),
         (ValueError, r"LayerNorm\(.*\) expected input \(\*, 2, 3\)")),
    Case("LayerNorm-no-bias", xn.LayerNorm, lambda be, dt: xn.LayerNorm([2, 5], bias=False, **_placed(be, dt)),
         normal(3, 2, 5), lambda nn: nn.LayerNorm([2, 5], bias=False), ints(3, 2, 5),
         (TypeError, r"LayerNorm\(.*\) expected a floating-point")),
    Case("LayerNorm-long-rows", xn.LayerNorm, lambda be, dt: xn.LayerNorm(40, **_placed(be, dt)), shifted(3, 2, 40),
         lambda nn: nn.LayerNorm(40), normal(3, 2, 4), (ValueError, r"LayerNorm\(\(40,\)\) expected input \(\*, 40\)")),
    Case("RMSNorm", xn.RMSNorm, lambda be, dt: xn.RMSNorm(4, **_placed(be, dt)), shifted(3, 4),
         lambda nn: nn.RMSNorm(4), normal(3, 5),
         (ValueError, r"RMSNorm\(\(4,\)\) expected input \(\*, 4\), got \(3, 5\)")),
    Case("RMSNorm-2d-eps-not-affine", xn.RMSNorm, lambda be, dt: xn.RMSNorm([2, 3], 1e-3, False), normal(4, 2, 3),
         lambda nn: nn.RMSNorm([2, 3], 1e-3, False), ints(4, 2, 3), FLOAT_ONLY),
    Case("RMSNorm-long-rows", xn.RMSNorm, lambda be, dt: xn.RMSNorm(40, eps=0.5, **_placed(be, dt)), normal(2, 3, 40),
         lambda nn: nn.RMSNorm(40, eps=0.5), ints(2, 40), (TypeError, r"RMSNorm\(\(40,\)\) expected a floating-point")),

    # LocalResponseNorm
    Case("LocalResponseNorm-3d", xn.LocalResponseNorm, lambda be, dt: xn.LocalResponseNorm(3), normal(2, 5, 4),
         lambda nn: nn.LocalResponseNorm(3), normal(5, 4),
         (ValueError, r"LocalResponseNorm\(3\) expected input \(N, C, \*\) of 3 or more dimensions, got \(5, 4\)")),
    Case("LocalResponseNorm-even-4d", xn.LocalResponseNorm, lambda be, dt: xn.LocalResponseNorm(2, 0.5, 0.6, 1.5),
         normal(2, 4, 3, 2), lambda nn: nn.LocalResponseNorm(2, 0.5, 0.6, 1.5), ints(2, 4, 3, 2), FLOAT_ONLY),
    Case("LocalResponseNorm-wide-5d", xn.LocalResponseNorm, lambda be, dt: xn.LocalResponseNorm(6, 1.0, 0.5, 2),
         normal(1, 3, 2, 2, 3), lambda nn: nn.LocalResponseNorm(6, 1.0, 0.5, 2), normal(3),
         (ValueError, r"LocalResponseNorm\(6\) expected input")),
]
