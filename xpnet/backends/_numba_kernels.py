"""The fused float32 CPU kernels behind :mod:`._fused`, compiled by numba (imported only there,
and only when numba is installed). Each makes one pass through memory where the array-API code
makes one per operation (GELU's forward: about 25).

Every constant is a float32 (a Python float would make numba compute in float64). Fast-math is
limited to flags that keep the results what the array-API code computes, to rounding: ``nsz``
(the sign of zero), ``contract`` (fused multiply-add), ``arcp`` (``a / b`` as ``a * (1 / b)``);
no ``nnan``/``ninf`` (NaN and infinities come out as torch gives them), and ``reassoc`` only in
the norms, whose sums it lets LLVM vectorize: in float32 over blocks of ``_BLOCK`` values (rows,
columns: ``_ROWS`` rows), the blocks then added in float64. The elementwise kernels keep
association as written: :func:`_exp` depends on it.

Loops that LLVM vectorizes run from 0 over a 1-D view (``x[n, c]``, ``row[lo:hi]``): measured
here, the same loop over ``range(lo, hi)`` of a longer row, or over a row ``reshape``d inside
the loop, ran 3-5x slower.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_f32 = np.float32
_EXACT = {"nsz", "contract", "arcp"}
_SUMS = {"nsz", "contract", "arcp", "reassoc"}
# compiled on first use (a few seconds for all), then loaded from numba's on-disk cache
_jit = dict(cache=True, nogil=True, error_model="numpy")

# exp: Cephes' expf (range reduction by Cody and Waite, ln 2 in two parts, a degree-6 polynomial)
_LOG2E = _f32(1.44269504088896341)
_LN2_HI, _LN2_LO = _f32(0.693359375), _f32(-2.12194440e-4)
_E = tuple(_f32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                             1.6666665459e-1, 5.0000001201e-1))
_EXP_LO, _EXP_HI = _f32(-87.0), _f32(88.0)  # exp stays a normal float32 between them
_F0, _F1, _HALF = _f32(0.0), _f32(1.0), _f32(0.5)
_INF = _f32(np.inf)
_BLOCK = 1024  # a float32 partial sum covers at most this many values (then float64)
_ROWS = 16  # rows summed into float32 column accumulators before they are added into float64

# GELU: Abramowitz and Stegun 26.2.17, as xpnet.layers.activations_erf.normal_cdf_pdf
_AS_P = _f32(0.2316419)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_AS_B = tuple(_f32(b * _INV_SQRT_2PI) for b in (0.319381530, -0.356563782, 1.781477937, -1.821255978, 1.330274429))
_PDF = _f32(_INV_SQRT_2PI)


@numba.njit(fastmath=_EXACT, inline="always", **_jit)
def _exp_sat(v):
    """``exp(v)`` of ``v`` clamped to [-87, 88] (so between 1.6e-38 and 1.7e38), NaN for NaN:
    :func:`_exp` without its two range selects, as the recurrent steps' sigmoid and tanh take
    it (their ``1 / (1 + e)`` is 1 either way below -87; above 88, 6e-39 for 0)."""
    c = min(max(v, _EXP_LO), _EXP_HI)
    k = np.int32(c * _LOG2E + _f32(128.5))  # floor(c log2 e + 1/2) + 128, truncated from positive
    n = _f32(k) - _f32(128.0)
    r = c - n * _LN2_HI
    r = r - n * _LN2_LO
    p = _E[0]
    p = p * r + _E[1]
    p = p * r + _E[2]
    p = p * r + _E[3]
    p = p * r + _E[4]
    p = p * r + _E[5]
    p = p * r * r + r + _F1
    e = p * np.int32((k - 1) << 23).view(np.float32)  # 2^n, built from its exponent bits
    return v if v != v else e


@numba.njit(fastmath=_EXACT, inline="always", **_jit)
def _exp(v):
    """``exp(v)`` in float32, within about 1e-7 relative; 0 below -87, inf above 88, NaN for NaN.
    Branch-free, so that LLVM vectorizes the loops that call it."""
    e = _exp_sat(v)
    e = _F0 if v < _EXP_LO else e
    return _INF if v > _EXP_HI else e


@numba.njit(fastmath=_EXACT, **_jit)
def gelu(x, y, slope):
    """``y = x Phi(x)``, ``slope = Phi(x) + x phi(x)`` of the 1-D float32 ``x``."""
    for i in range(x.shape[0]):
        v = x[i]
        t = _F1 / (abs(v) * _AS_P + _F1)
        q = t * _AS_B[4]
        q = (q + _AS_B[3]) * t
        q = (q + _AS_B[2]) * t
        q = (q + _AS_B[1]) * t
        q = (q + _AS_B[0]) * t
        pdf = _exp(v * v * -_HALF)
        q = q * pdf  # Phi(-|x|)
        cdf = q if v < _F0 else _F1 - q
        y[i] = v * cdf
        slope[i] = cdf + v * (pdf * _PDF)


@numba.njit(fastmath=_EXACT, **_jit)
def silu(x, y, slope):
    """``y = x s``, ``slope = s + y (1 - s)``, ``s = 1 / (1 + exp(-x))``, of the 1-D float32 ``x``."""
    for i in range(x.shape[0]):
        v = x[i]
        s = _F1 / (_exp(-v) + _F1)
        u = v * s
        y[i] = u
        slope[i] = s + u * (_F1 - s)


@numba.njit(fastmath=_SUMS, inline="always", **_jit)
def _sum(x):
    """``sum(x)`` of the 1-D float32 ``x``: each block of ``_BLOCK`` values summed in float32
    (vectorized), the blocks in float64."""
    s = 0.0
    for lo in range(0, x.shape[0], _BLOCK):
        b = x[lo:lo + _BLOCK]
        a = _F0
        for j in range(b.shape[0]):
            a += b[j]
        s += a
    return s


@numba.njit(fastmath=_SUMS, inline="always", **_jit)
def _sum_sq_dev(x, mu):
    """``sum((x - mu)^2)``, summed as :func:`_sum`."""
    s = 0.0
    for lo in range(0, x.shape[0], _BLOCK):
        b = x[lo:lo + _BLOCK]
        a = _F0
        for j in range(b.shape[0]):
            d = b[j] - mu
            a += d * d
        s += a
    return s


@numba.njit(fastmath=_SUMS, inline="always", **_jit)
def _sums_dy(dy, x, mu, rs):
    """``(sum(dy), sum(dy xhat))``, ``xhat = (x - mu) rs``, summed as :func:`_sum`."""
    s1 = 0.0
    s2 = 0.0
    for lo in range(0, x.shape[0], _BLOCK):
        xb, db = x[lo:lo + _BLOCK], dy[lo:lo + _BLOCK]
        a1 = _F0
        a2 = _F0
        for j in range(xb.shape[0]):
            d = db[j]
            a1 += d
            a2 += d * ((xb[j] - mu) * rs)
        s1 += a1
        s2 += a2
    return s1, s2


@numba.njit(fastmath=_SUMS, inline="always", **_jit)
def _flush(acc, total):
    """``total += acc`` (float64 += float32), then ``acc = 0``."""
    for j in range(acc.shape[0]):
        total[j] += acc[j]
        acc[j] = _F0


@numba.njit(fastmath=_SUMS, **_jit)
def layer_norm(x, w, b, eps, y, mean, rstd):
    """Rows of ``x (R, m)``: ``y = (x - mean) rstd w + b`` per row (biased variance, two passes
    over the row); ``mean``, ``rstd`` ``(R,)``."""
    r_, m = x.shape
    for r in range(r_):
        xr, yr = x[r], y[r]
        mu = _f32(_sum(xr) / m)
        rs = _f32(1.0 / math.sqrt(_sum_sq_dev(xr, mu) / m + eps))
        for j in range(m):
            yr[j] = (xr[j] - mu) * rs * w[j] + b[j]
        mean[r] = mu
        rstd[r] = rs


@numba.njit(fastmath=_SUMS, **_jit)
def layer_norm_backward(dy, x, mean, rstd, w, dx, dw, db):
    """LayerNorm's backward: ``dw += sum_rows dy xhat``, ``db += sum_rows dy`` (float64 ``(m,)``,
    summed in float32 over ``_ROWS`` rows at a time); per row, unless ``dx`` is empty::

        dx = rstd (dy w - mean(dy w) - xhat mean(dy w xhat))
    """
    r_, m = x.shape
    want_dx = dx.shape[0] > 0
    aw, ab = np.zeros(m, np.float32), np.zeros(m, np.float32)
    for r in range(r_):
        xr, dyr = x[r], dy[r]
        mu, rs = mean[r], rstd[r]
        s1 = 0.0
        s2 = 0.0
        for lo in range(0, m, _BLOCK):
            xb, gb, wb = xr[lo:lo + _BLOCK], dyr[lo:lo + _BLOCK], w[lo:lo + _BLOCK]
            awb, abb = aw[lo:lo + _BLOCK], ab[lo:lo + _BLOCK]
            a1 = _F0
            a2 = _F0
            for j in range(xb.shape[0]):
                h = (xb[j] - mu) * rs
                g = gb[j]
                awb[j] += g * h
                abb[j] += g
                gw = g * wb[j]
                a1 += gw
                a2 += gw * h
            s1 += a1
            s2 += a2
        if r % _ROWS == _ROWS - 1:
            _flush(aw, dw)
            _flush(ab, db)
        if want_dx:
            a, c = _f32(s1 / m), _f32(s2 / m)
            dxr = dx[r]
            for j in range(m):
                h = (xr[j] - mu) * rs
                dxr[j] = rs * (dyr[j] * w[j] - a - h * c)
    _flush(aw, dw)
    _flush(ab, db)


@numba.njit(fastmath=_SUMS, **_jit)
def group_norm(x, groups, w, b, eps, y, mean, rstd):
    """``x (N, C, S)`` in ``groups`` of ``K = C / groups`` channels: per sample and group, over its
    ``K S`` values (contiguous), ``y = (x - mean) rstd w[c] + b[c]``; ``mean``, ``rstd``
    ``(N groups,)``."""
    n_, c_, s_ = x.shape
    k_ = c_ // groups
    m = k_ * s_
    xg = x.reshape(n_ * groups, m)
    for r in range(n_ * groups):
        mu = _f32(_sum(xg[r]) / m)
        rs = _f32(1.0 / math.sqrt(_sum_sq_dev(xg[r], mu) / m + eps))
        n, c0 = r // groups, (r % groups) * k_
        for c in range(c0, c0 + k_):
            a, bc, xc, yc = rs * w[c], b[c], x[n, c], y[n, c]
            for j in range(s_):
                yc[j] = (xc[j] - mu) * a + bc
        mean[r] = mu
        rstd[r] = rs


@numba.njit(fastmath=_SUMS, **_jit)
def group_norm_backward(dy, x, groups, mean, rstd, w, dx, dw, db):
    """GroupNorm's backward (float64 ``dw``, ``db`` ``(C,)`` accumulated; ``dx`` unless empty)::

        dx = rstd (dy w[c] - mean(dy w) - xhat mean(dy w xhat))   over each group's values
    """
    n_, c_, s_ = x.shape
    k_ = c_ // groups
    m = k_ * s_
    want_dx = dx.shape[0] > 0
    for r in range(n_ * groups):
        mu, rs = mean[r], rstd[r]
        n, c0 = r // groups, (r % groups) * k_
        s1 = 0.0
        s2 = 0.0
        for c in range(c0, c0 + k_):
            rdy, rg = _sums_dy(dy[n, c], x[n, c], mu, rs)
            dw[c] += rg
            db[c] += rdy
            s1 += w[c] * rdy
            s2 += w[c] * rg
        if want_dx:
            a, e = _f32(s1 / m), _f32(s2 / m)
            for c in range(c0, c0 + k_):
                xc, dyc, dxc, wc = x[n, c], dy[n, c], dx[n, c], w[c]
                for j in range(s_):
                    dxc[j] = rs * (dyc[j] * wc - a - (xc[j] - mu) * rs * e)


# -- recurrent steps (issue 12): the pointwise part of one LSTM or GRU step, forward and backward --
# tanh: Cephes' tanhf (an odd polynomial below 0.625 in magnitude, (e - 1) / (e + 1), e = exp(2v), above)
_TANH = tuple(_f32(c) for c in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1,
                                -3.33332819422e-1))
_TANH_POLY = _f32(0.625)
_TWO, _FOUR = _f32(2.0), _f32(4.0)


@numba.njit(fastmath=_EXACT, inline="always", **_jit)
def _tanh(v):
    """``tanh(v)`` in float32, within about 1.5e-7 relative; +-1 beyond +-44, NaN for NaN.
    Branch-free (both forms computed, one selected), as :func:`_exp`."""
    z = v * v
    p = _TANH[0]
    p = p * z + _TANH[1]
    p = p * z + _TANH[2]
    p = p * z + _TANH[3]
    p = p * z + _TANH[4]
    p = p * z * v + v
    e = _exp_sat(v + v)
    q = (e - _F1) / (e + _F1)
    return p if abs(v) < _TANH_POLY else q  # NaN: not below 0.625, and q is NaN


@numba.njit(fastmath=_EXACT, inline="always", **_jit)
def _sig_neg(v):
    """``1 / (1 + exp(v))``: the sigmoid of ``-v`` (the step's weight columns carry the sign)."""
    return _F1 / (_exp_sat(v) + _F1)


# Each kernel branches once, at its top, into loops without branches: a branch inside the loop
# over rows (keep or not, dy or not) made the LSTM step 1.6x slower at H = 32 (measured here).
@numba.njit(fastmath=_EXACT, **_jit)
def lstm_step(a, gx, t, c, out, c_new, pd, at, fk):
    """The pointwise part of an LSTM step (``xpnet.layers.recurrent._steps.LSTM``), ``N`` rows of
    ``H`` units. ``a (N, 4H)``: the recurrent product ``h W'``, ``gx[t] (N, 4H)`` the input
    projection with its bias, both with the gate columns scaled by ``[-1, -1, -2, -1]``; ``c (N,
    H)`` the previous cell. Writes ``c_new = f c + i g`` and ``out[t] = o tanh(c_new)``, where
    ``[i, f, s, o] = 1 / (1 + exp(a + gx[t]))`` and ``g = 2 s - 1``; unless ``pd`` is empty, also
    what the backward takes: ``pd[t] = [g i(1-i), c f(1-f), i 4 s(1-s), tanh(c_new) o(1-o)]``,
    ``at[t] = o (1 - tanh(c_new)^2)`` (as ``o - out tanh(c_new)``) and ``fk[t] = f``."""
    if pd.shape[0] > 0:
        _lstm_keep(a, gx[t], c, out[t], c_new, pd[t], at[t], fk[t])
    else:
        _lstm_only(a, gx[t], c, out[t], c_new)


@numba.njit(fastmath=_EXACT, inline="always", **_jit)
def _quarters(row, m):
    return row[:m], row[m:2 * m], row[2 * m:3 * m], row[3 * m:]


@numba.njit(fastmath=_EXACT, inline="always", **_jit)
def _lstm_unit(ai, af, ag, ao, c0):
    """One unit of the step from its four pre-activations: ``(i, f, s, o, g, c_new, tanh(c_new))``."""
    i = _sig_neg(ai)
    f = _sig_neg(af)
    s = _sig_neg(ag)
    o = _sig_neg(ao)
    g = s * _TWO - _F1
    cn = f * c0 + i * g
    return i, f, s, o, g, cn, _tanh(cn)


@numba.njit(fastmath=_EXACT, **_jit)
def _lstm_only(a, gx, c, out, c_new):
    n_, g4 = a.shape
    m = g4 // 4
    for r in range(n_):
        cp, hr, cr = c[r], out[r], c_new[r]
        ai, af, ag, ao = _quarters(a[r], m)
        xi, xf, xg, xo = _quarters(gx[r], m)
        for j in range(m):
            _, _, _, o, _, cn, tc = _lstm_unit(ai[j] + xi[j], af[j] + xf[j], ag[j] + xg[j], ao[j] + xo[j], cp[j])
            hr[j] = o * tc
            cr[j] = cn


@numba.njit(fastmath=_EXACT, **_jit)
def _lstm_keep(a, gx, c, out, c_new, pd, at, fk):
    n_, g4 = a.shape
    m = g4 // 4
    for r in range(n_):
        cp, hr, cr, tr, fr = c[r], out[r], c_new[r], at[r], fk[r]
        ai, af, ag, ao = _quarters(a[r], m)
        xi, xf, xg, xo = _quarters(gx[r], m)
        pi, pf, pg, po = _quarters(pd[r], m)
        for j in range(m):
            c0 = cp[j]
            i, f, s, o, g, cn, tc = _lstm_unit(ai[j] + xi[j], af[j] + xf[j], ag[j] + xg[j], ao[j] + xo[j], c0)
            h = o * tc
            hr[j] = h
            cr[j] = cn
            pi[j] = i * (_F1 - i) * g
            pf[j] = f * (_F1 - f) * c0
            pg[j] = s * (_F1 - s) * _FOUR * i
            po[j] = o * (_F1 - o) * tc
            tr[j] = o - h * tc
            fr[j] = f


@numba.njit(fastmath=_EXACT, **_jit)
def lstm_back_step(dh, dy, t, dc, pd, at, fk, da, dc_prev):
    """The pointwise part of an LSTM step's backward: with ``g = dh + dy[t]`` (``dh`` alone where
    ``dy`` is empty) the gradient reaching ``o tanh(c_t)`` and ``dc (N, H)`` the one reaching
    ``c_t`` from the later step, ``d = dc + g at[t]``, ``da[t] = [d, d, d, g] pd[t]`` (the
    pre-activations' gradients, ``(N, 4H)``) and ``dc_prev = d fk[t]``."""
    if dy.shape[0] > 0:
        g = np.empty_like(dh)
        _add(dh.reshape(-1), dy[t].reshape(-1), g.reshape(-1))
        _lstm_back(g, dc, pd[t], at[t], fk[t], da[t], dc_prev)
    else:
        _lstm_back(dh, dc, pd[t], at[t], fk[t], da[t], dc_prev)


@numba.njit(fastmath=_EXACT, **_jit)
def _add(a, b, out):
    for j in range(a.shape[0]):
        out[j] = a[j] + b[j]


@numba.njit(fastmath=_EXACT, **_jit)
def _lstm_back(dh, dc, pd, at, fk, da, dc_prev):
    n_, m = dh.shape
    for r in range(n_):
        gr, dcr, tr, fr, cr = dh[r], dc[r], at[r], fk[r], dc_prev[r]
        pi, pf, pg, po = _quarters(pd[r], m)
        di, df, dg, do = _quarters(da[r], m)
        for j in range(m):
            g = gr[j]
            d = g * tr[j] + dcr[j]
            di[j] = d * pi[j]
            df[j] = d * pf[j]
            dg[j] = d * pg[j]
            do[j] = g * po[j]
            cr[j] = d * fr[j]


@numba.njit(fastmath=_EXACT, **_jit)
def gru_step(gh, gx, t, bn, h, out, k, kr, z):
    """The pointwise part of a GRU step (``xpnet.layers.recurrent._steps.GRU``), ``N`` rows of
    ``H`` units: ``gh (N, 3H)`` the recurrent product ``h W'``, ``gx[t] (N, 3H)`` the input
    projection with its bias (``r``, ``z`` columns negated), ``bn (H,)`` the bias ``b_hn``, ``h (N,
    H)`` the previous state. With ``[r, z] = 1 / (1 + exp(gx + gh))`` and ``n = tanh(gx_n + r (gh_n
    + bn))``, writes ``out[t] = n + z (h - n)``; unless ``k`` is empty, also ``k[t] = [Cr, Cz,
    Cn]``, ``kr[t] = [Cr, Cz, Cn r]`` and ``z[t]``: ``Cn = (1-z)(1-n^2)``, ``Cz = (h-n) z (1-z)``,
    ``Cr = Cn (gh_n + bn) r (1-r)``."""
    if k.shape[0] > 0:
        _gru_keep(gh, gx[t], bn, h, out[t], k[t], kr[t], z[t])
    else:
        _gru_only(gh, gx[t], bn, h, out[t])


@numba.njit(fastmath=_EXACT, inline="always", **_jit)
def _thirds(row, m):
    return row[:m], row[m:2 * m], row[2 * m:]


@numba.njit(fastmath=_EXACT, inline="always", **_jit)
def _gru_unit(xr, xz, xn, ar, az, an, b, hp):
    """One unit of the step: ``(r, z, gh_n + b_hn, n, h_new)``."""
    r = _sig_neg(xr + ar)
    z = _sig_neg(xz + az)
    ghn = an + b
    n = _tanh(xn + r * ghn)
    return r, z, ghn, n, n + z * (hp - n)


@numba.njit(fastmath=_EXACT, **_jit)
def _gru_only(gh, gx, bn, h, out):
    n_, g3 = gh.shape
    m = g3 // 3
    for row in range(n_):
        hp, hr = h[row], out[row]
        ar, az, an = _thirds(gh[row], m)
        xr, xz, xn = _thirds(gx[row], m)
        for j in range(m):
            hr[j] = _gru_unit(xr[j], xz[j], xn[j], ar[j], az[j], an[j], bn[j], hp[j])[4]


@numba.njit(fastmath=_EXACT, **_jit)
def _gru_keep(gh, gx, bn, h, out, k, kr, z):
    n_, g3 = gh.shape
    m = g3 // 3
    for row in range(n_):
        hp, hr, zr = h[row], out[row], z[row]
        ar, az, an = _thirds(gh[row], m)
        xr, xz, xn = _thirds(gx[row], m)
        kr_, kz, kn = _thirds(k[row], m)
        qr, qz, qn = _thirds(kr[row], m)
        for j in range(m):
            r, zz, ghn, n, hn = _gru_unit(xr[j], xz[j], xn[j], ar[j], az[j], an[j], bn[j], hp[j])
            hr[j] = hn
            omz = _F1 - zz
            cn = omz * (_F1 - n * n)
            cz = (hp[j] - n) * zz * omz
            cr = cn * ghn * r * (_F1 - r)
            kr_[j] = cr
            kz[j] = cz
            kn[j] = cn
            qr[j] = cr
            qz[j] = cz
            qn[j] = cn * r
            zr[j] = zz


@numba.njit(fastmath=_EXACT, **_jit)
def gru_back_step(mm, dy, t, dh_later, z, t_later, k, kr, dh, dgx, dgh):
    """The pointwise part of a GRU step's backward: the gradient reaching ``h_t``,
    ``dh = mm + dh_later z[t_later] + dy[t]`` (``mm = dgh_later W_hh``; no ``z`` term where
    ``t_later < 0``, no ``dy`` where it is empty), then ``dgx[t] = dh [1, 1, 1] k[t]`` and
    ``dgh[t] = dh kr[t]`` (``(N, 3H)``, each third times ``dh``)."""
    a, g = mm.reshape(-1), dh.reshape(-1)  # (N, H) contiguous: one loop over all of it
    if t_later >= 0:
        _add_prod(a, dh_later.reshape(-1), z[t_later].reshape(-1), g)
        a = g
    if dy.shape[0] > 0:
        _add(a, dy[t].reshape(-1), g)
    elif t_later < 0:
        g[:] = a
    _gru_back(dh, k[t], kr[t], dgx[t], dgh[t])


@numba.njit(fastmath=_EXACT, **_jit)
def _add_prod(a, b, c, out):
    for j in range(a.shape[0]):
        out[j] = a[j] + b[j] * c[j]


@numba.njit(fastmath=_EXACT, **_jit)
def _gru_back(dh, k, kr, dgx, dgh):
    n_, m = dh.shape
    for row in range(n_):
        g, kk, kq, ox, oh = dh[row], k[row], kr[row], dgx[row], dgh[row]
        for q in range(3):
            lo, hi = q * m, (q + 1) * m
            ks, qs, xs, hs = kk[lo:hi], kq[lo:hi], ox[lo:hi], oh[lo:hi]
            for j in range(m):
                xs[j] = g[j] * ks[j]
                hs[j] = g[j] * qs[j]
