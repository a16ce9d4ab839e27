"""Dropout: the regularisation layer that zeroes a random fraction of its inputs while training."""

from __future__ import annotations

from .. import backend
from .core import Layer


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

    formula = "y = x * m / (1 - rate), m ~ Bernoulli(1 - rate)  |  gx = gy * m / (1 - rate)"

    def __init__(self, rate: float, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.rng = None

    def reset_rng(self, seed, device: str):
        """Start a fresh mask generator on ``device`` (the model calls this)."""
        self.rng = backend.random_generator(seed, device)
        self.rng_seed, self.rng_device = seed, device

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self._scale = 1
            return x
        if self.rng is None or self.rng_device != backend.device_of(x):
            self.reset_rng(self.seed, backend.device_of(x))
        keep = 1.0 - self.rate
        # m / keep, the mask with the 1/keep factor already in it, in x's dtype
        self._scale = (self.rng.random(x.shape) < keep).astype(x.dtype) / x.dtype.type(keep)
        return x * self._scale

    def backward(self, gy):
        return gy * self._scale

    def get_config(self):
        return {"name": self.name, "rate": self.rate, "seed": self.seed}

    def describe(self):
        return f"rate {self.rate:g}"
