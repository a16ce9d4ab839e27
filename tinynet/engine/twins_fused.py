"""Fast twins for the GPU: each textbook method as one of tinynet's CUDA kernels.

Each function computes what one textbook method computes (its docstring says which), and
falls back to that method where its kernel does not apply (not float32, sample weights).
They are bound in place of the textbook methods by :mod:`tinynet.engine.twins`, whose
table lists every twin; the kernels are in :mod:`tinynet.engine.kernels`.
"""

from __future__ import annotations

import numpy as np

from ..layers import Conv2D, Dense, ReLU
from ..losses import SparseCategoricalCrossentropy
from ..optimizers import SGD, Adam, RMSprop, adam_step_size
from . import kernels
from .twins_inplace import kept_state, maxpool_backward_tiled, maxpool_forward_tiled


def dense_relu_forward_fused(self, x, training=False):
    """Dense.forward with a ReLU: y = max(x W + b, 0), the bias and ReLU in one kernel
    (the textbook method where the kernel does not apply: not float32)."""
    y = kernels.bias_relu(x @ self.kernel.value, self.bias.value)
    if y is None:
        return Dense.forward(self, x, training)
    self.keep_input(x)
    return self.activation.keep_output(y)


def conv2d_forward_fused(self, x, training=False):
    """Conv2D.forward on the GPU: the patches copied out by one kernel (the padding read as
    zeros, no padded copy of x), the same product, the bias and a ReLU in one kernel."""
    kh, kw, c, f = self.kernel.value.shape
    n, h, w, _ = x.shape
    oh, ow, (top, bottom), (left, right) = self.window.output(h, w, self.name or "Conv2D")
    cols = kernels.im2col(x, kh, kw, self.window.strides, oh, ow, top, left)
    if cols is None:
        return Conv2D.forward(self, x, training)
    self.keep_patches(cols, x.shape, (n, h + top + bottom, w + left + right, c))
    z = cols @ self.kernel.value.reshape(kh * kw * c, f)
    y = kernels.bias_relu(z, self.bias.value) if type(self.activation) is ReLU and self.use_bias else None
    if y is None:
        z = z + self.bias.value if self.use_bias else z
        return self.activation.forward(z.reshape(n, oh, ow, f), training)
    return self.activation.keep_output(y.reshape(n, oh, ow, f))


def conv2d_backward_fused(self, gy):
    """Conv2D.backward on the GPU: the same products; the patches' gradients added back
    into gx by one kernel (col2im and the crop in one, the sums in col2im's order)."""
    if gy.dtype != np.float32:
        return Conv2D.backward(self, gy)
    gz = self.activation.backward(gy)
    kh, kw, c, f = self.kernel.value.shape
    n, oh, ow, _ = gz.shape
    gz = gz.reshape(n * oh * ow, f)
    cols, x_shape, _ = self.patches
    self.kernel.grad = (cols.T @ gz).reshape(kh, kw, c, f)
    if self.use_bias:
        self.bias.grad = gz.sum(axis=0)
    gcols = gz @ self.kernel.value.reshape(kh * kw * c, f).T
    _, _, (top, _), (left, _) = self.window.output(*x_shape[1:3], self.name or "Conv2D")
    return kernels.col2im(gcols, x_shape, kh, kw, self.window.strides, oh, ow, top, left)


def maxpool_forward_fused(self, x, training=False):
    """MaxPooling2D.forward on the GPU when the windows tile x: the max and where it is, in one kernel."""
    done = kernels.maxpool_forward(x, *self.window.size)
    if done is None:
        return maxpool_forward_tiled(self, x, training)
    y, argmax = done
    kept_state(self).update(argmax=argmax, x_shape=x.shape)
    return y


def maxpool_backward_fused(self, gy):
    """MaxPooling2D.backward for :func:`maxpool_forward_fused`: gy to each window's max, in one kernel."""
    kept = kept_state(self)
    gx = kernels.maxpool_backward(gy, kept.get("argmax"), kept["x_shape"], *self.window.size)
    return maxpool_backward_tiled(self, gy) if gx is None else gx


def relu_backward_fused(self, gy):
    """ReLU.backward, gx = gy * [y > 0], in one kernel (the textbook method where it does not apply)."""
    gx = kernels.relu_backward(self.output, gy)
    return ReLU.backward(self, gy) if gx is None else gx


def sparse_crossentropy_forward_fused(self, y_pred, y_true, sample_weight=None):
    """SparseCategoricalCrossentropy(from_logits=True).forward: the loss and its gradient
    (softmax(z) - onehot) / N from one kernel (the textbook code where it does not apply)."""
    fused = None if sample_weight is not None else kernels.softmax_xent(y_pred, y_true.reshape(-1))
    if fused is None:
        kept_state(self)["grad"] = None
        return SparseCategoricalCrossentropy.forward(self, y_pred, y_true, sample_weight)
    loss, kept_state(self)["grad"] = fused
    return loss


def sparse_crossentropy_backward_fused(self):
    grad = kept_state(self).get("grad")
    if grad is None:
        return SparseCategoricalCrossentropy.backward(self)
    return grad


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
