"""tinynet: a from-scratch neural network library on NumPy (and CuPy), built to be read.

Every layer writes out its forward and backward pass with the math beside it; the
model API follows Keras (``Sequential``, ``compile``, ``fit``, ``evaluate``,
``predict``), with Keras's defaults and update formulas.

Goals: code a learner can read to understand backprop; numbers that match Keras;
fast enough on CPU and GPU to keep using. Non-goals: automatic differentiation of
arbitrary code, distributed training, every layer ever published.
"""

from . import (
    backend,
    callbacks,
    datasets,
    gradcheck,
    initializers,
    layers,
    losses,
    metrics,
    optimizers,
    plot,
    preprocessing,
    regularizers,
    schedules,
)
from .backend import DeviceUnavailableError
from .conv import AveragePooling2D, Conv2D, MaxPooling2D
from .layers import Dense, Dropout, Flatten, Input, ReLU, Reshape, Sigmoid, Softmax, Tanh
from .model import Sequential, TrainingDiverged
from .normalization import BatchNormalization
from .saving import ModelFileError, load_model

__version__ = "0.1.0"

__all__ = [
    "AveragePooling2D",
    "BatchNormalization",
    "Conv2D",
    "Dense",
    "DeviceUnavailableError",
    "Dropout",
    "Flatten",
    "Input",
    "MaxPooling2D",
    "ModelFileError",
    "ReLU",
    "Reshape",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "TrainingDiverged",
    "backend",
    "callbacks",
    "datasets",
    "gradcheck",
    "initializers",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "optimizers",
    "plot",
    "preprocessing",
    "regularizers",
    "schedules",
]
