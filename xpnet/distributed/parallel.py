"""Data parallelism: every rank holds the whole net and trains on its share of each global batch.

:class:`DataParallel` is what ``fit(..., distributed=...)`` runs on (a hand loop can too):

- :meth:`~DataParallel.start`: parameters and buffers broadcast from rank 0 (one flat call per
  dtype), and rank 0's seed, which orders the epochs' shuffles and the dropout streams;
- :meth:`~DataParallel.reduce_gradients`, after the backward of each optimizer step: the
  gradients summed over the ranks in flat buckets of at most ``bucket_bytes`` (torch DDP's
  25 MiB), the last layers' first, one engine call per bucket. Each rank scaled its loss
  gradient by its share of the global batch (``n_rank / n_batch``), so the sum is the gradient
  of the global batch's mean loss: what one process computes on the whole batch, even for an
  uneven last batch. The batches' weighted local losses ride in the last bucket, so every
  rank gets the global batch losses (for the NaN guard) at no extra call;
- :meth:`~DataParallel.begin_epoch`: ranks above 0 reseed their generator from
  ``(seed, rank, epoch)``, so dropout masks differ between ranks (rank 0 keeps the stream a
  single process would have), and a run resumed at an epoch boundary draws what it would have;
- :meth:`~DataParallel.average_buffers` and :meth:`~DataParallel.end_epoch`: the floating
  buffers (BatchNorm's running statistics, which each rank updates from its own share)
  averaged over the ranks, and the epoch's figures (:class:`~xpnet.nets.evaluate.Tally`: loss, accuracy, metrics) summed, so that every
  rank logs, checks and checkpoints the same numbers.

Parameters stay bit-identical across ranks: each rank applies the same optimizer step to the
same summed gradients. A trainable parameter that got no gradient gets a zero one (its rank
sends zeros), as it must for the sum.
"""

from __future__ import annotations

import hashlib
import math

from .. import backends
from ..backends import _buffers
from .base import Communicator

#: gradient bucket size (bytes), as torch's DistributedDataParallel
BUCKET_BYTES = 25 * 2**20
_ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


class DataParallel:
    """``net`` and its ``optimizer`` trained data-parallel over ``comm`` (a Communicator).
    ``bucket_bytes``: the most gradient bytes one all-reduce carries."""

    def __init__(self, net, optimizer, comm, bucket_bytes=BUCKET_BYTES):
        if not isinstance(comm, Communicator):
            raise TypeError(f"DataParallel: comm must be an xpnet.distributed Communicator, got {type(comm).__name__}")
        if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int) or bucket_bytes < 1:
            raise ValueError(f"DataParallel: bucket_bytes must be a positive int, got {bucket_bytes!r}")
        self.net, self.optimizer, self.comm = net, optimizer, comm
        self.rank, self.size = comm.rank, comm.size
        trained = [p for p in net.parameters() if p.requires_grad]
        self.buckets = buckets(trained, bucket_bytes)
        self.seed = 0
        self.backend = self.loader = None

    # -- start ----------------------------------------------------------------------------------
    def start(self, backend):
        """Rank 0's parameters, buffers and seed on every rank (the seed: that of ``backend``'s
        generator, set by ``manual_seed``)."""
        self.backend = be = backends.get(backend)
        self.seed = int(self.comm.broadcast_object(int(getattr(be.rng, "seed", 0))))
        if self.size == 1:
            return
        params, bufs = _entries(self.net)
        new = self.comm.broadcast([p.data for p in params] + [getattr(o, a) for o, a in bufs], 0)
        for p, v in zip(params, new):
            p.data = v
        for (o, a), v in zip(bufs, new[len(params):]):
            setattr(o, a, v)

    def shard(self, loader):
        """This rank's :class:`~xpnet.data.loader.ShardedLoader` of the DataLoader ``loader``
        (call :meth:`start` first: the shuffles use rank 0's seed)."""
        from ..data.loader import ShardedLoader

        self.loader = ShardedLoader(loader, self.rank, self.size, self.seed)
        return self.loader

    def begin_epoch(self, epoch: int):
        """Before epoch ``epoch`` (0-based): the loader's permutation, and the dropout stream of
        ranks above 0."""
        if self.loader is not None:
            self.loader.set_epoch(epoch)
        if self.rank > 0 and self.backend is not None:
            self.backend.rng.manual_seed(rank_seed(self.seed, self.rank, epoch))

    def share(self, i, xb) -> float:
        """This rank's fraction of global batch ``i`` (1-based), whose local part is ``xb``."""
        return int(xb.shape[0]) / self.loader.global_size(i)

    def weighted(self, value, share):
        """``value * share`` as a 0-d array (numpy makes a scalar of it)."""
        return value if share == 1.0 else self.backend.xp.asarray(value * share)

    def zero_loss(self):
        """A 0-d zero, what a rank with no sample in a batch contributes to its loss."""
        be = self.backend
        dtype = self.buckets[-1][-1].data.dtype if self.buckets else be.dtype("float32")
        return be.xp.zeros((), dtype=dtype, device=be.device)

    def evaluate(self, loss, loader, metrics=()):
        """:func:`~xpnet.nets.evaluate.evaluate` of the net on ``loader``'s data, each rank taking
        a contiguous ``1/size`` of the samples, the figures summed over the ranks: every rank
        gets what one process computes on the whole data (up to the order of the sums)."""
        from ..data.loader import DataLoader
        from ..nets.evaluate import Tally, eval_mode

        n = loader.dataset_size
        lo, hi = n * self.rank // self.size, n * (self.rank + 1) // self.size
        part = DataLoader(loader.X[lo:hi, ...], loader.y[lo:hi, ...], batch_size=loader.batch_size,
                          backend=loader.backend)
        tally = Tally(loss, loader.backend.xp, metrics)
        with eval_mode(self.net):
            for xb, yb in part:
                out = self.net(xb)
                tally.add(loss(out, yb), out, yb)
        merge_tally(self.comm, tally)
        return tally.result()

    # -- the step -----------------------------------------------------------------------------
    def reduce_gradients(self, losses=()):
        """Sum every trainable gradient over the ranks (rebound, bucket by bucket) and return the
        ranks' sums of ``losses`` (0-d arrays: each batch's local loss times its share)."""
        losses = list(losses)
        if self.size == 1:
            return losses
        n_buckets = len(self.buckets)
        if n_buckets == 0:
            return self._extra(losses) if losses else []
        out = losses
        for j, bucket in enumerate(self.buckets):
            grads = [_grad(p) for p in bucket]
            tail = []
            if losses and j == n_buckets - 1:
                xp = backends.namespace_of(grads[0])
                tail = [xp.stack([xp.astype(v, grads[0].dtype) for v in losses])]
            summed = self.comm.allreduce(grads + tail)
            for p, g in zip(bucket, summed):
                p.grad = g
            if tail:
                out = [summed[-1][i, ...] for i in range(len(losses))]
        return out

    def _extra(self, losses):
        xp = backends.namespace_of(losses[0])
        (summed,) = self.comm.allreduce([xp.stack(losses)])
        return [summed[i, ...] for i in range(len(losses))]

    # -- the epoch's end ----------------------------------------------------------------------------
    def end_epoch(self, tally, seconds):
        """Sum ``tally``'s figures over the ranks (in place); returns the ranks' mean ``seconds``.
        (Call :meth:`average_buffers` first, before the epoch's last guard check.)"""
        return merge_tally(self.comm, tally, seconds)

    def average_buffers(self):
        """Each floating buffer (running statistics) replaced by its mean over the ranks."""
        _, bufs = _entries(self.net)
        floating = [(o, a) for o, a in bufs if backends.backend_of(getattr(o, a)).is_float(getattr(o, a).dtype)]
        if not floating or self.size == 1:
            return
        summed = self.comm.allreduce([getattr(o, a) for o, a in floating])
        for (o, a), s in zip(floating, summed):
            setattr(o, a, s / self.size)

    def parameters_agree(self, buffers=True) -> bool:
        """See :func:`parameters_agree`."""
        return parameters_agree(self.net, self.comm, buffers)


def buckets(params, bucket_bytes=BUCKET_BYTES):
    """``params`` in reverse order (the last layers' gradients are ready first), cut into
    lists of one dtype holding at most ``bucket_bytes`` each (a larger parameter alone)."""
    out, current, size, kind = [], [], 0, None
    for p in reversed(list(params)):
        be = backends.backend_of(p.data)
        name = be.dtype_name(p.data.dtype)
        nbytes = math.prod(p.shape) * _ITEMSIZE.get(name, 8)
        if current and (name != kind or size + nbytes > bucket_bytes):
            out.append(current)
            current, size = [], 0
        current.append(p)
        size += nbytes
        kind = name
    if current:
        out.append(current)
    return out


def _grad(p):
    if p.grad is not None:
        return p.grad
    be = backends.backend_of(p.data)
    return be.xp.zeros(p.shape, dtype=p.data.dtype, device=be.device)


def _entries(net):
    """The net's parameters (each once) and buffers (each ``(owner, attribute)`` once)."""
    params, seen, bufs, seen_b = [], set(), [], set()
    for _, owner, attr, is_param in net.state_entries():
        if is_param:
            p = getattr(owner, attr)
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
        elif (id(owner), attr) not in seen_b:
            seen_b.add((id(owner), attr))
            bufs.append((owner, attr))
    return params, bufs


def rank_seed(seed: int, rank: int, epoch: int) -> int:
    """The generator seed of rank ``rank`` (> 0) in epoch ``epoch``: a hash of the three, in [0, 2**63)."""
    digest = hashlib.sha256(f"xpnet:{int(seed)}:{int(rank)}:{int(epoch)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def parameters_agree(net, comm, buffers=True) -> bool:
    """True when every rank of ``comm`` holds bit-identical parameters (and, with ``buffers``,
    buffers: within an epoch each rank's running statistics follow its own share). One digest
    per rank, gathered: a check for tests and debugging, not for every step of a real run."""
    params, bufs = _entries(net)
    mine = _buffers.digest([backends.to_numpy(p.data) for p in params]
                           + ([backends.to_numpy(getattr(o, a)) for o, a in bufs] if buffers else []))
    return len(set(comm.allgather_object(mine))) == 1


def merge_tally(comm, tally, seconds=0.0):
    """Sum a :class:`~xpnet.nets.evaluate.Tally`'s loss, hits, counts and metrics over the ranks,
    in place (one host read each, once an epoch); returns the ranks' mean of ``seconds``."""
    if comm.size == 1:
        return seconds
    loss = 0.0 if tally.loss_sum is None else float(tally.loss_sum)
    hits = 0 if tally.correct is None else int(tally.correct)
    loss, hits, n, n_acc, seconds = comm.allreduce_host([loss, hits, tally.n, tally.n_acc, seconds])
    tally.loss_sum, tally.n, tally.n_acc = loss, int(n), int(n_acc)
    if tally.kind is not None:
        tally.correct = int(round(hits))
    if tally.metrics:
        from .metrics import merge_metrics

        merge_metrics(comm, tally.metrics)
    return seconds / comm.size
