"""``xpnet export CKPT model.onnx``: a checkpoint's net as an ONNX model (see :func:`xpnet.to_onnx`)."""

from __future__ import annotations

import argparse
import os
import pathlib

from . import UsageError

HELP = "export a checkpoint's net as an ONNX model for inference elsewhere"


def shape_arg(s):
    """``"1,64"`` -> ``(1, 64)``: positive ints, the batch size first."""
    try:
        shape = tuple(int(p) for p in s.split(","))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise argparse.ArgumentTypeError(f"must be positive integers separated by commas, the batch size first "
                                         f"(1,64 or 1,1,28,28), got {s!r}")
    return shape


def add_arguments(p):
    from xpnet.onnx import DEFAULT_OPSET, MIN_OPSET

    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint written by xpnet train or xpnet.save")
    p.add_argument("output", metavar="OUT", help="the ONNX file to write (e.g. model.onnx)")
    p.add_argument("--input-shape", type=shape_arg, default=None, metavar="N,...",
                   help="the input's shape, batch size first (default: a sample of the data set it was trained on, "
                        "batch 1)")
    p.add_argument("--opset", type=int, default=None, help=f"ONNX operator set, {MIN_OPSET} or newer "
                                                            f"(default {DEFAULT_OPSET})")
    p.add_argument("--fixed-batch", action="store_true", help="fix the batch size to the input shape's "
                                                              "(default: any batch size)")


def run(args) -> int:
    from xpnet.onnx.export import INSTALL_HINT, import_onnx

    from . import paths
    from .checks import load_checkpoint

    try:
        import_onnx()
    except ModuleNotFoundError:
        raise UsageError(f"exporting needs the onnx package: {INSTALL_HINT}") from None
    out = pathlib.Path(args.output)
    if not os.fspath(args.output):
        raise UsageError("OUT: an empty path")
    paths.check("OUT", out.parent, [out.name])
    ck = load_checkpoint("", args.checkpoint, "numpy")
    shape = args.input_shape or _saved_shape(args.checkpoint, ck)
    import xpnet as xn

    model = xn.to_onnx(ck.net, out, shape, opset=args.opset, dynamic_batch=not args.fixed_batch)
    dims = [d.dim_param or d.dim_value or "?" for d in model.graph.output[0].type.tensor_type.shape.dim]
    inp = ("batch",) + shape[1:] if not args.fixed_batch else shape
    print(f"{out}: ONNX opset {model.opset_import[0].version}, {len(model.graph.node)} nodes, "
          f"input 'input' {_show(inp)}, output 'output' {_show(dims)}, {out.stat().st_size:,} bytes")
    return 0


def _saved_shape(path, ck):
    """A batch of one sample of the data an ``xpnet train`` checkpoint was trained on (a data
    set's, or a data file's), as the net takes it: images for a net that starts with a
    convolution or a flatten, flat features otherwise."""
    from . import datafile
    from .recipes import RECIPES
    from .train import _wants_images

    saved = datafile.saved_info(path, ck.extra)  # trained on a file of one's own: its sample shape
    if saved is not None:
        recipe = datafile.recipe(saved)
    else:
        cli = ck.extra.get("cli") if isinstance(ck.extra, dict) else None
        name = cli.get("data") if isinstance(cli, dict) else None
        if name is None:
            raise UsageError(f"{path} does not say which data set it was trained on: pass --input-shape "
                             "(the batch size first, e.g. 1,64)")
        recipe = RECIPES.get(name) if isinstance(name, str) else None
        if recipe is None:
            raise UsageError(f"{path} says it was trained on {str(name)[:60]!r}, not a data set of xpnet train: "
                             "pass --input-shape")
    if recipe.image is not None and _wants_images(ck.net):
        return (1, *recipe.image)
    return (1, recipe.features)


def _show(dims):
    return "(" + ", ".join(str(d) for d in dims) + ")"
