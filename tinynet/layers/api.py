"""What a Keras user calls on a layer beyond forward and backward: its weights as lists
and arrays, the parameter count, moving it to a device, its configuration and repr.

:class:`~tinynet.layers.core.Layer` inherits these, so core.py reads as the layer
contract and the math.
"""

from __future__ import annotations

import numpy as np

from .. import backend, validation


class LayerAPI:
    """``weights``, ``trainable_weights``, ``non_trainable_weights``, ``get_weights``,
    ``set_weights``, ``count_params``, ``to``, ``get_config``, ``describe``, ``repr``."""

    @property
    def weights(self) -> list:
        """Everything ``get_weights`` returns for this layer: trainable, then non-trainable (Keras's order)."""
        return self.parameters() + self.non_trainable()

    trainable_weights = property(lambda self: self.parameters())
    non_trainable_weights = property(lambda self: self.non_trainable())

    def get_weights(self) -> list:
        """The weights as NumPy arrays, as ``keras.layers.Layer.get_weights``."""
        return [p.numpy() for p in self.weights]

    def set_weights(self, arrays):
        """Load arrays in ``get_weights`` order; shapes must match."""
        arrays = list(arrays)
        if len(arrays) != len(self.weights):
            raise ValueError(f"layer {self.name!r} has {len(self.weights)} weights, got {len(arrays)} arrays")
        arrays = [np.asarray(backend.to_numpy(a)) for a in arrays]
        for p, a in zip(self.weights, arrays):
            validation.weight_values(self.name, p.name, a)
        for p, a in zip(self.weights, arrays):
            p.assign(a)

    def count_params(self) -> int:
        return sum(p.value.size for p in self.weights)

    def to(self, device: str):
        """Move the weights (and their gradients) to ``device``."""
        for p in self.weights:
            p.value = backend.to_device(p.value, device)
            p.grad = backend.to_device(p.grad, device)
        return self

    def get_config(self) -> dict:
        """The constructor's arguments, as a dict: ``type(layer).from_config(layer.get_config())``
        makes the same layer (unbuilt). A layer of your own whose ``__init__`` takes more
        arguments returns them too: ``{**super().get_config(), "scale": self.scale}``."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict):
        """The layer ``get_config`` describes: ``cls(**config)``, as Keras's ``from_config``."""
        return cls(**config)

    def describe(self) -> str:
        """Extra words for ``summary()``; empty by default."""
        return ""

    def __repr__(self):
        config = {k: v for k, v in self.get_config().items() if k != "name" and v is not None}
        shown = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"<{type(self).__name__} name={self.name}{', ' + shown if shown else ''}, built={self.built}>"
