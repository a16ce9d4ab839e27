r"""Losses: a scalar L from predictions and targets, and dL/d(predictions).

Each loss is an object with the same two-step contract as a layer::

    L  = loss.forward(y_pred, y_true)   # mean over the batch, a 0-d array
    gp = loss.backward()                # dL/dy_pred, the shape of y_pred

A loss class writes two formulas: ``per_sample`` (each sample's loss l_n) and
``gradient`` (dL/dy_pred of their mean). With sample weights w (Keras's
``sample_weight``), L = 1/N sum_n w_n l_n and each sample's gradient is scaled by w_n.

Cross-entropies: from probabilities or from logits
---------------------------------------------------
A cross-entropy can be fed probabilities p (``from_logits=False``) or logits z, the
input of the softmax (``from_logits=True``). From logits it is both cheaper and
exactly stable, and its gradient collapses to a famous one-liner::

    p = softmax(z),   L = -1/N sum_n log p[n, t_n]   =>   dL/dz = (p - onehot(t)) / N

A loss object computes exactly what its ``from_logits`` says; Keras's rule that
reads a softmax/sigmoid output's logits anyway is applied by the model
(:mod:`tinynet.engine.keras_rules`).

All losses here reduce like Keras's default "sum_over_batch_size": the mean over
the batch of each sample's loss (for binary cross-entropy and MSE a sample's loss is
the mean over its last axis).
"""

from __future__ import annotations

import copy

import numpy as np

from . import backend, validation
from .layers.core import sigmoid

EPSILON = 1e-7  # Keras's "fuzz factor", keras.config.epsilon()


class Loss:
    """Base class. ``name`` is the Keras string for the loss."""

    name = "loss"
    is_crossentropy = False

    def __init__(self, from_logits: bool = False, use_output_logits: bool = True):
        self.from_logits = bool(from_logits)
        self.use_output_logits = bool(use_output_logits)

    def forward(self, y_pred, y_true, sample_weight=None):
        """L = 1/N sum_n w_n l_n: the mean of each sample's loss (w_n = 1 without weights)."""
        losses = self.per_sample(y_pred, y_true)
        self._w = None if sample_weight is None else sample_weight.reshape((-1,) + (1,) * (losses.ndim - 1))
        return losses.mean() if sample_weight is None else (losses * self._w).sum() / losses.size

    def backward(self):
        """dL/dy_pred: the gradient of the mean, each sample's part scaled by its weight."""
        g = self.gradient()
        return g if self._w is None else g * self._w.reshape((-1,) + (1,) * (g.ndim - 1))

    def per_sample(self, y_pred, y_true):
        """Each sample's loss, shape (N,) (or more axes: the batch first)."""
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        """``loss(y_true, y_pred)``: the loss of a batch, in Keras's order (the targets first), as
        ``keras.losses.Loss`` is called. It is :meth:`forward` with the textbook's order (the
        prediction first, as every layer's input comes first); lists are taken as arrays. The
        result is a NumPy (or CuPy) scalar: no ``.numpy()`` is needed, or exists."""
        xp = backend.get_array_module(y_pred)
        y_true, y_pred = xp.asarray(y_true), xp.asarray(y_pred)
        if y_pred.dtype.kind != "f" and y_true.dtype.kind == "f":
            raise TypeError(
                f"{type(self).__name__}(y_true, y_pred) takes the targets first, as Keras: y_pred has integer "
                f"dtype {y_pred.dtype} and y_true floats {y_true.dtype}; swap them"
            )
        return self.forward(y_pred, y_true, None if sample_weight is None else xp.asarray(sample_weight))

    def gradient(self):
        """dL/dy_pred of the mean of ``per_sample``, the shape of y_pred."""
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"from_logits": self.from_logits, "use_output_logits": self.use_output_logits}

    def with_logits(self) -> Loss:
        """A copy of this loss that reads its input as logits."""
        other = copy.copy(self)
        other.from_logits = True
        return other

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"


def _log_softmax(z):
    """log softmax(z) row-wise, stable: z - max - log(sum(exp(z - max)))."""
    xp = backend.get_array_module(z)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def one_hot(labels, num_classes: int, dtype):
    """(N,) integer labels -> (N, C) one-hot rows, on the labels' device."""
    xp = backend.get_array_module(labels)
    out = xp.zeros((labels.shape[0], num_classes), dtype=dtype)
    out[xp.arange(labels.shape[0]), labels] = 1
    return out


class CategoricalCrossentropy(Loss):
    r"""Cross-entropy between target distributions t (N, C) and predictions.

    From logits z (N, C):
        log p = log_softmax(z)
        L  = -1/N sum_n sum_c t_nc log p_nc
        gz = (p * sum_c t_nc - t) / N        = (p - t) / N when rows of t sum to 1

    From probabilities y (N, C) (Keras's non-TensorFlow semantics):
        q  = y / sum_c y_c                    renormalise each row
        qc = clip(q, eps, 1 - eps)
        L  = -1/N sum_n sum_c t_nc log qc_nc
        gq = -t / qc / N  where eps <= q <= 1 - eps, else 0 (clip passes no gradient)
        gy = (gq - sum_c gq_c q_c) / sum_c y_c  (the renormalisation's Jacobian)

    Args:
        from_logits: whether ``y_pred`` are logits. Defaults to False.
        use_output_logits: in a model whose output is a softmax/sigmoid, compute
            the loss from its logits as Keras's TensorFlow backend does. Defaults
            to True. See :mod:`tinynet.engine.keras_rules`.
    """

    name = "categorical_crossentropy"
    is_crossentropy = True

    def _targets(self, y_true, y_pred):
        return y_true.astype(y_pred.dtype, copy=False)

    def per_sample(self, y_pred, y_true):
        xp = backend.get_array_module(y_pred)
        t = self._targets(y_true, y_pred)
        self._t, self._n = t, y_pred.shape[0]
        if self.from_logits:
            log_p = _log_softmax(y_pred)
            self._p = xp.exp(log_p)
            return -(t * log_p).sum(axis=-1)
        self._sum = y_pred.sum(axis=-1, keepdims=True)
        self._q = y_pred / self._sum
        self._qc = xp.clip(self._q, EPSILON, 1 - EPSILON)
        return -(t * xp.log(self._qc)).sum(axis=-1)

    def gradient(self):
        t, n = self._t, self._n
        if self.from_logits:
            return (self._p * t.sum(axis=-1, keepdims=True) - t) / n
        q = self._q
        inside = (q >= EPSILON) & (q <= 1 - EPSILON)
        gq = -t / self._qc / n * inside
        return (gq - (gq * q).sum(axis=-1, keepdims=True)) / self._sum


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    r"""Categorical cross-entropy with integer labels t (N,) in [0, C).

    The same math as :class:`CategoricalCrossentropy` with t = onehot(labels); from
    logits the gradient is the famous ``(softmax(z) - onehot(t)) / N``.
    """

    name = "sparse_categorical_crossentropy"

    def _targets(self, y_true, y_pred):
        labels = y_true.reshape(-1)
        if labels.dtype.kind == "f" and y_pred.dtype.kind == "f":  # labels stored as floats, as Keras takes
            labels = labels.astype(np.int64)
        if labels.dtype.kind == "f" and y_pred.dtype.kind in "iub":
            raise TypeError(
                f"{type(self).__name__}.forward(y_pred, y_true) takes the prediction first (the textbook's "
                f"order); here y_pred has integer dtype {y_pred.dtype}: swap them, or call the loss as "
                "loss(y_true, y_pred), Keras's order"
            )
        return one_hot(labels, y_pred.shape[-1], y_pred.dtype)

    def gradient(self):
        if self.from_logits:
            # one-hot rows sum to 1: the general (p * sum(t) - t) / N is (p - onehot) / N
            return (self._p - self._t) / self._n
        return super().gradient()


class BinaryCrossentropy(Loss):
    r"""Element-wise binary cross-entropy, targets t in [0, 1] with y_pred's shape.

    From logits z (M = z.size elements; each sample's loss is the mean over its last axis):
        L  = 1/M sum max(z, 0) - z t + log(1 + exp(-|z|))
             (= -t log sigmoid(z) - (1 - t) log(1 - sigmoid(z)), written so that
             nothing overflows)
        gz = (sigmoid(z) - t) / M

    From probabilities y:
        yc = clip(y, eps, 1 - eps)
        L  = -1/M sum t log yc + (1 - t) log(1 - yc)
        gy = -(t / yc - (1 - t) / (1 - yc)) / M   where eps <= y <= 1 - eps, else 0
    """

    name = "binary_crossentropy"
    is_crossentropy = True

    def per_sample(self, y_pred, y_true):
        xp = backend.get_array_module(y_pred)
        t = y_true.astype(y_pred.dtype, copy=False).reshape(y_pred.shape)
        self._t, self._m = t, y_pred.size
        if self.from_logits:
            z = self._z = y_pred
            return (xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-xp.abs(z)))).mean(axis=-1)
        self._y = y_pred
        self._yc = yc = xp.clip(y_pred, EPSILON, 1 - EPSILON)
        return -(t * xp.log(yc) + (1 - t) * xp.log(1 - yc)).mean(axis=-1)

    def gradient(self):
        t, m = self._t, self._m
        if self.from_logits:
            return (sigmoid(self._z) - t) / m
        y, yc = self._y, self._yc
        inside = (y >= EPSILON) & (y <= 1 - EPSILON)
        return -(t / yc - (1 - t) / (1 - yc)) / m * inside


class MeanSquaredError(Loss):
    r"""Mean squared error.

    Forward:   L  = 1/M sum (y - t)^2          (M = y.size; per sample: the mean over the last axis)
    Backward:  gy = 2 (y - t) / M
    """

    name = "mean_squared_error"

    def __init__(self):
        super().__init__(from_logits=False, use_output_logits=False)

    def get_config(self):
        return {}

    def per_sample(self, y_pred, y_true):
        t = y_true.astype(y_pred.dtype, copy=False).reshape(y_pred.shape)
        self._diff = y_pred - t
        return (self._diff * self._diff).mean(axis=-1)

    def gradient(self):
        return 2 * self._diff / self._diff.size


class MeanAbsoluteError(Loss):
    r"""Mean absolute error.

    Forward:   L  = 1/M sum |y - t|             (M = y.size; per sample: the mean over the last axis)
    Backward:  gy = sign(y - t) / M             (0 where y = t exactly: |e| has no slope there)
    """

    name = "mean_absolute_error"

    def __init__(self):
        super().__init__(from_logits=False, use_output_logits=False)

    def get_config(self):
        return {}

    def per_sample(self, y_pred, y_true):
        t = y_true.astype(y_pred.dtype, copy=False).reshape(y_pred.shape)
        self._diff = y_pred - t
        return backend.get_array_module(y_pred).abs(self._diff).mean(axis=-1)

    def gradient(self):
        return backend.get_array_module(self._diff).sign(self._diff) / self._diff.size


class Huber(Loss):
    r"""Huber loss: squared for small errors, linear for large ones (robust to outliers).

    Forward:   e = y - t;  per element  e^2 / 2           where |e| <= delta
                                        delta (|e| - delta / 2)  elsewhere
               L = 1/M sum of those     (M = y.size; per sample: the mean over the last axis)
    Backward:  gy = clip(e, -delta, delta) / M   (e inside, delta sign(e) outside: the two pieces' slopes)

    Args:
        delta: where the square turns linear. Defaults to 1.0, as Keras.
    """

    name = "huber"

    def __init__(self, delta=1.0):
        super().__init__(from_logits=False, use_output_logits=False)
        self.delta = validation.in_range("delta", delta, 0, lo_open=True)

    def get_config(self):
        return {"delta": self.delta}

    def per_sample(self, y_pred, y_true):
        xp = backend.get_array_module(y_pred)
        e = self._e = y_pred - y_true.astype(y_pred.dtype, copy=False).reshape(y_pred.shape)
        a, d = xp.abs(e), self.delta
        return xp.where(a <= d, e * e / 2, d * (a - d / 2)).mean(axis=-1)

    def gradient(self):
        return backend.get_array_module(self._e).clip(self._e, -self.delta, self.delta) / self._e.size


class KLDivergence(Loss):
    r"""Kullback-Leibler divergence of the predicted distribution y from the target t, per sample.

    Forward:   tc = clip(t, eps, 1),  yc = clip(y, eps, 1)       (as Keras: no log of 0)
               L  = 1/N sum_n sum_c tc log(tc / yc)     (N rows: every axis but the last, c)
    Backward:  gy = -tc / yc / N  where eps <= y <= 1, else 0    (the clip passes no gradient)
    """

    name = "kl_divergence"

    def __init__(self):
        super().__init__(from_logits=False, use_output_logits=False)

    def get_config(self):
        return {}

    def per_sample(self, y_pred, y_true):
        xp = backend.get_array_module(y_pred)
        t = y_true.astype(y_pred.dtype, copy=False).reshape(y_pred.shape)
        self._y, self._n = y_pred, y_pred.size // max(y_pred.shape[-1], 1) if y_pred.ndim else 1  # samples averaged
        self._tc, self._yc = xp.clip(t, EPSILON, 1), xp.clip(y_pred, EPSILON, 1)
        return (self._tc * xp.log(self._tc / self._yc)).sum(axis=-1)

    def gradient(self):
        inside = (self._y >= EPSILON) & (self._y <= 1)
        return -self._tc / self._yc / self._n * inside


LOSSES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "huber": Huber,
    "kl_divergence": KLDivergence,
    "kld": KLDivergence,
}


def get(loss) -> Loss:
    """A loss from a Keras string or a :class:`Loss` instance."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]()
    raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(LOSSES)} or a Loss instance")
