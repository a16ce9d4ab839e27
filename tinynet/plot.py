"""Plots for training and MNIST, written straight to PNG files.

matplotlib is an optional dependency (``pip install "tinynet[plot]"``) and is
imported only here, at the first plot. Figures are drawn with matplotlib's
object-oriented API on an Agg canvas, so they work headless and never touch the
global pyplot state or backend of the program that calls them.
"""

from __future__ import annotations

import os

import numpy as np

from . import backend
from .files.fileio import atomic_write


def _figure(width, height):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            f"tinynet.plot needs matplotlib, which is not installed ({e}): {backend.install_command('plot')} "
            "(or pip install matplotlib)"
        ) from None
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    path = os.fspath(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", bbox_inches="tight")
    return path


def _image_grid(images, titles, path, title, colors=None, cols=None):
    images = np.asarray(images)
    if images.ndim == 2:  # flattened
        side = int(round(np.sqrt(images.shape[1])))
        images = images.reshape(-1, side, side)
    n = len(images)
    cols = cols or min(n, 10)
    rows = max(1, int(np.ceil(n / cols)))
    height = 1.35 * rows + (0.6 if title else 0.2)
    fig = _figure(1.2 * cols, height)
    for k in range(rows * cols):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.axis("off")
        if k < n:
            ax.imshow(images[k], cmap="gray_r")
            ax.set_title(titles[k], fontsize=8, color=(colors[k] if colors else "black"))
    # the grid right under the title: matplotlib's default top margin left an empty band
    top = 1 - (0.6 if title else 0.2) / height  # room for the first row's labels (and the title)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=top, wspace=0.1, hspace=0.35)
    if title:
        fig.suptitle(title, y=1 - 0.08 / height, va="top")
    return _save(fig, path)


def plot_samples(images, labels, path, n: int = 25, title: str = "Samples"):
    """A grid of the first ``n`` images, each titled with its label."""
    n = min(n, len(images))
    return _image_grid(images[:n], [f"label {int(v)}" for v in np.asarray(labels)[:n]], path, title, cols=5)


def plot_history(history, path, title: str = "Training"):
    """Loss and accuracy per epoch, training and validation, from a History (or its dict)."""
    return plot_histories({"": history}, path, title)


def plot_histories(histories: dict, path, title: str = "Training"):
    """Several runs' curves overlaid: ``{"keras": history, "tinynet": history}``.

    Each run gets its own line style; training curves have round markers,
    validation curves square ones.
    """
    runs = {name: getattr(h, "history", h) for name, h in histories.items()}
    if not runs or any(not h or "loss" not in h for h in runs.values()):
        raise ValueError("plot_history needs a History with at least a 'loss' entry")
    first = next(iter(runs.values()))
    panels = [k for k in ("loss", "accuracy") if k in first]
    fig = _figure(5.5 * len(panels), 4)
    styles = ["-", "--", ":", "-."]
    for i, key in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for k, (name, h) in enumerate(runs.items()):
            epochs = np.arange(1, len(h[key]) + 1)
            prefix = f"{name} " if name else ""
            ax.plot(epochs, h[key], styles[k % 4], marker="o", label=f"{prefix}training {key}")
            if f"val_{key}" in h:
                ax.plot(epochs, h[f"val_{key}"], styles[k % 4], marker="s", label=f"{prefix}validation {key}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def plot_confusion_matrix(cm, path, title: str = "Confusion matrix (rows: true, columns: predicted)"):
    """A heatmap of the confusion matrix with the count in every cell."""
    cm = np.asarray(cm)
    fig = _figure(7, 6)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax)
    k = cm.shape[0]
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(int(cm[i, j])),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if cm[i, j] > threshold else "black",
            )
    ax.set_title(title)
    return _save(fig, path)


def plot_misclassified(images, y_true, y_pred, path, n: int = 25, title: str = "Misclassified test images"):
    """A grid of up to ``n`` images whose prediction is wrong: 'true 4 / pred 9'."""
    y_true, y_pred = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    wrong = np.flatnonzero(y_true != y_pred)[:n]
    if wrong.size == 0:
        fig = _figure(4, 1.5)
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        return _save(fig, path)
    titles = [f"true {int(y_true[i])} / pred {int(y_pred[i])}" for i in wrong]
    return _image_grid(np.asarray(images)[wrong], titles, path, title, colors=["crimson"] * len(wrong), cols=5)


def plot_trials(
    labels, scores, path, best=None, ylabel="validation accuracy", title="Hyperparameter trials (best in orange)"
):
    """One bar per trial (e.g. of a hyperparameter search), the best highlighted."""
    fig = _figure(max(5, 0.8 * len(scores) + 2), 4)
    ax = fig.add_subplot(1, 1, 1)
    bars = ax.bar(range(len(scores)), scores, color="tab:blue")
    if best is not None:
        bars[best].set_color("tab:orange")
    ax.set_xticks(range(len(scores)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylim(max(0.0, min(scores) - 0.02), min(1.0, max(scores) + 0.01) if max(scores) <= 1 else None)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _save(fig, path)


def plot_grouped_bars(groups, series: dict, path, ylabel: str, title: str = "", log: bool = False):
    """Bars grouped by ``groups`` (x labels), one colour per entry of ``series``
    (name -> one value per group; None for a missing one). For benchmark results."""
    fig = _figure(max(6, 1.8 * len(groups) + 2), 4.5)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(series), 1)
    for k, (name, values) in enumerate(series.items()):
        xs = [i + k * width for i, v in enumerate(values) if v is not None]
        ax.bar(xs, [v for v in values if v is not None], width, label=name)
    ax.set_xticks(np.arange(len(groups)) + width * (len(series) - 1) / 2)
    ax.set_xticklabels(groups)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def _histogram(ax, values, color, title):
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size and values.min() < values.max():
        ax.hist(values, bins=60, color=color, log=True)
    else:
        ax.text(0.5, 0.5, f"all {values[0]:.3g}" if values.size else "empty", ha="center", va="center")
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)


def plot_trace(trace, path=None):
    """One row per layer of a :class:`tinynet.trace.Trace`: left, the histogram of the layer's
    output y (forward: read the column down); right, of the gradient dL/dy that reached it
    (backward: read the column up, from the loss). Counts on a log axis. Returns the Figure,
    saved as PNG to ``path`` if given."""
    rows = len(trace.layers)
    fig = _figure(10, 1.9 * rows + 0.9)
    for k, r in enumerate(trace.layers):
        zeros = f", {np.mean(r.output == 0):.0%} zeros" if r.dead_units is not None else ""
        left = fig.add_subplot(rows, 2, 2 * k + 1)
        _histogram(left, r.output, "tab:blue", f"{r.index} {r.name} ({r.class_name}): output y{zeros}")
        right = fig.add_subplot(rows, 2, 2 * k + 2)
        wrt = "z (its activation's input)" if k == rows - 1 and trace.loss_note.startswith("from the") else "y"
        _histogram(right, r.gy, "tab:red", f"{r.index} {r.name}: gradient dL/d{wrt}, norm {r.gy_norm:.3g}")
        if k == rows - 1:
            left.set_xlabel("value")
            right.set_xlabel("value")
    fig.suptitle(
        f"{trace.model_name}, one batch of {trace.batch_size}, loss {trace.loss:.4g}\n"
        "forward: outputs, read down (blue)          backward: gradients, read up (red)",
        fontsize=10,
    )
    fig.tight_layout()
    if path is not None:
        _save(fig, path)
    return fig


def plot_gradient_monitor(history, path=None, title: str = "Gradients during training"):
    """Three panels over the training steps, from a GradientMonitor's ``history``: each
    parameter's gradient norm and update ratio ||dw||/||w|| (log axes; the dotted line
    marks 1e-3, the usual healthy ratio), and each ReLU layer's dead fraction.
    Returns the Figure, saved as PNG to ``path`` if given."""
    steps = history.get("step", [])
    if not steps:
        raise ValueError("nothing recorded yet: pass the GradientMonitor to fit(callbacks=[...]) first")
    panels = [
        ("grad_norm", "gradient norm ||g||", True),
        ("update_ratio", "update ratio ||dw|| / ||w||", True),
        ("dead_fraction", "dead ReLU units (fraction)", False),
    ]
    panels = [p for p in panels if history.get(p[0])]
    # one colour per layer and one line style per kind of parameter (kernel solid, bias dashed),
    # named once in a legend under the panels, so the lines can be told apart where they cross
    layer_names = list(dict.fromkeys(key.rsplit("/", 1)[0] for p in panels for key in history[p[0]]))
    colors = {name: f"C{i % 10}" for i, name in enumerate(layer_names)}
    styles = {"kernel": "-", "bias": "--"}
    fig = _figure(5 * len(panels), 4.6)
    for k, (kind, label, log) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        for key, values in history[kind].items():
            values = np.asarray(values, dtype=np.float64)
            shown = np.where(np.isfinite(values) & ((values > 0) | (not log)), values, np.nan)
            layer, _, param = key.rpartition("/") if "/" in key else (key, "", "")
            ax.plot(
                steps,
                shown,
                styles.get(param, ":") if param else "-",
                color=colors[layer],
                marker="." if len(steps) < 60 else None,
                label=key,
            )
        if log:
            ax.set_yscale("log")
        if kind == "update_ratio":
            ax.axhline(1e-3, color="gray", linestyle=":", linewidth=1)
        if kind == "dead_fraction":
            ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("training step")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    keys = [Line2D([], [], color=colors[name], label=name) for name in layer_names]  # a colour a layer
    keys += [Line2D([], [], color="gray", linestyle=s, label=p) for p, s in styles.items()]  # a style a kind
    ncol = min(len(keys), 8)
    fig.legend(handles=keys, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.04 + 0.05 * -(-len(keys) // ncol), 1, 1))
    if path is not None:
        _save(fig, path)
    return fig
