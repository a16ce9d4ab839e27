"""Keras's model API around the training step: evaluate, predict, the one-batch methods,
layer names, weights, resumable state, files and the summary.

``Sequential`` (in :mod:`tinynet.sequential`) inherits all of it; it is kept apart so that
sequential.py reads as the textbook (build, forward, backward, the training step, fit) and
nothing else.
"""

from __future__ import annotations

import copy
import os

import numpy as np

from .. import backend, metrics, saving, validation
from ..callbacks import History
from ..files import fileio, keras_format
from . import keras_rules, loop, twins
from .progress import ProgressBar
from .summary import format_summary


class KerasAPI:
    """``evaluate``, ``predict``, ``train_on_batch``, ``test_on_batch``, ``get_weights``/
    ``set_weights``, ``get_state``/``set_state`` (for exact resume), ``save`` and ``summary``."""

    def __deepcopy__(self, memo):
        """``copy.deepcopy(model)``: every array copied, and no flat buffer. A trained model's
        parameters are views of one buffer (tinynet/engine/flat.py); copied, they would be arrays
        of their own beside a copied buffer that the optimizer then steps, so the copy would
        never learn. It packs a buffer of its own at its next ``fit`` or ``train_on_batch``.
        Made during ``fit`` (the best model so far, kept by a callback), the copy carries what
        training bound on the instances (fast twins, Keras's loss rule): taken off, so it is
        the textbook model, ready to evaluate or train on its own."""
        twin = type(self).__new__(type(self))
        memo[id(self)] = twin
        for name, value in vars(self).items():
            vars(twin)[name] = None if name == "flat_parameters" else copy.deepcopy(value, memo)
        twins.take_off(twins.objects(twin))
        twin.loss_fn = twin.loss
        return twin

    # ---------------------------------------------------------------- Keras's rules for a model

    def name_layer(self, layer):
        """Keras's layer names (:class:`tinynet.engine.keras_rules.LayerNames`): a layer without
        a name gets its class's next free one (dense, dense_1, ...); a name it has is kept, and
        skipped by later automatic names."""
        names = vars(self).setdefault("_layer_names", keras_rules.LayerNames())
        if layer.name is None or getattr(layer, "auto_named", False):  # a model inside, named by default
            layer.name, layer.auto_named = names.new(layer), False
        else:
            names.add(layer.name)

    @property
    def output_logits(self) -> bool:
        """Whether the loss is computed from the logits of a final softmax/sigmoid (Keras's rule,
        :func:`tinynet.engine.keras_rules.uses_output_logits`)."""
        return keras_rules.uses_output_logits(self, self.loss)

    # ---------------------------------------------------------------- what fit asks of the model

    def _require_compiled(self, what: str):
        if self.optimizer is not None and self.loss is None:
            raise RuntimeError(
                f"model.{what} needs a loss, and the model was compiled without one: "
                "model.compile(optimizer=..., loss='sparse_categorical_crossentropy') first"
            )
        if self.loss is None:
            raise RuntimeError(f"call model.compile(optimizer=..., loss=...) before model.{what}(...)")

    def compile_metrics(self, given):
        """``compile``'s metrics (strings and metric objects) as ``self.metric_objects``, their
        names, the keys of the logs, as ``self.metrics``."""
        self.metric_objects = metrics.compiled(given)
        self.metrics = [m.name for m in self.metric_objects]

    def metric_hits(self, y_pred, y):
        """{metric name: each sample's value (N,)} for the compiled metrics, on the device."""
        return {m.name: m.per_sample(y, y_pred, from_logits=self.loss.from_logits) for m in self.metric_objects}

    def starting_history(self, initial_epoch):
        """A new History; when resuming from a checkpoint at ``initial_epoch``, one that
        already holds the checkpoint's epochs, so the run reads as if never interrupted."""
        history = History()
        if initial_epoch > 0 and self._resumed and self._resumed[0] == initial_epoch:
            history.history = {k: list(v) for k, v in self._resumed[1].items()}
            history.epoch = list(range(initial_epoch))
        return history

    # ---------------------------------------------------------------- evaluate, predict

    def evaluate_prepared(self, x, y, batch_size, sample_weight=None):
        logs = loop.RunningLogs(self.device, self.metrics)
        for lo in range(0, x.shape[0], batch_size):
            batch = slice(lo, lo + batch_size)
            w = None if sample_weight is None else sample_weight[batch]
            y_pred = self.forward(x[batch], training=False)
            loss = self.add_weight_penalties(self.loss_fn.forward(y_pred, y[batch], w), gradients=False)
            logs.add(loss, self.metric_hits(y_pred, y[batch]), y_pred.shape[0])
        return logs.read()

    def evaluate(self, x, y=None, batch_size=32, verbose="auto", sample_weight=None, return_dict=False):
        """Loss (and metrics) on ``x, y`` in inference mode (no dropout), as ``keras.Model.evaluate``.

        Returns the loss alone, ``[loss, metric, ...]`` with metrics (in the order of
        ``metrics_names``), or a dict with ``return_dict=True``.
        """
        self._require_compiled("evaluate")
        batch_size = validation.positive_int("batch_size", batch_size)
        verbose = validation.verbosity(verbose)
        x, y = validation.model_data(self, x, y, require_y=True)
        w = self._weights_on_device(sample_weight, None, y)
        bar = ProgressBar(-(-x.shape[0] // batch_size), verbose)
        with loop.prepared(self, train=False, batch_size=batch_size):
            logs = self.evaluate_prepared(x, y, batch_size, w)
        bar.finish(logs)
        return self._format_logs(logs, return_dict)

    def _weights_on_device(self, sample_weight, class_weight, y):
        w = validation.sample_weights(sample_weight, class_weight, y, y.shape[0])
        return None if w is None else backend.to_device(w, self.device)

    def predict(self, x, batch_size=32, verbose=0):
        """The model's outputs for ``x`` (after any final softmax/sigmoid), as NumPy."""
        batch_size = validation.positive_int("batch_size", batch_size)
        x, _ = validation.model_data(self, x)
        xp = backend.xp_for(self.device)
        outs = [self.forward(x[lo : lo + batch_size], training=False) for lo in range(0, x.shape[0], batch_size)]
        ProgressBar(len(outs), validation.verbosity(verbose)).finish({})
        return backend.to_numpy(xp.concatenate(outs, axis=0))

    def __call__(self, x, training=False):
        """``model(x)``: the output for a batch, as an array on the model's device (inference
        mode unless ``training=True``), as calling a Keras model."""
        x, _ = validation.model_data(self, x)
        return self.forward(x, training=training)

    # ---------------------------------------------------------------- one batch at a time

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimisation step on exactly this batch; returns its loss (and metrics)."""
        self._require_compiled("train_on_batch")
        x, y = validation.model_data(self, x, y, require_y=True)
        w = self._weights_on_device(sample_weight, class_weight, y)
        with loop.prepared(self, batch_size=x.shape[0]):
            loss, y_pred = self.train_step(x, y, w)
        logs = loop.RunningLogs(self.device, self.metrics)
        logs.add(loss, self.metric_hits(y_pred, y), x.shape[0])
        return self._format_logs(logs.read(), return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """Loss (and metrics) on one batch in inference mode."""
        self._require_compiled("test_on_batch")
        x, y = validation.model_data(self, x, y, require_y=True)
        w = self._weights_on_device(sample_weight, None, y)
        with loop.prepared(self, train=False):
            return self._format_logs(self.evaluate_prepared(x, y, x.shape[0], w), return_dict)

    def _format_logs(self, logs, return_dict):
        if return_dict:
            return logs
        return logs["loss"] if len(logs) == 1 else [logs[name] for name in self.metrics_names]

    @property
    def metrics_names(self) -> list[str]:
        """The names of ``evaluate``'s results, in order: "loss", then each compiled metric."""
        return ["loss"] + list(self.metrics)

    # ---------------------------------------------------------------- layers

    def get_layer(self, name=None, index=None):
        """A layer by name or by index, as ``keras.Model.get_layer``."""
        if (name is None) == (index is None):
            raise ValueError("get_layer takes a name or an index, exactly one of them")
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"index {index} is out of range: the model has {len(self.layers)} layers")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}; the layers are {[layer.name for layer in self.layers]}")

    def count_params(self) -> int:
        """The number of weights, trainable and not (as ``keras.Model.count_params``)."""
        self._require_built("count_params")
        return sum(layer.count_params() for layer in self.layers)

    @property
    def weights(self):
        return [p for layer in self.layers for p in layer.weights]

    trainable_weights = property(lambda self: self.parameters())
    non_trainable_weights = property(lambda self: self.non_trainable())

    def non_trainable(self):
        """Every layer's state that is saved but not trained (as a layer's ``non_trainable``)."""
        return [p for layer in self.layers for p in layer.non_trainable()]

    def named_layers(self, prefix: str = ""):
        """(path, layer) for every layer, a model inside given as its own layers
        ("sequential/dense"): what a monitor of each layer's weights walks."""
        for layer in self.layers:
            path = f"{prefix}{layer.name}"
            if hasattr(layer, "named_layers"):
                yield from layer.named_layers(path + "/")
            else:
                yield path, layer

    def describe(self) -> str:
        """``summary()``'s words for a model inside another: its layers."""
        return f"{len(self.layers)} layers"

    def __repr__(self):
        layers = "".join(f"\n    {layer!r}," for layer in self.layers)
        return f"<Sequential name={self.name}, device={self.device}, built={self.built}, layers=[{layers}\n]>"

    # ---------------------------------------------------------------- weights, state, files

    def get_weights(self):
        """Every parameter as a NumPy array, in Keras's order (kernel, then bias)."""
        self._require_built("get_weights")
        return [backend.to_numpy(p.value).copy() for layer in self.layers for p in layer.weights]

    def set_weights(self, weights):
        """Load arrays in ``get_weights`` order; shapes must match exactly."""
        self._require_built("set_weights")
        weights = [np.asarray(backend.to_numpy(w)) for w in weights]
        slots = [(layer, p) for layer in self.layers for p in layer.weights]
        if len(weights) != len(slots):
            raise ValueError(f"set_weights expected {len(slots)} arrays, got {len(weights)}")
        for (layer, p), w in zip(slots, weights):
            if tuple(w.shape) != tuple(p.value.shape):
                raise ValueError(
                    f"layer {layer.name!r}: {p.name} has shape {tuple(p.value.shape)}, "
                    f"got an array of shape {tuple(w.shape)}"
                )
            validation.weight_values(layer.name, p.name, w)
        for (_, p), w in zip(slots, weights):
            p.value[...] = backend.to_device(w.astype(p.value.dtype), self.device)

    def _require_built(self, what):
        if not self.built:
            raise RuntimeError(
                f"the model is not built yet, so it has no weights for {what}: start it with "
                "Input(shape) or input_shape=, or call fit/predict/build first"
            )

    def get_state(self) -> dict:
        """What resuming exactly needs beyond the weights: the epochs done, the History,
        the random generators' states and the optimizer's state (arrays on the device)."""
        history = getattr(self.history, "history", None) or {}
        return {
            "epoch": self.epochs_done,
            "history": {k: [float(v) for v in vals] for k, vals in history.items()},
            "rng": {
                "shuffle": self.shuffle_rng.bit_generator.state,
                "layers": {  # by path: a model inside gives "sequential/dropout"
                    name: backend.generator_state(layer.rng)
                    for name, layer in self.named_layers()
                    if getattr(layer, "rng", None) is not None
                },
            },
            "optimizer": self.optimizer.get_state() if self.optimizer is not None else None,
        }

    def set_state(self, state: dict):
        """Put back what :meth:`get_state` returned (raises ValueError for anything that does not fit,
        checked before anything is changed but the optimizer's state)."""
        epoch, history = state.get("epoch", 0), state.get("history", {})
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"the saved epoch must be an integer >= 0, got {epoch!r}")
        if not isinstance(history, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)
            for k, v in history.items()
        ):
            raise ValueError(f"the saved History must map names to lists of numbers, got {str(history)[:80]!r}")
        if not isinstance(state.get("rng", {}), dict):
            raise ValueError("the saved random states must be a mapping")
        if state.get("optimizer") is not None:
            if self.optimizer is None:
                raise ValueError("the state holds an optimizer's state: compile the model before set_state")
            self.optimizer.set_state(state["optimizer"], self.parameters(), self.device)
        rng = state.get("rng", {})
        if rng.get("shuffle") is not None:
            self.shuffle_rng.bit_generator.state = rng["shuffle"]
        for name, layer in self.named_layers():
            saved = rng.get("layers", {}).get(name)
            if saved is not None and getattr(layer, "rng", None) is not None:
                backend.set_generator_state(layer.rng, saved)
        self.epochs_done = epoch
        self._resumed = (self.epochs_done, history)

    def save(self, path, include_optimizer=True):
        """Save the model, atomically: as a Keras 3 file when ``path`` ends in ``.keras``
        (Keras opens it), else as tinynet's ``.npz``.

        The ``.npz`` with ``include_optimizer`` (the default) is a full checkpoint: the
        optimizer's state, the epochs done, the random generators' states and the
        History too, so that ``tinynet.load_model(path).fit(..., initial_epoch=k)``
        continues as if never interrupted (see :mod:`tinynet.saving`). The ``.keras``
        file holds the architecture, the weights, the compile settings and the
        optimizer's state (see :mod:`tinynet.files.keras_format`).
        """
        path = fileio.file_path(path, "save")
        suffix = os.path.splitext(path)[1]
        if suffix == ".keras":
            return keras_format.save_model(self, path)
        if suffix == ".h5":
            raise ValueError(
                f"{os.fspath(path)}: legacy Keras .h5 model files are not written; use .keras "
                "(for Keras) or .npz (tinynet's checkpoint)"
            )
        return saving.save_model(self, path, include_optimizer=include_optimizer)

    def save_weights(self, path):
        """The weights (and the optimizer's state) as Keras 3's ``.weights.h5``."""
        return keras_format.save_weights(self, fileio.file_path(path, "save_weights"))

    def load_weights(self, path):
        """Read weights from a ``.weights.h5`` or ``.keras`` file (Keras's or tinynet's)."""
        keras_format.load_weights(self, fileio.file_path(path, "load_weights"))

    def summary(self, print_fn=print):
        """Print a table of layers, output shapes and parameter counts (Keras's format)."""
        print_fn(format_summary(self))


ModelAPI = KerasAPI  # its name before tinynet/engine/ (tinynet.model_api)
