r"""Batch normalization, as ``keras.layers.BatchNormalization``."""

from __future__ import annotations

import numpy as np

from .. import backend
from .core import Layer, Parameter


class BatchNormalization(Layer):
    r"""Normalise each channel (the last axis) to zero mean and unit variance, then scale and shift.

    Statistics are over every axis but the last: M = N (x H x W) values per channel.

    Training:  mu = mean(x),  var = mean((x - mu)^2)           (per channel, biased)
               xhat = (x - mu) / sqrt(var + eps)
               y = gamma * xhat + beta
               moving_mean <- momentum * moving_mean + (1 - momentum) * mu     (and var)
    Inference: y = gamma * (x - moving_mean) / sqrt(moving_var + eps) + beta
    Backward (training), with s = 1 / sqrt(var + eps) and sums over the M values:
               gbeta  = sum gy
               ggamma = sum gy * xhat
               gxhat  = gy * gamma
               gx = s / M * (M * gxhat - sum gxhat - xhat * sum(gxhat * xhat))
               (mu and var depend on every x too: the two sums are their share)
    Backward (inference): gx = gy * gamma / sqrt(moving_var + eps)

    Args:
        momentum: of the moving statistics. Defaults to 0.99 (as Keras).
        epsilon: Defaults to 1e-3 (as Keras).
        center, scale: learn beta / gamma. Default True.
    """

    formula = "y = gamma (x - mu) / sqrt(var + eps) + beta  |  gx = s/M (M gxhat - sum gxhat - xhat sum gxhat xhat)"

    def __init__(self, momentum=0.99, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNormalization momentum must be in [0, 1], got {momentum!r}")
        if not epsilon > 0:
            raise ValueError(f"BatchNormalization epsilon must be > 0, got {epsilon!r}")
        self.momentum, self.epsilon, self.center, self.scale = float(momentum), float(epsilon), center, scale

    def build(self, input_shape, rng=None):
        c = int(input_shape[-1])
        self.gamma = Parameter(np.ones(c, np.float32), "gamma") if self.scale else None
        self.beta = Parameter(np.zeros(c, np.float32), "beta") if self.center else None
        self.moving_mean = Parameter(np.zeros(c, np.float32), "moving_mean")
        self.moving_variance = Parameter(np.ones(c, np.float32), "moving_variance")
        return super().build(input_shape, rng)

    def parameters(self):
        return [p for p in (self.gamma, self.beta) if p is not None]

    def non_trainable(self):
        return [self.moving_mean, self.moving_variance]

    def forward(self, x, training=False):
        xp = backend.get_array_module(x)
        axes = tuple(range(x.ndim - 1))
        gamma = self.gamma.value if self.scale else 1
        beta = self.beta.value if self.center else 0
        if training:
            mu = x.mean(axis=axes)
            var = ((x - mu) ** 2).mean(axis=axes)
            m = self.momentum
            self.moving_mean.value[...] = self.moving_mean.value * m + mu * (1 - m)
            self.moving_variance.value[...] = self.moving_variance.value * m + var * (1 - m)
        else:
            mu, var = self.moving_mean.value, self.moving_variance.value
        self._training = training
        self._inv_std = 1 / xp.sqrt(var + self.epsilon)
        self._xhat = (x - mu) * self._inv_std
        return gamma * self._xhat + beta

    def backward(self, gy):
        axes = tuple(range(gy.ndim - 1))
        xhat, s = self._xhat, self._inv_std
        if self.center:
            self.beta.grad = gy.sum(axis=axes)
        if self.scale:
            self.gamma.grad = (gy * xhat).sum(axis=axes)
        gxhat = gy * self.gamma.value if self.scale else gy
        if not self._training:
            return gxhat * s
        m = gy.size // gy.shape[-1]
        return s / m * (m * gxhat - gxhat.sum(axis=axes) - xhat * (gxhat * xhat).sum(axis=axes))

    def get_config(self):
        return {
            "name": self.name,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }
