"""Fast twins that do the textbook's arithmetic in place: fewer passes, no temporaries.

Each function computes what one textbook method computes (its docstring says which),
and is bound in its place by :mod:`tinynet.engine.twins`, whose table lists every twin.
Most run on the CPU and the GPU alike; the convolution and pooling ones can cut a batch
into ranges of samples run at once on tinynet's worker threads (:func:`_by_samples`).
``tests/test_fast.py`` holds each equal to its textbook method.
"""

from __future__ import annotations

import concurrent.futures
import os
import weakref

import numpy as np

from .. import backend
from ..layers import ReLU
from ..layers.conv import im2col
from ..optimizers import adam_step_size


def runs_textbook(obj, cls, name) -> bool:
    """Whether ``obj`` runs ``cls``'s own method ``name`` (so a twin of it may stand in):
    a subclass that overrides it, a learner's own layer, keeps its own."""
    return isinstance(obj, cls) and getattr(type(obj), name) is getattr(cls, name) and name not in vars(obj)


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
    if xp is np and runs_textbook(self.activation, ReLU, "backward"):  # ReLU.backward, gz = gy * [y > 0]
        gz, y = _work(self, "gz", gy.shape, gy.dtype), self.activation.output
        _by_samples(len(gy), threads, lambda lo, hi: np.multiply(gy[lo:hi], y[lo:hi] > 0, out=gz[lo:hi]))
    else:
        gz = self.activation.backward(gy)
    gz2 = gz.reshape(-1, f)
    _matmul_by_rows(self.patches[0].T, gz2, self.kernel.grad.reshape(kh * kw * c, f), threads)  # gW = cols^T gz
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
    _, x_shape, pad_shape = self.patches
    gxpad = np.zeros(pad_shape, dtype=gz.dtype)

    def samples(lo, hi):
        rows = gz[lo:hi].reshape((hi - lo) * oh * ow, -1)
        for i in range(kh):
            for j in range(kw):
                window = gxpad[lo:hi, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw, :]
                window += (rows @ self.kernel.value[i, j].T).reshape(hi - lo, oh, ow, c)

    _by_samples(n, threads, samples)
    return self.window.crop(gxpad, x_shape)


def maxpool_forward_tiled(self, x, training=False, threads=1):
    """MaxPooling2D.forward when the windows tile the input (strides == pool_size, "valid"):
    the windows are a reshape of x, not a copy of every window; ties go to the first, too."""
    xp = backend.get_array_module(x)
    n, h, w, c = x.shape
    (ph, pw), (oh, ow) = self.window.size, (h // self.window.size[0], w // self.window.size[1])
    tiles = xp.ascontiguousarray(x[:, : oh * ph, : ow * pw, :]).reshape(n, oh, ph, ow, pw, c)
    y = xp.empty((n, oh, ow, c), dtype=x.dtype)
    kept = kept_state(self)  # what the backward twin needs: where each max is, x's shape
    kept["tile_hits"], kept["x_shape"] = [xp.empty(y.shape, dtype=bool) for _ in range(ph * pw)], x.shape

    def samples(lo, hi):
        t, m = tiles[lo:hi], y[lo:hi]
        m[...] = t[:, :, 0, :, 0, :]
        for i in range(ph):
            for j in range(pw):
                xp.maximum(m, t[:, :, i, :, j, :], out=m)  # faster than a reduction over two strided axes
        free = xp.ones(m.shape, dtype=bool)  # no earlier place held the max
        for k, hits in enumerate(kept["tile_hits"]):
            hit = hits[lo:hi]
            xp.equal(t[:, :, k // pw, :, k % pw, :], m, out=hit)
            hit &= free  # the first (row-major) place of the max
            free ^= hit

    _by_samples(n, threads, samples)
    return y


def maxpool_backward_tiled(self, gy, threads=1):
    """MaxPooling2D.backward for :func:`maxpool_forward_tiled`: gy to each window's max,
    written straight into the tiles of gx (each pixel once, so no zeroing where they tile it)."""
    xp = backend.get_array_module(gy)
    n, oh, ow, c = gy.shape
    ph, pw = self.window.size
    kept = kept_state(self)
    x_shape = kept["x_shape"]
    exact = x_shape[1] == oh * ph and x_shape[2] == ow * pw
    gx = (xp.empty if exact else xp.zeros)(x_shape, dtype=gy.dtype)
    tiles = gx[:, : oh * ph, : ow * pw, :].reshape(n, oh, ph, ow, pw, c)  # a view when exact

    def samples(lo, hi):
        for k, hit in enumerate(kept["tile_hits"]):
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
        patches = cols.reshape(kh * kw * c, n * k).T
    else:
        cols = _work(self, "cols", (n, oh, ow, kh, kw, c), xpad.dtype)
        patches = cols.reshape(n * k, kh * kw * c)
    self.keep_patches(patches, x.shape, xpad.shape)
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
        np.matmul(patches[lo * k : hi * k], Wm, out=z[lo:hi].reshape(-1, f))
        rows, per_row = _pixel_rows(z[lo:hi], f)
        if self.use_bias:
            rows += np.tile(self.bias.value, per_row)
        if relu:
            np.maximum(rows, np.zeros(rows.shape[1], z.dtype), out=rows)

    _by_samples(n, threads, samples)
    if not relu:
        return self.activation.forward(z, training)
    return self.activation.keep_output(z)


def _pixel_rows(a, f):
    """``a`` (..., f), C-contiguous, seen as rows of k whole pixels (k * f values; k the
    largest of 256, 128, ..., 1 that divides the pixel count), and k. NumPy's
    element-wise loops run several times faster along long rows than along rows of f
    values, and a per-channel vector tiled k times lines up with every row."""
    pixels = a.size // f
    k = next(k for k in (256, 128, 64, 32, 16, 8, 4, 2, 1) if pixels % k == 0)
    return a.reshape(pixels // k, k * f), k


_work_arrays: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # layer -> {name: array}, dropped by remove()


def forget_work_arrays(owner):
    """Let go of ``owner``'s work arrays and kept state (when training ends)."""
    _work_arrays.pop(owner, None)
    _kept.pop(owner, None)


_kept: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # object -> what its twins keep between calls


def kept_state(owner) -> dict:
    """What a pair of twins keeps between ``owner``'s forward and backward (where each max of a
    pooling window is, a fused loss's gradient): in the twins' own storage, not on the object,
    which only a class's own methods write."""
    return _kept.setdefault(owner, {})


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
    with BLAS on one thread inside each range (tinynet.engine.threads), the whole step, products
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
