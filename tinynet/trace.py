r"""See backprop happen: one batch forward and backward, layer by layer, with numbers.

``tn.trace(model, x, y)`` runs one training step's forward and backward pass through
a compiled model on one batch and records, for every layer, what a learner wants
to see beside the formula the layer implements:

- forward, first layer to last: the layer's ``formula``, the shapes in and out, the
  output's mean, standard deviation, min and max, and for a ReLU the fraction of
  dead units;
- the loss of the batch;
- backward, last layer to first: the gradient ``gy = dL/dy`` that arrives and the
  ``gx = dL/dx`` that leaves (shapes and L2 norms), and for each parameter its norm
  ||w||, its gradient's norm ||g|| and the ratio ||dw|| / ||w|| of the step the
  model's optimizer *would* take now (about 1e-3 is healthy; 1e-1 is too big a
  step, 1e-6 too small);
- a float64 gradient check of each layer on this very batch (its recorded input,
  weighted by its recorded ``gy``), and of the loss.

The model is not changed: the trace works on a deep copy of it (weights, gradients,
optimizer state and step count, BatchNormalization's moving statistics, dropout's
random generator), so ``fit`` afterwards gives bit for bit what it gives without the
trace. On the CPU the copy's dropout masks are the ones the next training step would
draw; on the GPU (CuPy's generators cannot be copied) they come from a fresh generator
with the layer's seed.

``print(trace)`` shows a text table, a notebook shows an HTML one, ``trace.plot()``
draws the histograms of every layer's output and incoming gradient.
"""

from __future__ import annotations

import copy
import html
import math
import textwrap
from dataclasses import dataclass, field

import numpy as np

from . import backend, gradcheck, validation
from .engine import keras_rules
from .layers import ReLU

CHECK_TOLERANCE = 1e-6  # a layer's float64 check passes below this relative error


@dataclass
class ParameterTrace:
    """One parameter at this step: ``weight_norm`` ||w||, ``grad_norm`` ||g|| (the
    gradient the optimizer gets, weight penalty included), ``update_norm`` ||dw|| of
    the step the optimizer would take, and ``update_ratio`` ||dw|| / ||w|| (inf when w = 0)."""

    name: str
    shape: tuple
    weight_norm: float
    grad_norm: float
    update_norm: float
    update_ratio: float


@dataclass
class LayerTrace:
    """One layer's forward and backward on the traced batch (numbers are Python floats).

    ``dead_fraction`` is None for a layer whose output is not a ReLU's; see
    :func:`dead_units` for what dead means. ``check_error`` is the relative error of
    the layer's float64 gradient check (None when ``check=False``), ``check_direction``
    "random" or "order-preserving" (see :func:`tinynet.gradcheck.compare_backward`).
    ``output`` and ``gy`` are the arrays themselves, as NumPy, for plots.
    """

    index: int
    name: str
    class_name: str
    formula: str
    input_shape: tuple
    output_shape: tuple
    output_mean: float
    output_std: float
    output_min: float
    output_max: float
    dead_units: int | None
    units: int | None
    gy_shape: tuple = ()
    gy_norm: float = math.nan
    gx_shape: tuple = ()
    gx_norm: float = math.nan
    parameters: list[ParameterTrace] = field(default_factory=list)
    check_error: float | None = None
    check_direction: str | None = None
    output: np.ndarray | None = field(default=None, repr=False)
    gy: np.ndarray | None = field(default=None, repr=False)

    @property
    def dead_fraction(self) -> float | None:
        return None if self.units is None else self.dead_units / self.units


def relu_of(layer):
    """The ReLU whose output is ``layer``'s output: the layer itself, or its activation
    (``Activation("relu")``, ``Dense``/``Conv2D`` with ``activation="relu"``); else None."""
    activation = getattr(layer, "activation", layer)
    return activation if isinstance(activation, ReLU) else None


def dead_units(y):
    """(dead, units) of a ReLU's output ``y`` (N, ..., U), as device scalars.

    A *unit* is one index of the last axis: a Dense layer's neuron, a Conv2D's filter
    (channel). It is *dead* on this batch when its output is exactly 0 for every
    sample of the batch and, for a filter, at every position: its input z was <= 0
    everywhere, on ReLU's flat side, so no gradient reaches its weights from this
    batch. A unit dead on one batch may live on another; one dead on all data never
    learns again.
    """
    return (y.reshape(-1, y.shape[-1]) == 0).all(axis=0).sum(), y.shape[-1]


def _norm(a) -> float:
    a = backend.to_numpy(a).astype(np.float64)
    return float(np.sqrt((a * a).sum()))


# ------------------------------------------------------------------ checks before any work


def _checked_batch(model, x, y, sample_weight):
    """(x, y, w) validated and on the model's device; clear errors for an unusable model."""
    if not hasattr(model, "layers") or not hasattr(model, "train_step"):
        raise TypeError(f"trace needs a tinynet Sequential model, got {type(model).__name__}")
    if getattr(model, "loss", None) is None or getattr(model, "optimizer", None) is None:
        raise RuntimeError(
            "trace needs a compiled model (the loss to differentiate, the optimizer whose step it shows): "
            "call model.compile(optimizer=..., loss=...) first"
        )
    if not model.built:
        raise RuntimeError(
            "trace needs a built model (weights to trace): start it with tn.Input(shape), "
            "or call model.build(input_shape) or fit once"
        )
    if y is None:
        raise ValueError("trace needs targets y for the loss: tn.trace(model, x_batch, y_batch)")
    x, y = validation.model_data(model, x, y, require_y=True)
    w = validation.sample_weights(sample_weight, None, y, x.shape[0])
    return x, y, (None if w is None else backend.to_device(w, model.device))


def _working_copy(model):
    """A deep copy of the model to trace on. A GPU dropout generator (whose state CuPy
    cannot copy) is replaced in the copy by a fresh one with the layer's seed."""
    memo = {}
    for layer in model.layers:
        rng = getattr(layer, "rng", None)
        if rng is not None and model.device == "gpu":
            memo[id(rng)] = backend.random_generator(getattr(layer, "rng_seed", None), "gpu")
    # its own arrays, no flat buffer, and the textbook methods (KerasAPI.__deepcopy__)
    return copy.deepcopy(model, memo)


# ------------------------------------------------------------------ the step, recorded


def _forward_record(k, layer, x, y):
    relu = relu_of(layer)
    dead = dead_units(y) if relu is not None else (None, None)
    yh = backend.to_numpy(y)
    stats = yh.astype(np.float64)
    return LayerTrace(
        index=k + 1,
        name=layer.name,
        class_name=type(layer).__name__,
        formula=getattr(layer, "formula", "") or "",
        input_shape=tuple(x.shape),
        output_shape=tuple(y.shape),
        output_mean=float(stats.mean()),
        output_std=float(stats.std()),
        output_min=float(stats.min()),
        output_max=float(stats.max()),
        dead_units=None if dead[0] is None else int(dead[0]),
        units=dead[1],
        output=yh,
    )


def _step(work, x, y, w):
    """Forward, loss and backward as ``train_step`` does them (Keras's loss rule included),
    recording every layer; returns (records, inputs, gys, loss, loss check target)."""
    records, inputs, gys = [], [], []
    with keras_rules.loss_for(work) as loss_fn:
        out = x
        for k, layer in enumerate(work.layers):
            inputs.append(out)
            y_k = layer.forward(out, training=True)
            records.append(_forward_record(k, layer, out, y_k))
            out = y_k
        loss = loss_fn.forward(out, y, w)
        g = loss_fn.backward()
        for layer, record in zip(reversed(work.layers), reversed(records)):
            gys.append(g)
            record.gy_shape, record.gy_norm, record.gy = tuple(g.shape), _norm(g), backend.to_numpy(g)
            g = layer.backward(g)
            record.gx_shape, record.gx_norm = tuple(g.shape), _norm(g)
        loss = float(work.add_weight_penalties(loss))
        loss_target = _loss_target(loss_fn, out, y, w)
    return records, inputs, gys[::-1], loss, loss_target


def _loss_target(loss_fn, y_pred, y, w):
    """(what the loss reads, the loss as a plain function of it) for its own check."""
    if isinstance(loss_fn, keras_rules.OutputLogitsLoss):
        inner, pred = loss_fn.inner, loss_fn.head.logits
    else:
        inner, pred = loss_fn, y_pred
    return pred, (lambda p: inner.forward(p, y, w), lambda g: g * inner.backward())


def _parameter_records(work, records):
    """Norms of every parameter and its gradient, then the optimizer's step on the copy."""
    params = [(record, p) for record, layer in zip(records, work.layers) for p in layer.parameters()]
    before = [p.value.copy() for _, p in params]
    for record, p in params:
        record.parameters.append(ParameterTrace(p.name, tuple(p.shape), _norm(p.value), _norm(p.grad), 0.0, 0.0))
    if not params:
        return
    optimizer = work.optimizer  # the copy's: its state and step count move, the model's do not
    plain = [p for _, p in params]
    if optimizer.slots is not None:
        optimizer.arrange_state(plain)  # from the flat buffer's layout to one array per parameter
    optimizer.apply(plain)
    traces = [t for record in records for t in record.parameters]
    for t, p, old in zip(traces, plain, before):
        t.update_norm = _norm(p.value - old)
        t.update_ratio = t.update_norm / t.weight_norm if t.weight_norm > 0 else math.inf


def _layer_check(layer, x, gy, device):
    """The float64 gradient check of a copy of ``layer`` on its recorded input, weighted by its gy."""
    layer = copy.deepcopy(layer)
    xp = backend.xp_for(device)
    gy64 = xp.asarray(gy, dtype=np.float64)
    if getattr(layer, "rng", None) is not None and hasattr(layer, "reset_rng"):
        seed = getattr(layer, "rng_seed", None) or 0

        def forward(x_):  # the same mask at every call, so the function checked is fixed
            layer.reset_rng(seed, device)
            return layer.forward(x_, training=True)

        target = (forward, layer.backward)
    else:
        target = layer
    try:
        return gradcheck.compare_backward(target, x, gy64, params=layer.parameters(), tolerance=CHECK_TOLERANCE)
    except gradcheck.GradientCheckError as e:  # a gradient of the wrong shape: this row fails, the trace goes on
        return gradcheck.Comparison(math.nan, math.nan, math.inf, str(e))


# ------------------------------------------------------------------ the public function


def trace(model, x, y, sample_weight=None, check=True) -> Trace:
    """Trace one batch forward and backward through ``model`` without changing it.

    Args:
        model: a compiled, built :class:`~tinynet.Sequential`.
        x, y: one batch (every sample is traced; pass a slice such as ``x[:32]``).
        sample_weight: optional weights, one per sample, as in ``fit``.
        check: run the float64 gradient check of every layer and of the loss
            (a few extra forward passes per layer). Defaults to True.

    Returns:
        A :class:`Trace`: ``print`` it, show it in a notebook, or ``.plot()`` it.
    """
    x, y, w = _checked_batch(model, x, y, sample_weight)
    work = _working_copy(model)
    records, inputs, gys, loss, (pred, loss_fns) = _step(work, x, y, w)
    loss_check = None
    if check:  # before the optimizer's step below: each layer as it was for this batch
        for layer, record, x_k, gy_k in zip(work.layers, records, inputs, gys):
            result = _layer_check(layer, x_k, gy_k, work.device)
            record.check_error, record.check_direction = result.relative_error, result.direction
        one = backend.xp_for(work.device).ones((), dtype=np.float64)
        loss_check = gradcheck.compare_backward(loss_fns, pred, one, tolerance=CHECK_TOLERANCE).relative_error
    _parameter_records(work, records)
    return Trace(
        model_name=model.name,
        batch_size=int(x.shape[0]),
        loss=loss,
        loss_name=model.loss.name,
        loss_note=keras_rules.loss_note(model).lstrip(", "),
        loss_check_error=loss_check,
        layers=records,
    )


# ------------------------------------------------------------------ showing it


def _g(v) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.2e}"


def _shape(s) -> str:
    return "(" + ", ".join(str(d) for d in s) + ")"


def _verdict(error) -> str:
    if error is None:
        return "not run"
    return f"{_g(error)} {'ok' if error < CHECK_TOLERANCE else 'WRONG?'}"


@dataclass
class Trace:
    """What :func:`trace` recorded: ``layers`` (one :class:`LayerTrace` each, first to
    last), the batch ``loss`` (penalties included), ``loss_name`` and ``loss_note`` (how it
    is computed), ``loss_check_error`` (the loss's own float64 check), ``batch_size``."""

    model_name: str
    batch_size: int
    loss: float
    loss_name: str
    loss_note: str
    loss_check_error: float | None
    layers: list[LayerTrace]

    @property
    def max_check_error(self) -> float | None:
        """The largest relative error of every layer's and the loss's check (None if not run)."""
        errors = [r.check_error for r in self.layers] + [self.loss_check_error]
        errors = [e if math.isfinite(e) else math.inf for e in errors if e is not None]  # NaN: the worst
        return max(errors) if errors else None

    def _forward_lines(self, r: LayerTrace) -> list[str]:
        lines = [
            f"x {_shape(r.input_shape)} -> y {_shape(r.output_shape)}",
            f"y mean {_g(r.output_mean)} std {_g(r.output_std)}",
            f"  min {_g(r.output_min)} max {_g(r.output_max)}",
        ]
        if r.units is not None:
            lines.append(f"dead ReLU units {r.dead_fraction:.0%} ({r.dead_units} of {r.units})")
        return lines

    def _backward_lines(self, r: LayerTrace) -> list[str]:
        lines = [f"gy {_shape(r.gy_shape)} |gy| {_g(r.gy_norm)}", f"gx {_shape(r.gx_shape)} |gx| {_g(r.gx_norm)}"]
        for p in r.parameters:
            lines.append(f"{p.name:<6.6} |w| {_g(p.weight_norm)} |g| {_g(p.grad_norm)} |dw|/|w| {_g(p.update_ratio)}")
        lines.append(f"gradient check {_verdict(r.check_error)}")
        return lines

    def __repr__(self) -> str:
        """One line; the whole table is ``print(trace)`` or ``trace.text()``."""
        check = self.max_check_error
        checked = "not gradient-checked" if check is None else f"worst gradient check {check:.2e}"
        return (
            f"<Trace of {self.model_name!r}: {len(self.layers)} layers, batch of {self.batch_size}, "
            f"L = {self.loss:.6g}, {checked}; print(trace) shows it all>"
        )

    def text(self) -> str:
        """The whole trace as text, what ``print(trace)`` shows."""
        return str(self)

    def __str__(self) -> str:
        half = 48
        out = [
            f"Trace of {self.model_name!r} on one batch of {self.batch_size}: forward reads down the left",
            "column, backward reads up the right one, from the loss at the bottom.",
            f"{'FORWARD (v)':<{half}}  BACKWARD (^)",
            "=" * 100,
        ]
        for r in self.layers:
            out.append(f"[{r.index}] {r.name} ({r.class_name})")
            out += textwrap.wrap(r.formula, 100, initial_indent="    ", subsequent_indent="      ")
            left, right = self._forward_lines(r), self._backward_lines(r)
            for k in range(max(len(left), len(right))):
                a = left[k] if k < len(left) else ""
                b = right[k] if k < len(right) else ""
                out.append(f" v  {a:<{half - 4}}  ^  {b}".rstrip())
            out.append("-" * 100)
        out.append(f"loss {self.loss_name}" + (f", {self.loss_note}" if self.loss_note else ""))
        out.append(f"     L = {self.loss:.6g}   gradient check {_verdict(self.loss_check_error)}")
        if self.loss_note.startswith("from the"):
            out.append("     (so the last layer's gy is dL/dz, z its activation's input: the activation passes it on)")
        return "\n".join(out)

    def _repr_html_(self) -> str:
        left = ' style="text-align:left"'  # notebooks right-align cells by default
        head = ["#", "layer", "x -> y", "y mean / std", "y min / max", "dead ReLU", "|gy|", "|gx|"]
        head += ["parameters: |w|, |g|, |dw|/|w|", "gradient check"]
        rows = []
        for r in self.layers:
            dead = "" if r.units is None else f"{r.dead_fraction:.0%} ({r.dead_units}/{r.units})"
            params = "<br>".join(
                html.escape(f"{p.name}: {_g(p.weight_norm)}, {_g(p.grad_norm)}, {_g(p.update_ratio)}")
                for p in r.parameters
            )
            cells = [
                (str(r.index), ""),
                (html.escape(f"{r.name} ({r.class_name})"), left),
                (html.escape(f"{_shape(r.input_shape)} -> {_shape(r.output_shape)}"), left),
                (f"{_g(r.output_mean)} / {_g(r.output_std)}", ""),
                (f"{_g(r.output_min)} / {_g(r.output_max)}", ""),
                (dead, ""),
                (_g(r.gy_norm), ""),
                (_g(r.gx_norm), ""),
                (params, left),
                (html.escape(_verdict(r.check_error)), ""),
            ]
            rows.append("<tr>" + "".join(f"<td{style}>{c}</td>" for c, style in cells) + "</tr>")
            formula = f"<code>{html.escape(r.formula)}</code>"
            rows.append(f'<tr><td></td><td colspan="{len(head) - 1}"{left}>{formula}</td></tr>')
        loss = html.escape(f"loss {self.loss_name}" + (f", {self.loss_note}" if self.loss_note else ""))
        loss += f": L = {self.loss:.6g}"
        rows.append(
            f'<tr><td></td><td colspan="{len(head) - 2}"{left}>{loss}</td>'
            f"<td>{html.escape(_verdict(self.loss_check_error))}</td></tr>"
        )
        caption = html.escape(
            f"Trace of {self.model_name!r}, one batch of {self.batch_size}: forward reads down, backward reads up"
        )
        header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        return f"<table><caption>{caption}</caption><tr>{header}</tr>{''.join(rows)}</table>"

    def plot(self, path=None):
        """Histograms of every layer's output (forward, top to bottom) and of the gradient
        dL/dy arriving at it (backward, bottom to top); saved as PNG to ``path`` if given.
        Returns the matplotlib Figure."""
        from .plot import plot_trace

        return plot_trace(self, path)
