"""``model.summary()``: the layer table in Keras's format."""

from __future__ import annotations

from . import keras_compat


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
    w = (33, 24, 15, 13)
    lines = [
        f'Model: "{model.name}"  (device: {model.device})',
        "┏" + "┳".join("━" * c for c in w) + "┓",
        "┃"
        + "┃".join(
            f" {h:<{c - 2}} " if i != 2 else f" {h:>{c - 2}} "
            for i, (h, c) in enumerate(zip(("Layer (type)", "Output Shape", "Param #", "Activation"), w))
        )
        + "┃",
        "┡" + "╇".join("━" * c for c in w) + "┩",
    ]
    for k, row in enumerate(rows):
        cells = [
            f" {row[0]:<{w[0] - 2}} ",
            f" {row[1]:<{w[1] - 2}} ",
            f" {row[2]:>{w[2] - 2}} ",
            f" {row[3]:<{w[3] - 2}} ",
        ]
        lines.append("│" + "│".join(cells) + "│")
        if k != len(rows) - 1:
            lines.append("├" + "┼".join("─" * c for c in w) + "┤")
    lines.append("└" + "┴".join("─" * c for c in w) + "┘")
    lines.append(f" Total params: {n_train + n_frozen:,} ({_readable_bytes(b_train + b_frozen)})")
    lines.append(f" Trainable params: {n_train:,} ({_readable_bytes(b_train)})")
    lines.append(f" Non-trainable params: {n_frozen:,} ({_readable_bytes(b_frozen)})")
    if model.loss is not None:
        lines.append(f" Loss: {model.loss.name}" + keras_compat.loss_note(model))
    return "\n".join(lines)


def _readable_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024
