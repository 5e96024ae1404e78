"""The xpnet side of a comparison: a workload on one xpnet backend, timed as a user would run it.

Training step (the idiomatic loop)::

    opt.zero_grad(); loss = loss_fn(net(x), y); net.backward(loss_fn.backward(), input_grad=False); opt.step()

with ``CrossEntropyLoss`` (``MSELoss`` against the target for a layer workload, on a recurrent
layer's output sequence) and ``SGD(lr=0.01, momentum=0.9)``. Inference: ``net.eval()`` once,
then ``net(x)``. Neither reads anything back to the host inside the timed step.
"""

from __future__ import annotations

from .memory import device_tracker
from .workloads import LR, MOMENTUM, build_xpnet, cycling, output_of


class XpnetSide:
    """xpnet on backend ``spec`` (``"numpy"``, ``"torch"``, ``"torch:cuda"``, ``"cupy"``)."""

    side = "xpnet"

    def __init__(self, spec: str):
        from xpnet import backends

        self._backends = backends
        self.be = be = backends.get(spec)
        self.backend = be.label
        if be.name == "cupy":
            kind = "cupy"
        elif be.name == "torch" and be.device.type == "cuda":
            kind = "torch:cuda"
        else:
            kind = "cpu"
        self.gpu = kind != "cpu"
        self.sync = be.synchronize
        self.memory = device_tracker(kind, be.device)

    def describe(self) -> str:
        return self.be.describe()

    def to_device(self, host):
        """``host`` (a numpy array) as an array of this backend on its device."""
        return self.be.asarray(host)

    def make_step(self, workload, mode: str, init: dict, pool):
        """``(step, checks)``: a step cycling over ``pool`` (host ``(x, y)`` pairs, moved to the
        device here, before any timing) and the first two results (losses when training, sums
        of squared outputs for inference), to check that both sides compute the same thing."""
        import xpnet as xn

        be = self.be
        net = build_xpnet(workload, be)
        net.load_state_dict(init)
        data = [(be.asarray(x), be.asarray(y)) for x, y in pool]
        xp = be.xp
        if mode == "train":
            loss_fn = xn.MSELoss() if workload.loss == "mse" else xn.CrossEntropyLoss()
            opt = xn.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)

            def run(x, y):
                opt.zero_grad()
                loss = loss_fn(output_of(net(x)), y)
                net.backward(loss_fn.backward(), input_grad=False)
                opt.step()
                return loss

            def read(v):
                return float(self._backends.to_numpy(v))
        else:
            net.eval()

            def run(x, y):
                with xn.no_grad():  # inference: nothing kept for a backward
                    return output_of(net(x))

            def read(v):
                v = xp.astype(v, be.dtype("float64"))
                return float(xp.sum(v * v))  # a 0-d array or scalar of any backend; outside the timing

        checks = [read(run(*data[i])) for i in range(2)]
        return cycling(run, data), checks
