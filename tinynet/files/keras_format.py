"""Keras 3 model files, both ways: ``.keras`` models and ``.weights.h5`` weights.

A ``.keras`` file (Keras 3's native format) is a zip of three entries:

- ``metadata.json``: ``{"keras_version": ..., "date_saved": ...}``;
- ``config.json``: the model as nested ``{"module", "class_name", "config", ...}``
  objects: a ``Sequential`` whose ``layers`` list starts with an ``InputLayer``;
- ``model.weights.h5``: HDF5, each layer's arrays at ``layers/<group>/vars/<i>`` in
  ``get_weights`` order, where ``<group>`` is the layer's class in snake case,
  numbered per class (``dense``, ``dense_1``, ...) and the ``vars`` group's ``name``
  attribute is the layer's own name; the optimizer's variables at
  ``optimizer/vars/<i>`` (the step, the learning rate, then its state per weight).

Reading turns every layer into its tinynet twin and refuses, naming the layer, the
option and the file, anything tinynet would compute differently (a dilation, a
constraint, channels-first data, a frozen layer, ...): a model is never
approximated. Nothing is executed or unpickled; every field is checked, and any
damaged or foreign file gives one :class:`~tinynet.saving.ModelFileError`.
HDF5 needs h5py: ``pip install "tinynet[keras]"`` (``pip install -e ".[keras]"`` in a checkout).

tinynet's own ``.npz`` stays the format for checkpoints (it holds what exact
resuming needs); ``.keras`` is for moving models between the two libraries.
"""

from __future__ import annotations

import datetime
import io
import json
import math
import os
import zipfile

import numpy as np

from .. import backend, layers, losses, metrics, optimizers, regularizers, saving
from ..engine import keras_rules
from ..saving import ModelFileError
from . import archives
from .fileio import atomic_write, open_regular

KERAS_VERSION = "3.15.1"  # the Keras whose files this module was written against
DTYPE = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
INITIALIZERS = {
    "GlorotUniform": "glorot_uniform",
    "GlorotNormal": "glorot_normal",
    "HeNormal": "he_normal",
    "HeUniform": "he_uniform",
    "Zeros": "zeros",
    "Ones": "ones",
}
REGULARIZERS = {"L1": ("l1",), "L2": ("l2",), "L1L2": ("l1", "l2")}
OPTIMIZERS = {
    "Adam": optimizers.Adam,
    "AdamW": optimizers.AdamW,
    "SGD": optimizers.SGD,
    "RMSprop": optimizers.RMSprop,
    "Adagrad": optimizers.Adagrad,
    "Nadam": optimizers.Nadam,
    "Adamax": optimizers.Adamax,
    "Adadelta": optimizers.Adadelta,
}


def _h5py():
    try:
        import h5py
    except ImportError as e:
        raise ImportError(
            f"Keras files need h5py ({e}): {backend.install_command('keras')} (or pip install h5py)"
        ) from None
    return h5py


class _Refused(ValueError):
    """A field tinynet cannot take; the caller adds the file's name."""


# ----------------------------------------------------------------- Keras config -> tinynet layer


def _take(config, layer_name, defaults, takes):
    """The fields in ``takes``, after checking that every other field has the value
    tinynet computes with (``defaults``); anything else is refused."""
    for key, value in config.items():
        if key in takes or key in ("name", "dtype", "registered_name", "shared_object_id"):
            continue
        if key == "trainable" and value is not True:
            raise _Refused(f"layer {layer_name!r} is frozen (trainable=false); tinynet trains every layer")
        if key in defaults and value != defaults[key]:
            raise _Refused(f"layer {layer_name!r} has {key}={value!r}; tinynet supports only {defaults[key]!r}")
        if key not in defaults and key != "trainable" and value not in (None, False):
            raise _Refused(f"layer {layer_name!r} has option {key}={value!r}, which tinynet does not have")
    dtype = config.get("dtype", "float32")
    if (dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype) != "float32":
        raise _Refused(f"layer {layer_name!r} has dtype {dtype!r}; tinynet reads float32 models")
    return {key: config[key] for key in takes if key in config}


def _initializer(value, layer_name):
    name = value.get("class_name") if isinstance(value, dict) else value
    if name not in INITIALIZERS and name not in INITIALIZERS.values():
        raise _Refused(f"layer {layer_name!r} uses the initializer {name!r}, which tinynet does not have")
    return INITIALIZERS.get(name, name)


def _regularizer(value, layer_name):
    if value is None:
        return None
    name, config = value.get("class_name"), value.get("config", {})
    if name not in REGULARIZERS or set(config) - set(REGULARIZERS[name]):
        raise _Refused(f"layer {layer_name!r} uses the regularizer {value!r}, which tinynet does not have")
    return regularizers.Regularizer(**{k: float(v) for k, v in config.items()})


def _activation(value, layer_name):
    if value not in layers.core.ACTIVATIONS:
        raise _Refused(f"layer {layer_name!r} uses the activation {value!r}, which tinynet does not have")
    return value


NO_PENALTY = {
    "bias_regularizer": None,
    "activity_regularizer": None,
    "kernel_constraint": None,
    "bias_constraint": None,
}
KERNEL_TAKES = ("activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer")


def _kernel_args(args, name):
    args["activation"] = _activation(args.get("activation", "linear"), name)
    for key in ("kernel_initializer", "bias_initializer"):
        if key in args:
            args[key] = _initializer(args[key], name)
    args["kernel_regularizer"] = _regularizer(args.get("kernel_regularizer"), name)
    return args


def _dense(c, name):
    return layers.Dense(**_kernel_args(_take(c, name, NO_PENALTY, ("units",) + KERNEL_TAKES), name), name=name)


def _conv2d(c, name):
    defaults = {**NO_PENALTY, "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1}
    args = _take(c, name, defaults, ("filters", "kernel_size", "strides", "padding") + KERNEL_TAKES)
    return layers.Conv2D(**_kernel_args(args, name), name=name)


def _pooling(cls):
    def make(c, name):
        return cls(**_take(c, name, {"data_format": "channels_last"}, ("pool_size", "strides", "padding")), name=name)

    return make


def _batch_normalization(c, name):
    defaults = {
        "axis": -1,
        "synchronized": False,
        "renorm": False,
        "renorm_clipping": None,
        "renorm_momentum": 0.99,
        "beta_regularizer": None,
        "gamma_regularizer": None,
        "beta_constraint": None,
        "gamma_constraint": None,
    }
    takes = (
        "momentum",
        "epsilon",
        "center",
        "scale",
        "beta_initializer",
        "gamma_initializer",
        "moving_mean_initializer",
        "moving_variance_initializer",
    )
    args = _take(c, name, defaults, takes)
    for key in takes[4:]:  # the saved weights replace what they would initialise
        if key in args:
            _initializer(args.pop(key), name)
    return layers.BatchNormalization(**args, name=name)


KERAS_LAYERS = {
    "Dense": _dense,
    "Conv2D": _conv2d,
    "MaxPooling2D": _pooling(layers.MaxPooling2D),
    "AveragePooling2D": _pooling(layers.AveragePooling2D),
    "BatchNormalization": _batch_normalization,
    "Dropout": lambda c, n: layers.Dropout(**_take(c, n, {"noise_shape": None}, ("rate", "seed")), name=n),
    "Flatten": lambda c, n: layers.Flatten(**_take(c, n, {"data_format": "channels_last"}, ()), name=n),
    "Reshape": lambda c, n: layers.Reshape(**_take(c, n, {}, ("target_shape",)), name=n),
    "Activation": lambda c, n: layers.Activation(
        _activation(_take(c, n, {}, ("activation",))["activation"], n), name=n
    ),
    "ReLU": lambda c, n: layers.ReLU(
        **_take(c, n, {"max_value": None, "negative_slope": 0.0, "threshold": 0.0}, ()), name=n
    ),
    "Softmax": lambda c, n: layers.Softmax(**_take(c, n, {"axis": -1}, ()), name=n),
    "LeakyReLU": lambda c, n: layers.LeakyReLU(**_take(c, n, {}, ("negative_slope",)), name=n),
    "ELU": lambda c, n: layers.ELU(**_take(c, n, {}, ("alpha",)), name=n),
    "Rescaling": lambda c, n: layers.Rescaling(**_take(c, n, {}, ("scale", "offset")), name=n),
    "GlobalAveragePooling2D": lambda c, n: layers.GlobalAveragePooling2D(
        **_take(c, n, {"data_format": "channels_last", "keepdims": False}, ()), name=n
    ),
}


def _input_shape(entry):
    config = entry.get("config", {})
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    _take(
        config,
        config.get("name", "input_layer"),
        {"sparse": False, "ragged": False, "optional": False},
        ("batch_shape", "batch_input_shape"),
    )
    if not isinstance(shape, list) or len(shape) < 2 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        raise _Refused(f"the InputLayer's batch_shape {shape!r} is not [null, positive sizes...]")
    return tuple(shape[1:])


def _custom_layer(cls, c, name):
    """A layer of the user's own class ``cls`` from its Keras config: Keras's own keys (trainable,
    dtype) checked and dropped, the rest given to ``cls.from_config``."""
    if c.get("trainable", True) is not True:
        raise _Refused(f"layer {name!r} is frozen (trainable=False); tinynet trains every layer")
    dtype = c.get("dtype", "float32")
    dtype = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
    if dtype not in ("float32", None):
        raise _Refused(f"layer {name!r} computes in {dtype!r}; tinynet reads float32 models")
    args = {k: v for k, v in c.items() if k not in ("trainable", "dtype")}
    try:
        return cls.from_config(args)
    except (TypeError, ValueError) as e:
        raise _Refused(f"layer {name!r}: {cls.__name__}.from_config({args!r}) failed ({type(e).__name__}: {e})") from e


def _layers_from_config(config, path, custom_objects=None, model_class=None, counted=None, depth=0):
    """(the tinynet layers, not built yet, and the input shape) of a Keras model config; a
    Sequential inside it becomes a ``model_class`` of its own layers. ``counted`` holds the
    layers described so far at every depth (a file may describe at most MAX_LAYERS)."""
    if not isinstance(config, dict) or config.get("class_name") != "Sequential":
        kind = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise _Refused(f"the model is a {kind!r}; tinynet reads Sequential models")
    entries = config["config"]["layers"]
    if not isinstance(entries, list):
        raise _Refused(f"the model's layers are a {type(entries).__name__}, expected a list")
    counted = [0] if counted is None else counted
    counted[0] += len(entries)
    saving.check_layer_count(counted[0], os.fspath(path))
    starts = bool(entries) and entries[0].get("class_name") == "InputLayer"
    if not starts and depth == 0:
        raise _Refused("the model does not start with an InputLayer, so its input shape is unknown")
    made = []
    for entry in entries[1:] if starts else entries:
        kind, layer_config, module = entry.get("class_name"), entry.get("config"), entry.get("module")
        if not isinstance(layer_config, dict):
            raise _Refused(f"layer {kind!r} has no config object")
        registered = entry.get("registered_name")
        custom = saving.get_registered_object(registered, custom_objects) or (custom_objects or {}).get(kind)
        if kind == "Sequential" and custom is None and registered is None and model_class is not None:
            made.append(_inner_model(entry, path, custom_objects, model_class, counted, depth))
        elif custom is not None:
            made.append(_custom_layer(custom, layer_config, layer_config.get("name")))
        elif registered is None and (module is None or str(module).startswith("keras")):  # one of Keras's own
            if kind not in KERAS_LAYERS:
                raise _Refused(f"layer {kind!r} is not one tinynet has (it has {sorted(KERAS_LAYERS)})")
            made.append(KERAS_LAYERS[kind](layer_config, layer_config.get("name")))
        else:  # a class of the user's own (registered, or from a module of theirs): looked up, never imported
            raise _Refused(saving.layer_class(kind, registered, custom_objects))
    return made, _input_shape(entries[0]) if starts else None


def _inner_model(entry, path, custom_objects, model_class, counted, depth):
    """A Sequential inside the model, as a ``model_class`` of its layers (not built yet)."""
    if depth >= saving.MAX_NESTING:
        raise _Refused(f"the file nests models more than {saving.MAX_NESTING} deep")
    c = entry["config"]
    _take(c, c.get("name"), {}, ("layers", "build_input_shape"))
    made, shape = _layers_from_config(entry, path, custom_objects, model_class, counted, depth + 1)
    inner = model_class(name=c.get("name"))
    for layer in ([layers.Input(shape)] if shape is not None else []) + made:
        inner.add(layer)
    return inner


def _kinds_of(entries) -> list:
    """Each layer's Keras class, a Sequential inside as ("Sequential", its layers' kinds): what
    names the layers' HDF5 groups."""
    entries = [e for e in entries if e.get("class_name") != "InputLayer"]
    return [
        ("Sequential", _kinds_of(e["config"]["layers"])) if e.get("class_name") == "Sequential" else e.get("class_name")
        for e in entries
    ]


def _layer_total(made) -> int:
    """How many layers, those of the models inside included (and the models themselves)."""
    return sum(1 + (_layer_total(layer.layers) if not isinstance(layer, layers.Layer) else 0) for layer in made)


# ----------------------------------------------------------------- tinynet layer -> Keras config


def _keras_initializer(name):
    return {
        "module": "keras.initializers",
        "class_name": {v: k for k, v in INITIALIZERS.items()}[name],
        "config": {} if name in ("zeros", "ones") else {"seed": None},
        "registered_name": None,
    }


def _keras_regularizer(reg):
    if reg is None:
        return None
    config = {"l1": reg.l1, "l2": reg.l2}
    kind = "L1L2" if reg.l1 and reg.l2 else ("L1" if reg.l1 else "L2")
    return {
        "module": "keras.regularizers",
        "class_name": kind,
        "config": {k: v for k, v in config.items() if k in REGULARIZERS[kind]},
        "registered_name": None,
    }


BN_FIXED = {
    "beta_regularizer": None,
    "gamma_regularizer": None,
    "beta_constraint": None,
    "gamma_constraint": None,
    "synchronized": False,
    "renorm": False,
    "renorm_clipping": None,
    "renorm_momentum": 0.99,
}


def _kernel_config(layer, c):
    """The config fields of a Dense or Conv2D, as Keras writes them."""
    if isinstance(layer, layers.Dense):
        config = {"units": layer.units}
        penalties = {
            **{k: v for k, v in NO_PENALTY.items() if k != "activity_regularizer"},
            "quantization_config": None,
        }
    else:
        config = {
            "filters": layer.filters,
            "kernel_size": c["kernel_size"],
            "strides": c["strides"],
            "padding": c["padding"],
            "data_format": "channels_last",
            "dilation_rate": [1, 1],
            "groups": 1,
        }
        penalties = NO_PENALTY
    return {
        **config,
        "activation": c["activation"] or "linear",
        "use_bias": c["use_bias"],
        "kernel_initializer": _keras_initializer(c["kernel_initializer"]),
        "bias_initializer": _keras_initializer(c["bias_initializer"]),
        "kernel_regularizer": _keras_regularizer(layer.kernel_regularizer),
        **penalties,
    }


def _batch_normalization_config(layer):
    return {
        "axis": -1,
        "momentum": layer.momentum,
        "epsilon": layer.epsilon,
        "center": layer.center,
        "scale": layer.scale,
        "beta_initializer": _keras_initializer("zeros"),
        "gamma_initializer": _keras_initializer("ones"),
        "moving_mean_initializer": _keras_initializer("zeros"),
        "moving_variance_initializer": _keras_initializer("ones"),
        **BN_FIXED,
    }


def _layer_entry(layer, input_shape):
    """(Keras's config entry for ``layer``, the Keras class it is written as)."""
    if not isinstance(layer, layers.Layer):  # a model inside the model: Keras nests its config
        config, kinds = _sequential_config(layer)
        return {**config, "build_config": {"input_shape": [None, *input_shape]}}, ("Sequential", kinds)
    c, kind = layer.get_config(), type(layer).__name__
    config = {"name": layer.name, "trainable": True, "dtype": DTYPE}
    if type(layer) not in saving.LAYER_CLASSES.values():  # a class of the user's own, by its name and config
        config.update(saving.layer_config(layer))
        entry = {
            "module": type(layer).__module__,
            "class_name": kind,
            "config": config,
            "registered_name": saving.get_registered_name(type(layer)),
            "build_config": {"input_shape": [None, *input_shape]},
        }
        return entry, kind
    built = isinstance(layer, (layers.Dense, layers.Conv2D, layers.BatchNormalization, layers.Flatten))
    if isinstance(layer, (layers.Dense, layers.Conv2D)):
        config.update(_kernel_config(layer, c))
    elif isinstance(layer, layers.BatchNormalization):
        config.update(_batch_normalization_config(layer))
    elif isinstance(layer, (layers.MaxPooling2D, layers.AveragePooling2D)):
        config.update(pool_size=c["pool_size"], padding=c["padding"], strides=c["strides"], data_format="channels_last")
    elif isinstance(layer, layers.Dropout):
        config.update(rate=layer.rate, seed=layer.seed, noise_shape=None)
    elif isinstance(layer, layers.Flatten):
        config["data_format"] = "channels_last"
    elif isinstance(layer, layers.Reshape):
        config["target_shape"] = list(layer.target_shape)
    elif isinstance(layer, layers.Activation):
        config["activation"] = c["activation"]
    elif isinstance(layer, layers.ReLU):
        config.update(max_value=None, negative_slope=0.0, threshold=0.0)
    elif isinstance(layer, layers.Softmax):
        config["axis"] = -1
    elif isinstance(layer, (layers.LeakyReLU, layers.ELU, layers.Rescaling)):
        config.update(c)
    elif isinstance(layer, layers.GlobalAveragePooling2D):
        config.update(data_format="channels_last", keepdims=False)
    elif kind in ("Sigmoid", "Tanh", "Swish", "Softplus") or (kind == "GELU" and not layer.approximate):
        names = {"Swish": "silu"}  # Keras has these as Activation layers only
        config["activation"], kind = names.get(kind, kind.lower()), "Activation"
    else:
        raise ValueError(f"layer {layer.name!r} ({kind}) has no Keras counterpart tinynet can write")
    entry = {"module": "keras.layers", "class_name": kind, "config": config, "registered_name": None}
    if built:
        entry["build_config"] = {"input_shape": [None, *input_shape]}
    return entry, kind


def _group_names(kinds):
    """Keras's HDF5 group of each layer: its class in snake case, numbered per class."""
    names, seen = [], {}
    for kind in kinds:
        base = keras_rules.snake_case(kind[0] if isinstance(kind, tuple) else kind)
        names.append(base if base not in seen else f"{base}_{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return names


# ----------------------------------------------------------------- compile configuration

SLOTS = {
    "Adam": ("m", "v"),
    "AdamW": ("m", "v"),
    "SGD": ("momentum",),
    "RMSprop": ("velocity",),
    "Adagrad": ("accumulator",),
    "Nadam": ("m", "v"),  # and, last, its momentum product (recomputed from the step count on load)
    "Adamax": ("m", "u"),
    "Adadelta": ("accumulated_grad", "accumulated_delta_var"),
}
OPTIMIZER_DEFAULTS = {
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
    "amsgrad": False,
}
KERAS_LOSSES = {cls.__name__: cls for cls in losses.LOSSES.values()}


def _compile_config(model) -> dict:
    opt, kind = model.optimizer, type(model.optimizer).__name__ if model.optimizer is not None else None
    if kind not in OPTIMIZERS or model.loss is None:
        return {}
    config = {"name": kind.lower(), **opt.get_config(), "learning_rate": float(opt.current_learning_rate)}
    config.update({k: v for k, v in OPTIMIZER_DEFAULTS.items() if k != "amsgrad" or kind in ("Adam", "AdamW")})
    loss = getattr(model.loss, "loss", model.loss)  # unwrapped
    options = {k: v for k, v in loss.get_config().items() if k not in ("from_logits", "use_output_logits")}
    if loss.from_logits or options:  # Huber's delta
        loss_config = {
            "module": "keras.losses",
            "class_name": type(loss).__name__,
            "registered_name": None,
            "config": {
                "name": loss.name,
                "reduction": "sum_over_batch_size",
                **({"from_logits": True} if loss.from_logits else {}),
                **options,
            },
        }
    else:
        loss_config = loss.name
    return {
        "optimizer": {"module": "keras.optimizers", "class_name": kind, "config": config, "registered_name": None},
        "loss": loss_config,
        "loss_weights": None,
        "metrics": [metrics.serialize(m) for m in model.metric_objects] or None,
        "weighted_metrics": None,
        "run_eagerly": False,
        "steps_per_execution": 1,
        "jit_compile": False,
    }


def _compile(model, compile_config):
    opt = compile_config["optimizer"]
    kind, config = (opt, {}) if isinstance(opt, str) else (opt.get("class_name"), dict(opt.get("config", {})))
    kind = {k.lower(): k for k in OPTIMIZERS}.get(str(kind).lower(), kind)
    if kind not in OPTIMIZERS:
        raise _Refused(f"the optimizer {kind!r} is not one tinynet has")
    for key, default in OPTIMIZER_DEFAULTS.items():
        if config.pop(key, default) != default:
            raise _Refused(f"the optimizer has {key} set, which tinynet does not have")
    config.pop("name", None)
    if isinstance(config.get("learning_rate"), dict):
        raise _Refused("the optimizer's learning rate is a Keras schedule")
    loss = compile_config["loss"]
    if isinstance(loss, dict):
        lc = loss.get("config", {})
        if loss.get("class_name") not in KERAS_LOSSES or set(lc) - {
            "name",
            "reduction",
            "from_logits",
            "ignore_class",
            "label_smoothing",
            "axis",
            "dtype",
            *(("delta",) if loss.get("class_name") == "Huber" else ()),
        }:
            raise _Refused(f"the loss {loss.get('class_name')!r} with {lc} is not one tinynet has")
        if (
            lc.get("reduction", "sum_over_batch_size") != "sum_over_batch_size"
            or lc.get("ignore_class") is not None
            or lc.get("label_smoothing", 0)
            or lc.get("axis", -1) != -1
        ):
            raise _Refused(f"the loss's options {lc} are not ones tinynet has")
        options = {"delta": lc["delta"]} if "delta" in lc else {}
        loss = KERAS_LOSSES[loss["class_name"]](**({"from_logits": True} if lc.get("from_logits") else {}), **options)
    model.compile(OPTIMIZERS[kind](**config), loss, compile_config.get("metrics") or None)


# ----------------------------------------------------------------- HDF5 weights


def _write_layers(f, prefix, model, kinds):
    """Each layer's arrays at ``<prefix>layers/<group>/vars/<i>``; a model inside, its own
    layers one level down (``layers/sequential/layers/dense/vars/0``), as Keras writes them."""
    for layer, kind, group in zip(model.layers, kinds, _group_names(kinds)):
        if isinstance(kind, tuple):
            _write_layers(f, f"{prefix}layers/{group}/", layer, kind[1])
        arrays = f.create_group(f"{prefix}layers/{group}/vars")
        arrays.attrs["name"] = layer.name
        for i, p in enumerate(layer.weights if not isinstance(kind, tuple) else ()):
            arrays.create_dataset(str(i), data=p.numpy())


def _weights_h5(model, kinds) -> bytes:
    h5py = _h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        _write_layers(f, "", model, kinds)
        f.create_group("vars").attrs["name"] = model.name
        opt = model.optimizer
        if opt is not None and type(opt).__name__ in SLOTS and model.loss is not None:
            state = f.create_group("optimizer/vars")
            state.attrs["name"] = type(opt).__name__.lower()
            state.create_dataset("0", data=np.int32(opt.iterations))
            state.create_dataset("1", data=np.float32(opt.current_learning_rate))
            params = model.parameters()
            # RMSprop's centered average and momentum have no layout here that Keras is known to
            # read: such a file keeps the step count alone, and its moments start afresh on load
            known = set(opt.slot_names) <= set(SLOTS[type(opt).__name__])
            if opt.slots is not None and known:
                slots = opt.state_laid_out_as(params)  # Keras's layout, per weight; the optimizer keeps its own
                names = [n for n in SLOTS[type(opt).__name__] if n in slots]
                arrays = [backend.to_numpy(slots[n][i]) for i in range(len(params)) for n in names]
                if isinstance(opt, optimizers.Nadam):
                    arrays.append(opt.momentum_product(params[0].value.dtype))
                for i, a in enumerate(arrays):
                    state.create_dataset(str(i + 2), data=a)
    return buffer.getvalue()


# Keras's files are 4 deep (layers/dense/vars/0), and 2 more for each model inside
MAX_DEPTH, MAX_OBJECTS = 4 + 2 * saving.MAX_NESTING, 100_000


def objects_limit(layer_count: int) -> int:
    """The most HDF5 objects a weights file of ``layer_count`` layers holds: per layer its group,
    its vars group, its arrays and their optimizer moments (a BatchNormalization with Adam has 14),
    with room to spare; the walk stops there, so a file of a million links is refused at once."""
    return min(MAX_OBJECTS, 32 * layer_count + 256)


def _audit(f, max_objects: int = MAX_OBJECTS) -> int:
    """Walk every link of the open HDF5 file ``f`` before any data is read, and refuse what
    could read another file or cost more than it holds: soft and external links, datasets
    stored outside the file (external storage) or assembled from others (virtual), datatypes
    that are not plain numbers, and datasets that declare more bytes than they store (never
    written: they would read as gigabytes of fill values). Returns the number of values the
    file really stores (compressed ones counted by their stored bytes)."""
    h5py = _h5py()
    stored, seen = 0, 0

    def walk(group, where, depth):
        nonlocal stored, seen
        if depth > MAX_DEPTH:
            raise _Refused(f"the HDF5 group {where} is nested more than {MAX_DEPTH} deep (a cycle of links?)")
        for name in group:
            seen += 1
            if seen > max_objects:
                raise _Refused(f"the HDF5 weights hold more than {max_objects} objects, far more than this model has")
            path = f"{where.rstrip('/')}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.SoftLink):
                raise _Refused(f"the HDF5 object {path} is a soft link (to {link.path}); links are not followed")
            if isinstance(link, h5py.ExternalLink):
                raise _Refused(
                    f"the HDF5 object {path} is an external link to {link.filename}:{link.path}; "
                    "a weights file must not read other files"
                )
            item = group[name]
            if isinstance(item, h5py.Group):
                walk(item, path, depth + 1)
            elif isinstance(item, h5py.Dataset):
                stored += _audit_dataset(item, path)
            else:
                raise _Refused(f"the HDF5 object {path} is a {type(item).__name__}, not a group or an array")

    walk(f, "/", 0)
    return stored


def _audit_dataset(d, path) -> int:
    if d.is_virtual:
        raise _Refused(f"the HDF5 dataset {path} is a virtual dataset (its values live in other files); refused")
    if d.external:
        raise _Refused(
            f"the HDF5 dataset {path} uses external storage (its bytes live in {d.external[0][0]!r}); "
            "a weights file must not read other files"
        )
    if d.dtype.kind not in "biuf" or d.dtype.fields is not None:
        raise _Refused(f"the HDF5 dataset {path} holds {d.dtype} values; weights are plain numbers")
    storage, size = d.id.get_storage_size(), d.size * d.dtype.itemsize
    if d.chunks is not None:  # HDF5 decompresses a whole chunk to read any of it
        chunk = math.prod(d.chunks) * d.dtype.itemsize
        if chunk > max(4 * size, 1 << 20):
            raise _Refused(
                f"the HDF5 dataset {path} of {size} bytes is stored in chunks of {chunk} bytes; "
                "reading it would decompress far more than it holds"
            )
    if d.compression is None and storage < size:
        raise _Refused(
            f"the HDF5 dataset {path} declares {size} bytes ({d.dtype} {d.shape}) but stores {storage}: "
            "never written; refused before reading"
        )
    return d.size if storage >= size else storage // d.dtype.itemsize


def _small_text(obj, key):
    """The text attribute ``key`` of an HDF5 object, or None; a large or non-text one is refused."""
    if key not in obj.attrs:
        return None
    attr = obj.attrs.get_id(key)
    if attr.get_storage_size() > 4096:
        raise _Refused(f"the HDF5 attribute {obj.name}/{key} is {attr.get_storage_size()} bytes, expected a short name")
    value = obj.attrs[key]
    value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return value if isinstance(value, str) else None


def _read_dataset(d, shape, what):
    """The array of dataset ``d``, its shape and dtype checked before its data is read."""
    if tuple(d.shape) != tuple(shape) or d.dtype.kind != "f":
        raise _Refused(f"{what} should be floats of shape {tuple(shape)}, the file has {d.dtype} {tuple(d.shape)}")
    return np.asarray(d[()])


def _read_weights(model, f, kinds):
    """Put each layer's arrays from the open HDF5 file ``f`` into ``model``, checked."""
    _audit(f, objects_limit(_layer_total(model.layers)))
    _read_layers(model, f, kinds)


def _read_layers(model, f, kinds):
    """The arrays of ``model``'s layers from the HDF5 group ``f`` (its ``layers`` group
    holds one group a layer); a model inside reads its own from its group."""
    if "layers" not in f or not isinstance(f["layers"], _h5py().Group):
        raise _Refused(f"the HDF5 weights have no layers group{' in ' + f.name if f.name != '/' else ''}")
    groups = f["layers"]
    by_name = {}
    for group in groups.values():
        name = _small_text(group["vars"], "name") if "vars" in group else None
        by_name[name] = group
    for layer, kind, group_name in zip(model.layers, kinds, _group_names(kinds)):
        group = by_name.get(layer.name) or (groups[group_name] if group_name in groups else None)
        if group is None:
            raise _Refused(f"the weights of layer {layer.name!r} (group layers/{group_name}) are missing")
        if isinstance(kind, tuple):
            _read_layers(layer, group, kind[1])
            continue
        stored = group["vars"]
        if len(stored) != len(layer.weights):
            raise _Refused(f"layer {layer.name!r} has {len(layer.weights)} weights, the file {len(stored)}")
        if set(stored) != {str(i) for i in range(len(stored))}:
            raise _Refused(f"layer {layer.name!r}: its arrays are named {sorted(stored)[:5]}, expected 0, 1, ...")
        arrays = [
            _read_dataset(stored[str(i)], p.shape, f"layer {layer.name!r}: {p.name}")
            for i, p in enumerate(layer.weights)
        ]
        for p, a in zip(layer.weights, arrays):
            if not np.all(np.isfinite(a)):
                raise _Refused(f"layer {layer.name!r}: {p.name} contains NaN or infinite values")
        layer.set_weights(arrays)


def _read_optimizer(model, f):
    opt, kind = model.optimizer, type(model.optimizer).__name__
    if "optimizer" not in f or "vars" not in f["optimizer"]:
        return
    stored = f["optimizer/vars"]
    params, names = model.parameters(), SLOTS.get(kind, ())
    extra = 1 if kind == "Nadam" else 0  # Nadam's momentum product: it follows from the step count
    full = 2 + len(names) * len(params) + extra
    if len(stored) not in (2, full) or set(stored) != {str(i) for i in range(len(stored))}:
        raise _Refused(f"the optimizer's saved state ({len(stored)} arrays) does not fit {kind}")
    step = stored["0"]
    if step.shape != () or step.dtype.kind not in "iu":
        raise _Refused(f"the optimizer's step count is {step.dtype} {step.shape}, expected one integer")
    iterations = int(np.asarray(step[()]))
    if len(stored) == 2:
        opt.set_state({"iterations": iterations, "learning_rate": None, "slots": {}}, params, model.device)
        return
    shapes = [p.shape for p in params]
    arrays = [
        _read_dataset(stored[str(2 + i * len(names) + k)], shapes[i], f"the optimizer's {n} of weight {i}")
        for k, n in enumerate(names)
        for i in range(len(params))
    ]
    slots = {n: arrays[k * len(params) : (k + 1) * len(params)] for k, n in enumerate(names)}
    opt.set_state({"iterations": iterations, "learning_rate": None, "slots": slots}, params, model.device)


# ----------------------------------------------------------------- the files


def _entries(model):
    out = []
    for layer, layer_shape in zip(model.layers, [model.input_shape] + model.shapes[:-1]):
        out.append(_layer_entry(layer, list(layer_shape)))
    return out


def save_model(model, path):
    """Write ``model`` as a Keras 3 ``.keras`` file, atomically."""
    if not model.built:
        raise RuntimeError("cannot save a model that is not built; train it or give it an Input shape first")
    saving.check_finite(model, path)
    config, kinds = _sequential_config(model)
    config["build_config"] = {"input_shape": [None, *model.input_shape]}
    config["compile_config"] = _compile_config(model)
    metadata = {"keras_version": KERAS_VERSION, "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    weights = _weights_h5(model, kinds)
    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        z.writestr("metadata.json", json.dumps(metadata))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", weights)
    return os.fspath(path)


def _sequential_config(model):
    """(Keras's config of ``model``, a Sequential starting with its InputLayer, and each
    layer's Keras class): the whole file's, or that of a model inside another."""
    entries = _entries(model)
    input_layer = {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "registered_name": None,
        "config": {
            "batch_shape": [None, *model.input_shape],
            "dtype": "float32",
            "sparse": False,
            "ragged": False,
            "name": "input_layer",
            "optional": False,
        },
    }
    config = {
        "module": "keras",
        "class_name": "Sequential",
        "registered_name": None,
        "config": {
            "name": model.name,
            "trainable": True,
            "dtype": DTYPE,
            "layers": [input_layer] + [e for e, _ in entries],
            "build_input_shape": [None, *model.input_shape],
        },
    }
    return config, [kind for _, kind in entries]


MAX_JSON = 32 << 20  # bytes of config.json: a 10,000-layer description takes a few MB


def _open_zip(path):
    z = archives.open_zip(path)
    names = z.namelist()
    if "config.json" not in names or "model.weights.h5" not in names:
        z.close()
        raise _Refused(f"not a Keras 3 .keras file (entries {names[:5]}; expected config.json, model.weights.h5)")
    return z


def _weights_limit(needed: int, layer_count: int) -> int:
    """The most bytes a legitimate ``model.weights.h5`` of ``needed`` weights takes: each
    weight and up to two optimizer moments in float64, plus HDF5's metadata per layer."""
    return 3 * 8 * needed + (1 << 20) + (64 << 10) * (layer_count + 2)


def _read_keras_file(z, path, model_class, device, compile, custom_objects):
    config = json.loads(archives.read_entry(z, "config.json", MAX_JSON).decode("utf-8"))
    made, shape = _layers_from_config(config, path, custom_objects, model_class)
    needed = saving.weights_needed(made, shape, os.fspath(path))  # before the weights are even decompressed
    weights = archives.read_entry_into(z, "model.weights.h5", _weights_limit(needed, _layer_total(made)))
    with _h5py().File(weights, "r") as f:
        saving.check_size(
            made, shape, _audit(f, objects_limit(_layer_total(made))), os.fspath(path)
        )  # before any weight is allocated
        model = model_class(name=config["config"].get("name", "sequential"), device=device)
        for layer in [layers.Input(shape)] + made:
            model.add(layer)
        _read_weights(model, f, _kinds_of(config["config"]["layers"]))
        if compile and config.get("compile_config"):
            try:
                _compile(model, config["compile_config"])
                _read_optimizer(model, f)
            except Exception as e:
                raise _Refused(
                    f"the compile configuration cannot be used ({e}); load_model(path, "
                    "compile=False) gives the model alone"
                ) from e
    return model


def _failures(path, error):
    if isinstance(error, (ModelFileError, ImportError, backend.DeviceUnavailableError)):
        return error
    if isinstance(error, FileNotFoundError):
        return ModelFileError(f"{os.fspath(path)}: no such file")
    if isinstance(error, (_Refused, archives.ArchiveRefused)):
        return ModelFileError(f"{os.fspath(path)}: {error}")
    if isinstance(error, OSError) and "not a regular file" in str(error):
        return ModelFileError(str(error))
    return ModelFileError(f"{os.fspath(path)}: not a valid Keras file ({type(error).__name__}: {error})")


def load_model(path, model_class, device="cpu", compile=True, custom_objects=None):
    """Read a Keras 3 ``.keras`` file of a Sequential model as a tinynet ``model_class``;
    ``custom_objects``: layer classes of the user's own, by name (see :mod:`tinynet.saving`)."""
    custom_objects = saving.check_custom_objects(custom_objects)
    _h5py()
    try:
        with _open_zip(path) as z:
            return _read_keras_file(z, path, model_class, device, compile, custom_objects)
    except Exception as e:  # anything the bytes could provoke, named, never raw
        raise _failures(path, e) from e


def save_weights(model, path):
    """Write the weights (and the optimizer's state) as Keras's ``.weights.h5``, atomically."""
    if not os.fspath(path).endswith(".weights.h5"):
        raise ValueError(f"the filename must end in .weights.h5 (as Keras), got {os.fspath(path)!r}")
    if not model.built:
        raise RuntimeError("cannot save the weights of a model that is not built")
    saving.check_finite(model, path)
    data = _weights_h5(model, [kind for _, kind in _entries(model)])
    with atomic_write(path) as f:
        f.write(data)
    return os.fspath(path)


def load_weights(model, path):
    """Read weights from a ``.weights.h5`` or ``.keras`` file into ``model`` (same architecture)."""
    h5py = _h5py()
    if not model.built:
        raise RuntimeError("build the model before load_weights (give it an Input shape)")
    kinds = [kind for _, kind in _entries(model)]
    limit = _weights_limit(sum(p.value.size for p in model.weights), _layer_total(model.layers))
    try:
        if os.fspath(path).endswith(".keras"):
            with _open_zip(path) as z:
                weights = archives.read_entry_into(z, "model.weights.h5", limit)
            with h5py.File(weights, "r") as f:
                _read_weights(model, f, kinds)
        else:
            with open_regular(path) as raw:  # a FIFO is refused, never read
                size = os.fstat(raw.fileno()).st_size
                if size > limit:
                    raise _Refused(
                        f"the file is {size} bytes; the weights of this model, with an optimizer's state, "
                        f"take at most {limit}"
                    )
                with h5py.File(raw, "r") as f:
                    _read_weights(model, f, kinds)
    except Exception as e:
        raise _failures(path, e) from e
