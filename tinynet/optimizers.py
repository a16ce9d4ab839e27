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


class Nadam(Adam):
    r"""Nadam: Adam with Nesterov momentum (Dozat 2016), Keras's formulation (t = iterations + 1):

    mu_t  = beta_1 (1 - 0.5 * 0.96^t)          the momentum schedule, this step and the next
    mu_t1 = beta_1 (1 - 0.5 * 0.96^(t+1))
    P_t   = mu_1 mu_2 ... mu_t                  their running product (``mu_product``)
    m <- m + (g - m)(1 - beta_1)
    v <- v + (g^2 - v)(1 - beta_2)
    m_hat = mu_t1 m / (1 - P_t mu_t1)  +  (1 - mu_t) g / (1 - P_t)    look ahead one step
    v_hat = v / (1 - beta_2^t)
    w <- w - lr m_hat / (sqrt(v_hat) + eps)
    """

    name = "Nadam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)
        self.mu_product = None  # P_t of the step running now, in the parameters' dtype
        self._known = (0, None)  # (t, P_t) last computed: the next one is one product more

    def apply(self, params):
        """One step: first P_t <- P_(t-1) mu_t (once for all parameters), then each update."""
        if params:
            self.mu_product = self.momentum_product(params[0].value.dtype, self.iterations + 1)
        super().apply(params)

    def momentum_product(self, dtype="float32", t=None):
        """P_t = mu_1 ... mu_t (t defaults to the steps done), multiplied in ``dtype`` one factor a
        step as Keras does: from the last one computed when it is P_t or P_(t-1), else from
        P_0 = 1 (after a restore or a rollback: the same products, in the same order)."""
        real, t = np.dtype(dtype).type, self.iterations if t is None else t
        known_t, known = self._known
        if known is None or known.dtype != real or known_t not in (t, t - 1):
            known_t, known = 0, real(1.0)
        for s in range(known_t + 1, t + 1):
            known = known * real(self.beta_1) * (1 - real(0.5) * real(0.96) ** real(s))  # Keras's order
        self._known = (t, known)
        return known

    def update(self, i, w, g, lr):
        xp = backend.get_array_module(w)
        real, t = w.dtype.type, w.dtype.type(self.iterations + 1)
        m, v = self.slots["m"][i], self.slots["v"][i]
        mu_t = real(self.beta_1) * (1 - real(0.5) * real(0.96) ** t)  # mu_t = beta_1 (1 - 0.5 * 0.96^t)
        mu_t1 = real(self.beta_1) * (1 - real(0.5) * real(0.96) ** (t + 1))  # the same, one step ahead
        p_t = real(self.mu_product)
        m += (g - m) * (1 - self.beta_1)  # m <- m + (g - m)(1 - beta_1)
        v += (g * g - v) * (1 - self.beta_2)  # v <- v + (g^2 - v)(1 - beta_2)
        m_hat = mu_t1 * m / (1 - p_t * mu_t1) + (1 - mu_t) * g / (1 - p_t)
        v_hat = v / (1 - real(self.beta_2) ** t)  # v_hat = v / (1 - beta_2^t)
        w -= lr * m_hat / (xp.sqrt(v_hat) + self.epsilon)  # w <- w - lr m_hat / (sqrt(v_hat) + eps)


class Adamax(Optimizer):
    r"""Adamax: Adam with the infinity norm in place of the root mean square (Kingma & Ba, sec. 7.1).

    m <- m + (g - m)(1 - beta_1)             running mean of g
    u <- max(beta_2 u, |g|)                  decaying maximum of |g|
    w <- w - lr m / ((1 - beta_1^t) (u + eps))    t = iterations + 1
    """

    name = "Adamax"
    slot_names = ("m", "u")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        in_range("beta_1", beta_1, 0, 1, hi_open=True)
        in_range("beta_2", beta_2, 0, 1, hi_open=True)
        in_range("epsilon", epsilon, 0, math.inf)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def update(self, i, w, g, lr):
        xp = backend.get_array_module(w)
        real = w.dtype.type
        m, u = self.slots["m"][i], self.slots["u"][i]
        m += (g - m) * (1 - self.beta_1)  # m <- m + (g - m)(1 - beta_1)
        xp.maximum(self.beta_2 * u, xp.abs(g), out=u)  # u <- max(beta_2 u, |g|)
        correction = 1 - real(self.beta_1) ** real(self.iterations + 1)  # 1 - beta_1^t
        w -= lr * m / (correction * (u + self.epsilon))  # w <- w - lr m / ((1 - beta_1^t)(u + eps))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler 2012): step sizes from running averages of g^2 and of the steps themselves.

    a  <- rho a + (1 - rho) g^2                      running mean of g^2
    dw  = -sqrt(d + eps) / sqrt(a + eps) * g         the step, in the units of w
    d  <- rho d + (1 - rho) dw^2                     running mean of the squared steps
    w  <- w + lr dw

    Keras's default learning rate is 0.001 (the paper has none, that is lr = 1).
    """

    name = "Adadelta"
    slot_names = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        in_range("rho", rho, 0, 1)
        in_range("epsilon", epsilon, 0, math.inf)
        self.rho, self.epsilon = rho, epsilon

    def update(self, i, w, g, lr):
        xp = backend.get_array_module(w)
        a, d = self.slots["accumulated_grad"][i], self.slots["accumulated_delta_var"][i]
        a *= self.rho  # a <- rho a + (1 - rho) g^2
        a += (1 - self.rho) * (g * g)
        dw = -xp.sqrt(d + self.epsilon) / xp.sqrt(a + self.epsilon) * g  # dw = -RMS(d) / RMS(a) g
        d *= self.rho  # d <- rho d + (1 - rho) dw^2
        d += (1 - self.rho) * (dw * dw)
        w += lr * dw  # w <- w + lr dw

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


OPTIMIZERS = {
    "sgd": SGD,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
    "adagrad": Adagrad,
    "nadam": Nadam,
    "adamax": Adamax,
    "adadelta": Adadelta,
}


def get(optimizer) -> Optimizer:
    """An optimizer from a Keras string ("adam", "sgd", ...) or an instance."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()]()
    raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {sorted(OPTIMIZERS)} or an Optimizer instance")
