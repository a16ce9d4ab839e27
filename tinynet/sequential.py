"""``Sequential``: a stack of layers with Keras's ``compile``/``fit``/``evaluate``/``predict``.

One training step is :meth:`Sequential.train_step`, five lines::

    y_pred = self.forward(x, training=True)      # forward through every layer, first to last
    loss = self.loss_fn.forward(y_pred, y, sample_weight)  # the loss of the batch
    self.backward(self.loss_fn.backward())       # dL/dy_pred back through every layer: every p.grad
    loss = self.add_weight_penalties(loss)       # L1/L2 penalties, in L and in the kernels' gradients
    self.optimizer.apply(self.flat_parameters.collect())  # every parameter one step against its gradient

``fit`` runs it over batches and epochs. The machinery around it (calling the callbacks,
the progress bar, the NaN watch, Ctrl-C, the flat parameter buffer, the fast twins of the
textbook methods, Keras's own rules) is in :mod:`tinynet.engine`, which this module
reaches through one door, :mod:`tinynet.engine.loop`; Keras's methods around the model
(``evaluate``, ``predict``, weights, files, ``summary``) are inherited from
:class:`tinynet.engine.keras_api.KerasAPI`.

A model is itself a layer: ``forward(x, training)`` and ``backward(gy)``, so
:func:`tinynet.gradcheck.check_backward` checks a whole model at once, and a model can be a
layer of another (``Sequential([model, Softmax()])``): its forward runs its layers, its
backward runs them back, and its parameters are the outer model's too (shared, as in Keras).
"""

from __future__ import annotations

import numpy as np

from . import backend, losses, optimizers, validation
from .engine import loop
from .engine.keras_api import KerasAPI
from .layers import Input, Layer


class Sequential(KerasAPI):
    """A linear stack of layers.

    Args:
        layers: the layers, optionally starting with an ``Input(shape)``.
        name: shown by ``summary()``.
        device: "cpu", "gpu" or "auto" (GPU when CuPy and a CUDA device are there).
            Defaults to "cpu". Data given to ``fit``/``evaluate``/``predict`` is
            moved to this device there, once per call.
        seed: seeds the initial weights, the shuffling and the dropout masks, so
            two runs with the same seed on the CPU are identical. Without one, the
            next seed of ``tinynet.utils.set_random_seed``'s sequence, if it was called
            (``backend.next_model_seed``).
    """

    def __init__(self, layers=None, name: str | None = None, device: str = "cpu", seed=None):
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise TypeError(f"Sequential takes a list of layers, got {layers!r}; write Sequential([...])")
        # "sequential" unless named; inside another model, the next free name there (sequential_1, ...)
        self.name, self.auto_named = name or "sequential", name is None
        self.seed = seed if seed is not None else backend.next_model_seed()
        self.device = backend.resolve_device(device)
        init_seq, shuffle_seq, dropout_seq = np.random.SeedSequence(self.seed).spawn(3)
        self._init_rng = np.random.default_rng(init_seq)
        self.shuffle_rng = np.random.default_rng(shuffle_seq)
        self._dropout_seeds = np.random.default_rng(dropout_seq)
        self.layers: list[Layer] = []
        self.input_shape = self.output_shape = None
        self.optimizer = self.loss = self.loss_fn = self.flat_parameters = None
        self.metrics: list[str] = []  # the compiled metrics' names, as logged
        self.metric_objects = []
        self.cuda_graph = False  # compile(cuda_graph=...): fit's epochs as CUDA graphs (tinynet/engine/graphs.py)
        self.stop_training, self.history, self.epochs_done, self._resumed = False, None, 0, None
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
        if not isinstance(layer, (Layer, Sequential)):
            raise TypeError(f"Sequential takes tinynet layers (or models), got {layer!r}")
        if layer is self:
            raise ValueError("a model cannot be a layer of itself")
        built = [other for other in self.layers if other.built]  # only a built layer has weights to share
        shared = layer.built and {id(p) for p in layer.weights} & {id(p) for other in built for p in other.weights}
        if any(layer is other for other in self.layers) or shared:
            raise ValueError(
                f"{layer.name!r} is already in this model (or shares its weights with a layer that is): "
                "tinynet's backward keeps one input per layer, so a layer cannot run twice in one model"
            )
        if isinstance(layer, Sequential):  # a model inside: its input shape is the outer's if none is set
            if self.input_shape is None and not self.layers and layer.input_shape is not None:
                self.input_shape = layer.input_shape
        elif layer.input_shape is not None:
            if self.layers:
                raise ValueError(f"input_shape= is only allowed on the first layer, not on {layer!r}")
            self.input_shape = layer.input_shape
        self.name_layer(layer)  # dense, dense_1, ... unless it has a name: Keras's rule
        self.layers.append(layer)
        if self.input_shape is None:
            return
        if self.output_shape is not None and len(self.shapes) == len(self.layers) - 1:
            self.output_shape = self._build_layer(layer, self.output_shape)  # the layers before are built
        else:
            self.build(self.input_shape)

    def pop(self):
        """Remove the last layer and return it, as ``keras.Sequential.pop``: the model's output is
        the layer before's. A compiled model keeps its optimizer (its state starts afresh) and loss."""
        if not self.layers:
            raise TypeError("there is no layer to remove: the model is empty")
        layer = self.layers.pop()
        if self.output_shape is not None:
            self.shapes = self.shapes[: len(self.layers)]
            self.output_shape = self.shapes[-1] if self.layers else None
        self.flat_parameters = None  # the buffer held the removed layer's parameters too
        if self.optimizer is not None:
            self.optimizer.forget_state()  # its moments followed those parameters
        return layer

    @property
    def built(self) -> bool:
        return bool(self.layers) and all(layer.built for layer in self.layers) and self.output_shape is not None

    def build(self, input_shape, rng=None):
        """Create every layer's parameters for samples of ``input_shape``; return the output shape.
        (``rng`` is there for a model inside another: it keeps its own, seeded by its ``seed``.)"""
        shape = self.input_shape = tuple(int(d) for d in input_shape)
        self.shapes = []
        for layer in self.layers:
            shape = self._build_layer(layer, shape)
        self.output_shape = shape if self.layers else None
        return self.output_shape

    def compute_output_shape(self, input_shape):
        """The output shape for samples of ``input_shape`` (a built model takes only its own)."""
        if self.built:
            if tuple(input_shape) != tuple(self.input_shape):
                raise ValueError(
                    f"model {self.name!r} was built for samples of shape {tuple(self.input_shape)}, "
                    f"and here gets {tuple(input_shape)}"
                )
            return self.output_shape
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def _build_layer(self, layer, shape):
        """Build ``layer`` for inputs of ``shape`` (one built before is checked against it) and
        record its output shape, which it returns."""
        if not layer.built:
            shape = layer.build(shape, self._init_rng)
            layer.to(self.device)
            if hasattr(layer, "reset_rng"):
                seed = layer.seed if layer.seed is not None else int(self._dropout_seeds.integers(2**31))
                layer.reset_rng(seed, self.device)
        else:
            validation.built_layer_input(layer, shape)
            shape = layer.compute_output_shape(shape)
            layer.to(self.device)  # built elsewhere (a trained model put inside this one): here now
        self.shapes.append(shape)
        return shape

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

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, cuda_graph=False):
        """Choose the optimizer, the loss and the metrics.

        Args:
            optimizer: a string ("adam", "sgd", "rmsprop", "adamw", "adagrad") or an
                Optimizer. Defaults to "rmsprop" (as Keras).
            loss: a string ("sparse_categorical_crossentropy", ...) or a Loss. None (as Keras
                allows) compiles for ``predict`` only: ``fit`` and ``evaluate`` then ask for one.
            metrics: ``None`` or a list of strings (``"accuracy"``, ``"mae"``, ...) and metric
                objects (``tinynet.metrics.SparseCategoricalAccuracy(name="acc")``, ...).
            cuda_graph: on the GPU, ``fit`` captures a whole epoch of steps as one CUDA
                graph and replays it (tinynet/engine/graphs.py): many times faster for small
                models. True: a fit that cannot (not a Dense/ReLU model with sparse
                cross-entropy and Adam, per-batch callbacks, sample weights) is an error;
                "auto": such a fit takes the usual step. With a graph, callbacks see
                one batch per epoch; ``history.cuda_graph`` says whether a
                fit ran as one. Defaults to False.
        """
        if cuda_graph not in (False, True, "auto"):
            raise ValueError(f'cuda_graph must be False, True or "auto", got {cuda_graph!r}')
        self.cuda_graph = cuda_graph
        self.optimizer = optimizers.get(optimizer)
        self.loss = None if loss is None else loop.trainable_loss(losses.get(loss))  # None: predict only, as Keras
        self.compile_metrics(metrics)  # self.metric_objects, and their names in self.metrics
        validation.warn_if_probabilities_as_logits(self, self.loss)
        self.loss_fn = self.loss  # during fit and evaluate: the loss Keras's rules say (loop.prepared)
        self.flat_parameters = None
        if self.optimizer.slots is not None:
            self.optimizer.to(self.device)

    # ---------------------------------------------------------------- the textbook: one training step

    def forward(self, x, training=False):
        """Run every layer, first to last."""
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, gy):
        """Backprop ``gy = dL/d(output)`` through every layer, last first; returns dL/dx."""
        for layer in reversed(self.layers):
            gy = layer.backward(gy)
        return gy

    def train_step(self, x, y, sample_weight=None):
        """One step of training on one batch (x, y): the whole of backprop. Returns (L, y_pred).

        During ``fit`` some textbook methods have fast twins standing in (tinynet/engine/twins.py),
        and with a softmax/sigmoid output the loss reads its logits (tinynet/engine/keras_rules.py);
        both compute what the textbook methods compute. ``flat_parameters.collect()`` hands
        the optimizer every parameter with the gradient its layer set (tinynet/engine/flat.py).
        """
        y_pred = self.forward(x, training=True)  # 1. forward, first layer to last
        loss = self.loss_fn.forward(y_pred, y, sample_weight)  # 2. the loss L of this batch
        self.backward(self.loss_fn.backward())  # 3. backward, last layer to first: sets every p.grad
        loss = self.add_weight_penalties(loss)  # 4. L1/L2 penalties: added to L and to the gradients
        self.optimizer.apply(self.flat_parameters.collect())  # 5. every parameter moves against its gradient
        return loss, y_pred

    def add_weight_penalties(self, loss, gradients=True):
        """``loss`` plus the layers' weight penalties R(W) (``loss`` itself without any); each
        penalty's gradient dR/dW is added to its kernel's gradient unless ``gradients=False``."""
        for layer in self.layers:
            if isinstance(layer, Sequential):  # a model inside: its own layers' penalties
                loss = layer.add_weight_penalties(loss, gradients)
                continue
            reg = getattr(layer, "kernel_regularizer", None)
            if reg is not None:
                W = layer.kernel.value
                loss = loss + reg(W)
                if gradients:
                    layer.kernel.grad = layer.kernel.grad + reg.gradient(W)
        return loss

    # ---------------------------------------------------------------- fit, evaluate, predict

    def fit(
        self,
        x,
        y=None,
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
        """Train the model, as ``keras.Model.fit`` (same arguments, in the same order).

        Args:
            x, y: training inputs and targets.
            batch_size: samples per step; the last batch of an epoch may be smaller. Defaults to 32.
            epochs: train until this epoch number. Defaults to 1.
            verbose: 0 silent, 1 progress bar, 2 one line per epoch. "auto" is 1.
            callbacks: a list of :class:`~tinynet.callbacks.Callback`.
            validation_split: the fraction of samples, taken from the *end* of x
                and y before any shuffling, held out for validation. Defaults to 0.
            validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, w_val)``; overrides validation_split.
            shuffle: True or False: reshuffle the training samples before each epoch.
            class_weight: ``{class: weight}``: each sample's loss weighted by its class's weight.
            sample_weight: one weight per sample: L = 1/N sum_n w_n l_n.
            initial_epoch: the epoch to start from (to resume a run), at most ``epochs``.

        Returns:
            A :class:`~tinynet.callbacks.History`; ``.history`` maps "loss", each
            metric, "val_loss", ... to one float per epoch.
        """
        self._require_compiled("fit")
        with loop.Loop(  # checks every argument and the data, then sets up the machinery (tinynet/engine/)
            self,
            x,
            y,
            batch_size=batch_size,
            epochs=epochs,
            verbose=verbose,
            callbacks=callbacks,
            validation_split=validation_split,
            validation_data=validation_data,
            shuffle=shuffle,
            class_weight=class_weight,
            sample_weight=sample_weight,
            initial_epoch=initial_epoch,
        ) as run:
            for _ in run.epochs():
                for x_batch, y_batch, w_batch in run.batches():  # none when an epoch replays a CUDA graph
                    loss, y_pred = self.train_step(x_batch, y_batch, w_batch)
                    run.batch_end(loss, y_pred, y_batch)
                run.epoch_end()
        return run.history
