"""tn.trace: one batch forward and backward, recorded layer by layer, the model untouched."""

import numpy as np
import pytest
from synthetic import make_digits

import tinynet as tn
from tinynet import backend
from tinynet.trace import CHECK_TOLERANCE


@pytest.fixture(scope="module")
def digits():
    images, labels = make_digits(160, seed=3)
    return (images / 255).astype(np.float32).reshape(len(images), 784), labels.astype(np.int64)


def mlp(device="cpu", seed=0):
    model = tn.Sequential(
        [tn.Input((784,)), tn.Dense(100, activation="relu"), tn.Dense(10, activation="softmax")],
        device=device,
        seed=seed,
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def convnet(batch_norm=False, seed=0):
    """examples/mnist_cnn.py's model (with --batch-norm: BatchNormalization after each convolution)."""
    layers = [tn.Input((28, 28, 1))]
    for filters in (32, 64):
        layers.append(tn.Conv2D(filters, 3, activation="relu"))
        if batch_norm:
            layers.append(tn.BatchNormalization())
        layers.append(tn.MaxPooling2D(2))
    layers += [tn.Flatten(), tn.Dropout(0.5), tn.Dense(10, activation="softmax")]
    model = tn.Sequential(layers, seed=seed)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_mlp_every_layer_passes_its_float64_check_and_the_numbers_are_right(digits):
    x, y = digits
    model = mlp()
    t = tn.trace(model, x[:32], y[:32])
    assert [r.name for r in t.layers] == ["dense", "dense_1"]
    assert all(r.check_error < CHECK_TOLERANCE for r in t.layers), [r.check_error for r in t.layers]
    assert t.loss_check_error < CHECK_TOLERANCE and t.max_check_error < CHECK_TOLERANCE
    first, last = t.layers
    assert first.input_shape == (32, 784) and first.output_shape == (32, 100) and last.gy_shape == (32, 10)
    hidden = np.maximum(x[:32] @ model.layers[0].kernel.value + model.layers[0].bias.value, 0)
    assert first.dead_units == int((hidden == 0).all(axis=0).sum()) and first.units == 100
    assert first.output_max == pytest.approx(float(hidden.max()), rel=1e-6)
    assert last.dead_fraction is None
    assert t.loss == pytest.approx(model.evaluate(x[:32], y[:32], verbose=0)[0], rel=1e-5)
    kernel = first.parameters[0]
    assert kernel.name == "kernel" and kernel.weight_norm == pytest.approx(np.linalg.norm(model.layers[0].kernel.value))
    # the step the optimizer would take: what one train_on_batch on the same batch does
    other = mlp()
    before = other.layers[0].kernel.numpy()
    other.train_on_batch(x[:32], y[:32])
    assert kernel.update_norm == pytest.approx(np.linalg.norm(other.layers[0].kernel.numpy() - before), rel=1e-4)
    assert kernel.update_ratio == pytest.approx(kernel.update_norm / kernel.weight_norm)
    assert first.gx_norm > 0 and first.gx_shape == (32, 784)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_convnet_every_layer_passes_its_float64_check_untrained_and_trained(digits, batch_norm):
    x, y = digits
    x = x.reshape(-1, 28, 28, 1)
    model = convnet(batch_norm)
    errors = [r.check_error for r in tn.trace(model, x[:16], y[:16]).layers]
    model.fit(x[16:], y[16:], batch_size=32, epochs=1, verbose=0)
    t = tn.trace(model, x[:16], y[:16])
    errors += [r.check_error for r in t.layers] + [t.loss_check_error]
    assert max(errors) < CHECK_TOLERANCE, errors
    assert [r.class_name for r in t.layers][-4:] == ["MaxPooling2D", "Flatten", "Dropout", "Dense"]
    assert t.layers[0].units == 32  # a convolution's units are its filters


def snapshot(model):
    """Everything that decides what the model does next, as bytes."""
    state = [w.tobytes() for w in model.get_weights()]
    state += [backend.to_numpy(p.grad).tobytes() for p in model.parameters()]
    opt = model.optimizer.get_state()
    state += [opt["iterations"]] + [backend.to_numpy(a).tobytes() for v in opt["slots"].values() for a in v]
    flat = model.flat_parameters.flat
    state += [backend.to_numpy(flat.value).tobytes(), backend.to_numpy(flat.grad).tobytes()]
    state += [repr(model.shuffle_rng.bit_generator.state), repr(np.random.get_state())]
    state += [repr(layer.rng.bit_generator.state) for layer in model.layers if getattr(layer, "rng", None)]
    return state


def test_the_model_is_untouched_and_trains_bit_for_bit_as_without_the_trace(digits):
    x, y = digits
    x = x.reshape(-1, 28, 28, 1)[:64]
    y = y[:64]
    traced, plain = convnet(batch_norm=True, seed=5), convnet(batch_norm=True, seed=5)
    for model in (traced, plain):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    before = snapshot(traced)
    t = tn.trace(traced, x[:16], y[:16])
    assert snapshot(traced) == before
    assert t.layers[1].class_name == "BatchNormalization" and t.layers[1].parameters[0].update_ratio > 0
    # the step the trace said the optimizer would take is the one train_on_batch takes next
    # (a third, identical model: the same weights, Adam moments and dropout mask)
    third = convnet(batch_norm=True, seed=5)
    third.fit(x, y, batch_size=16, epochs=1, verbose=0)
    old = [p.numpy() for p in third.parameters()]
    third.train_on_batch(x[:16], y[:16])
    steps = [np.linalg.norm(p.numpy() - w) for p, w in zip(third.parameters(), old)]
    traced_steps = [p.update_norm for r in t.layers for p in r.parameters]
    np.testing.assert_allclose(traced_steps, steps, rtol=1e-3)
    for model in (traced, plain):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for a, b in zip(traced.get_weights(), plain.get_weights()):
        assert a.tobytes() == b.tobytes()
    assert traced.optimizer.iterations == plain.optimizer.iterations == 8


class DenseWithWrongKernelGradient(tn.Dense):
    formula = "y = x W + b  |  gW = 2 x^T gy (deliberately wrong)"

    def backward(self, gy):
        gx = super().backward(gy)
        self.kernel.grad = 2 * self.kernel.grad
        return gx


def test_a_wrong_backward_shows_up_in_its_own_row(digits):
    x, y = digits
    model = tn.Sequential(
        [
            tn.Input((784,)),
            tn.Dense(32, activation="relu"),
            DenseWithWrongKernelGradient(16, activation="tanh"),
            tn.Dense(10, activation="softmax"),
        ],
        seed=0,
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    t = tn.trace(model, x[:32], y[:32])
    errors = [r.check_error for r in t.layers]
    assert errors[1] > 1e-2 and errors[0] < CHECK_TOLERANCE and errors[2] < CHECK_TOLERANCE, errors
    assert "WRONG?" in str(t).split("[3]")[0].split("[2]")[1]


def test_table_and_html_show_every_formula_escaped(digits):
    x, y = digits
    model = mlp()
    model.add(tn.Activation("tanh"))  # a third layer, with its own formula
    model.layers[-1].formula = "y = tanh(x) <b>  |  gx = gy * (1 - y^2)"
    model.compile("adam", "sparse_categorical_crossentropy")
    t = tn.trace(model, x[:8], y[:8], check=False)
    text, page = str(t), t._repr_html_()
    assert all(len(line) <= 100 for line in text.splitlines()), max(text.splitlines(), key=len)
    for layer in model.layers[:2]:
        assert layer.formula in text and layer.formula in page
    assert "<b>" in text and "&lt;b&gt;" in page and "<b>" not in page
    assert "not run" in text and t.max_check_error is None
    assert text.index("[1] dense") < text.index("[2] dense_1") < text.index("loss sparse_categorical")


def test_plot_writes_a_png(digits, tmp_path):
    pytest.importorskip("matplotlib")
    x, y = digits
    t = tn.trace(mlp(), x[:16], y[:16], check=False)
    fig = t.plot(tmp_path / "trace.png")
    assert (tmp_path / "trace.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "1 dense (Dense)" in fig.axes[0].get_title() and "dL/dy" in fig.axes[1].get_title()
    assert len(fig.axes) == 4


def test_bad_input_is_refused_before_any_work(digits):
    x, y = digits
    uncompiled = tn.Sequential([tn.Input((784,)), tn.Dense(10)])
    with pytest.raises(RuntimeError, match="compile"):
        tn.trace(uncompiled, x[:4], y[:4])
    unbuilt = tn.Sequential([tn.Dense(10)])
    unbuilt.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(RuntimeError, match="built"):
        tn.trace(unbuilt, x[:4], y[:4])
    assert not unbuilt.built
    model = mlp()
    with pytest.raises(ValueError, match=r"samples of shape \(784,\)"):
        tn.trace(model, x[:4].reshape(4, 28, 28), y[:4])
    with pytest.raises(ValueError, match="same number of samples"):
        tn.trace(model, x[:4], y[:3])
    with pytest.raises(ValueError, match="needs targets"):
        tn.trace(model, x[:4], None)
    with pytest.raises(TypeError, match="Sequential"):
        tn.trace(model.layers[0], x[:4], y[:4])
    with pytest.raises(ValueError, match="one weight per sample"):
        tn.trace(model, x[:4], y[:4], sample_weight=np.ones(3))


def test_on_every_device_with_sample_weights(device, digits):
    x, y = digits
    model = mlp(device)
    model.fit(x[32:96], y[32:96], batch_size=16, epochs=1, verbose=0)
    weights = [w.tobytes() for w in model.get_weights()]
    t = tn.trace(model, x[:16], y[:16], sample_weight=np.linspace(0.5, 1.5, 16).astype(np.float32))
    assert t.max_check_error < CHECK_TOLERANCE
    assert [w.tobytes() for w in model.get_weights()] == weights
    assert isinstance(t.layers[0].output, np.ndarray) and t.layers[0].dead_units is not None


def test_dead_units_of_every_kind_of_relu(digits):
    """A ReLU layer, Activation("relu") and a Dense with activation="relu" all count their dead units."""
    x, y = digits
    model = tn.Sequential(
        [tn.Input((784,)), tn.Dense(12), tn.ReLU(), tn.Dense(8), tn.Activation("relu"), tn.Dense(3, activation="relu")],
        seed=2,
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    t = tn.trace(model, x[:16], y[:16] % 3)
    assert [r.units for r in t.layers] == [None, 12, None, 8, 3]
    for r in t.layers[1::2]:
        assert r.dead_units == int((r.output == 0).all(axis=0).sum())
    assert t.max_check_error < CHECK_TOLERANCE


class ConvWithoutBiasGradient(tn.Conv2D):
    """A learner's slip: the bias gradient is set to zeros (so fit does not complain)."""

    def backward(self, gy):
        gx = super().backward(gy)
        self.bias.grad = self.bias.grad * 0
        return gx


class DenseWithWrongBiasGradient(tn.Dense):
    def backward(self, gy):
        gx = super().backward(gy)
        self.bias.grad = 3 * self.bias.grad + 1
        return gx


@pytest.mark.parametrize("trained", [False, True])
def test_a_wrong_gradient_of_a_bias_of_zeros_is_caught(digits, trained):
    """A fresh bias is all zeros: the order-preserving direction cannot move it, and on
    blank pixels it sits on the ReLU's kink. It must still be checked, and fail."""
    x, y = digits
    images = x[:64].reshape(-1, 28, 28, 1)
    model = tn.Sequential(
        [tn.Input((28, 28, 1)), ConvWithoutBiasGradient(4, 3, activation="relu"), tn.Flatten(), tn.Dense(10)],
        seed=0,
    )
    model.compile("adam", tn.losses.SparseCategoricalCrossentropy(from_logits=True))
    if trained:
        model.fit(images, y[:64], epochs=1, verbose=0)
    result = tn.trace(model, images, y[:64])
    assert result.layers[0].check_error > 1e-2, result.layers[0].check_direction
    assert "bias" in result.layers[0].check_direction
    assert result.layers[2].check_error < CHECK_TOLERANCE
    dense = DenseWithWrongBiasGradient(5)
    dense.build((8,), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    comparison = tn.gradcheck.compare_backward(dense, rng.standard_normal((6, 8)), rng.standard_normal((6, 5)))
    assert comparison.relative_error > 1e-2 and comparison.direction.startswith("parameter bias")


def test_an_untrained_convnet_on_blank_pixels_passes_its_checks(digits):
    """The other side of the test above: a correct bias of zeros on the kink is not a false alarm."""
    x, y = digits
    result = tn.trace(convnet(), x[:32].reshape(-1, 28, 28, 1), y[:32])
    assert result.max_check_error < CHECK_TOLERANCE, [(r.name, r.check_error, r.check_direction) for r in result.layers]


class SqrtLayer(tn.layers.Layer):
    formula = "y = sqrt(x)  |  gx = gy / (2 y)"

    def forward(self, x, training=False):
        self._y = np.sqrt(x)
        return self._y

    def backward(self, gy):
        with np.errstate(divide="ignore", invalid="ignore"):
            return gy / (2 * self._y)  # infinite at x = 0: NaN and inf flow back


def test_a_nan_gradient_is_an_infinite_error_never_ok(digits):
    x, y = digits
    model = tn.Sequential([tn.Input((784,)), tn.Dense(16, activation="relu"), SqrtLayer(), tn.Dense(10)], seed=0)
    model.compile("sgd", tn.losses.SparseCategoricalCrossentropy(from_logits=True))
    with np.errstate(all="ignore"):  # the check's steps also take sqrt of values below 0
        result = tn.trace(model, x[:16], y[:16])
    assert result.layers[1].check_error == np.inf
    assert result.max_check_error == np.inf
    assert "WRONG?" in str(result)


def test_trace_from_a_callback_during_fit(digits):
    """During fit the model carries its fast twins and Keras's loss rule: the trace's copy must not."""
    x, y = digits
    model, seen = mlp(), []
    callback = tn.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(tn.trace(model, x[:8], y[:8])))
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[callback])
    after = tn.trace(model, x[:8], y[:8])
    assert seen[0].max_check_error < CHECK_TOLERANCE
    assert seen[0].loss == pytest.approx(after.loss, rel=1e-6)
    for a, b in zip(seen[0].layers, after.layers):
        assert a.gx_norm == pytest.approx(b.gx_norm, rel=1e-5)


class DenseWithWrongShapedGx(tn.Dense):
    def backward(self, gy):
        return super().backward(gy)[:, :-1]


def test_a_gradient_of_the_wrong_shape_fails_its_row_and_names_it(digits):
    x, y = digits
    model = tn.Sequential([tn.Input((784,)), DenseWithWrongShapedGx(8), tn.Dense(10)], seed=0)
    model.compile("sgd", tn.losses.SparseCategoricalCrossentropy(from_logits=True))
    result = tn.trace(model, x[:4], y[:4])
    assert result.layers[0].check_error == np.inf
    assert "shape" in result.layers[0].check_direction
    assert result.layers[1].check_error < CHECK_TOLERANCE


def test_repr_is_one_line_and_text_is_the_table():
    model = tn.Sequential([tn.Input((4,)), tn.Dense(3, activation="relu"), tn.Dense(2, activation="softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    t = tn.trace(model, rng.standard_normal((5, 4)).astype(np.float32), rng.integers(0, 2, 5))
    assert "\n" not in repr(t) and repr(t).startswith("<Trace of 'sequential': 2 layers, batch of 5, L = ")
    assert len(repr(t)) < 160 and "worst gradient check" in repr(t)
    assert t.text() == str(t) and "FORWARD (v)" in t.text()
