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
    fast,
    gradcheck,
    graphs,
    initializers,
    keras_compat,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    plot,
    preprocessing,
    regularizers,
    schedules,
    utils,
)
from .backend import DeviceUnavailableError
from .datasets import DatasetError
from .fileio import SaveError
from .layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Input,
    MaxPooling2D,
    ReLU,
    Reshape,
    Sigmoid,
    Softmax,
    Tanh,
)
from .model import Sequential
from .models import load_model
from .saving import ModelFileError
from .trace import Trace, trace
from .training import GradientContractError, TrainingDiverged

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "AveragePooling2D",
    "BatchNormalization",
    "Conv2D",
    "DatasetError",
    "Dense",
    "DeviceUnavailableError",
    "Dropout",
    "Flatten",
    "GradientContractError",
    "Input",
    "MaxPooling2D",
    "ModelFileError",
    "ReLU",
    "Reshape",
    "SaveError",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "Trace",
    "TrainingDiverged",
    "backend",
    "callbacks",
    "datasets",
    "fast",
    "gradcheck",
    "graphs",
    "initializers",
    "keras_compat",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "plot",
    "preprocessing",
    "regularizers",
    "schedules",
    "trace",
    "utils",
]
