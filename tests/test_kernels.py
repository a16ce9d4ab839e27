"""The fused GPU kernels compute what the plain xp code beside them computes.

Every test here needs CuPy and a CUDA device, and is skipped without them. Each
compares a kernel with the plain code run on the same GPU arrays (kernels turned
off), then a few whole training steps with and without the kernels.
"""

import numpy as np
import pytest

import tinynet as tn
from tinynet import backend, kernels

needs_gpu = pytest.mark.skipif(not backend.gpu_available(), reason="fused kernels need CuPy and a CUDA GPU")


@pytest.fixture
def cp():
    return backend.xp_for("gpu")


@pytest.fixture
def plain():
    """Run a block with the kernels off (the plain xp code on the GPU)."""

    class Plain:
        def __enter__(self):
            kernels.enabled = False

        def __exit__(self, *exc):
            kernels.enabled = True

    return Plain()


def test_fused_is_only_for_gpu_arrays():
    assert not kernels.fused(np.ones(3))
    assert not kernels.fused(np.float32(1))


@needs_gpu
def test_bias_relu_and_relu_backward(cp, plain):
    rng = np.random.default_rng(0)
    z, b, gy = (cp.asarray(rng.standard_normal(s).astype(np.float32)) for s in ((64, 100), (100,), (64, 100)))
    relu = tn.ReLU()
    y = relu.forward_biased(z, b)
    gx = relu.backward(gy)
    with plain:
        y_ref = relu.forward(z + b)
        gx_ref = relu.backward(gy)
    cp.testing.assert_array_equal(y, y_ref)
    cp.testing.assert_array_equal(gx, gx_ref)


@needs_gpu
def test_softmax_xent(cp, plain):
    rng = np.random.default_rng(1)
    z = cp.asarray((rng.standard_normal((128, 10)) * 5).astype(np.float32))
    t = cp.asarray(rng.integers(0, 10, 128))
    loss_fn = tn.losses.SparseCategoricalCrossentropy(from_logits=True)
    loss, grad = loss_fn.forward(z, t), loss_fn.backward()
    with plain:
        loss_ref, grad_ref = loss_fn.forward(z, t), loss_fn.backward()
    assert float(loss) == pytest.approx(float(loss_ref), rel=1e-6)
    cp.testing.assert_allclose(grad, grad_ref, rtol=1e-5, atol=1e-8)


@needs_gpu
@pytest.mark.parametrize(
    "make",
    [
        lambda: tn.optimizers.Adam(0.01),
        lambda: tn.optimizers.RMSprop(0.01),
        lambda: tn.optimizers.SGD(0.1, momentum=0.9),
        lambda: tn.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    ],
)
def test_optimizer_kernels(cp, plain, make):
    rng = np.random.default_rng(2)
    w0 = rng.standard_normal(5000).astype(np.float32)
    grads = [cp.asarray(rng.standard_normal(5000).astype(np.float32)) for _ in range(5)]
    results = []
    for fused in (True, False):
        p = tn.layers.Parameter(cp.asarray(w0.copy()), "w")
        opt = make()
        kernels.enabled = fused
        try:
            for g in grads:
                p.grad = g
                opt.apply([p])
        finally:
            kernels.enabled = True
        results.append(cp.asnumpy(p.value))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-7)


@needs_gpu
def test_training_steps_match_with_and_without_kernels(cp):
    rng = np.random.default_rng(3)
    x = rng.random((256, 20)).astype(np.float32)
    y = rng.integers(0, 5, 256)

    def train(fused):
        kernels.enabled = fused
        try:
            model = tn.Sequential(
                [tn.Input((20,)), tn.Dense(32, activation="relu"), tn.Dense(5, activation="softmax")],
                device="gpu",
                seed=0,
            )
            model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
            history = model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
            return model.get_weights(), history.history
        finally:
            kernels.enabled = True

    (w_fused, h_fused), (w_plain, h_plain) = train(True), train(False)
    for a, b in zip(w_fused, w_plain):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(h_fused["loss"], h_plain["loss"], rtol=1e-5)
    assert h_fused["accuracy"] == h_plain["accuracy"]


@needs_gpu
def test_gpu_training_matches_cpu_training():
    rng = np.random.default_rng(4)
    x = rng.random((128, 12)).astype(np.float32)
    y = rng.integers(0, 3, 128)
    weights = []
    for device in ("cpu", "gpu"):
        model = tn.Sequential(
            [tn.Input((12,)), tn.Dense(16, activation="relu"), tn.Dense(3, activation="softmax")], device=device, seed=0
        )
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=16, epochs=2, shuffle=True, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
