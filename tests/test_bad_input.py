"""Bad input gets a clear error that says what was expected and what came."""

import numpy as np
import pytest

import tinynet as tn


@pytest.fixture
def model():
    m = tn.Sequential([tn.Input((4,)), tn.Dense(8, activation="relu"), tn.Dense(3, activation="softmax")], seed=0)
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


X = np.ones((10, 4), dtype=np.float32)
Y = np.arange(10) % 3


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"y": Y[:7]}, ValueError, "x and y must have the same number of samples: x has 10, y has 7 samples"),
        (
            {"x": np.ones((10, 5))},
            ValueError,
            r"the model expects samples of shape \(4,\), so x of shape \(N, 4\); got x of shape \(10, 5\)",
        ),
        ({"x": np.ones(4)}, ValueError, r"batch axis first.*got shape \(4,\)"),
        ({"x": np.ones((0, 4)), "y": Y[:0]}, ValueError, r"x is empty: shape \(0, 4\)"),
        (
            {"y": np.array([0, 1, 2, 3, 0, 1, 2, 0, 1, 2])},
            ValueError,
            r"labels in y must be in \[0, 2\] for a model with 3 outputs, got values from 0 to 3",
        ),
        ({"y": -(Y + 1)}, ValueError, r"must be in \[0, 2\].*got values from -3 to -1"),
        ({"y": Y + 0.5}, ValueError, "whole-number class indices"),
        ({"y": np.eye(3)[Y]}, ValueError, r"class indices of shape \(N,\) or \(N, 1\), got shape \(10, 3\)"),
        ({"x": np.where(np.eye(10, 4) > 0, np.nan, 1.0)}, ValueError, "x contains 4 NaN or infinite value"),
        ({"x": np.full((10, 4), np.inf)}, ValueError, "NaN or infinite"),
        ({"x": np.array([["a"] * 4] * 10)}, TypeError, "x must hold numbers, got an array of dtype <U1"),
        ({"x": np.array([[object()] * 4] * 10)}, TypeError, "dtype object"),
        ({"x": "not an array"}, TypeError, "x must be a NumPy or CuPy array, got str"),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer, got 0"),
        ({"batch_size": 2.5}, ValueError, "batch_size must be a positive integer, got 2.5"),
        ({"epochs": -1}, ValueError, "epochs must be a positive integer, got -1"),
        ({"validation_split": 1.0}, ValueError, r"validation_split must be a number in \[0, 1\), got 1.0"),
        ({"validation_split": -0.1}, ValueError, r"validation_split must be a number in \[0, 1\)"),
        ({"verbose": 3}, ValueError, 'verbose must be 0, 1, 2 or "auto", got 3'),
        ({"validation_data": (X,)}, ValueError, r"validation_data must be a tuple \(x_val, y_val\)"),
        ({"shuffle": "no"}, TypeError, "shuffle must be True or False, got 'no'"),
        ({"shuffle": 0}, TypeError, "shuffle must be True or False, got 0"),
        (
            {"callbacks": tn.callbacks.History()},
            TypeError,
            r"callbacks must be a list of callbacks, e\.g\. callbacks=\[History\(\.\.\.\)\], got one History",
        ),
        (
            {"epochs": 3, "initial_epoch": 5},
            ValueError,
            "initial_epoch=5 is past epochs=3: epochs is the epoch number to train up to.*pass epochs=8",
        ),
        (
            {"x": [[1.0, 2.0, 3.0, 4.0]] * 5 + [[1.0, 2.0, 3.0]] + [[1.0, 2.0, 3.0, 4.0]] * 4},
            ValueError,
            r"x is a nested list whose samples differ in shape \(x\[0\] holds 4 values, x\[5\] holds 3\)",
        ),
        (
            {"y": [0, 1, [2, 0]] + [0] * 7},
            ValueError,
            r"y is a nested list .*\(y\[2\] holds 2 values, y\[0\] is a single number\)",
        ),
    ],
)
def test_fit_rejects(model, kwargs, error, message):
    args = {"x": X, "y": Y, "verbose": 0, **kwargs}
    before = model.get_weights()
    with pytest.raises(error, match=message):
        model.fit(**args)
    for a, b in zip(before, model.get_weights()):  # refused before any step
        np.testing.assert_array_equal(a, b)
    assert model.epochs_done == 0


def test_fit_options_that_are_right_are_taken(model):
    history = model.fit(X, Y, epochs=2, initial_epoch=2, verbose=0)  # nothing left to train
    assert history.epoch == []
    history = model.fit(X, Y, epochs=2, shuffle=np.bool_(False), callbacks=(tn.callbacks.History(),), verbose=0)
    assert history.epoch == [0, 1]
    nested = [[float(v) for v in row] for row in X]  # a nested list of the same shape is fine
    np.testing.assert_array_equal(model.predict(nested, verbose=0), model.predict(X, verbose=0))


def test_a_layer_too_big_for_memory_is_refused_before_allocating(monkeypatch):
    with pytest.raises(
        ValueError,
        match=r"layer 'dense': a kernel of shape \(784, 1000000000000\) and "
        r"1000000000000 biases are 785,000,000,000,000 weights, 5.58 PiB as float32",
    ):
        tn.Sequential([tn.Input((784,)), tn.Dense(10**12)])
    with pytest.raises(ValueError, match=r"layer 'conv2d': a kernel of shape \(3, 3, 3, 10000000000\).*TiB"):
        tn.Sequential([tn.Input((28, 28, 3)), tn.Conv2D(10**10, 3)])
    # the limit is the machine's memory: 4 bytes a weight and 4 its gradient
    from tinynet import validation

    monkeypatch.setattr(validation, "memory_limit", lambda: 8 * (4 * 3 + 3))
    tn.Sequential([tn.Input((4,)), tn.Dense(3)])  # exactly fits
    with pytest.raises(
        ValueError, match=r"\(4, 4\) and 4 biases are 20 weights, 160 bytes .* this machine's 120 bytes"
    ):
        tn.Sequential([tn.Input((4,)), tn.Dense(4)])
    monkeypatch.undo()
    monkeypatch.delattr(validation.os, "sysconf")  # not POSIX: a fixed bound
    assert validation.memory_limit() == validation.FALLBACK_MEMORY_LIMIT


def test_a_layer_built_in_one_model_refuses_another_input_size():
    shared = tn.Dense(3, name="shared")
    first = tn.Sequential([tn.Input((4,)), shared, tn.Dense(2)])
    expected = r"layer 'shared' was built for inputs whose last axis has size 4, and here gets samples of shape \(5,\)"
    with pytest.raises(ValueError, match=expected):
        tn.Sequential([tn.Input((5,)), shared])
    second = tn.Sequential([tn.Input((5,)), tn.Dense(4)])
    second.add(shared)  # Dense(4) gives it 4 features: fine
    assert second.predict(np.ones((2, 5)), verbose=0).shape == (2, 3)
    third = tn.Sequential([tn.Input((5,)), tn.Dense(6)])
    with pytest.raises(ValueError, match=r"'shared' was built for .* size 4, .* shape \(6,\)"):
        third.add(shared)
    conv = tn.Conv2D(2, 3, name="conv")
    tn.Sequential([tn.Input((8, 8, 1)), conv])
    tn.Sequential([tn.Input((12, 12, 1)), conv])  # another image size, the same channels: its kernel fits
    with pytest.raises(ValueError, match=r"'conv' was built for .* size 1, .* shape \(8, 8, 3\)"):
        tn.Sequential([tn.Input((8, 8, 3)), conv])
    # the same input size again shares the layer, weights and all
    again = tn.Sequential([tn.Input((4,)), shared])
    np.testing.assert_array_equal(again.get_weights()[0], first.get_weights()[0])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_set_weights_refuses_non_finite_arrays(model, bad):
    weights = model.get_weights()
    broken = [w.copy() for w in weights]
    broken[3][1] = bad  # the second Dense's bias
    with pytest.raises(ValueError, match=r"layer 'dense_1': bias got an array with 1 NaN or infinite value"):
        model.set_weights(broken)
    with pytest.raises(ValueError, match=r"layer 'dense_1': bias got an array with 1 NaN or infinite value"):
        model.layers[1].set_weights(broken[2:])
    for a, b in zip(weights, model.get_weights()):  # nothing was changed
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match=r"layer 'dense': kernel must be an array of numbers, got dtype <U1"):
        model.layers[0].set_weights([np.full((4, 8), "a"), weights[1]])


def test_validation_split_too_small_for_the_data(model):
    with pytest.raises(
        ValueError,
        match="validation_split=0.95 of 10 samples leaves 0 for training and 10 for validation; both need at least one",
    ):
        model.fit(X, Y, validation_split=0.95, verbose=0)


def test_fit_before_compile():
    m = tn.Sequential([tn.Input((4,)), tn.Dense(2)])
    with pytest.raises(RuntimeError, match=r"call model.compile\(optimizer=..., loss=...\) before model.fit"):
        m.fit(X, Y)
    with pytest.raises(RuntimeError, match="before model.evaluate"):
        m.evaluate(X, Y)


def test_compile_needs_a_known_loss_optimizer_and_metric():
    m = tn.Sequential([tn.Input((4,)), tn.Dense(2)])
    m.compile("adam")  # as Keras: a model compiled for predict only
    with pytest.raises(RuntimeError, match="model.fit needs a loss, and the model was compiled without one"):
        m.fit(np.ones((4, 4)), np.ones((4, 2)), verbose=0)
    assert m.predict(np.ones((3, 4))).shape == (3, 2)
    with pytest.raises(ValueError, match="unknown loss 'cross_entropy'"):
        m.compile("adam", "cross_entropy")
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        m.compile("adamm", "mse")
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        m.compile("adam", "mse", metrics=["f1"])


def test_unknown_activation_and_bad_layer_arguments():
    with pytest.raises(
        ValueError,
        match=r"unknown activation 'relu6'; expected one of \['elu', 'gelu', 'leaky_relu', 'linear', 'relu', 'sigmoid'",
    ):
        tn.Dense(3, activation="relu6")
    with pytest.raises(ValueError, match="Dense units must be a positive integer, got 0"):
        tn.Dense(0)
    with pytest.raises(ValueError, match=r"Dropout rate must be in \[0, 1\), got 1.0"):
        tn.Dropout(1.0)
    with pytest.raises(ValueError, match="unknown initializer 'glorot'"):
        tn.Dense(3, kernel_initializer="glorot")
    with pytest.raises(ValueError, match=r"expects samples of shape \(features,\), got \(2, 3\); add a Flatten"):
        tn.Sequential([tn.Input((2, 3)), tn.Dense(4)])


def test_negative_learning_rate(model):
    with pytest.raises(ValueError, match="learning_rate must be a finite number >= 0, got -0.1"):
        model.compile(tn.optimizers.Adam(learning_rate=-0.1), "mse")


def test_binary_and_categorical_targets_are_checked():
    m = tn.Sequential([tn.Input((4,)), tn.Dense(1, activation="sigmoid")])
    m.compile("adam", "binary_crossentropy")
    with pytest.raises(ValueError, match=r"binary_crossentropy expects y in \[0, 1\], got values from 0 to 2"):
        m.fit(X, Y, verbose=0)
    with pytest.raises(ValueError, match=r"expects y shaped like the model's output \(N, 1\), got shape \(10, 2\)"):
        m.fit(X, np.zeros((10, 2)), verbose=0)
    c = tn.Sequential([tn.Input((4,)), tn.Dense(3, activation="softmax")])
    c.compile("adam", "categorical_crossentropy")
    with pytest.raises(ValueError, match="for class indices use sparse_categorical_crossentropy"):
        c.fit(X, Y[:, None] * np.ones((1, 3)), verbose=0)


def test_integer_images_are_converted_with_values_unchanged(model):
    x = (np.arange(40).reshape(10, 4) % 256).astype(np.uint8)
    with pytest.warns(UserWarning, match="raw pixels"):  # accepted, with the raw-pixel hint
        model.fit(x, Y, epochs=1, verbose=0)  # converted to float32, values kept
    assert model.predict(x).dtype == np.float32
