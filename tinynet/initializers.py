"""Weight initializers, with Keras's formulas and names.

Every initializer draws on the host from a seeded NumPy ``Generator`` and returns a
float32 NumPy array; the model moves it to its device afterwards. So the same seed
gives the same initial weights on the CPU and on the GPU.

``fan_in`` and ``fan_out`` follow Keras: for a Dense kernel of shape (in, out) they
are ``in`` and ``out``; for a convolution kernel (kh, kw, in, out) each is multiplied
by the receptive field ``kh * kw``.
"""

from __future__ import annotations

import numpy as np


def _fans(shape) -> tuple[int, int]:
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated_normal(rng, stddev, shape):
    """Normal(0, stddev) redrawn outside two standard deviations (as Keras)."""
    out = rng.normal(0.0, stddev, size=shape)
    bad = np.abs(out) > 2 * stddev
    while bad.any():
        out[bad] = rng.normal(0.0, stddev, size=int(bad.sum()))
        bad = np.abs(out) > 2 * stddev
    return out


def glorot_uniform(shape, rng):
    """U(-l, l) with l = sqrt(6 / (fan_in + fan_out)). Keras's default for Dense."""
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def glorot_normal(shape, rng):
    """Truncated normal with stddev sqrt(2 / (fan_in + fan_out)) / 0.8796..."""
    fan_in, fan_out = _fans(shape)
    # 0.87962566... is the stddev of a unit normal truncated at +-2; Keras divides by
    # it so that the truncated distribution has the intended variance.
    stddev = np.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978
    return _truncated_normal(rng, stddev, shape).astype(np.float32)


def he_normal(shape, rng):
    """Truncated normal with stddev sqrt(2 / fan_in) / 0.8796... (good before ReLU)."""
    fan_in, _ = _fans(shape)
    stddev = np.sqrt(2.0 / fan_in) / 0.87962566103423978
    return _truncated_normal(rng, stddev, shape).astype(np.float32)


def he_uniform(shape, rng):
    """U(-l, l) with l = sqrt(6 / fan_in)."""
    fan_in, _ = _fans(shape)
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def zeros(shape, rng=None):
    return np.zeros(shape, dtype=np.float32)


def ones(shape, rng=None):
    return np.ones(shape, dtype=np.float32)


INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "zeros": zeros,
    "ones": ones,
}


def get(initializer):
    """Look an initializer up by name, or pass a callable ``f(shape, rng)`` through."""
    if callable(initializer):
        return initializer
    if initializer not in INITIALIZERS:
        raise ValueError(
            f"unknown initializer {initializer!r}; expected one of {sorted(INITIALIZERS)} or a callable f(shape, rng)"
        )
    return INITIALIZERS[initializer]
