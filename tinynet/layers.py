r"""Layers: each one a forward pass and the backward pass that undoes it.

The contract, and the names used throughout tinynet
---------------------------------------------------
A layer maps an input ``x`` to an output ``y``. Training needs, for a scalar loss
``L``, the gradient of ``L`` with respect to every parameter and to ``x``::

    y  = layer.forward(x, training)   # keeps exactly what backward will need
    gx = layer.backward(gy)           # gy = dL/dy in, gx = dL/dx out

``backward`` also fills ``p.grad`` (= dL/dp) of each parameter ``p`` it owns. Every
gradient has the shape of the thing it is the gradient of: ``gx.shape == x.shape``,
``gW.shape == W.shape``. The first axis is always the batch, of size N.

Backprop through a model is then just the chain rule applied layer by layer, last
layer first: the ``gx`` of one layer is the ``gy`` of the layer before it.

Every backward here is checked against central differences in float64 by
``tests/test_gradcheck_layers.py`` (see :mod:`tinynet.gradcheck`).
"""

from __future__ import annotations

import numpy as np

from . import backend, initializers, kernels, regularizers


class Parameter:
    """A trainable array ``value`` and its gradient ``grad`` (same shape, device)."""

    def __init__(self, value, name: str):
        self.value = value
        self.grad = backend.get_array_module(value).zeros_like(value)
        self.name = name

    def __repr__(self):
        return f"Parameter({self.name}, shape={tuple(self.value.shape)}, dtype={self.value.dtype})"


class Layer:
    """Base class. Subclasses implement ``forward`` and ``backward``.

    Args:
        name: the layer's name in ``summary()``; the model gives one if None.
        input_shape: the shape of one sample (no batch axis), allowed on the first
            layer of a model as in Keras.
    """

    def __init__(self, name: str | None = None, input_shape=None):
        self.name = name
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.built = False

    def build(self, input_shape, rng=None):
        """Create the parameters for samples of ``input_shape``; return the output shape."""
        self.built = True
        return self.compute_output_shape(tuple(input_shape))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def parameters(self) -> list[Parameter]:
        """The trainable parameters, in Keras's ``get_weights`` order."""
        return []

    def non_trainable(self) -> list[Parameter]:
        """State that is saved and loaded but not trained (BatchNormalization's moving statistics)."""
        return []

    def weights(self) -> list[Parameter]:
        """Everything ``get_weights`` returns for this layer: trainable, then non-trainable (Keras's order)."""
        return self.parameters() + self.non_trainable()

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError

    def to(self, device: str):
        """Move the weights (and their gradients) to ``device``."""
        for p in self.weights():
            p.value = backend.to_device(p.value, device)
            p.grad = backend.to_device(p.grad, device)
        return self

    def get_config(self) -> dict:
        return {"name": self.name}

    def describe(self) -> str:
        """Extra words for ``summary()``; empty by default."""
        return ""

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


# --------------------------------------------------------------------------------------
# Activations: no parameters, y = f(x) element-wise (softmax: row-wise)
# --------------------------------------------------------------------------------------


class ReLU(Layer):
    r"""Rectified linear unit.

    Forward:   y = max(x, 0)
    Backward:  gx = gy * [x > 0]        (the derivative at exactly 0 is taken as 0;
                                         x > 0 exactly where y > 0, so y is kept)
    Shapes:    x, y, gy, gx all (N, ...)
    """

    def forward(self, x, training=False):
        self._y = backend.get_array_module(x).maximum(x, 0)
        return self._y

    def forward_biased(self, z, b):
        """y = max(z + b, 0): a Dense layer's bias add and this ReLU in one GPU kernel."""
        self._y = kernels.bias_relu(z, b)
        return self._y

    def backward(self, gy):
        if kernels.fused(gy):
            return kernels.relu_backward(self._y, gy)  # the line below, in one GPU kernel
        return gy * (self._y > 0)


class Sigmoid(Layer):
    r"""Logistic sigmoid.

    Forward:   y = 1 / (1 + exp(-x))
    Backward:  gx = gy * y * (1 - y)     since dy/dx = y (1 - y)
    Shapes:    x, y, gy, gx all (N, ...)

    Computed without overflow: for x >= 0 as 1 / (1 + e), for x < 0 as e / (1 + e),
    with e = exp(-|x|) <= 1.

    As the output of a model trained with a cross-entropy, the loss is computed from
    this layer's input (the logits) as Keras's TensorFlow backend does; see
    :mod:`tinynet.losses`. ``forward(x, logits=True)`` returns ``x`` unchanged for
    that purpose, and the following ``backward`` passes ``gy`` through.
    """

    output_activation = "sigmoid"

    def forward(self, x, training=False, logits=False):
        self._logits = logits
        if logits:
            return x
        self._y = sigmoid(x)
        return self._y

    def backward(self, gy):
        if self._logits:
            return gy
        y = self._y
        return gy * y * (1 - y)


class Tanh(Layer):
    r"""Hyperbolic tangent.

    Forward:   y = tanh(x)
    Backward:  gx = gy * (1 - y^2)
    Shapes:    x, y, gy, gx all (N, ...)
    """

    def forward(self, x, training=False):
        xp = backend.get_array_module(x)
        self._y = xp.tanh(x)
        return self._y

    def backward(self, gy):
        return gy * (1 - self._y * self._y)


class Softmax(Layer):
    r"""Softmax over the last axis: each row becomes a probability distribution.

    Forward:   y_i = exp(x_i - m) / sum_j exp(x_j - m),   m = max_j x_j of that row
               (subtracting the row's own max changes nothing mathematically and
               keeps exp from overflowing)
    Backward:  the Jacobian is dy_i/dx_j = y_i (delta_ij - y_j), so
               gx_j = sum_i gy_i y_i (delta_ij - y_j) = y_j (gy_j - sum_i gy_i y_i)
               i.e.  gx = y * (gy - sum(gy * y, axis=-1, keepdims=True))
               (keeping only the diagonal y_j (1 - y_j) is a classic, wrong shortcut.)
    Shapes:    x, y, gy, gx all (N, C)

    As the output of a model trained with a cross-entropy, the loss is computed from
    the logits instead (Keras's TensorFlow backend); see :class:`Sigmoid`.
    """

    output_activation = "softmax"

    def forward(self, x, training=False, logits=False):
        self._logits = logits
        if logits:
            return x
        self._y = softmax(x)
        return self._y

    def backward(self, gy):
        if self._logits:
            return gy
        y = self._y
        return y * (gy - (gy * y).sum(axis=-1, keepdims=True))


def sigmoid(x):
    """Numerically stable logistic function (see :class:`Sigmoid`)."""
    xp = backend.get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softmax(x, axis=-1):
    """Numerically stable softmax: subtract each row's own max before exp."""
    xp = backend.get_array_module(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "softmax": Softmax, "tanh": Tanh}


def get_activation(activation):
    """An activation layer from a Keras name ("relu", ...), a Layer, or None/"linear"."""
    if activation is None or activation == "linear":
        return None
    if isinstance(activation, Layer):
        return activation
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS) + ['linear', None]}")
    return ACTIVATIONS[activation]()


# --------------------------------------------------------------------------------------
# Layers with parameters
# --------------------------------------------------------------------------------------


class Dense(Layer):
    r"""Fully connected layer, ``y = activation(x @ W + b)``, as ``keras.layers.Dense``.

    Shapes:    x (N, I),  W (I, U),  b (U,),  z and y (N, U)
    Forward:   z = x W + b                  z_nu = sum_i x_ni W_iu + b_u
               y = activation(z)            (y = z when activation is None)
    Backward:  gz = activation.backward(gy) dL/dz, via the activation's own backward
               gW = x^T gz     (I, U)        dL/dW_iu = sum_n x_ni gz_nu
               gb = sum_n gz   (U,)          b is added to every row, so its
                                             gradient sums over the batch
               gx = gz W^T     (N, I)        dL/dx_ni = sum_u gz_nu W_iu

    Args:
        units: the number of outputs U.
        activation: "relu", "sigmoid", "softmax", "tanh", "linear" or None.
        use_bias: whether to add b. Defaults to True.
        kernel_initializer: name or callable ``f(shape, rng)``. Defaults to
            "glorot_uniform" (as Keras).
        bias_initializer: Defaults to "zeros".
        kernel_regularizer: a penalty on W added to the loss, e.g.
            ``tinynet.regularizers.l2(1e-4)`` (see :mod:`tinynet.regularizers`).

    The kernel is stored (in, out) like Keras, so ``get_weights``/``set_weights`` move
    weights between Keras and tinynet unchanged.
    """

    def __init__(
        self,
        units: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        name=None,
        input_shape=None,
    ):
        super().__init__(name=name, input_shape=input_shape)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"Dense units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.activation = get_activation(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self._init_names = (kernel_initializer, bias_initializer, activation)

    @property
    def output_activation(self):
        """ "softmax" or "sigmoid" when that is this layer's activation, else None."""
        return getattr(self.activation, "output_activation", None)

    def build(self, input_shape, rng=None):
        if len(input_shape) != 1:
            raise ValueError(
                f"{self.name or 'Dense'} expects samples of shape (features,), got "
                f"{tuple(input_shape)}; add a Flatten() layer before it"
            )
        rng = rng if rng is not None else np.random.default_rng()
        fan_in = int(input_shape[0])
        self.kernel = Parameter(self.kernel_initializer((fan_in, self.units), rng), "kernel")
        self.bias = Parameter(self.bias_initializer((self.units,), rng), "bias") if self.use_bias else None
        return super().build(input_shape, rng)

    def compute_output_shape(self, input_shape):
        return (self.units,)

    def parameters(self):
        return [self.kernel] + ([self.bias] if self.use_bias else [])

    def forward(self, x, training=False, logits=False):
        """``logits=True`` returns z and skips the activation (and its backward)."""
        W = self.kernel.value
        if x.ndim != 2 or x.shape[1] != W.shape[0]:
            raise ValueError(
                f"{self.name or 'Dense'} expects input of shape (batch, {W.shape[0]}), got {tuple(x.shape)}"
            )
        self._x = x
        z = x @ W
        self._through_activation = self.activation is not None and not logits
        if self._through_activation and self.use_bias and isinstance(self.activation, ReLU) and kernels.fused(z):
            return self.activation.forward_biased(z, self.bias.value)  # relu(z + b) in one GPU kernel
        if self.use_bias:
            z = z + self.bias.value
        if not self._through_activation:
            return z
        return self.activation.forward(z, training)

    def backward(self, gy, input_grad=True):
        """``input_grad=False`` skips gx: the model asks that of its first layer,
        whose input is data, which saves one of the three matrix products."""
        xp = backend.get_array_module(gy)
        gz = self.activation.backward(gy) if self._through_activation else gy
        # gW = x^T gz and gb = sum_n gz, written into the gradient arrays (which may be
        # views into the model's one flat gradient buffer, see Sequential)
        xp.matmul(self._x.T, gz, out=self.kernel.grad)
        if self.use_bias:
            gz.sum(axis=0, out=self.bias.grad)
        if not input_grad:
            return None
        # gx = gz W^T
        return gz @ self.kernel.value.T

    def get_config(self):
        kernel_init, bias_init, activation = self._init_names
        return {
            "name": self.name,
            "units": self.units,
            "activation": activation if isinstance(activation, (str, type(None))) else self.describe(),
            "use_bias": self.use_bias,
            # a custom initializer cannot be saved; the saved weights replace it anyway
            "kernel_initializer": kernel_init if isinstance(kernel_init, str) else "glorot_uniform",
            "bias_initializer": bias_init if isinstance(bias_init, str) else "zeros",
            "kernel_regularizer": self.kernel_regularizer.get_config() if self.kernel_regularizer else None,
        }

    def describe(self):
        return type(self.activation).__name__.lower() if self.activation is not None else ""


# --------------------------------------------------------------------------------------
# Shape and regularisation layers
# --------------------------------------------------------------------------------------


class Flatten(Layer):
    r"""Flatten each sample into a vector.

    Forward:   y = x.reshape(N, -1)          (N, d1, d2, ...) -> (N, d1*d2*...)
    Backward:  gx = gy.reshape(x.shape)      a reshape moves no values, so the
                                             gradient is reshaped back
    """

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, gy):
        return gy.reshape(self._shape)


class Reshape(Layer):
    r"""Reshape each sample to ``target_shape`` (one entry may be -1), as Keras.

    Forward:   y = x.reshape((N,) + target_shape)
    Backward:  gx = gy.reshape(x.shape)
    """

    def __init__(self, target_shape, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        self.target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in self.target_shape) > 1 or any(d < 1 and d != -1 for d in self.target_shape):
            raise ValueError(f"Reshape target_shape takes positive sizes and at most one -1, got {target_shape!r}")

    def compute_output_shape(self, input_shape):
        size = int(np.prod(input_shape))
        known = int(np.prod([d for d in self.target_shape if d != -1]))
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"cannot reshape samples of shape {tuple(input_shape)} into {self.target_shape}")
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size:
            raise ValueError(
                f"cannot reshape samples of shape {tuple(input_shape)} ({size} values) into "
                f"{self.target_shape} ({known} values)"
            )
        return self.target_shape

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape((x.shape[0],) + self.compute_output_shape(x.shape[1:]))

    def backward(self, gy):
        return gy.reshape(self._shape)

    def get_config(self):
        return {"name": self.name, "target_shape": list(self.target_shape)}


class Dropout(Layer):
    r"""Inverted dropout: zero a fraction ``rate`` of inputs while training.

    Forward (training):   m_i ~ Bernoulli(1 - rate) drawn once per forward,
                          y = x * m / (1 - rate)
                          dividing by the keep probability keeps E[y] = x, so
                          nothing needs rescaling at inference
    Forward (inference):  y = x
    Backward:             gx = gy * m / (1 - rate)   (same mask as the forward)
    Shapes:               x, y, gy, gx all (N, ...)

    Args:
        rate: the fraction to drop, in [0, 1).
        seed: seed for the masks; the model seeds it from its own seed if None.
    """

    def __init__(self, rate: float, seed=None, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.rng = None
        self._rng_device = None

    def reset_rng(self, seed, device: str):
        """Start a fresh mask generator on ``device`` (the model calls this)."""
        self.rng = backend.random_generator(seed, device)
        self.rng_seed, self._rng_device = seed, device

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self._scale = None
            return x
        device = backend.device_of(x)
        if self.rng is None or self._rng_device != device:
            self.reset_rng(self.seed, device)
        keep = 1.0 - self.rate
        # the mask with the 1/keep factor already in it, in x's dtype
        self._scale = (self.rng.random(x.shape) < keep).astype(x.dtype) / x.dtype.type(keep)
        return x * self._scale

    def backward(self, gy):
        if self._scale is None:
            return gy
        return gy * self._scale

    def get_config(self):
        return {"name": self.name, "rate": self.rate, "seed": self.seed}

    def describe(self):
        return f"rate {self.rate:g}"


class Input:
    """The shape of one sample, as the first entry of a ``Sequential`` (like Keras).

    ``Sequential([Input((784,)), Dense(10)])`` is the same as
    ``Sequential([Dense(10, input_shape=(784,))])``.
    """

    def __init__(self, shape):
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        shape = tuple(shape)
        if not shape or any(not isinstance(d, (int, np.integer)) or d < 1 for d in shape):
            raise ValueError(f"Input shape must be a tuple of positive integers, got {shape!r}")
        self.shape = tuple(int(d) for d in shape)

    def __repr__(self):
        return f"Input(shape={self.shape})"
