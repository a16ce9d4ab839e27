"""tinynet: a from-scratch neural network library on NumPy (and CuPy), built to be read.

Every layer writes out its forward and backward pass with the math beside it; the
model API follows Keras (``Sequential``, ``compile``, ``fit``, ``evaluate``,
``predict``), with Keras's defaults and update formulas.

Goals: code a learner can read to understand backprop; numbers that match Keras;
fast enough on CPU and GPU to keep using. Non-goals: automatic differentiation of
arbitrary code, distributed training, every layer ever published.
"""

from . import (
    activations,
    backend,
    callbacks,
    datasets,
    engine,
    files,
    gradcheck,
    initializers,
    layers,
    losses,
    metrics,
    models,
    ops,
    optimizers,
    plot,
    preprocessing,
    regularizers,
    schedules,
    utils,
)
from .backend import DeviceUnavailableError
from .datasets import DatasetError
from .engine import moved as _moved
from .engine.flat import GradientContractError
from .engine.guards import TrainingDiverged
from .files.fileio import SaveError
from .layers import (
    ELU,
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    Input,
    LeakyReLU,
    MaxPooling2D,
    ReLU,
    Rescaling,
    Reshape,
    Sigmoid,
    Softmax,
    Tanh,
)
from .models import load_model
from .saving import ModelFileError
from .sequential import Sequential
from .trace import Trace, trace

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
    "ELU",
    "Flatten",
    "GlobalAveragePooling2D",
    "GradientContractError",
    "Input",
    "LeakyReLU",
    "MaxPooling2D",
    "ModelFileError",
    "ReLU",
    "Rescaling",
    "Reshape",
    "SaveError",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "Trace",
    "TrainingDiverged",
    "activations",
    "backend",
    "callbacks",
    "datasets",
    "engine",
    "files",
    "gradcheck",
    "initializers",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "models",
    "ops",
    "optimizers",
    "plot",
    "preprocessing",
    "regularizers",
    "schedules",
    "trace",
    "utils",
]

_moved.install()  # tinynet.fast, tinynet.training, ...: the old names of moved modules, with a warning


def __getattr__(name):
    """``tn.fast``, ``tn.training``, ...: a moved module under its old name, with a warning."""
    if f"tinynet.{name}" in _moved.MOVED:
        return _moved.load(f"tinynet.{name}")
    raise AttributeError(f"module 'tinynet' has no attribute {name!r}")
