"""The machinery around the training step: the epoch loop, the flat parameter buffer.

``Sequential.fit`` reads as the textbook loop (epochs, batches, ``train_step``); what
a serious library needs around it lives here, so the step itself stays five lines:

- :class:`Loop`: epochs and batches (sliced on the device in a fresh order), callbacks, the
  progress bar, the running loss and accuracy (summed on the device, read once per
  epoch), the NaN watch, Ctrl-C;
- :class:`FlatParameters`: every parameter's value and gradient as views into one
  flat buffer each, so an optimizer updates all of them in a few whole-buffer
  operations; it also makes the layer contract safe (a gradient a layer *assigned*
  is copied in, and a layer that broke the contract is named at the first step).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import signal
import threading
import weakref

import numpy as np

from . import backend, fast, graphs, keras_compat, losses, threads, validation
from .callbacks import CallbackList, TerminateOnNaN
from .layers.core import Parameter
from .progress import ProgressBar

NAN_CHECK_EVERY = 50  # GPU: steps between reads of the running loss (each read waits for the device)


class TrainingDiverged(FloatingPointError):
    """The loss or the weights became NaN or infinite; ``epoch`` and ``step`` (0-based) say
    where, ``history`` holds the finished epochs. The model then holds its last finite
    weights and optimizer state (those at the end of the last finished epoch, or at the
    start of ``fit``), not the NaN ones."""

    def __init__(self, message, epoch, step):
        super().__init__(message)
        self.epoch, self.step, self.history = epoch, step, None


class GradientContractError(RuntimeError):
    """A layer's backward did not set its parameters' gradients as the layer contract says."""


# ------------------------------------------------------------------ a learner's loss


class WithoutSampleWeight(losses.Loss):
    """A loss whose own ``forward(y_pred, y_true)`` takes no sample weights (a learner's
    loss written the short way), made to fit the three-argument call of training."""

    def __init__(self, loss):
        super().__init__(loss.from_logits, loss.use_output_logits)
        self.loss, self.name, self.is_crossentropy = loss, loss.name, loss.is_crossentropy

    def forward(self, y_pred, y_true, sample_weight=None):
        if sample_weight is not None:
            raise ValueError(
                f"{type(self.loss).__name__}.forward takes no sample_weight; accept a third "
                "argument sample_weight=None (or write per_sample and gradient) to use weights"
            )
        return self.loss.forward(y_pred, y_true)

    def backward(self):
        return self.loss.backward()

    def with_logits(self):
        return WithoutSampleWeight(self.loss.with_logits())


def trainable_loss(loss):
    """``loss`` as training calls it, ``forward(y_pred, y_true, sample_weight)``: a loss whose
    own forward takes two arguments (a learner's, written the short way) is wrapped."""
    parameters = inspect.signature(loss.forward).parameters.values()
    positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)
    if positional < 3 and not any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return WithoutSampleWeight(loss)
    return loss


# ------------------------------------------------------------------ the flat parameter buffer


class FlatParameters:
    """A model's parameters as views into one flat value and one flat gradient buffer.

    Adam is memory bound, and at small batch sizes its per-parameter passes and calls
    are a large share of a step: over one flat buffer it is a few whole-buffer
    operations. ``collect()`` hands the optimizer what it updates: ``[flat]``, or the
    layers' own parameters when it works per parameter (``clipnorm``) or the
    parameters do not share a dtype.

    The layer contract lets ``backward`` either write into ``p.grad`` or assign a new
    array to it; ``collect()`` copies an assigned one into its place in the buffer.
    At the first step the gradient buffer starts as NaN, so that a layer that did not
    set a gradient (or added to the old one) is caught and named, never silently
    trained with a stale gradient.
    """

    def __init__(self, model, per_parameter: bool):
        self.entries = [(layer.name, p) for layer in model.layers for p in layer.parameters()]
        params = [p for _, p in self.entries]
        xp = backend.xp_for(model.device)
        self.flat = None
        if params and len({p.value.dtype for p in params}) == 1:
            values = xp.empty(sum(p.value.size for p in params), dtype=params[0].value.dtype)
            grads = xp.full(values.shape, np.nan, dtype=values.dtype)  # NaN until a backward sets them
            offset = 0
            for p in params:
                n, shape = p.value.size, p.value.shape
                values[offset : offset + n] = p.value.ravel()
                p.value, p.grad = values[offset : offset + n].reshape(shape), grads[offset : offset + n].reshape(shape)
                offset += n
            self.flat = Parameter(values, "all parameters (flat)")
            self.flat.grad = grads
        else:
            for p in params:
                p.grad = xp.full(p.value.shape, np.nan, dtype=p.value.dtype)
        self.views = [(p, p.value, p.grad) for p in params]
        self.per_parameter, self.first_step = per_parameter, True

    def still_fits(self, model, per_parameter: bool) -> bool:
        """Whether the model still has exactly these parameters and views (no ``to``, no cast)."""
        params = model.parameters()
        return (
            per_parameter == self.per_parameter
            and len(params) == len(self.views)
            and all(p is q and p.value is v and p.grad is g for p, (q, v, g) in zip(params, self.views))
        )

    def collect(self) -> list[Parameter]:
        """The parameters for the optimizer, with the gradients the layers set in place."""
        for (layer, p), (_, _, view) in zip(self.entries, self.views):
            if p.grad is not view:  # the layer assigned a new array: check it, copy it in
                _check_assigned(layer, p, view)
                view[...] = p.grad
                p.grad = view
        if self.first_step:
            self._check_every_gradient_was_set()
        return self.for_optimizer

    @property
    def for_optimizer(self) -> list[Parameter]:
        """What the optimizer updates: ``[flat]``, or each parameter (clipnorm, mixed dtypes)."""
        return [p for _, p in self.entries] if self.flat is None or self.per_parameter else [self.flat]

    def _check_every_gradient_was_set(self):
        """At the first step: a gradient still all NaN (the buffer's start) was not set by its
        layer. When every gradient is NaN the loss itself was (the NaN watch reports that)."""
        if not self.entries:
            self.first_step = False
            return
        xp = backend.get_array_module(self.entries[0][1].grad)
        all_nan = backend.to_numpy(xp.stack([xp.isnan(p.grad).all() for _, p in self.entries]))  # one read
        unset = [(layer, p) for (layer, p), nan in zip(self.entries, all_nan) if nan]
        if unset and len(unset) < len(self.entries):
            layer, p = unset[0]
            raise GradientContractError(
                f"layer {layer!r}: backward did not set {p.name}.grad (it still holds NaN, the value "
                f"it had before the step), or added to it with += instead of setting it. A backward "
                f"must set p.grad = dL/dp of this batch: self.{p.name}.grad = ... or "
                f"self.{p.name}.grad[...] = ... (see tinynet/layers/core.py)"
            )
        self.first_step = bool(unset)


def _check_assigned(layer, p, view):
    g = p.grad
    if g is None or not hasattr(g, "shape"):
        raise GradientContractError(
            f"layer {layer!r}: backward set {p.name}.grad to {g!r}, expected an array of shape {tuple(view.shape)}"
        )
    if backend.device_of(g) != backend.device_of(view):
        raise GradientContractError(
            f"layer {layer!r}: backward set {p.name}.grad to an array on the {backend.device_of(g).upper()}, "
            f"but the model is on the {backend.device_of(view).upper()}; compute it with the arrays of "
            "the forward pass (backend.get_array_module(x)), not with numpy"
        )
    if tuple(g.shape) != tuple(view.shape):
        raise GradientContractError(
            f"layer {layer!r}: backward set {p.name}.grad of shape {tuple(g.shape)}, "
            f"but {p.name} has shape {tuple(view.shape)}"
        )


def fit_data(model, x, y, sample_weight, class_weight, validation_split, validation_data):
    """(x, y, w, validation) for ``fit``, validated and on the model's device: ``w`` the
    sample weights (from sample_weight or class_weight) or None, ``validation`` None or
    (x_val, y_val, w_val)."""
    validation.warn_if_unscaled(x)
    x, y = validation.model_data(model, x, y, require_y=True)
    n = x.shape[0]
    w = validation.sample_weights(sample_weight, class_weight, y, n)
    w = w if w is None else backend.to_device(w, model.device)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight)")
        x_val, y_val = validation.model_data(model, *validation_data[:2], require_y=True)
        w_val = validation_data[2] if len(validation_data) == 3 else None
        w_val = validation.sample_weights(w_val, None, y_val, x_val.shape[0], "validation sample_weight")
        return x, y, w, (x_val, y_val, None if w_val is None else backend.to_device(w_val, model.device))
    if validation_split == 0:
        return x, y, w, None
    (x, y), (x_val, y_val) = keras_compat.split_last(x, y, validation_split)
    if x.shape[0] == 0 or x_val.shape[0] == 0:
        raise ValueError(
            f"validation_split={validation_split} of {n} samples leaves {x.shape[0]} for training and "
            f"{x_val.shape[0]} for validation; both need at least one"
        )
    w_val = None
    if w is not None:
        w, w_val = w[: x.shape[0]], w[x.shape[0] :]
    return x, y, w, (x_val, y_val, w_val)


_open: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> prepared() blocks open on it


@contextlib.contextmanager
def prepared(model, train=True, batch_size=32):
    """For the length of fit, evaluate or a one-batch call: Keras's loss rule applied
    (:func:`tinynet.keras_compat.loss_for` sets ``model.loss_fn``) and, to train, the
    parameters in the flat buffer (packed once, then kept) and the fast twins installed
    (:func:`tinynet.fast.install`); on the CPU, the threads of a step (BLAS's, or the
    twins' own) as :mod:`tinynet.threads` says for ``batch_size``. All but the buffer is
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
    own_threads = train and fast.splits_steps(model)
    _open[model] = 1
    try:
        with threads.limited(model, batch_size, own_threads) as own, keras_compat.loss_for(model) as loss_fn:
            model.loss_fn = loss_fn
            if train:
                fast.install(model, threads=own)
            try:
                yield
            finally:
                fast.remove(model)
                model.loss_fn = model.loss
    finally:
        del _open[model]


def wants_graph(model, sample_weight, callbacks) -> bool:
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


# ------------------------------------------------------------------ the epoch loop


class InterruptGuard:
    """Ctrl-C during ``fit``: the first stops training after the current batch, the
    second aborts at once (the previous handler is back in place after the first).
    Only installed in the main thread, where Python delivers signals."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)
        print("\nInterrupted: stopping after this batch (press Ctrl-C again to abort at once).", flush=True)

    def __exit__(self, *exc):
        if self._previous is not None and not self.requested:
            signal.signal(signal.SIGINT, self._previous)
        return False


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


class LastGoodState:
    """A copy of the model's weights and optimizer state, taken when they were known to be
    finite (the start of ``fit``, then the end of each epoch), to put back when training
    diverges: one copy per epoch, on the device, never a host read."""

    def __init__(self, model):
        self.model = model
        self.take()

    def take(self):
        opt = self.model.optimizer
        self.weights = [p.value.copy() for p in self.model.weights]
        self.slots = None if opt.slots is None else {k: [a.copy() for a in v] for k, v in opt.slots.items()}
        self.iterations = opt.iterations

    def restore(self):
        """Put the copy back in place (into the same arrays: the flat buffer, a captured graph's pointers)."""
        opt = self.model.optimizer
        for p, saved in zip(self.model.weights, self.weights):
            p.value[...] = saved
        if self.slots is None:  # no state yet at the copy: the optimizer makes it afresh at its next step
            opt.slots = None
        for name, arrays in (opt.slots or {}).items():
            saved = [s.reshape(a.shape) for s, a in zip(self.slots[name], arrays)]
            for a, s in zip(arrays, saved):
                a[...] = s
        opt.iterations = self.iterations


def weights_finite(model) -> bool:
    """Whether every weight (and the optimizer's state) is finite: one reduction per array, one read."""
    arrays = [p.value for p in model.weights]
    opt = model.optimizer
    if opt is not None and opt.slots:
        arrays += [a for values in opt.slots.values() for a in values]
    if not arrays:
        return True
    xp = backend.get_array_module(arrays[0])
    return bool(xp.stack([xp.isfinite(a).all() for a in arrays]).all())


class Loop:
    """Everything around ``train_step`` in ``fit``: used as

    with Loop(model, ...) as loop:
        for epoch in loop.epochs():
            for xb, yb in loop.batches(x, y):
                loss, y_pred = model.train_step(xb, yb)
                loop.batch_end(loss, y_pred, yb)
            loop.epoch_end()
    history = loop.history
    """

    def __init__(self, model, n, options, callbacks, shuffle, validate, graph=False):
        """``options``: fit's checked numbers (``validation.fit_options``); ``graph``:
        whether each epoch replays a CUDA graph (``history.cuda_graph``)."""
        self.model, self.n, self.batch_size, self.shuffle = model, n, options["batch_size"], shuffle
        self.first_epoch, self.last_epoch = options["initial_epoch"], options["epochs"]
        self.verbose, self.validate = options["verbose"], validate
        self.steps = math.ceil(n / self.batch_size)
        self.history = model.starting_history(self.first_epoch)
        callbacks = list(callbacks or [])
        self.quiet_nan = any(isinstance(c, TerminateOnNaN) for c in callbacks)
        self.callbacks = CallbackList([self.history] + callbacks, model)
        self.guard = InterruptGuard()
        self.stopped = False
        self.history.cuda_graph = bool(graph)
        params = {"verbose": self.verbose, "epochs": self.last_epoch, "steps": self.steps}
        for c in self.callbacks.callbacks:
            c.params = dict(params)

    def __enter__(self):
        # a diverging run overflows: the NaN watch reports it once, NumPy need not warn per step
        self._quiet = np.errstate(over="ignore", invalid="ignore", divide="ignore")
        self._quiet.__enter__()
        self.guard.__enter__()
        self.model.history, self.model.stop_training = self.history, False
        self.callbacks.on_train_begin()
        self.last_good = LastGoodState(self.model)
        return self

    def __exit__(self, kind, error, tb):
        self.guard.__exit__(kind, error, tb)
        self._quiet.__exit__(kind, error, tb)
        if isinstance(error, TrainingDiverged):
            error.history = self.history
        if error is None:
            self.callbacks.on_train_end()
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

    def batches(self, x, y, sample_weight=None):
        """(x, y, sample weights or None) batch by batch, in a fresh random order each epoch
        (the order drawn on the host like on the CPU, so both train alike; uploaded once per epoch)."""
        model = self.model
        order = backend.to_device(model.shuffle_rng.permutation(self.n), model.device) if self.shuffle else None
        for step in range(self.steps):
            lo, hi = step * self.batch_size, min((step + 1) * self.batch_size, self.n)
            idx = slice(lo, hi) if order is None else order[lo:hi]
            self.step = step
            self.callbacks.on_train_batch_begin(step)
            yield x[idx], y[idx], (None if sample_weight is None else sample_weight[idx])
            if self.stopped or self.guard.requested:
                return

    def replay(self, graph):
        """One epoch as one replay of ``graph`` (a :class:`tinynet.graphs.EpochGraph`), its
        order drawn as :meth:`batches` draws it; callbacks see it as one batch."""
        order = self.model.shuffle_rng.permutation(self.n) if self.shuffle else None
        self.step = self.steps - 1
        self.callbacks.on_train_batch_begin(0)
        loss_sum, hits = graph.run(order)
        self.logs.loss_sum += loss_sum
        self.logs.n += self.n
        for name in self.logs.sums:
            self.logs.sums[name] += hits
        self._watch_divergence()
        if not self.stopped:
            self.callbacks.on_train_batch_end(self.step)
            self.bar.update(self.steps, self.logs.read)

    def batch_end(self, loss, y_pred, y):
        self.logs.add(loss, self.model.metric_hits(y_pred, y), y.shape[0])
        self._watch_divergence()
        if self.stopped:
            return
        self.callbacks.on_train_batch_end(self.step)
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
