"""The Sequential API: training really learns, History and shapes follow Keras,
weights move both ways, and the same seed gives the same run."""

import io

import numpy as np
import pytest

import tinynet as tn


def blobs(n=400, seed=0):
    """Two separable Gaussian blobs in 2-D, labels 0/1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.standard_normal((n, 2)) * 0.7 + np.where(y[:, None] == 1, 2.0, -2.0)
    return x.astype(np.float32), y


def mlp(device="cpu", seed=0, output="softmax", units=2):
    return tn.Sequential(
        [tn.Input((2,)), tn.Dense(16, activation="relu"), tn.Dense(units, activation=output)], device=device, seed=seed
    )


def test_fit_learns_two_blobs(device):
    x, y = blobs()
    model = mlp(device)
    model.compile(tn.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    loss, acc = history.history["loss"], history.history["accuracy"]
    assert loss[-1] < 0.5 * loss[0]
    assert acc[-1] > 0.97
    assert model.evaluate(x, y, verbose=0)[1] > 0.97


@pytest.mark.parametrize(
    "loss,output,units,labels",
    [
        ("binary_crossentropy", "sigmoid", 1, "binary"),
        ("categorical_crossentropy", "softmax", 2, "onehot"),
        ("mse", "sigmoid", 1, "binary"),
    ],
)
def test_fit_with_other_losses(loss, output, units, labels):
    x, y = blobs()
    target = np.eye(2)[y] if labels == "onehot" else y
    model = mlp(output=output, units=units)
    model.compile(tn.optimizers.Adam(0.01), loss, metrics=["accuracy"])
    history = model.fit(x, target, epochs=6, verbose=0)
    assert history.history["accuracy"][-1] > 0.95


def test_history_keys_lengths_and_validation_split_semantics():
    x, y = blobs(n=100)
    model = mlp()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in history.history.values())
    assert history.epoch == [0, 1, 2]
    # the validation set is the last 20% of the samples, before any shuffling
    val_loss, val_acc = model.evaluate(x[80:], y[80:], verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-6)
    assert history.history["val_accuracy"][-1] == pytest.approx(val_acc)


def test_last_partial_batch_is_kept_and_loss_is_the_sample_weighted_mean():
    x, y = blobs(n=10)
    model = mlp()
    model.compile(tn.optimizers.SGD(0.0), "sparse_categorical_crossentropy")  # lr 0: weights fixed
    calls = []
    original = model.train_step
    model.train_step = lambda xb, yb, wb: calls.append(len(xb)) or original(xb, yb, wb)
    history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert calls == [4, 4, 2]
    assert history.history["loss"][0] == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)


def test_validation_data_and_return_dict():
    x, y = blobs(n=60)
    model = mlp()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, validation_data=(x[:10], y[:10]), verbose=0)
    assert "val_loss" in history.history
    result = model.evaluate(x, y, return_dict=True, verbose=0)
    assert set(result) == {"loss", "accuracy"}


def test_evaluate_predict_and_batch_methods_shapes():
    x, y = blobs(n=50)
    model = mlp()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    probs = model.predict(x, batch_size=7)
    assert isinstance(probs, np.ndarray) and probs.shape == (50, 2) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)
    loss, acc = model.train_on_batch(x[:8], y[:8])
    assert np.isfinite(loss) and 0 <= acc <= 1
    assert set(model.test_on_batch(x[:8], y[:8], return_dict=True)) == {"loss", "accuracy"}
    model.compile("adam", "sparse_categorical_crossentropy")  # no metrics: a plain float
    assert isinstance(model.evaluate(x, y, verbose=0), float)


def test_summary_counts_parameters():
    model = tn.Sequential(
        [tn.Dense(100, activation="relu", input_shape=(784,)), tn.Dropout(0.2), tn.Dense(10, activation="softmax")]
    )
    out = io.StringIO()
    model.summary(print_fn=out.write)
    text = out.getvalue()
    assert "dense (Dense)" in text and "dense_1 (Dense)" in text and "dropout (Dropout)" in text
    assert "78,500" in text and "1,010" in text
    assert "Total params: 79,510 (310.59 KB)" in text
    assert "(None, 100)" in text and "(None, 10)" in text


def test_summary_before_build_says_what_to_do():
    with pytest.raises(RuntimeError, match="not built yet"):
        tn.Sequential([tn.Dense(3)]).summary()


def test_shape_inference_without_input():
    model = tn.Sequential([tn.Flatten(), tn.Dense(3)])
    model.compile("sgd", "mse")
    model.fit(np.ones((4, 2, 5)), np.ones((4, 3)), verbose=0)
    assert model.input_shape == (2, 5)
    assert [w.shape for w in model.get_weights()] == [(10, 3), (3,)]


def test_adding_a_layer_to_a_built_model_builds_only_that_layer(monkeypatch):
    shapes_computed = []
    compute = tn.Dense.compute_output_shape
    monkeypatch.setattr(
        tn.Dense, "compute_output_shape", lambda self, shape: shapes_computed.append(self) or compute(self, shape)
    )
    model = tn.Sequential([tn.Input((4,))] + [tn.Dense(3) for _ in range(300)])
    assert model.output_shape == (3,) and len(model.shapes) == 300
    assert len(shapes_computed) == 300  # once each, at its build (not again at every later add)
    model.build((4,))  # an explicit build goes through every layer once more
    assert len(shapes_computed) == 600


def test_get_set_weights_round_trip_in_keras_order():
    a, b = mlp(seed=1), mlp(seed=2)
    weights = a.get_weights()
    assert [w.shape for w in weights] == [(2, 16), (16,), (16, 2), (2,)]
    b.set_weights(weights)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    x = blobs(n=5)[0]
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_set_weights_with_wrong_shape_names_the_layer():
    model = mlp()
    weights = model.get_weights()
    weights[2] = np.zeros((3, 2))
    expected = r"layer 'dense_1': kernel has shape \(16, 2\), got an array of shape \(3, 2\)"
    with pytest.raises(ValueError, match=expected):
        model.set_weights(weights)
    with pytest.raises(ValueError, match="expected 4 arrays, got 3"):
        model.set_weights(weights[:3])


def test_same_seed_same_run_on_cpu():
    x, y = blobs()

    def train(seed):
        model = tn.Sequential(
            [tn.Input((2,)), tn.Dense(8, activation="relu"), tn.Dropout(0.3), tn.Dense(2, activation="softmax")],
            seed=seed,
        )
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, verbose=0)
        return model.get_weights()

    first, second, other = train(5), train(5), train(6)
    for u, v in zip(first, second):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(first[0], other[0])


def test_same_seed_same_initial_weights_on_every_device(device):
    a = mlp(device="cpu", seed=9)
    b = mlp(device=device, seed=9)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_glorot_uniform_default_matches_keras_limits():
    model = tn.Sequential([tn.Input((784,)), tn.Dense(100)], seed=0)
    kernel, bias = model.get_weights()
    limit = np.sqrt(6 / (784 + 100))
    assert kernel.dtype == np.float32 and np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.95 * limit and abs(kernel.std() - limit / np.sqrt(3)) < 0.002
    assert np.all(bias == 0)


def test_progress_output_verbose_1_and_2(capsys):
    x, y = blobs(n=64)
    model = mlp()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=1, validation_split=0.25)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "3/3 " in out and "- accuracy: " in out and "- loss: " in out and "- val_loss: " in out
    model.fit(x, y, epochs=1, batch_size=16, verbose=2)
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("4/4 - ") and "/step - accuracy: " in line
    model.fit(x, y, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_stop_training_from_a_callback():
    class StopAfterFirst(tn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    x, y = blobs(n=40)
    model = mlp()
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=5, callbacks=[StopAfterFirst()], verbose=0)
    assert len(history.history["loss"]) == 1


def test_a_state_snapshot_does_not_move_with_training():
    x, y = blobs(n=64)
    model = mlp()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    state = model.get_state()
    m_before = state["optimizer"]["slots"]["m"][0].copy()
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(state["optimizer"]["slots"]["m"][0], m_before)
    uncompiled = mlp()
    with pytest.raises(ValueError, match="compile the model before set_state"):
        uncompiled.set_state(state)


def test_fit_goes_on_after_a_gradient_check_cast_one_layer_to_float64():
    """Mixed dtypes cannot share one flat buffer: the optimizer's flat state is split per parameter."""
    x, y = blobs(n=64)
    model = mlp()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    tn.gradcheck.check_backward(model.layers[0], x[:4].astype(np.float64))
    history = model.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_a_deep_copy_of_a_trained_model_learns_as_the_model_does(optimizer):
    """The copy's parameters must not be left beside a copied flat buffer that the optimizer steps."""
    import copy

    model = tn.Sequential([tn.Input((5,)), tn.Dense(4, activation="relu"), tn.Dense(3, activation="softmax")], seed=0)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).standard_normal((32, 5)).astype(np.float32)
    y = np.arange(32) % 3
    model.fit(x, y, epochs=1, verbose=0)
    twin = copy.deepcopy(model)
    before = [w.copy() for w in twin.get_weights()]
    twin.train_on_batch(x[:4], y[:4])
    model.train_on_batch(x[:4], y[:4])
    assert any((a != b).any() for a, b in zip(before, twin.get_weights()))
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_deep_copy_made_during_fit_evaluates_and_trains_on_its_own():
    """The "keep the best model" habit: a callback deep-copies the model while fit runs, when
    the fast twins and Keras's loss rule are bound on its objects. The copy is the textbook."""
    import copy

    model = tn.Sequential([tn.Input((5,)), tn.Dense(4, activation="relu"), tn.Dense(3, activation="softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).standard_normal((32, 5)).astype(np.float32)
    y = np.arange(32) % 3
    kept = []
    keep_best = tn.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: kept.append(copy.deepcopy(model)))
    model.fit(x, y, epochs=2, verbose=0, callbacks=[keep_best])
    best = kept[-1]
    assert tn.engine.twins.installed(best) == []
    assert not {"forward", "backward", "update", "logits"} & {
        k for obj in tn.engine.twins.objects(best) for k in vars(obj)
    }
    np.testing.assert_allclose(best.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6)
    best.fit(x, y, epochs=1, verbose=0)  # it trains on its own
    assert any((a != b).any() for a, b in zip(best.get_weights(), model.get_weights()))
