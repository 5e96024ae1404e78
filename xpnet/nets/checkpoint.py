"""Checkpoints: ``xpnet.save`` and ``xpnet.load``.

A checkpoint is one safetensors file (:mod:`xpnet.io.safetensors`): the arrays as tensors, and
everything else as JSON in its metadata, so loading it executes no code:

- ``model.<key>``: the net's state dict (parameters and buffers, keys as in ``torch.nn``; a
  tied parameter once, under its first name);
- ``optimizer.<i>.<name>``: the optimizer's per-parameter state arrays (momentum, Adam
  moments), ``i`` the parameter's position in ``optimizer.params``;
- ``rng.state``: the generator state when it is an array (torch);
- metadata ``xpnet``: JSON with the format version, the architecture (:mod:`xpnet.nets.spec`,
  composites nested), the groups of tied parameter names, the frozen parameters' names, the
  loss spec, the optimizer (its spec, its parameters as positions in ``net.parameters()``, its
  param groups with their hyperparameters, its scalar state such as step counts), the epoch,
  the history, callback states, the backend and dtype, the generator state when it is JSON
  data (numpy), the GradScaler's state (mixed precision; the master weights are the net's own
  float32 weights), free-form ``extra`` data;
- metadata ``xpnet.sha256``: a SHA-256 of all of the above, checked on load;
- metadata ``xpnet.hmac-sha256`` (when saved with a key): an HMAC-SHA256 of that digest.

Format version 2; files of version 1 (no ties, no frozen flags, one parameter group) still load.

**What a load trusts: nothing.** The header is bounded before it is parsed, the digest (and,
given a key, the signature) is checked before the metadata is read, and the metadata is then
validated in full against :mod:`xpnet.nets.checkpoint_schema` (types, ranges, every
cross-reference, and the size of the net the file asks for, at most ``max_bytes``) before
anything is built. Every problem with a file raises :class:`CheckpointError` naming the file,
the field and what was expected.

**Integrity and authenticity.** The SHA-256 detects accidents: a truncated copy, a flipped
bit, a file edited by hand. Anyone can recompute it, so it proves nothing about who wrote the
file. With a key (``save(..., key=...)``, ``load(..., key=...)`` or the environment variable
``XPNET_CHECKPOINT_KEY``), the file also carries an HMAC-SHA256 that only a holder of the key
can make: loading with a key refuses an unsigned file or one signed with another key. Neither
makes a file from an untrusted source safe to train on beyond what the schema checks (the
weights themselves may be anything).

Writes are atomic (a temporary file renamed into place; see :mod:`xpnet.io.atomic`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import numbers
import os
import pathlib

from .. import backends
from ..io import FormatError, write_safetensors
from ..io.safetensors import clip, open_safetensors
from . import checkpoint_schema as schema
from . import spec as _spec
from .checkpoint_arch import Invalid
from .checkpoint_schema import FORMAT, MAX_BYTES, VERSION, CheckpointError
from .evaluate import net_backend

__all__ = ["Checkpoint", "CheckpointError", "FORMAT", "KEY_ENV", "MAX_BYTES", "VERSION", "load", "save"]

#: the environment variable holding the signing key when ``key=`` is not given
KEY_ENV = "XPNET_CHECKPOINT_KEY"
_SIGNATURE = "xpnet.hmac-sha256"


@dataclasses.dataclass
class Checkpoint:
    """What :func:`load` returns. ``net`` is rebuilt and holds the saved weights; ``optimizer``
    (or None) holds the saved state over ``net``'s parameters; ``loss`` (or None) is rebuilt."""

    path: pathlib.Path
    net: object
    optimizer: object = None
    loss: object = None
    epoch: int = 0
    history: dict = dataclasses.field(default_factory=dict)
    callbacks: dict = dataclasses.field(default_factory=dict)
    extra: dict = dataclasses.field(default_factory=dict)
    backend: str = ""
    dtype: str = ""
    rng_state: object = None
    #: the saved :class:`~xpnet.amp.GradScaler`, rebuilt with its state (None when none was saved)
    scaler: object = None

    def restore_rng(self):
        """Put the saved generator state back into the backend of ``net`` (for a bit-identical
        resume); returns False when the checkpoint has none (CuPy cannot export it), or when
        ``net`` was loaded onto another backend than the one saved, whose state does not apply."""
        be = _net_backend(self.net)
        if self.rng_state is None or be.label != self.backend:
            return False
        be.rng.set_state(self.rng_state)
        return True


def save(path, net, optimizer=None, *, loss=None, epoch=0, history=None, callbacks=None, rng=True, extra=None,
         key=None, scaler=None):
    """Write a checkpoint of ``net`` (and ``optimizer``, ``loss``, the ``epoch`` reached, the
    ``history`` of per-epoch metrics, ``callbacks`` states) to ``path``; returns the path.

    ``net`` may be any registered layer or composite. Tied parameters are stored once and
    re-tied on load; frozen parameters (``requires_grad=False``) stay frozen. The optimizer's
    param groups (their parameters as positions in ``net.parameters()``, their
    hyperparameters) and per-parameter state are stored, so that :func:`load` rebuilds it over
    the loaded net's parameters.

    ``rng=True`` stores the state of the net's backend generator, so that training resumed
    from the file draws the same shuffles and dropout masks as an uninterrupted run.
    ``history``: ``{name: [numbers]}``. ``extra`` is any JSON-compatible dict of your own (its
    ``"step"``, if any, is the step count :func:`~xpnet.fit` resumes from: an int >= 0).
    ``key`` (bytes or str; default: the environment variable ``XPNET_CHECKPOINT_KEY`` when set)
    signs the file (HMAC-SHA256), for a ``load(..., key=...)`` to verify. The write is atomic,
    and removes what interrupted earlier writes to ``path`` left behind.
    ``scaler``: a :class:`~xpnet.amp.GradScaler` (mixed precision: ``amp.scaler``) whose state
    (scale, growth tracker, factors) is stored, for ``load(...).scaler`` to resume it exactly;
    save outside ``autocast()``, where the net holds its float32 master weights.
    """
    secret = _key(key, "save")
    be = _net_backend(net)
    tied = net.tied_parameters()
    aliases = {name for group in tied for name in group[1:]}  # a tied parameter is stored under its first name
    tensors = {f"model.{k}": be.to_numpy(v) for k, v in net.state_dict().items() if k not in aliases}
    meta = {
        "format": FORMAT, "version": VERSION,
        "model": _spec.layer_spec(net),
        "tied": tied,
        "shared": net.shared_layers(),
        "frozen": [name for name, p in net.named_parameters() if not p.requires_grad],
        "loss": None if loss is None else _spec.layer_spec(loss),
        "optimizer": None, "epoch": _as_int(epoch), "history": dict(history or {}),
        "callbacks": dict(callbacks or {}), "extra": dict(extra or {}),
        "backend": be.label, "dtype": _float_dtype(net, be), "rng": None,
    }
    if scaler is not None:  # only then: files without mixed precision stay as they were
        meta["scaler"] = _scaler_meta(scaler)
    if optimizer is not None:
        meta["optimizer"] = _optimizer_meta(optimizer, net, tensors)
    if rng:
        try:
            state = be.rng.get_state()
        except NotImplementedError:
            state = None  # CuPy: documented; a resume there is not bit-identical
        if backends.host.is_host_array(state):
            tensors["rng.state"] = state
            meta["rng"] = "tensor"
        else:
            meta["rng"] = state
    text = json.dumps(meta, sort_keys=True)
    try:  # what load would refuse is refused here: a file that cannot be read back is never written
        schema.check_fields(json.loads(text))
    except Invalid as e:
        raise ValueError(f"save: {clip(str(e), 240)}") from None
    digest = _digest(text, tensors)
    metadata = {"xpnet": text, "xpnet.sha256": digest}
    if secret is not None:
        metadata[_SIGNATURE] = _sign(secret, digest)
    path = pathlib.Path(path)
    write_safetensors(path, tensors, metadata)
    return path


def _scaler_meta(scaler):
    """The scaler's state dict (JSON numbers)."""
    from ..amp import GradScaler

    if not isinstance(scaler, GradScaler):
        raise TypeError(f"save: scaler must be an xpnet GradScaler (MixedPrecision's .scaler), got {type(scaler).__name__}")
    return scaler.state_dict()


def _optimizer_meta(optimizer, net, tensors):
    """The optimizer's spec, groups and scalar state as JSON; its state arrays go into ``tensors``
    as ``optimizer.<flat index>.<name>`` (the flat index: the position in ``optimizer.params``)."""
    pos = {id(p): i for i, p in enumerate(net.parameters())}
    missing = [i for i, p in enumerate(optimizer.params) if id(p) not in pos]
    if missing:
        raise ValueError(f"save: the optimizer holds parameters that are not the net's (positions {missing})")
    sd = optimizer.state_dict()
    scalars = {}
    for i, st in sd["state"].items():
        for name, v in st.items():
            if isinstance(v, (bool, int, float)):
                scalars.setdefault(str(i), {})[name] = v
            else:
                tensors[f"optimizer.{i}.{name}"] = backends.to_numpy(v)
    return {
        "spec": _spec.optimizer_spec(optimizer),
        "positions": [pos[id(p)] for p in optimizer.params],
        "param_groups": [{**_spec.jsonable({k: v for k, v in g.items() if k != "params"}),
                          "params": [int(j) for j in g["params"]]} for g in sd["param_groups"]],
        "scalars": scalars,
    }


def load(path, *, backend=None, dtype=None, key=None, max_bytes=MAX_BYTES) -> Checkpoint:
    """Read the checkpoint at ``path`` and rebuild its net (and optimizer and loss).

    ``backend``: where to put the net (default: the backend it was saved from when usable
    here, else the current default); ``dtype``: its float dtype (default: as saved).
    ``key`` (bytes or str; default: the environment variable ``XPNET_CHECKPOINT_KEY`` when
    set): the file must be signed with it. ``max_bytes``: refuse a file whose tensors, or the
    net its architecture describes, take more bytes than this (default 4 GiB).
    Files of format version 1 load too. Any problem with the file raises
    :class:`CheckpointError` (a missing file: FileNotFoundError).
    """
    path = pathlib.Path(path)
    secret = _key(key, "load")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError(f"load: max_bytes must be an int >= 0, got {max_bytes!r}")
    try:
        f = open_safetensors(path, max_data=max_bytes)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path}: no such file") from None
    except FormatError as e:
        msg = str(e)
        raise schema.error(path, msg[len(str(path)) + 2:] if msg.startswith(f"{path}: ") else msg) from None
    except OSError as e:
        raise schema.error(path, f"cannot be read ({e.strerror or e})") from None
    md = f.metadata
    if "xpnet" not in md:
        raise schema.error(path, "a safetensors file, but not an xpnet checkpoint (no 'xpnet' metadata)")
    text = md["xpnet"]
    digest = _digest_file(text, f)
    if md.get("xpnet.sha256") != digest:
        raise schema.error(path, "its SHA-256 does not match its contents: the file was modified or damaged")
    if secret is not None:
        _verify(path, md.get(_SIGNATURE), secret, digest)
    meta = schema.parse(text, path)
    try:
        plan = schema.check_fields(meta)
        be = backends.get(backend) if backend is not None else _saved_backend(plan.backend)
        dt = _dtype_name(be, dtype, plan.dtype)
        schema.check(plan, f.entries, dtype_name=dt, max_bytes=max_bytes)
    except Invalid as e:
        raise schema.error(path, str(e)) from None
    net = _rebuild(path, plan, f, be, dt)
    ck = Checkpoint(
        path=path, net=net, epoch=plan.epoch, history=plan.history, callbacks=plan.callbacks,
        extra=plan.extra, backend=plan.backend, dtype=plan.dtype,
        loss=None if plan.loss is None else _build(path, plan.loss, be, dt, "loss"),
    )
    if plan.optimizer is not None:
        ck.optimizer = _optimizer(path, plan.optimizer, net, f)
    if plan.scaler is not None:
        from ..amp import GradScaler

        ck.scaler = GradScaler(enabled=bool(plan.scaler))  # {}: saved from a disabled one
        ck.scaler.load_state_dict(plan.scaler)
    ck.rng_state = f.tensor("rng.state") if plan.rng == "tensor" else plan.rng
    _try_rng(path, be, plan.backend, ck.rng_state)
    return ck


def _build(path, spec, be, dtype, field="model"):
    try:
        return _spec.build(spec, backend=be, dtype=dtype)
    except Exception as e:  # a constructor's refusal; or a layer of one's own, failing in its own way
        msg = str(e)
        if field != "model" and msg.startswith("model"):  # build() locates errors under "model"
            msg = field + msg[len("model"):]
        raise schema.error(path, f"cannot rebuild it: {msg}") from None


def _rebuild(path, plan, f, be, dtype):
    """The net: built from its spec (checked against the file first if it has layers of one's
    own), shared, tied and frozen as saved, holding the saved state."""
    net = _build(path, plan.model, be, dtype)
    if plan.walk.root is None:
        try:
            schema.check_built(plan, net, f.entries)
        except Invalid as e:
            raise schema.error(path, str(e)) from None
    for group in plan.shared:  # a layer used in several places: one object again
        net.share(*group)
    for group in plan.tied:
        net.tie(*group)
    for name in plan.frozen:
        net.get_parameter(name).requires_grad_(False)
    prefix = "model."
    state = {k[len(prefix):]: f.tensor(k) for k in f.entries if k.startswith(prefix)}
    for group in plan.tied:
        for name in group[1:]:
            state.setdefault(name, state[group[0]])
    try:
        net.load_state_dict(state)
    except Exception as e:  # checked above; a layer of one's own may still refuse
        raise schema.error(path, f"cannot load its state: {e}") from None
    return net


def _hypers(h):
    """Saved hyperparameters, JSON lists back to tuples (``betas``)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in h.items()}


def _optimizer(path, op, net, f):
    params = net.parameters()
    flat = [params[i] for i in op.positions]
    groups = [{**_hypers(h), "params": [flat[j] for j in members]} for h, members in op.groups]
    state = {i: {name: f.tensor(v) if isinstance(v, str) else v for name, v in st.items()} for i, st in op.state.items()}
    try:
        opt = _spec.build_optimizer({"type": op.type, **op.spec}, groups)
        opt.load_state_dict({"state": state,
                             "param_groups": [{**_hypers(h), "params": list(members)} for h, members in op.groups]})
    except ValueError as e:  # hyperparameters the optimizer refuses in combination (nesterov without momentum)
        raise schema.error(path, f"optimizer: {e}") from None
    return opt


def _try_rng(path, be, saved_label, state):
    """The saved generator state, tried on the backend it will be restored on (then put back)."""
    if state is None or be.label != saved_label:
        return  # restore_rng will not apply it
    try:
        before = be.rng.get_state()
    except NotImplementedError:
        return
    try:
        be.rng.set_state(state)
    except Exception as e:
        raise schema.error(path, f"rng: not a generator state of {be.label} ({clip(str(e), 80)})") from None
    finally:
        be.rng.set_state(before)


# -- digests and signatures --------------------------------------------------------------------------------

def _digest(text, tensors):
    """The SHA-256 (hex) of the metadata text and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256(text.encode("utf-8", "surrogatepass"))
    for name in sorted(tensors):
        a = tensors[name]
        h.update(f"{name}:{backends.host.host_dtype_name(a)}:{tuple(a.shape)}".encode("utf-8", "surrogatepass"))
        h.update(backends.host.to_bytes(a, "<"))
    return h.hexdigest()


def _digest_file(text, f):
    """:func:`_digest` of a file's tensors, from their stored bytes (no arrays made)."""
    h = hashlib.sha256(text.encode("utf-8", "surrogatepass"))
    for name in sorted(f.entries):
        e = f.entries[name]
        h.update(f"{name}:{e.dtype}:{e.shape}".encode("utf-8", "surrogatepass"))
        h.update(f.raw(name))
    return h.hexdigest()


def _key(key, who):
    """The signing key as bytes: ``key``, else ``$XPNET_CHECKPOINT_KEY``, else None."""
    if key is None:
        key = os.environ.get(KEY_ENV) or None
        if key is None:
            return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"{who}: key must be bytes or str, got {type(key).__name__}")
    if not key:
        raise ValueError(f"{who}: key must not be empty")
    return bytes(key)


def _sign(secret, digest):
    return hmac.new(secret, f"{FORMAT}:{digest}".encode(), hashlib.sha256).hexdigest()


def _verify(path, signature, secret, digest):
    if signature is None:
        raise schema.error(path, "it is not signed, and a key was given (key= or XPNET_CHECKPOINT_KEY): "
                                 "an unsigned file could have been written by anyone")
    if not hmac.compare_digest(signature.encode("utf-8", "surrogatepass"), _sign(secret, digest).encode()):
        raise schema.error(path, "its signature does not match the key: it was signed with another key, "
                                 "or written by someone without the key")


# -- small helpers ---------------------------------------------------------------------------------

def _as_int(v):
    """An integer of any kind (numpy's too) as a Python int; anything else as it is, for the schema to refuse."""
    return int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v


def _net_backend(net):
    try:
        return net_backend(net, "save")
    except ValueError:  # a net with no arrays at all (e.g. Sequential(ReLU())): the current backend
        return backends.get()


def _float_dtype(net, be):
    for v in net.state_dict().values():  # buffers count: a net of BatchNorm(affine=False) has no parameters
        if be.is_float(v.dtype):
            return be.dtype_name(v.dtype)
    return "float32"


def _dtype_name(be, requested, saved):
    """The float dtype to build in: ``requested`` (the caller's; its errors are the caller's), else
    the saved one, which this backend must have."""
    if requested is not None:
        return be.dtype_name(be.dtype(requested))
    try:
        return be.dtype_name(be.dtype(saved))
    except Exception:
        raise Invalid("dtype", f"{saved} is not available on {be.label}; pass dtype= to load it in another") from None


def _saved_backend(label):
    """The backend ``label`` names when it can run here, else the current default."""
    try:
        return backends.get(label)
    except Exception:  # unavailable here, or a device this machine lacks (the label was checked)
        return backends.get()
