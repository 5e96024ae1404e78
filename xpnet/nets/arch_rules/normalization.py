"""Checkpoint architecture rules of the normalization layers: BatchNorm1d/2d/3d and
InstanceNorm1d/2d/3d (per-channel weight and bias when ``affine``, running statistics and the
batch count when ``track_running_stats``), GroupNorm (per-channel weight and bias), LayerNorm
and RMSNorm (parameters of ``normalized_shape``), LocalResponseNorm (none)."""

from __future__ import annotations


def _running_norm(cls):
    """BatchNorm and InstanceNorm, as torch's ``_NormBase`` makes their arrays."""
    def rule(a):
        from ...validate import flag, positive_int
        from ..checkpoint_arch import FLOAT, INT

        name = cls.__name__
        c = positive_int(name, "num_features", a["num_features"])
        out = _affine(name, (c,), flag(name, "affine", a["affine"]), a["bias"])
        if flag(name, "track_running_stats", a["track_running_stats"]):
            out += [("running_mean", (c,), False, FLOAT), ("running_var", (c,), False, FLOAT),
                    ("num_batches_tracked", (), False, INT)]
        return out
    return rule


def _group_norm(a):
    from ...validate import flag, positive_int

    g = positive_int("GroupNorm", "num_groups", a["num_groups"])
    c = positive_int("GroupNorm", "num_channels", a["num_channels"])
    if c % g:
        raise ValueError(f"GroupNorm: num_channels ({c}) must be divisible by num_groups ({g})")
    return _affine("GroupNorm", (c,), flag("GroupNorm", "affine", a["affine"]), a["bias"])


def _trailing_norm(name, has_bias):
    """LayerNorm (weight and bias) and RMSNorm (weight only) of ``normalized_shape``."""
    def rule(a):
        from ...validate import flag
        from ..checkpoint_arch import _short

        ns = a["normalized_shape"]
        shape = (ns,) if type(ns) is int else tuple(ns) if isinstance(ns, list) else None
        if not shape or any(type(s) is not int or s <= 0 for s in shape):
            raise ValueError(f"{name}: normalized_shape must be a positive int or a non-empty sequence of them, "
                             f"got {_short(ns)}")
        affine = flag(name, "elementwise_affine", a["elementwise_affine"])
        return _affine(name, shape, affine, a["bias"] if has_bias else False)
    return rule


def _affine(name, shape, affine, bias):
    """``weight`` (and ``bias``, unless ``bias`` is False) of ``shape`` when ``affine``."""
    from ...validate import flag
    from ..checkpoint_arch import FLOAT

    bias = flag(name, "bias", bias)
    out = [("weight", shape, True, FLOAT)] if affine else []
    return out + ([("bias", shape, True, FLOAT)] if affine and bias else [])


def rules(L):
    from ..checkpoint_arch import _stateless

    out = {cls: _running_norm(cls) for cls in (L.BatchNorm1d, L.BatchNorm2d, L.BatchNorm3d,
                                               L.InstanceNorm1d, L.InstanceNorm2d, L.InstanceNorm3d)}
    out.update({L.GroupNorm: _group_norm, L.LayerNorm: _trailing_norm("LayerNorm", True),
                L.RMSNorm: _trailing_norm("RMSNorm", False), L.LocalResponseNorm: _stateless})
    return out
