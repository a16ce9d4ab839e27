"""Every fast twin (tinynet/engine/twins.py) equals the textbook method it stands in for.

On the CPU the twins do the same operations in the same order into reused arrays,
so they are held *bitwise* equal, except where a sum is done in another order: the
narrower products of conv2d_backward_by_offsets, and a Conv2D's bias gradient as the
product 1^T gz (held equal within float32 rounding); on a GPU the
fused kernels are held equal within float32 rounding. Then whole training runs with and
without the twins.
"""

import multiprocessing
import os
import time

import numpy as np
import pytest

import tinynet as tn
from tinynet import backend
from tinynet.engine import twins as fast
from tinynet.engine import twins_inplace


def exact(device):
    """Bitwise on the CPU; within float32 rounding for the GPU's fused kernels."""
    if device == "cpu":
        return np.testing.assert_array_equal
    return rounding


def rounding(a, b):
    """Equal within float32 rounding: the same sums in another order."""
    np.testing.assert_allclose(backend.to_numpy(a), backend.to_numpy(b), rtol=2e-6, atol=1e-6)


def summed_in_another_order(a, b):
    """Equal within float32 rounding of sums of many terms: the error bound scales with
    the largest value, not with each element (a small sum of large terms keeps their error)."""
    a, b = backend.to_numpy(a), backend.to_numpy(b)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(np.abs(b).max()))


@pytest.fixture
def textbook():
    """Run a block with every twin off."""

    class Off:
        def __enter__(self):
            fast.enabled = False

        def __exit__(self, *exc):
            fast.enabled = True

    return Off()


def _dense(device, activation, rng):
    layer = tn.Dense(6, activation=activation)
    layer.build((5,), np.random.default_rng(0))
    layer.bias.value += 0.1
    layer.to(device)
    xp = backend.xp_for(device)
    x, gy = (xp.asarray(rng.standard_normal(s).astype(np.float32)) for s in ((7, 5), (7, 6)))
    return layer, x, gy


@pytest.mark.parametrize("activation", ["relu", "tanh", None])
def test_dense_backward_into_equals_dense_backward(device, rng, activation):
    layer, x, gy = _dense(device, activation, rng)
    layer.forward(x, training=True)
    gx = tn.Dense.backward(layer, gy)
    gW, gb = layer.kernel.grad.copy(), layer.bias.grad.copy()
    layer.kernel.grad[...], layer.bias.grad[...] = np.nan, np.nan
    exact(device)(fast.dense_backward_into(layer, gy), gx)
    exact(device)(layer.kernel.grad, gW)
    exact(device)(layer.bias.grad, gb)
    assert fast.dense_backward_into_without_gx(layer, gy) is None
    exact(device)(layer.kernel.grad, gW)


def test_conv2d_backward_into_without_gx_equals_conv2d_backward(device, rng):
    layer = tn.Conv2D(4, 3, activation="relu")
    layer.build((6, 6, 2), np.random.default_rng(0))
    layer.to(device)
    xp = backend.xp_for(device)
    x = xp.asarray(rng.standard_normal((3, 6, 6, 2)).astype(np.float32))
    gy = xp.asarray(rng.standard_normal((3, 4, 4, 4)).astype(np.float32))
    layer.forward(x, training=True)
    tn.Conv2D.backward(layer, gy)
    gW, gb = layer.kernel.grad.copy(), layer.bias.grad.copy()
    layer.kernel.grad[...], layer.bias.grad[...] = np.nan, np.nan
    fast.conv2d_backward_into_without_gx(layer, gy)
    exact(device)(layer.kernel.grad, gW)
    rounding(layer.bias.grad, gb)  # on the CPU 1^T gz, a product: the sum in BLAS's order


@pytest.mark.parametrize("channels", [1, 3, 5])
@pytest.mark.parametrize("activation", ["relu", "tanh", None])
@pytest.mark.parametrize("strides, padding", [(1, "valid"), (2, "same"), ((1, 2), "valid")])
def test_conv2d_forward_inplace_equals_conv2d_forward(rng, channels, activation, strides, padding):
    layer = tn.Conv2D(4, 3, strides=strides, padding=padding, activation=activation)
    layer.build((7, 8, channels), np.random.default_rng(0))
    layer.bias.value += 0.1
    x = rng.standard_normal((3, 7, 8, channels)).astype(np.float32)
    y = tn.Conv2D.forward(layer, x, training=True)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx = layer.backward(gy)
    gW = layer.kernel.grad.copy()
    # A few-channel input's patches are laid out offset-major and read transposed by the
    # product: BLAS may then sum in another order (OpenBLAS on an Intel host did, on the
    # CI's AMD host it does not), so those are equal within float32 rounding; with 4 or
    # more channels the product is the textbook's own call on the same layout: bitwise.
    same = exact("cpu") if channels >= 4 else summed_in_another_order
    same(fast.conv2d_forward_inplace(layer, x, training=True), y)
    same(layer.backward(gy), gx)  # what forward kept for backward is the same too
    same(layer.kernel.grad, gW)


@pytest.mark.parametrize("strides, padding", [(1, "valid"), (2, "same"), ((2, 1), "valid"), (1, "same")])
def test_conv2d_backward_by_offsets_equals_conv2d_backward_within_rounding(rng, strides, padding):
    layer = tn.Conv2D(6, 3, strides=strides, padding=padding, activation="relu")
    layer.build((9, 8, 5), np.random.default_rng(0))
    x = rng.standard_normal((4, 9, 8, 5)).astype(np.float32)
    y = layer.forward(x, training=True)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx = tn.Conv2D.backward(layer, gy)
    gW, gb = layer.kernel.grad.copy(), layer.bias.grad.copy()
    layer.kernel.grad[...], layer.bias.grad[...] = np.nan, np.nan
    gx_fast = fast.conv2d_backward_by_offsets(layer, gy)
    assert gx_fast.shape == gx.shape
    np.testing.assert_allclose(gx_fast, gx, rtol=1e-5, atol=1e-6)  # float32 rounding, summed in another order
    exact("cpu")(layer.kernel.grad, gW)
    rounding(layer.bias.grad, gb)


def test_fused_dense_relu_forward_and_relu_backward_on_the_gpu(gpu, rng):
    device = gpu  # fused kernels run on CuPy arrays only: no CPU half
    layer, x, gy = _dense(device, "relu", rng)
    y = tn.Dense.forward(layer, x)
    gx = tn.ReLU.backward(layer.activation, gy)
    exact(device)(fast.dense_relu_forward_fused(layer, x), y)
    exact(device)(fast.relu_backward_fused(layer.activation, gy), gx)


def test_fused_sparse_crossentropy_on_the_gpu(gpu, rng):
    device = gpu  # fused kernels run on CuPy arrays only: no CPU half
    xp = backend.xp_for(device)
    z = xp.asarray((rng.standard_normal((128, 10)) * 5).astype(np.float32))
    t = xp.asarray(rng.integers(0, 10, 128))
    loss = tn.losses.SparseCategoricalCrossentropy(from_logits=True)
    reference = (tn.losses.SparseCategoricalCrossentropy.forward(loss, z, t), loss.backward())
    fused = (fast.sparse_crossentropy_forward_fused(loss, z, t), fast.sparse_crossentropy_backward_fused(loss))
    assert float(fused[0]) == pytest.approx(float(reference[0]), rel=1e-6)
    exact(device)(fused[1], reference[1])


UPDATES = {
    "adam": (lambda: tn.optimizers.Adam(0.01), fast.adam_update_inplace, fast.adam_fused),
    "rmsprop": (lambda: tn.optimizers.RMSprop(0.01), fast.rmsprop_update_inplace, fast.rmsprop_fused),
    "sgd momentum": (lambda: tn.optimizers.SGD(0.1, momentum=0.9), None, fast.sgd_momentum_fused),
    "sgd nesterov": (lambda: tn.optimizers.SGD(0.1, momentum=0.9, nesterov=True), None, fast.sgd_momentum_fused),
}


@pytest.mark.parametrize("name", list(UPDATES))
def test_optimizer_twins_equal_the_textbook_update(device, rng, name):
    make, cpu_twin, gpu_twin = UPDATES[name]
    twin = cpu_twin if device == "cpu" else gpu_twin
    if twin is None:
        pytest.skip(
            f"the {device} half: {name} has no {device} twin (its {'gpu' if device == 'cpu' else 'cpu'} twin is tested)"
        )
    xp = backend.xp_for(device)
    w0 = rng.standard_normal(3000).astype(np.float32)
    grads = [xp.asarray(rng.standard_normal(3000).astype(np.float32)) for _ in range(6)]
    results = []
    for use_twin in (False, True):
        p, opt = tn.layers.Parameter(xp.asarray(w0.copy()), "w"), make()
        if use_twin:
            kwargs = {"scratch": fast.Scratch()} if device == "cpu" else {}
            opt.update = lambda i, w, g, lr, opt=opt, kwargs=kwargs: twin(opt, i, w, g, lr, **kwargs)
        for g in grads:
            p.grad = g
            opt.apply([p])
        results.append(p.value)
    exact(device)(results[1], results[0])


@pytest.mark.parametrize("kind", ["mlp", "cnn", "mlp clipnorm"])
def test_training_with_and_without_the_twins_is_the_same(device, kind, textbook):
    rng = np.random.default_rng(3)
    shape = (8, 8, 1) if kind == "cnn" else (20,)
    x = rng.random((96,) + shape).astype(np.float32)
    y = rng.integers(0, 5, 96)

    def train():
        if kind == "cnn":
            layers = [
                tn.Conv2D(4, 3, activation="relu"),
                tn.MaxPooling2D(),
                tn.Conv2D(4, 3, activation="relu"),
                tn.Flatten(),
                tn.Dropout(0.3),
                tn.Dense(5, activation="softmax"),
            ]
        else:
            layers = [
                tn.Dense(32, activation="relu"),
                tn.Dropout(0.2),
                tn.Dense(16, activation="relu"),
                tn.Dense(5, activation="softmax"),
            ]
        model = tn.Sequential([tn.Input(shape)] + layers, device=device, seed=0)
        model.compile(
            tn.optimizers.Adam(clipnorm=1.0 if "clipnorm" in kind else None),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        seen = []
        spy = tn.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(fast.installed(model)))
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[spy])
        return model, history.history, seen[0]

    model, fast_history, twins = train()
    assert twins, "no twin was installed: this test would prove nothing"
    assert fast.installed(model) == [], "the twins must be gone after fit"
    with textbook:
        model_plain, plain_history, twins = train()
        assert twins == []
    # bit for bit on the CPU, except where a twin sums in another order (the convnet's later
    # convolutions: conv2d_backward_by_offsets) or runs a fused GPU kernel
    bitwise = device == "cpu" and kind != "cnn"
    for a, b in zip(model.get_weights(), model_plain.get_weights()):
        exact(device)(a, b) if bitwise else np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fast_history["loss"], plain_history["loss"], rtol=1e-6 if bitwise else 1e-5)


def test_a_layer_that_overrides_backward_keeps_its_own():
    class MyDense(tn.Dense):
        def backward(self, gy):
            return super().backward(gy)

    model = tn.Sequential([tn.Input((3,)), tn.Dense(4), MyDense(2)], seed=0)
    model.compile("adam", "mse")
    seen = []
    spy = tn.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(fast.installed(model)))
    model.fit(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32), verbose=0, callbacks=[spy])
    lines = seen[0]
    assert "dense.backward = dense_backward_into_without_gx" in lines
    assert not any(line.startswith("my_dense.") for line in lines)
    assert "Adam.update = adam_update_inplace" in lines


def test_gpu_training_matches_cpu_training(gpu):
    rng = np.random.default_rng(4)
    x = rng.random((128, 12)).astype(np.float32)
    y = rng.integers(0, 3, 128)
    weights = []
    for where in ("cpu", "gpu"):
        model = tn.Sequential(
            [tn.Input((12,)), tn.Dense(16, activation="relu"), tn.Dense(3, activation="softmax")], device=where, seed=0
        )
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=16, epochs=2, shuffle=True, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_after_fit_the_model_is_the_textbook_again(rng):
    """Twins and Keras's logits rule live only as long as fit: afterwards model.backward is
    the textbook chain rule (a learner's saliency map or gradient check works)."""
    model = tn.Sequential([tn.Input((5,)), tn.Dense(6, activation="relu"), tn.Dense(3, activation="softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = rng.standard_normal((8, 5)).astype(np.float32)
    model.fit(x, rng.integers(0, 3, 8), verbose=0)
    model.train_on_batch(x, rng.integers(0, 3, 8))
    assert fast.installed(model) == []
    assert not any(
        name in vars(obj)
        for layer in model.layers
        for obj in (layer, layer.activation)
        for name in ("forward", "backward")
    )
    tn.gradcheck.check_backward(model, x.astype(np.float64))


def test_conv_work_arrays_hold_the_latest_batch_and_go_when_fit_ends(rng):
    """The patches and ReLU gradients kept between steps: a second forward (another batch,
    another batch size, a pixel count no row length divides) overwrites them, so backward
    uses the latest batch; when fit ends tinynet lets go of them (the layer keeps its last
    patches, as the textbook's forward does)."""
    model = tn.Sequential(
        [tn.Input((9, 9, 1)), tn.Conv2D(3, 3, activation="relu"), tn.Conv2D(4, 3, activation="relu"), tn.Flatten()],
        seed=0,
    )
    model.compile("sgd", "mse")
    fast.install(model)
    conv1, conv2 = model.layers[0], model.layers[1]
    conv1.bias.value += 0.1
    for n in (4, 4, 1):  # 1 sample: 49 and 25 pixels, rows of one pixel
        x = rng.standard_normal((n, 9, 9, 1)).astype(np.float32)
        gy = rng.standard_normal((n, 5, 5, 4)).astype(np.float32)
        h = conv1.forward(x, training=True)
        y = conv2.forward(h, training=True)
        gh = conv2.backward(gy)
        conv1.backward(gh)
        fast_grads = [p.grad.copy() for p in (conv1.kernel, conv1.bias, conv2.kernel, conv2.bias)]
        h_plain = tn.Conv2D.forward(conv1, x, training=True)
        np.testing.assert_array_equal(h, h_plain)
        np.testing.assert_array_equal(y, tn.Conv2D.forward(conv2, h_plain, training=True))
        gh_plain = tn.Conv2D.backward(conv2, gy)
        tn.Conv2D.backward(conv1, gh_plain)
        for got, want in zip(fast_grads, (conv1.kernel.grad, conv1.bias.grad, conv2.kernel.grad, conv2.bias.grad)):
            rounding(got, want)
    assert twins_inplace._work_arrays.get(conv1) and twins_inplace._work_arrays.get(conv2)
    fast.remove(model)
    assert conv1 not in twins_inplace._work_arrays and conv2 not in twins_inplace._work_arrays
    model.fit(rng.standard_normal((8, 9, 9, 1)).astype(np.float32), np.zeros((8, 100), np.float32), verbose=0)
    assert conv1 not in twins_inplace._work_arrays and conv2 not in twins_inplace._work_arrays


def test_by_samples_covers_every_sample_once_and_passes_errors_on():
    seen = []
    twins_inplace._by_samples(50, 3, lambda lo, hi: seen.append((lo, hi)))
    assert sorted(seen) == [(0, 16), (16, 33), (33, 50)]
    seen.clear()
    twins_inplace._by_samples(12, 3, lambda lo, hi: seen.append((lo, hi)))  # fewer than 8 samples a range: one
    assert seen == [(0, 12)]

    def fails(lo, hi):
        if lo > 0:
            raise ValueError("in a worker")

    with pytest.raises(ValueError, match="in a worker"):
        twins_inplace._by_samples(64, 2, fails)
    ended = []

    def one_fails_early_one_ends_late(lo, hi):
        if lo == 16:
            raise ValueError("early")
        if lo == 32:
            time.sleep(0.3)
            ended.append(lo)

    with pytest.raises(ValueError, match="early"):
        twins_inplace._by_samples(48, 3, one_fails_early_one_ends_late)
    assert ended == [32]  # no range still writes when the error reaches the caller


def _split_in_child(queue):
    seen = []
    twins_inplace._by_samples(64, 2, lambda lo, hi: seen.append((lo, hi)))
    queue.put(sorted(seen))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is a POSIX thing")
# forking a process that has threads is this test's very point: Python 3.12+ warns of it
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_by_samples_works_in_a_child_forked_after_it_ran():
    """A child made by fork (multiprocessing's default on Linux before Python 3.14) gets
    no worker threads from its parent: it starts its own instead of waiting forever."""
    twins_inplace._by_samples(64, 2, lambda lo, hi: None)  # the parent's workers exist
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_split_in_child, args=(queue,))
    child.start()
    child.join(timeout=30)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0
    assert queue.get(timeout=5) == [(0, 32), (32, 64)]


def test_conv_twin_keeps_the_textbook_dtype_with_float64_parameters(rng):
    """gradcheck and a learner may make the parameters float64 while the data stays float32:
    the output is float64, as the textbook's cols @ Wm."""
    layer = tn.Conv2D(4, 3, activation="relu")
    layer.build((7, 7, 2), np.random.default_rng(0))
    layer.kernel.value = layer.kernel.value.astype(np.float64)
    layer.bias.value = layer.bias.value.astype(np.float64)
    x = rng.standard_normal((20, 7, 7, 2)).astype(np.float32)
    y = tn.Conv2D.forward(layer, x, training=True)
    for threads in (1, 2):
        fast_y = fast.conv2d_forward_inplace(layer, x, training=True, threads=threads)
        assert fast_y.dtype == y.dtype == np.float64
        np.testing.assert_allclose(fast_y, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("threads", [2, 3])
def test_twins_on_ranges_of_samples_equal_the_twins_on_one_thread(rng, threads):
    """Convolutions and pooling split over threads: pooling bit for bit (element-wise),
    the convolutions within float32 rounding (BLAS sums a product of fewer rows in its own
    order), for a first layer, a later one with padding and strides, and the pooling."""
    for channels, strides, padding, first in [(1, 1, "valid", True), (5, 2, "same", False)]:
        layer = tn.Conv2D(6, 3, strides=strides, padding=padding, activation="relu")
        layer.build((9, 8, channels), np.random.default_rng(0))
        layer.bias.value += 0.05
        x = rng.standard_normal((40, 9, 8, channels)).astype(np.float32)
        backward = fast.conv2d_backward_into_without_gx if first else fast.conv2d_backward_by_offsets
        results = []
        for t in (1, threads):
            y = fast.conv2d_forward_inplace(layer, x, training=True, threads=t).copy()
            gy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
            gx = backward(layer, gy, threads=t)
            results.append([y, layer.kernel.grad.copy(), layer.bias.grad.copy()] + ([] if first else [gx]))
        for a, b in zip(*results):
            rounding(a, b)
    pool = tn.MaxPooling2D(2)
    pool.build((26, 26, 3))
    x = rng.integers(0, 4, (40, 26, 26, 3)).astype(np.float32)  # many ties
    gy = rng.standard_normal((40, 13, 13, 3)).astype(np.float32)
    y1, gx1 = fast.maxpool_forward_tiled(pool, x), fast.maxpool_backward_tiled(pool, gy)
    np.testing.assert_array_equal(fast.maxpool_forward_tiled(pool, x, threads=threads), y1)
    np.testing.assert_array_equal(fast.maxpool_backward_tiled(pool, gy, threads=threads), gx1)


@pytest.mark.parametrize("size", [(26, 26), (11, 11), (6, 9)])
def test_tiled_max_pooling_equals_max_pooling(device, rng, size):
    xp = backend.xp_for(device)
    layer = tn.MaxPooling2D(2)
    layer.build(size + (3,))
    x = rng.integers(0, 4, (5,) + size + (3,)).astype(np.float32)  # few values: many ties
    x, gy = xp.asarray(x), xp.asarray(rng.standard_normal((5, size[0] // 2, size[1] // 2, 3)).astype(np.float32))
    y = tn.MaxPooling2D.forward(layer, x)
    gx = tn.MaxPooling2D.backward(layer, gy)
    exact(device)(fast.maxpool_forward_tiled(layer, x), y)
    exact(device)(fast.maxpool_backward_tiled(layer, gy), gx)


def test_fused_relu_propagates_nan_and_inf_as_the_textbook(gpu, rng):
    """NaN in z + b passes through the forward (np.maximum keeps it); a NaN or infinite gy
    gives NaN in the backward where y > 0 and, as 0 * NaN, where y <= 0 too."""
    device = gpu  # fused kernels run on CuPy arrays only: no CPU half
    layer, x, gy = _dense(device, "relu", rng)
    x[0, 0], x[1, :] = np.nan, -np.inf  # a NaN row, and a row of -inf (ReLU: 0, or NaN where W mixes signs)
    gy[2, 1], gy[3, 2], gy[4, 3] = np.nan, np.inf, -np.inf
    y, gx = tn.Dense.forward(layer, x), None
    gx = tn.ReLU.backward(layer.activation, gy)
    fused_y = fast.dense_relu_forward_fused(layer, x)
    fused_gx = fast.relu_backward_fused(layer.activation, gy)
    for fused, plain in ((fused_y, y), (fused_gx, gx)):
        fused, plain = backend.to_numpy(fused), backend.to_numpy(plain)
        assert np.isnan(plain).any(), "the inputs must make NaN, or this test proves nothing"
        np.testing.assert_array_equal(np.isnan(fused), np.isnan(plain))
        np.testing.assert_array_equal(np.signbit(fused), np.signbit(plain))
        exact(device)(fused, plain)


def test_fused_sparse_crossentropy_keeps_its_precision_at_large_logits(gpu, rng):
    """loss = log s - (z[t] - m): at logits near 1e4, log s + m - z[t] is off by about 1e-3."""
    device = gpu  # fused kernels run on CuPy arrays only: no CPU half
    z = (1e4 + rng.standard_normal((64, 10)) * 3).astype(np.float32)
    t = rng.integers(0, 10, 64)
    z64 = z.astype(np.float64)
    shifted = z64 - z64.max(axis=1, keepdims=True)
    exact_loss = np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(64), t])
    xp = backend.xp_for(device)
    loss = tn.losses.SparseCategoricalCrossentropy(from_logits=True)
    fused = float(fast.sparse_crossentropy_forward_fused(loss, xp.asarray(z), xp.asarray(t)))
    plain = float(tn.losses.SparseCategoricalCrossentropy.forward(loss, xp.asarray(z), xp.asarray(t)))
    assert abs(plain - exact_loss) < 1e-5
    assert abs(fused - exact_loss) < 1e-5


def test_fused_sparse_crossentropy_with_a_nan_logit_is_nan_in_that_row(gpu, rng):
    device = gpu  # fused kernels run on CuPy arrays only: no CPU half
    xp = backend.xp_for(device)
    z = rng.standard_normal((4, 5)).astype(np.float32)
    z[1, 3] = np.nan
    loss = tn.losses.SparseCategoricalCrossentropy(from_logits=True)
    args = (xp.asarray(z), xp.asarray(np.array([0, 1, 2, 3])))
    plain = (tn.losses.SparseCategoricalCrossentropy.forward(loss, *args), loss.backward())
    fused = (fast.sparse_crossentropy_forward_fused(loss, *args), fast.sparse_crossentropy_backward_fused(loss))
    assert np.isnan(float(fused[0])) and np.isnan(float(plain[0]))
    np.testing.assert_array_equal(np.isnan(backend.to_numpy(fused[1])), np.isnan(backend.to_numpy(plain[1])))


@pytest.mark.parametrize("size", [(26, 26), (11, 11), (6, 9)])
def test_fused_max_pooling_equals_max_pooling(gpu, rng, size):
    """The GPU's one-kernel pooling: the same maxima (ties to the first, a NaN to the first
    NaN) and the same gradient, bit for bit, the signs of zeros too."""
    xp = backend.xp_for(gpu)
    layer = tn.MaxPooling2D(2)
    layer.build(size + (3,))
    x = rng.integers(-2, 2, (5,) + size + (3,)).astype(np.float32)  # few values: many ties
    x[0, 0, 0, 0], x[1, 1, 1, 1], x[2, :2, :2, 2] = np.nan, -0.0, -0.0
    gy = rng.standard_normal((5, size[0] // 2, size[1] // 2, 3)).astype(np.float32)
    gy[3, 0, 0, 0] = np.nan
    x, gy = xp.asarray(x), xp.asarray(gy)
    expected = [
        backend.to_numpy(tn.MaxPooling2D.forward(layer, x)),
        backend.to_numpy(tn.MaxPooling2D.backward(layer, gy)),
    ]
    got = [
        backend.to_numpy(fast.maxpool_forward_fused(layer, x)),
        backend.to_numpy(fast.maxpool_backward_fused(layer, gy)),
    ]
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(np.signbit(a), np.signbit(b))


@pytest.mark.parametrize("channels", [1, 5])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("strides, padding", [(1, "valid"), (2, "same"), ((1, 2), "same"), ((2, 1), "valid")])
def test_fused_conv2d_equals_conv2d(gpu, rng, channels, activation, strides, padding):
    """The GPU's convolution twins: patches copied by im2col's kernel (the padding read as
    zeros), gx gathered by col2im's kernel in col2im's order: the textbook's numbers, bit for bit."""
    xp = backend.xp_for(gpu)
    layer = tn.Conv2D(4, 3, strides=strides, padding=padding, activation=activation)
    layer.build((7, 8, channels), np.random.default_rng(0))
    layer.to(gpu)
    layer.bias.value += 0.1
    x = xp.asarray(rng.standard_normal((3, 7, 8, channels)).astype(np.float32))
    y = tn.Conv2D.forward(layer, x, training=True)
    gy = xp.asarray(rng.standard_normal(y.shape).astype(np.float32))
    gx = tn.Conv2D.backward(layer, gy)
    expected = [y, gx, layer.kernel.grad.copy(), layer.bias.grad.copy()]
    got = [fast.conv2d_forward_fused(layer, x, training=True), fast.conv2d_backward_fused(layer, gy)]
    for a, b in zip(got + [layer.kernel.grad, layer.bias.grad], expected):
        np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
