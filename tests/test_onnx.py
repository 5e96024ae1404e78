"""ONNX export: every convertible layer of tests/layer_cases.py, the ``xpnet train`` models and
some composites exported, run in onnxruntime and compared with xpnet's own eval-mode output
(float32, max abs difference <= 1e-5 relative to the magnitude); other batch sizes than the
exported one; the refusals, each naming the layer; ``xpnet export``; and the table of
converters against every exported layer class."""

from __future__ import annotations

import pathlib
import re
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (pip install 'xpnet[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)")

import xpnet as xn  # noqa: E402
from xpnet import backends  # noqa: E402
from xpnet.cli import main, recipes  # noqa: E402
from xpnet.nets.evaluate import eval_mode  # noqa: E402
from xpnet.onnx import CONVERTERS, REFUSED  # noqa: E402
from tests.conftest import BACKEND_PARAMS, host  # noqa: E402
from tests.layer_cases import CASES, build, covered_classes, inputs_to  # noqa: E402

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
NP = backends.get("numpy")

#: case ids of layer_cases.py that are not export cases, and why
REFUSED_CASES = {
    **{c.id: "return_indices=True: refused" for c in CASES if "return-indices" in c.id},
    **{c.id: f"refused: {REFUSED[c.cls]}" for c in CASES if c.cls in REFUSED and not issubclass(c.cls, xn.Loss)},
}
NOT_EXPORTED = {
    **REFUSED_CASES,
    **{c.id: "a 0-d input: an exported graph's input has a batch axis" for c in CASES if "scalar" in c.id},
    **{c.id: "a loss: refused (test_a_loss_is_refused)" for c in CASES if issubclass(c.cls, xn.Loss)},
}
EXPORTED = [c for c in CASES if c.id not in NOT_EXPORTED]


def session(model):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1  # the cores are shared with other tests
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def reference(net, x):
    """xpnet's own inference output (eval mode, nothing kept), as numpy."""
    with eval_mode(net):
        return host(net(x))


def assert_close(got, want, tol=1e-5):
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype, want.shape, want.dtype)
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    assert float(np.max(np.abs(got - want), initial=0.0)) <= tol * scale


def other_batch(x, rng):
    """An input of batch size 2N + 1 (neither the exported N nor the probe's N + 1), same sample shape."""
    n = x.shape[0]
    if x.dtype.kind == "f":
        return rng.standard_normal((2 * n + 1,) + x.shape[1:]).astype(x.dtype)
    return np.concatenate([x, x, x[:1]])


def export_and_compare(net, x, tmp_path, *, dynamic=True, opset=None, rng=None, tol=1e-5):
    """Export ``net`` for ``x``'s shape, compare onnxruntime's output with xpnet's on ``x`` and,
    with ``dynamic``, on a batch of another size; returns the model."""
    path = tmp_path / "model.onnx"
    model = xn.to_onnx(net, path, x.shape, opset=opset, dynamic_batch=dynamic)
    assert path.read_bytes() == model.SerializeToString()
    sess = session(onnx.load(path))
    assert [i.name for i in sess.get_inputs()] == ["input"] and [o.name for o in sess.get_outputs()] == ["output"]
    assert_close(sess.run(None, {"input": x})[0], reference(net, x), tol)
    if dynamic:
        x2 = other_batch(x, rng or np.random.default_rng(0))
        assert_close(sess.run(None, {"input": x2})[0], reference(net, x2), tol)
    return model


# -- every layer of the case table ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in EXPORTED])
def test_case_exports_and_matches(case, tmp_path):
    net = build(case, NP, "float32")
    rng = np.random.default_rng(case.seed())
    (x,) = inputs_to(NP, case.inputs(rng), "float32")
    export_and_compare(net, x, tmp_path, dynamic="unbatched" not in case.id, rng=rng)


@pytest.mark.parametrize("make, shape", [
    pytest.param(lambda: xn.Linear(4, 3), (2, 3, 4), id="Linear-3d-bias"),
    pytest.param(lambda: xn.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 2, 6, 6), id="MaxPool2d-ceil-partial-window"),
    pytest.param(lambda: xn.MaxPool2d(2, 3, 1, ceil_mode=True), (1, 2, 5, 5), id="MaxPool2d-ceil-window-in-padding"),
    pytest.param(lambda: xn.AvgPool2d(3, 2, 1, ceil_mode=True), (2, 2, 6, 6), id="AvgPool2d-ceil-include-pad"),
    pytest.param(lambda: xn.AvgPool2d(2, 3, 1, ceil_mode=True, count_include_pad=False), (1, 2, 5, 5),
                 id="AvgPool2d-ceil-exclude-pad"),
    pytest.param(lambda: xn.AvgPool2d(3, 2, 1, ceil_mode=True, divisor_override=4), (2, 2, 6, 6),
                 id="AvgPool2d-ceil-divisor"),
    pytest.param(lambda: xn.AdaptiveAvgPool2d((2, 3)), (2, 2, 4, 6), id="AdaptiveAvgPool2d-plain-pool"),
    pytest.param(lambda: xn.AdaptiveAvgPool2d(1), (2, 5, 6), id="AdaptiveAvgPool2d-global-unbatched"),
    pytest.param(lambda: xn.Sequential(), (3, 4), id="Sequential-empty"),
    pytest.param(lambda: xn.Sequential(xn.Unflatten(1, (2, 2)), xn.Flatten(0, 1)), (3, 4), id="batch-merged"),
    pytest.param(lambda: xn.Residual(xn.Sequential(xn.Conv2d(2, 2, 3, padding="same"), xn.BatchNorm2d(2).eval())),
                 (2, 2, 5, 5), id="Residual-conv-bn"),
])
def test_more_geometries_export_and_match(make, shape, tmp_path):
    xn.manual_seed(3)
    net = make()
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    export_and_compare(net, x, tmp_path, dynamic=len(shape) != 3)


@pytest.mark.parametrize("shape, ops", [((1, 2, 6, 6), ["Pad", "MaxPool"]), ((1, 2, 5, 5), ["MaxPool"])])
def test_ceil_mode_pools_use_no_ceil_mode(shape, ops, tmp_path):
    # runtimes differ on a ceil-mode window that would start in the padding (torch and xpnet drop
    # it; ONNX's shape rule keeps it): the partial windows are padded explicitly instead, and the
    # 5x5 case, whose last window xpnet drops, is a plain pool
    model = xn.to_onnx(xn.MaxPool2d(3 if shape[-1] == 6 else 2, 2 if shape[-1] == 6 else 3, 1, ceil_mode=True),
                       tmp_path / "m.onnx", shape)
    assert [n.op_type for n in model.graph.node] == ops
    assert all(a.name != "ceil_mode" for n in model.graph.node for a in n.attribute)


def test_recipes_export_and_match_after_training(tmp_path):
    X, y = xn.data.load_digits("train")
    Xt, _ = xn.data.load_digits("test")
    xt = host(Xt[:50])
    for make in (recipes.mlp, recipes.cnn):
        xn.manual_seed(0)
        net = make(recipes.RECIPES["digits"])
        xn.fit(net, xn.CrossEntropyLoss(), xn.Adam(net, lr=2e-3), (X[:256], y[:256]), epochs=1, batch_size=64,
               progress=False)
        model = export_and_compare(net, xt[:1], tmp_path)
        sess = session(model)
        assert (sess.run(None, {"input": xt})[0].argmax(1) == reference(net, xt).argmax(1)).all()
        assert [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim][0] == "batch"


def test_point_mlp_exports(tmp_path):
    net = recipes.mlp(recipes.RECIPES["ring"])
    X, _ = xn.data.ring_vs_blob(20, seed=0)
    export_and_compare(net, host(X), tmp_path)


@pytest.mark.parametrize("opset", [13, 17, 18])
def test_normalization_at_each_opset_form(opset, tmp_path):
    # below 17 LayerNorm is spelled out; from 18 ReduceMean takes its axes as an input
    net = xn.Sequential(xn.LayerNorm(4), xn.BatchNorm1d(4, track_running_stats=False), xn.LayerNorm(4, bias=False),
                        xn.LayerNorm(4, elementwise_affine=False), xn.Linear(4, 3))
    net.load_state_dict({k: v + 0.3 * (i + 1) for i, (k, v) in enumerate(net.state_dict().items())})
    x = np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32)
    model = export_and_compare(net, x, tmp_path, opset=opset)
    assert model.opset_import[0].version == opset
    ops = {n.op_type for n in model.graph.node}
    assert ("LayerNormalization" in ops) == (opset >= 17)


@pytest.mark.parametrize("opset", [13, 21])
def test_cnn_at_other_opsets(opset, tmp_path):
    xn.manual_seed(0)
    net = xn.Sequential(xn.Conv2d(1, 3, 3, padding=1), xn.BatchNorm2d(3), xn.ReLU(), xn.MaxPool2d(3, 2, 1, ceil_mode=True),
                        xn.AvgPool2d(3, 2, 1, ceil_mode=True), xn.AdaptiveAvgPool2d((2, 3)), xn.Flatten(),
                        xn.LayerNorm(18), xn.Softmax(1))
    x = np.random.default_rng(0).standard_normal((2, 1, 13, 13)).astype(np.float32)
    assert export_and_compare(net, x, tmp_path, opset=opset).opset_import[0].version == opset


def test_float64_net_exports_in_float64(tmp_path):
    net = xn.Sequential(xn.Linear(3, 5, dtype="float64"), xn.Tanh(), xn.Linear(5, 2, dtype="float64"))
    x = np.random.default_rng(0).standard_normal((4, 3))
    model = export_and_compare(net, x, tmp_path, tol=1e-12)
    assert all(t.data_type == onnx.TensorProto.DOUBLE for t in model.graph.initializer)


def test_embedding_net_takes_int64_indices(tmp_path):
    net = xn.Sequential(xn.Embedding(7, 3), xn.Flatten(), xn.Linear(12, 2))
    x = np.random.default_rng(0).integers(0, 7, size=(2, 4)).astype(np.int64)
    model = export_and_compare(net, x, tmp_path)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64


def test_a_shared_layer_stores_its_weights_once(tmp_path):
    lin = xn.Linear(4, 4)
    net = xn.Sequential(lin, xn.ReLU(), lin, xn.Linear(4, 2))
    model = xn.to_onnx(net, tmp_path / "m.onnx", (2, 4))
    assert sorted(t.name for t in model.graph.initializer) == ["0.bias", "0.weight", "3.bias", "3.weight"]


def test_batch_merged_into_another_axis_leaves_that_size_open(tmp_path):
    model = xn.to_onnx(xn.Flatten(0, 1), tmp_path / "m.onnx", (2, 3, 4))
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert not dims[0].HasField("dim_value") and not dims[0].dim_param and dims[1].dim_value == 4


def test_fixed_batch_keeps_the_sizes(tmp_path):
    model = xn.to_onnx(xn.Linear(4, 2), tmp_path / "m.onnx", (3, 4), dynamic_batch=False)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [3, 4]
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [3, 2]


@pytest.mark.parametrize("spec", [s for s in BACKEND_PARAMS if s.id in ("numpy", "array_api_strict:device1", "torch")])
def test_nets_on_other_backends_export(spec, tmp_path):
    be = backends.get(spec)
    with backends.use(be):
        net = xn.Sequential(xn.Conv2d(1, 3, 3, padding=1), xn.BatchNorm2d(3), xn.ReLU(),
                            xn.AvgPool2d(3, 2, 1, ceil_mode=True), xn.AdaptiveAvgPool2d((2, 3)), xn.Flatten(),
                            xn.LayerNorm(18), xn.Dropout(0.5), xn.Linear(18, 2))
    x = np.random.default_rng(0).standard_normal((2, 1, 7, 7)).astype(np.float32)
    sess = session(xn.to_onnx(net, tmp_path / "m.onnx", x.shape))
    assert_close(sess.run(None, {"input": x})[0], reference(net, be.asarray(x)))
    assert net.training  # the export ran in eval mode and gave each layer its mode back


# -- refusals --------------------------------------------------------------------------------------------------
class Square(xn.Layer):
    def forward(self, x):
        return x * x


def test_a_layer_without_converter_is_named_by_its_path(tmp_path):
    path = tmp_path / "m.onnx"
    net = xn.Sequential(xn.Linear(4, 4), xn.Residual(xn.Sequential(xn.Tanh(), Square())))
    with pytest.raises(ValueError, match=r"^to_onnx: layer '1\.body\.1' \(Square\) has no ONNX converter; .*"
                                         r"@xpnet\.onnx\.converter\(Square\)"):
        xn.to_onnx(net, path, (1, 4))
    assert not path.exists() and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match=r"^to_onnx: the net \(Square\) has no ONNX converter"):
        xn.to_onnx(Square(), path, (1, 4))


def test_a_subclass_needs_its_own_converter(tmp_path):
    class MyLinear(xn.Linear):
        pass

    with pytest.raises(ValueError, match=r"layer '0' \(MyLinear\) has no ONNX converter"):
        xn.to_onnx(xn.Sequential(MyLinear(2, 2)), tmp_path / "m.onnx", (1, 2))


def test_a_registered_converter_is_used(tmp_path):
    from xpnet.onnx import Value, converter

    @converter(Square)
    def _square(g, layer, path, x):
        return Value(g.node("Mul", [x.name, x.name], path), *g.run(layer, path, x))

    try:
        x = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
        export_and_compare(xn.Sequential(xn.Linear(2, 2), Square()), x, tmp_path)
    finally:
        del CONVERTERS[Square]


@pytest.mark.parametrize("case", [c for c in CASES if c.id in REFUSED_CASES], ids=lambda c: c.id)
def test_a_refused_case_is_named_and_writes_nothing(case, tmp_path):
    layer = build(case, NP, "float32")
    x = inputs_to(NP, case.inputs(np.random.default_rng(0)), "float32")[0]
    path = tmp_path / "m.onnx"
    with pytest.raises((ValueError, TypeError), match=rf"^to_onnx: layer '0' \({type(layer).__name__}\)"):
        xn.to_onnx(xn.Sequential(layer), path, tuple(x.shape))
    assert not path.exists()


def test_max_pool_with_indices_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"^to_onnx: layer '0' \(MaxPool2d\) cannot be exported: return_indices=True"):
        xn.to_onnx(xn.Sequential(xn.MaxPool2d(2, return_indices=True)), tmp_path / "m.onnx", (1, 1, 4, 4))


def test_a_loss_is_refused(tmp_path):
    class MyLoss(xn.MSELoss):
        pass

    for loss in (xn.CrossEntropyLoss(), MyLoss()):
        with pytest.raises(ValueError, match=rf"the net \({type(loss).__name__}\) cannot be exported: a loss is no part"):
            xn.to_onnx(loss, tmp_path / "m.onnx", (2, 3))


def test_wrong_input_shape_names_the_layer_and_leaves_the_file(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"earlier")
    net = xn.Sequential(xn.Linear(4, 3), xn.ReLU())
    with pytest.raises(ValueError, match=r"^to_onnx: layer '0' \(Linear\) does not take its input of shape \(2, 5\): "
                                         r"Linear\(4 -> 3\) expected input of shape \(\*, 4\), got \(2, 5\)"):
        xn.to_onnx(net, path, (2, 5))
    with pytest.raises(TypeError, match=r"layer '1' \(Embedding\) does not take its input .*expected integer"):
        xn.to_onnx(xn.Sequential(xn.ReLU(), xn.Embedding(3, 2)), path, (2, 5))
    assert path.read_bytes() == b"earlier"


def test_a_layer_fixing_the_batch_size_needs_a_fixed_batch(tmp_path):
    net = xn.Sequential(xn.Unflatten(0, (2, 3)))
    with pytest.raises(ValueError, match=r"^to_onnx: layer '0' \(Unflatten\) takes an input of shape \(6, 4\) but not "
                                         r"one of another batch size \(\(7, 4\): .*\); pass dynamic_batch=False"):
        xn.to_onnx(net, tmp_path / "m.onnx", (6, 4))
    sess = session(xn.to_onnx(net, tmp_path / "m.onnx", (6, 4), dynamic_batch=False))
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    assert_close(sess.run(None, {"input": x})[0], reference(net, x))


@pytest.mark.parametrize("shape", [(), (0, 4), (2, -1), "ab", 5, (1.5, 2), (True, 2)])
def test_bad_input_shape_is_refused(shape, tmp_path):
    with pytest.raises(ValueError, match=r"^to_onnx: input_shape must be a non-empty sequence of positive ints, "
                                         r"the batch size first, got"):
        xn.to_onnx(xn.ReLU(), tmp_path / "m.onnx", shape)


@pytest.mark.parametrize("opset", [12, 10_000, 17.0, True])
def test_bad_opset_is_refused(opset, tmp_path):
    with pytest.raises(ValueError, match=r"^to_onnx: opset must be an int from 13 to \d+ \(the newest this onnx"):
        xn.to_onnx(xn.ReLU(), tmp_path / "m.onnx", (1, 2), opset=opset)


def test_not_a_layer_is_refused(tmp_path):
    with pytest.raises(TypeError, match=r"^to_onnx expected an xpnet Layer \(a net\), got list"):
        xn.to_onnx([xn.ReLU()], tmp_path / "m.onnx", (1, 2))
    with pytest.raises(ValueError, match=r"^to_onnx: dynamic_batch must be"):
        xn.to_onnx(xn.ReLU(), tmp_path / "m.onnx", (1, 2), dynamic_batch="yes")


def test_every_exported_class_converts_or_is_refused_with_a_reason():
    def refusal(cls):
        return next((REFUSED[c] for c in cls.__mro__ if c in REFUSED), None)

    missing = sorted(c.__name__ for c in covered_classes() if c not in CONVERTERS and not refusal(c))
    assert not missing, f"no ONNX converter and no documented refusal for {', '.join(missing)} (xpnet/onnx/)"
    assert not set(CONVERTERS) & set(REFUSED)
    # and every converter of a built-in layer is exercised by the case table above
    exercised = {c.cls for c in EXPORTED}
    untested = sorted(c.__name__ for c in CONVERTERS if c in covered_classes() and c not in exercised)
    assert not untested, f"add an export case for {', '.join(untested)}"


# -- the command ---------------------------------------------------------------------------------------------
def run_cli(capsys, *args):
    code = main(["export", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_exports_a_trained_checkpoint_with_its_data_shape(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "ring", "--epochs", "1", "--no-plots", "--no-progress", "--out", "run"]) == 0
    capsys.readouterr()
    code, out, err = run_cli(capsys, "run/last.xpnet", "ring.onnx")
    assert code == 0, err
    assert re.fullmatch(r"ring\.onnx: ONNX opset 17, \d+ nodes, input 'input' \(batch, 2\), output 'output' "
                        r"\(batch, 2\), [\d,]+ bytes\n", out)
    net = xn.load("run/last.xpnet").net
    x = np.random.default_rng(0).standard_normal((9, 2)).astype(np.float32)
    assert_close(session(onnx.load("ring.onnx")).run(None, {"input": x})[0], reference(net, x))


def test_cli_takes_a_data_files_sample_shape(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    rows = ["a,b,c,label"] + [f"{u:.4f},{v:.4f},{w:.4f},{i % 2}" for i, (u, v, w) in enumerate(rng.random((60, 3)))]
    pathlib.Path("d.csv").write_text("\n".join(rows) + "\n")
    assert main(["train", "--data", "d.csv", "--epochs", "1", "--no-plots", "--no-progress", "--out", "run"]) == 0
    capsys.readouterr()
    code, out, err = run_cli(capsys, "run/best.xpnet", "d.onnx")
    assert code == 0, err
    assert "input 'input' (batch, 3), output 'output' (batch, 2)" in out


def test_cli_image_shape_and_options(tmp_path, capsys):
    net = recipes.cnn(recipes.RECIPES["digits"])
    ck = tmp_path / "cnn.xpnet"
    xn.save(ck, net, extra={"cli": {"data": "digits"}})
    code, out, err = run_cli(capsys, ck, tmp_path / "a.onnx", "--opset", "18")
    assert code == 0, err
    assert "ONNX opset 18" in out and "input 'input' (batch, 1, 8, 8), output 'output' (batch, 10)" in out
    code, out, err = run_cli(capsys, ck, tmp_path / "b.onnx", "--input-shape", "4,1,8,8", "--fixed-batch")
    assert code == 0, err
    assert "input 'input' (4, 1, 8, 8), output 'output' (4, 10)" in out


def test_cli_errors(tmp_path, capsys, monkeypatch):
    ck = tmp_path / "mlp.xpnet"
    xn.save(ck, xn.Sequential(xn.Linear(64, 10)))
    out = tmp_path / "m.onnx"

    def error(*args):
        try:
            code, _, err = run_cli(capsys, *args)
        except SystemExit as e:  # argparse's own errors
            code, err = e.code, capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        return err

    assert "checkpoint " + str(tmp_path / "none.xpnet") + ": no such file" in error(tmp_path / "none.xpnet", out)
    assert "does not say which data set it was trained on: pass --input-shape" in error(ck, out)
    assert "--input-shape: must be positive integers separated by commas" in error(ck, out, "--input-shape", "1,x")
    assert "--input-shape: must be positive" in error(ck, out, "--input-shape", "0,64")
    assert ("to_onnx: layer '0' (Linear) does not take its input of shape (1, 65): Linear(64 -> 10) expected input"
            in error(ck, out, "--input-shape", "1,65"))
    assert "to_onnx: opset must be an int from 13" in error(ck, out, "--input-shape", "1,64", "--opset", "7")
    (tmp_path / "file").write_text("")
    assert "OUT " in error(ck, tmp_path / "file" / "m.onnx", "--input-shape", "1,64")
    xn.save(ck, xn.Sequential(xn.Linear(64, 10)), extra={"cli": {"data": "imagenet"}})
    assert "says it was trained on 'imagenet', not a data set of xpnet train" in error(ck, out)
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    assert "exporting needs the onnx package: pip install 'xpnet[onnx]'" in error(ck, out, "--input-shape", "1,64")
    assert not out.exists()


# -- the README --------------------------------------------------------------------------------------------
def test_readme_export_section_runs(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    section = text.split("## Export to ONNX", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks and "xpnet export" in section
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md (Export to ONNX)", "exec"), {})
    assert (tmp_path / "digits.onnx").exists()
