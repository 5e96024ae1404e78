"""The PyTorch peer: the same workload in plain PyTorch, the reference xpnet is measured against.

This module is plain PyTorch by design: it is the reference, not xpnet code, so it uses
``torch.nn``, autograd and ``torch.optim`` exactly as a PyTorch user would. torch is imported
lazily (``importlib``), only in the worker processes that run the peer.

Training step::

    opt.zero_grad(); loss = F.cross_entropy(net(x), y); loss.backward(); opt.step()

(``F.mse_loss`` against the target for a layer workload, on a recurrent layer's output
sequence), with ``torch.optim.SGD(lr=0.01, momentum=0.9)``. Inference: ``net.eval()`` once, then
``net(x)`` inside ``torch.inference_mode()`` (PyTorch's fastest forward-only mode). The
net starts from the same weights as the xpnet side (loaded through the state dict) and sees
the same data. On a GPU, TF32 is turned off so that the peer computes in float32, as xpnet does.
"""

from __future__ import annotations

import importlib

from .memory import device_tracker
from .workloads import LR, MOMENTUM, cycling, output_of


def build_peer(workload, torch):
    """The workload's net as ``torch.nn.Sequential`` (same layer order, so the same state-dict names)."""
    nn = torch.nn

    def make(spec):
        kind, *a = spec
        if kind == "linear":
            return nn.Linear(a[0], a[1])
        if kind == "conv":
            return nn.Conv2d(a[0], a[1], a[2], padding=a[3])
        if kind == "relu":
            return nn.ReLU()
        if kind == "maxpool":
            return nn.MaxPool2d(a[0])
        if kind == "flatten":
            return nn.Flatten()
        if kind == "conv1d":
            return nn.Conv1d(a[0], a[1], a[2], padding=a[3])
        if kind == "convt2d":
            return nn.ConvTranspose2d(a[0], a[1], a[2], stride=a[3], padding=a[4])
        if kind in ("gru", "lstm"):
            return (nn.GRU if kind == "gru" else nn.LSTM)(a[0], a[1], batch_first=True)
        if kind == "encoder":
            return nn.TransformerEncoderLayer(a[0], a[1], a[2], a[3], batch_first=True)
        raise ValueError(f"unknown layer spec {spec!r}")

    return nn.Sequential(*(make(s) for s in workload.layers))


class PeerSide:
    """Plain PyTorch on ``device`` (``"cpu"`` or ``"cuda"``)."""

    side = "pytorch"

    def __init__(self, device: str):
        self.torch = torch = importlib.import_module("torch")  # the reference library, by design
        self.device = dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            self.device = dev = torch.device("cuda", torch.cuda.current_device())
        self.backend = f"torch:{dev}"
        self.gpu = dev.type == "cuda"
        if self.gpu:
            # float32 on both sides: PyTorch lets cuDNN convolutions use TF32 by default (its matmuls
            # already default to full float32, as CuPy's and xpnet's do); a TF32 peer would not be
            # computing the same thing
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            def sync():
                torch.cuda.synchronize(dev)
        else:
            def sync():
                pass
        self.sync = sync
        self.memory = device_tracker("torch:cuda" if self.gpu else "cpu", dev)

    def describe(self) -> str:
        t = self.torch
        if self.gpu:
            return f"torch {t.__version__} on {self.device} ({t.cuda.get_device_name(self.device)})"
        return f"torch {t.__version__} on cpu ({t.get_num_threads()} threads)"

    def to_device(self, host):
        """``host`` (a numpy array) as a tensor on this side's device."""
        return self.torch.as_tensor(host).to(self.device)

    def make_step(self, workload, mode: str, init: dict, pool):
        """As :meth:`xpnet.bench.xpnet_side.XpnetSide.make_step`, in plain PyTorch."""
        torch = self.torch
        F = torch.nn.functional
        net = build_peer(workload, torch)
        net.load_state_dict({k: torch.as_tensor(v) for k, v in init.items()})
        net.to(self.device)
        data = [(self.to_device(x), self.to_device(y)) for x, y in pool]
        if mode == "train":
            opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)

            loss_fn = F.mse_loss if workload.loss == "mse" else F.cross_entropy

            def run(x, y):
                opt.zero_grad()
                loss = loss_fn(output_of(net(x)), y)
                loss.backward()
                opt.step()
                return loss

            def read(v):
                return float(v.item())
        else:
            net.eval()

            def run(x, y):
                with torch.inference_mode():
                    return output_of(net(x))

            def read(v):
                return float(v.double().square().sum().item())

        checks = [read(run(*data[i])) for i in range(2)]
        return cycling(run, data), checks
