"""Convolution, pooling, batch normalization, reshape and weight penalties:
gradient checks in float64 on every backend present, a loop-based reference for the
convolution, and the bookkeeping Keras users rely on."""

import numpy as np
import pytest

import tinynet as tn
from tinynet.gradcheck import check_backward


def built(layer, shape, device, seed=0):
    layer.build(shape, np.random.default_rng(seed))
    return layer.to(device)


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("channels,filters,kernel", [(1, 3, 3), (2, 4, (2, 3)), (3, 2, 1)])
def test_conv2d_gradients(device, xp, rng, padding, strides, channels, filters, kernel):
    layer = built(
        tn.Conv2D(filters, kernel, strides=strides, padding=padding, bias_initializer="ones"), (7, 6, channels), device
    )
    check_backward(layer, xp.asarray(rng.standard_normal((2, 7, 6, channels))))


def test_conv2d_with_activation_gradients(device, xp, rng):
    layer = built(tn.Conv2D(3, 3, padding="same", activation="tanh"), (5, 5, 2), device)
    check_backward(layer, xp.asarray(rng.standard_normal((2, 5, 5, 2))))


def reference_conv(x, W, b, stride, padding):
    """The definition, with loops: y[n, i, j, f] = sum x[n, i*s + a, j*s + c, ch] W[a, c, ch, f] + b[f]."""
    kh, kw, _, f = W.shape
    n, h, w, _ = x.shape
    if padding == "same":
        oh, ow = -(-h // stride), -(-w // stride)
        ph, pw = max((oh - 1) * stride + kh - h, 0), max((ow - 1) * stride + kw - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    y = np.zeros((n, oh, ow, f))
    for s in range(n):
        for i in range(oh):
            for j in range(ow):
                patch = x[s, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
                for k in range(f):
                    y[s, i, j, k] = (patch * W[:, :, :, k]).sum() + b[k]
    return y


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_conv2d_forward_matches_the_loop_definition(rng, padding, stride):
    layer = built(tn.Conv2D(4, (3, 2), strides=stride, padding=padding, bias_initializer="ones"), (8, 7, 3), "cpu")
    x = rng.standard_normal((2, 8, 7, 3))
    y = layer.forward(x)
    W, b = tn.backend.to_numpy(layer.kernel.value), tn.backend.to_numpy(layer.bias.value)
    np.testing.assert_allclose(y, reference_conv(x, W, b, stride, padding), rtol=1e-5, atol=1e-6)
    assert y.shape[1:] == layer.compute_output_shape((8, 7, 3))


def distinct(rng, shape):
    """Values all different (and well apart), so every window's max is unique."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1).astype(np.float64)


@pytest.mark.parametrize(
    "pool,strides,padding", [(2, None, "valid"), (3, 2, "same"), (2, 1, "valid"), ((2, 3), (1, 2), "same")]
)
def test_max_pooling(device, xp, rng, pool, strides, padding):
    layer = built(tn.MaxPooling2D(pool, strides=strides, padding=padding), (5, 7, 2), device)
    check_backward(layer, xp.asarray(distinct(rng, (2, 5, 7, 2))))


def test_max_pooling_values_and_routing():
    x = np.array([[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 8.0, 6.0]]).reshape(1, 2, 4, 1)
    layer = tn.MaxPooling2D(2)
    y = layer.forward(x)
    np.testing.assert_array_equal(y.ravel(), [5.0, 8.0])
    gx = layer.backward(np.array([10.0, 20.0]).reshape(1, 1, 2, 1))
    np.testing.assert_array_equal(gx.reshape(2, 4), [[0, 10, 0, 0], [0, 0, 20, 0]])


@pytest.mark.parametrize("pool,strides,padding", [(2, None, "valid"), (3, 2, "same"), (2, 1, "valid")])
def test_average_pooling(device, xp, rng, pool, strides, padding):
    layer = built(tn.AveragePooling2D(pool, strides=strides, padding=padding), (5, 6, 3), device)
    check_backward(layer, xp.asarray(rng.standard_normal((2, 5, 6, 3))))


def test_average_pooling_same_padding_counts_only_real_inputs():
    x = np.arange(9, dtype=np.float64).reshape(1, 3, 3, 1)
    y = tn.AveragePooling2D(2, padding="same").forward(x)  # 2x2 output; the right/bottom windows are partial
    np.testing.assert_allclose(y.ravel(), [(0 + 1 + 3 + 4) / 4, (2 + 5) / 2, (6 + 7) / 2, 8.0])


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5, 2)])
def test_batch_normalization_gradients(device, xp, rng, training, shape):
    layer = built(tn.BatchNormalization(), shape[1:], device)
    layer.gamma.value[...] = xp.asarray(rng.uniform(0.5, 1.5, shape[-1]))
    layer.beta.value[...] = xp.asarray(rng.standard_normal(shape[-1]))
    layer.moving_mean.value[...] = xp.asarray(rng.standard_normal(shape[-1]))
    layer.moving_variance.value[...] = xp.asarray(rng.uniform(0.5, 2.0, shape[-1]))
    check_backward(layer, xp.asarray(rng.standard_normal(shape) * 2 + 1), training=training)


def test_batch_normalization_statistics():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3)) * [1.0, 2.0, 3.0] + [0.0, 5.0, -1.0]
    layer = built(tn.BatchNormalization(momentum=0.9, epsilon=1e-3), (3,), "cpu")
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(y.var(axis=0), x.var(axis=0) / (x.var(axis=0) + 1e-3), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_mean.value, 0.1 * x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.value, 0.9 + 0.1 * x.var(axis=0), rtol=1e-5)
    y_inf = layer.forward(x, training=False)  # inference: the moving statistics
    np.testing.assert_allclose(
        y_inf, (x - layer.moving_mean.value) / np.sqrt(layer.moving_variance.value + 1e-3), rtol=1e-5
    )


def test_batch_normalization_weights_follow_keras_order_and_count_as_non_trainable():
    model = tn.Sequential([tn.Input((4,)), tn.Dense(3), tn.BatchNormalization()])
    assert [w.shape for w in model.get_weights()] == [(4, 3), (3,), (3,), (3,), (3,), (3,)]
    assert len(model.parameters()) == 4  # gamma and beta train, the moving statistics do not
    lines = []
    model.summary(print_fn=lines.append)
    assert "Trainable params: 21" in lines[0] and "Non-trainable params: 6" in lines[0]


def test_reshape(device, xp, rng):
    layer = built(tn.Reshape((4, -1)), (2, 6), device)
    assert layer.compute_output_shape((2, 6)) == (4, 3)
    check_backward(layer, xp.asarray(rng.standard_normal((3, 2, 6))))
    with pytest.raises(ValueError, match="cannot reshape samples of shape"):
        tn.Reshape((5, 5)).compute_output_shape((2, 6))


@pytest.mark.parametrize("reg", [tn.regularizers.l2(0.03), tn.regularizers.l1(0.02), tn.regularizers.l1_l2(0.01, 0.02)])
def test_penalty_gradients(rng, reg):
    w = rng.standard_normal((4, 3))
    w[np.abs(w) < 0.05] = 0.3  # away from |w|'s kink at 0
    check_backward((lambda v: reg(v), lambda gy: gy * reg.gradient(w)), w)
    assert float(reg(np.ones((2, 2)))) == pytest.approx(4 * reg.l1 + 4 * reg.l2)


def test_penalty_is_added_to_loss_and_gradient_like_keras():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 5)).astype(np.float32), rng.integers(0, 3, 8)

    def make(reg):
        model = tn.Sequential([tn.Input((5,)), tn.Dense(3, activation="softmax", kernel_regularizer=reg)], seed=0)
        model.compile(tn.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
        return model

    plain, penalised = make(None), make(tn.regularizers.l2(0.1))
    W = plain.get_weights()[0]
    assert penalised.evaluate(x, y, verbose=0) == pytest.approx(
        plain.evaluate(x, y, verbose=0) + 0.1 * (W.astype(np.float64) ** 2).sum(), rel=1e-5
    )
    assert penalised.train_on_batch(x, y) == pytest.approx(plain.train_on_batch(x, y) + 0.1 * (W**2).sum(), rel=1e-5)
    np.testing.assert_allclose(penalised.layers[0].kernel.grad, plain.layers[0].kernel.grad + 0.2 * W, rtol=1e-5)


def test_small_cnn_learns(device):
    rng = np.random.default_rng(0)
    # class 0: a horizontal bar, class 1: a vertical bar, at random places, with noise
    x = rng.random((200, 8, 8, 1)).astype(np.float32) * 0.3
    y = rng.integers(0, 2, 200)
    for k in range(200):
        i = rng.integers(1, 7)
        if y[k]:
            x[k, :, i, 0] += 1
        else:
            x[k, i, :, 0] += 1
    model = tn.Sequential(
        [
            tn.Input((8, 8, 1)),
            tn.Conv2D(4, 3, activation="relu"),
            tn.MaxPooling2D(2),
            # Keras's default momentum 0.99 needs hundreds of steps before the moving
            # statistics that inference uses catch up; this run has 78
            tn.BatchNormalization(momentum=0.9),
            tn.Flatten(),
            tn.Dropout(0.2),
            tn.Dense(2, activation="softmax", kernel_regularizer=tn.regularizers.l2(1e-4)),
        ],
        device=device,
        seed=0,
    )
    model.compile(tn.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=6, batch_size=16, verbose=0)
    assert history.history["accuracy"][-1] > 0.95
    assert model.evaluate(x, y, verbose=0)[1] > 0.95


def test_cnn_saves_and_loads(tmp_path):
    model = tn.Sequential(
        [
            tn.Input((6, 6, 2)),
            tn.Conv2D(3, 3, padding="same", strides=2, kernel_regularizer=tn.regularizers.l2(0.01)),
            tn.AveragePooling2D(2, padding="same"),
            tn.BatchNormalization(),
            tn.Reshape((-1,)),
            tn.Dense(2, activation="softmax"),
        ],
        seed=1,
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((4, 6, 6, 2)).astype(np.float32)
    model.fit(x, np.array([0, 1, 0, 1]), verbose=0)
    loaded = tn.load_model(model.save(tmp_path / "cnn.npz"))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.layers[0].kernel_regularizer.l2 == 0.01


def test_bad_conv_arguments_and_shapes():
    with pytest.raises(ValueError, match="Conv2D filters must be a positive integer"):
        tn.Conv2D(0, 3)
    with pytest.raises(ValueError, match='padding must be "valid" or "same"'):
        tn.Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match="kernel_size must be a positive integer or a pair"):
        tn.Conv2D(2, (3, 0))
    with pytest.raises(ValueError, match=r"expects samples of shape \(height, width, channels\)"):
        tn.Sequential([tn.Input((28, 28)), tn.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="does not fit"):
        tn.Sequential([tn.Input((2, 2, 1)), tn.Conv2D(2, 3)])
    model = tn.Sequential([tn.Input((5, 5, 1)), tn.Conv2D(2, 3)])
    with pytest.raises(ValueError, match=r"the model expects samples of shape \(5, 5, 1\)"):
        model.predict(np.ones((2, 5, 5, 3)))


def test_the_checker_catches_a_col2im_that_overwrites_instead_of_adding(monkeypatch):
    """Overlapping patches must *add* their gradients (stride 1, 3x3 kernel): a
    col2im that assigns keeps only the last patch's share and must fail the check."""
    from tinynet.gradcheck import GradientCheckError
    from tinynet.layers import conv

    def overwriting_col2im(gcols, image_shape, stride):
        gx = np.zeros(image_shape, dtype=gcols.dtype)
        _, oh, ow, kh, kw, _ = gcols.shape
        sh, sw = stride
        for i in range(kh):
            for j in range(kw):
                gx[:, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw, :] = gcols[:, :, :, i, j, :]
        return gx

    layer = built(tn.Conv2D(2, 3), (6, 6, 2), "cpu")
    x = np.random.default_rng(5).standard_normal((2, 6, 6, 2))
    check_backward(layer, x)  # the real one passes
    monkeypatch.setattr(conv, "col2im", overwriting_col2im)
    with pytest.raises(GradientCheckError, match="  x "):
        check_backward(layer, x)
