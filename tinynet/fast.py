r"""Fast twins of textbook methods: the same math, less work, chosen once.

The textbook methods (``Dense.backward``, ``Adam.update``, ...) write the formula as
code and allocate what they compute. Each function here computes exactly what one
of them computes, faster, and is named after it:

| fast twin                          | equals                       | what it saves                             |
|------------------------------------|------------------------------|-------------------------------------------|
| dense_backward_into                | Dense.backward               | writes gW, gb into the flat gradient buffer |
| dense_backward_into_without_gx     | Dense.backward, no gx        | first layer: its input is data, skip gx   |
| conv2d_backward_into_without_gx    | Conv2D.backward, no gx, ~1ulp | the same; CPU: gb as 1^T gz, gz reused   |
| conv2d_forward_inplace             | Conv2D.forward (CPU)         | patches kept; bias, ReLU in place, long rows |
| conv2d_backward_by_offsets         | Conv2D.backward (CPU), ~1ulp | gx: a product per offset, no col2im       |
| maxpool_forward/backward_tiled     | MaxPooling2D, windows tiling | windows by reshape, no copy per window    |
| (conv and pooling, ``threads=k``)  | the same, ~1ulp for products | k ranges of samples at once (_by_samples) |
| adam_update_inplace                | Adam.update                  | no temporaries: two scratch arrays reused |
| rmsprop_update_inplace             | RMSprop.update (plain)       | the same                                  |
| dense_relu_forward_fused           | Dense.forward with ReLU      | GPU: bias + ReLU in one kernel            |
| relu_backward_fused                | ReLU.backward                | GPU: one kernel                           |
| sparse_crossentropy_*_fused        | SparseCategoricalCrossentropy | GPU: loss and gradient in one kernel    |
| adam_fused, rmsprop_fused, sgd_momentum_fused | the updates       | GPU: one kernel over the flat buffer      |

:func:`install` chooses them once, when training starts (``fit``,
``train_on_batch``), for the objects whose method is the textbook one of its class
(a subclass that overrides ``backward``, a learner's own layer, keeps its own), as
instance attributes that shadow the class's method; :func:`remove` takes them away
again when training ends (see :func:`tinynet.training.prepared`).
``enabled = False`` keeps the textbook methods everywhere. ``tests/test_fast.py``
holds every twin equal to its textbook method.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import types
import weakref

import numpy as np

from . import backend, kernels
from .keras_compat import adam_step_size
from .layers import Conv2D, Dense, MaxPooling2D, ReLU
from .layers.conv import im2col
from .losses import SparseCategoricalCrossentropy
from .optimizers import SGD, Adam, RMSprop

enabled = True
_installed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # object -> names of its twins
_scratch: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # optimizer -> its Scratch, kept between fits


# ------------------------------------------------------------------ CPU and GPU: fewer passes


def _dense_gradients_into(self, gy):
    xp = backend.get_array_module(gy)
    gz = self.activation.backward(gy)
    xp.matmul(self._x.T, gz, out=self.kernel.grad)
    if self.use_bias:
        gz.sum(axis=0, out=self.bias.grad)
    return gz


def dense_backward_into(self, gy):
    """Dense.backward, writing gW = x^T gz and gb = sum_n gz into the existing arrays."""
    return _dense_gradients_into(self, gy) @ self.kernel.value.T


def dense_backward_into_without_gx(self, gy):
    """Dense.backward for a first layer: gW and gb only (gx, the data's gradient, is unused)."""
    _dense_gradients_into(self, gy)


def _conv2d_gradients_into(self, gy, threads=1):
    """gz = the activation's backward, gW = cols^T gz and gb = the sum of gz's rows, written
    into the existing arrays; returns gz and gz as rows (N * OH * OW, F)."""
    xp = backend.get_array_module(gy)
    kh, kw, c, f = self.kernel.value.shape
    if xp is np and _textbook(self.activation, ReLU, "backward"):  # ReLU.backward, gz = gy * [y > 0]
        gz, y = _work(self, "gz", gy.shape, gy.dtype), self.activation._y
        _by_samples(len(gy), threads, lambda lo, hi: np.multiply(gy[lo:hi], y[lo:hi] > 0, out=gz[lo:hi]))
    else:
        gz = self.activation.backward(gy)
    gz2 = gz.reshape(-1, f)
    _matmul_by_rows(self._cols.T, gz2, self.kernel.grad.reshape(kh * kw * c, f), threads)  # gW = cols^T gz
    if self.use_bias and xp is np:  # gb as the product 1^T gz: NumPy sums axis 0 of a tall array row by row
        np.matmul(_work(self, "ones", (len(gz2),), gz2.dtype, fill=1), gz2, out=self.bias.grad)
    elif self.use_bias:
        gz2.sum(axis=0, out=self.bias.grad)
    return gz, gz2


def conv2d_backward_into_without_gx(self, gy, threads=1):
    """Conv2D.backward for a first layer: gW and gb written in place, no gx."""
    _conv2d_gradients_into(self, gy, threads)


def conv2d_backward_by_offsets(self, gy, threads=1):
    """Conv2D.backward on the CPU with gx as one product per kernel offset (i, j),
    gz W[i, j]^T, added straight into the pixels that offset reads: the textbook's
    gcols = gz Wm^T cut into its kh * kw column blocks, and col2im's adds done in the
    same order, from contiguous blocks instead of every patch's strided slice.

    Equal to the textbook within float32 rounding, not bit for bit: BLAS sums the
    dot products of a narrower product in its own order. gW and gb as
    :func:`conv2d_backward_into_without_gx`."""
    gz, _ = _conv2d_gradients_into(self, gy, threads)
    n, oh, ow, _ = gz.shape
    kh, kw, c, _ = self.kernel.value.shape
    sh, sw = self.window.strides
    gxpad = np.zeros(self._pad_shape, dtype=gz.dtype)

    def samples(lo, hi):
        rows = gz[lo:hi].reshape((hi - lo) * oh * ow, -1)
        for i in range(kh):
            for j in range(kw):
                window = gxpad[lo:hi, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw, :]
                window += (rows @ self.kernel.value[i, j].T).reshape(hi - lo, oh, ow, c)

    _by_samples(n, threads, samples)
    return self.window.crop(gxpad, self._x_shape)


def maxpool_forward_tiled(self, x, training=False, threads=1):
    """MaxPooling2D.forward when the windows tile the input (strides == pool_size, "valid"):
    the windows are a reshape of x, not a copy of every window; ties go to the first, too."""
    xp = backend.get_array_module(x)
    n, h, w, c = x.shape
    (ph, pw), (oh, ow) = self.window.size, (h // self.window.size[0], w // self.window.size[1])
    tiles = xp.ascontiguousarray(x[:, : oh * ph, : ow * pw, :]).reshape(n, oh, ph, ow, pw, c)
    y = xp.empty((n, oh, ow, c), dtype=x.dtype)
    self._tile_hits = [xp.empty(y.shape, dtype=bool) for _ in range(ph * pw)]  # where each max is

    def samples(lo, hi):
        t, m = tiles[lo:hi], y[lo:hi]
        m[...] = t[:, :, 0, :, 0, :]
        for i in range(ph):
            for j in range(pw):
                xp.maximum(m, t[:, :, i, :, j, :], out=m)  # faster than a reduction over two strided axes
        free = xp.ones(m.shape, dtype=bool)  # no earlier place held the max
        for k, hits in enumerate(self._tile_hits):
            hit = hits[lo:hi]
            xp.equal(t[:, :, k // pw, :, k % pw, :], m, out=hit)
            hit &= free  # the first (row-major) place of the max
            free ^= hit

    _by_samples(n, threads, samples)
    self._x_shape = x.shape
    return y


def maxpool_backward_tiled(self, gy, threads=1):
    """MaxPooling2D.backward for :func:`maxpool_forward_tiled`: gy to each window's max,
    written straight into the tiles of gx (each pixel once, so no zeroing where they tile it)."""
    xp = backend.get_array_module(gy)
    n, oh, ow, c = gy.shape
    ph, pw = self.window.size
    exact = self._x_shape[1] == oh * ph and self._x_shape[2] == ow * pw
    gx = (xp.empty if exact else xp.zeros)(self._x_shape, dtype=gy.dtype)
    tiles = gx[:, : oh * ph, : ow * pw, :].reshape(n, oh, ph, ow, pw, c)  # a view when exact

    def samples(lo, hi):
        for k, hit in enumerate(self._tile_hits):
            xp.multiply(gy[lo:hi], hit[lo:hi], out=tiles[lo:hi, :, k // pw, :, k % pw, :])

    _by_samples(n, threads, samples)
    if not exact:
        gx[:, : oh * ph, : ow * pw, :] = tiles.reshape(n, oh * ph, ow * pw, c)
    return gx


def conv2d_forward_inplace(self, x, training=False, threads=1):
    """Conv2D.forward on the CPU: the same patches and product, the patches copied into
    an array kept between steps (a few-channel input one kernel offset at a time, one
    long copy each instead of a tiny one per patch), the bias and a ReLU applied in
    place along long rows; with ``threads`` > 1 all of it on ranges of samples at once."""
    kh, kw, c, f = self.kernel.value.shape
    xpad, oh, ow = self.window.pad(x, owner=self.name or "Conv2D")
    n, (sh, sw), k = x.shape[0], self.window.strides, oh * ow  # k: rows of cols per sample
    Wm = self.kernel.value.reshape(kh * kw * c, f)
    if c < 4:  # offset-major patches (kh, kw, c, n, oh, ow); the product reads their transpose
        cols = _work(self, "cols", (kh, kw, c, n, oh, ow), xpad.dtype)
        self._cols = cols.reshape(kh * kw * c, n * k).T
    else:
        cols = _work(self, "cols", (n, oh, ow, kh, kw, c), xpad.dtype)
        self._cols = cols.reshape(n * k, kh * kw * c)
    z = np.empty((n, oh, ow, f), dtype=np.result_type(xpad.dtype, Wm.dtype))  # the dtype of cols @ Wm
    relu = type(self.activation) is ReLU

    def samples(lo, hi):
        if c < 4:
            for i in range(kh):
                for j in range(kw):
                    window = xpad[lo:hi, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw, :]
                    cols[i, j, :, lo:hi] = np.moveaxis(window, -1, 0)
        else:
            np.copyto(cols[lo:hi], im2col(xpad[lo:hi], kh, kw, self.window.strides, oh, ow))
        np.matmul(self._cols[lo * k : hi * k], Wm, out=z[lo:hi].reshape(-1, f))
        rows, per_row = _pixel_rows(z[lo:hi], f)
        if self.use_bias:
            rows += np.tile(self.bias.value, per_row)
        if relu:
            np.maximum(rows, np.zeros(rows.shape[1], z.dtype), out=rows)

    _by_samples(n, threads, samples)
    self._x_shape, self._pad_shape = x.shape, xpad.shape
    if not relu:
        return self.activation.forward(z, training)
    self.activation._y = z
    return z


def _pixel_rows(a, f):
    """``a`` (..., f), C-contiguous, seen as rows of k whole pixels (k * f values; k the
    largest of 256, 128, ..., 1 that divides the pixel count), and k. NumPy's
    element-wise loops run several times faster along long rows than along rows of f
    values, and a per-channel vector tiled k times lines up with every row."""
    pixels = a.size // f
    k = next(k for k in (256, 128, 64, 32, 16, 8, 4, 2, 1) if pixels % k == 0)
    return a.reshape(pixels // k, k * f), k


_work_arrays: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # layer -> {name: array}, dropped by remove()


def _work(owner, name, shape, dtype, fill=None):
    """A work array of ``owner``'s, kept between steps while training (a fresh one when
    the shape changes; ``fill``: its constant value): a fresh large array costs its page
    faults again every step."""
    arrays = _work_arrays.setdefault(owner, {})
    a = arrays.get(name)
    if a is None or a.shape != tuple(shape) or a.dtype != dtype:
        a = arrays[name] = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
    return a


_workers = None  # the threads that run _by_samples's other ranges, made on first use
_workers_size = 0


def _forget_workers():
    """In a child made by fork: the parent's worker threads did not come along."""
    global _workers, _workers_size
    _workers, _workers_size = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def _by_samples(n, threads, fn, least=8):
    """``fn(lo, hi)`` for ``threads`` consecutive ranges of n samples (or rows) at once:
    the first range in this thread, the others on worker threads (NumPy and BLAS let go
    of the GIL). Each range reads and writes only its own rows. With one thread, or
    fewer than ``least`` rows a range, just ``fn(0, n)``.

    Why tinynet's own threads: BLAS's threads spin for a while after each product, so
    they and the passes NumPy runs on one core between products cannot share the cores;
    with BLAS on one thread inside each range (tinynet.threads), the whole step, products
    and passes, runs on every core, and a worker waiting on a busy machine sleeps."""
    global _workers, _workers_size
    threads = min(threads, n // least)
    if threads <= 1:
        fn(0, n)
        return
    if _workers_size < threads - 1:
        if _workers is not None:
            _workers.shutdown(wait=False)
        _workers, _workers_size = concurrent.futures.ThreadPoolExecutor(threads - 1, "tinynet"), threads - 1
    bounds = [n * k // threads for k in range(threads + 1)]
    others = [_workers.submit(fn, lo, hi) for lo, hi in zip(bounds[1:-1], bounds[2:])]
    try:
        fn(bounds[0], bounds[1])
    finally:
        concurrent.futures.wait(others)  # every range has ended before anything is raised
    for other in others:
        other.result()


def _matmul_by_rows(a, b, out, threads):
    """out = a @ b, ranges of out's rows at once (:func:`_by_samples`)."""
    xp = backend.get_array_module(out)
    _by_samples(len(out), threads, lambda lo, hi: xp.matmul(a[lo:hi], b, out=out[lo:hi]), least=1)


class Scratch:
    """Work arrays shaped like each parameter, made once and reused, so an update
    allocates nothing (for a large model each fresh temporary costs page faults)."""

    def __init__(self):
        self.arrays = {}

    def get(self, i, w):
        arrays = self.arrays.get(i)
        if (
            arrays is None
            or arrays[0].shape != w.shape
            or arrays[0].dtype != w.dtype
            or backend.device_of(arrays[0]) != backend.device_of(w)
        ):
            xp = backend.get_array_module(w)
            arrays = self.arrays[i] = (xp.empty_like(w), xp.empty_like(w))
        return arrays


def adam_update_inplace(self, i, w, g, lr, scratch):
    """Adam.update, operation for operation, into two reused scratch arrays."""
    xp = backend.get_array_module(w)
    m, v = self.slots["m"][i], self.slots["v"][i]
    tmp, den = scratch.get(i, w)
    xp.subtract(g, m, out=tmp)  # m += (g - m)(1 - beta_1)
    tmp *= 1 - self.beta_1
    m += tmp
    xp.multiply(g, g, out=tmp)  # v += (g^2 - v)(1 - beta_2)
    tmp -= v
    tmp *= 1 - self.beta_2
    v += tmp
    alpha = adam_step_size(lr, self.beta_1, self.beta_2, self.iterations + 1, w.dtype)
    xp.sqrt(v, out=den)  # w -= alpha m / (sqrt(v) + eps)
    den += self.epsilon
    xp.multiply(m, alpha, out=tmp)
    tmp /= den
    w -= tmp


def rmsprop_update_inplace(self, i, w, g, lr, scratch):
    """RMSprop.update (not centred, no momentum), operation for operation, in place."""
    xp = backend.get_array_module(w)
    v = self.slots["velocity"][i]
    tmp, den = scratch.get(i, w)
    v *= self.rho  # v = rho v + (1 - rho) g^2
    xp.multiply(g, g, out=tmp)
    tmp *= 1 - self.rho
    v += tmp
    xp.add(v, self.epsilon, out=den)  # w -= lr g / sqrt(v + eps)
    xp.sqrt(den, out=den)
    xp.multiply(g, lr, out=tmp)
    tmp /= den
    w -= tmp


# ------------------------------------------------------------------ GPU: fused kernels


def dense_relu_forward_fused(self, x, training=False):
    """Dense.forward with a ReLU: y = max(x W + b, 0), the bias and ReLU in one kernel
    (the textbook method where the kernel does not apply: not float32)."""
    y = kernels.bias_relu(x @ self.kernel.value, self.bias.value)
    if y is None:
        return Dense.forward(self, x, training)
    self._x = x
    self.activation._y = y
    return y


def conv2d_forward_fused(self, x, training=False):
    """Conv2D.forward on the GPU: the patches copied out by one kernel (the padding read as
    zeros, no padded copy of x), the same product, the bias and a ReLU in one kernel."""
    kh, kw, c, f = self.kernel.value.shape
    n, h, w, _ = x.shape
    oh, ow, (top, bottom), (left, right) = self.window.output(h, w, self.name or "Conv2D")
    cols = kernels.im2col(x, kh, kw, self.window.strides, oh, ow, top, left)
    if cols is None:
        return Conv2D.forward(self, x, training)
    self._cols, self._x_shape, self._pad_shape = cols, x.shape, (n, h + top + bottom, w + left + right, c)
    z = cols @ self.kernel.value.reshape(kh * kw * c, f)
    y = kernels.bias_relu(z, self.bias.value) if type(self.activation) is ReLU and self.use_bias else None
    if y is None:
        z = z + self.bias.value if self.use_bias else z
        return self.activation.forward(z.reshape(n, oh, ow, f), training)
    self.activation._y = y = y.reshape(n, oh, ow, f)
    return y


def conv2d_backward_fused(self, gy):
    """Conv2D.backward on the GPU: the same products; the patches' gradients added back
    into gx by one kernel (col2im and the crop in one, the sums in col2im's order)."""
    if gy.dtype != np.float32:
        return Conv2D.backward(self, gy)
    gz = self.activation.backward(gy)
    kh, kw, c, f = self.kernel.value.shape
    n, oh, ow, _ = gz.shape
    gz = gz.reshape(n * oh * ow, f)
    self.kernel.grad = (self._cols.T @ gz).reshape(kh, kw, c, f)
    if self.use_bias:
        self.bias.grad = gz.sum(axis=0)
    gcols = gz @ self.kernel.value.reshape(kh * kw * c, f).T
    _, _, (top, _), (left, _) = self.window.output(*self._x_shape[1:3], self.name or "Conv2D")
    return kernels.col2im(gcols, self._x_shape, kh, kw, self.window.strides, oh, ow, top, left)


def maxpool_forward_fused(self, x, training=False):
    """MaxPooling2D.forward on the GPU when the windows tile x: the max and where it is, in one kernel."""
    done = kernels.maxpool_forward(x, *self.window.size)
    if done is None:
        return maxpool_forward_tiled(self, x, training)
    y, self._argmax = done
    self._x_shape = x.shape
    return y


def maxpool_backward_fused(self, gy):
    """MaxPooling2D.backward for :func:`maxpool_forward_fused`: gy to each window's max, in one kernel."""
    gx = kernels.maxpool_backward(gy, self._argmax, self._x_shape, *self.window.size)
    return maxpool_backward_tiled(self, gy) if gx is None else gx


def relu_backward_fused(self, gy):
    """ReLU.backward, gx = gy * [y > 0], in one kernel (the textbook method where it does not apply)."""
    gx = kernels.relu_backward(self._y, gy)
    return ReLU.backward(self, gy) if gx is None else gx


def sparse_crossentropy_forward_fused(self, y_pred, y_true, sample_weight=None):
    """SparseCategoricalCrossentropy(from_logits=True).forward: the loss and its gradient
    (softmax(z) - onehot) / N from one kernel (the textbook code where it does not apply)."""
    fused = None if sample_weight is not None else kernels.softmax_xent(y_pred, y_true.reshape(-1))
    if fused is None:
        self._fused_grad = None
        return SparseCategoricalCrossentropy.forward(self, y_pred, y_true, sample_weight)
    loss, self._fused_grad = fused
    return loss


def sparse_crossentropy_backward_fused(self):
    if self._fused_grad is None:
        return SparseCategoricalCrossentropy.backward(self)
    return self._fused_grad


def adam_fused(self, i, w, g, lr):
    """Adam.update in one kernel (the textbook update where it does not apply: not float32)."""
    alpha = adam_step_size(lr, self.beta_1, self.beta_2, self.iterations + 1, w.dtype)
    m, v = self.slots["m"][i], self.slots["v"][i]
    if not kernels.adam(w, g, m, v, alpha, self.beta_1, self.beta_2, self.epsilon):
        Adam.update(self, i, w, g, lr)


def rmsprop_fused(self, i, w, g, lr):
    """RMSprop.update (not centred, no momentum) in one kernel."""
    if not kernels.rmsprop(w, g, self.slots["velocity"][i], lr, self.rho, self.epsilon):
        RMSprop.update(self, i, w, g, lr)


def sgd_momentum_fused(self, i, w, g, lr):
    """SGD.update with (Nesterov) momentum in one kernel."""
    if not kernels.sgd_momentum(w, g, self.slots["momentum"][i], lr, self.momentum, self.nesterov):
        SGD.update(self, i, w, g, lr)


# ------------------------------------------------------------------ choosing, once


def _bind(obj, name, fn, **kwargs):
    setattr(obj, name, types.MethodType(functools.partial(fn, **kwargs) if kwargs else fn, obj))
    _installed.setdefault(obj, []).append(name)


def _textbook(obj, cls, name):
    """Whether ``obj`` runs ``cls``'s own method ``name`` (so a twin of it may stand in)."""
    return isinstance(obj, cls) and getattr(type(obj), name) is getattr(cls, name) and name not in vars(obj)


def objects(model):
    """What training may bind methods on: the optimizer, the loss (and the one it wraps),
    every layer and its activation."""
    loss = getattr(model, "loss_fn", None)
    objects = [model.optimizer, loss, getattr(loss, "inner", None)]
    for layer in model.layers:
        objects += [layer, getattr(layer, "activation", None)]
    return [obj for obj in objects if obj is not None]


def remove(model):
    """Take every twin away: the textbook methods run again."""
    for obj in objects(model):
        for name in _installed.pop(obj, []):
            vars(obj).pop(name, None)
        _work_arrays.pop(obj, None)


def splits_steps(model) -> bool:
    """Whether :func:`install` would give ``model`` twins that cut a step's batch into
    ranges of samples on threads of their own (its convolutions, on the CPU)."""
    return enabled and model.device == "cpu" and any(_textbook(layer, Conv2D, "forward") for layer in model.layers)


def install(model, threads=1):
    """Choose, once, the fast twin of each textbook method that has one on the model's device.
    ``threads``: over how many threads the CPU twins of convolutions and pooling run ranges
    of a batch's samples at once (see :func:`_by_samples` and tinynet.threads)."""
    remove(model)
    if not enabled:
        return
    gpu = model.device == "gpu" and kernels.enabled
    cpu = model.device == "cpu"
    threads = threads if cpu else 1
    for k, layer in enumerate(model.layers):
        if _textbook(layer, Dense, "backward"):
            _bind(layer, "backward", dense_backward_into_without_gx if k == 0 else dense_backward_into)
        if k == 0 and _textbook(layer, Conv2D, "backward"):
            _bind(layer, "backward", conv2d_backward_into_without_gx, threads=threads)
        if cpu and _textbook(layer, Conv2D, "forward"):
            _bind(layer, "forward", conv2d_forward_inplace, threads=threads)
        if k > 0 and cpu and _textbook(layer, Conv2D, "backward"):
            _bind(layer, "backward", conv2d_backward_by_offsets, threads=threads)
        if gpu and _textbook(layer, Conv2D, "forward"):
            _bind(layer, "forward", conv2d_forward_fused)
        if k > 0 and gpu and _textbook(layer, Conv2D, "backward"):
            _bind(layer, "backward", conv2d_backward_fused)
        if (
            _textbook(layer, MaxPooling2D, "forward")
            and _textbook(layer, MaxPooling2D, "backward")
            and layer.window.padding == "valid"
            and layer.window.strides == layer.window.size
        ):
            if gpu:
                _bind(layer, "forward", maxpool_forward_fused)
                _bind(layer, "backward", maxpool_backward_fused)
            else:
                _bind(layer, "forward", maxpool_forward_tiled, threads=threads)
                _bind(layer, "backward", maxpool_backward_tiled, threads=threads)
        if gpu and _textbook(layer, Dense, "forward") and type(layer.activation) is ReLU and layer.use_bias:
            _bind(layer, "forward", dense_relu_forward_fused)
        activation = layer if isinstance(layer, ReLU) else getattr(layer, "activation", None)
        if gpu and activation is not None and _textbook(activation, ReLU, "backward"):
            _bind(activation, "backward", relu_backward_fused)
    loss = getattr(model.loss_fn, "inner", model.loss_fn)
    if gpu and type(loss) is SparseCategoricalCrossentropy and loss.from_logits:
        _bind(loss, "forward", sparse_crossentropy_forward_fused)
        _bind(loss, "backward", sparse_crossentropy_backward_fused)
    _install_update(model.optimizer, gpu)


def _install_update(opt, gpu):
    scratch = _scratch.setdefault(opt, Scratch())
    if _textbook(opt, Adam, "update"):
        if gpu:
            _bind(opt, "update", adam_fused)
        else:
            _bind(opt, "update", adam_update_inplace, scratch=scratch)
    elif _textbook(opt, RMSprop, "update") and not opt.centered and opt.momentum == 0:
        if gpu:
            _bind(opt, "update", rmsprop_fused)
        else:
            _bind(opt, "update", rmsprop_update_inplace, scratch=scratch)
    elif gpu and _textbook(opt, SGD, "update") and opt.momentum > 0:
        _bind(opt, "update", sgd_momentum_fused)


def installed(model) -> list[str]:
    """Which twins stand in now, as "object.method = twin" lines (for tests and curious readers)."""
    lines = []
    for obj in objects(model):
        for name in _installed.get(obj, []):
            fn = vars(obj)[name].__func__
            fn = getattr(fn, "func", fn)
            lines.append(f"{getattr(obj, 'name', None) or type(obj).__name__}.{name} = {fn.__name__}")
    return lines
