r"""Optimizers with Keras's exact update formulas, applied in place.

An optimizer takes the model's list of :class:`~tinynet.layers.Parameter` and, once
per training step, moves every ``p.value`` using its ``p.grad``. Its state (moments,
velocities) is kept in lists parallel to that parameter list.

Each step runs in Keras's order:

1. clip the gradient (``clipnorm`` per parameter, ``global_clipnorm`` over all of
   them, or ``clipvalue`` element-wise; at most one of the three);
2. decoupled weight decay, if any: ``w <- w - w * weight_decay * lr``;
3. the optimizer's own update, written out above each line of ``update``.

The step counter ``iterations`` counts finished steps; Adam's bias corrections use
``t = iterations + 1``.
"""

from __future__ import annotations

import math

import numpy as np

from . import backend
from .engine.optimizer_state import OptimizerState
from .validation import in_range


class Optimizer(OptimizerState):
    """Base class: clipping, weight decay, the step counter and per-parameter state.

    Args:
        learning_rate: the step size, >= 0.
        weight_decay: decoupled weight decay factor, or None.
        clipnorm: clip each gradient to at most this L2 norm.
        clipvalue: clip each gradient element to [-clipvalue, clipvalue].
        global_clipnorm: clip all gradients together to this global L2 norm.
    """

    name = "optimizer"
    slot_names: tuple[str, ...] = ()

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None):
        if not callable(learning_rate):
            in_range("learning_rate", learning_rate, 0, math.inf)
        for name, value in (
            ("weight_decay", weight_decay),
            ("clipnorm", clipnorm),
            ("clipvalue", clipvalue),
            ("global_clipnorm", global_clipnorm),
        ):
            if value is not None:
                in_range(name, value, 0, math.inf, lo_open=name != "weight_decay")
        if sum(v is not None for v in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("set at most one of clipnorm, clipvalue and global_clipnorm (as Keras)")
        # a number, or a schedule: any callable of the step (see tinynet.schedules)
        self.learning_rate = learning_rate if callable(learning_rate) else float(learning_rate)
        weight_decay = float(weight_decay) if weight_decay is not None else None
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.iterations = 0
        self.slots = None  # {slot name: [one array per parameter]}, made at the first step

    def build(self, params):
        """Zero state for each parameter, on the parameters' device."""
        self.slots = {
            name: [backend.get_array_module(p.value).zeros_like(p.value) for p in params] for name in self.slot_names
        }

    def apply(self, params):
        """One optimisation step over ``params`` (their ``.grad`` must be filled)."""
        if self.slots is None:
            self.build(params)
        lr = self.current_learning_rate
        grads = self._clip([p.grad for p in params])
        for i, (p, g) in enumerate(zip(params, grads)):
            if self.weight_decay:
                # w <- w - w * weight_decay * lr            (decoupled weight decay)
                p.value -= p.value * (self.weight_decay * lr)
            self.update(i, p.value, g, lr)
        self.iterations += 1

    @property
    def current_learning_rate(self) -> float:
        """The learning rate of the next step (a schedule is evaluated at ``iterations``)."""
        if callable(self.learning_rate):
            lr = float(self.learning_rate(self.iterations))
            if not (math.isfinite(lr) and lr >= 0):
                raise ValueError(f"the learning-rate schedule gave {lr!r} at step {self.iterations}")
            return lr
        return self.learning_rate

    def _clip(self, grads):
        if not grads:
            return grads
        xp = backend.get_array_module(grads[0])
        # the norms stay on the device: no host read in the step
        if self.clipnorm is not None:
            # g <- g * clipnorm / max(||g||, clipnorm)      (each gradient on its own)
            c = self.clipnorm
            return [g * (c / xp.maximum(xp.sqrt((g * g).sum()), c)).astype(g.dtype) for g in grads]
        if self.global_clipnorm is not None:
            # g <- g * c / max(sqrt(sum of all ||g||^2), c)
            c = self.global_clipnorm
            total = xp.sqrt(sum((g * g).sum() for g in grads))
            return [g * (c / xp.maximum(total, c)).astype(g.dtype) for g in grads]
        if self.clipvalue is not None:
            return [xp.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def update(self, i, w, g, lr):
        """Update parameter ``i`` (array ``w``, gradient ``g``) in place."""
        raise NotImplementedError


class SGD(Optimizer):
    r"""Stochastic gradient descent, with optional (Nesterov) momentum.

    momentum == 0:   w <- w - lr g
    momentum > 0:    m <- momentum m - lr g
                     w <- w + m                         (classical)
                     w <- w + momentum m - lr g         (nesterov=True)
    """

    name = "SGD"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        in_range("momentum", momentum, 0, 1)
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.slot_names = ("momentum",) if self.momentum > 0 else ()

    def update(self, i, w, g, lr):
        if self.momentum == 0:
            w -= lr * g  # w <- w - lr g
            return
        m = self.slots["momentum"][i]
        m *= self.momentum  # m <- momentum m - lr g
        m -= lr * g
        if self.nesterov:
            w += self.momentum * m - lr * g  # w <- w + momentum m - lr g
        else:
            w += m  # w <- w + m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    r"""RMSprop: divide the step by a running root mean square of the gradient.

    v <- rho v + (1 - rho) g^2
    (centered)  a <- rho a + (1 - rho) g ;  denominator = v - a^2 + eps
    (otherwise) denominator = v + eps                  (eps inside the sqrt, as Keras)
    step = lr g / sqrt(denominator)
    (momentum > 0)  s <- momentum s + step ;  step = s
    w <- w - step
    """

    name = "RMSprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        in_range("rho", rho, 0, 1, hi_open=True)
        in_range("momentum", momentum, 0, 1)
        in_range("epsilon", epsilon, 0, math.inf)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered
        self.slot_names = (
            ("velocity",) + (("average_gradient",) if centered else ()) + (("momentum",) if momentum > 0 else ())
        )

    def update(self, i, w, g, lr):
        xp = backend.get_array_module(w)
        v = self.slots["velocity"][i]
        v *= self.rho  # v <- rho v + (1 - rho) g^2
        v += (1 - self.rho) * (g * g)
        if self.centered:
            a = self.slots["average_gradient"][i]
            a *= self.rho  # a <- rho a + (1 - rho) g
            a += (1 - self.rho) * g
            denominator = v - a * a + self.epsilon  # v - a^2 + eps
        else:
            denominator = v + self.epsilon  # v + eps
        step = lr * g / xp.sqrt(denominator)  # step = lr g / sqrt(denominator)
        if self.momentum > 0:
            s = self.slots["momentum"][i]
            s *= self.momentum  # s <- momentum s + step
            s += step
            step = s
        w -= step  # w <- w - step

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


class Adam(Optimizer):
    r"""Adam, with Keras's formulation (t = iterations + 1):

    m <- m + (g - m)(1 - beta_1)             running mean of g
    v <- v + (g^2 - v)(1 - beta_2)           running mean of g^2
    alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)   both bias corrections, folded
                                                     into the step size
    w <- w - alpha m / (sqrt(v) + eps)

    eps is added to the *uncorrected* sqrt(v) (the paper's "epsilon hat"); PyTorch
    adds it to the corrected one, so the two differ slightly whatever eps is.
    """

    name = "Adam"
    slot_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        in_range("beta_1", beta_1, 0, 1, hi_open=True)
        in_range("beta_2", beta_2, 0, 1, hi_open=True)
        in_range("epsilon", epsilon, 0, math.inf)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def update(self, i, w, g, lr):
        xp = backend.get_array_module(w)
        m, v = self.slots["m"][i], self.slots["v"][i]
        m += (g - m) * (1 - self.beta_1)  # m <- m + (g - m)(1 - beta_1)
        v += (g * g - v) * (1 - self.beta_2)  # v <- v + (g^2 - v)(1 - beta_2)
        # alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t), t = iterations + 1 (powers in float32, as Keras)
        alpha = adam_step_size(lr, self.beta_1, self.beta_2, self.iterations + 1, w.dtype)
        w -= alpha * m / (xp.sqrt(v) + self.epsilon)  # w <- w - alpha m / (sqrt(v) + eps)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


def adam_step_size(lr, beta_1, beta_2, t, dtype):
    """Adam's step size alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t), with the powers
    computed in ``dtype``, the parameters' precision, as Keras computes them: in float32,
    ``1 - 0.999`` is 1.3e-5 off 0.001, which changes the step by about 6e-6 relative."""
    real = np.dtype(dtype).type
    return real(lr) * np.sqrt(1 - real(beta_2) ** real(t)) / (1 - real(beta_1) ** real(t))


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.004, as Keras): step 2 of the
    optimizer's order, ``w <- w - w * weight_decay * lr``, then the Adam update."""

    name = "AdamW"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


class Adagrad(Optimizer):
    r"""Adagrad: per-element step sizes from the sum of all squared gradients.

    a <- a + g^2                  (a starts at initial_accumulator_value)
    w <- w - lr g / sqrt(a + eps)
    """

    name = "Adagrad"
    slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        in_range("initial_accumulator_value", initial_accumulator_value, 0, math.inf)
        in_range("epsilon", epsilon, 0, math.inf)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def build(self, params):
        super().build(params)
        for a in self.slots["accumulator"]:
            a += self.initial_accumulator_value

    def update(self, i, w, g, lr):
        xp = backend.get_array_module(w)
        a = self.slots["accumulator"][i]
        # a <- a + g^2
        a += g * g
        # w <- w - lr g / sqrt(a + eps)
        w -= lr * g / xp.sqrt(a + self.epsilon)

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW, "adagrad": Adagrad}


def get(optimizer) -> Optimizer:
    """An optimizer from a Keras string ("adam", "sgd", ...) or an instance."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()]()
    raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {sorted(OPTIMIZERS)} or an Optimizer instance")
