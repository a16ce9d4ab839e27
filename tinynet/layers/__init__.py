"""Every layer, as ``keras.layers`` has them: ``tn.layers.Dense``, ``tn.layers.Conv2D``, ...

- :mod:`tinynet.layers.core`: the layer contract (``Parameter``, ``Layer``), the
  activations, ``Dense``, ``Flatten`` and ``Reshape``; :mod:`tinynet.layers.api`: what Keras
  users call on every layer (``weights``, ``get_weights``, ...); :mod:`tinynet.layers.input`: ``Input``;
- :mod:`tinynet.layers.dropout`: ``Dropout``;
- :mod:`tinynet.layers.conv`: ``im2col`` and ``col2im``, ``Conv2D`` and the pooling layers;
- :mod:`tinynet.layers.normalization`: ``BatchNormalization``.
"""

from .activation import Activation
from .conv import AveragePooling2D, Conv2D, GlobalAveragePooling2D, MaxPooling2D, col2im, im2col
from .core import (
    ELU,
    GELU,
    Dense,
    Flatten,
    KernelLayer,
    Layer,
    LeakyReLU,
    Linear,
    Parameter,
    ReLU,
    Rescaling,
    Reshape,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Swish,
    Tanh,
    erf,
    get_activation,
    sigmoid,
    softmax,
)
from .dropout import Dropout
from .input import Input
from .normalization import BatchNormalization

__all__ = [
    "Activation",
    "AveragePooling2D",
    "BatchNormalization",
    "col2im",
    "Conv2D",
    "Dense",
    "Dropout",
    "ELU",
    "erf",
    "Flatten",
    "GELU",
    "get_activation",
    "GlobalAveragePooling2D",
    "im2col",
    "Input",
    "KernelLayer",
    "Layer",
    "LeakyReLU",
    "Linear",
    "MaxPooling2D",
    "Parameter",
    "ReLU",
    "Rescaling",
    "Reshape",
    "sigmoid",
    "Sigmoid",
    "SiLU",
    "Softmax",
    "softmax",
    "Softplus",
    "Swish",
    "Tanh",
]
