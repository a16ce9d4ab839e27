r"""Fused CUDA kernels for the GPU path: the same formulas, fewer launches.

On the GPU a small model's step is bound by kernel launches, not arithmetic:
every NumPy-style operation is one launch of a few microseconds. Each kernel here
computes, in one launch, exactly what a few lines of textbook code compute in
several. :mod:`tinynet.fast` wraps them as twins of those textbook methods and
chooses them once for a model on the GPU.

Each kernel is a complete CUDA C source (``SOURCES``), compiled by NVRTC through
``cupy.RawKernel`` the first time it runs: what you read below is all the GPU
runs, with no template filled in behind it. The kernels work on float32 only; for
any other dtype the functions return None and the textbook code runs instead.

How they are proven without a GPU (``tests/test_kernels_compile.py``,
``tests/cupy_standin.py``): every source is compiled by NVRTC for sm_80 and sm_90
on every commit, and the tests on the CuPy stand-in run these very sources, built
for the CPU, against the textbook code (NaN, large logits, whole training runs).

``enabled = False`` turns them all off (the textbook code then runs on the GPU too).

| kernel        | replaces (plain xp)                                   | used in            |
|---------------|-------------------------------------------------------|--------------------|
| bias_relu     | y = maximum(z + b, 0)                                 | Dense + ReLU       |
| relu_backward | gx = gy * (y > 0)                                     | ReLU.backward      |
| softmax_xent  | log_softmax, loss per row, (softmax - onehot) / N     | sparse CE (logits) |
| adam          | m, v, w updates of Adam (one pass over the buffers)   | Adam.update        |
| rmsprop       | v and w updates of RMSprop (no momentum, not centred) | RMSprop.update     |
| sgd_momentum  | m and w updates of SGD with (Nesterov) momentum       | SGD.update         |
"""

from __future__ import annotations

import numpy as np

enabled = True
THREADS = 256  # threads per block
_cache: dict = {}

# name -> complete CUDA C source; the kernel inside is called tinynet_<name>.
# One thread per element (per row for softmax_xent); ``n`` elements in all.
SOURCES = {
    "bias_relu": r"""
extern "C" __global__ void tinynet_bias_relu(
        const float* z, const float* b, float* y, long long n, int c) {
    // y = maximum(z + b, 0) for z (N, C) and b (C,): element i has column i % c.
    // NaN passes through, as in np.maximum (fmaxf(v, 0) would turn it into 0).
    long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    float v = z[i] + b[i % c];
    y[i] = (v > 0.f || isnan(v)) ? v : 0.f;
}
""",
    "relu_backward": r"""
extern "C" __global__ void tinynet_relu_backward(
        const float* y, const float* gy, float* gx, long long n) {
    // gx = gy * (y > 0): a multiplication, as in the textbook, so that a NaN or
    // infinite gy gives NaN where y <= 0 too (0 * NaN = NaN), never a silent 0.
    long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    gx[i] = gy[i] * (y[i] > 0.f ? 1.f : 0.f);
}
""",
    "softmax_xent": r"""
extern "C" __global__ void tinynet_softmax_xent(
        const float* z, const long long* t, float* grad, float* loss, int n, int c) {
    // One thread per row (C is small: 10 for MNIST). m = max z, s = sum exp(z - m):
    //   loss = -log softmax(z)[t] = log s - (z[t] - m)
    //   grad = (softmax(z) - onehot(t)) / N
    // z[t] - m is computed first: for logits near 1e4, log s + m - z[t] would lose
    // the small log s in the large m. A NaN logit makes s, the loss and the row's
    // gradient NaN, as in the textbook code.
    int i = blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    const float* zi = z + (long long)i * c;
    float* gi = grad + (long long)i * c;
    float m = zi[0];
    for (int j = 1; j < c; ++j) m = fmaxf(m, zi[j]);
    float s = 0.f;
    for (int j = 0; j < c; ++j) s += expf(zi[j] - m);
    long long label = t[i];
    loss[i] = logf(s) - (zi[label] - m);
    float inv_n = 1.f / (float)n;
    for (int j = 0; j < c; ++j) {
        float p = expf(zi[j] - m) / s;
        gi[j] = (p - (j == label ? 1.f : 0.f)) * inv_n;
    }
}
""",
    "adam": r"""
extern "C" __global__ void tinynet_adam(
        float* w, const float* g, float* m, float* v, float alpha,
        float one_minus_b1, float one_minus_b2, float eps, long long n) {
    // Adam.update: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= alpha m / (sqrt(v) + eps)
    long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i];
    float mi = m[i] + (gi - m[i]) * one_minus_b1;
    float vi = v[i] + (gi * gi - v[i]) * one_minus_b2;
    m[i] = mi;
    v[i] = vi;
    w[i] -= alpha * mi / (sqrtf(vi) + eps);
}
""",
    "rmsprop": r"""
extern "C" __global__ void tinynet_rmsprop(
        float* w, const float* g, float* v, float lr, float rho,
        float one_minus_rho, float eps, long long n) {
    // RMSprop.update (not centred, no momentum): v = rho v + (1 - rho) g^2; w -= lr g / sqrt(v + eps)
    long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i];
    float vi = rho * v[i] + one_minus_rho * (gi * gi);
    v[i] = vi;
    w[i] -= lr * gi / sqrtf(vi + eps);
}
""",
    "sgd_momentum": r"""
extern "C" __global__ void tinynet_sgd_momentum(
        float* w, const float* g, float* m, float lr, float mu, int nesterov, long long n) {
    // SGD.update with momentum: m = mu m - lr g; w += m (or, Nesterov, w += mu m - lr g)
    long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i];
    float mi = mu * m[i] - lr * gi;
    m[i] = mi;
    w[i] += nesterov ? mu * mi - lr * gi : mi;
}
""",
}


def _kernel(name):
    """Compile (once, by NVRTC through CuPy) and return the kernel ``tinynet_<name>``."""
    if name not in _cache:
        import cupy as cp

        _cache[name] = cp.RawKernel(SOURCES[name], f"tinynet_{name}")
    return _cache[name]


def _launch(name, n, *args):
    """Run kernel ``name`` with one thread for each of ``n`` items (a block of THREADS threads
    for each THREADS items). Scalars must be NumPy scalars of the C parameter's type: CuPy
    passes a Python float as a double and a Python int as a long long."""
    if n > 0:
        _kernel(name)(((n + THREADS - 1) // THREADS,), (THREADS,), args)


def _float32(*arrays) -> bool:
    return all(a.dtype == np.float32 for a in arrays)


def bias_relu(z, b):
    """``maximum(z + b, 0)`` in one launch, for z (N, C) and b (C,); None unless float32."""
    import cupy as cp

    if not _float32(z, b) or z.ndim != 2 or b.shape != z.shape[1:]:
        return None
    z, b = cp.ascontiguousarray(z), cp.ascontiguousarray(b)
    y = cp.empty_like(z)
    _launch("bias_relu", z.size, z, b, y, np.int64(z.size), np.int32(z.shape[1]))
    return y


def relu_backward(y, gy):
    """``gy * (y > 0)`` in one launch; None unless float32 arrays of one shape."""
    import cupy as cp

    if not _float32(y, gy) or y.shape != gy.shape:
        return None
    y, gy = cp.ascontiguousarray(y), cp.ascontiguousarray(gy)
    gx = cp.empty_like(gy)
    _launch("relu_backward", gx.size, y, gy, gx, np.int64(gx.size))
    return gx


def _in_place(*arrays) -> bool:
    """Whether an update can run in place: float32, one shape, contiguous."""
    return _float32(*arrays) and all(a.shape == arrays[0].shape and a.flags.c_contiguous for a in arrays)


def adam(w, g, m, v, alpha, beta_1, beta_2, epsilon) -> bool:
    """Adam's three updates over the whole buffers, in one pass (see Adam.update).
    False (nothing done) unless every buffer is float32 and contiguous."""
    if not _in_place(w, g, m, v):
        return False
    f = np.float32
    _launch("adam", w.size, w, g, m, v, f(alpha), f(1 - beta_1), f(1 - beta_2), f(epsilon), np.int64(w.size))
    return True


def rmsprop(w, g, v, lr, rho, epsilon) -> bool:
    """RMSprop without momentum or centring, in one pass (see RMSprop.update); False if not float32."""
    if not _in_place(w, g, v):
        return False
    f = np.float32
    _launch("rmsprop", w.size, w, g, v, f(lr), f(rho), f(1 - rho), f(epsilon), np.int64(w.size))
    return True


def sgd_momentum(w, g, m, lr, momentum, nesterov) -> bool:
    """SGD with (Nesterov) momentum, in one pass (see SGD.update); False if not float32."""
    if not _in_place(w, g, m):
        return False
    f = np.float32
    _launch("sgd_momentum", w.size, w, g, m, f(lr), f(momentum), np.int32(bool(nesterov)), np.int64(w.size))
    return True


def softmax_xent(z, labels):
    """Sparse softmax cross-entropy of float32 logits z (N, C) and int64 labels (N,).

    Returns (mean loss as a 0-d array, gradient (softmax(z) - onehot) / N), from one
    kernel launch plus one reduction. None when the inputs are not float32/int64
    (the plain code then runs).
    """
    import cupy as cp

    if z.dtype != np.float32 or z.ndim != 2 or labels.dtype != np.int64 or labels.shape != z.shape[:1]:
        return None
    z = cp.ascontiguousarray(z)
    labels = cp.ascontiguousarray(labels)
    n, c = z.shape
    grad = cp.empty_like(z)
    loss = cp.empty(n, dtype=np.float32)
    _launch("softmax_xent", n, z, labels, grad, loss, np.int32(n), np.int32(c))
    return loss.sum() / n, grad
