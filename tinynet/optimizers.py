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

from . import backend, kernels, schedules
from .validation import in_range


class Optimizer:
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

    def flatten_state(self, params):
        """Turn per-parameter state into the state of one flat parameter (the model
        packs its parameters into one buffer; the moments follow, in the same order)."""
        if self.slots is None:
            return
        for name, arrays in self.slots.items():
            if len(arrays) == 1 and arrays[0].ndim == 1 and arrays[0].size == sum(p.value.size for p in params):
                continue  # already flat
            if len(arrays) != len(params) or any(a.shape != p.value.shape for a, p in zip(arrays, params)):
                raise ValueError(f"optimizer state {name!r} does not match the model's parameters")
            xp = backend.get_array_module(arrays[0])
            self.slots[name] = [xp.concatenate([a.ravel() for a in arrays])]

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

    def scratch(self, i, w, count=2):
        """``count`` work arrays shaped like parameter ``i``, made once and reused, so a
        step allocates nothing (for a large model each fresh temporary costs page faults)."""
        cache = self.__dict__.setdefault("_scratch", {})
        arrays = cache.get(i)
        if (
            arrays is None
            or arrays[0].shape != w.shape
            or arrays[0].dtype != w.dtype
            or backend.device_of(arrays[0]) != backend.device_of(w)
        ):
            xp = backend.get_array_module(w)
            arrays = cache[i] = [xp.empty_like(w) for _ in range(count)]
        return arrays

    def to(self, device: str):
        """Move the state to ``device``."""
        if self.slots is not None:
            self.slots = {k: [backend.to_device(a, device) for a in v] for k, v in self.slots.items()}
        return self

    def get_config(self) -> dict:
        keys = ("learning_rate", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm")
        config = {k: getattr(self, k) for k in keys}
        lr = self.learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            config["learning_rate"] = {"schedule": type(lr).__name__, "config": lr.get_config()}
        elif callable(lr):  # an arbitrary function cannot be saved: keep its current value
            config["learning_rate"] = self.current_learning_rate
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            config["learning_rate"] = schedules.SCHEDULES[lr["schedule"]](**lr["config"])
        return cls(**config)


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
            # w <- w - lr g
            w -= lr * g
            return
        m = self.slots["momentum"][i]
        if kernels.fused(w):  # on the GPU: the lines below in one pass
            return kernels.sgd_momentum(w, g, m, lr, self.momentum, self.nesterov)
        # m <- momentum m - lr g
        m *= self.momentum
        m -= lr * g
        if self.nesterov:
            # w <- w + momentum m - lr g
            w += self.momentum * m - lr * g
        else:
            # w <- w + m
            w += m

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
        if kernels.fused(w) and not self.centered and self.momentum == 0:
            return kernels.rmsprop(w, g, v, lr, self.rho, self.epsilon)  # all below, one pass
        tmp, den = self.scratch(i, w)
        # v <- rho v + (1 - rho) g^2
        v *= self.rho
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - self.rho
        v += tmp
        if self.centered:
            a = self.slots["average_gradient"][i]
            # a <- rho a + (1 - rho) g ;  denominator = v - a^2 + eps
            a *= self.rho
            a += (1 - self.rho) * g
            xp.multiply(a, a, out=den)
            xp.subtract(v, den, out=den)
            den += self.epsilon
        else:
            # denominator = v + eps
            xp.add(v, self.epsilon, out=den)
        # step = lr g / sqrt(denominator)
        xp.sqrt(den, out=den)
        xp.multiply(g, lr, out=tmp)
        tmp /= den
        if self.momentum > 0:
            s = self.slots["momentum"][i]
            # s <- momentum s + step ;  step = s
            s *= self.momentum
            s += tmp
            tmp = s
        # w <- w - step
        w -= tmp

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
        b1, b2 = self.beta_1, self.beta_2
        # alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t), with t = iterations + 1
        # (the powers in the parameters' precision, as Keras: in float32 1 - 0.999^1 is
        # 1.3e-5 away from 0.001, which changes the step by 6e-6, relative)
        real = w.dtype.type
        t = real(self.iterations + 1)
        alpha = real(lr) * np.sqrt(1 - real(b2) ** t) / (1 - real(b1) ** t)
        if kernels.fused(w):  # on the GPU: the three updates below in one pass
            return kernels.adam(w, g, m, v, alpha, b1, b2, self.epsilon)
        tmp, den = self.scratch(i, w)
        # m <- m + (g - m)(1 - beta_1)
        xp.subtract(g, m, out=tmp)
        tmp *= 1 - b1
        m += tmp
        # v <- v + (g^2 - v)(1 - beta_2)
        xp.multiply(g, g, out=tmp)
        tmp -= v
        tmp *= 1 - b2
        v += tmp
        # w <- w - alpha m / (sqrt(v) + eps)
        xp.sqrt(v, out=den)
        den += self.epsilon
        xp.multiply(m, alpha, out=tmp)
        tmp /= den
        w -= tmp

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


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
