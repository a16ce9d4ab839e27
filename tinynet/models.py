"""Models, as ``keras.models``: ``Sequential`` and ``load_model``."""

from __future__ import annotations

from . import saving
from .model import Sequential


def load_model(path, device: str = "cpu", compile: bool = True) -> Sequential:
    """Rebuild a model saved by ``model.save`` (see :func:`tinynet.saving.load_model`).

    Args:
        path: the .npz file.
        device: where to put the model. Defaults to "cpu".
        compile: re-compile with the saved optimizer, loss and metrics, and restore
            a checkpoint's optimizer state, random generators and History.
            Defaults to True.

    Raises:
        ModelFileError: for any file that is not a whole, consistent tinynet model.
    """
    return saving.load_model(path, Sequential, device=device, compile=compile)


__all__ = ["Sequential", "load_model"]
