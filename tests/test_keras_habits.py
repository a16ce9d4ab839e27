"""What Keras tutorials do that tinynet now does too: loss objects called as Keras calls them,
compile without a loss, model.pop(), clear_session(), ModelCheckpoint of .weights.h5, the
losses mae/huber/kl_divergence and the metric "mae" (Keras's numbers in float64), the layers
Rescaling and GlobalAveragePooling2D, and clear errors where a habit cannot work."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tinynet as tn
from tinynet.gradcheck import check_backward

LOSSES = np.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "losses.npz"))


def small_model(**compile_kwargs):
    model = tn.Sequential([tn.Input((4,)), tn.Dense(5, activation="relu"), tn.Dense(3)], seed=0)
    if compile_kwargs:
        model.compile(**compile_kwargs)
    return model


def test_a_loss_object_is_called_in_keras_s_order():
    loss_fn = tn.losses.SparseCategoricalCrossentropy(from_logits=True)
    logits = np.array([[2.0, -1.0, 0.5]], dtype=np.float32)
    value = loss_fn([0], logits)  # Keras's order: the targets first; lists are fine
    expected = -np.log(np.exp(2.0) / np.exp([2.0, -1.0, 0.5]).sum())
    assert float(value) == pytest.approx(expected, rel=1e-6)
    assert float(loss_fn.forward(logits, np.array([0]))) == pytest.approx(expected, rel=1e-6)  # the textbook's


def test_the_wrong_order_says_so_instead_of_an_index_error():
    loss_fn = tn.losses.SparseCategoricalCrossentropy(from_logits=True)
    logits, labels = np.array([[2.0, -1.0, 0.5]], dtype=np.float32), np.array([0])
    with pytest.raises(TypeError, match="takes the prediction first"):
        loss_fn.forward(labels, logits)
    with pytest.raises(TypeError, match="takes the targets first, as Keras"):
        loss_fn(logits, labels)


def test_labels_stored_as_floats_work_as_in_keras():
    loss_fn = tn.losses.SparseCategoricalCrossentropy(from_logits=True)
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]], dtype=np.float32)
    assert float(loss_fn(np.array([0.0, 1.0]), logits)) == pytest.approx(float(loss_fn([0, 1], logits)))


def test_compile_without_a_loss_predicts_and_fit_says_what_is_missing():
    model = small_model(optimizer="adam")
    assert model.predict(np.ones((2, 4))).shape == (2, 3)
    for call in (
        lambda: model.fit(np.ones((4, 4)), np.zeros(4), verbose=0),
        lambda: model.evaluate(np.ones((4, 4)), np.zeros(4)),
    ):
        with pytest.raises(RuntimeError, match="needs a loss, and the model was compiled without one"):
            call()


def test_a_generator_given_to_fit_is_named():
    model = small_model(optimizer="adam", loss="mse")
    batches = ((np.ones((2, 4)), np.ones((2, 3))) for _ in range(3))
    with pytest.raises(TypeError, match="x is a generator.*np.concatenate"):
        model.fit(batches, verbose=0)


def test_pop_removes_the_last_layer_and_the_model_trains_on():
    model = small_model(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    model.fit(x, np.zeros((16, 3)), verbose=0)
    last = model.pop()
    assert isinstance(last, tn.Dense) and len(model.layers) == 1 and model.output_shape == (5,)
    assert model.predict(x).shape == (16, 5)
    model.fit(x, np.zeros((16, 5)), verbose=0)  # its optimizer's state starts afresh for 5 outputs
    model.pop()
    with pytest.raises(TypeError, match="no layer to remove"):
        model.pop()


def test_clear_session_exists_and_names_start_afresh_in_each_model():
    tn.backend.clear_session()
    assert small_model().layers[0].name == "dense" and small_model().layers[0].name == "dense"


def test_model_checkpoint_writes_keras_weights_files(tmp_path):
    model = small_model(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    path = str(tmp_path / "w.weights.h5")
    model.fit(
        x,
        np.zeros((16, 3)),
        epochs=2,
        verbose=0,
        callbacks=[tn.callbacks.ModelCheckpoint(path, save_weights_only=True)],
    )
    other = small_model()
    other.load_weights(path)
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"filepath": "w.weights.h5"}, "save_weights_only=True"), ({"filepath": "m.h5"}, "legacy .h5 model files")],
)
def test_model_checkpoint_refuses_a_file_it_cannot_write_at_once(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tn.callbacks.ModelCheckpoint(**kwargs)


def test_summary_keeps_a_pooling_layer_s_name_on_one_line():
    model = tn.Sequential(
        [tn.Input((8, 8, 1)), tn.Conv2D(2, 3), tn.MaxPooling2D(), tn.Conv2D(2, 1), tn.MaxPooling2D(), tn.Flatten()]
    )
    lines = []
    model.summary(print_fn=lines.append)
    text = lines[0]
    assert "max_pooling2d_1 (MaxPooling2D)" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "┃ Layer (type)" in text and text.count("┃") == 5  # the header on one line: "Activation" unbroken


@pytest.mark.parametrize(
    "name, loss, inputs",
    [
        ("mae", tn.losses.MeanAbsoluteError(), "y"),
        ("huber", tn.losses.Huber(), "y"),
        ("huber_delta_0.5", tn.losses.Huber(delta=0.5), "y"),
        ("kl_divergence", tn.losses.KLDivergence(), "p"),
    ],
)
def test_the_new_losses_are_keras_s_in_float64(xp, name, loss, inputs):
    y_true, y_pred = xp.asarray(LOSSES[f"{inputs}_true"]), xp.asarray(LOSSES[f"{inputs}_pred"])
    value = float(loss(y_true, y_pred))
    grad = tn.backend.to_numpy(loss.backward())
    # Keras 3.15 on JAX takes ``ops.mean`` through float32 even for float64 input (its
    # result_type(x, "float32")): its MAE and Huber carry a 3e-8 relative error, measured, where
    # tinynet's mean stays float64. The KL divergence sums over classes and agrees to 1e-16.
    rel = 1e-12 if name == "kl_divergence" else 1e-7
    assert value == pytest.approx(float(LOSSES[f"{name}_loss"]), rel=rel)
    scale = np.abs(LOSSES[f"{name}_grad"]).max()
    np.testing.assert_allclose(grad, LOSSES[f"{name}_grad"], rtol=0, atol=rel * scale)


@pytest.mark.parametrize("name", ["mae", "huber", "kl_divergence", "kld", "mean_absolute_error"])
def test_the_new_losses_by_name_gradient_check_and_train(name, rng):
    loss = tn.losses.get(name)
    if name in ("kl_divergence", "kld"):
        # Probabilities away from 0: the slope -t/y is steep near y = 0, where central
        # differences with a 1e-3 step are no longer a fair reference.
        y_true, y_pred = rng.dirichlet(np.full(4, 8.0), size=5), rng.dirichlet(np.full(4, 8.0), size=5)
    else:
        y_true, y_pred = rng.standard_normal((5, 4)), rng.standard_normal((5, 4)) * 2
    check_backward(loss, y_pred, y_true=y_true)
    activation = "softmax" if name in ("kl_divergence", "kld") else None
    model = tn.Sequential([tn.Input((3,)), tn.Dense(4, activation=activation)], seed=0)
    model.compile(tn.optimizers.Adam(0.05), name)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    target = rng.dirichlet(np.ones(4), size=64) if activation else x @ rng.standard_normal((3, 4))
    losses = model.fit(x, target.astype(np.float32), epochs=5, verbose=0).history["loss"]
    assert losses[-1] < losses[0]


def test_the_mae_metric_is_keras_s():
    y_true, y_pred = LOSSES["y_true"].astype(np.float32), LOSSES["y_pred"].astype(np.float32)
    model = tn.Sequential([tn.Input((4,)), tn.Reshape((4,))])
    model.compile("sgd", "mse", metrics=["mae"])
    logs = model.evaluate(y_pred, y_true, return_dict=True, verbose=0)
    assert logs["mae"] == pytest.approx(float(LOSSES["mae_metric"]), rel=1e-6)


def test_huber_refuses_a_delta_that_is_not_positive():
    with pytest.raises(ValueError, match="delta"):
        tn.losses.Huber(delta=0)


def test_rescaling_and_global_average_pooling_gradient_check(device, xp, rng):
    check_backward(tn.Rescaling(1 / 255, offset=-0.5), xp.asarray(rng.standard_normal((3, 4))))
    pool = tn.GlobalAveragePooling2D()
    assert pool.compute_output_shape((5, 6, 3)) == (3,)
    check_backward(pool, xp.asarray(rng.standard_normal((2, 5, 6, 3))))


@pytest.mark.parametrize("suffix", [".npz", ".keras"])
def test_a_convnet_with_rescaling_and_global_pooling_round_trips(tmp_path, suffix):
    model = tn.Sequential(
        [
            tn.Input((8, 8, 1)),
            tn.Rescaling(1 / 255),
            tn.Conv2D(3, 3, activation="relu"),
            tn.GlobalAveragePooling2D(),
            tn.Dense(2),
        ],
        seed=0,
    )
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1)).astype(np.float32)
    model.save(str(tmp_path / f"m{suffix}"))
    loaded = tn.load_model(str(tmp_path / f"m{suffix}"))
    assert [type(layer).__name__ for layer in loaded.layers] == [
        "Rescaling",
        "Conv2D",
        "GlobalAveragePooling2D",
        "Dense",
    ]
    assert loaded.layers[0].scale == pytest.approx(1 / 255)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# ---------------------------------------------------------------- metric objects


def test_metric_objects_train_and_log_under_their_names(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 4)).astype(np.float32), rng.integers(0, 3, 64)
    model = small_model()
    model.compile(
        "adam",
        "sparse_categorical_crossentropy",
        metrics=[tn.metrics.SparseCategoricalAccuracy(), tn.metrics.SparseCategoricalAccuracy(name="acc"), "accuracy"],
    )
    history = model.fit(x, y, epochs=2, verbose=0).history
    assert list(history) == ["loss", "sparse_categorical_accuracy", "acc", "accuracy"]
    assert history["acc"] == history["sparse_categorical_accuracy"] == history["accuracy"]
    logs = model.evaluate(x, y, return_dict=True, verbose=0)
    by_hand = float((model.predict(x, verbose=0).argmax(axis=1) == y).mean())
    assert logs["acc"] == pytest.approx(by_hand, abs=1e-12)
    for suffix in (".npz", ".keras"):  # a named metric object comes back under its name
        model.save(str(tmp_path / f"m{suffix}"))
        loaded = tn.load_model(str(tmp_path / f"m{suffix}"))
        assert loaded.metrics == ["sparse_categorical_accuracy", "acc", "accuracy"]
        assert loaded.evaluate(x, y, return_dict=True, verbose=0) == pytest.approx(logs, abs=1e-7)


def test_a_metric_object_alone_keeps_a_weighted_running_mean():
    metric = tn.metrics.SparseCategoricalAccuracy()
    assert metric.result() == 0.0  # before any update, as Keras
    metric.update_state([0, 1, 2], [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])  # 2 of 3 right
    assert metric.result() == pytest.approx(2 / 3)
    metric.update_state([1], [[0.9, 0.1, 0.0]], sample_weight=[3.0])  # wrong, weight 3
    assert metric.result() == pytest.approx(2 / 6)
    metric.reset_state()
    assert metric.result() == 0.0
    mean = tn.metrics.Mean(name="train_loss")
    mean.update_state(2.0)
    mean.update_state([4.0, 6.0])
    assert (mean.name, mean.result()) == ("train_loss", pytest.approx(4.0))
    mae = tn.metrics.MeanAbsoluteError()
    mae.update_state(LOSSES["y_true"], LOSSES["y_pred"])
    assert mae.result() == pytest.approx(float(LOSSES["mae_metric"]), rel=1e-7)  # Keras's, see above


def test_binary_accuracy_s_threshold_on_probabilities_and_on_logits():
    y_true, p = np.array([[1.0], [0.0], [1.0]]), np.array([[0.8], [0.6], [0.65]])
    metric = tn.metrics.BinaryAccuracy(threshold=0.7)
    metric.update_state(y_true, p)
    assert metric.result() == pytest.approx(2 / 3)  # 0.8 right, 0.6 right (below), 0.65 wrong
    logits = np.log(p / (1 - p))
    np.testing.assert_array_equal(metric.per_sample(y_true, logits, from_logits=True), [1.0, 1.0, 0.0])


@pytest.mark.parametrize(
    "metrics, error, message",
    [
        ([tn.metrics.SparseCategoricalAccuracy], TypeError, r"write SparseCategoricalAccuracy\(\)"),
        (["acc", tn.metrics.SparseCategoricalAccuracy(name="acc")], ValueError, "lists a name twice"),
        (["f1"], ValueError, r"unknown metric 'f1'; tinynet computes .*SparseCategoricalAccuracy\(\)"),
        (tn.metrics.Mean(), TypeError, "metrics must be a list"),
    ],
)
def test_bad_metrics_are_refused_at_compile(metrics, error, message):
    with pytest.raises(error, match=message):
        small_model().compile("adam", "mse", metrics=metrics)


def test_a_metric_name_must_be_a_string():
    with pytest.raises(ValueError, match="a metric's name must be a non-empty string"):
        tn.metrics.Mean(name="")
    with pytest.raises(ValueError, match="threshold"):
        tn.metrics.BinaryAccuracy(threshold=1.5)


def test_mae_of_class_labels_says_what_it_compares():
    rng = np.random.default_rng(0)
    model = small_model()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["mae"])
    with pytest.raises(ValueError, match=r"targets of the same shape, got targets \(16,\) \(class labels\?"):
        model.fit(rng.standard_normal((16, 4)).astype(np.float32), rng.integers(0, 3, 16), verbose=0)


def test_kl_divergence_over_more_axes_averages_every_row(rng):
    y_true, y_pred = rng.dirichlet(np.full(4, 8.0), size=(3, 5)), rng.dirichlet(np.full(4, 8.0), size=(3, 5))
    check_backward(tn.losses.KLDivergence(), y_pred, y_true=y_true)  # (3, 5, 4): 15 rows averaged
    flat = tn.losses.KLDivergence()
    assert float(flat(y_true.reshape(15, 4), y_pred.reshape(15, 4))) == pytest.approx(
        float(tn.losses.KLDivergence()(y_true, y_pred)), rel=1e-12
    )


def test_a_mean_metric_is_refused_by_compile():
    with pytest.raises(TypeError, match="compile takes metrics of predictions"):
        small_model().compile("adam", "mse", metrics=[tn.metrics.Mean()])
