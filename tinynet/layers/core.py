r"""The layer contract, the activations, Dense, and the layers that only reshape.

The contract, and the names used throughout tinynet
---------------------------------------------------
A layer maps an input ``x`` to an output ``y``. Training needs, for a scalar loss
``L``, the gradient of ``L`` with respect to every parameter and to ``x``::

    y  = layer.forward(x, training)   # keeps exactly what backward will need
    gx = layer.backward(gy)           # gy = dL/dy in, gx = dL/dx out

``backward`` also sets ``p.grad`` (= dL/dp, for this batch alone) of each parameter
``p`` the layer owns, in either of two ways, both fine:

    self.kernel.grad = x.T @ gz          # assign a new array, or
    self.kernel.grad[...] = x.T @ gz     # write into the one that is there

Every gradient has the shape of the thing it is the gradient of: ``gx.shape ==
x.shape``, ``gW.shape == W.shape``. The first axis is always the batch, of size N.
Training checks at its first step that every parameter got a gradient of the right
shape, and says which layer broke the contract if one did not.

Backprop through a model is then just the chain rule applied layer by layer, last
layer first: the ``gx`` of one layer is the ``gy`` of the layer before it.

Every backward here is checked against central differences in float64 by
``tests/test_gradcheck_layers.py`` (see :mod:`tinynet.gradcheck`).
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend, initializers, regularizers, validation
from .api import LayerAPI


class Parameter:
    """A trainable array ``value`` and its gradient ``grad`` (same shape, same device).

    Make one in your layer's ``build``, from a NumPy array in float32 (the model moves it
    to its device afterwards)::

        self.scale = Parameter(np.ones(input_shape[-1], dtype=np.float32), "scale")

    and list it in ``parameters()``. ``grad`` starts as zeros; your ``backward`` sets it.
    Also what Keras's variables offer: ``shape``, ``dtype``, ``numpy()``, ``assign(array)``.
    """

    def __init__(self, value, name: str):
        self.value = value
        self.grad = backend.get_array_module(value).zeros_like(value)
        self.name = name

    shape = property(lambda self: tuple(self.value.shape))
    dtype = property(lambda self: self.value.dtype)

    def numpy(self):
        return backend.to_numpy(self.value).copy()

    def assign(self, array):
        """Set the value in place (so views into the model's flat buffer stay valid)."""
        array = backend.to_numpy(array)
        if tuple(array.shape) != self.shape:
            raise ValueError(f"{self.name} has shape {self.shape}, got an array of shape {tuple(array.shape)}")
        self.value[...] = backend.to_device(array.astype(self.value.dtype), backend.device_of(self.value))

    def __repr__(self):
        return f"<Parameter {self.name} shape={self.shape} dtype={self.dtype}>"


class Layer(LayerAPI):
    """Base class. Subclasses implement ``forward`` and ``backward``.

    A layer of your own, the whole contract (``docs/custom_layer.md`` builds one step by step):

    - ``__init__(self, ..., **kwargs)``: keep the arguments; pass ``**kwargs`` (``name``,
      ``input_shape``) to ``super().__init__``;
    - ``build(self, input_shape, rng=None)``: only if it has parameters. ``input_shape`` is
      one sample's shape (no batch axis); ``rng`` a NumPy Generator for random starting
      values. Make each :class:`Parameter` (float32), then ``return super().build(input_shape, rng)``
      (the output shape; override ``compute_output_shape`` if it differs from the input's);
    - ``parameters(self)``: the list of those parameters, in a fixed order (the weights' order in files);
    - ``forward(self, x, training=False)``: ``y``, keeping on ``self`` what backward needs;
    - ``backward(self, gy)``: set each ``p.grad = dL/dp`` and return ``gx = dL/dx``. Use
      ``backend.get_array_module(x)`` (not ``np``) where a function is needed, and the layer
      runs on the GPU too;
    - ``get_config(self)``: ``{**super().get_config(), "arg": self.arg, ...}``, every
      ``__init__`` argument, so ``model.save`` can write the layer and ``load_model(path,
      custom_objects={"MyLayer": MyLayer})`` can rebuild it (or register the class once
      with ``@tinynet.saving.register_keras_serializable()``).

    Check it with :func:`tinynet.gradcheck.check_backward` before you train with it.
    What a Keras user calls on a layer (``weights``, ``get_weights``, ``count_params``,
    ``get_config``, ...) is inherited from :class:`~tinynet.layers.api.LayerAPI`.

    Args:
        name: the layer's name in ``summary()``; the model gives one if None.
        input_shape: the shape of one sample (no batch axis), allowed on the first
            layer of a model as in Keras; ``input_dim=n`` is ``input_shape=(n,)``.
    """

    formula = ""  # forward and backward in one line each, for summaries and traces

    def __init__(self, name: str | None = None, input_shape=None, input_dim=None):
        self.name = name
        if input_dim is not None:
            input_shape = (input_dim,)
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

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError


# --------------------------------------------------------------------------------------
# Activations: no parameters, y = f(x) element-wise (softmax: row-wise)
# --------------------------------------------------------------------------------------


class Linear(Layer):
    """The identity, Keras's ``activation="linear"`` (or None): y = x, gx = gy."""

    formula = "y = x  |  gx = gy"

    def forward(self, x, training=False):
        return x

    def backward(self, gy):
        return gy


class ReLU(Layer):
    r"""Rectified linear unit.

    Forward:   y = max(x, 0)
    Backward:  gx = gy * [x > 0]        (the derivative at exactly 0 is taken as 0;
                                         x > 0 exactly where y > 0, so y is kept)
    Shapes:    x, y, gy, gx all (N, ...)
    """

    formula = "y = max(x, 0)  |  gx = gy * [y > 0]"
    _y = None  # what forward keeps (None before the first forward)

    def forward(self, x, training=False):
        self._y = backend.get_array_module(x).maximum(x, 0)
        return self._y

    def backward(self, gy):
        return gy * (self._y > 0)

    @property
    def output(self):
        """The y = max(x, 0) that ``forward`` kept for ``backward``."""
        return self._y

    def keep_output(self, y):
        """Keep ``y`` = max(x, 0), computed elsewhere (a fast twin of the layer before:
        the bias and ReLU in one pass), as ``forward`` would have kept it for ``backward``."""
        self._y = y
        return y


class Sigmoid(Layer):
    r"""Logistic sigmoid.

    Forward:   y = 1 / (1 + exp(-x))
    Backward:  gx = gy * y * (1 - y)     since dy/dx = y (1 - y)
    Shapes:    x, y, gy, gx all (N, ...)

    Computed without overflow: for x >= 0 as 1 / (1 + e), for x < 0 as e / (1 + e),
    with e = exp(-|x|) <= 1.
    """

    formula = "y = 1 / (1 + exp(-x))  |  gx = gy * y * (1 - y)"

    def forward(self, x, training=False):
        self._y = sigmoid(x)
        return self._y

    def backward(self, gy):
        y = self._y
        return gy * y * (1 - y)


class Tanh(Layer):
    r"""Hyperbolic tangent.

    Forward:   y = tanh(x)
    Backward:  gx = gy * (1 - y^2)
    Shapes:    x, y, gy, gx all (N, ...)
    """

    formula = "y = tanh(x)  |  gx = gy * (1 - y^2)"

    def forward(self, x, training=False):
        self._y = backend.get_array_module(x).tanh(x)
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
    """

    formula = "y = exp(x - max) / sum exp(x - max)  |  gx = y * (gy - sum(gy * y))"

    def forward(self, x, training=False):
        self._y = softmax(x)
        return self._y

    def backward(self, gy):
        y = self._y
        return y * (gy - (gy * y).sum(axis=-1, keepdims=True))


class LeakyReLU(Layer):
    r"""Leaky rectified linear unit: a small slope a instead of 0 for negative inputs.

    Forward:   y = x       where x > 0
               y = a x     elsewhere
    Backward:  gx = gy * 1 where x > 0, gy * a elsewhere
    Shapes:    x, y, gy, gx all (N, ...)

    Args:
        negative_slope: a. Defaults to 0.3, as ``keras.layers.LeakyReLU``; the activation
            ``"leaky_relu"`` (``Dense(..., activation="leaky_relu")``) uses 0.2, as
            ``keras.activations.leaky_relu``.
    """

    formula = "y = x if x > 0 else a x  |  gx = gy * (1 if x > 0 else a)"

    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = validation.in_range("negative_slope", negative_slope, 0)

    def forward(self, x, training=False):
        self._positive = x > 0
        return backend.get_array_module(x).where(self._positive, x, self.negative_slope * x)

    def backward(self, gy):
        return gy * backend.get_array_module(gy).where(self._positive, 1.0, self.negative_slope).astype(gy.dtype)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(Layer):
    r"""Exponential linear unit: smooth below zero, tending to -alpha.

    Forward:   y = x                    where x > 0
               y = alpha (exp(x) - 1)   elsewhere
    Backward:  gx = gy                  where x > 0
               gx = gy * (y + alpha)    elsewhere   (d/dx alpha (e^x - 1) = alpha e^x = y + alpha)
    Shapes:    x, y, gy, gx all (N, ...)

    Args:
        alpha: Defaults to 1.0, as Keras.
    """

    formula = "y = x if x > 0 else alpha (exp(x) - 1)  |  gx = gy * (1 if x > 0 else y + alpha)"

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = validation.in_range("alpha", alpha, 0)

    def forward(self, x, training=False):
        xp = backend.get_array_module(x)
        self._positive = x > 0
        self._y = xp.where(self._positive, x, self.alpha * xp.expm1(xp.minimum(x, 0)))
        return self._y

    def backward(self, gy):
        return gy * backend.get_array_module(gy).where(self._positive, 1, self._y + self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class GELU(Layer):
    r"""Gaussian error linear unit: x weighted by the chance that a standard normal is below it.

    Forward:   y = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2  (the normal CDF)
    Backward:  gx = gy * (Phi(x) + x phi(x)),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
    With ``approximate=True`` (the tanh form), u = sqrt(2 / pi) (x + 0.044715 x^3):
               y = x (1 + tanh u) / 2 = x s,  s = sigmoid(2u)   ((1 + tanh u) / 2 is sigmoid(2u))
               gx = gy * (s + x s (1 - s) 2 du/dx),  du/dx = sqrt(2 / pi) (1 + 3 * 0.044715 x^2)
               (the sigmoid form keeps the precision that 1 + tanh u loses where tanh u is near -1)
    Shapes:    x, y, gy, gx all (N, ...)

    Args:
        approximate: the tanh form. Defaults to False, the exact form (as Keras's "gelu").
    """

    formula = "y = x Phi(x)  |  gx = gy * (Phi(x) + x phi(x))"

    def __init__(self, approximate=False, **kwargs):
        super().__init__(**kwargs)
        self.approximate = validation.flag("approximate", approximate)
        if self.approximate:
            self.formula = "y = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)  |  gx = gy * (s + x s (1 - s) 2 u')"

    def forward(self, x, training=False):
        self._x = x
        if self.approximate:
            self._s = sigmoid(2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))
            return x * self._s
        return x * (1 + erf(x / math.sqrt(2))) / 2

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        x = self._x
        if self.approximate:
            s = self._s
            du = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x)
            return gy * (s + x * s * (1 - s) * 2 * du)
        cdf = (1 + erf(x / math.sqrt(2))) / 2
        pdf = xp.exp(-x * x / 2) / math.sqrt(2 * math.pi)
        return gy * (cdf + x * pdf)

    def get_config(self):
        return {**super().get_config(), "approximate": self.approximate}


class Swish(Layer):
    r"""Swish, also called SiLU: x times its own sigmoid.

    Forward:   y = x s,   s = sigmoid(x)
    Backward:  gx = gy * (s + x s (1 - s))    (product rule, with ds/dx = s (1 - s))
    Shapes:    x, y, gy, gx all (N, ...)
    """

    formula = "y = x sigmoid(x)  |  gx = gy * (s + x s (1 - s)), s = sigmoid(x)"

    def forward(self, x, training=False):
        self._x, self._s = x, sigmoid(x)
        return x * self._s

    def backward(self, gy):
        s = self._s
        return gy * (s + self._x * s * (1 - s))


SiLU = Swish  # Keras's "silu" and "swish" are one function


class Softplus(Layer):
    r"""Softplus, a smooth ReLU.

    Forward:   y = log(1 + exp(x))  computed as max(x, 0) + log(1 + exp(-|x|)): no overflow
    Backward:  gx = gy * sigmoid(x)
    Shapes:    x, y, gy, gx all (N, ...)
    """

    formula = "y = log(1 + exp(x))  |  gx = gy * sigmoid(x)"

    def forward(self, x, training=False):
        xp = backend.get_array_module(x)
        self._x = x
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy):
        return gy * sigmoid(self._x)


def erf(x):
    r"""The error function erf(x) = 2 / sqrt(pi) * integral from 0 to x of exp(-t^2) dt,
    to about 1e-15 (NumPy has none; CuPy's would do, this one runs on both).

    The series erf(a) = 2 / sqrt(pi) exp(-a^2) sum_n 2^n a^(2n+1) / (1 * 3 * ... * (2n+1)) has
    only positive terms (no cancellation): each term is the last times 2 a^2 / (2n+1). Past
    |x| = 6, erf is +-1 to float64's precision, so |x| is capped there, and 3 a^2 + 30 terms
    suffice for the largest a of the array."""
    xp = backend.get_array_module(x)
    a = xp.minimum(xp.abs(x), 6.0)
    a2 = a * a
    if xp is np:  # as many terms as the largest value needs
        terms = int(math.ceil(3 * float(a2.max()))) + 30 if a.size else 0
    else:  # on the GPU, as many as |x| = 6 needs: reading the largest value would wait for the device
        terms = 3 * 36 + 30
    term, total = a, a
    for n in range(1, terms):
        term = term * (2 * a2 / (2 * n + 1))
        total = total + term
    return xp.sign(x) * (2 / math.sqrt(math.pi)) * xp.exp(-a2) * total


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


ACTIVATIONS = {  # Keras's names, each the textbook layer that computes it
    "linear": Linear,
    "relu": ReLU,
    "sigmoid": Sigmoid,
    "softmax": Softmax,
    "tanh": Tanh,
    "leaky_relu": lambda: LeakyReLU(negative_slope=0.2),  # keras.activations.leaky_relu's slope
    "elu": ELU,
    "gelu": GELU,
    "swish": Swish,
    "silu": Swish,
    "softplus": Softplus,
}


def get_activation(activation) -> Layer:
    """An activation layer from a Keras name ("relu", ...), a Layer, or None (linear)."""
    if activation is None:
        return Linear()
    if isinstance(activation, Layer):
        return activation
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS) + [None]}")
    return ACTIVATIONS[activation]()


# --------------------------------------------------------------------------------------
# Layers with a kernel: what Dense and Conv2D share
# --------------------------------------------------------------------------------------


class KernelLayer(Layer):
    """A kernel W, an optional bias b and an activation: what Dense and Conv2D share.

    Args:
        activation: a name ("relu", "sigmoid", "softmax", "tanh", "leaky_relu", "elu",
            "gelu", "swish"/"silu", "softplus", "linear"), an activation layer, or None.
        use_bias: whether to add b. Defaults to True.
        kernel_initializer: name or callable ``f(shape, rng)``. Defaults to
            "glorot_uniform" (as Keras).
        bias_initializer: Defaults to "zeros".
        kernel_regularizer: a penalty on W added to the loss, e.g.
            ``tinynet.regularizers.l2(1e-4)`` (see :mod:`tinynet.regularizers`).
    """

    def __init__(
        self,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.activation = get_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        # what get_config saves: names (a custom function cannot be saved; saved weights replace it anyway)
        self._names = {
            "activation": activation if isinstance(activation, (str, type(None))) else self.describe() or None,
            "kernel_initializer": kernel_initializer if isinstance(kernel_initializer, str) else "glorot_uniform",
            "bias_initializer": bias_initializer if isinstance(bias_initializer, str) else "zeros",
        }

    def build_kernel(self, shape, units, rng):
        """Create kernel (``shape``) and bias (``units``) from the initializers."""
        validation.weights_fit_in_memory(self.name or type(self).__name__, shape, units)  # before drawing
        rng = rng if rng is not None else np.random.default_rng()
        self.kernel = Parameter(self.kernel_initializer(tuple(shape), rng), "kernel")
        self.bias = Parameter(self.bias_initializer((units,), rng), "bias") if self.use_bias else None

    def parameters(self):
        return [self.kernel] + ([self.bias] if self.use_bias else [])

    def get_config(self):
        reg = self.kernel_regularizer
        return {
            "name": self.name,
            **self._names,
            "use_bias": self.use_bias,
            "kernel_regularizer": reg.get_config() if reg else None,
        }

    def describe(self):
        return "" if isinstance(self.activation, Linear) else type(self.activation).__name__.lower()


class Dense(KernelLayer):
    r"""Fully connected layer, ``y = activation(x @ W + b)``, as ``keras.layers.Dense``.

    Shapes:    x (N, I),  W (I, U),  b (U,),  z and y (N, U)
    Forward:   z = x W + b                  z_nu = sum_i x_ni W_iu + b_u
               y = activation(z)
    Backward:  gz = activation.backward(gy) dL/dz, via the activation's own backward
               gW = x^T gz     (I, U)        dL/dW_iu = sum_n x_ni gz_nu
               gb = sum_n gz   (U,)          b is added to every row, so its
                                             gradient sums over the batch
               gx = gz W^T     (N, I)        dL/dx_ni = sum_u gz_nu W_iu

    Args:
        units: the number of outputs U.
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        name, input_shape: as for every :class:`KernelLayer`.

    The kernel is stored (in, out) like Keras, so ``get_weights``/``set_weights`` move
    weights between Keras and tinynet unchanged.
    """

    formula = "y = act(x W + b)  |  gW = x^T gz, gb = sum_n gz, gx = gz W^T"

    def __init__(self, units: int, activation=None, **kwargs):
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"Dense units must be a positive integer, got {units!r}")
        super().__init__(activation, **kwargs)
        self.units = int(units)

    def build(self, input_shape, rng=None):
        if len(input_shape) != 1:
            raise ValueError(
                f"{self.name or 'Dense'} expects samples of shape (features,), got "
                f"{tuple(input_shape)}; add a Flatten() layer before it"
            )
        self.build_kernel((int(input_shape[0]), self.units), self.units, rng)
        return super().build(input_shape, rng)

    def compute_output_shape(self, input_shape):
        return (self.units,)

    def forward(self, x, training=False):
        self._x = x  # backward needs x for gW
        z = x @ self.kernel.value  # z = x W
        if self.use_bias:
            z = z + self.bias.value  #   + b
        return self.activation.forward(z, training)  # y = act(z)

    def backward(self, gy):
        gz = self.activation.backward(gy)  # gz = dL/dz
        self.kernel.grad = self._x.T @ gz  # gW = x^T gz
        if self.use_bias:
            self.bias.grad = gz.sum(axis=0)  # gb = sum_n gz
        return gz @ self.kernel.value.T  # gx = gz W^T

    def keep_input(self, x):
        """Keep ``x`` for ``backward`` (gW = x^T gz) when a fast twin computed the forward."""
        self._x = x

    def get_config(self):
        return {**super().get_config(), "units": self.units}


# --------------------------------------------------------------------------------------
# Shape and regularisation layers
# --------------------------------------------------------------------------------------


class Flatten(Layer):
    r"""Flatten each sample into a vector.

    Forward:   y = x.reshape(N, -1)          (N, d1, d2, ...) -> (N, d1*d2*...)
    Backward:  gx = gy.reshape(x.shape)      a reshape moves no values, so the
                                             gradient is reshaped back
    """

    formula = "y = x.reshape(N, -1)  |  gx = gy.reshape(x.shape)"

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, gy):
        return gy.reshape(self._shape)


class Rescaling(Layer):
    r"""Multiply by a constant and add another, as ``keras.layers.Rescaling`` (e.g. pixels to [0, 1]).

    Forward:   y = x * scale + offset
    Backward:  gx = gy * scale

    Args:
        scale: e.g. 1 / 255.
        offset: Defaults to 0.0.
    """

    formula = "y = x * scale + offset  |  gx = gy * scale"

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = validation.in_range("scale", scale, -math.inf)
        self.offset = validation.in_range("offset", offset, -math.inf)

    def forward(self, x, training=False):
        return x * self.scale + self.offset

    def backward(self, gy):
        return gy * self.scale

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


class Reshape(Layer):
    r"""Reshape each sample to ``target_shape`` (one entry may be -1), as Keras.

    Forward:   y = x.reshape((N,) + target_shape)
    Backward:  gx = gy.reshape(x.shape)
    """

    formula = "y = x.reshape((N,) + target_shape)  |  gx = gy.reshape(x.shape)"

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in self.target_shape) > 1 or any(d < 1 and d != -1 for d in self.target_shape):
            raise ValueError(f"Reshape target_shape takes positive sizes and at most one -1, got {target_shape!r}")

    def compute_output_shape(self, input_shape):
        size = int(np.prod(input_shape))
        known = int(np.prod([d for d in self.target_shape if d != -1]))
        if -1 in self.target_shape and size % known == 0:
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if -1 in self.target_shape or known != size:
            raise ValueError(
                f"cannot reshape samples of shape {tuple(input_shape)} ({size} values) into {self.target_shape}"
            )
        return self.target_shape

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape((x.shape[0],) + self.compute_output_shape(x.shape[1:]))

    def backward(self, gy):
        return gy.reshape(self._shape)

    def get_config(self):
        return {"name": self.name, "target_shape": list(self.target_shape)}
