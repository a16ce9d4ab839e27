"""The training loop: the one module the textbook reaches the machinery through.

``Sequential.fit`` reads as the textbook loop (epochs, batches, ``train_step``)::

    with loop.Loop(model, x, y, batch_size=32, epochs=5, ...) as run:
        for epoch in run.epochs():
            for x_batch, y_batch, w_batch in run.batches():
                loss, y_pred = model.train_step(x_batch, y_batch, w_batch)
                run.batch_end(loss, y_pred, y_batch)
            run.epoch_end()

and what a serious library needs around it is set up here, each piece in a module of its own:

- the data: validated, on the device, the validation split (:mod:`~tinynet.engine.data`);
- for the length of the run (:func:`prepared`): the flat parameter buffer
  (:mod:`~tinynet.engine.flat`), the fast twins (:mod:`~tinynet.engine.twins`), Keras's loss
  rule (:mod:`~tinynet.engine.keras_rules`), the threads (:mod:`~tinynet.engine.threads`);
- each epoch: batches sliced on the device in a fresh order, or the whole epoch replayed as a
  CUDA graph (:mod:`~tinynet.engine.graphs`); callbacks; the progress bar
  (:mod:`~tinynet.engine.progress`); the running loss and accuracy, summed on the device and
  read once per epoch (:class:`RunningLogs`); the NaN watch and Ctrl-C (:mod:`~tinynet.engine.guards`).
"""

from __future__ import annotations

import collections.abc
import contextlib
import math
import weakref

import numpy as np

from .. import backend, validation
from ..callbacks import CallbackList, TerminateOnNaN
from . import data, graphs, keras_rules, threads, twins
from .data import trainable_loss
from .flat import FlatParameters, GradientContractError
from .guards import InterruptGuard, LastGoodState, TrainingDiverged, weights_finite
from .progress import ProgressBar

NAN_CHECK_EVERY = 50  # GPU: steps between reads of the running loss (each read waits for the device)

__all__ = ["Loop", "prepared", "RunningLogs", "trainable_loss", "GradientContractError", "TrainingDiverged"]


class RunningLogs:
    """The loss and each metric, summed on the device over an epoch (or an evaluation)
    and read back only when asked: no host read per step.

    As Keras: the loss is the mean of the batches' losses weighted by their sizes (a
    batch's loss already holds its sample weights); the metrics ignore sample weights."""

    def __init__(self, device, metric_names):
        xp = backend.xp_for(device)
        self.loss_sum = xp.zeros((), dtype=np.float64)
        self.sums = {name: xp.zeros((), dtype=np.float64) for name in metric_names}
        self.n = 0

    def add(self, loss, hits, n):
        self.loss_sum += loss * n
        self.n += n
        for name, h in hits.items():
            self.sums[name] += h.sum()

    def read(self) -> dict:
        n = max(self.n, 1)
        return {"loss": float(self.loss_sum) / n, **{name: float(total) / n for name, total in self.sums.items()}}


class BatchLogs(collections.abc.Mapping):
    """A batch hook's ``logs``: the loss and metrics of the epoch so far (as Keras gives them),
    read from the device only if a callback looks at them, so a fit whose callbacks do not
    pays no host read per step."""

    def __init__(self, running: RunningLogs):
        self._running, self._values = running, None

    def _read(self) -> dict:
        if self._values is None:
            self._values = self._running.read()
        return self._values

    def __getitem__(self, key):
        return self._read()[key]

    def __iter__(self):
        return iter(self._read())

    def __len__(self):
        return len(self._read())

    def __repr__(self):
        return repr(self._read())


_open: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> prepared() blocks open on it


@contextlib.contextmanager
def prepared(model, train=True, batch_size=32):
    """For the length of fit, evaluate or a one-batch call: Keras's loss rule applied
    (:func:`tinynet.engine.keras_rules.loss_for` sets ``model.loss_fn``) and, to train, the
    parameters in the flat buffer (packed once, then kept) and the fast twins installed
    (:func:`tinynet.engine.twins.install`); on the CPU, the threads of a step (BLAS's, or the
    twins' own) as :mod:`tinynet.engine.threads` says for ``batch_size``. All but the buffer is
    undone on exit, so outside these calls every method is the textbook one. A call inside
    another (``evaluate`` or ``train_on_batch`` from a callback during ``fit``) keeps what
    the outer one set up, and leaves it in place when it ends."""
    if train:
        per_parameter = model.optimizer.clipnorm is not None
        if model.flat_parameters is None or not model.flat_parameters.still_fits(model, per_parameter):
            model.flat_parameters = FlatParameters(model, per_parameter)
        model.optimizer.arrange_state(model.flat_parameters.for_optimizer)
    if _open.get(model):
        _open[model] += 1
        try:
            yield
        finally:
            _open[model] -= 1
        return
    own_threads = train and twins.splits_steps(model)
    _open[model] = 1
    try:
        with threads.limited(model, batch_size, own_threads) as own, keras_rules.loss_for(model) as loss_fn:
            model.loss_fn = loss_fn
            if train:
                twins.install(model, threads=own)
            try:
                yield
            finally:
                twins.remove(model)
                model.loss_fn = model.loss
    finally:
        del _open[model]


def _wants_graph(model, sample_weight, callbacks) -> bool:
    """Whether fit captures its epochs as a CUDA graph (``compile(cuda_graph=...)``):
    True when asked and possible; with cuda_graph=True and a fit that cannot, a
    ValueError that says why, before any work."""
    asked = getattr(model, "cuda_graph", False)
    if not asked:
        return False
    why = graphs.why_not(model, sample_weight, callbacks)
    if why is not None and asked is True:
        raise ValueError(
            f"compile(cuda_graph=True), but this fit cannot run as a CUDA graph: {why}. "
            'compile(..., cuda_graph="auto") trains the usual way where a graph cannot.'
        )
    return why is None


class Loop:
    """Everything around ``train_step`` in ``fit`` (see the module's docstring for its use).

    Every argument is ``fit``'s, and is checked here, before any work: a bad one raises
    before the model or the data are touched."""

    def __init__(
        self,
        model,
        x,
        y=None,
        *,
        batch_size=32,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        class_weight=None,
        sample_weight=None,
        initial_epoch=0,
    ):
        options = validation.fit_options(batch_size, epochs, verbose, validation_split, initial_epoch)
        callbacks, self.shuffle = validation.callback_list(callbacks), validation.flag("shuffle", shuffle)
        self.x, self.y, self.w, val = data.fit_data(
            model, x, y, sample_weight, class_weight, options["validation_split"], validation_data
        )
        self.model, self.n, self.batch_size = model, self.x.shape[0], options["batch_size"]
        self.validate = None if val is None else (lambda: model.evaluate_prepared(*val[:2], self.batch_size, val[2]))
        self.wants_graph = _wants_graph(model, self.w, callbacks)  # compile(cuda_graph=...): checked before any work
        self.first_epoch, self.last_epoch, self.verbose = (
            options["initial_epoch"],
            options["epochs"],
            options["verbose"],
        )
        self.steps = math.ceil(self.n / self.batch_size)
        self.quiet_nan = any(isinstance(c, TerminateOnNaN) for c in callbacks)
        self.callbacks_given, self.graph, self.stopped = callbacks, None, False

    def __enter__(self):
        self._prepared = contextlib.ExitStack()
        self._quiet = contextlib.ExitStack()
        try:
            self._prepared.enter_context(prepared(self.model, batch_size=self.batch_size))
            self.history = self.model.starting_history(self.first_epoch)
            self.history.cuda_graph = self.wants_graph
            self.callbacks = CallbackList([self.history] + self.callbacks_given, self.model)
            params = {"verbose": self.verbose, "epochs": self.last_epoch, "steps": self.steps}
            for c in self.callbacks.callbacks:
                c.params = dict(params)
            # a diverging run overflows: the NaN watch reports it once, NumPy need not warn per step
            self._quiet.enter_context(np.errstate(over="ignore", invalid="ignore", divide="ignore"))
            self.guard = self._quiet.enter_context(InterruptGuard())
            self.model.history, self.model.stop_training = self.history, False
            self.callbacks.on_train_begin()
            self.last_good = LastGoodState(self.model)
            if self.wants_graph:  # every step of an epoch captured as one CUDA graph
                self.graph = graphs.EpochGraph(self.model, self.x, self.y, self.batch_size)
        except BaseException as error:
            self.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def __exit__(self, kind, error, tb):
        """The guard and NumPy's warnings back as they were; ``on_train_end`` (while the twins
        still stand in, as for every other hook); then what :func:`prepared` set up, undone."""
        try:
            self._quiet.__exit__(kind, error, tb)
            if isinstance(error, TrainingDiverged):
                error.history = self.history
            if error is None:
                self.callbacks.on_train_end()
        finally:
            self._prepared.__exit__(kind, error, tb)
        return False

    def epochs(self):
        for epoch in range(self.first_epoch, self.last_epoch):
            if self.stopped or self.model.stop_training:
                return
            self.epoch = epoch
            self.callbacks.on_epoch_begin(epoch)
            if self.verbose:
                print(f"Epoch {epoch + 1}/{self.last_epoch}", flush=True)
            self.bar = ProgressBar(self.steps, self.verbose)
            self.logs = RunningLogs(self.model.device, self.model.metrics)
            self.last_check = 0
            yield epoch

    def batches(self):
        """(x, y, sample weights or None) batch by batch, in a fresh random order each epoch
        (the order drawn on the host like on the CPU, so both train alike; uploaded once per epoch).
        When the epochs run as a CUDA graph, the whole epoch is replayed here and no batch is
        yielded: the graph is the same steps, captured once (:mod:`tinynet.engine.graphs`)."""
        if self.graph is not None:
            self._replay()
            return
        model, x, y, sample_weight = self.model, self.x, self.y, self.w
        order = backend.to_device(model.shuffle_rng.permutation(self.n), model.device) if self.shuffle else None
        for step in range(self.steps):
            lo, hi = step * self.batch_size, min((step + 1) * self.batch_size, self.n)
            idx = slice(lo, hi) if order is None else order[lo:hi]
            self.step = step
            self.callbacks.on_train_batch_begin(step)
            yield x[idx], y[idx], (None if sample_weight is None else sample_weight[idx])
            if self.stopped or self.guard.requested:
                return

    def _replay(self):
        """One epoch as one replay of the captured graph (an :class:`EpochGraph`), its order
        drawn as :meth:`batches` draws it; callbacks see it as one batch."""
        order = self.model.shuffle_rng.permutation(self.n) if self.shuffle else None
        self.step = self.steps - 1
        self.callbacks.on_train_batch_begin(0)
        loss_sum, hits = self.graph.run(order)
        self.logs.loss_sum += loss_sum
        self.logs.n += self.n
        for name in self.logs.sums:
            self.logs.sums[name] += hits
        self._watch_divergence()
        if not self.stopped:
            self.callbacks.on_train_batch_end(self.step, BatchLogs(self.logs))
            self.bar.update(self.steps, self.logs.read)

    def batch_end(self, loss, y_pred, y):
        self.logs.add(loss, self.model.metric_hits(y_pred, y), y.shape[0])
        self._watch_divergence()
        if self.stopped:
            return
        self.callbacks.on_train_batch_end(self.step, BatchLogs(self.logs))
        self.bar.update(self.step + 1, self.logs.read)

    def _watch_divergence(self):
        """Raise TrainingDiverged (or stop, with TerminateOnNaN) once the running loss is not finite.

        A NaN or infinite loss makes the running sum non-finite too, so reading the sum
        every ``NAN_CHECK_EVERY`` steps is enough on the GPU (on the CPU reading is
        free: every step)."""
        every = 1 if self.model.device == "cpu" else NAN_CHECK_EVERY
        step = self.step
        if (step + 1) % every and step != self.steps - 1:
            return
        if math.isfinite(float(self.logs.loss_sum)):
            self.last_check = step + 1
            return
        where = f"step {step + 1}" if every == 1 else f"steps {self.last_check + 1}-{step + 1}"
        self._diverged(f"the training loss became NaN or infinite in epoch {self.epoch + 1}, {where} of {self.steps}")

    def _diverged(self, what, step=None):
        """Put back the last finite weights, then raise TrainingDiverged (or stop, with TerminateOnNaN)."""
        self.last_good.restore()
        since = f"the end of epoch {self.epoch}" if self.epoch > self.first_epoch else "the start of this fit"
        error = TrainingDiverged(
            f"{what}. Training stopped instead of going on with NaN weights; the model holds its last "
            f"finite weights and optimizer state, from {since}. Try a lower learning rate "
            f"(now {self.model.optimizer.current_learning_rate:g}), clipping gradients (clipnorm=1.0), "
            "or scaling the inputs (e.g. x / 255).",
            self.epoch,
            self.step if step is None else step,
        )
        if not self.quiet_nan:
            raise error
        print(f"TerminateOnNaN: {error}")
        self.stopped = True

    def epoch_end(self):
        if self.stopped:
            return
        if self.guard.requested:
            print(
                f"Training interrupted in epoch {self.epoch + 1} (Ctrl-C); the model holds the weights after "
                f"the last finished step. Epochs finished: {self.epoch - self.first_epoch}. To resume exactly, "
                "load the last checkpoint (ModelCheckpoint) with tinynet.load_model and call "
                "fit(..., initial_epoch=<the epochs it holds>).",
                flush=True,
            )
            self.stopped = True
            return
        if not weights_finite(self.model):  # a last step can make the weights infinite with a finite loss
            self._diverged(f"the weights became NaN or infinite in epoch {self.epoch + 1} (the loss stayed finite)")
            return
        self.last_good.take()
        logs = self.logs.read()
        if self.validate is not None:
            logs.update({f"val_{k}": v for k, v in self.validate().items()})
        self.bar.finish(logs)
        self.model.epochs_done = self.epoch + 1
        self.callbacks.on_epoch_end(self.epoch, logs)
