"""PNG charts of a run, drawn with matplotlib when it is installed.

- ``throughput.png``: samples/s of every side on every workload, one panel per mode (log
  scale: the tiny net and the wide MLP differ by four orders of magnitude);
- ``scaling.png``: samples/s (top) and ms per step (bottom) against the batch size and against
  the width (log-log), one line per side (xpnet solid, PyTorch dashed; GPU sides marked with
  squares): throughput flattens where the step becomes compute-bound, and the cost grows
  with the FLOPs from there on.

:func:`write_charts` returns the files written, or a note saying why there are none.
"""

from __future__ import annotations

import os
import textwrap


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    return plt


def _throughput(plt, rows, path):
    modes = [m for m in ("train", "infer") if any(r["mode"] == m for r in rows)]
    fig, axes = plt.subplots(1, len(modes), figsize=(6.5 * len(modes), 4.5), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        mine = [r for r in rows if r["mode"] == mode]
        groups = list(dict.fromkeys((r["title"], r["batch"]) for r in mine))
        labels = list(dict.fromkeys(r["label"] for r in mine))
        width = 0.8 / max(len(labels), 1)
        for j, label in enumerate(labels):
            xs, ys = [], []
            for i, g in enumerate(groups):
                hit = next((r for r in mine if (r["title"], r["batch"]) == g and r["label"] == label), None)
                if hit:
                    xs.append(i + (j - (len(labels) - 1) / 2) * width)
                    ys.append(hit["samples_per_s"])
            ax.bar(xs, ys, width, label=label, hatch="//" if label.startswith("PyTorch") else None)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([textwrap.fill(t, 16) + f"\nbatch {b}" for t, b in groups], fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("samples/s (log)")
        ax.set_title("training step" if mode == "train" else "inference (forward only)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _scaling(plt, scaling, path):
    panels = [(k, sw) for k, sw in scaling.items() if sw["curves"]]
    fig, axes = plt.subplots(2, len(panels), figsize=(6 * len(panels), 8), squeeze=False)
    for col, (name, sw) in enumerate(panels):
        for row, (key, ylabel) in enumerate((("samples_per_s", "samples/s (log)"), ("ms_per_step", "ms per step (log)"))):
            ax = axes[row][col]
            for c in sw["curves"]:
                ax.plot([p["x"] for p in c["points"]], [p[key] for p in c["points"]],
                        linestyle="--" if c["side"] == "pytorch" else "-",
                        marker="s" if c["device"] == "gpu" else "o", label=c["label"])
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(sw["x"], [str(x) for x in sw["x"]])
            ax.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)  # only the swept values
            ax.set_xlabel("batch size" if name == "batch" else "hidden width W")
            ax.set_ylabel(ylabel)
            ax.grid(True, alpha=0.3)
            if row == 0:
                ax.set_title(textwrap.fill(sw["title"], 60), fontsize=9)
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_charts(doc, out_dir):
    """``(paths written, note)``; the note says why a chart is missing (``None`` when none is)."""
    plt = _pyplot()
    if plt is None:
        return [], "matplotlib is not installed: no PNG charts (pip install matplotlib)"
    written = []
    if doc["rows"]:
        path = os.path.join(out_dir, "throughput.png")
        _throughput(plt, doc["rows"], path)
        written.append(path)
    if any(sw["curves"] for sw in doc["scaling"].values()):
        path = os.path.join(out_dir, "scaling.png")
        _scaling(plt, doc["scaling"], path)
        written.append(path)
    return written, None
