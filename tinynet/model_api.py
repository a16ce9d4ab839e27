"""Keras's model API around the training loop: evaluate, predict, the one-batch methods,
weights, resumable state, files and the summary.

``Sequential`` (in :mod:`tinynet.model`) inherits all of it; it is kept apart so that
model.py reads as the training loop and nothing else.
"""

from __future__ import annotations

import numpy as np

from . import backend, keras_compat, metrics, saving, training, validation
from .callbacks import History
from .progress import ProgressBar
from .summary import format_summary


class ModelAPI:
    """``evaluate``, ``predict``, ``train_on_batch``, ``test_on_batch``, ``get_weights``/
    ``set_weights``, ``get_state``/``set_state`` (for exact resume), ``save`` and ``summary``."""

    # ---------------------------------------------------------------- what fit asks of the model

    def _require_compiled(self, what: str):
        if self.loss is None:
            raise RuntimeError(f"call model.compile(optimizer=..., loss=...) before model.{what}(...)")

    def count_correct(self, y_pred, y):
        """The number of correctly classified samples (a device scalar), or None without metrics."""
        if not self.metrics:
            return None
        kind = keras_compat.accuracy_kind(y.shape, y_pred.shape)
        return metrics.correct(kind, y_pred, y, from_logits=self.loss.from_logits)

    def starting_history(self, initial_epoch):
        """A new History; when resuming from a checkpoint at ``initial_epoch``, one that
        already holds the checkpoint's epochs, so the run reads as if never interrupted."""
        history = History()
        if initial_epoch > 0 and self._resumed and self._resumed[0] == initial_epoch:
            history.history = {k: list(v) for k, v in self._resumed[1].items()}
            history.epoch = list(range(initial_epoch))
        return history

    # ---------------------------------------------------------------- evaluate, predict

    def _evaluate_prepared(self, x, y, batch_size):
        logs = training.RunningLogs(self.device, bool(self.metrics))
        for lo in range(0, x.shape[0], batch_size):
            xb, yb = x[lo : lo + batch_size], y[lo : lo + batch_size]
            y_pred = self.forward(xb, training=False)
            loss = self.add_weight_penalties(self.loss_fn.forward(y_pred, yb), gradients=False)
            logs.add(loss, self.count_correct(y_pred, yb), xb.shape[0])
        return logs.read()

    def evaluate(self, x, y=None, batch_size=32, verbose="auto", return_dict=False):
        """Loss (and metrics) on ``x, y`` in inference mode (no dropout).

        Returns the loss alone, ``[loss, accuracy]`` with metrics, or a dict with
        ``return_dict=True``, as Keras.
        """
        self._require_compiled("evaluate")
        batch_size = validation.positive_int("batch_size", batch_size)
        verbose = validation.verbosity(verbose)
        x, y = validation.model_data(self, x, y, require_y=True)
        bar = ProgressBar(-(-x.shape[0] // batch_size), verbose)
        logs = self._evaluate_prepared(x, y, batch_size)
        bar.finish(logs)
        return self._format_logs(logs, return_dict)

    def predict(self, x, batch_size=32, verbose=0):
        """The model's outputs for ``x`` (after any final softmax/sigmoid), as NumPy."""
        batch_size = validation.positive_int("batch_size", batch_size)
        x, _ = validation.model_data(self, x)
        xp = backend.xp_for(self.device)
        outs = [self.forward(x[lo : lo + batch_size], training=False) for lo in range(0, x.shape[0], batch_size)]
        ProgressBar(len(outs), validation.verbosity(verbose)).finish({})
        return backend.to_numpy(xp.concatenate(outs, axis=0))

    # ---------------------------------------------------------------- weights, state, files

    def get_weights(self):
        """Every parameter as a NumPy array, in Keras's order (kernel, then bias)."""
        self._require_built("get_weights")
        return [backend.to_numpy(p.value).copy() for layer in self.layers for p in layer.weights()]

    def set_weights(self, weights):
        """Load arrays in ``get_weights`` order; shapes must match exactly."""
        self._require_built("set_weights")
        weights = [np.asarray(backend.to_numpy(w)) for w in weights]
        slots = [(layer, p) for layer in self.layers for p in layer.weights()]
        if len(weights) != len(slots):
            raise ValueError(f"set_weights expected {len(slots)} arrays, got {len(weights)}")
        for (layer, p), w in zip(slots, weights):
            if tuple(w.shape) != tuple(p.value.shape):
                raise ValueError(
                    f"layer {layer.name!r}: {p.name} has shape {tuple(p.value.shape)}, "
                    f"got an array of shape {tuple(w.shape)}"
                )
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
                "layers": {
                    layer.name: backend.generator_state(layer.rng)
                    for layer in self.layers
                    if getattr(layer, "rng", None) is not None
                },
            },
            "optimizer": self.optimizer.get_state() if self.optimizer is not None else None,
        }

    def set_state(self, state: dict):
        """Put back what :meth:`get_state` returned (raises ValueError for anything that does not fit)."""
        if state.get("optimizer") is not None:
            self.optimizer.set_state(state["optimizer"], self.parameters(), self.device)
        rng = state.get("rng", {})
        if rng.get("shuffle") is not None:
            self.shuffle_rng.bit_generator.state = rng["shuffle"]
        for layer in self.layers:
            saved = rng.get("layers", {}).get(layer.name)
            if saved is not None and getattr(layer, "rng", None) is not None:
                backend.set_generator_state(layer.rng, saved)
        self.epochs_done = int(state.get("epoch", 0))
        self._resumed = (self.epochs_done, state.get("history", {}))

    def save(self, path, include_optimizer=True):
        """Save architecture, weights and compile settings to an .npz, atomically.

        With ``include_optimizer`` (the default) the file is a full checkpoint: the
        optimizer's state, the epochs done, the random generators' states and the
        History too, so that ``tinynet.load_model(path).fit(..., initial_epoch=k)``
        continues as if never interrupted (see :mod:`tinynet.saving`).
        """
        return saving.save_model(self, path, include_optimizer=include_optimizer)

    def summary(self, print_fn=print):
        """Print a table of layers, output shapes and parameter counts (Keras's format)."""
        print_fn(format_summary(self))

    # ---------------------------------------------------------------- one batch at a time

    def train_on_batch(self, x, y, return_dict=False):
        """One optimisation step on exactly this batch; returns its loss (and metrics)."""
        self._require_compiled("train_on_batch")
        x, y = validation.model_data(self, x, y, require_y=True)
        self._start_training()
        loss, y_pred = self.train_step(x, y)
        logs = training.RunningLogs(self.device, bool(self.metrics))
        logs.add(loss, self.count_correct(y_pred, y), x.shape[0])
        return self._format_logs(logs.read(), return_dict)

    def test_on_batch(self, x, y, return_dict=False):
        """Loss (and metrics) on one batch in inference mode."""
        self._require_compiled("test_on_batch")
        x, y = validation.model_data(self, x, y, require_y=True)
        return self._format_logs(self._evaluate_prepared(x, y, x.shape[0]), return_dict)

    @staticmethod
    def _format_logs(logs, return_dict):
        if return_dict:
            return logs
        return logs["loss"] if len(logs) == 1 else [logs["loss"]] + [v for k, v in logs.items() if k != "loss"]
