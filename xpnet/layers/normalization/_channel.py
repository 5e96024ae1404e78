"""The channel norms' shared forward and backward: BatchNorm, InstanceNorm and GroupNorm all
standardize ``x`` viewed as ``(N, C, S)`` (``S``: the product of the spatial sizes) over some
axes, then apply a per-channel affine map. They differ only in which values share statistics:

- BatchNorm: per channel ``c``, over ``(N, S)``;
- InstanceNorm: per sample and channel ``(n, c)``, over ``S``;
- GroupNorm: per sample and group of channels ``(n, g)``, over ``(C / G, S)``.

A subclass says so with ``_pool`` (per-``(n, c)`` row sums, ``(N, C)``, to sums over each
statistic's ``m`` values) and ``_spread`` (a statistic back to ``(N, C)`` or ``(1, C)``).

Forward, with ``mean`` and ``inv_std = 1 / sqrt(var + eps)`` (biased variance) spread per ``(n, c)``::

    xhat = (x - mean) * inv_std,   y = weight * xhat + bias

Backward, from two row reductions of ``dy`` per ``(n, c)``: ``rdy = sum_S dy`` and
``rg = sum_S dy * xhat = inv_std * sum_S dy * (x - mean)`` (from ``x - mean``, as torch's
two-pass kernels: ``sum dy * x - mean * rdy`` would cancel where the mean is large)::

    dbias = sum_n rdy,   dweight = sum_n rg
    dx = inv_std * (weight * dy - (s1 + xhat * s2) / m)      (s1 = pool(weight * rdy), s2 = pool(weight * rg))
       = dy * A + (x - mean) * B + C0,   A = weight * inv_std,   B = -inv_std^2 s2 / m,   C0 = -inv_std s1 / m

With fixed statistics (running ones, eval mode) the map is affine: ``dx = dy * A``.

The forward keeps ``x - mean`` (its one temporary), not ``xhat``: a training step makes about
ten passes through memory, each row reduction one BLAS pass.

A float16/bfloat16 input (mixed precision) is computed in float32: statistics, ``y`` (given back
in the input's dtype), the backward's sums; running statistics keep their own dtype.
"""

from __future__ import annotations

from ... import backends
from ..base import Layer, Signature, grad_enabled, trains
from ._core import check_input, row_dots, row_sums


class _ChannelNorm(Layer):
    """Base of the channel norms (see the module doc). Subclasses set ``eps``, ``weight``,
    ``bias`` (Parameters of shape ``(C,)`` or None), ``running_mean``/``running_var``/
    ``num_batches_tracked`` (or None) and implement the hooks below."""

    _buffer_names = ("running_mean", "running_var", "num_batches_tracked")
    running_mean = running_var = num_batches_tracked = None

    # -- hooks -------------------------------------------------------------------------
    def _geometry(self, tag, x):
        """``(N, C, S)`` of the input (raising for a shape the layer does not take)."""
        raise NotImplementedError

    def _pool(self, xp, v):
        """Per-``(n, c)`` sums ``(N, C)`` -> sums over each statistic's values."""
        raise NotImplementedError

    def _spread(self, xp, s, n, c):
        """A statistic -> ``(N, C)`` or ``(1, C)`` (broadcasting against ``(N, C)``)."""
        return s

    def _count(self, n, c, s):
        """How many values each statistic is taken over."""
        raise NotImplementedError

    def _too_few(self, tag, shape):
        """The error for batch statistics over one value each, or None where that is allowed."""
        return None

    def _factor(self, xp):
        """The running average's weight of the new statistics (after ``_advance``)."""
        return self.momentum

    def _advance(self, xp):
        """Count a training batch (BatchNorm's ``num_batches_tracked``)."""

    def _ref(self):
        """What the input's place and dtype must match: the weight, else a running statistic."""
        if self.weight is not None:
            return self.weight.data
        return self.running_mean

    # -- forward -----------------------------------------------------------------------
    def forward(self, x):
        tag = self._tag()
        check_input(tag, x, self._ref(), stats=self.weight is None)
        n, c, s = self._geometry(tag, x)
        be = backends.backend_of(x)
        xp = be.xp
        # float16/bfloat16: statistics and y in float32; dy is checked against x's Signature then
        like = Signature(x) if x.dtype in be.low_float_dtypes else x
        x3 = xp.reshape(be.widened(x), (n, c, s))
        tracking = self.running_mean is not None
        batch = self.training or not tracking
        m = self._count(n, c, s)
        if batch and m == 1:
            err = self._too_few(tag, tuple(x.shape))
            if err is not None:
                raise err
        if self.training and tracking:
            self._advance(xp)
        w = None if self.weight is None else be.widened(self.weight.data)
        b = None if self.bias is None else be.widened(self.bias.data)
        batch = batch and m > 0  # an empty input: an empty output, zero gradients (torch)
        if batch:
            mean, var, xc = self._standardize(xp, x3, n, c, s, m)
            inv = self._spread(xp, 1.0 / xp.sqrt(var + self.eps), n, c)
            if self.training and tracking:
                self._track(be, mean, var, m, c)
            scale = _per_row(xp, inv if w is None else w * inv)
            # backward takes its sums from x - mean (as torch's two-pass kernels: no cancellation
            # where the mean is large); a forward without backward scales it in place
            y = xc * scale if grad_enabled() else _scaled(xc, scale)
            if b is not None:
                y += _per_row(xp, xp.reshape(b, (1, c)))
            x3, mean = xc, None
        else:
            if tracking and not self.training:
                mean = xp.reshape(be.widened(self.running_mean), (1, c))
                inv = xp.reshape(1.0 / xp.sqrt(be.widened(self.running_var) + self.eps), (1, c))
            else:  # empty: any per-channel statistics give the same empty output
                mean = xp.zeros((1, c), dtype=x3.dtype, device=x3.device)
                inv = xp.ones((1, c), dtype=x3.dtype, device=x3.device)
            scale = inv if w is None else w * inv
            shift = -mean * scale if b is None else b - mean * scale
            y = x3 * _per_row(xp, scale)  # the map is per-channel affine: two passes over x
            y += _per_row(xp, shift)
        # Kept for backward: x - mean with batch statistics (mean None), else the input and the
        # mean (as (N, C, S), float32 where x came in lower precision; statistics per (n, c),
        # broadcastable); inv_std; whether the statistics are the batch's (dx then has their
        # terms), their count, and what has y's shape, dtype and place.
        self.save_for_backward(x3, mean, inv, batch, m, like)
        return be.narrowed(xp.reshape(y, tuple(x.shape)), x.dtype)

    def _standardize(self, xp, x3, n, c, s, m):
        """The batch statistics (as ``_pool`` shapes them: mean, biased variance) and ``x - mean``
        (a fresh ``(N, C, S)`` array)."""
        x2 = xp.reshape(x3, (n * c, s))
        mean = self._pool(xp, xp.reshape(row_sums(xp, x2), (n, c))) * (1.0 / m)
        xc = x3 - _per_row(xp, self._spread(xp, mean, n, c))
        xc2 = xp.reshape(xc, (n * c, s))
        var = self._pool(xp, xp.reshape(row_dots(xp, xc2, xc2), (n, c))) * (1.0 / m)
        return mean, var, xc

    def _track(self, be, mean, var, m, c):
        """The running statistics' update, with the statistics averaged over the samples
        (InstanceNorm has one per sample; an empty batch makes them NaN, as torch)::

            running_mean <- (1 - f) running_mean + f mean
            running_var  <- (1 - f) running_var  + f var * m / (m - 1)   (unbiased)
        """
        xp = be.xp
        f = self._factor(xp)
        rm, rv = self.running_mean, self.running_var
        if mean.shape[0] == 0:
            mean_c = var_c = xp.full((c,), float("nan"), dtype=rm.dtype, device=rm.device)
        else:
            mean_c = be.narrowed(xp.mean(mean, axis=0), rm.dtype)
            var_c = be.narrowed(xp.mean(var, axis=0) * (m / (m - 1)), rv.dtype)
        # rebinding, never in place: state dicts handed out earlier stay as they were
        self.running_mean = (1.0 - f) * rm + f * mean_c
        self.running_var = (1.0 - f) * rv + f * var_c

    # -- backward ----------------------------------------------------------------------
    def backward(self, dy, input_grad: bool = True):
        x3, mean, inv, batch, m, like = self.saved()
        if dy is None:
            return None
        self.check_grad(dy, like)
        be = backends.backend_of(dy)
        xp = be.xp
        n, c, s = x3.shape
        out_dtype = dy.dtype
        dy3 = xp.reshape(be.widened(dy), (n, c, s))  # float16/bfloat16: the sums in float32
        w = None if self.weight is None else xp.reshape(be.widened(self.weight.data), (1, c))
        want_w, want_b = trains(self.weight), trains(self.bias)
        full = batch and input_grad  # dx has the batch statistics' terms: both sums needed
        rdy = rg = None
        if want_w or want_b or full:
            dy2 = xp.reshape(dy3, (n * c, s))
            rdy = xp.reshape(row_sums(xp, dy2), (n, c))
            if want_w or full:
                # sum_S dy * xhat per (n, c), from centred values (fixed statistics: centred here;
                # sum dy * x - mean * sum dy would cancel where the mean is large)
                xc = x3 if mean is None else x3 - _per_row(xp, mean)
                rg = xp.reshape(row_dots(xp, dy2, xp.reshape(xc, (n * c, s))), (n, c)) * inv
        if want_w:
            self.weight.accumulate(be.narrowed(xp.sum(rg, axis=0), self.weight.data.dtype))
        if want_b:
            self.bias.accumulate(be.narrowed(xp.sum(rdy, axis=0), self.bias.data.dtype))
        if not input_grad:
            return None
        dx = dy3 * _per_row(xp, inv if w is None else w * inv)
        if full:
            s1 = self._spread(xp, self._pool(xp, rdy if w is None else w * rdy), n, c)
            s2 = self._spread(xp, self._pool(xp, rg if w is None else w * rg), n, c)
            # x3 is x - mean here, ours, and dead after this: overwritten rather than copied
            x3 *= _per_row(xp, (inv * inv * s2) * (-1.0 / m))
            x3 += _per_row(xp, inv * s1 * (-1.0 / m))
            dx += x3
        return be.narrowed(xp.reshape(dx, tuple(like.shape)), out_dtype)


def _scaled(y, scale):
    """``y * scale`` in ``y``'s own memory (``y`` is a fresh temporary)."""
    y *= scale
    return y


def _per_row(xp, v):
    """A per-``(n, c)`` array ``(N or 1, C)`` as ``(N or 1, C, 1)``, to broadcast over ``S``."""
    return xp.reshape(v, tuple(v.shape) + (1,))
