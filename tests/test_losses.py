"""Loss values and Keras's semantics for probability outputs, checked against
formulas written out here with NumPy."""

import io
import math

import numpy as np
import pytest

import tinynet as tn
from tinynet import losses


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_fused_gradient_is_p_minus_onehot_over_n():
    z = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = np.array([2, 0])
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    value = loss.forward(z, t)
    p = np.exp(log_softmax(z))
    assert value == pytest.approx(-(np.log(p[0, 2]) + np.log(p[1, 0])) / 2, rel=1e-12)
    np.testing.assert_allclose(loss.backward(), (p - np.eye(3)[t]) / 2, rtol=1e-12)


def test_probability_path_renormalises_and_clips():
    loss = losses.CategoricalCrossentropy()
    y = np.array([[2.0, 2.0, 0.0]])  # sums to 4: renormalised to [0.5, 0.5, 0]
    assert float(loss.forward(y, np.array([[1.0, 0.0, 0.0]]))) == pytest.approx(math.log(2), rel=1e-12)
    # the true class has probability 0: clipped to 1e-7, not infinite
    assert float(loss.forward(y, np.array([[0.0, 0.0, 1.0]]))) == pytest.approx(-math.log(1e-7), rel=1e-9)
    assert np.all(loss.backward()[0, 2] == 0)  # no gradient through the clip


def _sigmoid_model(use_output_logits, seed=0):
    model = tn.Sequential([tn.Input((5,)), tn.Dense(4, activation="sigmoid")], seed=seed)
    model.compile("adam", losses.SparseCategoricalCrossentropy(use_output_logits=use_output_logits))
    return model


def test_sigmoid_output_with_sparse_crossentropy_follows_keras_tensorflow_backend():
    """Keras (TF backend) computes this loss as the *softmax* cross-entropy of the
    pre-sigmoid logits; its other backends renormalise the sigmoid outputs."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 5)).astype(np.float32)
    y = rng.integers(0, 4, size=16)
    tf_model, other_model = _sigmoid_model(True), _sigmoid_model(False)
    W, b = tf_model.get_weights()
    z = x.astype(np.float64) @ W + b
    tf_expected = -log_softmax(z)[np.arange(16), y].mean()
    s = 1 / (1 + np.exp(-z))
    q = np.clip(s / s.sum(axis=1, keepdims=True), 1e-7, 1 - 1e-7)
    other_expected = -np.log(q[np.arange(16), y]).mean()
    assert abs(tf_expected - other_expected) > 0.05  # the two semantics really differ here
    assert tf_model.evaluate(x, y, verbose=0) == pytest.approx(tf_expected, rel=1e-5)
    assert other_model.evaluate(x, y, verbose=0) == pytest.approx(other_expected, rel=1e-5)
    # predict returns the sigmoid outputs in both modes
    np.testing.assert_allclose(tf_model.predict(x), s, rtol=1e-5)


def test_binary_crossentropy_after_sigmoid_uses_logits_and_does_not_clip():
    model = tn.Sequential([tn.Input((1,)), tn.Dense(1, activation="sigmoid", kernel_initializer="ones")])
    model.compile("sgd", "binary_crossentropy")
    x, y = np.array([[30.0]], dtype=np.float32), np.array([0])
    # logits path: log(1 + e^30) ~ 30; a clipped probability would give -log(1e-7) ~ 16.1
    assert model.evaluate(x, y, verbose=0) == pytest.approx(30.0, rel=1e-6)
    model.compile("sgd", losses.BinaryCrossentropy(use_output_logits=False))
    # clipped to 1 - 1e-7, which float32 rounds to 1 - 1.19e-7: loss -log(1.19e-7) = 15.94 (as Keras in float32)
    clipped = np.float32(1) - np.float32(1 - 1e-7)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(-math.log(clipped), rel=1e-6)


def test_binary_crossentropy_and_mse_values():
    t = np.array([[1.0, 0.0], [0.0, 1.0]])
    z = np.array([[2.0, -1.0], [0.5, 0.0]])
    bce = losses.BinaryCrossentropy(from_logits=True)
    s = 1 / (1 + np.exp(-z))
    assert float(bce.forward(z, t)) == pytest.approx(-(t * np.log(s) + (1 - t) * np.log(1 - s)).mean(), rel=1e-12)
    mse = losses.MeanSquaredError()
    assert float(mse.forward(z, t)) == pytest.approx(((z - t) ** 2).mean())


def test_summary_says_which_path_the_loss_takes():
    out = io.StringIO()
    model = _sigmoid_model(True)
    model.summary(print_fn=lambda s: out.write(s))
    assert "from the sigmoid's input (as Keras)" in out.getvalue()
    out = io.StringIO()
    _sigmoid_model(False).summary(print_fn=lambda s: out.write(s))
    assert "computed from probabilities" in out.getvalue()


def test_from_logits_true_with_linear_output():
    model = tn.Sequential([tn.Input((3,)), tn.Dense(2)], seed=1)
    model.compile("sgd", losses.SparseCategoricalCrossentropy(from_logits=True))
    assert not model.output_logits  # the output already is the logits
    x, y = np.ones((2, 3), dtype=np.float32), np.array([0, 1])
    W, b = model.get_weights()
    expected = -log_softmax(x @ W + b)[np.arange(2), y].mean()
    assert model.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-6)


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss 'hinge'; expected one of"):
        losses.get("hinge")


def test_a_sigmoid_output_under_categorical_cross_entropy_says_it_trains_as_softmax():
    model = tn.Sequential([tn.Input((4,)), tn.Dense(10, activation="sigmoid")])
    model.compile("adam", "sparse_categorical_crossentropy")
    lines = []
    model.summary(print_fn=lines.append)
    text = lines[0]
    assert "trains exactly as a softmax output would" in text and "loss='binary_crossentropy'" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    binary = tn.Sequential([tn.Input((4,)), tn.Dense(10, activation="sigmoid")])
    binary.compile("adam", "binary_crossentropy")
    binary.summary(print_fn=lines.append)
    assert "softmax" not in lines[1]
