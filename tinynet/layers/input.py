"""``Input(shape)``: the shape of one sample, as the first entry of a model (``keras.Input``)."""

from __future__ import annotations

import numpy as np


class Input:
    """The shape of one sample, as the first entry of a ``Sequential`` (like Keras).

    ``Sequential([Input((784,)), Dense(10)])`` is the same as
    ``Sequential([Dense(10, input_shape=(784,))])``.
    """

    def __init__(self, shape):
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        shape = tuple(shape)
        if not shape or any(not isinstance(d, (int, np.integer)) or d < 1 for d in shape):
            raise ValueError(f"Input shape must be a tuple of positive integers, got {shape!r}")
        self.shape = tuple(int(d) for d in shape)

    def __repr__(self):
        return f"Input(shape={self.shape})"
