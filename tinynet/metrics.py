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

The metric objects of Keras (``SparseCategoricalAccuracy()``, ``Mean()``, ...) go into
``compile(metrics=[...])`` beside the strings, logged under their ``name``, or keep a running
value by themselves: ``update_state(y_true, y_pred)``, ``result()``, ``reset_state()``.
"""

from __future__ import annotations

import numpy as np

from . import backend
from .engine.keras_rules import accuracy_kind


def hits(kind: str, y_pred, y_true, from_logits: bool = False):
    """Each sample's correctness, shape (N,): 1.0 right, 0.0 wrong, on y_pred's device.

    For binary accuracy with several outputs per sample, a sample scores the
    fraction of its outputs that are right, as Keras averages over the last axis.
    """
    if kind == "mae":  # each sample's mean absolute error (averaged over the epoch, as Keras's "mae")
        if y_true.size != y_pred.size:
            raise ValueError(
                f"the mean absolute error compares predictions {tuple(y_pred.shape)} with targets of the same "
                f"shape, got targets {tuple(y_true.shape)} (class labels? use metrics=['accuracy'] for those)"
            )
        xp = backend.get_array_module(y_pred)
        error = xp.abs(y_pred - y_true.astype(y_pred.dtype, copy=False).reshape(y_pred.shape))
        return error.reshape(y_pred.shape[0], -1).mean(axis=-1)
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


class Metric:
    """A running, weighted mean of a per-sample value, as ``keras.metrics.Metric``.

    ``update_state(y_true, y_pred, sample_weight=None)`` adds a batch, ``result()`` is the
    mean so far (a Python float: no ``.numpy()`` is needed), ``reset_state()`` starts again.

    Args:
        name: what ``fit``'s logs and the History call it (Keras's default name otherwise).
        dtype: accepted as Keras takes it; the sums are kept in float64.
    """

    kind = None  # hits()'s kind: None picks it from the shapes, as "accuracy"
    default_name = "metric"
    from_string = False  # made by get() from one of compile's strings, and saved as that string

    def __init__(self, name=None, dtype=None):
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError(f"a metric's name must be a non-empty string such as 'acc', got {name!r}")
        self.name, self.dtype = name or self.default_name, dtype
        self.reset_state()

    def per_sample(self, y_true, y_pred, from_logits=False):
        """Each sample's value (N,), on y_pred's device; ``from_logits``: y_pred holds logits."""
        kind = self.kind or accuracy_kind(y_true.shape, y_pred.shape)
        return hits(kind, y_pred, y_true, from_logits=from_logits)

    def update_state(self, y_true, y_pred, sample_weight=None):
        xp = backend.get_array_module(y_pred)
        y_true, y_pred = xp.asarray(y_true), xp.asarray(y_pred)
        self._add(self.per_sample(y_true, y_pred), sample_weight, xp)

    def _add(self, values, sample_weight, xp):
        values = values.astype(np.float64).reshape(len(values), -1).mean(axis=-1) if values.ndim else values[None]
        w = xp.ones_like(values) if sample_weight is None else xp.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if w.shape != values.shape:
            raise ValueError(f"sample_weight has {w.size} weights for {values.size} samples")
        self.total += float((values * w).sum())
        self.count += float(w.sum())

    def result(self) -> float:
        """The weighted mean so far; 0.0 before any update, as Keras."""
        return self.total / self.count if self.count else 0.0

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype or "float32"}

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class Mean(Metric):
    """The running mean of the values given: ``update_state(values, sample_weight=None)``
    (a loss per batch, in a training loop of one's own)."""

    default_name = "mean"

    def update_state(self, values, sample_weight=None):
        xp = backend.get_array_module(values)
        values = xp.asarray(values, dtype=np.float64)
        self._add(values.reshape(-1) if values.ndim else values, sample_weight, xp)


class SparseCategoricalAccuracy(Metric):
    """argmax(y_pred) == y_true, the targets class indices."""

    kind, default_name = "sparse", "sparse_categorical_accuracy"


class CategoricalAccuracy(Metric):
    """argmax(y_pred) == argmax(y_true), the targets one-hot rows."""

    kind, default_name = "categorical", "categorical_accuracy"


class BinaryAccuracy(Metric):
    """(y_pred > threshold) == (y_true > 0.5), averaged over each sample's outputs. On a model
    whose loss reads logits, the same test on the logits: z > log(threshold / (1 - threshold))."""

    kind, default_name = "binary", "binary_accuracy"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        if not (isinstance(threshold, (int, float)) and 0 < threshold < 1):
            raise ValueError(f"threshold must be a number in (0, 1), got {threshold!r}")
        super().__init__(name, dtype)
        self.threshold = float(threshold)

    def per_sample(self, y_true, y_pred, from_logits=False):
        cut = np.log(self.threshold / (1 - self.threshold)) if from_logits else self.threshold
        truth = y_true.reshape(y_pred.shape) > 0.5
        return ((y_pred > cut) == truth).reshape(y_pred.shape[0], -1).mean(axis=-1)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


class MeanAbsoluteError(Metric):
    """mean(|y_pred - y_true|) over each sample's outputs, then over the samples."""

    kind, default_name = "mae", "mean_absolute_error"


class Accuracy(Metric):
    """What ``metrics=["accuracy"]`` computes: binary, sparse or categorical accuracy as the
    shapes say (Keras's rule). Unlike ``keras.metrics.Accuracy`` (exact equality of values),
    it is the accuracy a classifier means."""

    default_name = "accuracy"


CLASSES = {
    cls.__name__: cls
    for cls in (Mean, SparseCategoricalAccuracy, CategoricalAccuracy, BinaryAccuracy, MeanAbsoluteError)
}
NAMES = {  # compile's strings: the object each one is, logged under the string itself
    "accuracy": Accuracy,
    "acc": Accuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
}


def get(metric) -> Metric:
    """A metric from compile's list: a string, a Metric, or a saved one (``serialize``'s dict)."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str) and metric in NAMES:
        made = NAMES[metric](name=metric)
        made.from_string = True
        return made
    if isinstance(metric, dict) and metric.get("class_name") in CLASSES and isinstance(metric.get("config"), dict):
        cls, config = CLASSES[metric["class_name"]], dict(metric["config"])
        allowed = {"name", "dtype"} | ({"threshold"} if cls is BinaryAccuracy else set())
        if set(config) - allowed:
            raise ValueError(
                f"metric {metric['class_name']} with {sorted(set(config) - allowed)} is not one tinynet has"
            )
        return cls(**config)
    if isinstance(metric, type) and issubclass(metric, Metric):
        raise TypeError(f"metrics take instances: write {metric.__name__}(), not {metric.__name__}")
    known = sorted(NAMES) + [f"{name}()" for name in sorted(CLASSES)]
    raise ValueError(f"unknown metric {metric!r}; tinynet computes {known}")


def serialize(metric: Metric):
    """What a model file says of a compiled metric: the string it came from, else Keras's dict."""
    if getattr(metric, "from_string", False):
        return metric.name
    return {
        "module": "keras.metrics",
        "class_name": type(metric).__name__,
        "config": metric.get_config(),
        "registered_name": None,
    }


def compiled(metrics) -> list[Metric]:
    """``compile``'s metrics: None or a list of strings and Metric objects, each name once."""
    if metrics is None:
        return []
    if isinstance(metrics, (str, Metric)) or not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list such as ['accuracy'], got {metrics!r}")
    made = [get(m) for m in metrics]
    for m in made:
        if type(m) is Mean:  # as Keras: a Mean averages values it is given, not predictions
            raise TypeError(f"{m!r} averages the values given to update_state; compile takes metrics of predictions")
    names = [m.name for m in made]
    if len(set(names)) != len(names):
        raise ValueError(f"metrics lists a name twice: {names}")
    return made


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
