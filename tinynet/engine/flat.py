"""The flat parameter buffer, and the layer contract it makes safe.

:class:`FlatParameters` holds every parameter's value and gradient as views into one flat
buffer each, so an optimizer updates all of them in a few whole-buffer operations. It also
makes the layer contract safe: a gradient a layer *assigned* is copied in, and a layer that
broke the contract is named at the first step (:class:`GradientContractError`).
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..layers.core import Parameter


class GradientContractError(RuntimeError):
    """A layer's backward did not set its parameters' gradients as the layer contract says."""


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
