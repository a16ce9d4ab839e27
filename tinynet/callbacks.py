"""Callbacks: code that ``fit`` calls at fixed points of training, as in Keras.

A callback subclasses :class:`Callback` and overrides the hooks it needs. ``fit``
gives each callback the model (``self.model``) and calls, in order::

    on_train_begin(logs)
      on_epoch_begin(epoch, logs)
        on_train_batch_begin(step, logs)   # before the step (logs=None)
        on_train_batch_end(step, logs)     # logs: the epoch's running loss and metrics,
                                           # read from the device only if you look
                                           # (on a GPU each read waits for the device)
      on_epoch_end(epoch, logs)            # logs: {"loss": ..., "accuracy": ...,
                                           #        "val_loss": ..., ...} as floats
    on_train_end(logs)

Setting ``self.model.stop_training = True`` in a hook ends ``fit`` after the
current epoch.
"""

from __future__ import annotations

import os

import numpy as np

from . import backend, validation
from .files.fileio import SaveError
from .trace import dead_units, relu_of


class Callback:
    """Base class: every hook does nothing."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, step, logs=None):
        pass

    def on_train_batch_end(self, step, logs=None):
        pass

    def every_batch_hooks(self) -> list[str]:
        """The hooks this callback acts on at every batch ("on_train_batch_begin",
        "on_train_batch_end"): those its class overrides or it was given (LambdaCallback).
        ``fit`` calls only these at every batch; a fit whose epochs replay a CUDA graph,
        which runs a whole epoch at once, cannot have any."""
        hooks = ("on_train_batch_begin", "on_train_batch_end")
        return [h for h in hooks if h in vars(self) or getattr(type(self), h) is not getattr(Callback, h)]


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"][epoch]`` and so on.

    ``fit`` always adds one and returns it. ``history.epoch`` lists the epoch
    numbers seen; ``history.cuda_graph`` says whether the last ``fit`` replayed each
    epoch as a CUDA graph (``compile(cuda_graph=...)``).
    """

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []  # ``params`` ({"verbose", "epochs", "steps"}, as Keras) is set by fit
        self.cuda_graph = False

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class CallbackList:
    """Calls a hook on every callback, in order."""

    def __init__(self, callbacks, model):
        self.callbacks = list(callbacks)
        for c in self.callbacks:
            if not isinstance(c, Callback):
                raise TypeError(f"callbacks must be tinynet Callback instances, got {c!r}")
            c.set_model(model)
        self._batch_callbacks = [c for c in self.callbacks if "on_train_batch_end" in c.every_batch_hooks()]
        self._batch_begin_callbacks = [c for c in self.callbacks if "on_train_batch_begin" in c.every_batch_hooks()]

    def _call(self, hook, *args):
        for c in self.callbacks:
            getattr(c, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, step, logs=None):
        for c in self._batch_begin_callbacks:
            c.on_train_batch_begin(step, logs)

    def on_train_batch_end(self, step, logs=None):
        for c in self._batch_callbacks:
            c.on_train_batch_end(step, logs)


def _monitor_mode(monitor: str, mode: str) -> str:
    """ "min" or "max": Keras's "auto" maximises accuracies, minimises the rest."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f'mode must be "auto", "min" or "max", got {mode!r}')
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has stopped improving, as ``keras.callbacks.EarlyStopping``.

    An epoch improves on the best so far when it beats it by more than
    ``min_delta``. After ``patience`` epochs without improvement training stops. With
    ``restore_best_weights`` the model gets the weights of the best epoch back at
    the end of training. Epochs before ``start_from_epoch`` are not considered.
    """

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
    ):
        super().__init__()
        self.monitor, self.verbose = monitor, verbose
        self.min_delta = abs(validation.in_range("min_delta", min_delta, 0))
        self.patience = validation.non_negative_int("patience", patience)
        self.start_from_epoch = validation.non_negative_int("start_from_epoch", start_from_epoch)
        self.mode = _monitor_mode(monitor, mode)
        self.baseline, self.restore_best_weights = baseline, restore_best_weights

    def _improves(self, value, reference):
        if reference is None:
            return True
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best, self.best_epoch, self.best_weights = 0, 0, None, 0, None

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            print(
                f"EarlyStopping: '{self.monitor}' is not in the logs ({sorted(logs or {})}); "
                "did you pass validation data?"
            )
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._improves(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(
                f"Epoch {self.stopped_epoch + 1}: early stopping ({self.monitor} has not improved on "
                f"{self.best:.4f} from epoch {self.best_epoch + 1} for {self.wait} epochs)"
            )
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model at the end of every epoch (or only when ``monitor`` improved).

    ``filepath`` may hold ``{epoch:02d}`` and any log, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``.
    A full checkpoint (the default) holds the weights, the optimizer state, the
    epoch, the random generators' states and the History, so that
    ``tinynet.load_model(path)`` then ``fit(..., initial_epoch=epoch)`` continues
    exactly. With ``save_weights_only=True`` and a ``.weights.h5`` filepath, the weights go
    into Keras's weights file (``model.save_weights``), as Keras writes them. Every file is
    written atomically.
    """

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=False,
        mode="auto",
        initial_value_threshold=None,
    ):
        super().__init__()
        self.filepath, self.monitor, self.verbose = str(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = (
            save_best_only,
            validation.flag("save_weights_only", save_weights_only),
        )
        if self.filepath.endswith(".weights.h5") and not self.save_weights_only:
            raise ValueError(
                f"ModelCheckpoint({self.filepath!r}): a .weights.h5 file holds weights only; pass "
                "save_weights_only=True, or name a .keras or .npz file for the whole model"
            )
        if self.filepath.endswith(".h5") and not self.filepath.endswith(".weights.h5"):
            raise ValueError(
                f"ModelCheckpoint({self.filepath!r}): legacy .h5 model files are not written; name a .keras "
                "(for Keras) or .npz (tinynet's checkpoint) file, or a .weights.h5 with save_weights_only=True"
            )
        self.mode = _monitor_mode(monitor, mode)
        self.best = initial_value_threshold
        self.last_saved = None  # the path of the last checkpoint this callback wrote

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"ModelCheckpoint filepath {self.filepath!r} cannot be filled from epoch and "
                f"the logs {sorted(logs)}: {e}"
            ) from None
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                print(f"ModelCheckpoint: '{self.monitor}' is not in the logs; saving skipped")
                return
            better = self.best is None or (current < self.best if self.mode == "min" else current > self.best)
            if not better:
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved to {current:.5f}, saving the model to {path}")
            self.best = current
        elif self.verbose:
            print(f"Epoch {epoch + 1}: saving the model to {path}")
        try:
            if self.save_weights_only and path.endswith(".weights.h5"):
                self.model.save_weights(path)
            else:
                self.model.save(path, include_optimizer=not self.save_weights_only)
        except OSError as e:  # a full disk, a folder that cannot be made: say which file, and what is safe
            kept = (
                f"the last checkpoint written, {self.last_saved}, is intact" if self.last_saved else "none was written"
            )
            reason = getattr(e.__cause__, "strerror", None) or e.strerror or str(e)
            raise SaveError(
                e.errno, f"ModelCheckpoint could not write {path} at the end of epoch {epoch + 1} ({reason}); {kept}"
            ) from e
        self.last_saved = path


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for ``patience`` epochs."""

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
    ):
        super().__init__()
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau factor must be in (0, 1), got {factor!r}")
        self.monitor, self.factor, self.verbose = monitor, float(factor), verbose
        self.patience = validation.non_negative_int("patience", patience)
        self.cooldown = validation.non_negative_int("cooldown", cooldown)
        self.min_delta = validation.in_range("min_delta", min_delta, 0)
        self.min_lr = validation.in_range("min_lr", min_lr, 0)
        self.mode = _monitor_mode(monitor, mode)

    def on_train_begin(self, logs=None):
        self.wait, self.cooldown_counter, self.best = 0, 0, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        current = logs.get(self.monitor)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        improved = self.best is None or (
            current < self.best - self.min_delta if self.mode == "min" else current > self.best + self.min_delta
        )
        if improved:
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = self.model.optimizer.current_learning_rate
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new:g}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise ValueError(f"LearningRateScheduler needs a function schedule(epoch, lr), got {schedule!r}")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.schedule(epoch, self.model.optimizer.current_learning_rate))
        if not (lr >= 0 and lr < float("inf")):
            raise ValueError(f"the schedule returned learning rate {lr!r} for epoch {epoch}")
        self.model.optimizer.learning_rate = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr:g}.")


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file (flushed every epoch)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.separator, self.append = str(filename), separator, append
        self._file = None

    def on_train_begin(self, logs=None):
        import os

        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", encoding="utf-8")
        self._header = exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        keys = sorted(logs)
        if not self._header:
            self._file.write(self.separator.join(["epoch"] + keys) + "\n")
            self._header = True
        self._file.write(self.separator.join([str(epoch)] + [repr(float(logs[k])) for k in keys]) + "\n")
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class TerminateOnNaN(Callback):
    """Stop training quietly (no exception) when the loss becomes NaN or infinite.

    Without it ``fit`` raises :class:`tinynet.TrainingDiverged`; either way
    the epoch and step are reported and no further step trains on NaN.
    """


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``,
    with Keras's names for the hooks it may fill."""

    def __init__(
        self,
        on_epoch_begin=None,
        on_epoch_end=None,
        on_train_begin=None,
        on_train_end=None,
        on_train_batch_begin=None,
        on_train_batch_end=None,
    ):
        super().__init__()
        for name, fn in (
            ("on_epoch_begin", on_epoch_begin),
            ("on_epoch_end", on_epoch_end),
            ("on_train_begin", on_train_begin),
            ("on_train_end", on_train_end),
            ("on_train_batch_begin", on_train_batch_begin),
            ("on_train_batch_end", on_train_batch_end),
        ):
            if fn is not None:
                setattr(self, name, fn)


class GradientMonitor(Callback):
    """Watch backprop during ``fit``: per layer, every ``every`` steps, the gradient norms,
    the update ratios and the dead ReLU units. Draw them with :meth:`plot`.

    At a recorded step it measures, for each parameter (key ``"layer/parameter"``, e.g.
    ``"dense/kernel"``): ``grad_norm`` ||g||, the gradient the optimizer got (a weight
    penalty included); ``update_ratio`` ||dw|| / ||w||, the step the optimizer actually
    took relative to the weights before it (about 1e-3 is healthy; 1e-1 and the run is
    jumping around, 1e-6 and it barely moves; inf for weights that were all 0); and for
    each layer whose output is a ReLU's, ``dead_fraction``, the fraction of its units
    that were 0 for every sample of that batch (see :func:`tinynet.trace.dead_units`).

    Cost: at a recorded step, one copy of the parameters (to measure the update) and a
    few reductions, on the model's device; the values stay there and are read back once
    per epoch (on the GPU, one transfer). Reading changes nothing: training with or
    without the monitor gives the same weights, bit for bit.

    Args:
        every: record one step in this many, the first step of training included.
            Defaults to 10.

    Attributes:
        history: plain floats, one per recorded step: ``history["step"]`` (the optimizer's
            step count after that step, 1 for the first), ``history["grad_norm"][key]``,
            ``history["update_ratio"][key]``, ``history["dead_fraction"][layer name]``.
            Further fits of the same model add to it; a fit of another model starts it afresh.
    """

    def __init__(self, every: int = 10):
        super().__init__()
        self.every = validation.positive_int("every", every)
        self.history = {"step": [], "grad_norm": {}, "update_ratio": {}, "dead_fraction": {}}
        self._pending, self._before = [], None

    def on_train_begin(self, logs=None):
        self._pending, self._before = [], None
        if getattr(self, "_watched", self.model) is not self.model:  # another model: a history of its own
            self.history = {"step": [], "grad_norm": {}, "update_ratio": {}, "dead_fraction": {}}
        self._watched = self.model
        layers = list(self.model.named_layers())  # a model inside: each of its layers
        self._params = [(f"{name}/{p.name}", p) for name, layer in layers for p in layer.parameters()]
        self._relus = [(name, relu_of(layer)) for name, layer in layers if relu_of(layer) is not None]
        for key, _ in self._params:
            self.history["grad_norm"].setdefault(key, [])
            self.history["update_ratio"].setdefault(key, [])
        for name, _ in self._relus:
            self.history["dead_fraction"].setdefault(name, [])

    def on_train_batch_begin(self, step, logs=None):
        if self.model.optimizer.iterations % self.every == 0:
            self._before = [p.value.copy() for _, p in self._params]  # the weights before this step

    def on_train_batch_end(self, step, logs=None):
        """Measure the step just taken; every value stays a device scalar until the epoch ends."""
        if self._before is None:
            return
        xp = backend.get_array_module(self._before[0]) if self._before else backend.xp_for(self.model.device)
        grads, ratios = [], []
        for (_, p), w in zip(self._params, self._before):
            grads.append(xp.sqrt((p.grad * p.grad).sum(dtype=np.float64)))
            dw = p.value - w
            w_norm = xp.sqrt((w * w).sum(dtype=np.float64))
            ratio = xp.sqrt((dw * dw).sum(dtype=np.float64)) / xp.where(w_norm > 0, w_norm, 1.0)
            ratios.append(xp.where(w_norm > 0, ratio, xp.inf))  # weights of 0: inf, as documented
        dead = []
        for _, relu in self._relus:
            y = getattr(relu, "_y", None)  # ReLU.forward keeps its output for backward
            count, units = dead_units(y) if y is not None else (xp.asarray(np.nan), 1)
            dead.append(count.astype(np.float64) / units)
        values = grads + ratios + dead
        self._pending.append((self.model.optimizer.iterations, xp.stack(values) if values else None))
        self._before = None

    def on_epoch_end(self, epoch, logs=None):
        self._read()

    def on_train_end(self, logs=None):
        self._read()

    def _read(self):
        """Move the epoch's values to ``history`` as floats: one read from the device."""
        if not self._pending or self._pending[0][1] is None:
            self._pending = []
            return
        values = backend.to_numpy(backend.get_array_module(self._pending[0][1]).stack([v for _, v in self._pending]))
        keys = [("grad_norm", k) for k, _ in self._params] + [("update_ratio", k) for k, _ in self._params]
        keys += [("dead_fraction", name) for name, _ in self._relus]
        for (step, _), row in zip(self._pending, values):
            self.history["step"].append(int(step))
            for (kind, key), v in zip(keys, row):
                self.history[kind][key].append(float(v))
        self._pending = []

    def plot(self, path=None, title: str = "Gradients during training"):
        """Gradient norms and update ratios (log axes) and dead ReLU fractions over the steps.
        Returns the matplotlib Figure, saved as PNG to ``path`` if given."""
        from .plot import plot_gradient_monitor

        return plot_gradient_monitor(self.history, path, title)


class TensorBoard(Callback):
    """Logs for TensorBoard, written where and as ``keras.callbacks.TensorBoard`` writes them:
    ``log_dir/train`` and ``log_dir/validation``, the scalars ``epoch_loss``, ``epoch_<metric>``
    and ``epoch_learning_rate`` per epoch (validation's under the same names, in its own folder),
    and with ``histogram_freq=k`` each weight's histogram every k epochs, tagged
    ``<layer>/<weight>/histogram``. Then ``tensorboard --logdir logs``.

    What a learner of backprop wants and Keras dropped: ``write_grads=True`` adds each weight's
    gradient (of the epoch's last batch) as ``<layer>/<weight>/gradient/histogram``.

    Args:
        log_dir: the folder of the logs. Defaults to "logs".
        histogram_freq: every how many epochs the histograms are written; 0 for none. Defaults to 0.
        write_grads: the gradients' histograms too (with ``histogram_freq``). Defaults to False.
        update_freq: "epoch"; "batch", or an integer n: also ``batch_loss`` and ``batch_<metric>``
            (the epoch's running values, as Keras) every n batches, by step. Defaults to "epoch".

    Needs tensorboardX, a small writer of TensorBoard's files (never TensorFlow):
    ``pip install "tinynet[tensorboard]"``.
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_grads=False, update_freq="epoch"):
        super().__init__()
        try:
            import tensorboardX
        except ImportError as e:
            raise ImportError(f"TensorBoard needs tensorboardX: {backend.install_command('tensorboard')}") from e
        self._writer_class = tensorboardX.SummaryWriter
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"log_dir must be a folder's path, got {log_dir!r}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = validation.non_negative_int("histogram_freq", histogram_freq)
        self.write_grads = validation.flag("write_grads", write_grads)
        if update_freq not in ("epoch", "batch") and (
            isinstance(update_freq, bool) or not isinstance(update_freq, int) or update_freq < 1
        ):
            raise ValueError(f'update_freq must be "epoch", "batch" or an integer >= 1, got {update_freq!r}')
        self.update_freq = 1 if update_freq == "batch" else update_freq
        self._writers, self._step = {}, 0
        if update_freq != "epoch":  # the batch hooks are called only for a callback that has them
            self.on_train_batch_end = self._log_batch

    def _writer(self, which):
        if which not in self._writers:
            self._writers[which] = self._writer_class(os.path.join(self.log_dir, which))
        return self._writers[which]

    def on_train_begin(self, logs=None):
        """Both folders made (a log_dir that cannot be written fails here, before any step)."""
        for which in ("train", "validation"):
            folder = os.path.join(self.log_dir, which)
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as e:
                raise OSError(f"TensorBoard cannot write its logs to {folder!r}: {e.strerror or e}") from e
            if not os.access(folder, os.W_OK):
                raise PermissionError(f"TensorBoard cannot write its logs to {folder!r}: the folder is not writable")
        self._writer("train")

    def _log_batch(self, step, logs=None):
        self._step += 1
        if self._step % self.update_freq == 0 and logs:
            writer = self._writer("train")
            for name, value in logs.items():
                writer.add_scalar(f"batch_{name}", float(value), self._step)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        train["learning_rate"] = self.model.optimizer.current_learning_rate
        for name, value in train.items():
            self._writer("train").add_scalar(f"epoch_{name}", float(value), epoch)
        for name, value in logs.items():
            if name.startswith("val_"):
                self._writer("validation").add_scalar(f"epoch_{name[4:]}", float(value), epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        for writer in self._writers.values():
            writer.flush()

    def _log_weights(self, epoch):
        writer = self._writer("train")
        for name, layer in self.model.named_layers():  # a model inside: each of its layers
            for p in layer.weights:
                writer.add_histogram(f"{name}/{p.name}/histogram", backend.to_numpy(p.value), epoch)
            for p in layer.parameters() if self.write_grads else ():
                grad = backend.to_numpy(p.grad)
                if np.isfinite(grad).all():  # before the first step a gradient is not set yet
                    writer.add_histogram(f"{name}/{p.name}/gradient/histogram", grad, epoch)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
