r"""Fused CUDA kernels for the GPU path: the same formulas, fewer launches.

On the GPU a small model's step is bound by kernel launches, not arithmetic:
every NumPy-style operation is one launch of a few microseconds. Each kernel here
computes, in one launch, exactly what a few lines of textbook code compute in
several. :mod:`tinynet.engine.twins` wraps them as twins of those textbook methods and
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
| im2col        | cols = im2col(pad(x)) copied out, the padding as zeros | Conv2D.forward    |
| col2im        | gx = crop(col2im(gcols)): each pixel sums its patches | Conv2D.backward    |
| maxpool_forward | y = max of each window, and where it is (argmax)    | MaxPooling2D       |
| maxpool_backward | gx = gy at each window's argmax, 0 elsewhere       | MaxPooling2D       |

The kernels of a captured CUDA graph (:mod:`tinynet.engine.graphs`). Inside stream capture
CuPy refuses cuBLAS, so the graph's matrix products are tinynet's own ``gemm``:

| kernel        | computes                                              | used in            |
|---------------|-------------------------------------------------------|--------------------|
| gather_rows   | xb = x[order[start:start+B]], yb = y[the same rows]   | a step's batch     |
| gemm          | C = A B (one split of the sum over k), then ReLU or a ReLU mask | Dense, both ways |
| sum_splits    | C = sum of the splits' partial products, then gemm's epilogue | Dense, long k |
| sparse_hits   | hit = (argmax z == t), one per row                    | "accuracy"         |
| adam_at_step  | adam, its step size read from device memory           | Adam.update        |
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
    "im2col": r"""
extern "C" __global__ void tinynet_im2col(
        const float* x, float* cols, int n, int h, int w, int c, int kh, int kw,
        int sh, int sw, int oh, int ow, int top, int left) {
    // cols[(s, p, q), (i, j, ch)] = xpad[s, p sh + i, q sw + j, ch], where xpad is x
    // (n, h, w, c) with `top` rows and `left` columns of zeros before it (padding "same"):
    // row (s, p, q) of cols is the patch output pixel (p, q) of sample s sees. One thread
    // per element of cols (n oh ow, kh kw c), neighbours along a patch's channels.
    long long e = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    long long patch = (long long)kh * kw * c;
    if (e >= (long long)n * oh * ow * patch) return;
    long long row = e / patch;
    int k = (int)(e % patch);
    int ch = k % c, j = (k / c) % kw, i = k / (c * kw);
    int q = (int)(row % ow), p = (int)((row / ow) % oh), s = (int)(row / ((long long)ow * oh));
    int y = p * sh + i - top, xx = q * sw + j - left;
    cols[e] = (y >= 0 && y < h && xx >= 0 && xx < w) ? x[(((long long)s * h + y) * w + xx) * c + ch] : 0.f;
}
""",
    "col2im": r"""
extern "C" __global__ void tinynet_col2im(
        const float* gcols, float* gx, int n, int h, int w, int c, int kh, int kw,
        int sh, int sw, int oh, int ow, int top, int left) {
    // The way back from im2col: gx[s, y, x, ch] = the sum of gcols over every patch element
    // that was pixel (y, x) (padding dropped), adding the kernel offsets (i, j) in the
    // order col2im adds them, so the sums are bitwise the same. One thread per pixel of gx:
    // each gathers its own sum, so no two threads write one place.
    long long e = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (e >= (long long)n * h * w * c) return;
    int ch = (int)(e % c), xx = (int)((e / c) % w), y = (int)((e / ((long long)c * w)) % h);
    long long s = e / ((long long)c * w * h);
    float sum = 0.f;
    for (int i = 0; i < kh; ++i) {
        int py = y + top - i;  // = p sh for the output row p whose patch holds this pixel at offset i
        if (py < 0 || py % sh != 0 || py / sh >= oh) continue;
        for (int j = 0; j < kw; ++j) {
            int qx = xx + left - j;
            if (qx < 0 || qx % sw != 0 || qx / sw >= ow) continue;
            long long row = (s * oh + py / sh) * ow + qx / sw;
            sum += gcols[row * ((long long)kh * kw * c) + ((long long)i * kw + j) * c + ch];
        }
    }
    gx[e] = sum;
}
""",
    "maxpool_forward": r"""
extern "C" __global__ void tinynet_maxpool_forward(
        const float* x, float* y, int* arg, int n, int h, int w, int c, int ph, int pw, int oh, int ow) {
    // Windows that tile x (strides = pool size, no padding): y[s, p, q, ch] = the largest of
    // window (p, q), and arg = its place i pw + j in the window: the first of a tie in
    // row-major order, and the first NaN if there is one (as argmax; the max is then NaN).
    long long e = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (e >= (long long)n * oh * ow * c) return;
    int ch = (int)(e % c), q = (int)((e / c) % ow), p = (int)((e / ((long long)c * ow)) % oh);
    long long s = e / ((long long)c * ow * oh);
    float best = 0.f;
    int where = -1;
    for (int i = 0; i < ph; ++i)
        for (int j = 0; j < pw; ++j) {
            float v = x[((s * h + p * ph + i) * w + q * pw + j) * c + ch];
            bool first_nan = isnan(v) && !(where >= 0 && isnan(best));
            if (where < 0 || first_nan || (!isnan(best) && v > best)) {
                best = v;
                where = i * pw + j;
            }
        }
    y[e] = best;
    arg[e] = where;
}
""",
    "maxpool_backward": r"""
extern "C" __global__ void tinynet_maxpool_backward(
        const float* gy, const int* arg, float* gx, int n, int h, int w, int c, int ph, int pw, int oh, int ow) {
    // gx = gy at each window's argmax, times 0 elsewhere (a product, so that a NaN gy gives
    // NaN in its whole window, as gy * mask); 0 for pixels no window covers. One thread per
    // pixel of gx (n, h, w, c).
    long long e = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (e >= (long long)n * h * w * c) return;
    int ch = (int)(e % c), xx = (int)((e / c) % w), y = (int)((e / ((long long)c * w)) % h);
    long long s = e / ((long long)c * w * h);
    int p = y / ph, q = xx / pw;
    if (p >= oh || q >= ow) {
        gx[e] = 0.f;
        return;
    }
    long long out = ((s * oh + p) * ow + q) * c + ch;
    gx[e] = 0.f + gy[out] * (arg[out] == (y % ph) * pw + xx % pw ? 1.f : 0.f);  // 0 + : +0, as col2im's sum
}
""",
    "gather_rows": r"""
extern "C" __global__ void tinynet_gather_rows(
        const float* x, const long long* y, const long long* order, float* xb, long long* yb,
        long long start, int rows, int cols) {
    // One batch of the epoch's order: xb[r, :] = x[order[start + r], :] and
    // yb[r] = y[order[start + r]], for r < rows. One thread per element of xb.
    long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= (long long)rows * cols) return;
    int r = (int)(i / cols), c = (int)(i % cols);
    long long source = order[start + r];
    xb[i] = x[source * cols + c];
    if (c == 0) yb[r] = y[source];
}
""",
    "gemm": r"""
#define TILE 32  // a block computes a TILE x TILE tile of C; 256 threads, 4 outputs each
extern "C" __global__ void tinynet_gemm(
        const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C, int M, int N, int K,
        long long a_m, long long a_k, int a_rows, int a_cols, long long b_k, long long b_n,
        int k_per_split, int epilogue, const float* R) {
    // C = A B, with A (M, K) and B (K, N) read through strides, so that A or B may be
    // a transpose: A(m, k) = A[m a_m + k a_k], B(k, n) = B[k b_k + n b_n].
    // A is padded with ones: A(m, k) = 1 where m >= a_rows or k >= a_cols. A Dense layer's
    // kernel W and bias b lie one after the other in the flat buffer, as the matrix [W; b],
    // so [x, 1] [W; b] = x W + b (a column of ones), and [x, 1]^T gz = [gW; gb] (gb = 1^T gz:
    // a row of ones).
    // The sum over k may be split: block group s sums k in [s k_per_split, (s+1) k_per_split)
    // and writes C + s M N (sum_splits adds the splits). C is row-major (M, N).
    // epilogue 0: C = A B; 1: C = max(A B, 0), NaN passing; 2: C = A B * (R > 0), R (M, N).
    __shared__ float As[TILE][TILE + 1];  // As[k][m]; the +1 keeps a column's reads off one bank
    __shared__ float Bs[TILE][TILE + 1];  // Bs[k][n]
    int tiles_m = (M + TILE - 1) / TILE, tiles_n = (N + TILE - 1) / TILE;
    int tile = blockIdx.x % (tiles_m * tiles_n), split = blockIdx.x / (tiles_m * tiles_n);
    int m0 = (tile / tiles_n) * TILE, n0 = (tile % tiles_n) * TILE;
    int k_begin = split * k_per_split;
    int k_end = min(K, k_begin + k_per_split);
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;  // this thread: rows ty, ty + 16; columns tx, tx + 16
    float acc[2][2] = {{0.f, 0.f}, {0.f, 0.f}};
    for (int k0 = k_begin; k0 < k_end; k0 += TILE) {
        // Each thread copies 4 elements of A's tile and 4 of B's into shared memory: all 8
        // read first, then stored, so that the 8 reads from memory are in flight together.
        // Neighbouring threads read neighbouring addresses: along k where A's rows are
        // contiguous (a_k == 1), along m where A is a transpose; B likewise.
        float a[4], b[4];
        #pragma unroll
        for (int r = 0; r < 4; ++r) {
            int e = threadIdx.x + 256 * r;
            int kk = a_k == 1 ? e % TILE : e / TILE, mm = a_k == 1 ? e / TILE : e % TILE;
            int m = m0 + mm, k = k0 + kk;
            a[r] = 0.f;
            if (m < M && k < k_end) a[r] = (m < a_rows && k < a_cols) ? A[m * a_m + k * a_k] : 1.f;
            int kb = b_n == 1 ? e / TILE : e % TILE, nb = b_n == 1 ? e % TILE : e / TILE;
            int n = n0 + nb;
            k = k0 + kb;
            b[r] = (n < N && k < k_end) ? B[k * b_k + n * b_n] : 0.f;
        }
        #pragma unroll
        for (int r = 0; r < 4; ++r) {
            int e = threadIdx.x + 256 * r;
            As[a_k == 1 ? e % TILE : e / TILE][a_k == 1 ? e / TILE : e % TILE] = a[r];
            Bs[b_n == 1 ? e / TILE : e % TILE][b_n == 1 ? e % TILE : e / TILE] = b[r];
        }
        __syncthreads();
        for (int kk = 0; kk < TILE; ++kk) {
            float a0 = As[kk][ty], a1 = As[kk][ty + 16], b0 = Bs[kk][tx], b1 = Bs[kk][tx + 16];
            acc[0][0] += a0 * b0;
            acc[0][1] += a0 * b1;
            acc[1][0] += a1 * b0;
            acc[1][1] += a1 * b1;
        }
        __syncthreads();
    }
    float* out = C + (long long)split * M * N;
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) {
            int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            if (m >= M || n >= N) continue;
            float v = acc[i][j];
            if (epilogue == 1) v = (v > 0.f || isnan(v)) ? v : 0.f;
            if (epilogue == 2) v = v * (R[(long long)m * N + n] > 0.f ? 1.f : 0.f);
            out[(long long)m * N + n] = v;
        }
}
""",
    "sum_splits": r"""
extern "C" __global__ void tinynet_sum_splits(
        const float* partial, float* c, long long n, int splits, int epilogue, const float* R) {
    // c = the sum of the splits' partial products (splits arrays of n, one after the
    // other), then gemm's epilogue: 1: max(c, 0), NaN passing; 2: c * (R > 0).
    long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    float s = 0.f;
    for (int k = 0; k < splits; ++k) s += partial[k * n + i];
    if (epilogue == 1 && !(s > 0.f || isnan(s))) s = 0.f;
    if (epilogue == 2) s = s * (R[i] > 0.f ? 1.f : 0.f);
    c[i] = s;
}
""",
    "sparse_hits": r"""
extern "C" __global__ void tinynet_sparse_hits(const float* z, const long long* t, float* hit, int n, int c) {
    // hit[i] = 1 when the largest of row i's c scores is at its label t[i] (the first
    // largest, as argmax), else 0. One thread per row.
    int i = blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    const float* zi = z + (long long)i * c;
    int best = 0;
    for (int j = 1; j < c; ++j)
        if (zi[j] > zi[best]) best = j;
    hit[i] = best == t[i] ? 1.f : 0.f;
}
""",
    "adam_at_step": r"""
extern "C" __global__ void tinynet_adam_at_step(
        float* w, const float* g, float* m, float* v, const float* alpha,
        float one_minus_b1, float one_minus_b2, float eps, long long n) {
    // adam, with the step size alpha = lr sqrt(1 - b2^t) / (1 - b1^t) read from device
    // memory: a captured graph replays the same launch at every step t.
    long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i];
    float mi = m[i] + (gi - m[i]) * one_minus_b1;
    float vi = v[i] + (gi * gi - v[i]) * one_minus_b2;
    m[i] = mi;
    v[i] = vi;
    w[i] -= alpha[0] * mi / (sqrtf(vi) + eps);
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


def _geometry(n, h, w, c, kh, kw, strides, oh, ow, top, left):
    """The int32 scalars im2col, col2im and the pooling kernels take, in their order."""
    return tuple(np.int32(v) for v in (n, h, w, c, kh, kw, *strides, oh, ow, top, left))


def im2col(x, kh, kw, strides, oh, ow, top, left):
    """The patches of x (N, H, W, C) as one (N OH OW, kh kw C) array, the "same" padding
    (``top`` rows, ``left`` columns before) read as zeros; None unless float32."""
    import cupy as cp

    if x.dtype != np.float32 or x.ndim != 4:
        return None
    x = cp.ascontiguousarray(x)
    n, h, w, c = x.shape
    cols = cp.empty((n * oh * ow, kh * kw * c), dtype=np.float32)
    _launch("im2col", cols.size, x, cols, *_geometry(n, h, w, c, kh, kw, strides, oh, ow, top, left))
    return cols


def col2im(gcols, image_shape, kh, kw, strides, oh, ow, top, left):
    """gx (``image_shape``, the unpadded input's) from the patches' gradients gcols
    (N OH OW, kh kw C): crop(col2im(gcols)) of tinynet.layers.conv, bitwise; None unless float32."""
    import cupy as cp

    if gcols.dtype != np.float32:
        return None
    gcols = cp.ascontiguousarray(gcols)
    gx = cp.empty(image_shape, dtype=np.float32)
    _launch("col2im", gx.size, gcols, gx, *_geometry(*image_shape, kh, kw, strides, oh, ow, top, left))
    return gx


def maxpool_forward(x, ph, pw):
    """(y, arg) of max pooling over ph x pw windows that tile x (N, H, W, C); None unless float32."""
    import cupy as cp

    if x.dtype != np.float32 or x.ndim != 4:
        return None
    x = cp.ascontiguousarray(x)
    n, h, w, c = x.shape
    oh, ow = h // ph, w // pw
    y, arg = cp.empty((n, oh, ow, c), np.float32), cp.empty((n, oh, ow, c), np.int32)
    _launch("maxpool_forward", y.size, x, y, arg, *(np.int32(v) for v in (n, h, w, c, ph, pw, oh, ow)))
    return y, arg


def maxpool_backward(gy, arg, image_shape, ph, pw):
    """gx (``image_shape``) of :func:`maxpool_forward`: gy at each window's argmax; None unless float32."""
    import cupy as cp

    if gy.dtype != np.float32:
        return None
    gy = cp.ascontiguousarray(gy)
    gx = cp.empty(image_shape, np.float32)
    n, h, w, c = image_shape
    oh, ow = gy.shape[1:3]
    _launch("maxpool_backward", gx.size, gy, arg, gx, *(np.int32(v) for v in (n, h, w, c, ph, pw, oh, ow)))
    return gx


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
