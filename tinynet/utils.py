"""Keras's ``keras.utils`` helpers: ``set_random_seed`` and ``to_categorical``."""

from __future__ import annotations

import random

import numpy as np

from . import backend
from .preprocessing import to_categorical


def set_random_seed(seed: int):
    """Make every run from here on reproducible, as ``keras.utils.set_random_seed``.

    Seeds Python's ``random``, NumPy's global generator, and tinynet's own: each
    ``Sequential`` made afterwards without ``seed=`` takes the next seed from it, so its
    initial weights, shuffling and dropout masks are the same in every run that makes
    the same models in the same order.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_random_seed expects an integer >= 0, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    backend.seed_models(int(seed))


next_seed = backend.next_model_seed  # its name before it moved to tinynet.backend


__all__ = ["set_random_seed", "to_categorical"]
