"""Preprocessing helpers for image data such as MNIST.

All of them return new arrays and leave their inputs untouched. Statistics for
standardisation come from the training set only, then are applied unchanged to
validation and test data (computing them on the test set leaks information).
"""

from __future__ import annotations

import numpy as np

from . import validation
from .engine.keras_rules import split_last
from .losses import one_hot


def scale(x, max_value: float = 255.0):
    """Pixels to float32 in [0, 1]: ``x / max_value``."""
    return (np.asarray(x, dtype=np.float32) / np.float32(max_value)).astype(np.float32)


def flatten(x):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""
    x = np.asarray(x)
    return x.reshape(x.shape[0], -1)


class Standardizer:
    """Zero mean and unit variance, with statistics from the training data only.

    ``per_feature=False`` (the default) uses one mean and one standard deviation
    over all values, as the MNIST figures 0.1307 and 0.3081 are; ``per_feature=True``
    one per feature, with a floor on the deviation (MNIST's border pixels are
    always 0, so theirs is 0).

        s = Standardizer().fit(x_train)
        x_train, x_test = s.transform(x_train), s.transform(x_test)
    """

    def __init__(self, per_feature: bool = False, epsilon: float = 1e-7):
        self.per_feature, self.epsilon = per_feature, epsilon
        self.mean = self.std = None

    def fit(self, x):
        x = np.asarray(x, dtype=np.float64)
        axis = 0 if self.per_feature else None
        self.mean = x.mean(axis=axis)
        self.std = np.maximum(x.std(axis=axis), self.epsilon)
        return self

    def transform(self, x):
        if self.mean is None:
            raise RuntimeError("call Standardizer.fit(x_train) before transform")
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def fit_transform(self, x):
        return self.fit(x).transform(x)


def to_categorical(y, num_classes=None, dtype=np.float32):
    """Class indices (N,) -> one-hot rows (N, C), as ``keras.utils.to_categorical``."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or np.dtype(y.dtype).kind not in "iu" and not np.all(y == np.round(y)):
        raise ValueError(f"to_categorical expects whole-number class indices of shape (N,), got shape {y.shape}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"class indices must be >= 0, got {int(y.min())}")
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    if y.size and y.max() >= num_classes:
        raise ValueError(f"class index {int(y.max())} is out of range for num_classes={num_classes}")
    return one_hot(y, num_classes, dtype)


def train_val_split(x, y, validation_split: float = 0.1, shuffle: bool = False, seed=None):
    """Split off the last ``validation_split`` of the samples, as Keras's ``fit`` does.

    With ``shuffle=True`` the samples are permuted first (seeded). Returns
    ``(x_train, y_train), (x_val, y_val)``.
    """
    validation.fraction("validation_split", validation_split)
    x, y = np.asarray(x), np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same number of samples: x has {x.shape[0]}, y has {y.shape[0]}")
    if shuffle:
        order = np.random.default_rng(seed).permutation(x.shape[0])
        x, y = x[order], y[order]
    return split_last(x, y, validation_split)
