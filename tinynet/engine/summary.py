"""``model.summary()``: the layer table in Keras's format."""

from __future__ import annotations

import textwrap

from . import keras_rules, threads


def format_summary(model) -> str:
    """The table ``model.summary()`` prints: layers, output shapes, parameter counts (Keras's format),
    and how the loss is computed."""
    if not model.built:
        raise RuntimeError(
            "the model is not built yet: start it with Input(shape) or input_shape=, or call fit/predict/build first"
        )
    rows = []
    for layer, shape in zip(model.layers, model.shapes):
        kind = type(layer).__name__
        extra = layer.describe()
        rows.append(
            (
                f"{layer.name} ({kind})",
                str((None,) + tuple(shape)),
                f"{sum(p.value.size for p in layer.weights):,}",
                extra,
            )
        )
    trainable = [p.value for p in model.parameters()]
    frozen = [p.value for layer in model.layers for p in layer.non_trainable()]
    n_train, n_frozen = sum(a.size for a in trainable), sum(a.size for a in frozen)
    b_train, b_frozen = sum(a.nbytes for a in trainable), sum(a.nbytes for a in frozen)
    w = (32, 20, 12, 10)  # 79 characters with the borders: fits an 80-column terminal, with
    # "max_pooling2d_1 (MaxPooling2D)", a count of millions and each header on one line
    lines = [
        f'Model: "{model.name}"  (device: {model.device})',
        "┏" + "┳".join("━" * c for c in w) + "┓",
        _row(("Layer (type)", "Output Shape", "Param #", "Details"), w, "┃"),
        "┡" + "╇".join("━" * c for c in w) + "┩",
    ]
    for k, row in enumerate(rows):
        lines.append(_row(row, w, "│"))
        if k != len(rows) - 1:
            lines.append("├" + "┼".join("─" * c for c in w) + "┤")
    lines.append("└" + "┴".join("─" * c for c in w) + "┘")
    lines.append(f" Total params: {n_train + n_frozen:,} ({_readable_bytes(b_train + b_frozen)})")
    lines.append(f" Trainable params: {n_train:,} ({_readable_bytes(b_train)})")
    lines.append(f" Non-trainable params: {n_frozen:,} ({_readable_bytes(b_frozen)})")
    if model.device == "cpu":
        lines.append(f" BLAS: {threads.describe()}")
    if model.loss is not None:
        lines.append(f" Loss: {model.loss.name}" + keras_rules.loss_note(model))
    return "\n".join(lines)


def _row(cells, widths, bar):
    """One table row; a cell too long for its column wraps onto more lines, as Keras's does."""
    wrapped = [textwrap.wrap(str(c), width - 2) or [""] for c, width in zip(cells, widths)]
    lines = []
    for i in range(max(len(parts) for parts in wrapped)):
        texts = [parts[i] if i < len(parts) else "" for parts in wrapped]
        lines.append(
            bar
            + bar.join(
                f" {t:>{width - 2}} " if k == 2 else f" {t:<{width - 2}} "
                for k, (t, width) in enumerate(zip(texts, widths))
            )
            + bar
        )
    return "\n".join(lines)


def _readable_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024
