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
)
from .backend import DeviceUnavailableError
from .layers import Dense, Dropout, Flatten, Input, ReLU, Sigmoid, Softmax, Tanh
from .model import Sequential
from .saving import ModelFileError, load_model

__version__ = "0.1.0"

__all__ = [
    "Dense", "DeviceUnavailableError", "Dropout", "Flatten", "Input", "ModelFileError", "ReLU", "Sequential",
    "Sigmoid", "Softmax", "Tanh", "backend", "callbacks", "datasets", "gradcheck", "initializers", "layers",
    "load_model", "losses", "metrics", "optimizers", "plot", "preprocessing",
]
