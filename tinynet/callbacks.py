"""Callbacks: code that ``fit`` calls at fixed points of training, as in Keras.

A callback subclasses :class:`Callback` and overrides the hooks it needs. ``fit``
gives each callback the model (``self.model``) and calls, in order::

    on_train_begin(logs)
      on_epoch_begin(epoch, logs)
        on_train_batch_end(step, logs)     # logs=None: reading the loss every step
                                           # would stall a GPU
      on_epoch_end(epoch, logs)            # logs: {"loss": ..., "accuracy": ...,
                                           #        "val_loss": ..., ...} as floats
    on_train_end(logs)

Setting ``self.model.stop_training = True`` in a hook ends ``fit`` after the
current epoch.
"""

from __future__ import annotations


class Callback:
    """Base class: every hook does nothing."""

    def __init__(self):
        self.model = None

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

    def on_train_batch_end(self, step, logs=None):
        pass


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"][epoch]`` and so on.

    ``fit`` always adds one and returns it. ``history.epoch`` lists the epoch
    numbers seen.
    """

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

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
        overridden = [c for c in self.callbacks
                      if type(c).on_train_batch_end is not Callback.on_train_batch_end]
        self._batch_callbacks = overridden

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

    def on_train_batch_end(self, step, logs=None):
        for c in self._batch_callbacks:
            c.on_train_batch_end(step, logs)
