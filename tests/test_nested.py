"""A model as a layer of another: ``Sequential([model, Softmax()])``, as the TensorFlow
quickstart builds its probability model. The inner model's forward and backward run inside
the outer's, its parameters are shared (training one trains the other), and files nest it
as Keras does."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tinynet as tn
from tinynet.gradcheck import check_backward

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "keras_files")


def data(n=64, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)).astype(np.float32), rng.integers(0, classes, n)


def inner_model(seed=0, **kwargs):
    layers = [tn.Input((4,)), tn.Dense(8, activation="relu"), tn.BatchNormalization(), tn.Dense(3)]
    return tn.Sequential(layers, seed=seed, **kwargs)


def test_the_probability_model_of_the_quickstart():
    x, y = data()
    model = inner_model()
    model.compile("adam", tn.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=0)
    probability_model = tn.Sequential([model, tn.Softmax()])
    assert [layer.name for layer in probability_model.layers] == ["sequential", "softmax"]
    assert probability_model.input_shape == (4,) and probability_model.output_shape == (3,)
    p = probability_model(x[:5])
    np.testing.assert_allclose(p, tn.ops.softmax(model(x[:5])), rtol=1e-6)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    assert probability_model.count_params() == model.count_params()


def test_a_model_inside_a_model_is_gradient_checked_through(rng):
    inner = tn.Sequential([tn.Input((4,)), tn.Dense(5, activation="tanh"), tn.Dense(3)], seed=0)
    outer = tn.Sequential([tn.Dense(4, input_shape=(2,), activation="sigmoid"), inner, tn.Softmax()], seed=1)
    assert len(outer.parameters()) == 6  # the inner model's parameters are the outer's
    check_backward(outer, rng.standard_normal((3, 2)))


def test_training_the_outer_model_trains_the_shared_inner_one_as_flat_training_would():
    x, y = data()
    nested = tn.Sequential([inner_model(seed=3), tn.Softmax()])
    flat = tn.Sequential([tn.Input((4,)), tn.Dense(8, activation="relu"), tn.BatchNormalization(), tn.Dense(3)])
    flat.add(tn.Softmax())
    flat.set_weights(nested.get_weights())
    for model in (nested, flat):
        model.compile(tn.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    a = nested.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0).history["loss"]
    b = flat.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(a, b, rtol=1e-5)  # the same steps, up to the fast twins' rounding
    assert a[-1] < a[0]
    inner = nested.layers[0]
    for w, v in zip(inner.get_weights(), flat.get_weights(), strict=False):
        np.testing.assert_allclose(w, v, rtol=1e-4, atol=1e-6)


def test_penalties_and_monitors_see_the_layers_inside():
    x, y = data()
    inner = tn.Sequential([tn.Input((4,)), tn.Dense(8, kernel_regularizer=tn.regularizers.L2(0.5)), tn.Dense(3)])
    outer = tn.Sequential([inner, tn.Softmax()], seed=0)
    outer.compile("adam", "sparse_categorical_crossentropy")
    plain = outer.evaluate(x, y, verbose=0)
    penalty = 0.5 * float((inner.layers[0].kernel.value ** 2).sum())
    assert outer.add_weight_penalties(0.0, gradients=False) == pytest.approx(penalty, rel=1e-6)
    monitor = tn.callbacks.GradientMonitor()
    outer.fit(x, y, epochs=1, verbose=0, callbacks=[monitor])
    assert list(monitor.history["grad_norm"]) == [
        "sequential/dense/kernel",
        "sequential/dense/bias",
        "sequential/dense_1/kernel",
        "sequential/dense_1/bias",
    ]
    assert plain > 0


def test_names_of_models_inside_are_keras_s():
    second = tn.Sequential([tn.Dense(4, activation="relu"), tn.Dense(2)])
    outer = tn.Sequential([inner_model(), second, tn.Dense(2)])
    assert [layer.name for layer in outer.layers] == ["sequential", "sequential_1", "dense"]
    assert tn.Sequential([inner_model(name="features"), tn.Softmax()]).layers[0].name == "features"


@pytest.mark.parametrize("suffix", [".npz", ".keras"])
def test_a_nested_model_round_trips_with_its_optimizer(tmp_path, suffix):
    x, y = data()
    model = tn.Sequential([inner_model(), tn.Dense(3), tn.Softmax()], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    loaded = tn.load_model(model.save(str(tmp_path / f"m{suffix}")))
    assert [type(layer).__name__ for layer in loaded.layers] == ["Sequential", "Dense", "Softmax"]
    assert [layer.name for layer in loaded.layers[0].layers] == ["dense", "batch_normalization", "dense_1"]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.iterations == model.optimizer.iterations == 2
    # a .keras file holds no shuffling state: without shuffling, the next epoch is the same
    a, b = (m.fit(x, y, epochs=1, shuffle=False, verbose=0) for m in (model, loaded))
    assert b.history["loss"] == pytest.approx(a.history["loss"], rel=1e-6)


def test_a_keras_written_nested_model_loads_and_predicts_what_keras_did():
    model = tn.load_model(os.path.join(FIXTURES, "nested.keras"))
    expected = np.load(os.path.join(FIXTURES, "nested_expected.npz"))
    assert [type(layer).__name__ for layer in model.layers] == ["Sequential", "Softmax"]
    assert [type(layer).__name__ for layer in model.layers[0].layers] == ["Dense", "BatchNormalization", "Dense"]
    np.testing.assert_allclose(model.predict(expected["x"]), expected["y"], rtol=1e-5, atol=1e-6)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_array_equal(w, expected[f"weights_{i}"])
    assert model.optimizer.iterations == 8


def test_keras_loads_the_nested_model_tinynet_wrote(tmp_path):
    """Runs where Keras is installed (pip install keras jax)."""
    keras = pytest.importorskip("keras")
    model = tn.load_model(os.path.join(FIXTURES, "nested.keras"))
    expected = np.load(os.path.join(FIXTURES, "nested_expected.npz"))
    back = keras.models.load_model(model.save(str(tmp_path / "nested.keras")))
    np.testing.assert_allclose(back.predict(expected["x"], verbose=0), expected["y"], rtol=1e-5, atol=1e-6)


def nested(depth):
    """A Dense inside ``depth`` models inside the outermost one."""
    model = tn.Sequential([tn.Input((3,)), tn.Dense(2)])
    for _ in range(depth):
        model = tn.Sequential([model])
    return model


@pytest.mark.parametrize("suffix", [".npz", ".keras"])
def test_files_nested_past_the_limit_are_refused(tmp_path, suffix):
    x = np.ones((2, 3), np.float32)
    deepest = nested(tn.saving.MAX_NESTING)  # as deep as a file may be: loads
    loaded = tn.load_model(deepest.save(str(tmp_path / f"ok{suffix}")))
    np.testing.assert_array_equal(loaded.predict(x), deepest.predict(x))
    with pytest.raises(tn.ModelFileError, match="nests models more than 4 deep"):
        tn.load_model(nested(tn.saving.MAX_NESTING + 1).save(str(tmp_path / f"deep{suffix}")))


def test_what_cannot_be_nested_is_refused_with_the_reason():
    model = inner_model()
    with pytest.raises(ValueError, match="a model cannot be a layer of itself"):
        model.add(model)
    with pytest.raises(ValueError, match=r"was built for samples of shape \(4,\), and here gets \(5,\)"):
        tn.Sequential([tn.Input((5,)), model])


def test_a_trained_model_put_inside_another_moves_to_its_device(gpu):
    x, y = data()
    model = inner_model(device="gpu")
    model.compile("adam", tn.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, verbose=0)
    on_cpu = tn.Sequential([inner_model(seed=5), tn.Softmax()])  # built on the CPU
    for outer in (tn.Sequential([model, tn.Softmax()]), tn.Sequential([on_cpu, tn.Dense(3)], device="gpu")):
        assert outer.predict(x, verbose=0).shape == (64, 3)
        outer.compile("adam", "sparse_categorical_crossentropy")
        outer.fit(x, y, epochs=1, verbose=0)


def test_a_layer_or_model_twice_in_one_model_is_refused():
    shared = tn.Sequential([tn.Input((3,)), tn.Dense(3, activation="tanh")])
    with pytest.raises(ValueError, match="is already in this model"):
        tn.Sequential([shared, shared])
    dense = tn.Dense(3)
    with pytest.raises(ValueError, match="a layer cannot run twice in one model"):
        tn.Sequential([tn.Input((3,)), dense, dense])


def test_resuming_a_nested_model_with_dropout_is_exact(tmp_path):
    x, y = data()

    def model():
        inner = tn.Sequential([tn.Input((4,)), tn.Dense(8, activation="relu"), tn.Dropout(0.3), tn.Dense(3)], seed=2)
        outer = tn.Sequential([inner, tn.Softmax()], seed=4)
        outer.compile("adam", "sparse_categorical_crossentropy")
        return outer

    straight = model()
    straight.fit(x, y, epochs=2, verbose=0)
    first = model()
    first.fit(x, y, epochs=1, verbose=0)
    resumed = tn.load_model(first.save(str(tmp_path / "m.npz")))
    resumed.fit(x, y, epochs=2, initial_epoch=1, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
