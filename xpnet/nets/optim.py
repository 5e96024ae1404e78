"""Optimizers with torch.optim's API: parameter groups, ``state_dict``, frozen and tied parameters.

The base validates hyperparameters, holds the parameter groups and rebinds ``Parameter.data``;
a subclass only computes the new value from the gradient, its per-parameter state and its
group's hyperparameters (``_update(w, grad, state, group) -> new data``).

``params`` is an iterable of Parameters, a Layer (its ``parameters()``, where a tied parameter
appears once), or a list of groups ``[{"params": [...], "lr": 0.1}, {"params": [...]}]``, each
overriding any of the constructor's hyperparameters.
"""

from __future__ import annotations

import warnings

from .. import backends
from ..layers.base import Layer, Parameter
from ..validate import nonnegative


class _Hyper:
    """An optimizer attribute for one hyperparameter: reading gives group 0's value, assigning
    sets (validated) every group's, e.g. ``opt.lr = 0.01``."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, opt, cls=None):
        if opt is None:
            return self
        return opt.param_groups[0][self.name]

    def __set__(self, opt, value):
        opt._set_everywhere(self.name, value)


class Optimizer:
    """Holds parameter groups and steps them.

    - ``param_groups``: list of dicts, each with ``"params"`` (its Parameters) and every
      hyperparameter (the constructor's, unless the group overrides it); ``defaults``: the
      constructor's hyperparameters; ``params``: every parameter, in group order; ``state``:
      one dict per parameter of ``params`` (momentum buffers, moments, ``step``).
    - ``step()`` skips parameters whose ``grad`` is ``None`` or whose ``requires_grad`` is False
      (no state is created for them); ``zero_grad()`` sets every ``grad`` to ``None``.
    - A parameter listed twice in one group is kept once (with a warning, as torch warns);
      a parameter in two groups is an error. A group's parameter list is fixed once added (add
      parameters with :meth:`add_param_group`); its hyperparameters may be changed at any time.
    """

    lr = _Hyper()

    def __init__(self, params, **defaults):
        name = type(self).__name__
        self.defaults = self._check(defaults, name)
        self.param_groups = []
        self.params = []
        self.state = []
        self._states = []  # per group: the state dicts of its parameters (the same dicts as ``state``)
        self._plan = []  # (parameter, its state, its group) for every parameter, what step() walks
        for group in _as_groups(params, name):
            self.add_param_group(group)

    # -- groups ------------------------------------------------------------------------
    def add_param_group(self, param_group):
        """Add a group ``{"params": Parameters or a Layer, **hyperparameter overrides}`` (e.g. to
        train layers unfrozen later); unspecified hyperparameters take the constructor's."""
        name = type(self).__name__
        gi = len(self.param_groups)
        where = f"{name} param group {gi}"
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a parameter group must be a dict with 'params', got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{where} has no 'params' key")
        params = _param_list(param_group["params"], name, f" of param group {gi}" if gi else "")
        unique = list({id(p): p for p in params}.values())
        if len(unique) != len(params):
            warnings.warn(f"{where} lists some parameters more than once; each is kept once (a tied parameter "
                          "is stepped once per step)", UserWarning, stacklevel=3)
        if not unique:
            raise ValueError(f"{name} got an empty parameter list" + (f" in param group {gi}" if gi else ""))
        taken = {id(p) for p in self.params}
        if any(id(p) in taken for p in unique):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group (param group {gi})")
        hyper = self._check({**self.defaults, **self._overrides(param_group, where)}, where)
        group = {"params": unique, **hyper}
        self.param_groups.append(group)
        states = [{} for _ in unique]
        self._states.append(states)
        self._plan.extend((p, st, group) for p, st in zip(unique, states))
        self.params.extend(unique)
        self.state.extend(states)

    def _overrides(self, group, where):
        """The hyperparameters of ``group`` (a dict), refusing names this optimizer does not take."""
        out = {k: v for k, v in group.items() if k != "params"}
        for k in out:
            if k not in self.defaults:
                raise ValueError(f"{where}: unknown hyperparameter {k!r}; {type(self).__name__} takes "
                                 f"{', '.join(self.defaults)}")
        return out

    def _check(self, hyper, owner) -> dict:
        """Every hyperparameter validated and normalised, in the canonical order (subclasses
        extend it; ``owner`` prefixes the error messages)."""
        return {"lr": nonnegative(owner, "lr", hyper["lr"])}  # lr = 0 is allowed, as in torch

    def _set_everywhere(self, name, value):
        """Set hyperparameter ``name`` of every group (validated first, for every group)."""
        cls = type(self).__name__
        new = [self._check({**_hyper(g), name: value}, cls if len(self.param_groups) == 1 else f"{cls} param group {i}")[name]
               for i, g in enumerate(self.param_groups)]
        for g, v in zip(self.param_groups, new):
            g[name] = v

    # -- stepping ----------------------------------------------------------------------
    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        # one flat loop over (parameter, state, group): the per-step overhead of small nets
        for p, st, group in self._plan:
            g = p.grad
            if g is not None and p.requires_grad:
                p.data = self._update(p.data, g, st, group)

    def _update(self, w, g, state, group):
        """The new value of a parameter whose data is ``w`` and gradient ``g`` (never modify
        either), given its ``state`` dict and its ``group`` (its hyperparameters)."""
        raise NotImplementedError

    # -- state -------------------------------------------------------------------------
    def state_dict(self):
        """``{"state": {index: {name: array or int}}, "param_groups": [{**hyperparameters,
        "params": [indices]}]}``, as torch: indices number ``params`` (group order), and only
        parameters that have state appear in ``"state"``.

        The arrays are the live buffers, which later steps update in place (as in PyTorch):
        copy them (e.g. ``backend.to_numpy``) to keep a snapshot.
        """
        state, groups, start = {}, [], 0
        for group, states in zip(self.param_groups, self._states):
            groups.append({**_hyper(group), "params": list(range(start, start + len(states)))})
            for j, st in enumerate(states):
                if st:
                    state[start + j] = dict(st)
            start += len(states)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore what :meth:`state_dict` gave: every group's hyperparameters and each
        parameter's state (arrays copied onto the parameter's backend, device and dtype; ``step``
        as a Python int). The groups must match this optimizer's in number and size.

        The format of xpnet before parameter groups, ``{"state": ..., "hyper": {...}}`` (one
        group), is read too. Nothing changes when the state dict is refused.
        """
        name = type(self).__name__
        where = f"{name}.load_state_dict"
        if not isinstance(state_dict, dict) or "state" not in state_dict or not (
                "param_groups" in state_dict or "hyper" in state_dict):
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{where}: expected a dict with 'state' and 'param_groups', got {got}")
        if "param_groups" in state_dict:
            saved = list(state_dict["param_groups"])
        else:  # the one-group format: state indexed by position in params
            saved = [{**state_dict["hyper"], "params": list(range(len(self.params)))}]
        if len(saved) != len(self.param_groups):
            raise ValueError(f"{where}: the state dict has {len(saved)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        for gi, (sg, g) in enumerate(zip(saved, self.param_groups)):
            if len(sg["params"]) != len(g["params"]):
                raise ValueError(f"{where}: parameter group {gi} has {len(sg['params'])} parameters in the "
                                 f"state dict, {len(g['params'])} in this optimizer")
        hypers = [self._check({**_hyper(g), **self._overrides(sg, f"{where}: param group {gi}")},
                              f"{where}: param group {gi}")
                  for gi, (sg, g) in enumerate(zip(saved, self.param_groups))]
        slots = {}
        for sg, g, states in zip(saved, self.param_groups, self._states):
            for key, p, st in zip(sg["params"], g["params"], states):
                slots[int(key)] = (p, st)
        new = []
        for key, st in state_dict["state"].items():
            try:
                p, target = slots[int(key)]
            except (KeyError, ValueError):
                raise ValueError(f"{where}: the state dict has state for parameter {key!r}, "
                                 "which none of its parameter groups lists") from None
            new.append((target, {k: _state_value(where, key, k, v, p) for k, v in st.items()}))
        for g, h in zip(self.param_groups, hypers):
            g.update(h)
        for st in self.state:
            st.clear()  # in place: ``state`` and the per-group lists hold the same dicts
        for target, values in new:
            target.update(values)

    # -- description -------------------------------------------------------------------
    def config(self) -> dict:
        """``{"type": "Adam", **defaults}``, JSON-compatible (tuples as lists):
        :func:`build_optimizer` makes an equal optimizer from it (without per-group overrides or
        state, which :meth:`state_dict` carries)."""
        return {"type": type(self).__name__, **{k: _jsonable(v) for k, v in self.defaults.items()}}

    def __repr__(self):
        # "tensors": each is one parameter array (a weight, a bias), not one number
        name = type(self).__name__

        def args(g):
            return ", ".join(f"{k}={v}" for k, v in _hyper(g).items())

        def count(ps):
            return f"{len(ps)} tensor{'' if len(ps) == 1 else 's'}"

        if len(self.param_groups) == 1:
            return f"{name}({count(self.params)}, {args(self.param_groups[0])})"
        groups = "; ".join(f"group {i} ({count(g['params'])}): {args(g)}" for i, g in enumerate(self.param_groups))
        return f"{name}({count(self.params)} in {len(self.param_groups)} groups; {groups})"


def _hyper(group) -> dict:
    return {k: v for k, v in group.items() if k != "params"}


def _jsonable(v):
    return [_jsonable(e) for e in v] if isinstance(v, (tuple, list)) else v


def _param_list(params, name, where=""):
    """``params`` (a Layer, one Parameter or an iterable of them) as a list of Parameters."""
    if isinstance(params, Layer):
        return params.parameters()
    if isinstance(params, Parameter):
        return [params]
    if isinstance(params, (set, frozenset)):
        raise TypeError(f"{name}: parameters must be in an ordered collection (a list), not a set, "
                        "whose order changes between runs")
    params = list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"{name} expected Parameters, got {type(p).__name__} at position {i}{where}")
    return params


def _as_groups(params, name):
    """The constructor's ``params`` as a list of group dicts."""
    if isinstance(params, Layer):
        return [{"params": params.parameters()}]
    if isinstance(params, Parameter):
        raise TypeError(f"{name} expected an iterable of Parameters, a Layer or a list of parameter groups, "
                        "got one Parameter (pass [p])")
    if isinstance(params, dict):
        raise TypeError(f"{name} expected a list of parameter groups, got one dict (pass [group])")
    items = list(params)
    if not items:
        raise ValueError(f"{name} got an empty parameter list")
    dicts = [isinstance(e, dict) for e in items]
    if all(dicts):
        return items
    if any(dicts):
        raise TypeError(f"{name} expected either Parameters or parameter groups (dicts), got a mix of both")
    return [{"params": items}]


def _state_value(where, key, name, v, p):
    """A saved state entry for parameter ``p``: ``step`` as a Python int, other numbers as
    they are, arrays as copies on ``p``'s backend and dtype."""
    if name == "step":
        return int(v)  # also a 0-d array or tensor (torch keeps step as a tensor)
    if isinstance(v, (bool, int, float)):
        return v
    shape = tuple(getattr(v, "shape", ()))
    if shape != p.shape:
        raise ValueError(f"{where}: state {name!r} of parameter {key!r} has shape {shape}, the parameter {p.shape}")
    be = backends.backend_of(p.data)
    # a copy: the buffers are updated in place and must not be shared with the source
    return be.asarray(v, dtype=be.dtype_name(p.data.dtype), copy=True)


def build_optimizer(config, params):
    """The optimizer that ``config`` (from :meth:`Optimizer.config`) describes, over ``params``
    (Parameters, a Layer or parameter groups). Knows SGD, Adam, AdamW and RMSprop."""
    from .optimizers import Adam, AdamW, RMSprop

    kinds = {c.__name__: c for c in (SGD, Adam, AdamW, RMSprop)}
    if not isinstance(config, dict) or config.get("type") not in kinds:
        s = repr(config)
        raise ValueError(f"optimizer: expected a spec with \"type\" one of {sorted(kinds)}, "
                         f"got {s if len(s) <= 80 else s[:77] + '...'}")
    args = {k: v for k, v in config.items() if k != "type"}
    try:
        return kinds[config["type"]](params, **args)
    except TypeError as e:
        raise ValueError(f"optimizer: bad arguments for {config['type']}: {e}") from None


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's semantics.

    ``g = grad + weight_decay * w``; with momentum ``mu``:
    ``b = g`` on the first step, then ``b = mu * b + (1 - dampening) * g``;
    ``g = g + mu * b`` (Nesterov) or ``g = b``. Finally ``w = w - lr * g``.
    """

    momentum = _Hyper()
    dampening = _Hyper()
    nesterov = _Hyper()
    weight_decay = _Hyper()

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                         weight_decay=weight_decay)

    def _check(self, h, owner):
        lr = super()._check(h, owner)["lr"]
        mu = nonnegative(owner, "momentum", h["momentum"])
        damp = nonnegative(owner, "dampening", h["dampening"])
        wd = nonnegative(owner, "weight_decay", h["weight_decay"])
        nesterov = bool(h["nesterov"])
        if nesterov and (mu <= 0 or damp != 0):
            raise ValueError(f"{owner}: nesterov momentum requires momentum > 0 and dampening = 0")
        return {"lr": lr, "momentum": mu, "dampening": damp, "nesterov": nesterov, "weight_decay": wd}

    def _update(self, w, g, state, group):
        owned = False  # is g a fresh array of ours (not the user-visible p.grad)?
        wd = group["weight_decay"]
        if wd:
            d = w * wd
            d += g
            g, owned = d, True
        mu = group["momentum"]
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                # the buffer is the optimizer's own array, updated in place from here on,
                # so it must not alias the gradient the user can still see
                buf = g if owned else g * 1.0
                state["momentum_buffer"] = buf
            else:
                buf *= mu
                damp = group["dampening"]
                buf += g * (1.0 - damp) if damp else g
            if group["nesterov"]:
                t = buf * mu
                t += g
                g = t
            else:
                g = buf
        new = g * -group["lr"]  # one temporary, then rebind: the parameter's array itself is never touched
        new += w
        return new
