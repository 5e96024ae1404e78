"""Every mistake a user can make on the ``xpnet`` command line is one line on stderr, never a traceback.

Each case runs the command in a subprocess and checks its exit status (2: usage, 1: a run
that failed once under way), that stderr is exactly one line without "Traceback", and that the
line names the problem. Usage errors must be found before training starts: those cases also
check that no epoch ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import resource
import signal
import sys

import numpy as np
import pytest

from xpnet.cli import paths
from xpnet.cli import UsageError, one_line
from xpnet.io import read_safetensors, write_safetensors

from .test_cli import ROOT, xpnet

QUICK = ("--epochs", "1", "--no-plots")


def error_line(out, status, *needles):
    """The single stderr line of a failed command, after checking its status and needles."""
    assert out.returncode == status, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr[-3000:]
    line = lines[0]
    assert line.startswith(("xpnet train: error: ", "xpnet evaluate: error: ", "xpnet bench: error: ")), line
    for n in needles:
        assert n in line, (n, line)
    return line


def usage(out, *needles):
    line = error_line(out, 2, *needles)
    assert "epoch 1/" not in out.stdout, "the error was found only after training had started"
    return line


def spec_file(tmp_path, spec, name="net.json"):
    path = tmp_path / name
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return path


# -- --out and the files a run writes ---------------------------------------------------------------------
def test_out_is_a_file(tmp_path):
    (tmp_path / "taken").write_text("mine")
    usage(xpnet("train", *QUICK, "--out", "taken", cwd=tmp_path), "--out taken: this is a file, not a directory")
    assert (tmp_path / "taken").read_text() == "mine"


def test_out_below_a_file(tmp_path):
    (tmp_path / "taken").write_text("mine")
    usage(xpnet("train", *QUICK, "--out", "taken/run/deeper", cwd=tmp_path),
          "--out taken/run/deeper:", f"{tmp_path / 'taken'} is a file, so there can be no directory below it")


def test_the_default_out_below_a_file(tmp_path):
    (tmp_path / "runs").write_text("not a directory")
    usage(xpnet("train", *QUICK, cwd=tmp_path),
          "the output directory (the default; change it with --out) runs/digits-mlp-numpy:", "is a file")


def test_out_with_a_name_longer_than_the_file_system_allows(tmp_path):
    name = "n" * 300
    usage(xpnet("train", *QUICK, "--out", f"runs/{name}", cwd=tmp_path),
          "the name 'nnnnnnnnnnnnnnnnnnnn...nnnnnnnnnn' is 300 bytes long; the file system allows names of at most 255")
    assert not (tmp_path / "runs").exists()


def test_out_whose_path_is_longer_than_the_system_allows(tmp_path):
    deep = "/".join(["d" * 200] * 22)  # every name fits, the whole path (4,400 bytes) does not
    usage(xpnet("train", *QUICK, "--out", deep, cwd=tmp_path), "this system allows at most 4095")


def test_an_output_file_that_is_a_directory(tmp_path):
    (tmp_path / "run" / "metrics.json").mkdir(parents=True)
    usage(xpnet("train", *QUICK, "--out", "run", cwd=tmp_path),
          f"--out run: {pathlib.Path('run') / 'metrics.json'} is a directory, where the run must write a file")


def test_a_plot_that_is_a_directory_counts_only_when_plots_are_drawn(tmp_path):
    (tmp_path / "run" / "curves.png").mkdir(parents=True)
    usage(xpnet("train", "--epochs", "1", "--out", "run", cwd=tmp_path), "curves.png is a directory")
    out = xpnet("train", *QUICK, "--out", "run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(not os.path.isdir("/proc/self") or os.access("/proc/self", os.W_OK),
                    reason="needs Linux's /proc/self, which refuses new entries even to root")
def test_out_in_a_directory_one_cannot_write_in_even_as_root(tmp_path):
    usage(xpnet("train", *QUICK, "--out", "/proc/self/xpnet-run", cwd=tmp_path),
          "--out /proc/self/xpnet-run: cannot create it in /proc/self: permission denied")


def _as_a_plain_user():
    """For a child run by root: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its bounding
    set (Linux prctl PR_CAPBSET_DROP), so that after exec it meets file modes as anyone does."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _plain_user_preexec():
    if os.name != "posix":
        pytest.skip("POSIX file modes")
    if os.geteuid() != 0:
        return None
    if not sys.platform.startswith("linux"):
        pytest.skip("root ignores file modes, and only Linux lets a child drop that power")
    return _as_a_plain_user


def test_out_in_a_read_only_directory(tmp_path):
    preexec = _plain_user_preexec()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        usage(xpnet("train", *QUICK, "--out", str(locked / "run"), preexec_fn=preexec),
              f"cannot create it in {locked}: permission denied")
        usage(xpnet("train", *QUICK, "--out", str(locked), preexec_fn=preexec),
              f"cannot write in {locked}: permission denied")
    finally:
        locked.chmod(0o700)


def test_check_asks_os_access_for_the_nearest_existing_directory(monkeypatch, tmp_path):
    # how an unwritable directory is refused, whoever runs the tests (root's os.access says yes)
    asked = []
    monkeypatch.setattr(paths.os, "access", lambda p, mode, **kw: asked.append((pathlib.Path(p), mode)) and False)
    with pytest.raises(UsageError, match=r"^--out .*/a/b: cannot create it in .*: permission denied$"):
        paths.check("--out", tmp_path / "a" / "b", ("last.xpnet",))
    assert asked == [(tmp_path, os.W_OK | os.X_OK)]
    with pytest.raises(UsageError, match=r": cannot write in .*: permission denied$"):
        paths.check("--out", tmp_path, ("last.xpnet",))


def test_prepare_refuses_a_directory_that_takes_no_file_and_removes_what_it_made(monkeypatch, tmp_path):
    # what inspection cannot see (a read-only file system, a quota): the probe write finds it
    def refuse(*a, **kw):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(paths.tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(UsageError, match=r"^--out .*/new/run: cannot write there: Read-only file system$"):
        paths.prepare("--out", tmp_path / "new" / "run")
    assert list(tmp_path.iterdir()) == []  # the directories it had just created are gone again
    (tmp_path / "mine").mkdir()
    with pytest.raises(UsageError):
        paths.prepare("--out", tmp_path / "mine")
    assert (tmp_path / "mine").is_dir()  # one that was there before stays


def test_bench_checks_its_out_before_measuring(tmp_path):
    (tmp_path / "taken").write_text("x")
    usage(xpnet("bench", "--quick", "--out", "taken", cwd=tmp_path), "--out taken: this is a file")


# -- model specs ------------------------------------------------------------------------------------------
def test_a_spec_whose_input_size_does_not_match_the_data(tmp_path):
    spec_file(tmp_path, {"type": "Sequential", "layers": [
        {"type": "Linear", "in_features": 3, "out_features": 10}]}, "bad.json")
    usage(xpnet("train", "--model", "bad.json", cwd=tmp_path),
          "--model bad.json does not fit the digits data (samples of shape (64,)):",
          "expected input of shape (*, 3), got (2, 64)")
    assert not (tmp_path / "runs").exists()


def test_a_spec_with_too_few_outputs_for_the_classes(tmp_path):
    spec_file(tmp_path, [{"type": "Linear", "in_features": 2, "out_features": 1}])
    usage(xpnet("train", "--model", "net.json", "--data", "moons", *QUICK, cwd=tmp_path),
          "--model net.json gives outputs of shape (2, 1) for 2 samples of the moons data; training needs (N, 2)")


@pytest.mark.parametrize("text, needles", [
    ("", ("--model net.json: model spec net.json: not valid JSON",)),
    ("{\"type\": ", ("not valid JSON",)),
    (json.dumps({"type": "Bogus"}), ("--model net.json: model: unknown layer type 'Bogus'",)),
    (json.dumps({"type": "Linear", "in_features": "x", "out_features": 2}),
     ("--model net.json: model:", "in_features")),
    (json.dumps({"type": "Linear", "in_features": 64}), ("--model net.json: model: bad arguments for Linear",)),
    (json.dumps(5), ("--model net.json: model: expected a layer spec",)),
    ("\xff\xfe", ("--model net.json:",)),
])
def test_a_bad_spec_file(tmp_path, text, needles):
    path = tmp_path / "net.json"
    path.write_bytes(text.encode("latin-1"))
    usage(xpnet("train", "--model", "net.json", *QUICK, cwd=tmp_path), *needles)


def test_a_directory_for_a_spec(tmp_path):
    (tmp_path / "net.json").mkdir()
    usage(xpnet("train", "--model", "net.json", *QUICK, cwd=tmp_path), "--model net.json: Is a directory")


def cap_memory(limit=8 * 2**30):
    """An address-space cap for the child: what asks for more than 8 GiB fails with MemoryError
    there, whatever the machine's overcommit policy, instead of exhausting the machine."""
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_a_spec_too_large_to_allocate(tmp_path):
    spec_file(tmp_path, [{"type": "Flatten"}, {"type": "Linear", "in_features": 200_000, "out_features": 200_000}])
    usage(xpnet("train", "--model", "net.json", *QUICK, cwd=tmp_path, preexec_fn=cap_memory),
          "--model net.json: model.layers[1]: Linear with {'in_features': 200000, 'out_features': 200000} is too large to build (MemoryError")


def test_a_spec_whose_sizes_overflow(tmp_path):
    (tmp_path / "net.json").write_text('[{"type": "Linear", "in_features": 1%s, "out_features": 2}]' % ("0" * 400))
    usage(xpnet("train", "--model", "net.json", *QUICK, cwd=tmp_path), "--model net.json:")


def _nested(depth, inner='{"type": "Linear", "in_features": 64, "out_features": 10}'):
    return '{"type": "Sequential", "layers": [{"type": "Flatten"}, ' * depth + inner + "]}" * depth


def test_a_3000_deep_spec(tmp_path):
    spec_file(tmp_path, _nested(3000))
    usage(xpnet("train", "--model", "net.json", *QUICK, cwd=tmp_path), "--model net.json: nested too deeply")


def _loader_depth_limit():
    try:
        from xpnet.nets.checkpoint_arch import MAX_DEPTH
    except ImportError:
        return 150
    return MAX_DEPTH


@pytest.mark.parametrize("depth", [_loader_depth_limit() + 1, 200, 400])
def test_a_spec_too_deep_for_its_checkpoints_fails_before_training(tmp_path, depth):
    # deep enough to build and run, but its checkpoint would not be written, or not be loaded back
    spec_file(tmp_path, _nested(depth))
    usage(xpnet("train", "--model", "net.json", *QUICK, cwd=tmp_path), "--model net.json", "checkpoint")
    assert not (tmp_path / "runs").exists()


# -- checkpoints: directories, damaged and crafted files ---------------------------------------------------
@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A one-epoch run (no schedule), whose last.xpnet the crafted files start from."""
    d = tmp_path_factory.mktemp("base")
    out = xpnet("train", "--epochs", "1", "--schedule", "none", "--no-plots", "--out", str(d / "run"))
    assert out.returncode == 0, out.stderr
    return d / "run"


@pytest.mark.parametrize("command", ["resume", "evaluate"])
def test_a_directory_for_a_checkpoint(tmp_path, base_run, command):
    args = ("train", "--resume") if command == "resume" else ("evaluate",)
    lead = "--resume " if command == "resume" else ""
    usage(xpnet(*args, str(base_run), cwd=tmp_path),
          f"{lead}{base_run}: a directory, not a checkpoint file; did you mean {base_run / 'last.xpnet'}?")
    (tmp_path / "empty").mkdir()
    usage(xpnet(*args, "empty", cwd=tmp_path), f"{lead}empty: a directory, not a checkpoint file")


@pytest.mark.parametrize("command", ["resume", "evaluate"])
def test_a_fifo_or_a_device_for_a_checkpoint(tmp_path, command):
    # reading would block forever (a FIFO without a writer) or never end (/dev/zero)
    os.mkfifo(tmp_path / "pipe")
    args = ("train", "--resume") if command == "resume" else ("evaluate",)
    usage(xpnet(*args, "pipe", cwd=tmp_path, timeout=60), "pipe: not a regular file")
    usage(xpnet("train", "--model", "pipe", cwd=tmp_path, timeout=60), "--model pipe: not a regular file")
    if os.path.exists("/dev/zero"):
        usage(xpnet("train", "--model", "/dev/zero", cwd=tmp_path, timeout=60), "--model /dev/zero: not a regular file")


def _digest(text, tensors):
    """The SHA-256 of checkpoint format 2, as the format defines it: the metadata text, then
    each tensor (by name) as ``name:dtype:shape`` and its little-endian bytes."""
    h = hashlib.sha256(text.encode())
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"{name}:{a.dtype.name}:{tuple(a.shape)}".encode())
        h.update(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()


def craft(src, dest, mutate=None, *, text=None):
    """A copy of checkpoint ``src`` whose metadata ``mutate(meta)`` changed (or that is ``text``),
    with a SHA-256 that matches: only the checks beyond the hash can refuse it."""
    tensors, md = read_safetensors(src)
    if text is None:
        meta = json.loads(md["xpnet"])
        mutate(meta)
        text = json.dumps(meta, sort_keys=True)
    write_safetensors(dest, tensors, {"xpnet": text, "xpnet.sha256": _digest(text, tensors)})
    return dest


def _set(path, value):
    def mutate(meta):
        *head, last = path
        d = meta
        for k in head:
            d = d[k]
        if value is KeyError:
            del d[last]
        else:
            d[last] = value
    return mutate


def _optimizer_step(value):
    def mutate(meta):
        for st in meta["optimizer"]["scalars"].values():
            if value is KeyError:
                st.pop("step")
            else:
                st["step"] = value
    return mutate


CRAFTED = {
    "no backend": _set(["backend"], KeyError),
    "backend 5": _set(["backend"], 5),
    "a 37 GiB linear": _set(["model"], {"type": "Sequential", "layers": [
        {"type": "Flatten"}, {"type": "Linear", "in_features": 100_000, "out_features": 100_000}]}),
    "a size beyond floats": _set(["model"], {"type": "Linear", "in_features": 10**400, "out_features": 2}),
    "history [1]": _set(["history"], [1]),
    "epoch 'x'": _set(["epoch"], "x"),
    "epoch -1": _set(["epoch"], -1),
    "no optimizer step": _optimizer_step(KeyError),
    "a negative step": _optimizer_step(-5),
    "a loss that is a Linear": _set(["loss"], {"type": "Linear", "in_features": 2, "out_features": 2}),
    "no version": _set(["version"], KeyError),
}


@pytest.mark.parametrize("command", ["resume", "evaluate"])
@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_checkpoint(tmp_path, base_run, command, case):
    bad = craft(base_run / "last.xpnet", tmp_path / "crafted.xpnet", CRAFTED[case])
    args = ("train", "--resume", str(bad)) if command == "resume" else ("evaluate", str(bad))
    usage(xpnet(*args, cwd=tmp_path, preexec_fn=cap_memory), str(bad))


@pytest.mark.parametrize("command", ["resume", "evaluate"])
def test_a_crafted_checkpoint_nested_3000_deep(tmp_path, base_run, command):
    tensors, md = read_safetensors(base_run / "last.xpnet")
    meta = json.loads(md["xpnet"])
    meta["model"] = "DEEP"
    text = json.dumps(meta, sort_keys=True).replace('"DEEP"', _nested(3000))
    bad = craft(base_run / "last.xpnet", tmp_path / "deep.xpnet", text=text)
    args = ("train", "--resume", str(bad)) if command == "resume" else ("evaluate", str(bad))
    usage(xpnet(*args, cwd=tmp_path, preexec_fn=cap_memory), str(bad))


def _cli(**changes):
    def mutate(meta):
        meta["extra"]["cli"].update(changes)
    return mutate


@pytest.mark.parametrize("mutate, needles", [
    (_cli(data="cifar"), ("--resume", "saved --data is 'cifar': invalid choice: 'cifar' (choose from 'digits'")),
    (_cli(batch_size="x"), ("saved --batch-size is 'x': must be a positive integer",)),
    (_cli(batch_size=True), ("saved --batch-size is True: expected a number",)),
    (_cli(lr=-1), ("saved --lr is -1: must be a positive number",)),
    (_cli(model=["a"]), ("saved --model is ['a']: expected a string",)),
    (_cli(epochs=None), ("saved --epochs is None: a value is needed",)),
    (_cli(seed=-3), ("saved --seed is -3",)),
    (_set(["extra", "cli"], "not a dict"), ("this checkpoint was not written by xpnet train",)),
    (_set(["extra"], {}), ("this checkpoint was not written by xpnet train",)),
])
def test_a_checkpoint_with_settings_no_command_line_could_give(tmp_path, base_run, mutate, needles):
    bad = craft(base_run / "last.xpnet", tmp_path / "settings.xpnet", mutate)
    usage(xpnet("train", "--resume", str(bad), cwd=tmp_path), *needles)


@pytest.mark.parametrize("mutate, needles", [
    (_cli(data="cifar"), ("says it was trained on 'cifar', not a data set of xpnet train",)),
    (_cli(seed="zero"), ("saved --seed is 'zero'",)),
    (_set(["extra"], {}), ("does not say which data set it was trained on: pass --data",)),
])
def test_evaluate_a_checkpoint_with_bad_settings(tmp_path, base_run, mutate, needles):
    bad = craft(base_run / "last.xpnet", tmp_path / "settings.xpnet", mutate)
    usage(xpnet("evaluate", str(bad), cwd=tmp_path), *needles)


def test_resuming_a_checkpoint_without_an_optimizer(tmp_path):
    import xpnet as xn

    net = xn.Sequential(xn.Linear(64, 10))
    path = xn.save(tmp_path / "bare.xpnet", net, extra={"cli": {"data": "digits", "epochs": 2, "model": "mlp"}})
    usage(xpnet("train", "--resume", str(path), cwd=tmp_path), "the checkpoint holds no optimizer state to resume from")


def test_resuming_a_model_that_does_not_fit_its_data(tmp_path, base_run):
    import xpnet as xn

    net = xn.Sequential(xn.Linear(3, 10))
    ck = xn.load(base_run / "last.xpnet")
    path = xn.save(tmp_path / "other.xpnet", net, xn.Adam(net), extra=ck.extra)
    usage(xpnet("train", "--resume", str(path), cwd=tmp_path),
          f"the model of --resume {path} does not fit the digits data", "expected input of shape (*, 3)")
    usage(xpnet("evaluate", str(path), cwd=tmp_path), "the model does not fit the digits data")


@pytest.mark.parametrize("args, needles", [
    (("--out", ""), ("--out: an empty path",)),
    (("--resume", ""), ("--resume: an empty path",)),
    (("--weight-decay", "nan"), ("argument --weight-decay: must be a number >= 0, got 'nan'",)),
    (("--seed", str(2**63)), ("argument --seed: must be an integer from 0 to 2**63 - 1",)),
])
def test_more_bad_arguments(tmp_path, args, needles):
    usage(xpnet("train", *QUICK, *args, cwd=tmp_path), *needles)


def test_a_bad_backend_in_the_environment_is_named_as_such(tmp_path):
    usage(xpnet("train", *QUICK, cwd=tmp_path, env={"XPNET_BACKEND": "bogus"}),
          "$XPNET_BACKEND='bogus': unknown backend 'bogus'")


def test_resuming_past_the_planned_epochs(tmp_path, base_run):
    usage(xpnet("train", "--resume", str(base_run / "last.xpnet"), "--epochs", "0", "--out", "x", cwd=tmp_path),
          "the checkpoint is at epoch 1, past --epochs 0")


# -- the data -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("below", [False, True])
def test_xpnet_data_pointing_at_a_file(tmp_path, below):
    (tmp_path / "a-file").write_text("x")
    root = "a-file/sub" if below else "a-file"
    usage(xpnet("train", "--data", "mnist", *QUICK, cwd=tmp_path, env={"XPNET_DATA": root}),
          "--data mnist: load_mnist: cannot use the cache directory", f"(from $XPNET_DATA='{root}')",
          f"({tmp_path / 'a-file'} is a file)")


# -- failures once under way: exit status 1 --------------------------------------------------------------
def test_a_diverging_run_is_one_line_and_status_1(tmp_path):
    out = xpnet("train", "--optimizer", "sgd", "--lr", "1e8", "--epochs", "2", "--no-plots", "--out", "run",
                cwd=tmp_path)
    error_line(out, 1, "the loss became", "at epoch 1, step")


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE") or not hasattr(signal, "SIGXFSZ"), reason="POSIX limits")
def test_a_checkpoint_that_cannot_be_written_mid_run(tmp_path):
    limit = 64 * 1024  # a checkpoint of the digits MLP (~600 KB) exceeds it; the probe write (1 byte) does not

    def cap():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = xpnet("train", "--epochs", "2", "--no-plots", "--out", "run", cwd=tmp_path, preexec_fn=cap,
                env={"PYTHONDONTWRITEBYTECODE": "1"})
    error_line(out, 1, "training stopped: a checkpoint could not be written:", "File too large")
    assert "epoch 1/2" not in out.stdout  # the first save, after epoch 1, failed before the logger's line
    assert [p.name for p in (tmp_path / "run").iterdir()] == []  # no partial file, no temporary file


def test_outputs_that_cannot_be_written_after_training(tmp_path):
    script = (
        "import errno, sys, xpnet.io.atomic as a\n"
        "real = a.atomic_write\n"
        "def refuse(path, mode='wb'):\n"
        "    if str(path).endswith('metrics.json'):\n"
        "        raise OSError(errno.ENOSPC, 'No space left on device', str(path))\n"
        "    return real(path, mode)\n"
        "a.atomic_write = refuse\n"
        "from xpnet.cli import main\n"
        "sys.exit(main(['train', '--epochs', '1', '--no-plots', '--out', 'run']))\n"
    )
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=300)
    error_line(out, 1, "trained, but the outputs could not be written:",
               f"{pathlib.Path('run') / 'metrics.json'}: No space left on device")
    assert (tmp_path / "run" / "last.xpnet").exists()


# -- one line, whatever the message ------------------------------------------------------------------------
def test_one_line_joins_lines_escapes_controls_and_bounds_the_length():
    assert one_line("tried:\n  a: refused\n  b: timed out\nTo install ...") == \
        "tried: a: refused; b: timed out; To install ..."
    assert one_line("bell\x07 and\r return") == "bell\\x07 and; return"
    long = one_line("where: " + "x" * 10_000 + " what")
    assert len(long) < 2100 and long.startswith("where: xxx") and long.endswith("xxx what")
    assert " ... (8,052 characters left out) ... " in long
