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
  data (numpy), free-form ``extra`` data, and a SHA-256 of all of it, checked on load.

Format version 2; files of version 1 (no ties, no frozen flags, one parameter group) still load.

Writes are atomic (a temporary file renamed into place). A truncated file, a tampered one, or
one that is not a checkpoint raises :class:`CheckpointError` with the path and the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib

from .. import backends
from ..io import FormatError, read_safetensors, write_safetensors
from . import spec as _spec
from .evaluate import net_backend

FORMAT = "xpnet-checkpoint"
VERSION = 2


class CheckpointError(ValueError):
    """A file that cannot be loaded as an xpnet checkpoint; the message says why."""


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

    def restore_rng(self):
        """Put the saved generator state back into the backend of ``net`` (for a bit-identical
        resume); returns False when the checkpoint has none (CuPy cannot export it), or when
        ``net`` was loaded onto another backend than the one saved, whose state does not apply."""
        be = _net_backend(self.net)
        if self.rng_state is None or be.label != self.backend:
            return False
        be.rng.set_state(self.rng_state)
        return True


def save(path, net, optimizer=None, *, loss=None, epoch=0, history=None, callbacks=None, rng=True, extra=None):
    """Write a checkpoint of ``net`` (and ``optimizer``, ``loss``, the ``epoch`` reached, the
    ``history`` of per-epoch metrics, ``callbacks`` states) to ``path``; returns the path.

    ``net`` may be any registered layer or composite. Tied parameters are stored once and
    re-tied on load; frozen parameters (``requires_grad=False``) stay frozen. The optimizer's
    param groups (their parameters as positions in ``net.parameters()``, their
    hyperparameters) and per-parameter state are stored, so that :func:`load` rebuilds it over
    the loaded net's parameters.

    ``rng=True`` stores the state of the net's backend generator, so that training resumed
    from the file draws the same shuffles and dropout masks as an uninterrupted run.
    ``extra`` is any JSON-compatible dict of your own. The write is atomic.
    """
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
        "optimizer": None, "epoch": int(epoch), "history": dict(history or {}),
        "callbacks": dict(callbacks or {}), "extra": dict(extra or {}),
        "backend": be.label, "dtype": _float_dtype(net, be), "rng": None,
    }
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
    path = pathlib.Path(path)
    write_safetensors(path, tensors, {"xpnet": text, "xpnet.sha256": _digest(text, tensors)})
    return path


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


def load(path, *, backend=None, dtype=None) -> Checkpoint:
    """Read the checkpoint at ``path`` and rebuild its net (and optimizer and loss).

    ``backend``: where to put the net (default: the backend it was saved from when usable
    here, else the current default); ``dtype``: its float dtype (default: as saved).
    Files of format version 1 load too.
    """
    path = pathlib.Path(path)
    try:
        tensors, md = read_safetensors(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path}: no such file") from None
    except FormatError as e:
        raise CheckpointError(f"checkpoint {e}") from None
    if "xpnet" not in md:
        raise CheckpointError(f"checkpoint {path}: a safetensors file, but not an xpnet checkpoint (no 'xpnet' metadata)")
    text = md["xpnet"]
    if md.get("xpnet.sha256") != _digest(text, tensors):
        raise CheckpointError(f"checkpoint {path}: its SHA-256 does not match its contents: the file was modified or damaged")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint {path}: its 'xpnet' metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("version"), int):
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise CheckpointError(f"checkpoint {path}: unknown format {found!r}")
    if meta["version"] > VERSION:
        raise CheckpointError(f"checkpoint {path}: format version {meta['version']} is newer than this xpnet reads ({VERSION})")
    be = backends.get(backend) if backend is not None else _saved_backend(meta["backend"])
    dtype = dtype or meta["dtype"]
    net = _rebuild(path, meta, tensors, be, dtype)
    ck = Checkpoint(
        path=path, net=net, epoch=meta["epoch"], history=meta["history"], callbacks=meta["callbacks"],
        extra=meta["extra"], backend=meta["backend"], dtype=meta["dtype"],
        loss=None if meta["loss"] is None else _build(path, meta["loss"], be, dtype),
    )
    om = meta["optimizer"]
    if om is not None:
        ck.optimizer = _optimizer_v1(om, net, tensors) if meta["version"] == 1 else _optimizer(om, net, tensors)
    ck.rng_state = tensors["rng.state"] if meta["rng"] == "tensor" else meta["rng"]
    return ck


def _build(path, spec, be, dtype):
    try:
        return _spec.build(spec, backend=be, dtype=dtype)
    except ValueError as e:  # e.g. a layer of one's own, not registered in this process
        raise CheckpointError(f"checkpoint {path}: cannot rebuild it: {e}") from None


def _rebuild(path, meta, tensors, be, dtype):
    """The net: built from its spec, tied and frozen as saved, holding the saved state."""
    net = _build(path, meta["model"], be, dtype)
    for group in meta.get("shared", []):  # a layer used in several places: one object again
        net.share(*group)
    tied = meta.get("tied", [])
    for group in tied:
        net.tie(*group)
    for name in meta.get("frozen", []):
        net.get_parameter(name).requires_grad_(False)
    prefix = "model."
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    for group in tied:
        for name in group[1:]:
            if group[0] in state:
                state.setdefault(name, state[group[0]])
    net.load_state_dict(state)
    return net


def _state(tensors, scalars):
    """``{flat index: {name: value}}`` from the ``optimizer.<i>.<name>`` tensors and the JSON scalars."""
    state = {}
    for key, v in tensors.items():
        if key.startswith("optimizer."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    for i, values in scalars.items():
        state.setdefault(int(i), {}).update(values)
    return state


def _hypers(group):
    """A saved group's hyperparameters, JSON lists back to tuples (``betas``)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in group.items() if k != "params"}


def _optimizer(om, net, tensors):
    params = net.parameters()
    flat = [params[i] for i in om["positions"]]
    groups = [{**_hypers(g), "params": [flat[j] for j in g["params"]]} for g in om["param_groups"]]
    opt = _spec.build_optimizer(om["spec"], groups)
    opt.load_state_dict({"state": _state(tensors, om["scalars"]),
                         "param_groups": [{**_hypers(g), "params": list(g["params"])} for g in om["param_groups"]]})
    return opt


def _optimizer_v1(om, net, tensors):
    """Format 1: one group; ``params`` the positions, ``ints`` the integer state (step counts)."""
    params = net.parameters()
    opt = _spec.build_optimizer(om["spec"], [params[i] for i in om["params"]])
    opt.load_state_dict({"state": _state(tensors, om["ints"]), "param_groups": opt.state_dict()["param_groups"]})
    return opt


def _digest(text, tensors):
    h = hashlib.sha256(text.encode())
    for name in sorted(tensors):
        a = tensors[name]
        h.update(f"{name}:{backends.host.host_dtype_name(a)}:{tuple(a.shape)}".encode())
        h.update(backends.host.to_bytes(a, "<"))
    return h.hexdigest()


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


def _saved_backend(label):
    try:
        return backends.get(label)
    except (backends.BackendUnavailable, ValueError):
        return backends.get()
