"""Finite-difference gradient checking for any layer or loss (public API).

For a layer, the checked scalar is ``L = sum(y * w)`` with a fixed random cotangent
``w``, so ``backward(w)`` must return ``dL/dx`` and add ``dL/dp`` into every
``Parameter.grad``. For a loss, ``L`` is the loss itself and ``backward()`` is used.

Each of the input and every parameter is checked separately along ``directions``
random unit-free directions ``v`` (Chainer's ``check_backward`` method):

    (L(a + eps v) - L(a - eps v)) / (2 eps)  ~=  <dL/da, v>

Everything runs in float64 on the array's own backend and device. Random layers
(dropout) are made deterministic by restoring the backend generator's state before
every forward pass. The check also verifies the contract that ``backward`` *adds*
into gradients (a second backward doubles them) and that ``dx`` has the input's
shape, dtype and device.
"""

from __future__ import annotations

from .. import backends


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree; the message lists every mismatch."""


def _rng_reset(be):
    """A function that puts the backend generator back where it is now."""
    try:
        state = be.rng.get_state()
    except NotImplementedError:
        seed = be.rng.seed
        return lambda: be.rng.manual_seed(seed)
    return lambda: be.rng.set_state(state)


def _close(num, ana, rtol, atol):
    return abs(num - ana) <= atol + rtol * max(abs(num), abs(ana))


def gradcheck(module, x, target=None, *, eps=1e-6, rtol=1e-5, atol=1e-8, directions=2, check_accumulation=True):
    """Check ``module``'s backward against central finite differences; return True or raise.

    Args:
        module: a Layer (``y = module(x)``, ``dx = module.backward(dy)``) or a Loss
            (``L = module(x, target)``, ``dx = module.backward()``).
        x: the float64 input (prediction, for a loss).
        target: the loss target; ``None`` for layers.
        eps, rtol, atol: step and tolerances; mismatch when ``|num - ana| > atol + rtol * max(|num|, |ana|)``.
        directions: how many random directions per array.
        check_accumulation: also check that a second backward adds the same gradients again.

    Raises:
        ValueError: inputs or parameters are not float64.
        GradcheckError: a gradient, shape, dtype or device is wrong.
    """
    be = backends.backend_of(x)
    xp = be.xp
    f64 = be.dtype("float64")
    is_loss = target is not None or not hasattr(module, "parameters")
    params = [] if is_loss else list(module.named_parameters())
    for name, a in [("input", x)] + [(n, p.data) for n, p in params]:
        if a.dtype != f64:
            raise ValueError(
                f"gradcheck needs float64 arrays, got {be.dtype_name(a.dtype)} for {name}; "
                "call module.to(dtype='float64') and pass a float64 input"
            )
    saved_grads = [p.grad for _, p in params]
    reset = _rng_reset(be)

    def forward(inp):
        reset()
        return module(inp, target) if is_loss else module(inp)

    y0 = forward(x)
    w = None if is_loss else be.rng.normal(tuple(y0.shape), dtype=f64, device=x.device)

    def scalar(inp):
        y = forward(inp)
        return float(y) if is_loss else float(xp.sum(y * w))

    def run_backward():
        reset()
        forward(x)
        return module.backward() if is_loss else module.backward(w)

    try:
        for _, p in params:
            p.grad = None
        dx = run_backward()
        errors = []
        if dx is None or tuple(dx.shape) != tuple(x.shape) or dx.dtype != x.dtype or dx.device != x.device:
            errors.append(
                f"dx must match the input (shape {tuple(x.shape)}, {be.dtype_name(x.dtype)}, {x.device}), got "
                + ("None" if dx is None else f"shape {tuple(dx.shape)}, {be.dtype_name(dx.dtype)}, {dx.device}")
            )
            raise GradcheckError("; ".join(errors))
        grads = [p.grad for _, p in params]
        for (name, p), g in zip(params, grads):
            if g is None:
                errors.append(f"{name}: backward left grad None")
            elif tuple(g.shape) != tuple(p.data.shape) or g.dtype != p.data.dtype or g.device != p.data.device:
                errors.append(f"{name}: grad of shape {tuple(g.shape)} and dtype {be.dtype_name(g.dtype)} does not match the parameter")
        if errors:
            raise GradcheckError("; ".join(errors))

        dirs_rng = be.rng
        for k in range(directions):
            v = dirs_rng.normal(tuple(x.shape), dtype=f64, device=x.device)
            num = (scalar(x + v * eps) - scalar(x - v * eps)) / (2 * eps)
            ana = float(xp.sum(dx * v))
            if not _close(num, ana, rtol, atol):
                errors.append(f"input, direction {k}: numeric {num:.10g} vs analytic {ana:.10g}")
            for (name, p), g in zip(params, grads):
                v = dirs_rng.normal(tuple(p.data.shape), dtype=f64, device=x.device)
                base = p.data
                try:
                    p.data = base + v * eps
                    fp = scalar(x)
                    p.data = base - v * eps
                    fm = scalar(x)
                finally:
                    p.data = base
                num = (fp - fm) / (2 * eps)
                ana = float(xp.sum(g * v))
                if not _close(num, ana, rtol, atol):
                    errors.append(f"{name}, direction {k}: numeric {num:.10g} vs analytic {ana:.10g}")

        if check_accumulation and params:
            run_backward()
            for (name, p), g in zip(params, grads):
                expect = g * 2.0
                gap = float(xp.max(xp.abs(p.grad - expect)))
                if gap > atol + rtol * float(xp.max(xp.abs(expect))):
                    errors.append(f"{name}: a second backward must add into grad (max gap {gap:.3g}); did it overwrite?")
        if errors:
            raise GradcheckError(f"gradcheck failed for {module!r}:\n  " + "\n  ".join(errors))
        return True
    finally:
        for (_, p), g in zip(params, saved_grads):
            p.grad = g
