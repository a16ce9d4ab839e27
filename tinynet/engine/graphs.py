"""A whole epoch of training as one CUDA graph: captured once, replayed every epoch.

On the GPU a small model's step is bound by launches, not arithmetic: CuPy spends
10-25 µs of CPU time on each of a step's operations while the GPU needs about one
microsecond for each. A CUDA graph records the launches once; replaying it costs one
call, and the GPU runs the nodes back to back. ``model.compile(..., cuda_graph=True)``
makes ``fit`` train that way (``"auto"``: where the model allows it, else the usual
step). This module is machinery; the step it captures is ``Sequential.train_step`` for a
model of Dense layers, written as kernel launches (tinynet/engine/kernels.py):

    per step s of the epoch, on batch rows B = order[s*batch : (s+1)*batch]:
      xb, yb = x[B], y[B]                               gather_rows
      h = relu([xb, 1] [W; b])   (each hidden Dense)    gemm (+ sum_splits for a long k)
      z = [h, 1] [W; b]          (the output Dense)     gemm
      loss rows, gz = (softmax(z) - onehot(yb)) / N     softmax_xent, sparse_hits
      [gW; gb] = [h, 1]^T gz     (each Dense, last first) gemm
      gh = (gz W^T) * (h > 0)                           gemm
      m, v, w = Adam's update over the flat buffers     adam_at_step

What capture demands, and how it is met:
- CuPy refuses cuBLAS inside stream capture, so the matrix products are tinynet's own
  ``gemm`` kernel (a tiled product in shared memory);
- a graph holds addresses: every buffer is allocated before capture and kept here, and
  the layers' weights are the model's own flat buffer (``FlatParameters``), updated in place;
- nothing is read back during the epoch: the loss and hits of every sample land in
  buffers read once, at the epoch's end;
- what changes from epoch to epoch lives in device memory, written before each replay:
  the epoch's order (drawn on the host by the model's generator, exactly as the usual
  loop draws it) and Adam's step size for each step (so a learning-rate schedule and
  Keras's float32 powers hold, step by step).

A test holds a graph's epochs equal to the usual step's (tests/test_graphs.py).
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend, losses, optimizers
from ..layers.core import Dense, Flatten
from . import kernels

TILE, THREADS = 32, 256  # gemm's tile of C and its block (as in kernels.SOURCES["gemm"])
NO_EPILOGUE, RELU, RELU_MASK = 0, 1, 2  # gemm's epilogues


def _activation(layer):
    """'relu', 'linear' or 'softmax' for a Dense layer's activation, else None."""
    name = type(layer.activation).__name__.lower()
    return {"relu": "relu", "linear": "linear", "identity": "linear", "softmax": "softmax"}.get(name)


def why_not(model, sample_weight=None, callbacks=()) -> str | None:
    """Why ``model``'s fit cannot run as a CUDA graph (a sentence), or None when it can."""
    if model.device != "gpu":
        return f'the model is on the {model.device.upper()}: CUDA graphs need device="gpu"'
    if not kernels.enabled:
        return "tinynet's kernels are turned off (kernels.enabled = False)"
    dense = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    if dense and type(dense[0]) is Flatten:  # the graph reads each sample as one row anyway
        dense = dense[1:]
    if not dense or not all(type(layer) is Dense for layer in dense):
        kinds = sorted({type(layer).__name__ for layer in dense if type(layer) is not Dense})
        return f"the graph trains Dense layers only; this model has {', '.join(kinds) or 'no layers'}"
    for layer in dense[:-1]:
        if _activation(layer) not in ("relu", "linear"):
            return f"hidden layer {layer.name!r} has activation {type(layer.activation).__name__}: relu or linear only"
    for layer in dense:
        for p in layer.parameters():
            if p.value.dtype != np.float32:
                return f"layer {layer.name!r}: its {p.name} is {p.value.dtype}; the graph's kernels are float32"
        if layer.kernel_regularizer is not None:
            return f"layer {layer.name!r} has a kernel regularizer"
    loss, last = model.loss, _activation(dense[-1])
    if type(loss) is not losses.SparseCategoricalCrossentropy:
        return f"the loss is {type(loss).__name__}: sparse categorical cross-entropy only"
    if (last, loss.from_logits) not in (("softmax", False), ("linear", True)):
        got = f"{type(dense[-1].activation).__name__} with from_logits={loss.from_logits}"
        return f"the output must be a softmax (from_logits=False) or linear (from_logits=True), got {got}"
    if last == "softmax" and not loss.use_output_logits:
        # the graph's softmax_xent reads the logits; this loss asks for log(softmax) as given
        return "the loss has use_output_logits=False: the graph computes the loss from the logits"
    opt = model.optimizer
    if type(opt) is not optimizers.Adam:
        return f"the optimizer is {type(opt).__name__}: Adam only"
    if opt.weight_decay or any(c is not None for c in (opt.clipnorm, opt.clipvalue, opt.global_clipnorm)):
        return "the optimizer clips gradients or decays weights"
    if any(m != "accuracy" for m in model.metrics):
        return f"metrics {model.metrics}: 'accuracy' only"
    if sample_weight is not None:
        return "sample or class weights are given"
    for c in callbacks or ():
        hooks = c.every_batch_hooks()
        if hooks:
            return f"callback {type(c).__name__} acts at every batch ({hooks[0]}); a graph runs a whole epoch"
    return None


def _splits(M, N, K):
    """How many ranges the sum over k is cut into, and each range's length: enough blocks
    to keep the GPU busy when C has few tiles and k is long (the first layer's 785)."""
    tiles = math.ceil(M / TILE) * math.ceil(N / TILE)
    splits = 1 if K <= 2 * TILE else max(1, min(math.ceil(K / TILE), THREADS // tiles))
    per_split = math.ceil(math.ceil(K / splits) / TILE) * TILE
    return math.ceil(K / per_split), per_split


def products(layer, rows):
    """The matrix products of a Dense layer's training step on ``rows`` samples, as
    (M, N, K) of C (M, N) = A (M, K) B (K, N); with a bias, [a, 1] carries it (k + 1):

        "x W":     z = [a, 1] [W; b]
        "x^T gz":  [gW; gb] = [a, 1]^T gz
        "gz W^T":  ga = gz W^T

    One rule for the products captured and for the buffer their split sums share."""
    n_in, n_out = layer.kernel.value.shape
    k = n_in + (1 if layer.use_bias else 0)
    return {"x W": (rows, n_out, k), "x^T gz": (k, n_out, rows), "gz W^T": (rows, n_in, n_out)}


class EpochGraph:
    """Every training step of one epoch of ``model`` on (x, y), captured as one CUDA graph.

    ``run(order)`` replays it over the samples in ``order`` (None: as they come) and
    returns the epoch's (summed loss, summed hits) as device scalars."""

    def __init__(self, model, x, y, batch_size):
        cp = backend.xp_for("gpu")
        self.model, self.cp, self.n, self.batch = model, cp, x.shape[0], batch_size
        self.steps = math.ceil(self.n / batch_size)
        self.x = cp.ascontiguousarray(x.reshape(self.n, -1), dtype=np.float32)
        self.y = cp.ascontiguousarray(y.reshape(self.n), dtype=np.int64)
        self.layers = [layer for layer in model.layers if type(layer) is Dense]
        flat = model.flat_parameters.flat
        if model.optimizer.slots is None:
            model.optimizer.build([flat])
        self.w, self.g = flat.value, flat.grad
        self.m, self.v = model.optimizer.slots["m"][0], model.optimizer.slots["v"][0]
        self.offsets = self._offsets(model)
        B, sizes = batch_size, [self.x.shape[1]] + [layer.units for layer in self.layers]
        self.xb, self.yb = cp.empty((B, sizes[0]), np.float32), cp.empty(B, np.int64)
        self.h = [cp.empty((B, units), np.float32) for units in sizes[1:]]  # each layer's output (z for the last)
        self.gh = [cp.empty((B, units), np.float32) for units in sizes[1:]]  # dL/d(each layer's output)
        self.order = cp.arange(self.n, dtype=np.int64)
        self.alphas = cp.zeros(self.steps, np.float32)
        self.loss_rows, self.hit_rows = cp.zeros(self.n, np.float32), cp.zeros(self.n, np.float32)
        partial = max(self._partial_size(rows) for rows in {B, self.n - (self.steps - 1) * B})
        self.partial = cp.empty(max(partial, 1), np.float32)
        self.launches = 0
        self.stream = cp.cuda.Stream(non_blocking=True)
        cp.cuda.Stream.null.synchronize()  # the buffers above are ready before capture
        with self.stream:
            self.stream.begin_capture()
            try:
                for step in range(self.steps):
                    self._capture_step(step)
            except BaseException:  # no stream left capturing; the error above is the one to report
                try:
                    self.stream.end_capture()
                except Exception:
                    pass
                raise
            self.graph = self.stream.end_capture()

    # ---------------------------------------------------------------- what is captured

    def _offsets(self, model):
        """Each Dense layer's offset in the flat buffer, where its [W; b] starts."""
        offset, found = 0, {}
        for layer in model.layers:
            for i, p in enumerate(layer.parameters()):
                if i == 0:
                    found[id(layer)] = offset
                offset += p.value.size
        return [found[id(layer)] for layer in self.layers]

    def _partial_size(self, rows):
        """The floats the largest split product of a step on ``rows`` samples sums over."""
        size = 0
        for layer in self.layers:
            for M, N, K in products(layer, rows).values():
                splits, _ = _splits(M, N, K)
                if splits > 1:
                    size = max(size, splits * M * N)
        return size

    def _launch(self, name, n_threads, *args):
        kernels._launch(name, n_threads, *args)
        self.launches += 1

    def _gemm(self, A, B, C, M, N, K, a, a_rows, a_cols, b, epilogue=NO_EPILOGUE, R=None):
        """C (M, N) = A B (A padded with ones beyond a_rows x a_cols), as one or two launches."""
        splits, per_split = _splits(M, N, K)
        tiles = math.ceil(M / TILE) * math.ceil(N / TILE)
        i32, i64 = np.int32, np.int64
        out = C if splits == 1 else self.partial
        args = (A, B, out, i32(M), i32(N), i32(K), i64(a[0]), i64(a[1]), i32(a_rows), i32(a_cols))
        args += (i64(b[0]), i64(b[1]), i32(per_split), i32(epilogue if splits == 1 else NO_EPILOGUE))
        kernels._kernel("gemm")((tiles * splits,), (THREADS,), args + (C if R is None else R,))
        self.launches += 1
        if splits > 1:
            R = C if R is None else R
            self._launch("sum_splits", M * N, self.partial, C, i64(M * N), i32(splits), i32(epilogue), R)

    def _capture_step(self, step):
        i32, i64 = np.int32, np.int64
        start = step * self.batch
        rows = min(self.batch, self.n - start)
        xb, yb = self.xb[:rows], self.yb[:rows]
        cols = self.x.shape[1]
        self._launch(
            "gather_rows", rows * cols, self.x, self.y, self.order, self.xb, self.yb, i64(start), i32(rows), i32(cols)
        )
        # forward: h = act([a, 1] [W; b])
        a = xb
        for layer, offset, h in zip(self.layers, self.offsets, self.h):
            n_in, n_out = layer.kernel.value.shape
            M, N, K = products(layer, rows)["x W"]
            relu = _activation(layer) == "relu"
            self._gemm(a, self.w[offset:], h, M, N, K, (n_in, 1), rows, n_in, (n_out, 1), RELU if relu else 0)
            a = h[:rows]
        # the loss: each row's loss and hit into the epoch's buffers, gz = (softmax(z) - onehot) / N
        z, gz = self.h[-1][:rows], self.gh[-1][:rows]
        classes = z.shape[1]
        loss = self.loss_rows[start : start + rows]
        self._launch("softmax_xent", rows, z, yb, gz, loss, i32(rows), i32(classes))
        if self.model.metrics:  # "accuracy"
            self._launch("sparse_hits", rows, z, yb, self.hit_rows[start : start + rows], i32(rows), i32(classes))
        # backward, last layer first: [gW; gb] = [a, 1]^T gz, then ga = (gz W^T) * (a > 0)
        for i in reversed(range(len(self.layers))):
            layer, offset = self.layers[i], self.offsets[i]
            n_in, n_out = layer.kernel.value.shape
            a = xb if i == 0 else self.h[i - 1][:rows]
            gz = self.gh[i][:rows]
            shapes = products(layer, rows)
            M, N, K = shapes["x^T gz"]
            self._gemm(a, gz, self.g[offset:], M, N, K, (1, n_in), n_in, rows, (n_out, 1))
            if i > 0:
                below = self.layers[i - 1]
                mask = _activation(below) == "relu"
                ga = self.gh[i - 1][:rows]
                W = self.w[offset:]
                M, N, K = shapes["gz W^T"]
                self._gemm(gz, W, ga, M, N, K, (n_out, 1), rows, n_out, (1, n_out), 2 * mask, a)
        # Adam over the flat buffers, its step size for this step read from device memory
        opt, f = self.model.optimizer, np.float32
        args = (self.w, self.g, self.m, self.v, self.alphas[step : step + 1])
        args += (f(1 - opt.beta_1), f(1 - opt.beta_2), f(opt.epsilon), i64(self.w.size))
        self._launch("adam_at_step", self.w.size, *args)

    # ---------------------------------------------------------------- an epoch

    def step_sizes(self):
        """Adam's alpha for each step of the next epoch, as the usual step computes it."""
        opt = self.model.optimizer
        t = np.arange(opt.iterations, opt.iterations + self.steps)  # each step's iterations before it
        if callable(opt.learning_rate):  # a schedule of the step
            lr = np.array([float(opt.learning_rate(int(i))) for i in t])
            bad = np.flatnonzero(~(np.isfinite(lr) & (lr >= 0)))
            if bad.size:
                raise ValueError(f"the learning-rate schedule gave {lr[bad[0]]!r} at step {t[bad[0]]}")
        else:
            lr = np.full(self.steps, opt.learning_rate)
        # the same float32 arithmetic as Adam.update's, element by element
        return optimizers.adam_step_size(lr, opt.beta_1, opt.beta_2, t + 1, np.float32).astype(np.float32)

    def run(self, order=None):
        """One epoch over the samples in ``order`` (a host permutation; None: 0, 1, ...):
        returns (the sum of the samples' losses, the number of hits), device scalars."""
        cp = self.cp
        cp.cuda.Stream.null.synchronize()  # what ran before (validation, a callback) is done
        with self.stream:
            self.order.set(np.arange(self.n, dtype=np.int64) if order is None else order.astype(np.int64))
            self.alphas.set(self.step_sizes())
            self.graph.launch(self.stream)
        self.stream.synchronize()
        self.model.optimizer.iterations += self.steps
        return self.loss_rows.sum(dtype=np.float64), self.hit_rows.sum(dtype=np.float64)
