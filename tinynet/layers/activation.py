"""``Activation("relu")``: an activation as a layer of its own, as ``keras.layers.Activation``."""

from __future__ import annotations

from .core import Layer, get_activation


class Activation(Layer):
    """Applies the named activation; forward and backward are that activation's own.

    Args:
        activation: "relu", "sigmoid", "softmax", "tanh", "linear" or None.
    """

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = get_activation(activation)
        self.activation_name = activation if isinstance(activation, str) or activation is None else None
        self.formula = self.activation.formula

    def forward(self, x, training=False):
        return self.activation.forward(x, training)

    def backward(self, gy):
        return self.activation.backward(gy)

    def get_config(self):
        name = self.activation_name or type(self.activation).__name__.lower()
        return {"name": self.name, "activation": name or "linear"}

    def describe(self):
        return self.get_config()["activation"]
