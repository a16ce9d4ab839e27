"""Metrics. ``"accuracy"`` picks its kind from the shapes, as Keras does
(:func:`tinynet.engine.keras_rules.accuracy_kind`):

- binary accuracy when the model has one output per sample: y_pred > 0.5
  (or logits > 0, the same thing) compared with the 0/1 target;
- sparse categorical accuracy when the targets are class indices (N,) or (N, 1):
  argmax(y_pred) == target;
- categorical accuracy when the targets are one-hot (N, C):
  argmax(y_pred) == argmax(target).

``hits(...)`` returns each sample's correctness on the device, so a training loop can
add it up (weighted by ``sample_weight`` if any) without reading it back every step.
"""

from __future__ import annotations

import numpy as np

from . import backend


def hits(kind: str, y_pred, y_true, from_logits: bool = False):
    """Each sample's correctness, shape (N,): 1.0 right, 0.0 wrong, on y_pred's device.

    For binary accuracy with several outputs per sample, a sample scores the
    fraction of its outputs that are right, as Keras averages over the last axis.
    """
    if kind == "binary":
        threshold = 0.0 if from_logits else 0.5
        predicted = y_pred > threshold
        truth = y_true.reshape(y_pred.shape) > 0.5
        return (predicted == truth).mean(axis=-1).reshape(y_pred.shape[0], -1).mean(axis=-1)
    predicted = y_pred.argmax(axis=-1)
    if kind == "sparse":
        truth = y_true.reshape(-1)
    elif kind == "categorical":
        truth = y_true.argmax(axis=-1)
    else:
        raise ValueError(f"unknown accuracy kind {kind!r}")
    return predicted == truth


def confusion_matrix(y_true, y_pred, num_classes=None):
    """Counts ``cm[i, j]`` of samples of true class i predicted as class j.

    ``y_true`` and ``y_pred`` are class indices (N,); pass the predicted
    probabilities through ``argmax(axis=1)`` first.
    """
    y_true, y_pred = np.asarray(backend.to_numpy(y_true)), np.asarray(backend.to_numpy(y_pred))
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.ndim == 2 and y.shape[1] > 1:
            raise ValueError(
                f"{name} has shape {y.shape}: probabilities or one-hot rows, not class indices; "
                f"pass {name}.argmax(axis=1) (e.g. model.predict(x).argmax(axis=1))"
            )
    y_true, y_pred = y_true.reshape(-1).astype(np.int64), y_pred.reshape(-1).astype(np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {y_true.size} and {y_pred.size}")
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} must be in [0, {num_classes - 1}], got values from {y.min()} to {y.max()}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def precision_recall_f1(cm):
    """Per-class precision, recall, F1 and support from a confusion matrix.

    precision_c = cm[c, c] / (column c's sum)   of those predicted c, how many are c
    recall_c    = cm[c, c] / (row c's sum)      of the true c, how many were found
    F1_c        = 2 precision recall / (precision + recall)
    A ratio with a zero denominator is reported as 0.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)

    def ratio(a, b):
        return np.divide(a, b, out=np.zeros_like(a), where=b > 0)

    precision, recall = ratio(tp, cm.sum(axis=0)), ratio(tp, cm.sum(axis=1))
    f1 = ratio(2 * precision * recall, precision + recall)
    return precision, recall, f1, cm.sum(axis=1).astype(np.int64)


def classification_report(y_true, y_pred, num_classes=None, digits: int = 4) -> str:
    """A per-class precision / recall / F1 table with accuracy and macro averages."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    precision, recall, f1, support = precision_recall_f1(cm)
    w = max(digits + 3, 9)
    lines = [f"{'class':>8} {'precision':>{w}} {'recall':>{w}} {'f1':>{w}} {'support':>8}"]
    for c in range(cm.shape[0]):
        lines.append(
            f"{c:>8} {precision[c]:>{w}.{digits}f} {recall[c]:>{w}.{digits}f} {f1[c]:>{w}.{digits}f} {support[c]:>8}"
        )
    total = int(support.sum())
    accuracy = float(cm.trace() / total) if total else 0.0
    lines.append("")
    lines.append(f"{'accuracy':>8} {'':>{w}} {'':>{w}} {accuracy:>{w}.{digits}f} {total:>8}")
    lines.append(
        f"{'macro':>8} {precision.mean():>{w}.{digits}f} {recall.mean():>{w}.{digits}f} "
        f"{f1.mean():>{w}.{digits}f} {total:>8}"
    )
    return "\n".join(lines)


def format_confusion_matrix(cm) -> str:
    """The confusion matrix as text: rows are true classes, columns predictions."""
    width = max(len(str(int(cm.max()))), 3) + 1
    head = "true\\pred" + "".join(f"{j:>{width}}" for j in range(cm.shape[1]))
    rows = [f"{i:>9}" + "".join(f"{int(v):>{width}}" for v in row) for i, row in enumerate(cm)]
    return "\n".join([head] + rows)
