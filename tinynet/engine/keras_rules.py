r"""Every rule tinynet follows only because Keras does, in one place.

The textbook code (layers, losses, optimizers, the training step) writes the math;
where Keras computes something in a particular way that changes the numbers, the
rule lives here, is applied at the boundary (when a model is built or compiled, or
a step size is computed), and is documented with what it changes:

1. **The loss of a softmax or sigmoid output is computed from its logits.** With
   ``from_logits=False`` and a model whose last activation is a softmax or a
   sigmoid, Keras's default TensorFlow backend quietly computes the cross-entropy
   from that activation's *input* z (the logits), unclipped, even the *softmax*
   cross-entropy of a sigmoid's logits. Its gradient is then the famous
   ``(softmax(z) - onehot) / N`` straight into z, and the activation's own backward
   is skipped. :func:`loss_for` arranges exactly that for the length of ``fit`` or
   ``evaluate``: the head activation keeps its input, its backward passes the
   gradient through, and the loss reads the logits. ``use_output_logits=False`` on the loss gives what
   Keras's JAX, PyTorch and NumPy backends do (renormalise, clip, log).
2. **Adam's bias corrections are computed in float32**: ``beta ** t`` in the
   parameters' precision (in float32, ``1 - 0.999`` is 1.3e-5 off 0.001), which
   changes the step by about 6e-6 relative. It is part of Adam's step size, so it
   lives with Adam: :func:`tinynet.optimizers.adam_step_size`.
3. **``validation_split`` takes the last samples**, before any shuffling:
   :func:`split_last`.
4. **``metrics=["accuracy"]`` picks its kind from the shapes**: :func:`accuracy_kind`.
5. **Layer names** are the class name in snake case, numbered: :class:`LayerNames`.
"""

from __future__ import annotations

import contextlib
import math
import re

from ..layers import Sigmoid, Softmax
from ..losses import Loss
from ..optimizers import adam_step_size  # noqa: F401  (rule 2 lives with Adam; its old name here still works)
from . import twins

# ----------------------------------------------------------------- 1. logits of the output


def output_head(model):
    """The softmax or sigmoid that ends ``model`` (the layer itself or the last
    layer's activation), or None."""
    last = model.layers[-1] if model.layers else None
    head = getattr(last, "activation", last)  # a Dense's or an Activation's, or the layer itself
    return head if type(head) in (Softmax, Sigmoid) else None


def uses_output_logits(model, loss) -> bool:
    """Whether rule 1 applies to ``model`` compiled with ``loss``."""
    return bool(
        loss is not None
        and loss.is_crossentropy
        and not loss.from_logits
        and loss.use_output_logits
        and output_head(model) is not None
    )


class OutputLogitsLoss(Loss):
    """``loss`` computed from the logits of the model's final softmax or sigmoid (rule 1).

    ``forward(y_pred, y_true)`` ignores the probabilities ``y_pred`` and reads the
    logits z the head kept; ``backward()`` returns dL/dz, which the head passes on
    unchanged.
    """

    def __init__(self, loss: Loss, head):
        super().__init__(from_logits=False, use_output_logits=True)
        self.loss, self.inner, self.head = loss, loss.with_logits(), head
        self.name, self.is_crossentropy = loss.name, True

    def forward(self, y_pred, y_true, sample_weight=None):
        return self.inner.forward(self.head.logits, y_true, sample_weight)

    def backward(self):
        return self.inner.backward()

    def __repr__(self):
        return f"{self.loss!r} from the logits of the final {type(self.head).__name__.lower()}"


def _forward_keeping_logits(self, x, training=False):
    self.logits = x
    return type(self).forward(self, x, training)


def _backward_from_logits(self, gz):
    return gz  # the loss was computed from this activation's input: gz is already dL/dz


@contextlib.contextmanager
def loss_for(model):
    """``with loss_for(model) as loss_fn:`` the loss to train and evaluate with, for the
    length of the block: ``model.loss`` itself, or, when rule 1 applies, an
    :class:`OutputLogitsLoss` with the head activation set up for it (it keeps its
    input, and its backward passes dL/dz through). Undone on exit, so outside
    ``fit``/``evaluate`` the model's forward and backward are the textbook ones."""
    if not uses_output_logits(model, model.loss):
        yield model.loss
        return
    head = output_head(model)
    twins.bind(head, "forward", _forward_keeping_logits, "keras rule")
    twins.bind(head, "backward", _backward_from_logits, "keras rule")
    try:
        yield OutputLogitsLoss(model.loss, head)
    finally:
        twins.unbind(head, "keras rule")
        vars(head).pop("logits", None)


def loss_note(model) -> str:
    """How the loss is computed, in a few plain words, for ``summary()``."""
    loss = model.loss
    if uses_output_logits(model, loss):
        head = type(output_head(model))
        note = f", from the {head.__name__.lower()}'s input (as Keras)"
        if head is Sigmoid and loss.name != "binary_crossentropy":  # Keras's rule makes it a softmax in training
            note += (
                "\n   so it trains exactly as a softmax output would. For independent scores, use"
                "\n   loss='binary_crossentropy' with one-hot targets (tn.utils.to_categorical)"
            )
        return note
    if loss.is_crossentropy and not loss.from_logits:
        return ", computed from probabilities (renormalised, clipped)"
    return ", from logits" if loss.from_logits else ""


# ----------------------------------------------------------------- 3. validation_split


def split_last(x, y, fraction):
    """((x_train, y_train), (x_val, y_val)): the last ``fraction`` of the samples held out (rule 3)."""
    split = int(math.floor(x.shape[0] * (1.0 - fraction)))
    return (x[:split], y[:split]), (x[split:], y[split:])


# ----------------------------------------------------------------- 4. "accuracy"


def accuracy_kind(y_true_shape, y_pred_shape) -> str:
    """ "binary" (one output per sample), "sparse" (targets are class indices) or
    "categorical" (one-hot targets), by Keras's rule for ``metrics=["accuracy"]``."""
    if y_pred_shape[-1] == 1:
        return "binary"
    if len(y_true_shape) < len(y_pred_shape) or y_true_shape[-1] == 1:
        return "sparse"
    return "categorical"


# ----------------------------------------------------------------- 5. layer names


def snake_case(class_name: str) -> str:
    """Keras's snake case of a class name: Conv2D -> conv2d, ReLU -> re_lu, MaxPooling2D -> max_pooling2d."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", class_name).lower()


def numbered(base: str, k: int) -> str:
    """The k-th automatic name of a class: dense (k = 0), dense_1, dense_2, ..."""
    return base if k == 0 else f"{base}_{k}"


class LayerNames:
    """The layer names taken in one model, and the automatic name of each new layer.

    A layer without a name gets the first of ``numbered(base, 0)``, ``numbered(base, 1)``,
    ... not taken in the model, where base is its class in snake case (dense, dense_1,
    dense_2, ...); a name the user gave is kept and skipped by later automatic names.
    Names are only ever added, so every number below ``next_number[base]`` is taken:
    the search starts there, and each candidate is tried at most once per model.
    """

    def __init__(self):
        self.taken: set[str] = set()
        self.next_number: dict[str, int] = {}

    def add(self, name: str):
        self.taken.add(name)

    def new(self, layer) -> str:
        base = snake_case(type(layer).__name__)
        k = self.next_number.get(base, 0)
        while numbered(base, k) in self.taken:
            k += 1
        self.next_number[base] = k + 1
        name = numbered(base, k)
        self.taken.add(name)
        return name
