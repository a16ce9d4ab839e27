"""Weight penalties, as Keras's ``kernel_regularizer=l2(0.01)``.

A regularizer adds a penalty R(W) to the loss for each kernel it is attached to,
and so R's gradient to the kernel's gradient:

    L1:  R(W) = l1 * sum |W|        dR/dW = l1 * sign(W)
    L2:  R(W) = l2 * sum W^2        dR/dW = 2 * l2 * W      (no 1/2, as Keras)

The penalty is added once per step (it does not depend on the batch), both to the
loss that is minimised and to the loss that is reported, in training and in
``evaluate``, as Keras does.
"""

from __future__ import annotations

from . import backend
from .validation import in_range


class Regularizer:
    """R(W) = l1 * sum |W| + l2 * sum W^2."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = float(in_range("l1", l1, 0)), float(in_range("l2", l2, 0))

    def __call__(self, w):
        """The penalty R(w), a 0-d array on w's device."""
        xp = backend.get_array_module(w)
        total = xp.zeros((), dtype=w.dtype)
        if self.l1:
            total = total + self.l1 * xp.abs(w).sum()
        if self.l2:
            total = total + self.l2 * (w * w).sum()
        return total

    def gradient(self, w):
        """dR/dw, the shape of w."""
        xp = backend.get_array_module(w)
        g = xp.zeros_like(w)
        if self.l1:
            g += self.l1 * xp.sign(w)
        if self.l2:
            g += 2 * self.l2 * w
        return g

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self):
        return f"Regularizer(l1={self.l1}, l2={self.l2})"


def l1(l1=0.01):
    """``l1 * sum |W|`` (Keras's default factor 0.01)."""
    return Regularizer(l1=l1)


def l2(l2=0.01):
    """``l2 * sum W^2`` (Keras's default factor 0.01)."""
    return Regularizer(l2=l2)


def l1_l2(l1=0.01, l2=0.01):
    return Regularizer(l1=l1, l2=l2)


L1, L2, L1L2 = l1, l2, l1_l2  # Keras's class names for the same three (keras.regularizers.L2(0.001))


def get(regularizer):
    """None, a Regularizer, a dict from get_config, or "l1" / "l2" / "l1_l2"."""
    if regularizer is None or isinstance(regularizer, Regularizer):
        return regularizer
    if isinstance(regularizer, dict):
        return Regularizer(**regularizer)
    named = {"l1": l1, "l2": l2, "l1_l2": l1_l2}
    if isinstance(regularizer, str) and regularizer in named:
        return named[regularizer]()
    raise ValueError(
        f"unknown regularizer {regularizer!r}; expected 'l1', 'l2', 'l1_l2' or tinynet.regularizers.l2(...)"
    )
