"""The ``keras.ops`` functions that tutorials call, on NumPy (or CuPy) arrays.

tinynet's arrays are NumPy's (CuPy's on the GPU), so ``keras.ops.mean(x)`` is simply
``numpy.mean(x)``, and a model's output needs no ``.numpy()`` (nor
``ops.convert_to_numpy``, which is here for code that calls it): ``model(x)`` and
``model.predict(x)`` return arrays already. Each function below runs on the array
module of its first argument, so the same line works on the CPU and the GPU. The
activations (``softmax``, ``relu``, ...) are :mod:`tinynet.activations`'.

A name Keras has and this module does not is an AttributeError that says so: use the
NumPy function of that name.
"""

from __future__ import annotations

import numpy as np

from . import activations, backend

# the activations, as keras.ops has them
relu, sigmoid, tanh, softmax = activations.relu, activations.sigmoid, activations.tanh, activations.softmax
leaky_relu, elu, gelu, silu, softplus = (
    activations.leaky_relu,
    activations.elu,
    activations.gelu,
    activations.silu,
    activations.softplus,
)


def log_softmax(x, axis=-1):
    """log softmax(x) = (x - m) - log sum exp(x - m), m the max over ``axis``: no log of 0."""
    x = activations.linear(x)
    xp = backend.get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def convert_to_numpy(x):
    """``x`` as a NumPy array (copied from the GPU if it is there)."""
    return np.asarray(backend.to_numpy(x))


def convert_to_tensor(x, dtype=None):
    """``x`` as an array (on the GPU if it already is a CuPy array), of ``dtype`` if given."""
    xp = backend.get_array_module(x)
    return xp.asarray(x, dtype=dtype)


def cast(x, dtype):
    """``x`` as ``dtype``."""
    return convert_to_tensor(x).astype(dtype)


def shape(x):
    """``x``'s shape, a tuple."""
    return tuple(convert_to_tensor(x).shape)


def one_hot(x, num_classes, dtype="float32"):
    """Class indices (N,) as one-hot rows (N, num_classes)."""
    x = convert_to_tensor(x)
    xp = backend.get_array_module(x)
    return (x[..., None] == xp.arange(num_classes)).astype(dtype)


def _from_the_array_module(name):
    """``name`` of NumPy (CuPy for a CuPy array) as a function, dispatched on its first argument."""

    def function(x, *args, **kwargs):
        xp = backend.get_array_module(x)
        return getattr(xp, name)(x if xp is not np else np.asarray(x), *args, **kwargs)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"``numpy.{name}`` (``cupy.{name}`` for an array on the GPU)."
    return function


# NumPy's own functions, under their keras.ops names
abs = _from_the_array_module("abs")
argmax = _from_the_array_module("argmax")
argmin = _from_the_array_module("argmin")
clip = _from_the_array_module("clip")
cumsum = _from_the_array_module("cumsum")
exp = _from_the_array_module("exp")
expand_dims = _from_the_array_module("expand_dims")
log = _from_the_array_module("log")
log1p = _from_the_array_module("log1p")
matmul = _from_the_array_module("matmul")
max = _from_the_array_module("max")
maximum = _from_the_array_module("maximum")
mean = _from_the_array_module("mean")
min = _from_the_array_module("min")
minimum = _from_the_array_module("minimum")
reshape = _from_the_array_module("reshape")
sqrt = _from_the_array_module("sqrt")
square = _from_the_array_module("square")
squeeze = _from_the_array_module("squeeze")
sum = _from_the_array_module("sum")
transpose = _from_the_array_module("transpose")
where = _from_the_array_module("where")


def concatenate(xs, axis=0):
    """The arrays ``xs`` joined along ``axis``."""
    xs = [convert_to_tensor(x) for x in xs]
    return backend.get_array_module(xs[0]).concatenate(xs, axis=axis)


def stack(xs, axis=0):
    """The arrays ``xs`` stacked along a new ``axis``."""
    xs = [convert_to_tensor(x) for x in xs]
    return backend.get_array_module(xs[0]).stack(xs, axis=axis)


def zeros(shape, dtype="float32"):
    return np.zeros(shape, dtype=dtype)


def ones(shape, dtype="float32"):
    return np.ones(shape, dtype=dtype)


def __getattr__(name):
    raise AttributeError(
        f"tinynet.ops has no {name!r}; tinynet's arrays are NumPy's, so numpy.{name} (cupy.{name} on the GPU) is "
        f"what keras.ops.{name} computes, if NumPy has it"
    )
