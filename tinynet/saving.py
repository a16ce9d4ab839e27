"""Saving and loading models safely: an .npz of arrays plus a JSON description.

The file is a NumPy ``.npz`` (a zip of ``.npy`` arrays) holding:

- ``tinynet_config``: UTF-8 JSON as uint8 bytes: a format name and version, the
  architecture (each layer's class and arguments), the input shape, the compile
  configuration (optimizer, loss, metrics) and a list of the weights with their
  layer, name, shape and dtype;
- ``weight_0``, ``weight_1``, ...: the weights in ``get_weights`` order.

Nothing is ever loaded with pickle (``allow_pickle=False``): a file can hold only
plain arrays and text, never code. Loading checks the format, the version, every
layer class, and each weight's shape and dtype against the rebuilt model, and
turns anything else into a :class:`ModelFileError` that names the file and the
problem. Saving is atomic: a crash mid-save leaves the previous file whole.
"""

from __future__ import annotations

import json
import math
import os
import zipfile

import numpy as np

from . import backend, layers, losses, optimizers
from .fileio import atomic_write

FORMAT = "tinynet-model"
VERSION = 1
LAYER_CLASSES = {
    c.__name__: c
    for c in (
        layers.Activation,
        layers.Dense,
        layers.ReLU,
        layers.Sigmoid,
        layers.Tanh,
        layers.Softmax,
        layers.Flatten,
        layers.Reshape,
        layers.Dropout,
        layers.Conv2D,
        layers.MaxPooling2D,
        layers.AveragePooling2D,
        layers.BatchNormalization,
    )
}


class ModelFileError(ValueError):
    """A file is not a tinynet model, or does not fit the model it describes."""


def _describe(model) -> dict:
    config = {
        "format": FORMAT,
        "version": VERSION,
        "name": model.name,
        "seed": model.seed if isinstance(model.seed, (int, type(None))) else None,
        "input_shape": list(model.input_shape),
        "layers": [{"class": type(layer).__name__, "config": layer.get_config()} for layer in model.layers],
        "weights": [
            {"layer": layer.name, "name": p.name, "shape": list(p.value.shape), "dtype": str(p.value.dtype)}
            for layer in model.layers
            for p in layer.weights
        ],
        "compile": None,
    }
    if model.loss is not None:
        config["compile"] = {
            "optimizer": {"class": type(model.optimizer).__name__, "config": model.optimizer.get_config()},
            "loss": {"class": type(model.loss).__name__, "config": model.loss.get_config()},
            "metrics": list(model.metrics),
            "cuda_graph": model.cuda_graph,
        }
    return config


def _training_state(model) -> tuple[dict, dict]:
    """(JSON-able description, arrays) of what resuming needs beyond the weights."""
    state = model.get_state()
    arrays, opt = {}, state["optimizer"] or {"iterations": 0, "learning_rate": None, "slots": {}}
    for name, values in opt["slots"].items():
        arrays.update({f"slot_{name}_{i}": backend.to_numpy(a) for i, a in enumerate(values)})
    state["optimizer"] = {**opt, "slots": {name: len(values) for name, values in opt["slots"].items()}}
    return state, arrays


def save_model(model, path, include_optimizer=True):
    """Write ``model`` to ``path`` (an .npz), atomically; a full checkpoint with
    ``include_optimizer`` (optimizer state, epoch, random states, History)."""
    if not model.built:
        raise RuntimeError("cannot save a model that is not built; train it or give it an Input shape first")
    for layer in model.layers:
        if type(layer).__name__ not in LAYER_CLASSES:
            raise TypeError(f"cannot save layer {layer.name!r} of type {type(layer).__name__}: not a tinynet layer")
    described = _describe(model)
    extra = {}
    if include_optimizer:
        described["training_state"], extra = _training_state(model)
    config = json.dumps(described).encode("utf-8")
    arrays = {"tinynet_config": np.frombuffer(config, dtype=np.uint8)}
    arrays.update({f"weight_{i}": w for i, w in enumerate(model.get_weights())})
    arrays.update(extra)
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return os.fspath(path)


def _read(path) -> tuple[dict, dict]:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such file")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise ModelFileError(f"{path}: not a tinynet model file (a single .npy array, not an .npz)")
    if magic[:4] != b"PK\x03\x04":
        raise ModelFileError(f"{path}: not a tinynet model file (not an .npz archive: starts with {magic!r})")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "config.json" in f.files:
                raise ModelFileError(f"{path}: this is a Keras .keras file; give it the .keras suffix to load it")
            if "tinynet_config" not in f.files:
                raise ModelFileError(f"{path}: not a tinynet model file (no tinynet_config entry; has {f.files[:5]})")
            arrays = {k: f[k] for k in f.files}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ModelFileError(f"{path}: not a tinynet model file, or truncated/corrupted ({e})") from e
    except ValueError as e:  # includes "Object arrays cannot be loaded when allow_pickle=False"
        raise ModelFileError(f"{path}: refused: {e}") from e
    try:
        config = json.loads(arrays.pop("tinynet_config").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path}: the model description is not valid JSON ({e})") from e
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(
            f"{path}: not a tinynet model file (format {config.get('format')!r})"
            if isinstance(config, dict)
            else f"{path}: the model description is not an object"
        )
    version = config.get("version")
    if not isinstance(version, int) or version > VERSION or version < 1:
        raise ModelFileError(
            f"{path}: format version {version!r}; this tinynet reads versions 1 to {VERSION}"
            + (" (saved by a newer tinynet?)" if isinstance(version, int) and version > VERSION else "")
        )
    return config, arrays


def load_model(path, model_class, device: str = "cpu", compile: bool = True):
    """Rebuild a model saved by :func:`save_model` / ``model.save`` as a ``model_class``
    (:func:`tinynet.models.load_model` passes ``Sequential``).

    Args:
        path: the .npz file.
        device: where to put the model. Defaults to "cpu".
        compile: re-compile with the saved optimizer, loss and metrics, and restore
            a checkpoint's optimizer state, random generators and History.
            Defaults to True.

    Raises:
        ModelFileError: for any file that is not a whole, consistent tinynet model;
            never another exception type, whatever the bytes.
    """
    try:
        return _load(path, model_class, device, compile)
    except (ModelFileError, backend.DeviceUnavailableError):
        raise
    except Exception as e:  # anything the bytes could provoke, named, never raw
        raise ModelFileError(f"{os.fspath(path)}: not a valid tinynet model file ({type(e).__name__}: {e})") from e


def check_size(layer_list, shape, stored, path):
    """Refuse an architecture that needs more weights than the file holds, before any is
    allocated (a hand-edited "units": 10**9 must not fill the memory first)."""
    needed = 0
    for layer in layer_list:
        if not all(isinstance(d, int) and 0 < d < 2**40 for d in shape):
            raise ModelFileError(f"{path}: the architecture has an impossible shape {shape}")
        if isinstance(layer, layers.Dense) and len(shape) != 1:
            break  # the build refuses it with its own message
        if isinstance(layer, layers.Dense):
            needed += (math.prod(shape) + 1) * layer.units
        elif isinstance(layer, layers.Conv2D):
            needed += (math.prod(layer.window.size) * shape[-1] + 1) * layer.filters
        elif isinstance(layer, layers.BatchNormalization):
            needed += 4 * shape[-1]
        if needed > stored + 10**7:  # far more than the file holds (the exact check follows the build)
            raise ModelFileError(f"{path}: the architecture needs at least {needed} weights, the file holds {stored}")
        shape = tuple(int(d) for d in layer.compute_output_shape(shape))


def _build(config, path, model_class, device, stored):
    try:
        model = model_class(name=config.get("name", "sequential"), device=device, seed=config.get("seed"))
        for entry in config["layers"]:
            cls = LAYER_CLASSES.get(entry.get("class"))
            if cls is None:
                raise ModelFileError(f"{path}: unknown layer class {entry.get('class')!r}")
            model.add(cls(**entry["config"]))
        check_size(model.layers, tuple(config["input_shape"]), stored, path)
        model.build(tuple(config["input_shape"]))
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: the architecture cannot be rebuilt ({type(e).__name__}: {e})") from e
    return model


def _set_weights(model, config, arrays, path):
    expected = config.get("weights", [])
    params = [(layer, p) for layer in model.layers for p in layer.weights]
    weights = [arrays.get(f"weight_{i}") for i in range(len(params))]
    stored = sum(k.startswith("weight_") for k in arrays)
    if len(expected) != len(params) or any(w is None for w in weights) or stored != len(params):
        raise ModelFileError(
            f"{path}: the architecture has {len(params)} weight arrays, the file "
            f"{stored} (with {len(expected)} described)"
        )
    for (layer, p), w in zip(params, weights):
        if w.shape != p.value.shape:
            raise ModelFileError(
                f"{path}: layer {layer.name!r} {p.name} should have shape {p.value.shape}, the file has {w.shape}"
            )
        if np.dtype(w.dtype).kind != "f":
            raise ModelFileError(f"{path}: layer {layer.name!r} {p.name} has dtype {w.dtype}, expected float")
        if not np.all(np.isfinite(w)):
            raise ModelFileError(f"{path}: layer {layer.name!r} {p.name} contains NaN or infinite values")
    model.set_weights(weights)


def _load(path, model_class, device, compile):
    config, arrays = _read(path)
    path = os.fspath(path)
    stored = sum(a.size for k, a in arrays.items() if k.startswith("weight_"))
    model = _build(config, path, model_class, device, stored)
    _set_weights(model, config, arrays, path)
    if not (compile and config.get("compile")):
        return model
    c = config["compile"]
    try:
        opt_cls = optimizers.OPTIMIZERS[c["optimizer"]["class"].lower()]
        loss_cls = {cls.__name__: cls for cls in losses.LOSSES.values()}[c["loss"]["class"]]
        optimizer, loss = opt_cls.from_config(c["optimizer"]["config"]), loss_cls(**c["loss"]["config"])
        cuda_graph = c.get("cuda_graph", False)  # older files: none
        if cuda_graph is True and model.device != "gpu":  # a GPU model loaded elsewhere trains as it can
            cuda_graph = "auto"
        model.compile(optimizer, loss, c["metrics"], cuda_graph=cuda_graph)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: the compile configuration cannot be restored ({type(e).__name__}: {e})") from e
    if "training_state" in config:
        state = dict(config["training_state"])
        opt = dict(state["optimizer"])
        opt["slots"] = {
            name: [arrays.get(f"slot_{name}_{i}") for i in range(count)] for name, count in opt["slots"].items()
        }
        if any(v is None for values in opt["slots"].values() for v in values):
            raise ModelFileError(f"{path}: optimizer state is missing arrays")
        state["optimizer"] = opt
        try:
            model.set_state(state)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"{path}: the training state cannot be restored ({e})") from e
    return model
