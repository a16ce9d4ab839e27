"""Every layer, every loss (probability and logit paths) and a whole model pass
check_backward in float64 with the default tolerances, on every backend present."""

import numpy as np
import pytest

import tinynet as tn
from tinynet import losses
from tinynet.gradcheck import check_backward


def away_from_zero(rng, shape, margin=0.1):
    """Normal samples pushed at least `margin` away from 0 (ReLU's kink)."""
    x = rng.standard_normal(shape)
    return np.sign(x) * (np.abs(x) + margin)


def built(layer, input_shape, device, seed=0):
    layer.build(input_shape, np.random.default_rng(seed))
    return layer.to(device)


@pytest.mark.parametrize(
    "activation",
    [None, "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", "gelu", "swish", "silu", "softplus"],
)
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense(device, xp, rng, activation, use_bias):
    layer = built(tn.Dense(5, activation=activation, use_bias=use_bias, bias_initializer="ones"), (7,), device)
    check_backward(layer, xp.asarray(away_from_zero(rng, (6, 7))))


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_keras_output_logits_rule_reads_the_logits_and_skips_the_activation(device, xp, rng, activation):
    """Keras's rule (tinynet.engine.keras_rules): the head still outputs probabilities, keeps its
    logits for the loss, and passes dL/dlogits through its backward unchanged."""
    model = tn.Sequential([tn.Input((3,)), tn.Dense(4, activation=activation)], device=device, seed=0)
    model.compile("sgd", "categorical_crossentropy")
    x = xp.asarray(rng.standard_normal((5, 3)))
    layer = model.layers[0]
    rule = tn.engine.keras_rules.loss_for(model)
    assert isinstance(rule.__enter__(), tn.engine.keras_rules.OutputLogitsLoss)
    y = model.forward(x)
    z = x @ layer.kernel.value + layer.bias.value
    np.testing.assert_allclose(tn.backend.to_numpy(layer.activation.logits), tn.backend.to_numpy(z), rtol=1e-6)
    expected = tn.layers.softmax(z) if activation == "softmax" else tn.layers.sigmoid(z)
    np.testing.assert_allclose(tn.backend.to_numpy(y), tn.backend.to_numpy(expected), rtol=1e-6)
    g = xp.asarray(rng.standard_normal((5, 4)))
    assert layer.activation.backward(g) is g
    rule.__exit__(None, None, None)  # the rule undone: the textbook softmax again
    assert not {"logits", "forward", "backward"} & set(vars(layer.activation))
    check_backward(model, x)


@pytest.mark.parametrize(
    "layer_cls",
    [
        tn.ReLU,
        tn.Sigmoid,
        tn.Tanh,
        tn.Softmax,
        tn.Flatten,
        tn.LeakyReLU,
        tn.ELU,
        tn.layers.GELU,
        lambda: tn.layers.GELU(approximate=True),
        tn.layers.Swish,
        tn.layers.Softplus,
    ],
)
def test_parameterless_layers(device, xp, rng, layer_cls):
    layer = built(layer_cls(), (3, 4), device)
    if layer_cls is tn.Softmax:
        layer = built(layer_cls(), (6,), device)
        x = rng.standard_normal((5, 6)) * 3
    else:
        x = away_from_zero(rng, (5, 3, 4))
    check_backward(layer, xp.asarray(x))


def test_dropout_training_and_inference(device, xp, rng):
    layer = built(tn.Dropout(0.3), (8,), device)
    x = xp.asarray(rng.standard_normal((50, 8)))

    def forward(x):  # the same mask on every call, so the function is fixed
        layer.reset_rng(7, device)
        return layer.forward(x, training=True)

    check_backward((forward, layer.backward), x)
    y = forward(x)
    kept = tn.backend.to_numpy(y != 0)
    assert 0.5 < kept.mean() < 0.9  # about 70% kept
    # inverted dropout: kept values are scaled by 1 / (1 - rate)
    np.testing.assert_allclose(tn.backend.to_numpy(y)[kept], tn.backend.to_numpy(x)[kept] / 0.7, rtol=1e-12)
    # inference: identity, gradient passes unchanged
    assert layer.forward(x, training=False) is x


@pytest.mark.parametrize("from_logits", [True, False])
def test_sparse_categorical_crossentropy(device, xp, rng, from_logits):
    labels = xp.asarray(rng.integers(0, 5, size=8))
    if from_logits:
        y_pred = rng.standard_normal((8, 5)) * 2
    else:  # unnormalised positive "probabilities": exercises the renormalisation too
        y_pred = rng.uniform(0.2, 1.0, size=(8, 5))
    check_backward(losses.SparseCategoricalCrossentropy(from_logits=from_logits), xp.asarray(y_pred), y_true=labels)


@pytest.mark.parametrize("from_logits", [True, False])
def test_categorical_crossentropy_soft_targets(device, xp, rng, from_logits):
    t = rng.uniform(0, 1, size=(6, 4))
    t /= t.sum(axis=1, keepdims=True)
    y_pred = rng.standard_normal((6, 4)) if from_logits else rng.uniform(0.2, 1.0, size=(6, 4))
    check_backward(losses.CategoricalCrossentropy(from_logits=from_logits), xp.asarray(y_pred), y_true=xp.asarray(t))


@pytest.mark.parametrize("from_logits", [True, False])
def test_binary_crossentropy(device, xp, rng, from_logits):
    t = xp.asarray(rng.uniform(0, 1, size=(7, 3)))
    y_pred = rng.standard_normal((7, 3)) * 2 if from_logits else rng.uniform(0.05, 0.95, size=(7, 3))
    check_backward(losses.BinaryCrossentropy(from_logits=from_logits), xp.asarray(y_pred), y_true=t)


def test_mean_squared_error(device, xp, rng):
    check_backward(
        losses.MeanSquaredError(),
        xp.asarray(rng.standard_normal((5, 3))),
        y_true=xp.asarray(rng.standard_normal((5, 3))),
    )


def _model_with_loss(model, y):
    """(forward, backward) of x -> loss(model(x), y): the whole training gradient."""
    loss_fn = model.loss_fn

    def forward(x):
        return loss_fn.forward(model.forward(x, training=True), y)

    def backward(g):
        return model.backward(g * loss_fn.backward())

    return forward, backward


@pytest.mark.parametrize(
    "output,use_output_logits", [("softmax", True), ("softmax", False), ("sigmoid", True), ("sigmoid", False)]
)
def test_whole_model_with_loss(device, xp, rng, output, use_output_logits):
    model = tn.Sequential(
        [
            tn.Input((6,)),
            tn.Dense(8, activation="relu"),
            tn.Dense(7, activation="tanh"),
            tn.Dense(4, activation=output),
        ],
        device=device,
        seed=3,
    )
    model.compile("sgd", losses.SparseCategoricalCrossentropy(use_output_logits=use_output_logits))
    assert model.output_logits is use_output_logits
    x = xp.asarray(away_from_zero(rng, (9, 6)))
    y = xp.asarray(rng.integers(0, 4, size=9))
    with tn.engine.loop.prepared(model, train=False):  # the loss as fit computes it
        check_backward(_model_with_loss(model, y), x, params=model.parameters())


def test_whole_model_as_a_layer(device, xp, rng):
    model = tn.Sequential(
        [tn.Input((2, 3)), tn.Flatten(), tn.Dense(5, activation="sigmoid"), tn.Dense(3), tn.Softmax()],
        device=device,
        seed=0,
    )
    check_backward(model, xp.asarray(rng.standard_normal((4, 2, 3))))
