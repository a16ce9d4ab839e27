r"""Convolution and pooling layers, channels-last like Keras: images are (N, H, W, C).

The trick that makes them fast *and* readable is im2col ("image to columns"):

    every kh x kw x C patch that the kernel visits becomes one row of a matrix
    cols (N * OH * OW, kh * kw * C); the kernel (kh, kw, C, F) becomes a matrix
    Wm (kh * kw * C, F); and the whole convolution is one matrix product

        y = cols @ Wm + b                    -> reshaped to (N, OH, OW, F)

The backward pass is then the Dense layer's backward, plus a way back to images:

    gW    = cols^T @ gy        the kernel's gradient correlates input patches with gy
    gcols = gy @ Wm^T          each patch's gradient ...
    gx    = col2im(gcols)      ... added back where the patch came from. Patches
                               overlap, so a pixel collects from every patch that
                               contains it: this sum *is* the "full" convolution of
                               gy with the flipped kernel that textbooks write.

im2col is a strided *view* of the padded input (no Python loop over samples or
pixels); col2im loops only over the kh * kw kernel offsets, each one a vectorised
slice-add over the whole batch. The same code runs on NumPy and CuPy.
"""

from __future__ import annotations

import math

import numpy as np

from . import backend, initializers, regularizers
from .layers import Layer, Parameter, get_activation


def _pair(value, name):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    value = tuple(value)
    if len(value) != 2 or any(not isinstance(v, (int, np.integer)) or v < 1 for v in value):
        raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}")
    return tuple(int(v) for v in value)


def _padding(padding):
    if padding not in ("valid", "same"):
        raise ValueError(f'padding must be "valid" or "same", got {padding!r}')
    return padding


def output_size(size: int, k: int, stride: int, padding: str) -> tuple[int, int, int]:
    """(output size, padding before, padding after) along one axis, as Keras/TensorFlow.

    valid: out = floor((size - k) / stride) + 1, no padding.
    same:  out = ceil(size / stride); the total padding needed is split with the
           extra pixel, if any, after (at the bottom / right).
    """
    if padding == "valid":
        return (size - k) // stride + 1, 0, 0
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


def windows(x, kh, kw, stride, out_h, out_w):
    """A (N, OH, OW, kh, kw, C) strided view of every window of x (N, H, W, C). No copy."""
    xp = backend.get_array_module(x)
    x = xp.ascontiguousarray(x)
    n, _, _, c = x.shape
    sn, sh, sw, sc = x.strides
    return xp.lib.stride_tricks.as_strided(
        x, shape=(n, out_h, out_w, kh, kw, c), strides=(sn, sh * stride[0], sw * stride[1], sh, sw, sc)
    )


def add_windows(part, shape, window, out_hw, stride, dtype):
    """col2im: add every window's gradient back into a zero array of ``shape``.

    ``part(i, j)`` is the gradient of all windows' (i, j) element, shaped
    (N, OH, OW, C); that element came from pixel (oh * stride + i, ow * stride + j).
    One vectorised slice-add per kernel offset (i, j), none per sample or pixel.
    """
    xp = backend.get_array_module(part(0, 0))
    gx = xp.zeros(shape, dtype=dtype)
    (kh, kw), (out_h, out_w), (sh, sw) = window, out_hw, stride
    for i in range(kh):
        for j in range(kw):
            gx[:, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw, :] += part(i, j)
    return gx


def _check_input(layer, x, c):
    if x.ndim != 4 or x.shape[3] != c:
        raise ValueError(
            f"{layer.name or type(layer).__name__} expects input of shape (batch, height, width, {c}), "
            f"got {tuple(x.shape)}"
        )


class Conv2D(Layer):
    r"""2-D convolution, ``y = activation(conv(x, W) + b)``, as ``keras.layers.Conv2D``.

    Shapes:    x (N, H, W, C),  kernel (kh, kw, C, F),  bias (F,),  y (N, OH, OW, F)
    Forward:   y[n, oh, ow, f] = sum_{i, j, c} xpad[n, oh*s + i, ow*s + j, c] W[i, j, c, f] + b[f]
               computed as  cols = im2col(xpad)  (N*OH*OW, kh*kw*C),  z = cols @ Wm + b
    Backward:  gz    = activation.backward(gy)                    (N, OH, OW, F)
               gW    = cols^T @ gz   -> (kh, kw, C, F)   correlation of patches with gz
               gb    = sum over N, OH, OW of gz
               gcols = gz @ Wm^T     -> (N, OH, OW, kh, kw, C)
               gx    = col2im(gcols), cropped of the padding      (N, H, W, C)

    Args:
        filters: F, the number of output channels.
        kernel_size: kh, or (kh, kw).
        strides: s, or (sh, sw). Defaults to 1.
        padding: "valid" (no padding) or "same" (output size ceil(H / s)).
        activation: as for Dense.
        use_bias: Defaults to True.
        kernel_initializer: Defaults to "glorot_uniform" (fans include kh * kw).
        kernel_regularizer: e.g. ``tinynet.regularizers.l2(1e-4)``.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        name=None,
        input_shape=None,
    ):
        super().__init__(name=name, input_shape=input_shape)
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(f"Conv2D filters must be a positive integer, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = _padding(padding)
        self.activation = get_activation(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self._names = (activation, kernel_initializer, bias_initializer)

    def _geometry(self, h, w):
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        oh, top, bottom = output_size(h, kh, sh, self.padding)
        ow, left, right = output_size(w, kw, sw, self.padding)
        if oh < 1 or ow < 1:
            raise ValueError(
                f"{self.name or 'Conv2D'}: a {kh}x{kw} kernel does not fit a {h}x{w} input "
                f"with padding {self.padding!r}"
            )
        return oh, ow, (top, bottom), (left, right)

    def build(self, input_shape, rng=None):
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.name or 'Conv2D'} expects samples of shape (height, width, channels), got {tuple(input_shape)}"
            )
        rng = rng if rng is not None else np.random.default_rng()
        kh, kw = self.kernel_size
        shape = (kh, kw, int(input_shape[2]), self.filters)
        self.kernel = Parameter(self.kernel_initializer(shape, rng), "kernel")
        self.bias = Parameter(self.bias_initializer((self.filters,), rng), "bias") if self.use_bias else None
        return super().build(input_shape, rng)

    def compute_output_shape(self, input_shape):
        oh, ow, _, _ = self._geometry(input_shape[0], input_shape[1])
        return (oh, ow, self.filters)

    def parameters(self):
        return [self.kernel] + ([self.bias] if self.use_bias else [])

    def forward(self, x, training=False, logits=False):
        xp = backend.get_array_module(x)
        W = self.kernel.value
        kh, kw, c, f = W.shape
        _check_input(self, x, c)
        n, h, w, _ = x.shape
        oh, ow, pad_h, pad_w = self._geometry(h, w)
        xpad = xp.pad(x, ((0, 0), pad_h, pad_w, (0, 0))) if self.padding == "same" else x
        # im2col: one row per output pixel, holding the patch it sees
        cols = windows(xpad, kh, kw, self.strides, oh, ow).reshape(n * oh * ow, kh * kw * c)
        self._cols, self._x_shape, self._pad_shape, self._pads = cols, x.shape, xpad.shape, (pad_h, pad_w)
        z = cols @ W.reshape(kh * kw * c, f)
        if self.use_bias:
            z += self.bias.value
        z = z.reshape(n, oh, ow, f)
        self._through_activation = self.activation is not None and not logits
        return self.activation.forward(z, training) if self._through_activation else z

    def backward(self, gy, input_grad=True):
        xp = backend.get_array_module(gy)
        gz = self.activation.backward(gy) if self._through_activation else gy
        kh, kw, c, f = self.kernel.value.shape
        n, oh, ow, _ = gz.shape
        gz2 = gz.reshape(n * oh * ow, f)
        # gW = cols^T gz, gb = sum of gz, written into the gradient arrays
        xp.matmul(self._cols.T, gz2, out=self.kernel.grad.reshape(kh * kw * c, f))
        if self.use_bias:
            gz2.sum(axis=0, out=self.bias.grad)
        if not input_grad:
            return None
        # gcols = gz Wm^T, then col2im back to the (padded) image, then drop the padding
        gcols = (gz2 @ self.kernel.value.reshape(kh * kw * c, f).T).reshape(n, oh, ow, kh, kw, c)
        gxpad = add_windows(
            lambda i, j: gcols[:, :, :, i, j, :], self._pad_shape, (kh, kw), (oh, ow), self.strides, gcols.dtype
        )
        (top, _), (left, _) = self._pads
        h, w = self._x_shape[1:3]
        return gxpad[:, top : top + h, left : left + w, :]

    def get_config(self):
        activation, kernel_init, bias_init = self._names
        return {
            "name": self.name,
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "activation": activation if isinstance(activation, (str, type(None))) else self.describe(),
            "use_bias": self.use_bias,
            "kernel_initializer": kernel_init if isinstance(kernel_init, str) else "glorot_uniform",
            "bias_initializer": bias_init if isinstance(bias_init, str) else "zeros",
            "kernel_regularizer": self.kernel_regularizer.get_config() if self.kernel_regularizer else None,
        }

    def describe(self):
        return type(self.activation).__name__.lower() if self.activation is not None else ""


class _Pooling2D(Layer):
    """Shared geometry of the pooling layers (no parameters)."""

    def __init__(self, pool_size=2, strides=None, padding="valid", name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = _pair(strides, "strides") if strides is not None else self.pool_size
        self.padding = _padding(padding)

    def _geometry(self, h, w):
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        oh, top, bottom = output_size(h, ph, sh, self.padding)
        ow, left, right = output_size(w, pw, sw, self.padding)
        if oh < 1 or ow < 1:
            raise ValueError(f"{self.name or type(self).__name__}: a {ph}x{pw} pool does not fit a {h}x{w} input")
        return oh, ow, (top, bottom), (left, right)

    def compute_output_shape(self, input_shape):
        oh, ow, _, _ = self._geometry(input_shape[0], input_shape[1])
        return (oh, ow, input_shape[2])

    def _windows(self, x, fill):
        xp = backend.get_array_module(x)
        if x.ndim != 4:
            raise ValueError(
                f"{self.name or type(self).__name__} expects input (batch, height, width, channels), "
                f"got {tuple(x.shape)}"
            )
        oh, ow, pad_h, pad_w = self._geometry(x.shape[1], x.shape[2])
        xpad = x
        if self.padding == "same":
            xpad = xp.pad(x, ((0, 0), pad_h, pad_w, (0, 0)), constant_values=fill)
        self._x_shape, self._pad_shape, self._pads = x.shape, xpad.shape, (pad_h, pad_w)
        return windows(xpad, *self.pool_size, self.strides, oh, ow)

    def _unpad(self, gxpad):
        (top, _), (left, _) = self._pads
        h, w = self._x_shape[1:3]
        return gxpad[:, top : top + h, left : left + w, :]

    def get_config(self):
        return {
            "name": self.name,
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }

    def describe(self):
        return f"{self.pool_size[0]}x{self.pool_size[1]}"


class MaxPooling2D(_Pooling2D):
    r"""Max pooling: each output is the largest value of its window.

    Forward:   y[n, oh, ow, c] = max over the window of x     (padding counts as -inf)
    Backward:  the max is the only input that moved the output, so the whole
               gradient goes to it: gx[argmax of the window] += gy, zero elsewhere.
               (When two values tie for the max, the first in row-major order gets it.)

    Both loop over the pool's ph * pw offsets only, each step a whole-batch operation.
    """

    def forward(self, x, training=False):
        xp = backend.get_array_module(x)
        win = self._windows(x, fill=-np.inf)  # (N, OH, OW, ph, pw, C), a view
        ph, pw = self.pool_size
        offsets = [(i, j) for i in range(ph) for j in range(pw)]
        y = win[:, :, :, 0, 0, :].copy()
        for i, j in offsets[1:]:
            xp.maximum(y, win[:, :, :, i, j, :], out=y)
        # where the max came from: the first offset (row-major) that holds it
        taken = xp.zeros(y.shape, dtype=bool)
        self._hits = {}
        for i, j in offsets:
            hit = (win[:, :, :, i, j, :] == y) & ~taken
            taken |= hit
            self._hits[i, j] = hit
        return y

    def backward(self, gy):
        return self._unpad(
            add_windows(
                lambda i, j: gy * self._hits[i, j],
                self._pad_shape,
                self.pool_size,
                gy.shape[1:3],
                self.strides,
                gy.dtype,
            )
        )


class AveragePooling2D(_Pooling2D):
    r"""Average pooling: each output is the mean of its window.

    Forward:   y = (sum of the window) / k, k = the number of real (not padding)
               inputs in the window
    Backward:  every input of the window moved the output by 1/k of itself:
               gx[each input of the window] += gy / k
    """

    def forward(self, x, training=False):
        xp = backend.get_array_module(x)
        win = self._windows(x, fill=0.0)
        total = win.sum(axis=(3, 4))
        if self.padding == "same":  # count the real inputs of each window: pool a padded image of ones
            (top, bottom), (left, right) = self._pads
            ones = xp.pad(
                xp.ones((1,) + x.shape[1:3] + (1,), dtype=x.dtype), ((0, 0), (top, bottom), (left, right), (0, 0))
            )
            counts = windows(ones, *self.pool_size, self.strides, *total.shape[1:3]).sum(axis=(3, 4))
        else:
            counts = xp.asarray(self.pool_size[0] * self.pool_size[1], dtype=x.dtype)
        self._counts = counts
        return total / counts

    def backward(self, gy):
        share = gy / self._counts
        return self._unpad(
            add_windows(lambda i, j: share, self._pad_shape, self.pool_size, gy.shape[1:3], self.strides, gy.dtype)
        )
