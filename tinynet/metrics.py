"""Metrics. ``"accuracy"`` picks its kind from the shapes, as Keras does.

- binary accuracy when the model has one output per sample: y_pred > 0.5
  (or logits > 0, the same thing) compared with the 0/1 target;
- sparse categorical accuracy when the targets are class indices (N,) or (N, 1):
  argmax(y_pred) == target;
- categorical accuracy when the targets are one-hot (N, C):
  argmax(y_pred) == argmax(target).

``correct(...)`` returns the number of correct samples as a device scalar, so a
training loop can add it up without reading it back every step.
"""

from __future__ import annotations

from . import backend

ACCURACY_NAMES = ("accuracy", "acc")


def accuracy_kind(y_true_shape, y_pred_shape) -> str:
    """"binary", "sparse" or "categorical", by Keras's rule for ``"accuracy"``."""
    if y_pred_shape[-1] == 1:
        return "binary"
    if len(y_true_shape) < len(y_pred_shape) or y_true_shape[-1] == 1:
        return "sparse"
    return "categorical"


def correct(kind: str, y_pred, y_true, from_logits: bool = False):
    """Number of correctly classified samples in a batch (a 0-d device array).

    For binary accuracy with several outputs per sample, each sample counts the
    fraction of its outputs that are right, as Keras averages over the last axis.
    """
    xp = backend.get_array_module(y_pred)
    if kind == "binary":
        threshold = 0.0 if from_logits else 0.5
        predicted = y_pred > threshold
        truth = y_true.reshape(y_pred.shape) > 0.5
        return (predicted == truth).mean(axis=-1).sum()
    predicted = y_pred.argmax(axis=-1)
    if kind == "sparse":
        truth = y_true.reshape(-1)
    elif kind == "categorical":
        truth = y_true.argmax(axis=-1)
    else:
        raise ValueError(f"unknown accuracy kind {kind!r}")
    return xp.count_nonzero(predicted == truth)
