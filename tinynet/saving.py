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

**Your own layers.** A layer class of your own is saved by its name and its
``get_config()`` (which must return every argument of its ``__init__``), its weights
like any other. A file names classes, never code: to load it, give the class, as in
Keras, either each time or once for all::

    model = tn.models.load_model("m.npz", custom_objects={"FeatureScale": FeatureScale})

    @tn.saving.register_keras_serializable(package="my_layers")
    class FeatureScale(tn.layers.Layer): ...

The same holds for ``.keras`` files (:mod:`tinynet.files.keras_format`) and for
``ModelCheckpoint``'s files. A file naming a class that is neither built in nor given
is refused with a :class:`ModelFileError` that names it; nothing is ever imported.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import zipfile

import numpy as np

from . import backend, layers, losses, metrics, optimizers
from .files import archives
from .files.fileio import atomic_write, open_regular

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
        layers.LeakyReLU,
        layers.ELU,
        layers.GELU,
        layers.Swish,
        layers.Softplus,
        layers.Rescaling,
        layers.GlobalAveragePooling2D,
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


# ----------------------------------------------------------------- custom objects, the Keras way

_REGISTERED: dict[str, type] = {}  # "package>Name" -> class, filled by register_keras_serializable


def register_keras_serializable(package: str = "Custom", name: str | None = None):
    """Decorator: ``@tn.saving.register_keras_serializable(package="my_layers")`` makes a
    layer class known to every ``load_model`` by the name ``"my_layers>ClassName"`` (Keras's
    registered name; ``name=`` replaces the class's own name), so its files load without
    ``custom_objects``. Returns the class unchanged."""
    if not isinstance(package, str) or ">" in package or not package:
        raise ValueError(f"package must be a non-empty name without '>', got {package!r}")

    def register(cls):
        if not (isinstance(cls, type) and issubclass(cls, layers.Layer)):
            raise TypeError(f"register_keras_serializable registers tinynet Layer classes, got {cls!r}")
        key = f"{package}>{name or cls.__name__}"
        known = _REGISTERED.get(key, cls)
        if (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):  # a redefinition replaces
            raise ValueError(f"{key!r} is already registered, for {known!r}; give this class another name=")
        _REGISTERED[key] = cls
        return cls

    return register


def get_registered_name(cls) -> str:
    """The name a file records for ``cls``: its registered ``"package>Name"``, else its class name."""
    return next((key for key, c in _REGISTERED.items() if c is cls), cls.__name__)


def get_registered_object(name: str, custom_objects=None):
    """The class registered as ``name`` (or given in ``custom_objects`` under it), or None."""
    return (custom_objects or {}).get(name) or _REGISTERED.get(name)


def check_custom_objects(custom_objects):
    """``custom_objects``: None, or a dict of names to tinynet Layer classes; refused otherwise, before any work."""
    if custom_objects is None:
        return {}
    if not isinstance(custom_objects, dict):
        raise TypeError(
            f"custom_objects must be a dict such as {{'FeatureScale': FeatureScale}}, got {custom_objects!r}"
        )
    for key, cls in custom_objects.items():
        if not isinstance(key, str) or not (isinstance(cls, type) and issubclass(cls, layers.Layer)):
            raise TypeError(
                f"custom_objects maps names to tinynet Layer classes, got {key!r}: {cls!r} "
                "(pass the class itself, not an instance or a module)"
            )
    return dict(custom_objects)


def layer_class(class_name, registered_name=None, custom_objects=None):
    """The layer class a file names: given in ``custom_objects`` (by registered name or class
    name), registered, or built in; a ModelFileError message (a str) when none is."""
    for key in (registered_name, class_name):
        found = get_registered_object(key, custom_objects) if isinstance(key, str) else None
        if found is not None:
            return found
    if isinstance(class_name, str) and class_name in LAYER_CLASSES:
        return LAYER_CLASSES[class_name]
    shown = registered_name if isinstance(registered_name, str) and registered_name != class_name else None
    named = f"unknown layer class {class_name!r}{f' (registered as {shown!r})' if shown else ''}"
    if not (isinstance(class_name, str) and class_name.isidentifier()):
        return f"{named}: not a class name"
    return (
        f"{named}: neither a tinynet layer nor given. Pass your class as load_model(path, "
        f"custom_objects={{{class_name!r}: {class_name}}}), or decorate it with "
        "@tinynet.saving.register_keras_serializable() before loading (a file names classes, it never holds code)"
    )


def layer_config(layer) -> dict:
    """``layer.get_config()``, checked to rebuild it: JSON-able, and holding every argument of
    a custom layer's ``__init__`` (a ValueError naming what is missing, before anything is written)."""
    config = layer.get_config()
    kind = type(layer).__name__
    if not isinstance(config, dict):
        raise ValueError(f"layer {layer.name!r} ({kind}): get_config() returned {config!r}, expected a dict")
    if type(layer) not in LAYER_CLASSES.values():
        base = set(inspect.signature(layers.Layer.__init__).parameters)
        wanted = [
            n
            for n, p in inspect.signature(type(layer).__init__).parameters.items()
            if n not in base and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        missing = [n for n in wanted if n not in config]
        if missing:
            fix = ", ".join(f"{n!r}: self.{n}" for n in missing)
            raise ValueError(
                f"layer {layer.name!r} ({kind}) takes {', '.join(missing)} in __init__, but its get_config() "
                f"does not return {'it' if len(missing) == 1 else 'them'}, so it could not be rebuilt: define "
                f"get_config(self) returning {{**super().get_config(), {fix}}}"
            )
    try:
        json.dumps(config)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"layer {layer.name!r} ({kind}): get_config() returned {config!r}, which a model file cannot hold "
            f"({e}); return plain numbers, strings, lists and dicts"
        ) from e
    return config


def model_config(model) -> dict:
    """A model inside another, as a file describes it: its name, seed, input shape and layers."""
    return {
        "name": model.name,
        "seed": model.seed if isinstance(model.seed, (int, type(None))) else None,
        "input_shape": list(model.input_shape),
        "layers": [_layer_description(layer) for layer in model.layers],
    }


def _describe(model) -> dict:
    config = {
        "format": FORMAT,
        "version": VERSION,
        "name": model.name,
        "seed": model.seed if isinstance(model.seed, (int, type(None))) else None,
        "input_shape": list(model.input_shape),
        "layers": [_layer_description(layer) for layer in model.layers],
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
            "metrics": [metrics.serialize(m) for m in model.metric_objects],
            "cuda_graph": model.cuda_graph,
        }
    return config


def _layer_description(layer) -> dict:
    if not isinstance(layer, layers.Layer):  # a model inside the model: its layers, described the same way
        return {"class": "Sequential", "config": model_config(layer)}
    entry = {"class": type(layer).__name__, "config": layer_config(layer)}
    if type(layer) not in LAYER_CLASSES.values():
        entry["registered_name"] = get_registered_name(type(layer))
    return entry


def _training_state(model) -> tuple[dict, dict]:
    """(JSON-able description, arrays) of what resuming needs beyond the weights."""
    state = model.get_state()
    arrays, opt = {}, state["optimizer"] or {"iterations": 0, "learning_rate": None, "slots": {}}
    for name, values in opt["slots"].items():
        arrays.update({f"slot_{name}_{i}": backend.to_numpy(a) for i, a in enumerate(values)})
    state["optimizer"] = {**opt, "slots": {name: len(values) for name, values in opt["slots"].items()}}
    return state, arrays


def check_finite(model, path, include_optimizer=True):
    """Refuse to save NaN or infinite weights (or optimizer state): such a file would not load,
    and must never replace one that does. Raises ValueError naming the layer; nothing is written."""
    for layer in model.layers:
        for p in layer.weights:
            if not bool(backend.get_array_module(p.value).isfinite(p.value).all()):
                raise ValueError(
                    f"{os.fspath(path)}: not saved: layer {layer.name!r} {p.name} contains NaN or infinite "
                    "values (training diverged?); the file there, if any, is unchanged"
                )
    opt = model.optimizer
    for name, arrays in ((opt.slots or {}) if include_optimizer and opt is not None else {}).items():
        if not all(bool(backend.get_array_module(a).isfinite(a).all()) for a in arrays):
            raise ValueError(
                f"{os.fspath(path)}: not saved: the optimizer's {name!r} state contains NaN or infinite "
                "values; the file there, if any, is unchanged"
            )


def save_model(model, path, include_optimizer=True):
    """Write ``model`` to ``path`` (an .npz), atomically; a full checkpoint with
    ``include_optimizer`` (optimizer state, epoch, random states, History)."""
    if not model.built:
        raise RuntimeError("cannot save a model that is not built; train it or give it an Input shape first")
    check_finite(model, path, include_optimizer)
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


MAX_CONFIG = 32 << 20  # bytes of JSON: a 10,000-layer description takes a few MB
MAX_LAYERS = 10_000  # layers a model file may describe (all of them, models inside included)
MAX_NESTING = 4  # models inside models inside ... at most this deep


def _read(path, z) -> tuple[dict, dict]:
    """(the description, {entry name: (shape, dtype)} of every other array) of the open
    archive ``z``: headers only, no array's data is read yet."""
    names = z.namelist()
    if "config.json" in names:
        raise ModelFileError(f"{path}: this is a Keras .keras file; give it the .keras suffix to load it")
    if "tinynet_config.npy" not in names:
        raise ModelFileError(f"{path}: not a tinynet model file (no tinynet_config entry; has {names[:5]})")
    if any(not n.endswith(".npy") for n in names) or len(set(names)) != len(names):
        raise ModelFileError(f"{path}: not a tinynet model file (entries {names[:5]} are not one .npy each)")
    raw = archives.read_npy(z, "tinynet_config.npy", MAX_CONFIG)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError(f"{path}: the model description is {raw.dtype} {raw.shape}, expected uint8 text")
    try:
        config = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
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
    headers = {n[: -len(".npy")]: archives.npy_header(z, n) for n in names if n != "tinynet_config.npy"}
    return config, headers


def load_model(path, model_class, device: str = "cpu", compile: bool = True, custom_objects=None):
    """Rebuild a model saved by :func:`save_model` / ``model.save`` as a ``model_class``
    (:func:`tinynet.models.load_model` passes ``Sequential``).

    Args:
        path: the .npz file.
        device: where to put the model. Defaults to "cpu".
        compile: re-compile with the saved optimizer, loss and metrics, and restore
            a checkpoint's optimizer state, random generators and History.
            Defaults to True.
        custom_objects: ``{"ClassName": cls}`` for layer classes of your own (see the
            module's docstring); registered ones need not be given.

    Raises:
        ModelFileError: for any file that is not a whole, consistent tinynet model;
            never another exception type, whatever the bytes.
    """
    custom_objects = check_custom_objects(custom_objects)
    try:
        return _load(path, model_class, device, compile, custom_objects)
    except (ModelFileError, backend.DeviceUnavailableError):
        raise
    except Exception as e:  # anything the bytes could provoke, named, never raw
        raise ModelFileError(f"{os.fspath(path)}: not a valid tinynet model file ({type(e).__name__}: {e})") from e


def check_layer_count(count, path):
    """Refuse a description of more layers than any model file needs, before building one."""
    if not isinstance(count, int) or count > MAX_LAYERS:
        raise ModelFileError(f"{path}: the file describes {count} layers; at most {MAX_LAYERS} are read")


def weights_needed(layer_list, shape, path) -> int:
    """How many weights the layers (not built yet) will allocate on samples of ``shape``:
    what a file that holds them must hold, known before any weight is allocated."""
    needed = 0
    for layer in layer_list:
        if type(layer) not in LAYER_CLASSES.values():
            break  # a layer of the user's own: its weights are known once it is built (the exact check)
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
        if needed > 2**40:
            raise ModelFileError(f"{path}: the architecture needs at least {needed} weights, past any real model's")
        shape = tuple(int(d) for d in layer.compute_output_shape(shape))
    return needed


def check_size(layer_list, shape, stored, path):
    """Refuse an architecture that needs more weights than the file holds, before any is
    allocated (a hand-edited "units": 10**9 must not fill the memory first). ``stored``
    counts the weights backed by bytes in the file, not what its headers claim."""
    needed = weights_needed(layer_list, shape, path)
    if needed > stored + 10**7:  # far more than the file holds (the exact check follows the build)
        raise ModelFileError(f"{path}: the architecture needs at least {needed} weights, the file holds {stored}")


def _build(config, path, model_class, device, stored, custom_objects):
    try:
        model = model_class(name=config.get("name", "sequential"), device=device, seed=config.get("seed"))
        for layer in _layers_of(config["layers"], path, (model_class, device, custom_objects), [0], 0):
            model.add(layer)
        check_size(model.layers, tuple(config["input_shape"]), stored, path)
        model.build(tuple(config["input_shape"]))
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: the architecture cannot be rebuilt ({type(e).__name__}: {e})") from e
    return model


def _layers_of(entries, path, how, counted, depth):
    """The layers ``entries`` describe, every class known before any layer is made; a model
    inside (class "Sequential") rebuilt the same way, as ``how`` = (model class, device,
    custom objects) says. ``counted`` holds the layers described so far, at every depth."""
    model_class, device, custom_objects = how
    if not isinstance(entries, list):
        raise TypeError(f"the layers are a {type(entries).__name__}, not a list")
    counted[0] += len(entries)
    check_layer_count(counted[0], path)
    nested = [e.get("class") == "Sequential" and "registered_name" not in e for e in entries]
    classes = [
        model_class if n else layer_class(e.get("class"), e.get("registered_name"), custom_objects)
        for n, e in zip(nested, entries)
    ]
    unknown = next((c for c in classes if isinstance(c, str)), None)
    if unknown is not None:  # every class known before any layer is made
        raise ModelFileError(f"{path}: {unknown}")
    made = []
    for cls, entry, inner in zip(classes, entries, nested):
        config = entry["config"]
        if not isinstance(config, dict):
            raise TypeError(f"the config of a {cls.__name__} is {type(config).__name__}, not an object")
        if not inner:
            made.append(cls.from_config(config))
            continue
        if depth >= MAX_NESTING:
            raise ModelFileError(f"{path}: the file nests models more than {MAX_NESTING} deep")
        model = model_class(name=config["name"], device=device, seed=config.get("seed"))
        if config.get("input_shape") is not None:
            model.add(layers.Input(tuple(config["input_shape"])))
        for layer in _layers_of(config["layers"], path, how, counted, depth + 1):
            model.add(layer)
        made.append(model)
    return made


def _set_weights(model, config, z, headers, path):
    expected = config.get("weights", [])
    params = [(layer, p) for layer in model.layers for p in layer.weights]
    stored = sum(k.startswith("weight_") for k in headers)
    if len(expected) != len(params) or any(f"weight_{i}" not in headers for i in range(len(params))):
        raise ModelFileError(
            f"{path}: the architecture has {len(params)} weight arrays, the file "
            f"{stored} (with {len(expected)} described)"
        )
    if stored != len(params):
        raise ModelFileError(f"{path}: the architecture has {len(params)} weight arrays, the file {stored}")
    for i, (layer, p) in enumerate(params):  # every header checked before any data is read
        shape, dtype = headers[f"weight_{i}"]
        if shape != tuple(p.value.shape):
            raise ModelFileError(
                f"{path}: layer {layer.name!r} {p.name} should have shape {p.value.shape}, the file has {shape}"
            )
        if dtype.kind != "f":
            raise ModelFileError(f"{path}: layer {layer.name!r} {p.name} has dtype {dtype}, expected float")
    weights = []
    for i, (layer, p) in enumerate(params):
        w = archives.read_npy(z, f"weight_{i}.npy", p.value.size)
        if not np.all(np.isfinite(w)):
            raise ModelFileError(f"{path}: layer {layer.name!r} {p.name} contains NaN or infinite values")
        weights.append(w)
    model.set_weights(weights)


def _slots(config, z, headers, model, path) -> dict:
    """The optimizer's saved arrays, each header checked against the model's parameters first."""
    counts = config["training_state"]["optimizer"]["slots"]
    if not isinstance(counts, dict):
        raise ModelFileError(f"{path}: the optimizer state's slots are {counts!r}, expected a mapping")
    total = sum(p.value.size for p in model.parameters())
    slots = {}
    for name, count in counts.items():
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= len(model.parameters()) + 1:
            raise ModelFileError(f"{path}: the optimizer state {name!r} has {count!r} arrays")
        keys = [f"slot_{name}_{i}" for i in range(count)]
        if any(k not in headers for k in keys):
            raise ModelFileError(f"{path}: optimizer state is missing arrays")
        declared = sum(math.prod(headers[k][0]) for k in keys)
        kinds = {str(headers[k][1]) for k in keys if headers[k][1].kind != "f"}
        if kinds:
            raise ModelFileError(f"{path}: the optimizer state {name!r} has dtype {kinds.pop()}, expected floats")
        if declared != total:
            raise ModelFileError(
                f"{path}: the optimizer state {name!r} holds {declared} values, the model has {total} parameters"
            )
        slots[name] = [archives.read_npy(z, k + ".npy", total) for k in keys]
    return slots


def _load(path, model_class, device, compile, custom_objects):
    path = os.fspath(path)
    try:
        z = archives.open_zip(path)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except archives.ArchiveRefused as e:
        raise ModelFileError(f"{path}: {e}") from e
    except OSError as e:
        raise ModelFileError(str(e) if path in str(e) else f"{path}: cannot be read ({e})") from e
    except zipfile.BadZipFile as e:
        with open_regular(path) as f:  # never a FIFO swapped in since
            magic = f.read(6)
        if magic == b"\x93NUMPY":
            raise ModelFileError(f"{path}: not a tinynet model file (a single .npy array, not an .npz)") from e
        if magic[:4] == b"PK\x03\x04":
            raise ModelFileError(f"{path}: not a tinynet model file, or truncated/corrupted ({e})") from e
        raise ModelFileError(f"{path}: not a tinynet model file (not an .npz archive: starts with {magic!r})") from e
    with z:
        try:
            return _load_open(path, z, model_class, device, compile, custom_objects)
        except archives.ArchiveRefused as e:
            raise ModelFileError(f"{path}: {e}") from e
        except (zipfile.BadZipFile, EOFError) as e:
            raise ModelFileError(f"{path}: not a tinynet model file, or truncated/corrupted ({e})") from e


def _load_open(path, z, model_class, device, compile, custom_objects):
    config, headers = _read(path, z)
    stored = sum(archives.backed_items(z, k + ".npy", *h) for k, h in headers.items() if k.startswith("weight_"))
    model = _build(config, path, model_class, device, stored, custom_objects)
    _set_weights(model, config, z, headers, path)
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
        try:
            state = dict(config["training_state"])
            opt = dict(state["optimizer"])
            opt["slots"] = _slots(config, z, headers, model, path)
            state["optimizer"] = opt
            model.set_state(state)
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ModelFileError(f"{path}: the training state cannot be restored ({e})") from e
    return model
