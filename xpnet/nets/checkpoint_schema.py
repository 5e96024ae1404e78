"""The checkpoint schema: a checkpoint's metadata checked in full before anything is built.

:func:`parse` reads the ``xpnet`` JSON (its nesting bounded first: at most
:data:`MAX_JSON_DEPTH`); :func:`check_fields` validates every field and returns a
:class:`Plan`, which :func:`check` completes with every cross-reference; the loader builds
from the plan. What they check:

- ``format``, ``version`` (an int from 1 to the version this xpnet writes), ``epoch`` (an int
  >= 0), ``history`` (names to lists of numbers), ``callbacks`` (names to state dicts;
  EarlyStopping's, ModelCheckpoint's and LRScheduler's fields typed), ``extra`` (a dict; its
  ``step``, which ``fit`` resumes from, an int >= 0), ``backend`` (a known backend name, with a device),
  ``dtype`` (a float dtype name), ``rng`` (None, a JSON generator state, or ``"tensor"`` with
  a ``rng.state`` uint8 vector; the loader also tries the state on its backend), ``scaler``
  (absent, null, or a GradScaler state: ``{}`` or torch's five keys, each typed and in range);
- ``model`` and ``loss``: registered types, known argument names, integers of 64 bits, the
  arguments that size a known layer (:mod:`xpnet.nets.checkpoint_arch`), a loss that is a
  Loss, nesting and layer count bounded;
- the size: the values the net will hold, times the bytes of its dtype, at most ``max_bytes``;
- ``shared``, ``tied``, ``frozen``: paths of sub-layers and names of parameters that exist
  (shared paths describing one layer, tied shapes equal, no name in two groups);
- the tensors against the architecture: ``model.<key>`` exactly the state-dict keys the net
  will have (a tied parameter once), each with its shape and a float (or integer) dtype;
  ``optimizer.<i>.<name>`` states of the optimizer's parameter ``i``, of its shape, of names
  that optimizer keeps; nothing else;
- ``optimizer``: a known type, every hyperparameter a known name with a finite value in range
  (lr, eps, weight decay and momenta >= 0, betas in [0, 1), flags true or false), positions
  that index the net's parameters without repeats, parameter groups that partition them,
  integer steps >= 0, and every state the optimizer's next step reads present.

For a net with a layer of one's own (no rule for its arrays), the architecture part runs on
the built net instead (:func:`check_built`), after the file's tensors were bounded by
``max_bytes``. Every problem raises :class:`CheckpointError`, whose message names the file,
the field (``optimizer.param_groups[1].lr``) and what was expected, in at most
:data:`MESSAGE_LIMIT` characters.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re

from .. import backends
from ..io.safetensors import clip, json_depth, short
from . import checkpoint_arch as arch
from .checkpoint_arch import FLOAT, Invalid

FORMAT = "xpnet-checkpoint"
VERSION = 2
#: the default bound on the bytes of a checkpoint's arrays (``load(max_bytes=...)`` raises it)
MAX_BYTES = 4 * 2**30
#: nesting of the ``xpnet`` metadata JSON
MAX_JSON_DEPTH = 256
MESSAGE_LIMIT = 300
_MAX_STEP = 2**62
_FLOAT_MAX = 2**1023

_FLOAT_ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
_FLOAT_CODES = {"F16", "F32", "F64"}
_INT_CODES = {"I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64"}
_DEVICE = re.compile(r"[A-Za-z0-9_.:-]{1,60}")
_OPT_TENSOR = re.compile(r"optimizer\.(0|[1-9][0-9]{0,8})\.([A-Za-z_][A-Za-z0-9_]{0,63})")
_RNG_TENSOR, _RNG_MAX = "rng.state", 2**20
_KEYS = {"format", "version", "model", "loss", "optimizer", "epoch", "history", "callbacks", "extra", "backend",
         "dtype", "rng", "tied", "shared", "frozen", "scaler"}
# absent from version 1 files (and "shared" from early version 2 ones, "scaler" from those before mixed precision)
_OPTIONAL = {"tied", "shared", "frozen", "scaler"}


class CheckpointError(ValueError):
    """A file that cannot be loaded as an xpnet checkpoint; the message says why."""


def error(path, message) -> CheckpointError:
    """``CheckpointError("checkpoint <path>: <message>")``, at most :data:`MESSAGE_LIMIT`
    characters: a long path is cut to its file name (the end of it, if that is long too), and
    a long message is cut."""
    p = str(path)
    room = MESSAGE_LIMIT - len("checkpoint : ") - min(len(message), 160)
    if len(p) > room:
        name = p.replace("\\", "/").rpartition("/")[2]
        p = ".../" + name if len(name) + 4 <= room else "..." + name[-(room - 3):]
    return CheckpointError(clip(f"checkpoint {p}: {message}", MESSAGE_LIMIT))


# -- the plan ------------------------------------------------------------------------------------

@dataclasses.dataclass
class OptimizerPlan:
    """A validated optimizer: ``type`` and its ``spec`` (hyperparameters), ``positions`` (in
    ``net.parameters()``) of its flat parameter list, ``groups`` as ``(hyperparameters, [flat
    indices])`` and ``state`` ``{flat index: {name: int or tensor name}}``."""

    type: str
    spec: dict
    positions: list
    groups: list
    state: dict


@dataclasses.dataclass
class Plan:
    """A checkpoint's metadata, validated (see the module doc)."""

    version: int
    model: object
    loss: object
    epoch: int
    history: dict
    callbacks: dict
    extra: dict
    backend: str
    dtype: str
    rng: object
    tied: list
    shared: list
    frozen: list
    optimizer_meta: object
    walk: object = None
    optimizer: OptimizerPlan | None = None
    scaler: dict | None = None


# -- reading the JSON ------------------------------------------------------------------------------

def parse(text, path):
    """The ``xpnet`` metadata as JSON data, its nesting bounded; format and version checked."""
    if json_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise error(path, f"its 'xpnet' metadata is JSON nested more than {MAX_JSON_DEPTH} deep")
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as e:  # ValueError: also an int over Python's digit limit
        raise error(path, f"its 'xpnet' metadata is not valid JSON ({clip(str(e), 100)})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise error(path, f"unknown format {short(found)}")
    v = meta.get("version")
    if type(v) is not int or v < 1:
        raise error(path, f"version: expected an int >= 1, got {short(v)}")
    if v > VERSION:
        raise error(path, f"format version {short(v)} is newer than this xpnet reads ({VERSION})")
    return meta


# -- the fields ----------------------------------------------------------------------------------------

def check_fields(meta) -> Plan:
    """Every field but the architecture's cross-references (what ``save`` also checks)."""
    missing = sorted(k for k in _KEYS - set(meta) if k not in _OPTIONAL)
    if missing:
        raise Invalid("", f"the metadata lacks {', '.join(repr(k) for k in missing)}")
    unknown = sorted(set(meta) - _KEYS)
    if unknown:
        raise Invalid("", f"unknown metadata key {short(unknown[0])}")
    backend = meta["backend"]
    names = [n for n in backends.NAMES if n != "auto"]
    name, colon, device = backend.partition(":") if isinstance(backend, str) else (None, "", "")
    if name not in names or (colon and not _DEVICE.fullmatch(device)):
        raise Invalid("backend", f"expected a backend name ({', '.join(names)}, with an optional :device), "
                                 f"got {short(backend)}")
    dtype = meta["dtype"]
    if not isinstance(dtype, str) or dtype not in _FLOAT_ITEMSIZE:
        raise Invalid("dtype", f"expected one of {', '.join(_FLOAT_ITEMSIZE)}, got {short(dtype)}")
    rng = meta["rng"]
    if not (rng is None or rng == "tensor" or isinstance(rng, dict)):
        raise Invalid("rng", f"expected null, \"tensor\" or a generator state (an object), got {short(rng)}")
    extra = _dict(meta["extra"], "extra")
    if "step" in extra:
        _count(extra["step"], "extra.step")
    return Plan(
        version=meta["version"], model=meta["model"], loss=meta["loss"], epoch=_count(meta["epoch"], "epoch"),
        history=check_history(meta["history"]), callbacks=_callbacks(meta["callbacks"]), extra=extra,
        backend=backend, dtype=dtype, rng=rng,
        tied=_groups(meta.get("tied", []), "tied"), shared=_groups(meta.get("shared", []), "shared"),
        frozen=_names(meta.get("frozen", []), "frozen"), optimizer_meta=meta["optimizer"],
        scaler=_scaler(meta.get("scaler")),
    )


def _scaler(sd):
    """None, or a GradScaler state dict checked in full (:func:`xpnet.amp.scaler.check_state`)."""
    from ..amp.scaler import check_state

    if sd is None:
        return None
    bad = check_state(sd)
    if bad is not None:
        key, what = bad
        if key is None:
            raise Invalid("scaler", f"expected {what}, got {short(sd)}")
        raise Invalid(f"scaler.{key}", f"expected {what}, got {short(sd[key])}")
    return sd


def check_history(history, field="history"):
    """``{name: [numbers]}``, or Invalid."""
    history = _dict(history, field)
    for k, v in history.items():
        if not isinstance(v, list):
            raise Invalid(f"{field}[{short(k)}]", f"expected a list of numbers, got {short(v)}")
        for i, x in enumerate(v):
            if not _is_real(x):
                raise Invalid(f"{field}[{short(k)}][{i}]", f"expected a number, got {short(x)}")
    return history


def _real_or_null(v):
    return v is None or _is_real(v)


def _count_or_null(v):
    return v is None or (type(v) is int and 0 <= v <= _MAX_STEP)


def _count_only(v):
    return type(v) is int and 0 <= v <= _MAX_STEP


def _reals(v):
    return isinstance(v, list) and all(_is_real(x) for x in v)


#: per callback class: {field: (required, test, what is expected)}; a schedule's state (LRScheduler)
#: may never hold "optimizer", which its load_state_dict would put in place of the real one
_CALLBACK_FIELDS = {
    "EarlyStopping": {"best": (True, _real_or_null, "a number or null"),
                      "best_epoch": (True, _count_only, "an int >= 0"), "wait": (True, _count_only, "an int >= 0")},
    "ModelCheckpoint": {"best": (True, _real_or_null, "a number or null"),
                        "last_epoch": (True, _count_or_null, "an int >= 0 or null")},
    "LRScheduler": {"optimizer": (False, lambda v: False, "nothing (a schedule's state has no optimizer)"),
                    "last_epoch": (False, lambda v: type(v) is int and -1 <= v <= _MAX_STEP, "an int >= -1"),
                    "base_lrs": (False, _reals, "a list of numbers"),
                    "_last_lr": (False, lambda v: _is_real(v) or _reals(v), "a number or a list of numbers")},
    "ReduceLROnPlateau": {
        "best": (True, _real_or_null, "a number or null"),
        "num_bad_epochs": (True, _count_only, "an int >= 0"),
        "cooldown_counter": (True, _count_only, "an int >= 0"),
        "last_epoch": (True, lambda v: type(v) is int and -1 <= v <= _MAX_STEP, "an int >= -1"),
        "monitor": (False, lambda v: isinstance(v, str) and len(v) <= 200, "a figure's name"),
        "mode": (False, lambda v: v in ("min", "max"), "'min' or 'max'"),
        "threshold_mode": (False, lambda v: v in ("rel", "abs"), "'rel' or 'abs'"),
        "factor": (False, lambda v: _is_real(v) and 0 <= v < 1, "a number in [0, 1)"),
        "threshold": (False, lambda v: _is_real(v) and v >= 0, "a number >= 0"),
        "eps": (False, lambda v: _is_real(v) and v >= 0, "a number >= 0"),
        "patience": (False, _count_only, "an int >= 0"),
        "cooldown": (False, _count_only, "an int >= 0"),
        "min_lrs": (False, _reals, "a list of numbers"),
        "base_lrs": (False, _reals, "a list of numbers"),
        "_last_lr": (False, _reals, "a list of numbers"),
    },
}


def _callbacks(cbs):
    cbs = _dict(cbs, "callbacks")
    for key, sd in cbs.items():
        field = f"callbacks[{short(key)}]"
        sd = _dict(sd, field)
        for name, (required, test, what) in _CALLBACK_FIELDS.get(key.partition(":")[2], {}).items():
            if name not in sd:
                if required:
                    raise Invalid(field, f"the state lacks {name!r}")
                continue
            if not test(sd[name]):
                raise Invalid(f"{field}.{name}", f"expected {what}, got {short(sd[name])}")
    return cbs


# -- the architecture and the tensors ----------------------------------------------------------------

def check(plan, entries, *, dtype_name, max_bytes) -> Plan:
    """The rest of the schema (see the module doc) for ``plan`` (from :func:`check_fields`) and
    a file whose tensors are ``entries`` (``{name: safetensors Entry}``); ``dtype_name``: the
    float dtype the net will be built in. Raises :class:`Invalid`; the caller names the file."""
    walk = arch.from_spec(plan.model, "model")
    itemsize = _FLOAT_ITEMSIZE.get(dtype_name, 8)
    need = walk.nbytes(itemsize)
    if plan.loss is not None:
        need += arch.from_spec(plan.loss, "loss", loss=True).nbytes(itemsize)
    if need > max_bytes:
        raise Invalid("model", f"the architecture holds {_big(walk.floats + walk.ints)} values ({_big(need)} bytes "
                               f"in {dtype_name}), more than max_bytes={max_bytes}; pass a larger max_bytes to load it")
    plan.walk = walk
    _rng_tensor(plan, entries)
    if walk.root is not None:
        check_arch(plan, walk.root, entries)
    return plan


def check_built(plan, net, entries):
    """The architecture's cross-references on the built net (before its shares and ties), for a
    net with layers of one's own, which have no rule (see the module doc)."""
    check_arch(plan, arch.from_net(net), entries)


def check_arch(plan, root, entries):
    """Shares, ties, frozen names, the model's tensors and the optimizer, on the model ``root``
    (which this replays the shares and ties on)."""
    arch.share(root, plan.shared)
    arch.tie(root, plan.tied)
    for i, name in enumerate(plan.frozen):
        if arch.parameter_slot(root, name)[0] is None:
            raise Invalid(f"frozen[{i}]", f"the net has no parameter {short(name)}")
    aliases = {name for group in plan.tied for name in group[1:]}
    expected = {}
    for name, shape, _, kind, _ in arch.entries(root):
        if name not in aliases:
            expected[f"model.{name}"] = (shape, kind)
    model = [n for n in entries if n.startswith("model.")]
    missing = [n for n in expected if n not in entries]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise Invalid("tensors", f"the architecture has {short(missing[0][6:])}{more}, which the file lacks")
    for n in model:
        if n not in expected:
            raise Invalid("tensors", f"the file has {short(n)}, which the architecture does not")
        _tensor_like(n, entries[n], *expected[n])
    params = [p.shape for _, p in arch.parameters(root)]
    plan.optimizer = _optimizer(plan, params, entries)


def _tensor_like(name, e, shape, kind):
    if e.shape != tuple(shape):
        raise Invalid(f"tensors[{short(name)}]",
                      f"expected shape {list(shape)} (the architecture's), got {short(list(e.shape))}")
    codes, what = (_FLOAT_CODES, "a floating-point") if kind == FLOAT else (_INT_CODES, "an integer")
    if e.code not in codes:
        raise Invalid(f"tensors[{short(name)}]", f"expected {what} dtype, got {e.code}")


def _rng_tensor(plan, entries):
    e = entries.get(_RNG_TENSOR)
    if plan.rng == "tensor":
        if e is None:
            raise Invalid("rng", f"says \"tensor\", but the file has no {_RNG_TENSOR!r} tensor")
        if e.code != "U8" or len(e.shape) != 1 or e.nbytes > _RNG_MAX:
            raise Invalid(f"tensors[{_RNG_TENSOR!r}]", f"expected a uint8 vector of at most {_RNG_MAX} bytes, "
                                                       f"got {e.code} {list(e.shape)}")
    elif e is not None:
        raise Invalid("tensors", f"the file has {_RNG_TENSOR!r}, but its rng field is not \"tensor\"")
    for n in entries:
        if not (n.startswith("model.") or n == _RNG_TENSOR or _OPT_TENSOR.fullmatch(n)):
            raise Invalid("tensors", f"unexpected tensor {short(n)}")


# -- the optimizer -------------------------------------------------------------------------------------

def _finite_nonneg(v):
    return _is_real(v) and math.isfinite(v) and v >= 0


_HYPER = {
    "lr": (_finite_nonneg, "a finite number >= 0"),
    "momentum": (_finite_nonneg, "a finite number >= 0"),
    "dampening": (_finite_nonneg, "a finite number >= 0"),
    "weight_decay": (_finite_nonneg, "a finite number >= 0"),
    "eps": (_finite_nonneg, "a finite number >= 0"),
    "alpha": (_finite_nonneg, "a finite number >= 0"),
    "betas": (lambda v: isinstance(v, list) and len(v) == 2 and all(_is_real(b) and 0 <= b < 1 for b in v),
              "a pair of numbers in [0, 1)"),
    "nesterov": (lambda v: isinstance(v, bool), "true or false"),
    "amsgrad": (lambda v: isinstance(v, bool), "true or false"),
    "centered": (lambda v: isinstance(v, bool), "true or false"),
}


def _adam_needs(h):
    return ("step", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if h["amsgrad"] else ())


def _rmsprop_needs(h):
    return (("step", "square_avg") + (("momentum_buffer",) if h["momentum"] > 0 else ())
            + (("grad_avg",) if h["centered"] else ()))


#: per optimizer: (its state arrays, its integer states, what its next step reads of a stepped parameter)
STATE = {
    "SGD": ({"momentum_buffer"}, set(), lambda h: ()),
    "Adam": ({"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}, {"step"}, _adam_needs),
    "AdamW": ({"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}, {"step"}, _adam_needs),
    "RMSprop": ({"square_avg", "momentum_buffer", "grad_avg"}, {"step"}, _rmsprop_needs),
}


def optimizer_classes():
    from .optim import SGD
    from .optimizers import Adam, AdamW, RMSprop

    return {c.__name__: c for c in (SGD, Adam, AdamW, RMSprop)}


def _optimizer(plan, params, entries):
    om = plan.optimizer_meta
    tensors = {}
    for n in entries:
        m = _OPT_TENSOR.fullmatch(n)
        if m:
            tensors.setdefault(int(m.group(1)), {})[m.group(2)] = n
    if om is None:
        if tensors:
            raise Invalid("tensors", f"the file has optimizer state ({short(next(iter(tensors.values())))}) "
                                     "but no optimizer")
        return None
    om = _dict(om, "optimizer")
    v1 = plan.version == 1
    keys = {"spec", "params", "ints"} if v1 else {"spec", "positions", "param_groups", "scalars"}
    if set(om) != keys:
        raise Invalid("optimizer", f"expected the keys {', '.join(sorted(keys))}, got {short(sorted(om))}")
    kind, hyper, defaults = _optimizer_spec(om["spec"])
    pos_field = "optimizer.params" if v1 else "optimizer.positions"
    positions = _indices(om["params" if v1 else "positions"], len(params), pos_field,
                         "positions in the net's parameters")
    if not positions:
        raise Invalid(pos_field, "expected at least one parameter")
    n = len(positions)
    if v1:
        groups = [({}, list(range(n)))]
    else:
        groups = _param_groups(om["param_groups"], kind, defaults, n)
    scalars = _dict(om["ints" if v1 else "scalars"], "optimizer.ints" if v1 else "optimizer.scalars")
    arrays, ints, needs = STATE[kind]
    state = {}
    for i, names in tensors.items():
        if i >= n:
            raise Invalid("tensors", f"optimizer state {short(next(iter(names.values())))} is for parameter {i}, "
                                     f"but the optimizer has {n}")
        shape = params[positions[i]]
        for name, tname in names.items():
            if name not in arrays:
                raise Invalid(f"tensors[{short(tname)}]", f"{kind} keeps no state called {short(name)}")
            e = entries[tname]
            if e.shape != tuple(shape) or e.code not in _FLOAT_CODES:
                raise Invalid(f"tensors[{short(tname)}]", f"expected a float tensor of its parameter's shape "
                                                          f"{list(shape)}, got {e.code} {short(list(e.shape))}")
            state.setdefault(i, {})[name] = tname
    for key, values in scalars.items():
        field = f"{'optimizer.ints' if v1 else 'optimizer.scalars'}[{short(key)}]"
        if not (isinstance(key, str) and re.fullmatch(r"0|[1-9][0-9]{0,8}", key)) or int(key) >= n:
            raise Invalid(field, f"expected the index of one of the optimizer's {n} parameters")
        for name, value in _dict(values, field).items():
            if name not in ints:
                raise Invalid(f"{field}[{short(name)}]", f"{kind} keeps no number called {short(name)}")
            if type(value) is not int or not 0 <= value <= _MAX_STEP:
                raise Invalid(f"{field}.{name}", f"expected an int >= 0, got {short(value)}")
            state.setdefault(int(key), {})[name] = value
    flat_group = {j: h for h, members in groups for j in members}
    for i, st in state.items():
        h = {**defaults, **hyper, **flat_group[i]}
        lacking = [name for name in needs(h) if name not in st]
        if lacking:
            raise Invalid("optimizer", f"parameter {i} has {kind} state without {', '.join(lacking)}, which its next "
                                       "step reads")
    return OptimizerPlan(kind, hyper, positions, groups, state)


def _optimizer_spec(spec):
    spec = _dict(spec, "optimizer.spec")
    kinds = optimizer_classes()
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in kinds:
        raise Invalid("optimizer.spec.type", f"expected one of {', '.join(sorted(kinds))}, got {short(kind)}")
    sig = {n: p for n, p in inspect.signature(kinds[kind]).parameters.items() if n != "params"}
    defaults = {n: list(p.default) if isinstance(p.default, tuple) else p.default for n, p in sig.items()}
    hyper = {k: v for k, v in spec.items() if k != "type"}
    _hypers(hyper, kind, sig, "optimizer.spec")
    lacking = [n for n, p in sig.items() if p.default is p.empty and n not in hyper]
    if lacking:
        raise Invalid("optimizer.spec", f"{kind} needs {', '.join(lacking)}")
    return kind, hyper, defaults


def _hypers(h, kind, names, field):
    for k, v in h.items():
        if k not in names:
            raise Invalid(field, f"{kind} has no hyperparameter {short(k)}; it has {', '.join(names)}")
        test, what = _HYPER.get(k, (lambda x: x is None or isinstance(x, bool) or (_is_real(x) and math.isfinite(x)),
                                    "a finite number, true, false or null"))
        if not test(v):
            raise Invalid(f"{field}.{k}", f"expected {what}, got {short(v)}")


def _param_groups(groups, kind, defaults, n):
    if not isinstance(groups, list) or not groups:
        raise Invalid("optimizer.param_groups", f"expected a non-empty list of groups, got {short(groups)}")
    names = {k: None for k in defaults}
    out, seen = [], set()
    for gi, g in enumerate(groups):
        field = f"optimizer.param_groups[{gi}]"
        g = _dict(g, field)
        if "params" not in g:
            raise Invalid(field, "a group needs \"params\"")
        members = _indices(g["params"], n, f"{field}.params", "indices in the optimizer's parameters")
        if not members:
            raise Invalid(f"{field}.params", "expected at least one parameter")
        for j in members:
            if j in seen:
                raise Invalid(f"{field}.params", f"parameter {j} is in more than one group")
            seen.add(j)
        h = {k: v for k, v in g.items() if k != "params"}
        _hypers(h, kind, names, field)
        out.append((h, members))
    if len(seen) != n:
        lost = min(set(range(n)) - seen)
        raise Invalid("optimizer.param_groups", f"no group holds parameter {lost} of the optimizer's {n}")
    return out


def _indices(v, n, field, what):
    if not isinstance(v, list):
        raise Invalid(field, f"expected a list of {what}, got {short(v)}")
    seen = set()
    for i, j in enumerate(v):
        if type(j) is not int or not 0 <= j < n:
            raise Invalid(f"{field}[{i}]", f"expected one of the {n} {what}{f' (0..{n - 1})' if n else ''}, "
                                           f"got {short(j)}")
        if j in seen:
            raise Invalid(f"{field}[{i}]", f"{j} is listed twice")
        seen.add(j)
    return list(v)


# -- small types -----------------------------------------------------------------------------------------

def _is_real(v):
    """A JSON number that is a float, or an int a float can hold (beyond that, arithmetic with
    floats raises OverflowError)."""
    return type(v) is float or (type(v) is int and -_FLOAT_MAX <= v <= _FLOAT_MAX)


def _count(v, field):
    if type(v) is not int or not 0 <= v <= _MAX_STEP:
        raise Invalid(field, f"expected an int >= 0, got {short(v)}")
    return v


def _dict(v, field):
    if not isinstance(v, dict):
        raise Invalid(field, f"expected an object, got {short(v)}")
    return v


def _names(v, field):
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise Invalid(field, f"expected a list of names, got {short(v)}")
    return v


def _groups(v, field):
    if not isinstance(v, list):
        raise Invalid(field, f"expected a list of groups of names, got {short(v)}")
    for i, g in enumerate(v):
        if not isinstance(g, list) or len(g) < 2 or not all(isinstance(s, str) for s in g):
            raise Invalid(f"{field}[{i}]", f"expected a list of at least two names, got {short(g)}")
    return v


def _big(n):
    s = str(n)
    return s if len(s) <= 19 else f"about 10^{len(s) - 1}"
