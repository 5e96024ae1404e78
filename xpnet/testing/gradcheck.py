"""Finite-difference gradient checking for any layer or loss (public API).

The checked scalar is ``L = sum_k sum(y_k * w_k)`` over the float outputs ``y_k`` of
``module(*inputs)``, each with its own random cotangent ``w_k``; ``backward(*w)`` must then
return ``dL/dx_i`` for every float input and ADD ``dL/dp`` into every trainable
``Parameter.grad``. A loss is a layer with inputs ``(pred, target)``; its backward is called as
``loss.backward(w, target_grad=True)`` and returns ``(dpred, dtarget)`` (``dtarget`` None for
integer targets); ``w`` is a Python float when the loss is 0-d.

Each float input and each trainable parameter ``a`` is checked along ``directions`` random
directions ``v`` (Chainer's ``check_backward``)::

    (L(a + eps v) - L(a - eps v)) / (2 eps)  ~=  <dL/da, v>

The cotangents and the directions are drawn from gradcheck's own numpy generator (seeded with
``seed``), on the host in float64, every one independent of the others and of the layer's
generator, then moved to their array's device with the backend's ``asarray``. (A direction
equal to the cotangent would let a transposed matrix pass for the right one.) Random layers
(dropout) are made deterministic by restoring the backend generators' state before every
forward pass; the finite-difference forwards run under :func:`xpnet.no_grad`.

Besides the values, gradcheck checks the contract: every returned gradient has its array's
shape, dtype, device and type; integer inputs get ``None``; frozen parameters keep ``grad``
None; ``backward(..., input_grad=False)`` returns ``None`` for every input and the same
parameter gradients; a second backward ADDS into ``grad`` (``check_accumulation``); and every
backward pops what its forward saved. The module's gradients, buffers (running statistics)
and saved stacks are as before when gradcheck returns.
"""

from __future__ import annotations


from .. import backends
from . import _tree
from ..layers.base import Layer, no_grad
from ..validate import positive_int, positive_real


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree, or backward breaks the layer contract; the
    message lists every problem found."""


def _is_loss(module):
    from ..layers.losses import Loss

    return isinstance(module, Loss)


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


def _array_backend(what, a):
    try:
        return backends.backend_of(a)
    except TypeError:
        raise TypeError(f"gradcheck: {what} must be an array of a known backend, got {type(a).__name__}") from None


def _describe(be, a):
    return f"shape {tuple(a.shape)}, {be.dtype_name(a.dtype)}, {type(a).__name__} on {a.device}"


def _matches(g, a):
    return (
        type(g) is type(a) and tuple(g.shape) == tuple(a.shape) and g.dtype == a.dtype and g.device == a.device
    )


def _leaf_backend(what, a):
    """The backend of an array leaf, or None for a constant (None, a flag, a number, a string)."""
    if a is None or isinstance(a, (bool, int, float, str)):
        return None
    return _array_backend(what, a)


def _grad_leaves(g, shape, what, errors):
    """The gradient ``g`` of an input of tree ``shape``, as one leaf per input leaf (None where
    it gives none); a wrong form is an error."""
    n = len(_tree.paths(shape))
    if not isinstance(shape, tuple):
        return [g]
    if g is None:
        return [None] * n
    if not isinstance(g, tuple) or len(g) != len(shape):
        got = f"a tuple of {len(g)}" if isinstance(g, tuple) else type(g).__name__
        errors.append(f"{what}: expected a tuple of {len(shape)} gradients (the input is a tuple), got {got}")
        return [None] * n
    return [leaf for e, s in zip(g, shape) for leaf in _grad_leaves(e, s, what, errors)]


def gradcheck(module, *inputs, eps=1e-6, rtol=1e-5, atol=1e-8, directions=3, check_accumulation=True, seed=0,
              kwargs=None):
    """Check ``module``'s backward against central finite differences; return True or raise.

    Args:
        module: a Layer (``y = module(*inputs, **kwargs)``: one array, or a tuple of outputs
            that may hold tuples and None, as LSTM's ``(output, (h_n, c_n))``;
            ``module.backward(*dys)`` with one cotangent per output, in the same structure) or
            a Loss (``L = module(pred, target)``; ``module.backward(dL, target_grad=True)``
            gives ``(dpred, dtarget)``).
        inputs: what the module is called with: arrays (float ones must be float64, and are
            checked; integer and boolean ones (indices, labels, masks) get no gradient), tuples
            of arrays (an LSTM's ``(h0, c0)``, whose gradient is a tuple or None), and constants
            (None, flags, numbers), which get None.
        eps, rtol, atol: step and tolerances; mismatch when ``|num - ana| > atol + rtol * max(|num|, |ana|)``.
        directions: how many random directions per float input and per trainable parameter.
        check_accumulation: also check that a second backward adds the same gradients again.
        seed: seeds gradcheck's own generator of cotangents and directions.
        kwargs: keyword arguments of every forward call (masks, flags); never differentiated.

    Raises:
        ValueError: a float input or a parameter is not float64.
        GradcheckError: a gradient, shape, dtype or device is wrong, or the contract is broken.
    """
    if not isinstance(module, Layer):
        raise TypeError(f"gradcheck expected a Layer or a Loss, got {type(module).__name__}")
    if not inputs:
        raise TypeError("gradcheck expected at least one input: gradcheck(module, x, ...)")
    positive_int("gradcheck", "directions", directions)
    positive_real("gradcheck", "eps", eps)
    kwargs = dict(kwargs or {})
    is_loss = _is_loss(module)
    leaves, in_shape = _tree.flatten(tuple(inputs))
    leaf_names = [f"input {p[1:].replace(']', '', 1)}" for p in _tree.paths(in_shape)]  # "input 1[0]"
    in_bes = [_leaf_backend(n, a) for n, a in zip(leaf_names, leaves)]
    params = list(module.named_parameters())
    trained = [(n, p) for n, p in params if p.requires_grad]
    frozen = [(n, p) for n, p in params if not p.requires_grad]
    is_float = [be is not None and be.is_float(a.dtype) for be, a in zip(in_bes, leaves)]
    named = [(n, be, a) for n, be, a, f in zip(leaf_names, in_bes, leaves, is_float) if f]
    named += [(n, backends.backend_of(p.data), p.data) for n, p in params]
    for name, be, a in named:
        if be.dtype_name(a.dtype) != "float64":
            raise ValueError(
                f"gradcheck needs float64 arrays, got {be.dtype_name(a.dtype)} for {name}; "
                "call module.to(dtype='float64') and pass a float64 input"
            )

    places = {id(be): be for be in [b for b in in_bes if b is not None] + [be for _, be, _ in named]}
    resets = [_rng_reset(be) for be in places.values()]  # dropout draws from its input's backend
    modules = [m for _, m in module.named_modules()]
    pending = [m.pending for m in modules]
    user_grads = [p.grad for _, p in params]
    buffers = [(owner, attr, getattr(owner, attr)) for _, owner, attr, is_param in module.state_entries() if not is_param]
    rng = backends.host.generator(seed)
    hx = backends.host.host_namespace()
    tag = repr(module)
    out_shape = None

    def forward(flat):
        nonlocal out_shape
        for r in resets:
            r()
        out = module(*_tree.unflatten(in_shape, flat), **kwargs)
        ys, out_shape = _tree.flatten(out)
        return ys

    def backward(cts, input_grad):
        kw = {"input_grad": input_grad}
        if is_loss and input_grad:
            kw["target_grad"] = True
        structured = _tree.unflatten(out_shape, cts)
        return module.backward(*structured, **kw) if isinstance(out_shape, tuple) else module.backward(structured, **kw)

    try:
        for _, p in params:
            p.grad = None
        outs = forward(leaves)
        errors = []
        cts, hosts = [], []  # cotangents as passed to backward, and their host copies
        for k, y in enumerate(outs):
            if y is None:  # an output the layer was asked not to give (attention weights)
                cts.append(None)
                hosts.append(None)
                continue
            be = _array_backend(f"output {k}", y)
            if not be.is_float(y.dtype):
                cts.append(None)
                hosts.append(None)
                continue
            if be.dtype_name(y.dtype) != "float64":
                errors.append(f"output {k}: float64 inputs and parameters gave a {be.dtype_name(y.dtype)} output")
            w = rng.standard_normal(tuple(y.shape))
            hosts.append(w)
            cts.append(float(w) if is_loss and y.ndim == 0 else be.asarray(w))
        if errors:
            raise GradcheckError(f"gradcheck failed for {tag}:\n  " + "\n  ".join(errors))

        def scalar(flat):
            with no_grad():
                ys = forward(flat)
            total = 0.0
            for y, w in zip(ys, hosts):
                if w is not None:
                    total += float(hx.sum(backends.to_numpy(y) * w))
            return total

        def grads_of(result, what):
            """The returned input gradients as one leaf per input leaf; errors for a wrong form."""
            several = is_loss or len(inputs) > 1
            if not several:
                if isinstance(result, tuple) and not isinstance(in_shape[0], tuple):
                    errors.append(f"{what}: a one-input layer must return one array (or None), got a tuple of {len(result)}")
                    return [None] * len(leaves)
                return _grad_leaves(result, in_shape[0], what, errors)
            if not isinstance(result, tuple) or len(result) != len(inputs):
                got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
                errors.append(f"{what}: expected a tuple of {len(inputs)} input gradients, got {got}")
                return [None] * len(leaves)
            return [leaf for g, s in zip(result, in_shape) for leaf in _grad_leaves(g, s, what, errors)]

        dxs = grads_of(backward(cts, True), "backward")
        for name, g, a, be, f in zip(leaf_names, dxs, leaves, in_bes, is_float):
            if not f:
                if g is not None:
                    what = "a constant" if be is None else be.dtype_name(a.dtype)
                    errors.append(f"{name} ({what}) has no gradient: backward must return None for it")
            elif g is None or not hasattr(g, "shape") or not _matches(g, a):
                errors.append(
                    f"{name}: the gradient must match the input ({_describe(be, a)}), got "
                    + ("None" if g is None else _describe(be, g) if hasattr(g, "shape") else type(g).__name__)
                )
        grads = [p.grad for _, p in trained]
        for (name, p), g in zip(trained, grads):
            be = backends.backend_of(p.data)
            if g is None:
                errors.append(f"{name}: backward left grad None")
            elif not _matches(g, p.data):
                errors.append(f"{name}: grad ({_describe(be, g)}) does not match the parameter ({_describe(be, p.data)})")
        for name, p in frozen:
            if p.grad is not None:
                errors.append(f"{name} is frozen (requires_grad=False) but backward gave it a gradient")
        if errors:
            raise GradcheckError(f"gradcheck failed for {tag}:\n  " + "\n  ".join(errors))

        host_dxs = [None if g is None else backends.to_numpy(g) for g in dxs]
        host_grads = [backends.to_numpy(g) for g in grads]
        for k in range(directions):
            for i, (name, a, be, f) in enumerate(zip(leaf_names, leaves, in_bes, is_float)):
                if not f:
                    continue
                v = rng.standard_normal(tuple(a.shape))
                dv = be.asarray(v * eps)
                # asarray: numpy turns 0-d arithmetic into a scalar, which is not an array
                args_p = leaves[:i] + [be.xp.asarray(a + dv)] + leaves[i + 1:]
                args_m = leaves[:i] + [be.xp.asarray(a - dv)] + leaves[i + 1:]
                num = (scalar(args_p) - scalar(args_m)) / (2 * eps)
                ana = float(hx.sum(host_dxs[i] * v))
                if not _close(num, ana, rtol, atol):
                    errors.append(f"{name}, direction {k}: numeric {num:.10g} vs analytic {ana:.10g}")
            for (name, p), g in zip(trained, host_grads):
                v = rng.standard_normal(tuple(p.shape))
                base = p.data
                pb = backends.backend_of(base)
                dv = pb.asarray(v * eps)
                try:
                    p.data = pb.xp.asarray(base + dv)
                    fp = scalar(leaves)
                    p.data = pb.xp.asarray(base - dv)
                    fm = scalar(leaves)
                finally:
                    p.data = base
                num = (fp - fm) / (2 * eps)
                ana = float(hx.sum(g * v))
                if not _close(num, ana, rtol, atol):
                    errors.append(f"{name}, direction {k}: numeric {num:.10g} vs analytic {ana:.10g}")

        # input_grad=False: no input gradient, the same parameter gradients
        for _, p in trained:
            p.grad = None
        forward(leaves)
        result = backward(cts, False)
        if any(r is not None for r in _tree.flatten(result)[0]):
            errors.append("backward(..., input_grad=False) must return None for every input")
        for (name, p), g in zip(trained, host_grads):
            if p.grad is None:
                errors.append(f"{name}: backward(..., input_grad=False) left grad None")
                continue
            gap = backends.host.abs_max(backends.to_numpy(p.grad) - g)
            if gap > atol + rtol * backends.host.abs_max(g):
                errors.append(f"{name}: backward(..., input_grad=False) gives another gradient (max gap {gap:.3g})")

        if check_accumulation and trained and all(p.grad is not None for _, p in trained):
            firsts = [backends.to_numpy(p.grad) for _, p in trained]
            forward(leaves)
            backward(cts, True)
            for (name, p), g, first in zip(trained, host_grads, firsts):
                expect = first + g
                gap = backends.host.abs_max(backends.to_numpy(p.grad) - expect)
                if gap > atol + rtol * backends.host.abs_max(expect):
                    errors.append(f"{name}: a second backward must add into grad (max gap {gap:.3g}); did it overwrite?")

        for m, n0 in zip(modules, pending):
            n = m.pending
            if n != n0:
                errors.append(f"{m._tag()} holds {n - n0} saved entries after as many backwards as forwards: "
                              "backward must pop what forward saved (self.saved())")
        if errors:
            raise GradcheckError(f"gradcheck failed for {tag}:\n  " + "\n  ".join(errors))
        return True
    finally:
        for (_, p), g in zip(params, user_grads):
            p.grad = g
        for owner, attr, value in buffers:
            setattr(owner, attr, value)
        for m, n0 in zip(modules, pending):
            m.trim_saved(n0)
