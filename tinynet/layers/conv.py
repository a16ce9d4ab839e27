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

Pooling uses the same two functions: ``im2col`` to see every window, ``col2im`` to
send each window's gradient back to its pixels.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend
from .core import KernelLayer, Layer


def im2col(x, kh, kw, stride, out_h, out_w):
    """Every kh x kw window of x (N, H, W, C), as a (N, OH, OW, kh, kw, C) view. No copy.

    Window (oh, ow) starts at pixel (oh * sh, ow * sw); element (i, j) of it is
    pixel (oh * sh + i, ow * sw + j).
    """
    xp = backend.get_array_module(x)
    x = xp.ascontiguousarray(x)
    n, _, _, c = x.shape
    sn, sh, sw, sc = x.strides
    return xp.lib.stride_tricks.as_strided(
        x, shape=(n, out_h, out_w, kh, kw, c), strides=(sn, sh * stride[0], sw * stride[1], sh, sw, sc)
    )


def col2im(gcols, image_shape, stride):
    """The way back: add each window's gradient gcols (N, OH, OW, kh, kw, C) into the
    pixels it came from, in a zero image of ``image_shape`` (N, H, W, C).

    Overlapping windows share pixels, so a pixel sums the gradients of every window
    that holds it. One vectorised slice-add per kernel offset (i, j), none per
    sample or pixel.
    """
    xp = backend.get_array_module(gcols)
    _, out_h, out_w, kh, kw, _ = gcols.shape
    sh, sw = stride
    gx = xp.zeros(image_shape, dtype=gcols.dtype)
    for i in range(kh):
        for j in range(kw):
            gx[:, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw, :] += gcols[:, :, :, i, j, :]
    return gx


def _pair(value, name):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    value = tuple(value)
    if len(value) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in value):
        raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}")
    return tuple(int(v) for v in value)


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


class Window:
    """The geometry convolution and pooling share: window size, strides, padding."""

    def __init__(self, size, strides, padding, what):
        self.size, self.strides = _pair(size, what), _pair(strides, "strides")
        if padding not in ("valid", "same"):
            raise ValueError(f'padding must be "valid" or "same", got {padding!r}')
        self.padding, self.what = padding, what

    def output(self, h, w, owner):
        """(OH, OW, (top, bottom), (left, right)) for an h x w input."""
        (kh, kw), (sh, sw) = self.size, self.strides
        oh, top, bottom = output_size(h, kh, sh, self.padding)
        ow, left, right = output_size(w, kw, sw, self.padding)
        if oh < 1 or ow < 1:
            raise ValueError(
                f"{owner}: a {kh}x{kw} {self.what} does not fit a {h}x{w} input with padding {self.padding!r}"
            )
        return oh, ow, (top, bottom), (left, right)

    def pad(self, x, fill=0.0, owner="layer"):
        """x with the "same" padding added (x itself for "valid"), and the windows' (OH, OW)."""
        oh, ow, pad_h, pad_w = self.output(x.shape[1], x.shape[2], owner)
        if self.padding == "same":
            x = backend.get_array_module(x).pad(x, ((0, 0), pad_h, pad_w, (0, 0)), constant_values=fill)
        return x, oh, ow

    def crop(self, gxpad, x_shape):
        """Drop the padding again: the gradient of the unpadded input."""
        _, _, (top, _), (left, _) = self.output(x_shape[1], x_shape[2], "layer")
        return gxpad[:, top : top + x_shape[1], left : left + x_shape[2], :]

    def config(self, size_name):
        return {size_name: list(self.size), "strides": list(self.strides), "padding": self.padding}


class Conv2D(KernelLayer):
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
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        name, input_shape: (and those of :class:`~tinynet.layers.core.KernelLayer`: activation, use_bias,
        initializers (Glorot's fans include kh * kw), regularizer)
    """

    formula = "y = act(im2col(x) Wm + b)  |  gW = cols^T gz, gb = sum gz, gx = col2im(gz Wm^T)"

    def __init__(self, filters, kernel_size, strides=1, padding="valid", activation=None, **kwargs):
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(f"Conv2D filters must be a positive integer, got {filters!r}")
        super().__init__(activation, **kwargs)
        self.filters = int(filters)
        self.window = Window(kernel_size, strides, padding, "kernel_size")

    def build(self, input_shape, rng=None):
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.name or 'Conv2D'} expects samples of shape (height, width, channels), got {tuple(input_shape)}"
            )
        self.build_kernel(self.window.size + (int(input_shape[2]), self.filters), self.filters, rng)
        return super().build(input_shape, rng)

    def compute_output_shape(self, input_shape):
        oh, ow, _, _ = self.window.output(input_shape[0], input_shape[1], self.name or "Conv2D")
        return (oh, ow, self.filters)

    def forward(self, x, training=False):
        kh, kw, c, f = self.kernel.value.shape
        xpad, oh, ow = self.window.pad(x, owner=self.name or "Conv2D")
        n = x.shape[0]
        # im2col: one row per output pixel, holding the patch it sees
        self._cols = im2col(xpad, kh, kw, self.window.strides, oh, ow).reshape(n * oh * ow, kh * kw * c)
        self._x_shape, self._pad_shape = x.shape, xpad.shape
        z = self._cols @ self.kernel.value.reshape(kh * kw * c, f)  # z = cols Wm
        if self.use_bias:
            z = z + self.bias.value  #   + b
        return self.activation.forward(z.reshape(n, oh, ow, f), training)

    def backward(self, gy):
        gz = self.activation.backward(gy)
        kh, kw, c, f = self.kernel.value.shape
        n, oh, ow, _ = gz.shape
        gz = gz.reshape(n * oh * ow, f)
        self.kernel.grad = (self._cols.T @ gz).reshape(kh, kw, c, f)  # gW = cols^T gz
        if self.use_bias:
            self.bias.grad = gz.sum(axis=0)  # gb = sum gz
        gcols = (gz @ self.kernel.value.reshape(kh * kw * c, f).T).reshape(n, oh, ow, kh, kw, c)  # gz Wm^T
        return self.window.crop(col2im(gcols, self._pad_shape, self.window.strides), self._x_shape)

    def keep_patches(self, cols, x_shape, pad_shape):
        """Keep what ``backward`` needs of a forward computed elsewhere (a fast twin): the
        patches as rows (N * OH * OW, kh * kw * C), x's shape and the padded input's shape."""
        self._cols, self._x_shape, self._pad_shape = cols, tuple(x_shape), tuple(pad_shape)

    @property
    def patches(self):
        """(the patches as rows, x's shape, the padded shape) that ``forward`` kept for ``backward``."""
        return self._cols, self._x_shape, self._pad_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, **self.window.config("kernel_size")}


class Pooling2D(Layer):
    """What the pooling layers share: their window (no parameters)."""

    def __init__(self, pool_size=2, strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.window = Window(pool_size, strides if strides is not None else pool_size, padding, "pool_size")

    def compute_output_shape(self, input_shape):
        oh, ow, _, _ = self.window.output(input_shape[0], input_shape[1], self.name or type(self).__name__)
        return (oh, ow, input_shape[2])

    def _windows(self, x, fill):
        xpad, oh, ow = self.window.pad(x, fill, self.name or type(self).__name__)
        self._x_shape, self._pad_shape = x.shape, xpad.shape
        return im2col(xpad, *self.window.size, self.window.strides, oh, ow)  # (N, OH, OW, ph, pw, C)

    def _to_pixels(self, gcols):
        return self.window.crop(col2im(gcols, self._pad_shape, self.window.strides), self._x_shape)

    def get_config(self):
        return {"name": self.name, **self.window.config("pool_size")}

    def describe(self):
        return "{}x{}".format(*self.window.size)


class MaxPooling2D(Pooling2D):
    r"""Max pooling: each output is the largest value of its window.

    Forward:   y[n, oh, ow, c] = max over the window of x     (padding counts as -inf)
    Backward:  the max is the only input that moved the output, so the whole
               gradient goes to it: gx[argmax of the window] += gy, zero elsewhere.
               (When two values tie for the max, the first in row-major order gets it.)
    """

    formula = "y = max of each window  |  gx = gy at the window's argmax, 0 elsewhere"

    def forward(self, x, training=False):
        xp = backend.get_array_module(x)
        win = self._windows(x, fill=-np.inf)
        n, oh, ow, ph, pw, c = win.shape
        flat = win.reshape(n, oh, ow, ph * pw, c)
        first = flat.argmax(axis=3)  # where each max is: the first of a tie
        self._mask = (xp.arange(ph * pw).reshape(1, 1, 1, -1, 1) == first[:, :, :, None, :]).reshape(win.shape)
        return xp.take_along_axis(flat, first[:, :, :, None, :], axis=3)[:, :, :, 0, :]

    def backward(self, gy):
        return self._to_pixels(gy[:, :, :, None, None, :] * self._mask)


class AveragePooling2D(Pooling2D):
    r"""Average pooling: each output is the mean of its window.

    Forward:   y = (sum of the window) / k, k = the number of real (not padding)
               inputs in the window
    Backward:  every input of the window moved the output by 1/k of itself:
               gx[each input of the window] += gy / k
    """

    formula = "y = mean of each window  |  gx = gy / k to each of its k inputs"

    def forward(self, x, training=False):
        xp = backend.get_array_module(x)
        win = self._windows(x, fill=0.0)
        # k: how many real pixels each window holds (fewer at a "same" border): pool an image of ones
        ones, _, _ = self.window.pad(xp.ones((1,) + x.shape[1:3] + (1,), dtype=x.dtype))
        self._counts = im2col(ones, *self.window.size, self.window.strides, *win.shape[1:3]).sum(axis=(3, 4))
        return win.sum(axis=(3, 4)) / self._counts

    def backward(self, gy):
        share = gy / self._counts
        return self._to_pixels(
            backend.get_array_module(gy).broadcast_to(
                share[:, :, :, None, None, :], share.shape[:3] + self.window.size + share.shape[3:]
            )
        )


class GlobalAveragePooling2D(Layer):
    r"""The mean of each channel over the whole image: (N, H, W, C) -> (N, C).

    Forward:   y[n, c] = 1/(H W) sum_{i, j} x[n, i, j, c]
    Backward:  every pixel moved the mean by 1/(H W) of itself:
               gx[n, i, j, c] = gy[n, c] / (H W)
    """

    formula = "y = mean over H, W of each channel  |  gx = gy / (H W) to every pixel"

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.name or 'GlobalAveragePooling2D'} expects (height, width, channels), got {input_shape}"
            )
        return (input_shape[2],)

    def forward(self, x, training=False):
        self._x_shape = x.shape
        return x.mean(axis=(1, 2))

    def backward(self, gy):
        n, h, w, c = self._x_shape
        share = gy / (h * w)
        return backend.get_array_module(gy).broadcast_to(share[:, None, None, :], (n, h, w, c)).copy()
