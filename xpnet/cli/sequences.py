"""``xpnet train --model gpt|lstm``: a tiny GPT (:class:`~xpnet.examples.gpt.GPT`) or an LSTM
language model (:class:`~xpnet.examples.seq_lstm.SeqLSTM`) trained on next-token prediction.

``--data`` is a generated task, ``sort``, ``reverse`` or ``addition`` (:mod:`xpnet.data.sequences`;
its held-out test problems are never trained on, and 10% of the training problems, drawn with
``--seed``, validate), or a UTF-8 text file, a character corpus (:mod:`xpnet.data.text`; its last
10% validates). The defaults per model and data: :mod:`xpnet.examples.seq_recipes`.

Per epoch: the loss and the accuracy, of training and validation: for a task, the exact-sequence
accuracy (a problem counts when every answer token is right; with teacher forcing, which equals
greedy decoding), for a corpus the next-character accuracy. At the end, for the last epoch's net
and ``best.xpnet`` (here the epoch of the lowest validation loss: a task's validation accuracy
reaches 100% early and stays there): a task's test loss and the exact-sequence
accuracy of greedy decoding from the test prompts; a corpus's validation loss, perplexity
(``exp(loss)``) and a sample generated from the start of the validation text. The run directory
holds ``last.xpnet``, ``best.xpnet``, ``history.json``, ``metrics.json`` and ``curves.png``, as
for the other models; ``--resume`` continues a run. Loading these checkpoints needs their
classes registered, which importing :mod:`xpnet.cli` (or :mod:`xpnet.examples.gpt`,
:mod:`xpnet.examples.seq_lstm`) does.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import time

from ..data.sequences import TASKS
from ..examples import gpt, seq_lstm  # registers GPT and SeqLSTM, so that their checkpoints load
from ..examples.seq_recipes import MODELS, RECIPES, TEXT, build
from ..examples.tokens import SequenceAccuracy, TokenCrossEntropyLoss
from . import RunFailure, UsageError, checks, describe, paths, report

#: what a corpus sample is: its prompt (the validation text's first characters), its length and
#: how it is drawn
SAMPLE_PROMPT, SAMPLE_LENGTH, SAMPLE_TEMPERATURE = 32, 300, 0.8


#: the model classes by --model name
MODEL_CLASSES = {"gpt": gpt.GPT, "lstm": seq_lstm.SeqLSTM}


def wanted(args) -> bool:
    """Whether this run is a sequence model's (a task asked of another model is refused)."""
    if args.model in MODELS:
        return True
    if args.data in TASKS:
        raise UsageError(f"--data {args.data}: a sequence task; train it with --model gpt or --model lstm")
    return False


def run(args, launch, chosen, ck) -> int:
    """``xpnet train`` for ``--model gpt|lstm``: ``chosen`` the --backend (or None), ``ck`` the
    --resume checkpoint (or None), both checked by the caller."""
    import xpnet as xn
    from xpnet import backends
    from xpnet.nets.evaluate import net_backend

    from . import train as T

    _refuse(args, launch)
    kind = args.data if args.data in TASKS else TEXT
    recipe = RECIPES[(args.model, kind)]
    if ck is None and args.epochs == 0:
        raise UsageError("--epochs 0: nothing to train; a new run needs --epochs 1 or more")
    args.epochs = recipe.epochs if args.epochs is None else args.epochs
    args.batch_size = args.batch_size or recipe.batch_size
    args.lr = args.lr or recipe.lr
    be = (chosen or T._backend(None)) if ck is None else net_backend(ck.net)
    out, where = T._out_dir(args, be)
    plots = () if args.no_plots else ("curves.png",)
    paths.check(where, out, paths.RUN_OUTPUTS + plots)
    backends.manual_seed(args.seed)
    be.set_threads(args.threads or recipe.threads or os.cpu_count() or 1)
    with backends.use(be):
        data = _data(args, kind, recipe, be)
        if ck is None:
            net = build(args.model, recipe, data.vocab_size, data.block_size, be, args.dtype)
            opt = T._optimizer(xn, args, net)
            loss = TokenCrossEntropyLoss()
            checks.round_trip(xn, be, net, opt, loss, f"--model {args.model}")
        else:
            net, opt, loss = _resumed(args, ck, data)
        steps = -(-int(data.train[0].shape[0]) // args.batch_size)
        callbacks = [_checkpoint(xn, cb, data) for cb in T._callbacks(xn, args, opt, out, steps, None)]
        paths.prepare(where, out)
        T._clear(args, out)
        _header(args, data, net, opt, be)
        t0 = time.perf_counter()
        try:
            history = xn.fit(net, loss, opt, data.train, epochs=args.epochs, batch_size=args.batch_size,
                             val=data.val, callbacks=callbacks, progress=not args.no_progress, resume=ck,
                             metrics=[SequenceAccuracy(exact=data.task is not None)])
            seconds = time.perf_counter() - t0
            models = _evaluate(xn, net, loss, data, out, history, callbacks, be, args.seed)
        except xn.TrainingDiverged as e:
            raise RunFailure(str(e)) from None
        except OSError as e:
            raise RunFailure(f"training stopped: a checkpoint could not be written: {describe(e)}") from None
        except MemoryError as e:
            raise RunFailure(f"training stopped: {describe(e)}") from None
    for line in _lines(data, models):
        print(line)
    print(f"{len(history.get('epoch', []))} epochs in {seconds:.1f} s; checkpoints in {out}/")
    try:
        _write(xn, out, args, data, history, models, seconds, be, plots)
    except (OSError, MemoryError) as e:
        raise RunFailure(f"trained, but the outputs could not be written: {describe(e)}") from None
    return 0


def _refuse(args, launch):
    """The options that do not apply to the sequence models, each a UsageError."""
    from .recipes import RECIPES as CLASSIFIER_DATA

    m = f"--model {args.model}"
    if launch is not None and launch.size > 1:
        raise UsageError(f"{m}: the sequence models train in one process; start xpnet train without a launcher")
    if args.data in CLASSIFIER_DATA:
        raise UsageError(f"{m} trains on a sequence task ({', '.join(TASKS)}) or a text file; --data {args.data} "
                         "is a classification data set (for --model mlp or cnn)")
    if args.label is not None:
        raise UsageError(f"--label {args.label}: names the label column of a --data CSV file; {m} trains on "
                         "a sequence task or a text file")
    if args.metrics is not None:
        raise UsageError(f"--metrics {args.metrics}: classifier figures; {m} reports the loss and the accuracy "
                         "(exact-sequence for a task, next-character for a text file)")
    if args.precision is not None:
        raise UsageError(f"--precision {args.precision}: mixed precision is not offered for {m}; drop --precision")


def _checkpoint(xn, cb, data):
    """``cb``, a callback of xpnet train's; its checkpoints also keep a corpus's vocabulary, and
    best.xpnet is the epoch of the lowest validation loss: the accuracy of these tasks reaches
    100% of the few validation problems early, and stays there while the loss still falls."""
    if not isinstance(cb, xn.ModelCheckpoint):
        return cb
    extra = {**cb.extra, "vocabulary": data.vocabulary}
    return xn.ModelCheckpoint(cb.path, monitor="val_loss" if cb.monitor else None, extra=extra)


class _Data:
    """The run's splits ``train``, ``val``, ``test`` (``(X, Y)`` token pairs; ``test`` None for a
    corpus), ``task`` or ``corpus`` (the other None), ``vocabulary`` (a corpus's characters, or
    None), ``vocab_size``, ``block_size`` and ``label`` (how messages name the data)."""

    def __init__(self, train, val, test, task, corpus, label):
        self.train, self.val, self.test, self.task, self.corpus, self.label = train, val, test, task, corpus, label
        src = task if task is not None else corpus
        self.vocab_size, self.block_size = src.vocab_size, src.block_size
        self.vocabulary = None if corpus is None else "".join(corpus.chars)


def _data(args, kind, recipe, be):
    from .. import data
    from .recipes import _split_val

    if kind != TEXT:
        try:
            task = recipe.task(args.seed, be)
        except ValueError as e:
            raise UsageError(f"--data {args.data}: {e}") from None
        train, val = _split_val(*task.train, be, args.seed)
        return _Data(train, val, task.test, task, None, args.data)
    option = "--data" if args.resume is None else f"--resume {args.resume}: its --data"
    checks.regular_file(option, args.data)
    try:
        corpus = data.load_text(args.data, recipe.task_args["block_size"], backend=be)
    except ValueError as e:
        raise UsageError(f"{option} {args.data}: {str(e).replace(f'load_text: {args.data}: ', '')}") from None
    except OSError as e:  # its message names the file
        raise UsageError(f"{option} {describe(e)}") from None
    args.data = str(pathlib.Path(args.data).resolve())  # saved absolute: a resume finds it from anywhere
    return _Data(corpus.windows("train"), corpus.windows("val"), None, None, corpus, pathlib.Path(args.data).name)


def _resumed(args, ck, data):
    """The net, optimizer and loss of the --resume checkpoint, checked against the data."""
    net, opt = ck.net, ck.optimizer
    if opt is None:
        raise UsageError(f"--resume {args.resume}: the checkpoint holds no optimizer state to resume from")
    if ck.epoch > args.epochs:
        raise UsageError(f"--resume {args.resume}: the checkpoint is at epoch {ck.epoch}, past --epochs {args.epochs}")
    if not isinstance(net, MODEL_CLASSES[args.model]):
        raise UsageError(f"--resume {args.resume}: its saved --model is {args.model}, but it holds a "
                         f"{type(net).__name__}")
    saved = ck.extra.get("vocabulary") if isinstance(ck.extra, dict) else None
    if getattr(net, "vocab_size", None) != data.vocab_size or saved != data.vocabulary:
        raise UsageError(f"--resume {args.resume}: the checkpoint's model has another vocabulary than --data "
                         f"{data.label} ({getattr(net, 'vocab_size', '?')} tokens, the data {data.vocab_size}): "
                         "the data changed since it was trained")
    loss = ck.loss if isinstance(ck.loss, TokenCrossEntropyLoss) else TokenCrossEntropyLoss()
    return net, opt, loss


def _header(args, data, net, opt, be):
    n = [int(s[0].shape[0]) for s in (data.train, data.val)]
    if data.task is not None:
        t = data.task
        what = (f"{n[0]} train, {n[1]} validation, {int(data.test[0].shape[0])} test problems: prompts of "
                f"{t.prompt_length} tokens, answers of {t.answer_length}, vocabulary {t.vocab_size}")
    else:
        what = (f"{n[0]:,} train and {n[1]:,} validation windows of {data.block_size} characters, "
                f"vocabulary {data.vocab_size}")
    print(f"xpnet train: {data.label} ({what}) on {be.describe()}, {args.dtype}")
    params = sum(math.prod(p.shape) for p in net.parameters())
    print(f"model: {net._tag()}, {params:,} parameters; {opt!r}")


def _evaluate(xn, net, loss, data, out, history, callbacks, be, seed):
    """``[{"role", "epoch", "label", "result"}, ...]`` for the last epoch's net and best.xpnet."""
    epochs = history.get("epoch") or [0]
    stopped = any(isinstance(cb, xn.EarlyStopping) and cb.stopped_epoch is not None for cb in callbacks)
    models = [{"role": "last", "epoch": epochs[-1], "label": report.model_label("last", epochs[-1], stopped=stopped),
               "result": _figures(xn, net, loss, data, seed)}]
    best_path = out / "best.xpnet"
    if best_path.is_file():
        best = xn.load(best_path, backend=be)
        result = models[0]["result"] if best.epoch == epochs[-1] else _figures(xn, best.net, loss, data, seed)
        models.append({"role": "best", "epoch": best.epoch, "label": report.model_label("best", best.epoch, history),
                       "result": result})
    return models


def _figures(xn, net, loss, data, seed):
    """A task's test ``{"accuracy": exact-sequence accuracy of greedy decoding, "loss"}``; a
    corpus's validation ``{"loss", "perplexity", "accuracy": next character, "sample"}``."""
    from xpnet import backends

    if data.task is not None:
        t = data.task
        result = xn.evaluate(net, loss, data.test)
        return {"accuracy": t.check(net.generate(t.prompts("test"), t.answer_length)), "loss": result["loss"]}
    result = xn.evaluate(net, loss, data.val, metrics=[SequenceAccuracy(exact=False)])
    corpus = data.corpus
    xp = backends.namespace_of(corpus.val)
    prompt = xp.reshape(corpus.val[: min(SAMPLE_PROMPT, data.block_size)], (1, -1))
    sample = net.generate(prompt, SAMPLE_LENGTH, temperature=SAMPLE_TEMPERATURE, do_sample=True, seed=seed)
    return {"loss": result["loss"], "perplexity": math.exp(min(result["loss"], 700.0)),
            "accuracy": result["accuracy"], "sample": corpus.decode(sample[0, :])}


def _lines(data, models):
    """The lines that report the final figures."""
    if data.task is not None:
        lines = report.lines([(m["label"], m["result"]) for m in models])
        return [lines[0].replace("test accuracy:", "test exact-sequence accuracy (greedy decoding):", 1)] + lines[1:]
    out = ["validation loss: " + "; ".join(
        f"{m['label']} {r['loss']:.4g} (perplexity {r['perplexity']:.4g}, next-character accuracy {r['accuracy']:.2%})"
        for m in models for r in [m["result"]])]
    last = models[0]["result"]
    out.append(f"sample of the {models[0]['label']} (temperature {SAMPLE_TEMPERATURE}, from the validation "
               f"text's first {min(SAMPLE_PROMPT, data.block_size)} characters):")
    out.append(last["sample"])
    return out


def _write(xn, out, args, data, history, models, seconds, be, plots):
    from xpnet.io.atomic import atomic_write

    split = "test" if data.task is not None else "val"
    last = models[0]
    doc = {f"{split}_{k}": v for k, v in last["result"].items()}
    doc.update({"last_epoch": last["epoch"], "model_last": last["label"]})
    if len(models) > 1:
        best = models[1]
        doc.update({"best_epoch": best["epoch"], "model_best": best["label"]})
        doc.update({f"best_{split}_{k}": v for k, v in best["result"].items()})
    if data.task is not None:
        doc["test_samples"] = int(data.test[0].shape[0])
        doc["accuracy"] = "exact-sequence accuracy of greedy decoding"
    doc.update({"seconds": seconds, "epochs": len(history.get("epoch", [])), "backend": be.label, "data": args.data,
                "model": args.model})
    for name, content in (("history.json", history), ("metrics.json", doc)):
        with atomic_write(out / name, "w") as f:
            f.write(json.dumps(content, indent=1))
    if plots and history.get("epoch"):
        try:
            xn.plot.curves(history, out / "curves.png", title=f"{args.model} on {data.label}")
        except ImportError as e:
            print(f"xpnet train: no plots: {e}", file=sys.stderr)
