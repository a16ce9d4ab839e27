"""``Sequential``: a stack of layers with Keras's ``compile``/``fit``/``evaluate``/``predict``.

How data flows through ``fit``::

    x, y --validate, move to the model's device once--> batches (sliced on the device)
    batch --forward through the layers--> output --loss--> L
    dL/d(output) --backward through the layers, last first--> every p.grad
    optimizer.apply(parameters)   # updates every p.value in place
    loss and accuracy are summed on the device and read once per epoch
    (and by the progress bar at a bounded rate), then callbacks see the logs

A model is itself a layer: ``forward(x, training)`` and ``backward(gy)``, so
:func:`tinynet.gradcheck.check_backward` checks a whole model at once.
"""

from __future__ import annotations

import math
import re

import numpy as np

from . import backend, losses, metrics, optimizers, validation
from .callbacks import CallbackList, History, TerminateOnNaN
from .conv import Conv2D
from .layers import Dense, Input, Layer
from .metrics import ACCURACY_NAMES
from .progress import ProgressBar
from .summary import format_summary
from .training import NAN_CHECK_EVERY, InterruptGuard, TrainingDiverged, pack_parameters


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()  # Conv2D -> conv2d, ReLU -> re_lu (as Keras)


class Sequential:
    """A linear stack of layers.

    Args:
        layers: the layers, optionally starting with an ``Input(shape)``.
        name: shown by ``summary()``.
        device: "cpu", "gpu" or "auto" (GPU when CuPy and a CUDA device are there).
            Defaults to "cpu". Data given to ``fit``/``evaluate``/``predict`` is
            moved to this device there, once per call.
        seed: seeds the initial weights, the shuffling and the dropout masks, so
            two runs with the same seed on the CPU are identical.
    """

    def __init__(self, layers=None, name: str = "sequential", device: str = "cpu", seed=None):
        self.name = name
        self.device = backend.resolve_device(device)
        self.seed = seed
        init_seq, shuffle_seq, dropout_seq = np.random.SeedSequence(seed).spawn(3)
        self._init_rng = np.random.default_rng(init_seq)
        self._shuffle_rng = np.random.default_rng(shuffle_seq)
        self._dropout_seeds = np.random.default_rng(dropout_seq)
        self.layers: list[Layer] = []
        self.input_shape = None
        self.output_shape = None
        self.optimizer = self.loss = None
        self.metrics: list[str] = []
        self.stop_training = False
        self.history = None
        for layer in layers or []:
            self.add(layer)

    # ---------------------------------------------------------------- building

    def add(self, layer):
        """Append a layer (or set the input shape with ``Input``)."""
        if isinstance(layer, Input):
            if self.layers:
                raise ValueError("Input(...) must come first, before any layer")
            self.input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential takes tinynet layers, got {layer!r}")
        if layer.input_shape is not None:
            if self.layers:
                raise ValueError(f"input_shape= is only allowed on the first layer, not on {layer!r}")
            self.input_shape = layer.input_shape
        if layer.name is None:
            base = _snake(type(layer).__name__)
            taken = {lyr.name for lyr in self.layers}
            layer.name = next(n for n in [base] + [f"{base}_{k}" for k in range(1, 10**6)] if n not in taken)
        self.layers.append(layer)
        if self.input_shape is not None:
            self.build(self.input_shape)

    @property
    def built(self) -> bool:
        return bool(self.layers) and all(layer.built for layer in self.layers) and self.output_shape is not None

    def build(self, input_shape):
        """Create every layer's parameters for samples of ``input_shape``."""
        shape = self.input_shape = tuple(int(d) for d in input_shape)
        self._shapes = []
        for layer in self.layers:
            if not layer.built:
                shape = layer.build(shape, self._init_rng)
                layer.to(self.device)
                if hasattr(layer, "reset_rng"):
                    seed = layer.seed if layer.seed is not None else int(self._dropout_seeds.integers(2**31))
                    layer.reset_rng(seed, self.device)
            else:
                shape = layer.compute_output_shape(shape)
            self._shapes.append(shape)
        self.output_shape = shape if self.layers else None

    def _ensure_built(self, x):
        if not self.layers:
            raise ValueError("the model has no layers; add some with model.add(...)")
        if not self.built:
            self.build(self.input_shape if self.input_shape is not None else x.shape[1:])

    def parameters(self):
        """Every trainable parameter, layer by layer (Keras's weight order)."""
        return [p for layer in self.layers for p in layer.parameters()]

    def to(self, device: str):
        """Move the model (parameters and optimizer state) to ``device``."""
        self.device = backend.resolve_device(device)
        for layer in self.layers:
            layer.to(self.device)
            if getattr(layer, "rng", None) is not None:
                layer.reset_rng(layer.rng_seed, self.device)
        if self.optimizer is not None:
            self.optimizer.to(self.device)
        return self

    # ---------------------------------------------------------------- compiling

    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Choose the optimizer, the loss and the metrics.

        Args:
            optimizer: a string ("adam", "sgd", "rmsprop", "adamw", "adagrad") or an
                Optimizer. Defaults to "rmsprop" (as Keras).
            loss: a string ("sparse_categorical_crossentropy", ...) or a Loss.
            metrics: ``None`` or ``["accuracy"]``.
        """
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='sparse_categorical_crossentropy'")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        self.metrics = []
        for m in metrics or []:
            if m not in ACCURACY_NAMES:
                raise ValueError(f"unknown metric {m!r}; tinynet supports {list(ACCURACY_NAMES)}")
            self.metrics.append("accuracy")
        if self.optimizer.slots is not None:
            self.optimizer.to(self.device)

    def _require_compiled(self, what: str):
        if self.loss is None:
            raise RuntimeError(f"call model.compile(optimizer=..., loss=...) before model.{what}(...)")

    @property
    def output_logits(self) -> bool:
        """Whether the loss is computed from the logits of the final softmax/sigmoid.

        True for a cross-entropy with ``from_logits=False`` after a softmax or sigmoid
        output, as Keras's TensorFlow backend does (see :mod:`tinynet.losses`).
        """
        last = self.layers[-1] if self.layers else None
        activation = getattr(last, "output_activation", None)
        loss = self.loss
        return bool(
            loss is not None
            and loss.is_crossentropy
            and not loss.from_logits
            and loss.use_output_logits
            and activation in ("softmax", "sigmoid")
        )

    def _step_loss(self):
        return self.loss.with_logits() if self.output_logits else self.loss

    # ---------------------------------------------------------------- forward / backward

    def forward(self, x, training=False, logits=False):
        """Run every layer; ``logits=True`` stops before a final softmax/sigmoid."""
        for layer in self.layers[:-1]:
            x = layer.forward(x, training)
        last = self.layers[-1]
        return last.forward(x, training, logits=True) if logits else last.forward(x, training)

    def backward(self, gy, input_grad=True):
        """Backprop ``gy = dL/d(output)`` through every layer, last first.

        ``input_grad=False`` (training) lets a first Dense or Conv2D layer skip the
        gradient of its input, the data, which nobody uses.
        """
        first = self.layers[0]
        for layer in reversed(self.layers):
            if layer is first and not input_grad and isinstance(layer, (Dense, Conv2D)):
                return layer.backward(gy, input_grad=False)
            gy = layer.backward(gy)
        return gy

    def _optimizer_parameters(self):
        """What the optimizer updates: one flat parameter when possible (see
        :func:`tinynet.training.pack_parameters`), else the list of parameters."""
        return pack_parameters(self)

    # ---------------------------------------------------------------- data at the boundary

    def _prepare(self, x, y=None):
        """Validate, convert and move x (and y) to the model's device."""
        x = validation.features(x, self.input_shape if self.built else None)
        self._ensure_built(x)
        if y is not None:
            y = validation.targets(y, x.shape[0], self.loss, self.output_shape)
            y = backend.to_device(y, self.device)
        return backend.to_device(x, self.device), y

    # ---------------------------------------------------------------- one step

    def _train_step(self, x, y, loss_fn):
        """forward -> loss -> backward -> update, on one batch. Returns (L, output)."""
        out = self.forward(x, training=True, logits=self.output_logits)
        loss = loss_fn.forward(out, y)
        self.backward(loss_fn.backward(), input_grad=False)
        penalty = self._regularization(add_gradients=True)
        self.optimizer.apply(self._params)
        return (loss if penalty is None else loss + penalty), out

    def _regularization(self, add_gradients=False):
        """The sum of the layers' weight penalties (None without any); with
        ``add_gradients``, each penalty's gradient is added to its kernel's gradient."""
        total = None
        for layer in self.layers:
            reg = getattr(layer, "kernel_regularizer", None)
            if reg is None:
                continue
            W = layer.kernel.value
            total = reg(W) if total is None else total + reg(W)
            if add_gradients:
                layer.kernel.grad += reg.gradient(W)
        return total

    def _accuracy_kind(self, y):
        return metrics.accuracy_kind(y.shape, (y.shape[0],) + tuple(self.output_shape))

    def _batch_logs(self, loss, out, y):
        """Device scalars (loss, number correct) for one batch."""
        correct = None
        if self.metrics:
            correct = metrics.correct(self._accuracy_kind(y), out, y, from_logits=self.output_logits)
        return loss, correct

    # ---------------------------------------------------------------- fit

    def fit(
        self,
        x,
        y,
        batch_size=32,
        epochs=1,
        verbose="auto",
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        callbacks=None,
        initial_epoch=0,
    ):
        """Train the model, as ``keras.Model.fit``.

        Args:
            x, y: training inputs and targets.
            batch_size: samples per step; the last batch of an epoch may be smaller.
                Defaults to 32.
            epochs: train until this epoch number. Defaults to 1.
            verbose: 0 silent, 1 progress bar, 2 one line per epoch. "auto" is 1.
            validation_split: the fraction of samples, taken from the *end* of x
                and y before any shuffling, held out for validation. Defaults to 0.
            validation_data: ``(x_val, y_val)``; overrides validation_split.
            shuffle: reshuffle the training samples before each epoch.
            callbacks: a list of :class:`~tinynet.callbacks.Callback`.
            initial_epoch: the epoch to start from (to resume a run).

        Returns:
            A :class:`~tinynet.callbacks.History`; ``.history`` maps "loss",
            "accuracy", "val_loss", "val_accuracy" to one float per epoch.
        """
        self._require_compiled("fit")
        batch_size = validation.positive_int("batch_size", batch_size)
        epochs = validation.positive_int("epochs", epochs)
        initial_epoch = validation.non_negative_int("initial_epoch", initial_epoch)
        verbose = validation.verbosity(verbose)
        validation_split = validation.fraction("validation_split", validation_split)
        x, y = self._prepare(x, y)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (x_val, y_val)")
            val = self._prepare(*validation_data)
        elif validation_split > 0:
            split = int(math.floor(x.shape[0] * (1.0 - validation_split)))
            if split == 0 or split == x.shape[0]:
                raise ValueError(
                    f"validation_split={validation_split} of {x.shape[0]} samples leaves "
                    f"{split} for training and {x.shape[0] - split} for validation; both need at least one"
                )
            x, y, val = x[:split], y[:split], (x[split:], y[split:])
        else:
            val = None

        history = self._start_history(initial_epoch)
        callbacks = list(callbacks or [])
        cbs = CallbackList([history] + callbacks, self)
        self.history, self.stop_training = history, False
        self._params = self._optimizer_parameters()
        quiet_nan = any(isinstance(c, TerminateOnNaN) for c in callbacks)
        cbs.on_train_begin()
        with InterruptGuard() as interrupt:
            for epoch in range(initial_epoch, epochs):
                cbs.on_epoch_begin(epoch)
                if verbose:
                    print(f"Epoch {epoch + 1}/{epochs}", flush=True)
                bar = ProgressBar(math.ceil(x.shape[0] / batch_size), verbose)
                try:
                    logs = self._train_epoch(x, y, batch_size, shuffle, epoch, bar, cbs, interrupt)
                except TrainingDiverged as e:
                    if not quiet_nan:
                        e.history = history
                        raise
                    print(f"TerminateOnNaN: {e}")
                    break
                if logs is None:  # interrupted
                    print(
                        f"Training interrupted in epoch {epoch + 1} (Ctrl-C); the model holds the weights "
                        f"after the last finished step. Epochs finished: {epoch - initial_epoch}. To resume "
                        "exactly, load the last checkpoint (ModelCheckpoint) with tinynet.load_model and call "
                        "fit(..., initial_epoch=<the epochs it holds>).",
                        flush=True,
                    )
                    break
                if val is not None:
                    val_logs = self._evaluate_prepared(*val, batch_size)
                    logs.update({f"val_{k}": v for k, v in val_logs.items()})
                bar.finish(logs)
                self._epochs_done = epoch + 1
                cbs.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        cbs.on_train_end()
        return history

    def _start_history(self, initial_epoch):
        """A new History; when resuming from a checkpoint at ``initial_epoch``, one that
        already holds the checkpoint's epochs, so the run reads as if never interrupted."""
        history = History()
        resumed = getattr(self, "_resume_state", None)
        if initial_epoch > 0 and resumed and resumed.get("epoch") == initial_epoch:
            history.history = {k: list(v) for k, v in resumed.get("history", {}).items()}
            history.epoch = list(range(initial_epoch))
        return history

    def _train_epoch(self, x, y, batch_size, shuffle, epoch, bar, cbs, interrupt):
        """One pass over (x, y). Returns the epoch's logs, or None when interrupted.

        The loss is summed on the device. A NaN or infinite loss is caught without a
        host read per step on the GPU: the running sum turns non-finite too, and it is
        read every ``NAN_CHECK_EVERY`` steps (on the CPU reading is free: every step).
        """
        xp = backend.xp_for(self.device)
        loss_fn = self._step_loss()
        n = x.shape[0]
        steps = math.ceil(n / batch_size)
        order = backend.to_device(self._shuffle_rng.permutation(n), self.device) if shuffle else None
        loss_sum = xp.zeros((), dtype=np.float64)
        correct_sum = xp.zeros((), dtype=np.float64)
        check_every = 1 if self.device == "cpu" else NAN_CHECK_EVERY
        last_check = 0
        for step in range(steps):
            lo, hi = step * batch_size, min((step + 1) * batch_size, n)
            if order is None:
                xb, yb = x[lo:hi], y[lo:hi]
            else:
                idx = order[lo:hi]
                xb, yb = x[idx], y[idx]
            loss, out = self._train_step(xb, yb, loss_fn)
            loss, correct = self._batch_logs(loss, out, yb)
            loss_sum += loss * (hi - lo)
            if correct is not None:
                correct_sum += correct
            if ((step + 1) % check_every == 0 or step == steps - 1) and not math.isfinite(float(loss_sum)):
                where = f"step {step + 1}" if check_every == 1 else f"steps {last_check + 1}-{step + 1}"
                raise TrainingDiverged(
                    f"the training loss became NaN or infinite in epoch {epoch + 1}, {where} of {steps}. "
                    "Training stopped instead of going on with NaN weights. Try a lower learning rate "
                    f"(now {self.optimizer.current_learning_rate:g}), clipping gradients (clipnorm=1.0), "
                    "or scaling the inputs (e.g. x / 255).",
                    epoch,
                    step,
                )
            if (step + 1) % check_every == 0:
                last_check = step + 1
            cbs.on_train_batch_end(step)
            bar.update(step + 1, lambda s=loss_sum, c=correct_sum, k=hi: self._logs(s, c, k))
            if interrupt.requested:
                return None
        return self._logs(loss_sum, correct_sum, n)

    def _logs(self, loss_sum, correct_sum, n):
        """Read the epoch's running sums back from the device: {"loss", "accuracy"}."""
        logs = {"loss": float(loss_sum) / n}
        if self.metrics:
            logs["accuracy"] = float(correct_sum) / n
        return logs

    # ---------------------------------------------------------------- evaluate / predict

    def _evaluate_prepared(self, x, y, batch_size):
        loss_fn = self._step_loss()
        penalty = self._regularization()
        xp = backend.xp_for(self.device)
        loss_sum = xp.zeros((), dtype=np.float64)
        correct_sum = xp.zeros((), dtype=np.float64)
        n = x.shape[0]
        for lo in range(0, n, batch_size):
            xb, yb = x[lo : lo + batch_size], y[lo : lo + batch_size]
            out = self.forward(xb, training=False, logits=self.output_logits)
            loss = loss_fn.forward(out, yb)
            if penalty is not None:
                loss = loss + penalty
            loss, correct = self._batch_logs(loss, out, yb)
            loss_sum += loss * xb.shape[0]
            if correct is not None:
                correct_sum += correct
        return self._logs(loss_sum, correct_sum, n)

    def evaluate(self, x, y, batch_size=32, verbose="auto", return_dict=False):
        """Loss (and metrics) on ``x, y`` in inference mode (no dropout).

        Returns the loss alone, ``[loss, accuracy]`` with metrics, or a dict with
        ``return_dict=True``, as Keras.
        """
        self._require_compiled("evaluate")
        batch_size = validation.positive_int("batch_size", batch_size)
        verbose = validation.verbosity(verbose)
        x, y = self._prepare(x, y)
        logs = self._evaluate_prepared(x, y, batch_size)
        if verbose:
            ProgressBar(math.ceil(x.shape[0] / batch_size), verbose).finish(logs)
        return self._format_logs(logs, return_dict)

    @staticmethod
    def _format_logs(logs, return_dict):
        if return_dict:
            return logs
        return logs["loss"] if len(logs) == 1 else [logs["loss"]] + [v for k, v in logs.items() if k != "loss"]

    def predict(self, x, batch_size=32, verbose=0):
        """The model's outputs for ``x`` (after any final softmax/sigmoid), as NumPy."""
        batch_size = validation.positive_int("batch_size", batch_size)
        x, _ = self._prepare(x)
        xp = backend.xp_for(self.device)
        outs = [self.forward(x[lo : lo + batch_size], training=False) for lo in range(0, x.shape[0], batch_size)]
        out = xp.concatenate(outs, axis=0)
        if verbose:
            ProgressBar(len(outs), verbose).finish({})
        return backend.to_numpy(out)

    def train_on_batch(self, x, y, return_dict=False):
        """One optimisation step on exactly this batch; returns its loss (and metrics)."""
        self._require_compiled("train_on_batch")
        x, y = self._prepare(x, y)
        self._params = self._optimizer_parameters()
        loss, out = self._train_step(x, y, self._step_loss())
        loss, correct = self._batch_logs(loss, out, y)
        return self._format_logs(self._logs(loss * x.shape[0], correct, x.shape[0]), return_dict)

    def test_on_batch(self, x, y, return_dict=False):
        """Loss (and metrics) on one batch in inference mode."""
        self._require_compiled("test_on_batch")
        x, y = self._prepare(x, y)
        return self._format_logs(self._evaluate_prepared(x, y, x.shape[0]), return_dict)

    # ---------------------------------------------------------------- weights

    def get_weights(self):
        """Every parameter as a NumPy array, in Keras's order (kernel, then bias)."""
        return [backend.to_numpy(p.value).copy() for layer in self.layers for p in layer.weights()]

    def set_weights(self, weights):
        """Load arrays in ``get_weights`` order; shapes must match exactly."""
        if not self.built:
            raise RuntimeError("build the model first (give an Input shape, or call fit/predict/build)")
        weights = list(weights)
        slots = [(layer, p) for layer in self.layers for p in layer.weights()]
        if len(weights) != len(slots):
            raise ValueError(f"set_weights expected {len(slots)} arrays, got {len(weights)}")
        for (layer, p), w in zip(slots, weights):
            w = np.asarray(backend.to_numpy(w))
            if tuple(w.shape) != tuple(p.value.shape):
                raise ValueError(
                    f"layer {layer.name!r}: {p.name} has shape {tuple(p.value.shape)}, "
                    f"got an array of shape {tuple(w.shape)}"
                )
        for (_, p), w in zip(slots, weights):
            p.value[...] = backend.to_device(np.asarray(backend.to_numpy(w), dtype=p.value.dtype), self.device)

    def save(self, path, include_optimizer=True):
        """Save architecture, weights and compile settings to an .npz, atomically.

        With ``include_optimizer`` (the default) the file is a full checkpoint: the
        optimizer's state, the epochs done, the random generators' states and the
        History too, so that ``tinynet.load_model(path).fit(..., initial_epoch=k)``
        continues as if never interrupted (see :mod:`tinynet.saving`).
        """
        from .saving import save_model

        return save_model(self, path, include_optimizer=include_optimizer)

    # ---------------------------------------------------------------- summary

    def summary(self, print_fn=print):
        """Print a table of layers, output shapes and parameter counts (Keras's format)."""
        print_fn(format_summary(self))
