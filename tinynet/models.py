"""Models, as ``keras.models``: ``Sequential`` and ``load_model``."""

from __future__ import annotations

from . import saving
from .files import fileio, keras_format
from .sequential import Sequential


def load_model(path, device: str = "cpu", compile: bool = True, custom_objects=None) -> Sequential:
    """Rebuild a model saved by ``model.save``, or by Keras 3 as ``.keras``.

    Args:
        path: a tinynet .npz (model or checkpoint, see :mod:`tinynet.saving`) or a Keras 3
            .keras file of a Sequential model (see :mod:`tinynet.files.keras_format`).
        device: where to put the model. Defaults to "cpu".
        compile: re-compile with the saved optimizer, loss and metrics, and restore
            a checkpoint's optimizer state, random generators and History.
            Defaults to True.
        custom_objects: ``{"ClassName": cls}``: layer classes of your own that the file
            names (see :mod:`tinynet.saving`); a class registered with
            ``tinynet.saving.register_keras_serializable`` need not be given.

    Raises:
        ModelFileError: for any file that is not a whole, consistent tinynet model.
    """
    path = fileio.file_path(path, "load_model")
    if path.endswith(".keras"):
        return keras_format.load_model(path, Sequential, device, compile, custom_objects)
    return saving.load_model(path, Sequential, device=device, compile=compile, custom_objects=custom_objects)


__all__ = ["Sequential", "load_model"]
