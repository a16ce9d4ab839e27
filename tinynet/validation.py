"""Checks at the API boundary, in one place: what ``fit``, ``evaluate``, ``predict``
and friends accept, and the message when something else comes.

Rules for the data:

- ``x`` is an array (NumPy or CuPy) or a nested list of numbers with at least one
  sample. Floating-point data is converted to float32; integer or boolean data
  (e.g. uint8 images) is converted to float32 *with its values unchanged* (0..255
  stays 0..255: scale it yourself, e.g. ``x / 255``). Object and string arrays are
  refused, and so is a nested list whose samples differ in shape (ragged). NaN or inf
  anywhere in ``x`` is refused.
- ``y`` has as many samples as ``x``; for ``sparse_categorical_crossentropy``
  whole numbers in [0, C), for the other cross-entropies values in [0, 1] shaped
  like the model's output.

Each check raises ``ValueError`` (``TypeError`` for a wrong kind of object) whose
message says what was expected and what came.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings

import numpy as np

from . import backend


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def non_negative_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def in_range(name: str, value, lo, hi=math.inf, lo_open=False, hi_open=False):
    """A finite real number with lo <= value <= hi (open ends on request); a
    hyperparameter check shared by optimizers, schedules, regularizers and callbacks."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        if hi == math.inf:
            raise ValueError(f"{name} must be a finite number {'>' if lo_open else '>='} {lo}, got {value!r}")
        lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{name} must be a number in {lb}{lo}, {hi}{rb}, got {value!r}")
    return value


def fraction(name: str, value, upper_inclusive=False) -> float:
    """A number in [0, 1) (or [0, 1])."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= value
    ok = ok and (value <= 1 if upper_inclusive else value < 1)
    if not ok:
        raise ValueError(f"{name} must be a number in [0, {'1]' if upper_inclusive else '1)'}, got {value!r}")
    return float(value)


def verbosity(value) -> int:
    if value == "auto":
        return 1
    if value not in (0, 1, 2) or isinstance(value, bool):
        raise ValueError(f'verbose must be 0, 1, 2 or "auto", got {value!r}')
    return int(value)


def _as_array(name: str, a):
    if backend.device_of(a) == "gpu":
        return a
    if isinstance(a, (list, tuple)):
        try:
            a = np.asarray(a)
        except ValueError:  # NumPy's "inhomogeneous shape": say where, in the user's terms
            where = _ragged(name, a)
            if where is None:
                raise
            raise ValueError(
                f"{name} is a nested list whose samples differ in shape ({where}); every sample must have "
                "the same shape: pad or trim them, or pass one NumPy array"
            ) from None
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a NumPy or CuPy array, got {type(a).__name__}")
    return a


def _ragged(name: str, a):
    """Where the nested list ``a`` is ragged, in words ("x[0] holds 4 values, x[2] holds 3"),
    or None when every entry at each depth has the same length. Goes one depth at a time."""
    level = [(name, a)]
    while level:
        lists = [(where, v) for where, v in level if isinstance(v, (list, tuple)) or np.ndim(v) > 0]
        if not lists:
            return None
        if len(lists) < len(level):
            one = next(where for where, v in level if not (isinstance(v, (list, tuple)) or np.ndim(v) > 0))
            return f"{lists[0][0]} holds {_values(len(lists[0][1]))}, {one} is a single number"
        first, n = lists[0][0], len(lists[0][1])
        for where, v in lists:
            if len(v) != n:
                return f"{first} holds {_values(n)}, {where} holds {len(v)}"
        level = [(f"{where}[{i}]", item) for where, v in lists for i, item in enumerate(v)]
    return None


def _values(n: int) -> str:
    return f"{n} value" if n == 1 else f"{n} values"


def _all_finite(a) -> bool:
    xp = backend.get_array_module(a)
    return bool(xp.isfinite(a).all())


def features(x, input_shape=None, name: str = "x"):
    """Validate ``x`` and return it as float32 (on the device it came from)."""
    x = _as_array(name, x)
    kind = np.dtype(x.dtype).kind
    if kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got an array of dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have a batch axis first, shape (samples, features...), got shape {tuple(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"the model expects samples of shape {tuple(input_shape)}, so {name} of shape "
            f"(N, {', '.join(map(str, input_shape))}); got {name} of shape {tuple(x.shape)}"
        )
    x = x.astype(np.float32, copy=False)
    if kind == "f" and not _all_finite(x):
        xp = backend.get_array_module(x)
        bad = int((~xp.isfinite(x)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); clean or impute them before training")
    return x


def weight_values(layer_name, weight_name: str, w):
    """An array for ``set_weights``: numbers, all finite (a NaN or inf weight would make every
    prediction NaN). ``w`` is a NumPy array; returned unchanged."""
    if np.dtype(w.dtype).kind not in "biuf":
        raise TypeError(f"layer {layer_name!r}: {weight_name} must be an array of numbers, got dtype {w.dtype}")
    if not bool(np.isfinite(w).all()):
        bad = int((~np.isfinite(w)).sum())
        raise ValueError(
            f"layer {layer_name!r}: {weight_name} got an array with {bad} NaN or infinite value(s); "
            "set_weights takes finite arrays"
        )
    return w


# where the machine's memory cannot be read (os.sysconf is POSIX only): 1 TiB
FALLBACK_MEMORY_LIMIT = 2**40


def memory_limit() -> int:
    """The bytes of physical memory of this machine (``FALLBACK_MEMORY_LIMIT`` where unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return FALLBACK_MEMORY_LIMIT


def _bytes(n: int) -> str:
    """1536 -> "1.5 KiB"."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    return ""  # not reached


def weights_fit_in_memory(owner: str, kernel_shape, units: int):
    """Refuse, before anything is allocated, a kernel (and ``units`` biases) whose float32
    values and gradients need more than this machine's memory (``memory_limit``)."""
    count = math.prod(int(d) for d in kernel_shape) + int(units)
    needed, limit = 8 * count, memory_limit()  # 4 bytes a value, 4 its gradient
    if needed > limit:
        raise ValueError(
            f"layer {owner!r}: a kernel of shape {tuple(kernel_shape)} and {units} biases are {count:,} weights, "
            f"{_bytes(needed)} as float32 with their gradients, more than this machine's "
            f"{_bytes(limit)} of memory; use fewer units or filters, or a smaller input"
        )


def _weights_input_size(layer):
    """The size of the input's last axis that a built layer's weights were made for, or None
    (no weights that fix it): a kernel's second-last axis (Dense (in, out), Conv2D
    (kh, kw, in, out)), a BatchNormalization's per-channel statistics."""
    kernel = getattr(layer, "kernel", None)
    if kernel is not None:
        return kernel.shape[-2]
    moving_mean = getattr(layer, "moving_mean", None)
    return moving_mean.shape[0] if moving_mean is not None else None


def built_layer_input(layer, input_shape):
    """A layer built before (in another model, say) keeps its weights: refuse an input whose
    last axis they do not fit, when the model is built rather than inside a product."""
    built_for = _weights_input_size(layer)
    if built_for is not None and (not input_shape or input_shape[-1] != built_for):
        got = input_shape[-1] if input_shape else "no axis"
        raise ValueError(
            f"layer {layer.name!r} was built for inputs whose last axis has size {built_for}, and here gets "
            f"samples of shape {tuple(input_shape)} (last axis {got}); a built layer keeps its weights, so "
            "it takes only that size: give this model a new layer, or inputs of that size"
        )


def targets(y, n: int, loss, output_shape, name: str = "y"):
    """Validate ``y`` against ``n`` samples, the loss and the model's output shape.

    Returns int64 class indices of shape (n,) for sparse cross-entropy, float32
    otherwise.
    """
    y = _as_array(name, y)
    if np.dtype(y.dtype).kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got an array of dtype {y.dtype}")
    if y.ndim == 0 or y.shape[0] != n:
        got = "a scalar" if y.ndim == 0 else f"{y.shape[0]} samples (shape {tuple(y.shape)})"
        raise ValueError(f"x and {name} must have the same number of samples: x has {n}, {name} has {got}")
    xp = backend.get_array_module(y)
    if np.dtype(y.dtype).kind == "f" and not _all_finite(y):
        raise ValueError(f"{name} contains NaN or infinite values")
    out_shape = tuple(output_shape)
    loss_name = getattr(loss, "name", "")
    if loss_name == "sparse_categorical_crossentropy":
        classes = out_shape[-1]
        if not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
            raise ValueError(
                f"sparse_categorical_crossentropy expects {name} as class indices of shape (N,) or (N, 1), "
                f"got shape {tuple(y.shape)} (one-hot labels go with categorical_crossentropy)"
            )
        labels = y.reshape(-1)
        if np.dtype(y.dtype).kind == "f" and not bool((labels == xp.round(labels)).all()):
            raise ValueError(f"{name} must hold whole-number class indices, got fractional values")
        low, high = float(labels.min()), float(labels.max())
        if low < 0 or high >= classes:
            raise ValueError(
                f"labels in {name} must be in [0, {classes - 1}] for a model with {classes} outputs, "
                f"got values from {low:g} to {high:g}"
            )
        return labels.astype(np.int64)
    y = y.astype(np.float32, copy=False)
    if y.size != n * int(np.prod(out_shape)):
        raise ValueError(
            f"{loss_name or 'the loss'} expects {name} shaped like the model's output (N, "
            f"{', '.join(map(str, out_shape))}), got shape {tuple(y.shape)}"
        )
    if getattr(loss, "is_crossentropy", False):
        if float(y.min()) < 0 or float(y.max()) > 1:
            raise ValueError(
                f"{loss_name} expects {name} in [0, 1], got values from {float(y.min()):g} to {float(y.max()):g}"
                + ("; for class indices use sparse_categorical_crossentropy" if loss_name.startswith("cat") else "")
            )
    return y.reshape((n,) + out_shape)


def fit_options(batch_size, epochs, verbose, validation_split, initial_epoch) -> dict:
    """``fit``'s numeric arguments, checked before any data is touched."""
    options = {
        "batch_size": positive_int("batch_size", batch_size),
        "epochs": positive_int("epochs", epochs),
        "verbose": verbosity(verbose),
        "validation_split": fraction("validation_split", validation_split),
        "initial_epoch": non_negative_int("initial_epoch", initial_epoch),
    }
    if options["initial_epoch"] > options["epochs"]:  # equal is allowed: nothing is left to train
        raise ValueError(
            f"initial_epoch={initial_epoch} is past epochs={epochs}: epochs is the epoch number to train up to, "
            f"not how many more epochs to train (as Keras); to train {epochs} more from epoch {initial_epoch}, "
            f"pass epochs={initial_epoch + epochs}"
        )
    return options


def flag(name: str, value) -> bool:
    """True or False (NumPy's bool too), nothing else: a string such as "no" is not taken as true."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def callback_list(callbacks) -> list:
    """``fit``'s callbacks: None or a list (or tuple) of callbacks, as a new list."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        kind = type(callbacks).__name__
        raise TypeError(f"callbacks must be a list of callbacks, e.g. callbacks=[{kind}(...)], got one {kind}")
    return list(callbacks)


# compile's metric names -> the accuracy they compute (None: chosen from the shapes, as Keras's "accuracy")
def sample_weights(sample_weight, class_weight, y, n: int, name="sample_weight"):
    """fit's sample_weight or class_weight as one float32 weight per sample (None for neither)."""
    if sample_weight is not None and class_weight is not None:
        raise ValueError("give sample_weight or class_weight, not both (as Keras)")
    if class_weight is not None:
        if not isinstance(class_weight, dict) or not all(
            isinstance(k, numbers.Integral) and not isinstance(k, bool) for k in class_weight
        ):
            raise TypeError(f"class_weight must be a dict {{class index: weight}}, got {class_weight!r}")
        labels = backend.to_numpy(y)
        labels = labels.argmax(axis=-1) if labels.ndim > 1 and labels.shape[-1] > 1 else labels.reshape(n)
        labels = np.round(labels).astype(np.int64)
        sample_weight = np.array([float(class_weight.get(int(c), 1.0)) for c in labels], dtype=np.float32)
        name = "class_weight"
    if sample_weight is None:
        return None
    w = _as_array(name, sample_weight)
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"{name} must hold one weight per sample, shape ({n},), got shape {tuple(w.shape)}")
    w = w.astype(np.float32, copy=False)
    if not _all_finite(w) or float(w.min()) < 0:
        raise ValueError(f"{name} must be finite and >= 0")
    return w


def model_data(model, x, y=None, require_y=False):
    """x (and y) for ``model``: validated, converted, and moved to the model's device;
    an unbuilt model is built for x's sample shape."""
    if hasattr(x, "__next__") or (hasattr(x, "__iter__") and not hasattr(x, "__len__")):
        raise TypeError(
            f"x is a {type(x).__name__} (a generator or a stream of batches); tinynet takes the data as "
            "arrays: x (and y) as NumPy or CuPy arrays or lists, e.g. collect the batches with "
            "np.concatenate([xb for xb, yb in batches]) first"
        )
    if require_y and y is None:
        raise ValueError("y is None: training and evaluating need targets, e.g. fit(x_train, y_train)")
    x = features(x, model.input_shape if model.built else None)
    if not model.layers:
        raise ValueError("the model has no layers; add some with model.add(...)")
    if not model.built:
        model.build(model.input_shape if model.input_shape is not None else x.shape[1:])
    if y is not None:
        y = backend.to_device(targets(y, x.shape[0], model.loss, model.output_shape), model.device)
    return backend.to_device(x, model.device), y


def warn_if_unscaled(x):
    """Warn once when ``x`` looks like raw 0-255 pixels: the most common first mistake,
    which trains with a huge first loss and poor accuracy."""
    try:
        a = _as_array("x", x)
    except TypeError:
        return
    if np.dtype(a.dtype).kind not in "biuf" or a.size == 0:
        return
    low, high = float(a.min()), float(a.max())
    if low >= 0 and high > 25 and (np.dtype(a.dtype).kind in "iu" or high <= 255):
        warnings.warn(
            f"x holds values up to {high:g}: raw pixels? Scale them to [0, 1] first, e.g. x / 255 "
            "(tinynet.preprocessing.scale); networks train badly on inputs this large",
            UserWarning,
            stacklevel=4,
        )


def warn_if_probabilities_as_logits(model, loss):
    """Warn once when a loss is told its input is logits but the model ends in a softmax or
    sigmoid (Keras warns too): the loss then applies softmax twice and trains worse."""
    last = model.layers[-1] if model.layers else None
    head = getattr(last, "activation", last)
    kind = type(head).__name__
    if getattr(loss, "from_logits", False) and kind in ("Softmax", "Sigmoid"):
        warnings.warn(
            f"{loss.name} has from_logits=True, but the model's output comes from a {kind.lower()}, so it is "
            f"probabilities, not logits. Drop from_logits=True, or remove the final {kind.lower()}.",
            UserWarning,
            stacklevel=3,
        )
