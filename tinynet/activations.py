"""Keras's activation functions by their Keras names: ``tn.activations.softmax(z)``.

Each one is the forward pass of the textbook layer that computes it
(:mod:`tinynet.layers.core`): ``relu(x)`` is ``ReLU().forward(x)``, so the formula lives in one
place, with its backward beside it. They take and return NumPy (or CuPy) arrays: no
``.numpy()`` is needed, or exists.

    tn.activations.softmax(model(x))      # probabilities from a model that outputs logits
    tn.activations.get("relu")            # the function a name stands for
"""

from __future__ import annotations

import numpy as np

from . import backend
from .layers import core


def _array(x):
    """``x`` as an array of floats on its own device: an array keeps its float dtype; a list,
    a number or an integer array becomes float32 (Keras's floatx)."""
    if not hasattr(x, "dtype"):
        return np.asarray(x, dtype=np.float32)
    x = backend.get_array_module(x).asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float32)


def linear(x):
    """y = x."""
    return _array(x)


def relu(x):
    """y = max(x, 0)."""
    return core.ReLU().forward(_array(x))


def sigmoid(x):
    """y = 1 / (1 + exp(-x))."""
    return core.Sigmoid().forward(_array(x))


def tanh(x):
    """y = tanh(x)."""
    return core.Tanh().forward(_array(x))


def softmax(x, axis=-1):
    """y_i = exp(x_i - max x) / sum_j exp(x_j - max x), over ``axis`` (the last by default)."""
    return core.softmax(_array(x), axis=axis)


def leaky_relu(x, negative_slope=0.2):
    """y = x where x > 0, else negative_slope * x (Keras's function's slope is 0.2; its layer's 0.3)."""
    return core.LeakyReLU(negative_slope=negative_slope).forward(_array(x))


def elu(x, alpha=1.0):
    """y = x where x > 0, else alpha (exp(x) - 1)."""
    return core.ELU(alpha=alpha).forward(_array(x))


def gelu(x, approximate=False):
    """y = x Phi(x), Phi the standard normal CDF (``approximate=True``: the tanh form)."""
    return core.GELU(approximate=approximate).forward(_array(x))


def silu(x):
    """y = x sigmoid(x), also called swish."""
    return core.Swish().forward(_array(x))


swish = silu


def softplus(x):
    """y = log(1 + exp(x)), computed without overflow."""
    return core.Softplus().forward(_array(x))


FUNCTIONS = {
    "linear": linear,
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softmax": softmax,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "gelu": gelu,
    "silu": silu,
    "swish": swish,
    "softplus": softplus,
}


def get(identifier):
    """The function a Keras activation name stands for (None is ``linear``), as ``keras.activations.get``."""
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    if identifier not in FUNCTIONS:
        raise ValueError(f"unknown activation {identifier!r}; expected one of {sorted(FUNCTIONS)}")
    return FUNCTIONS[identifier]


def serialize(function) -> str:
    """The Keras name of one of these functions, as ``keras.activations.serialize``."""
    for name, f in FUNCTIONS.items():
        if f is function:
            return "silu" if f is silu else name
    raise ValueError(f"{function!r} is not one of tinynet's activations {sorted(FUNCTIONS)}")
