"""The machinery around a training loop: divergence, Ctrl-C, and the flat parameter buffer."""

from __future__ import annotations

import signal
import threading

from . import backend
from .layers import Parameter

NAN_CHECK_EVERY = 50  # GPU: steps between reads of the running loss (each read waits for the device)


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; ``epoch`` and ``step`` (0-based) say where,
    ``history`` holds the finished epochs."""

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


def pack_parameters(model):
    """What the optimizer updates: one flat parameter when possible, else the list.

    Every parameter's ``value`` and ``grad`` become views into one flat value
    buffer and one flat gradient buffer, so the optimizer updates everything in a
    few whole-buffer operations instead of a few per parameter: Adam is memory
    bound, and at small batch sizes its per-parameter passes and calls are a
    large share of a step. Not with ``clipnorm``, which clips each parameter on
    its own. Packed again whenever a parameter was replaced (``to``, a cast).
    """
    params = model.parameters()
    if (
        getattr(model.optimizer, "clipnorm", None) is not None
        or not params
        or len({p.value.dtype for p in params}) != 1
    ):
        return params
    views = getattr(model, "_views", None)
    if (
        views
        and len(views) == len(params)
        and all(p is q and p.value is v and p.grad is g for p, (q, v, g) in zip(params, views))
    ):
        return [model._flat]
    xp = backend.xp_for(model.device)
    total = sum(p.value.size for p in params)
    values = xp.empty(total, dtype=params[0].value.dtype)
    grads = xp.zeros(total, dtype=params[0].value.dtype)
    model._views, offset = [], 0
    for p in params:
        n, shape = p.value.size, p.value.shape
        values[offset : offset + n] = p.value.ravel()
        p.value = values[offset : offset + n].reshape(shape)
        p.grad = grads[offset : offset + n].reshape(shape)
        model._views.append((p, p.value, p.grad))
        offset += n
    model._flat = Parameter(values, "all parameters (flat)")
    model._flat.grad = grads
    if model.optimizer is not None:
        model.optimizer.flatten_state(params)
    return [model._flat]
