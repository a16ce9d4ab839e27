"""Fused CUDA kernels for the GPU path: the same formulas, fewer launches.

On the GPU a small model's step is bound by kernel launches, not arithmetic:
every NumPy-style operation is one launch of a few microseconds. Each kernel here
computes, in one launch, exactly what a few lines of textbook code compute in
several. :mod:`tinynet.fast` wraps them as twins of those textbook methods and
chooses them once for a model on the GPU; ``tests/test_fast.py`` holds each equal
to its textbook method on a real GPU.

``enabled = False`` turns them all off (the textbook code then runs on the GPU too).

| kernel              | replaces (plain xp)                                   | used in            |
|---------------------|-------------------------------------------------------|--------------------|
| bias_relu           | y = maximum(z + b, 0)                                 | Dense + ReLU       |
| relu_backward       | gx = gy * (y > 0)                                     | ReLU.backward      |
| softmax_xent        | log_softmax, loss per row, (softmax - onehot) / N     | sparse CE (logits) |
| adam                | m, v, w updates of Adam (one pass over the buffers)   | Adam.update        |
| rmsprop             | v and w updates of RMSprop (no momentum, not centred) | RMSprop.update     |
| sgd_momentum        | m and w updates of SGD with (Nesterov) momentum       | SGD.update         |
"""

from __future__ import annotations

enabled = True
_cache: dict = {}


SOFTMAX_XENT = r"""
extern "C" __global__ void tinynet_softmax_xent_f32(
        const float* z, const long long* t, float* grad, float* loss, int n, int c) {
    // one thread per row: C is small (10 for MNIST); the row's loss and gradient
    // are computed from one max, one sum of exponentials, and the label
    int i = blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    const float* zi = z + (long long)i * c;
    float* gi = grad + (long long)i * c;
    float m = zi[0];
    for (int j = 1; j < c; ++j) m = fmaxf(m, zi[j]);
    float s = 0.f;
    for (int j = 0; j < c; ++j) s += expf(zi[j] - m);
    float log_s = logf(s);
    long long label = t[i];
    loss[i] = log_s + m - zi[label];                    // -log softmax(z)[label]
    float inv_n = 1.f / (float)n;
    for (int j = 0; j < c; ++j) {
        float p = expf(zi[j] - m) / s;
        gi[j] = (p - (j == label ? 1.f : 0.f)) * inv_n;   // (p - onehot) / N
    }
}
"""

# name -> (in params, out params, body) of an element-wise kernel
ELEMENTWISE = {
    "bias_relu": ("T z, T b", "T y", "y = max(z + b, (T)0)"),
    "relu_backward": ("T y, T gy", "T gx", "gx = y > (T)0 ? gy : (T)0"),
    "adam": (
        "T g, T alpha, T one_minus_b1, T one_minus_b2, T eps",
        "T w, T m, T v",
        "m += (g - m) * one_minus_b1; v += (g * g - v) * one_minus_b2; w -= (m * alpha) / (sqrt(v) + eps);",
    ),
    "rmsprop": (
        "T g, T lr, T rho, T one_minus_rho, T eps",
        "T w, T v",
        "v = rho * v + one_minus_rho * (g * g); w -= (lr * g) / sqrt(v + eps);",
    ),
    "sgd_momentum": (
        "T g, T lr, T mu, bool nesterov",
        "T w, T m",
        "m = mu * m - lr * g; w += nesterov ? mu * m - lr * g : m;",
    ),
}


def _kernel(name):
    """Compile (once) and return a kernel by name."""
    if name not in _cache:
        import cupy as cp

        if name == "softmax_xent":
            _cache[name] = cp.RawKernel(SOFTMAX_XENT, "tinynet_softmax_xent_f32")
        else:
            _cache[name] = cp.ElementwiseKernel(*ELEMENTWISE[name], f"tinynet_{name}")
    return _cache[name]


def bias_relu(z, b):
    """``maximum(z + b, 0)`` in one launch."""
    return _kernel("bias_relu")(z, b)


def relu_backward(y, gy):
    """``gy * (y > 0)`` in one launch."""
    return _kernel("relu_backward")(y, gy)


def adam(w, g, m, v, alpha, beta_1, beta_2, epsilon):
    """Adam's three updates over the whole buffers, in one pass (see Adam.update)."""
    dt = w.dtype.type
    _kernel("adam")(g, dt(alpha), dt(1 - beta_1), dt(1 - beta_2), dt(epsilon), w, m, v)


def rmsprop(w, g, v, lr, rho, epsilon):
    """RMSprop without momentum or centring, in one pass (see RMSprop.update)."""
    dt = w.dtype.type
    _kernel("rmsprop")(g, dt(lr), dt(rho), dt(1 - rho), dt(epsilon), w, v)


def sgd_momentum(w, g, m, lr, momentum, nesterov):
    """SGD with (Nesterov) momentum, in one pass (see SGD.update)."""
    dt = w.dtype.type
    _kernel("sgd_momentum")(g, dt(lr), dt(momentum), bool(nesterov), w, m)


def softmax_xent(z, labels):
    """Sparse softmax cross-entropy of float32 logits z (N, C) and int64 labels (N,).

    Returns (mean loss as a 0-d array, gradient (softmax(z) - onehot) / N), from one
    kernel launch plus one reduction. None when the inputs are not float32/int64
    (the plain code then runs).
    """
    import cupy as cp

    if z.dtype != cp.float32 or z.ndim != 2 or labels.dtype != cp.int64:
        return None
    z = cp.ascontiguousarray(z)
    labels = cp.ascontiguousarray(labels)
    n, c = z.shape
    grad = cp.empty_like(z)
    loss = cp.empty(n, dtype=cp.float32)
    threads = 128
    _kernel("softmax_xent")(
        ((n + threads - 1) // threads,), (threads,), (z, labels, grad, loss, cp.int32(n), cp.int32(c))
    )
    return loss.sum() / n, grad
