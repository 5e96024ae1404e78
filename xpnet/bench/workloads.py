"""The nets the benchmark times, their data, and the families the scaling curves sweep.

A workload's architecture is a tuple of layer specs, read by both builders (xpnet here,
plain PyTorch in :mod:`xpnet.bench.peer`), so the two sides are the same net by
construction, with the same state-dict names (``0.weight``, ``3.bias``...):

- ``("linear", in, out)``, ``("relu",)``, ``("flatten",)``,
- ``("conv", in_channels, out_channels, kernel, padding)`` (stride 1),
- ``("maxpool", kernel)`` (stride = kernel),
- ``("conv1d", in_channels, out_channels, kernel, padding)`` (stride 1),
- ``("convt2d", in_channels, out_channels, kernel, stride, padding)`` (ConvTranspose2d),
- ``("gru", input_size, hidden_size)``, ``("lstm", input_size, hidden_size)``: one layer,
  ``batch_first``; the net's output is the output sequence (``h_n`` is not used),
- ``("encoder", d_model, nhead, dim_feedforward, dropout)``: ``TransformerEncoderLayer``,
  ``batch_first``, ReLU, post-norm (torch's defaults).

A classifier (``loss="ce"``) ends in ``classes`` logits and trains with softmax cross-entropy;
a layer workload (``loss="mse"``: issue 11's convolutions, issue 12's sequence layers) trains
its output against an N(0, 1) target of shape ``(batch, *out_shape)`` with ``MSELoss``. Both
with SGD (lr 0.01, momentum 0.9). Workloads travel to worker processes as plain dicts
(:meth:`Workload.to_json`).
"""

from __future__ import annotations

import dataclasses

#: SGD hyperparameters of every training step, on both sides
LR, MOMENTUM = 0.01, 0.9
#: distinct random batches per row, cycled: no row trains on one batch thousands of times
POOL = 4


@dataclasses.dataclass(frozen=True)
class Workload:
    """One net: ``layers`` (specs, see the module docstring) on samples of ``sample_shape``."""

    key: str
    title: str
    layers: tuple
    sample_shape: tuple
    classes: int
    batch: int  # the batch of the main table's rows
    loss: str = "ce"  # "ce": class labels, cross-entropy; "mse": N(0, 1) targets of out_shape
    out_shape: tuple = ()  # one sample's output (the "mse" target)

    def to_json(self) -> dict:
        return {"key": self.key, "title": self.title, "layers": [list(s) for s in self.layers],
                "sample_shape": list(self.sample_shape), "classes": self.classes, "batch": self.batch,
                "loss": self.loss, "out_shape": list(self.out_shape)}

    @classmethod
    def from_json(cls, d) -> "Workload":
        return cls(d["key"], d["title"], tuple(tuple(s) for s in d["layers"]), tuple(d["sample_shape"]),
                   int(d["classes"]), int(d["batch"]), d.get("loss", "ce"), tuple(d.get("out_shape", ())))


def mlp_layers(sizes) -> tuple:
    """``Linear(sizes[0], sizes[1]) - ReLU - ... - Linear(sizes[-2], sizes[-1])``."""
    specs = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            specs.append(("relu",))
        specs.append(("linear", a, b))
    return tuple(specs)


def mlp(key, sizes, batch, title=None) -> Workload:
    """A ReLU MLP on flat samples of ``sizes[0]`` features."""
    return Workload(key, title or "MLP " + "-".join(map(str, sizes)), mlp_layers(sizes), (sizes[0],), sizes[-1], batch)


#: conv-pool-conv-pool-linear on 1x28x28 (MNIST-sized): the im2col GEMMs dominate, plus pooling's memory traffic
CNN_LAYERS = (
    ("conv", 1, 32, 3, 1), ("relu",), ("maxpool", 2),
    ("conv", 32, 64, 3, 1), ("relu",), ("maxpool", 2),
    ("flatten",), ("linear", 64 * 7 * 7, 10),
)

def layer(key, title, spec, sample_shape, out_shape, batch) -> Workload:
    """One layer's training step (``spec``), its output trained against an N(0, 1) target."""
    return Workload(key, title, (spec,), tuple(sample_shape), 0, batch, "mse", tuple(out_shape))


def recurrent(kind, hidden, batch=64, steps=40) -> Workload:
    """A one-layer GRU or LSTM over ``steps`` time steps, input size = hidden size (issue 12)."""
    return layer(f"{kind}{hidden}", f"{kind.upper()} {hidden}->{hidden} T={steps}", (kind, hidden, hidden),
                 (steps, hidden), (steps, hidden), batch)


WORKLOADS = {
    "mlp": mlp("mlp", (784, 512, 256, 10), 256),
    "cnn": Workload("cnn", "CNN c32-p-c64-p-fc 1x28x28", CNN_LAYERS, (1, 28, 28), 10, 64),
    # two 4096-wide hidden layers: the 4096x4096 product is 84% of the FLOPs, so the step is GEMM-bound
    "wide": mlp("wide", (784, 4096, 4096, 10), 256, "wide MLP 784-4096-4096-10"),
    # 370 parameters: the step is all per-call overhead (dispatch, allocation, bookkeeping)
    "tiny": mlp("tiny", (2, 16, 2), 32, "tiny MLP 2-16-2"),
    # issue 11's convolutions (the shapes of benchmarks/layer_steps.py)
    "conv1d": layer("conv1d", "Conv1d 64->64 k5 L=256", ("conv1d", 64, 64, 5, 0), (64, 256), (64, 252), 64),
    "convt2d": layer("convt2d", "ConvTranspose2d 64->32 k4 s2 16->32", ("convt2d", 64, 32, 4, 2, 1),
                     (64, 16, 16), (32, 32, 32), 32),
    # issue 12's sequence layers: batch 64, 40 steps; a small and a large hidden size
    "gru32": recurrent("gru", 32),
    "gru256": recurrent("gru", 256),
    "lstm32": recurrent("lstm", 32),
    "lstm256": recurrent("lstm", 256),
    # dropout 0: both sides then compute the same function (their dropout masks could not agree)
    "encoder": layer("encoder", "TransformerEncoderLayer d128 h4 ff512 T=64", ("encoder", 128, 4, 512, 0.0),
                     (64, 128), (64, 128), 32),
}
#: what a run times unless told otherwise: the classifiers (the layer workloads are chosen by name)
DEFAULT_WORKLOADS = ("mlp", "cnn", "wide", "tiny")

MODES = ("train", "infer")


def width_workload(width: int, batch: int) -> Workload:
    """The width sweep's net: ``784-W-W-10`` (``W = 4096`` is the ``wide`` workload)."""
    return mlp(f"width{width}", (784, width, width, 10), batch, f"MLP 784-{width}-{width}-10")


# -- building ------------------------------------------------------------------------------
def build_xpnet(workload: Workload, backend=None):
    """The workload's net as an ``xpnet.Sequential`` on ``backend`` (default: the current one)."""
    import xpnet as xn

    def make(spec):
        kind, *a = spec
        if kind == "linear":
            return xn.Linear(a[0], a[1], backend=backend)
        if kind == "conv":
            return xn.Conv2d(a[0], a[1], a[2], padding=a[3], backend=backend)
        if kind == "relu":
            return xn.ReLU()
        if kind == "maxpool":
            return xn.MaxPool2d(a[0])
        if kind == "flatten":
            return xn.Flatten()
        if kind == "conv1d":
            return xn.Conv1d(a[0], a[1], a[2], padding=a[3], backend=backend)
        if kind == "convt2d":
            return xn.ConvTranspose2d(a[0], a[1], a[2], stride=a[3], padding=a[4], backend=backend)
        if kind in ("gru", "lstm"):
            return (xn.GRU if kind == "gru" else xn.LSTM)(a[0], a[1], batch_first=True, backend=backend)
        if kind == "encoder":
            return xn.TransformerEncoderLayer(a[0], a[1], a[2], a[3], batch_first=True, backend=backend)
        raise ValueError(f"unknown layer spec {spec!r}")

    return xn.Sequential(*(make(s) for s in workload.layers))


def output_of(out):
    """A net's output for the loss: a recurrent layer's output sequence, without its state."""
    return out[0] if isinstance(out, tuple) else out


def init_state(workload: Workload, seed: int) -> dict:
    """The initial weights every side starts from: xpnet's numpy initialisation with ``seed``,
    as ``{name: host numpy array}`` (PyTorch's default initialisation, drawn by xpnet)."""
    from xpnet import backends

    be = backends.get("numpy")
    keep = be.rng.get_state()  # leave the shared generator as it was
    be.manual_seed(seed)
    try:
        return dict(build_xpnet(workload, be).state_dict())
    finally:
        be.rng.set_state(keep)


def _host_generator(seed: int):
    """A private numpy-backend generator: the data do not depend on what ran before."""
    from xpnet import backends

    be = backends.get("numpy")
    return be.xp, type(be.rng)(be, seed)


def host_normal(shape, seed: int):
    """A float32 host numpy array of N(0, 1) samples."""
    xp, gen = _host_generator(seed)
    return gen.normal(tuple(shape), dtype=xp.float32)


def host_batches(workload: Workload, batch: int, seed: int, pool: int = POOL):
    """``pool`` pairs ``(x, y)`` of host numpy arrays: ``x`` float32 N(0, 1) of shape
    ``(batch, *sample_shape)`` (never zeros: a zero input makes some kernels skip work), ``y``
    int64 labels uniform in ``[0, classes)`` (an "mse" workload: float32 N(0, 1) targets of
    shape ``(batch, *out_shape)``). The same seed gives the same data on every side."""
    xp, gen = _host_generator(seed)
    out = []
    for _ in range(pool):
        x = gen.normal((batch, *workload.sample_shape), dtype=xp.float32)
        if workload.loss == "mse":
            y = gen.normal((batch, *workload.out_shape), dtype=xp.float32)
        else:
            u = gen.uniform((batch,), dtype=xp.float64)  # float64: u * classes never rounds up to classes
            y = xp.astype(xp.minimum(xp.floor(u * workload.classes), workload.classes - 1), xp.int64)
        out.append((x, y))
    return out


def cycling(run, data):
    """A no-argument step that calls ``run(x, y)`` on the next pair of ``data`` each time.

    The step returns nothing and reads nothing back, so on a GPU it stays asynchronous
    (the timer's synchronize is the only wait)."""
    i = [0]
    n = len(data)

    def step():
        k = i[0] = (i[0] + 1) % n
        run(*data[k])

    return step
