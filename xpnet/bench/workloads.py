"""The nets the benchmark times, their data, and the families the scaling curves sweep.

A workload's architecture is a tuple of layer specs, read by both builders (xpnet here,
plain PyTorch in :mod:`xpnet.bench.peer`), so the two sides are the same net by
construction, with the same state-dict names (``0.weight``, ``3.bias``...):

- ``("linear", in, out)``, ``("relu",)``, ``("flatten",)``,
- ``("conv", in_channels, out_channels, kernel, padding)`` (stride 1),
- ``("maxpool", kernel)`` (stride = kernel).

Every net ends in ``classes`` logits and trains with softmax cross-entropy and SGD (lr 0.01,
momentum 0.9). Workloads travel to worker processes as plain dicts (:meth:`Workload.to_json`).
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

    def to_json(self) -> dict:
        return {"key": self.key, "title": self.title, "layers": [list(s) for s in self.layers],
                "sample_shape": list(self.sample_shape), "classes": self.classes, "batch": self.batch}

    @classmethod
    def from_json(cls, d) -> "Workload":
        return cls(d["key"], d["title"], tuple(tuple(s) for s in d["layers"]), tuple(d["sample_shape"]),
                   int(d["classes"]), int(d["batch"]))


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

WORKLOADS = {
    "mlp": mlp("mlp", (784, 512, 256, 10), 256),
    "cnn": Workload("cnn", "CNN c32-p-c64-p-fc 1x28x28", CNN_LAYERS, (1, 28, 28), 10, 64),
    # two 4096-wide hidden layers: the 4096x4096 product is 84% of the FLOPs, so the step is GEMM-bound
    "wide": mlp("wide", (784, 4096, 4096, 10), 256, "wide MLP 784-4096-4096-10"),
    # 370 parameters: the step is all per-call overhead (dispatch, allocation, bookkeeping)
    "tiny": mlp("tiny", (2, 16, 2), 32, "tiny MLP 2-16-2"),
}

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
        raise ValueError(f"unknown layer spec {spec!r}")

    return xn.Sequential(*(make(s) for s in workload.layers))


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
    int64 labels uniform in ``[0, classes)``. The same seed gives the same data on every side."""
    xp, gen = _host_generator(seed)
    out = []
    for _ in range(pool):
        x = gen.normal((batch, *workload.sample_shape), dtype=xp.float32)
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
