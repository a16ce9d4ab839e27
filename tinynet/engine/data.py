"""What ``fit`` is given, made ready to train on: the arrays validated and on the model's
device, the validation set split off as Keras splits it, the sample weights; and a
learner's loss written the short way, made to take sample weights."""

from __future__ import annotations

import inspect

from .. import backend, losses, validation
from . import keras_rules


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
    (x, y), (x_val, y_val) = keras_rules.split_last(x, y, validation_split)
    if x.shape[0] == 0 or x_val.shape[0] == 0:
        raise ValueError(
            f"validation_split={validation_split} of {n} samples leaves {x.shape[0]} for training and "
            f"{x_val.shape[0]} for validation; both need at least one"
        )
    w_val = None
    if w is not None:
        w, w_val = w[: x.shape[0]], w[x.shape[0] :]
    return x, y, w, (x_val, y_val, w_val)
