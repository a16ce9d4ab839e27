"""What keeps a long ``fit`` safe: the NaN watch's error and the last finite state to go
back to, and Ctrl-C.

- :class:`TrainingDiverged`: the loss or the weights became NaN or infinite;
- :class:`LastGoodState`: the weights and optimizer state at the last point they were
  known to be finite (the start of ``fit``, then the end of each epoch), put back on divergence;
- :class:`InterruptGuard`: the first Ctrl-C stops after the current batch, the second at once.
"""

from __future__ import annotations

import signal
import threading

from .. import backend


class TrainingDiverged(FloatingPointError):
    """The loss or the weights became NaN or infinite; ``epoch`` and ``step`` (0-based) say
    where, ``history`` holds the finished epochs. The model then holds its last finite
    weights and optimizer state (those at the end of the last finished epoch, or at the
    start of ``fit``), not the NaN ones."""

    def __init__(self, message, epoch, step):
        super().__init__(message)
        self.epoch, self.step, self.history = epoch, step, None


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
