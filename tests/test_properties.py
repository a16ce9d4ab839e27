"""Properties that hold for all inputs, checked with Hypothesis (float64, inputs up
to +-1e4)."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn
from tinynet import losses
from tinynet.layers import sigmoid, softmax

finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=64)
matrices = hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8), elements=finite)
settings.register_profile("tinynet", deadline=None, max_examples=60)
settings.load_profile("tinynet")


@given(matrices)
def test_softmax_rows_sum_to_one_and_are_probabilities(x):
    y = softmax(x)
    assert np.all(np.isfinite(y)) and np.all(y >= 0) and np.all(y <= 1)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-12)


@given(matrices, st.floats(-1e3, 1e3, allow_nan=False))
def test_softmax_is_shift_invariant_per_row(x, shift):
    # a different shift per row: only each row's own max may be subtracted
    shifts = shift * np.arange(x.shape[0])[:, None]
    np.testing.assert_allclose(softmax(x + shifts), softmax(x), atol=1e-9)


@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=6), elements=finite))
def test_sigmoid_symmetry(x):
    np.testing.assert_allclose(sigmoid(-x), 1 - sigmoid(x), atol=1e-15)
    assert np.all((sigmoid(x) >= 0) & (sigmoid(x) <= 1))


@given(st.integers(1, 8), st.integers(2, 12), st.data())
def test_crossentropy_at_zero_logits_is_log_c(n, c, data):
    labels = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    assert math.isclose(float(loss.forward(np.zeros((n, c)), labels)), math.log(c), rel_tol=1e-12)
    # uniform probabilities give the same
    probs = losses.SparseCategoricalCrossentropy()
    assert math.isclose(float(probs.forward(np.full((n, c), 1.0 / c), labels)), math.log(c), rel_tol=1e-12)


LAYERS = [
    lambda: tn.ReLU(),
    lambda: tn.Sigmoid(),
    lambda: tn.Tanh(),
    lambda: tn.Softmax(),
    lambda: tn.Flatten(),
    lambda: tn.Dense(3, activation="relu"),
    lambda: tn.Dense(2, activation="softmax"),
    lambda: tn.Dense(4, activation="sigmoid"),
    lambda: tn.Dropout(0.5),
]


@given(st.sampled_from(LAYERS), matrices, st.booleans())
def test_every_gx_has_the_shape_of_x_and_nothing_overflows(make, x, training):
    layer = make()
    layer.build(x.shape[1:], np.random.default_rng(0))
    y = layer.forward(x, training=training)
    gx = layer.backward(np.ones_like(y))
    assert gx.shape == x.shape
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(gx))
    for p in layer.parameters():
        assert p.grad.shape == p.value.shape and np.all(np.isfinite(p.grad))


@given(matrices, st.data())
def test_losses_stay_finite_for_huge_logits(z, data):
    n, c = z.shape
    labels = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    targets = data.draw(hnp.arrays(np.float64, z.shape, elements=st.floats(0, 1)))
    for loss, t in (
        (losses.SparseCategoricalCrossentropy(from_logits=True), labels),
        (losses.CategoricalCrossentropy(from_logits=True), losses.one_hot(labels, c, np.float64)),
        (losses.BinaryCrossentropy(from_logits=True), targets),
        (losses.SparseCategoricalCrossentropy(), labels),  # probabilities: softmax first
        (losses.BinaryCrossentropy(), targets),
    ):
        pred = z if loss.from_logits else (softmax(z) if loss.name.startswith("sparse") else sigmoid(z))
        value = loss.forward(pred, t)
        grad = loss.backward()
        assert np.isfinite(value) and value >= 0
        assert grad.shape == z.shape and np.all(np.isfinite(grad))
