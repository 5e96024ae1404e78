"""Architecture specs (xpnet.nets.spec): every layer and loss round-trips through JSON, and bad specs fail with
clear messages."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

import xpnet as xn
from xpnet import layers as L
from xpnet.nets import spec as S
from tests.conftest import Pair, host

# One instance per layer/loss class, with as many non-default arguments as the class takes. Every class that
# xpnet.layers exports must appear here (test_every_exported_layer_has_an_example enforces it).
EXAMPLES = {
    "AdaptiveAvgPool2d": [L.AdaptiveAvgPool2d((2, 3)), L.AdaptiveAvgPool2d(1)],
    "AvgPool2d": [L.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False, divisor_override=4),
                  L.AvgPool2d((2, 3), stride=(1, 2), padding=(1, 0)), L.AvgPool2d(3)],
    "BCEWithLogitsLoss": [L.BCEWithLogitsLoss(weight=[0.5, 2.0], reduction="sum", pos_weight=[3.0, 1.0]),
                          L.BCEWithLogitsLoss(reduction="sum")],
    "BatchNorm1d": [L.BatchNorm1d(5, eps=1e-3, momentum=None, affine=False),
                    L.BatchNorm1d(3, track_running_stats=False, bias=False)],
    "BatchNorm2d": [L.BatchNorm2d(6, eps=1e-4, momentum=0.25, track_running_stats=False)],
    "Conv2d": [L.Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=2, bias=False),
               L.Conv2d(4, 8, 3, padding="same", dilation=2, groups=4),
               L.Conv2d(2, 3, 5, stride=(2, 1), padding="valid", dilation=(1, 2))],
    "CrossEntropyLoss": [L.CrossEntropyLoss(weight=[1.0, 2.0, 0.5], ignore_index=2, reduction="sum", label_smoothing=0.1),
                         L.CrossEntropyLoss(reduction="sum", label_smoothing=0.1)],
    "Dropout": [L.Dropout(0.3), L.Dropout(0.0)],
    "Embedding": [L.Embedding(10, 4, padding_idx=0), L.Embedding(7, 3, padding_idx=-1), L.Embedding(5, 2)],
    "Flatten": [L.Flatten(0, 2), L.Flatten(start_dim=2)],
    "Identity": [L.Identity()],
    "LayerNorm": [L.LayerNorm((3, 4), eps=1e-6, bias=False), L.LayerNorm(7, elementwise_affine=False)],
    "LeakyReLU": [L.LeakyReLU(0.2)],
    "Linear": [L.Linear(3, 4, bias=False), L.Linear(5, 1)],
    "MSELoss": [L.MSELoss(reduction="sum"), L.MSELoss()],
    "MaxPool2d": [L.MaxPool2d(3, stride=2, padding=1, dilation=2, return_indices=True, ceil_mode=True),
                  L.MaxPool2d(3, stride=1, padding=1), L.MaxPool2d((2, 3), stride=(2, 1))],
    "ReLU": [L.ReLU()],
    "Reshape": [L.Reshape(1, 28, 28), L.Reshape(-1), L.Reshape((2, -1))],
    "Sigmoid": [L.Sigmoid()],
    "Softmax": [L.Softmax(dim=1), L.Softmax(dim=0)],
    "Tanh": [L.Tanh()],
    "Unflatten": [L.Unflatten(1, (2, 3)), L.Unflatten(-1, [4, -1])],
}


def _case_examples():
    """For the classes EXAMPLES does not spell out: the layers of tests/layer_cases.py's table
    (and its families, tests/cases/*.py), which give their non-default arguments."""
    from xpnet import backends
    from tests.layer_cases import CASES

    out = {}
    for case in CASES:
        name = case.cls.__name__
        if name not in EXAMPLES and getattr(L, name, None) is case.cls:
            out.setdefault(name, []).append(case.make(backends.get("numpy"), "float32"))
    return out


EXAMPLES.update(_case_examples())
ALL_EXAMPLES = [(name, i, layer) for name, group in EXAMPLES.items() for i, layer in enumerate(group)]

# Constructor arguments that configs leave out on purpose: placement, and torch's ``inplace``
# (accepted for torch's signatures; xpnet never works in place, so it changes nothing).
NOT_CONFIG = {"backend", "dtype", "inplace", "LinearCrossEntropyLoss.device"}


def _exported_classes():
    out = {}
    for name in L.__all__:
        obj = getattr(L, name)
        if isinstance(obj, type) and issubclass(obj, (L.Layer, L.Loss)) and obj not in (L.Layer, L.Loss):
            out[name] = obj
    return out


def _round_trip(layer):
    spec = S.layer_spec(layer)
    text = json.dumps(spec)  # plain JSON: raises on anything else
    rebuilt = S.build(json.loads(text))
    return spec, rebuilt


def test_every_exported_layer_has_an_example():
    exported = _exported_classes()
    assert len(exported) >= 22
    assert sorted(exported) == sorted(EXAMPLES), "add the new layer to EXAMPLES (and give it a config)"
    for name, group in EXAMPLES.items():
        assert all(type(layer) is exported[name] for layer in group), name


@pytest.mark.parametrize("name", sorted(_exported_classes()))
def test_config_covers_every_constructor_argument(name):
    cls = _exported_classes()[name]
    config = EXAMPLES[name][0].config()
    for p in inspect.signature(cls).parameters.values():
        if p.name in NOT_CONFIG or f"{name}.{p.name}" in NOT_CONFIG:
            continue
        assert p.name in config, f"{name}.config() lacks its constructor argument {p.name!r}"
    # a layer's config arguments rebuild it: type(layer)(**config)
    assert set(config) <= set(inspect.signature(cls).parameters)


@pytest.mark.parametrize("name,i,layer", ALL_EXAMPLES, ids=[f"{n}-{i}" for n, i, _ in ALL_EXAMPLES])
def test_round_trip_every_layer(name, i, layer):
    spec, rebuilt = _round_trip(layer)
    assert spec["type"] == name
    assert type(rebuilt) is type(layer)
    assert repr(rebuilt) == repr(layer)
    assert S.layer_spec(rebuilt) == spec
    # same parameter and buffer layout (fresh values)
    got = {k: (tuple(v.shape), str(v.dtype)) for k, v in rebuilt.state_dict().items()} if hasattr(rebuilt, "state_dict") else {}
    want = {k: (tuple(v.shape), str(v.dtype)) for k, v in layer.state_dict().items()} if hasattr(layer, "state_dict") else {}
    assert got == want


def test_non_default_arguments_survive():
    """Spot checks that the non-default values are in the spec, not silently replaced by defaults."""
    conv = S.build(json.loads(json.dumps(S.layer_spec(EXAMPLES["Conv2d"][1]))))
    assert (conv.padding, conv.dilation, conv.groups) == ("same", (2, 2), 4)
    assert conv.bias is not None
    conv0 = S.build(S.layer_spec(EXAMPLES["Conv2d"][0]))
    assert conv0.bias is None and conv0.stride == (2, 2)
    bn = S.build(S.layer_spec(EXAMPLES["BatchNorm1d"][0]))
    assert bn.momentum is None and bn.affine is False and bn.weight is None and bn.eps == 1e-3
    bn2 = S.build(S.layer_spec(EXAMPLES["BatchNorm1d"][1]))
    assert bn2.weight is not None and bn2.bias is None and bn2.running_mean is None
    mp = S.build(json.loads(json.dumps(S.layer_spec(EXAMPLES["MaxPool2d"][0]))))
    assert (mp.dilation, mp.return_indices, mp.ceil_mode) == (2, True, True)
    ap = S.build(json.loads(json.dumps(S.layer_spec(EXAMPLES["AvgPool2d"][0]))))
    assert (ap.ceil_mode, ap.count_include_pad, ap.divisor_override) == (True, False, 4)
    ln = S.build(json.loads(json.dumps(S.layer_spec(EXAMPLES["LayerNorm"][0]))))
    assert tuple(ln.normalized_shape) == (3, 4) and ln.bias is None and ln.weight is not None
    emb = S.build(S.layer_spec(EXAMPLES["Embedding"][1]))
    assert emb.padding_idx == 6
    assert S.build(S.layer_spec(L.Dropout(0.3))).p == 0.3
    assert S.build(S.layer_spec(L.LeakyReLU(0.2))).negative_slope == 0.2
    assert S.build(S.layer_spec(L.Softmax(dim=1))).dim == 1
    assert S.build(S.layer_spec(L.CrossEntropyLoss(reduction="sum", label_smoothing=0.1))).label_smoothing == 0.1
    ce = S.build(json.loads(json.dumps(S.layer_spec(EXAMPLES["CrossEntropyLoss"][0]))))
    assert (ce.ignore_index, ce.reduction, ce.label_smoothing) == (2, "sum", 0.1)
    np.testing.assert_array_equal(host(ce.weight), np.asarray([1.0, 2.0, 0.5], np.float32))
    assert tuple(S.build(S.layer_spec(L.Reshape(1, 28, 28))).shape) == (1, 28, 28)
    assert tuple(S.build(S.layer_spec(L.Unflatten(1, (2, 3)))).unflattened_size) == (2, 3)


def test_nested_sequential_round_trip():
    net = xn.Sequential(
        xn.Reshape(1, 8, 8),
        xn.Sequential(xn.Conv2d(1, 4, 3, padding=1), xn.BatchNorm2d(4), xn.ReLU(), xn.MaxPool2d(2)),
        xn.Flatten(),
        xn.Sequential(xn.Sequential(xn.Linear(64, 16), xn.Dropout(0.25)), xn.LeakyReLU(0.1)),
        xn.Linear(16, 3),
    )
    spec, rebuilt = _round_trip(net)
    assert spec["type"] == "Sequential" and spec["layers"][1]["type"] == "Sequential"
    assert spec["layers"][3]["layers"][0]["layers"][1] == {"type": "Dropout", "p": 0.25}
    assert repr(rebuilt) == repr(net)
    assert S.layer_spec(rebuilt) == spec
    assert list(rebuilt.state_dict()) == list(net.state_dict())
    # a bare list is taken as a Sequential
    assert repr(S.build(spec["layers"])) == repr(net)


def test_build_places_on_backend_and_dtype(backend):
    spec = S.layer_spec(xn.Sequential(xn.Linear(3, 4), xn.BatchNorm1d(4), xn.Embedding(5, 2)))
    net = S.build(spec, backend=backend, dtype="float64")
    for k, v in net.state_dict().items():
        assert xn.backends.backend_of(v) is backend, k
        want = "int64" if k.endswith("num_batches_tracked") else "float64"
        assert backend.dtype_name(v.dtype) == want, k
    # default: float32 on the current backend (the fixture makes it the default)
    net32 = S.build(spec)
    assert backend.dtype_name(net32[0].weight.data.dtype) == "float32"
    assert xn.backends.backend_of(net32[0].weight.data) is backend


# -- composites ------------------------------------------------------------------------------------------------


def _block(c_in, c_out, stride):
    body = xn.Sequential(xn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), xn.BatchNorm2d(c_out),
                         xn.ReLU(), xn.Conv2d(c_out, c_out, 3, padding=1, bias=False), xn.BatchNorm2d(c_out))
    shortcut = None if stride == 1 and c_in == c_out else xn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
    return xn.Residual(body, shortcut)


def _composite_net():
    return xn.Sequential(
        xn.Conv2d(3, 4, 3, padding=1),
        _block(4, 4, 1),
        _block(4, 6, 2),
        xn.Concat(xn.Identity(), xn.Sequential(xn.Conv2d(6, 2, 1), xn.ReLU()),
                  xn.Residual(xn.Conv2d(6, 6, 3, padding=1)), dim=1),
        xn.AdaptiveAvgPool2d(1), xn.Flatten(), xn.Linear(14, 3),
    )


def test_registry_knows_the_containers():
    reg = S._registry()
    assert reg["Sequential"] is xn.Sequential and reg["Residual"] is xn.Residual and reg["Concat"] is xn.Concat
    assert set(_exported_classes()) <= set(reg)
    assert S.builtin_classes() == {**_exported_classes(), "Sequential": xn.Sequential, "Residual": xn.Residual,
                                   "Concat": xn.Concat}


def test_composite_round_trip():
    net = _composite_net()
    spec, rebuilt = _round_trip(net)
    res = spec["layers"][1]
    assert res["type"] == "Residual" and res["shortcut"] is None
    assert res["body"]["type"] == "Sequential" and res["body"]["layers"][2] == {"type": "ReLU"}
    assert spec["layers"][2]["shortcut"]["type"] == "Conv2d" and spec["layers"][2]["shortcut"]["stride"] == [2, 2]
    cat = spec["layers"][3]
    assert cat["type"] == "Concat" and cat["dim"] == 1 and [b["type"] for b in cat["branches"]] == [
        "Identity", "Sequential", "Residual"]
    assert type(rebuilt[3]) is xn.Concat and type(rebuilt[3].branches[2]) is xn.Residual
    assert rebuilt[1].shortcut is None and type(rebuilt[2].shortcut) is xn.Conv2d
    assert repr(rebuilt) == repr(net)
    assert S.layer_spec(rebuilt) == spec
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}
    # a composite at the top, and the rebuilt net runs
    assert S.layer_spec(S.build(S.layer_spec(net[2]))) == spec["layers"][2]
    x = xn.backends.get().asarray(np.random.default_rng(0).standard_normal((2, 3, 6, 6)), dtype="float32")
    assert tuple(rebuilt(x).shape) == (2, 3)


def test_composite_is_placed_on_backend_and_dtype(backend):
    net = S.build(S.layer_spec(_composite_net()), backend=backend, dtype="float64")
    for k, v in net.state_dict().items():
        assert xn.backends.backend_of(v) is backend, k
        assert backend.dtype_name(v.dtype) == ("int64" if k.endswith("num_batches_tracked") else "float64"), k


def test_nested_spec_from_a_json_file(tmp_path):
    """A hand-written file: residual blocks and a Concat nested in a Sequential, keys in any order."""
    text = """{"type": "Sequential", "layers": [
        {"type": "Linear", "in_features": 4, "out_features": 8},
        {"type": "Residual", "body": {"type": "Sequential", "layers": [
            {"type": "ReLU"}, {"type": "Linear", "in_features": 8, "out_features": 8}]}},
        {"type": "Concat", "dim": -1, "branches": [
            {"type": "Tanh"},
            {"type": "Residual", "body": {"type": "Sigmoid"}, "shortcut": {"type": "Identity"}}]},
        {"type": "Linear", "in_features": 16, "out_features": 2}]}"""
    p = tmp_path / "net.json"
    p.write_text(text)
    net = S.build(S.load_spec(p))
    assert [type(layer).__name__ for layer in net] == ["Linear", "Residual", "Concat", "Linear"]
    assert net[1].shortcut is None and type(net[2].branches[1].shortcut) is xn.Identity and net[2].dim == -1
    assert list(net.state_dict()) == ["0.weight", "0.bias", "1.body.1.weight", "1.body.1.bias", "3.weight", "3.bias"]
    assert S.layer_spec(net)["layers"][1] == {"type": "Residual", "shortcut": None, "body": {
        "type": "Sequential", "layers": [{"type": "ReLU"}, {"type": "Linear", "in_features": 8, "out_features": 8,
                                                             "bias": True}]}}
    x = xn.backends.get().asarray(np.ones((3, 4)), dtype="float32")
    assert tuple(net(x).shape) == (3, 2)
    p.write_text(json.dumps(S.layer_spec(net)))
    assert S.layer_spec(S.build(S.load_spec(p))) == S.layer_spec(net)


def test_build_is_linear_in_the_spec(monkeypatch):
    """20,000 layers: one _build call per spec object, one signature lookup per class."""
    builds, signatures = [0], []
    real_build, real_signature = S._build, inspect.signature

    def counting_build(*a):
        builds[0] += 1
        return real_build(*a)

    def counting_signature(obj, *a, **k):
        signatures.append(obj)
        return real_signature(obj, *a, **k)

    monkeypatch.setattr(S, "_build", counting_build)
    monkeypatch.setattr(inspect, "signature", counting_signature)
    S._signature.cache_clear()
    net = S.build([{"type": "ReLU"}] * 20_000)
    assert len(net) == 20_000 and builds[0] == 20_001
    assert sorted(c.__name__ for c in signatures) == ["ReLU", "Sequential"]
    assert S.layer_spec(net)["layers"][-1] == {"type": "ReLU"}


class Stack(xn.Layer):
    """A composite whose children are a list attribute and whose constructor takes ``*blocks``."""

    def __init__(self, *blocks, repeat=1):
        self.blocks, self.repeat = list(blocks), repeat

    def forward(self, x):
        for _ in range(self.repeat):
            for b in self.blocks:
                x = b(x)
        return x

    def config(self):
        return {"blocks": self.blocks, "repeat": self.repeat}


def test_user_composites_round_trip(registry):
    S.register(Pair)
    S.register(Stack)
    net = Pair(xn.Sequential(xn.Linear(3, 4), xn.Tanh()),
               Stack(xn.Linear(2, 4), xn.Residual(xn.Linear(4, 4)), repeat=1), scale=0.5)
    spec, rebuilt = _round_trip(net)
    assert spec["scale"] == 0.5 and spec["first"]["type"] == "Sequential"
    assert spec["second"] == {"type": "Stack", "repeat": 1, "blocks": [
        {"type": "Linear", "in_features": 2, "out_features": 4, "bias": True},
        {"type": "Residual", "body": {"type": "Linear", "in_features": 4, "out_features": 4, "bias": True},
         "shortcut": None}]}
    assert type(rebuilt) is Pair and type(rebuilt.second) is Stack and type(rebuilt.second.blocks[1]) is xn.Residual
    assert S.layer_spec(rebuilt) == spec
    assert list(rebuilt.state_dict()) == list(net.state_dict()) == [
        "first.0.weight", "first.0.bias", "second.blocks.0.weight", "second.blocks.0.bias",
        "second.blocks.1.body.weight", "second.blocks.1.body.bias"]
    rebuilt.load_state_dict(net.state_dict())
    be = xn.backends.get()
    rng = np.random.default_rng(0)
    a = be.asarray(rng.standard_normal((5, 3)), dtype="float32")
    b = be.asarray(rng.standard_normal((5, 2)), dtype="float32")
    np.testing.assert_array_equal(host(rebuilt(a, b)), host(net(a, b)))
    # an unregistered child is named
    with pytest.raises(TypeError, match=r"^cannot describe tests\.test_spec\.Scale: it is not a registered layer"):
        S.layer_spec(xn.Sequential(xn.Residual(Pair(xn.ReLU(), Scale()))))


@pytest.mark.parametrize("bad,msg", [
    ([{"type": "ReLU"}] * 3 + [{"type": "Residual", "body": {"type": "Nope"}}],
     r"^model\.layers\[3\]\.body: unknown layer type 'Nope'; known types: .*\bConcat\b.*\bResidual\b"),
    ({"type": "Residual", "body": {"type": "Linear", "in_features": 2}},
     r"^model\.body: bad arguments for Linear: .*out_features"),
    ({"type": "Residual", "body": {"type": 5}},
     r'^model\.body: expected a layer spec, an object with a string "type", got \{\'type\': 5\}'),
    ({"type": "Residual", "body": {"type": "Sequential", "layers": {"a": 1}}},
     r'^model\.body: a Sequential spec has exactly one key besides "type": "layers", a list'),
    ({"type": "Concat", "branches": [{"type": "ReLU"}, 3]},
     r'^model\.branches\[1\]: expected a layer spec, an object with a string "type", got 3$'),
    ([{"type": "Concat", "branches": [{"type": "ReLU"}, {"type": "Residual", "body": {"type": "Tanh"},
                                                          "shortcut": {"type": "Conv4d"}}]}],
     r"^model\.layers\[0\]\.branches\[1\]\.shortcut: unknown layer type 'Conv4d'"),
    ({"type": "Residual"}, r"^model: bad arguments for Residual: .*'body'"),
    ({"type": "Residual", "body": "ReLU"}, r"^model: bad arguments for Residual: Residual: body must be a Layer, got str$"),
    ({"type": "Concat", "branches": []}, r"^model: Concat: expected at least one branch$"),
    ({"type": "Concat", "branches": [{"type": "ReLU"}], "axis": 1},
     r"^model: bad arguments for Concat: .*unexpected keyword argument 'axis'"),
    ([{"type": "Sequential", "layers": [{"type": "MSELoss"}]}],
     r"^model\.layers\[0\]: bad arguments for Sequential: Sequential expected Layer instances, got MSELoss at "
     r"position 0; losses are applied outside the net$"),
], ids=["unknown-in-body", "bad-args-in-body", "int-type", "bad-sequential-body", "not-a-spec-in-list",
        "deep-path", "no-body", "str-body", "no-branch", "extra-key", "loss-in-sequential"])
def test_build_bad_nested_specs(bad, msg):
    with pytest.raises(ValueError, match=msg):
        S.build(bad)


# -- build errors --------------------------------------------------------------------------------------------


def test_build_unknown_type():
    with pytest.raises(ValueError, match=r"^model: unknown layer type 'Conv4d'; known types: .*\bConv2d\b.*\bLinear\b"):
        S.build({"type": "Conv4d", "in_channels": 1})
    # the base classes are not buildable
    for base in ("Layer", "Loss", "Parameter"):
        with pytest.raises(ValueError, match=f"unknown layer type '{base}'"):
            S.build({"type": base})
    # the location of a nested error is named
    with pytest.raises(ValueError, match=r"^model\.layers\[1\]\.layers\[0\]: unknown layer type 'Nope'"):
        S.build([{"type": "ReLU"}, {"type": "Sequential", "layers": [{"type": "Nope"}]}])


@pytest.mark.parametrize("bad", [{"in_features": 3}, {"type": 3}, "Linear", 3, None, [1]],
                         ids=["no-type", "int-type", "str", "int", "none", "list-of-int"])
def test_build_not_a_spec(bad):
    with pytest.raises(ValueError, match=r'expected a layer spec, an object with a string "type", got'):
        S.build(bad)


def test_build_bad_arguments():
    with pytest.raises(ValueError, match=r"^model: bad arguments for Linear: .*unexpected keyword argument 'units'"):
        S.build({"type": "Linear", "in_features": 3, "units": 4})
    with pytest.raises(ValueError, match=r"^model\.layers\[0\]: bad arguments for Linear: .*out_features"):
        S.build({"type": "Sequential", "layers": [{"type": "Linear", "in_features": 3}]})
    with pytest.raises(ValueError, match=r"bad arguments for ReLU"):
        S.build({"type": "ReLU", "inplace": True})
    # values the constructor rejects raise its own error
    with pytest.raises(ValueError, match=r"Dropout"):
        S.build({"type": "Dropout", "p": 2.0})


@pytest.mark.parametrize("bad", [{"type": "Sequential", "layers": {"0": {"type": "ReLU"}}},
                                 {"type": "Sequential"},
                                 {"type": "Sequential", "layers": [], "name": "x"}],
                         ids=["dict-layers", "no-layers", "extra-key"])
def test_build_bad_sequential(bad):
    with pytest.raises(ValueError, match=r'^model: a Sequential spec has exactly one key besides "type": "layers", a list'):
        S.build(bad)


def test_load_spec(tmp_path):
    p = tmp_path / "net.json"
    spec = S.layer_spec(xn.Sequential(xn.Linear(2, 3), xn.Tanh()))
    p.write_text(json.dumps(spec))
    assert S.load_spec(p) == spec
    with pytest.raises(FileNotFoundError, match=r"^model spec .*missing\.json: no such file$"):
        S.load_spec(tmp_path / "missing.json")
    p.write_text("{'type': 'ReLU'}")
    with pytest.raises(ValueError, match=r"^model spec .*net\.json: not valid JSON \("):
        S.load_spec(p)


# -- custom layers -------------------------------------------------------------------------------------------


class Scale(xn.Layer):
    _config_fields = ("factor", "name")

    def __init__(self, factor=1.0, name="s"):
        self.factor, self.name = factor, name

    def forward(self, x):
        return x * self.factor

    def backward(self, dy):
        return dy * self.factor

    def extra_repr(self):
        return f"factor={self.factor}, name={self.name!r}"


def test_register_custom_layer(registry):
    assert xn.register is S.register
    with pytest.raises(TypeError, match=r"^cannot describe tests\.test_spec\.Scale: it is not a registered layer; "
                                        r"decorate it with @xpnet\.nets\.spec\.register"):
        S.layer_spec(Scale(2.0))
    with pytest.raises(ValueError, match="unknown layer type 'Scale'"):
        S.build({"type": "Scale", "factor": 2.0})
    assert S.register(Scale) is Scale
    assert S.register(Scale) is Scale  # registering again is harmless
    net = xn.Sequential(xn.Linear(2, 2), Scale(3.0, name="triple"))
    spec, rebuilt = _round_trip(net)
    assert spec["layers"][1] == {"type": "Scale", "factor": 3.0, "name": "triple"}
    assert repr(rebuilt) == repr(net) and rebuilt[1].factor == 3.0
    # the registry was private to this test
    assert "Scale" in registry


def test_register_errors(registry):
    with pytest.raises(TypeError, match=r"^register expected a Layer or Loss subclass, got <class 'int'>"):
        S.register(int)
    with pytest.raises(TypeError, match=r"register expected a Layer or Loss subclass, got ReLU\(\)"):
        S.register(xn.ReLU())  # an instance, not a class

    class Linear(xn.Layer):  # same name as a built-in layer
        pass

    with pytest.raises(ValueError, match=r"^register: another class named 'Linear' is already registered "
                                         r"\(xpnet\.layers\.linear\)"):
        S.register(Linear)
    assert registry["Linear"] is L.Linear


def test_register_with_a_torch_twin(registry):
    def factory(**config):  # any callable: to_torch calls it with the config
        return config

    @xn.register(torch=factory)
    class Twinned(xn.Layer):
        pass

    assert registry["Twinned"] is Twinned and S._TORCH_TWINS["Twinned"] is factory
    S.register(Twinned)  # registering again without a twin keeps it
    assert S._TORCH_TWINS["Twinned"] is factory
    assert S.register(Stack, torch=dict) is Stack and S._TORCH_TWINS["Stack"] is dict
    with pytest.raises(TypeError, match=r"^register: torch= must be a torch\.nn\.Module class or a factory of one, got 3$"):
        S.register(Pair, torch=3)
    assert "Pair" not in registry and "Pair" not in S._TORCH_TWINS


def test_unregistered_layer_cannot_be_described(registry):
    class MyLinear(xn.Linear):  # a subclass is a different layer: it is not described as its parent
        pass

    class ReLU(xn.ReLU):  # nor is a class that merely shares a registered name
        pass

    for layer in (MyLinear(2, 3), ReLU(), xn.Sequential(xn.Linear(2, 2), xn.Sequential(ReLU()))):
        with pytest.raises(TypeError, match=r"cannot describe .*test_spec\..*(MyLinear|ReLU): it is not a registered layer"):
            S.layer_spec(layer)


def test_register_custom_loss(registry):
    @S.register
    class HalfMSE(xn.MSELoss):
        pass

    spec = S.layer_spec(HalfMSE(reduction="sum"))
    assert spec == {"type": "HalfMSE", "reduction": "sum"}
    assert type(S.build(spec)) is HalfMSE


# -- optimizers ----------------------------------------------------------------------------------------------

OPTIMIZERS = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.0, "nesterov": True, "weight_decay": 1e-3}),
    ("SGD", {"lr": 0.1, "momentum": 0.5, "dampening": 0.1}),
    ("Adam", {"lr": 2e-3, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.01, "amsgrad": True}),
    ("AdamW", {"lr": 1e-2, "betas": (0.85, 0.99), "weight_decay": 0.1}),
    ("RMSprop", {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7, "weight_decay": 0.02, "momentum": 0.5, "centered": True}),
]


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)])
def test_optimizer_spec_round_trip(name, kw):
    net = xn.Sequential(xn.Linear(3, 4), xn.ReLU(), xn.Linear(4, 2))
    opt = getattr(xn, name)(net.parameters(), **kw)
    spec = S.optimizer_spec(opt)
    assert spec["type"] == name
    assert spec == json.loads(json.dumps(opt.config()))  # the optimizer's own config, JSON-ready
    for k, v in kw.items():
        assert spec[k] == (list(v) if isinstance(v, tuple) else v), k
    net2 = S.build(S.layer_spec(net))
    opt2 = S.build_optimizer(json.loads(json.dumps(spec)), net2.parameters())
    assert type(opt2) is type(opt)
    assert opt2.params == net2.parameters()
    assert S.optimizer_spec(opt2) == spec
    assert repr(opt2) == repr(opt)


def test_build_optimizer_errors():
    params = xn.Linear(2, 2).parameters()
    with pytest.raises(ValueError, match=r"""^optimizer: expected a spec with "type" one of \['Adam', 'AdamW', 'RMSprop', 'SGD'\], got \{'type': 'Adagrad'\}"""):
        S.build_optimizer({"type": "Adagrad"}, params)
    with pytest.raises(ValueError, match=r'^optimizer: expected a spec with "type"'):
        S.build_optimizer(["SGD"], params)
    with pytest.raises(ValueError, match=r"^optimizer: bad arguments for SGD: .*unexpected keyword argument 'mom'"):
        S.build_optimizer({"type": "SGD", "lr": 0.1, "mom": 0.9}, params)
    with pytest.raises(ValueError, match=r"^optimizer: bad arguments for SGD: .*'lr'"):
        S.build_optimizer({"type": "SGD"}, params)


def test_sizes_no_array_can_have_are_a_located_value_error():
    with pytest.raises(ValueError, match=r"^model\.layers\[0\]: Linear with .* is too large to build \(OverflowError"):
        S.build([{"type": "Linear", "in_features": 10**400, "out_features": 2}])
