"""``tn.activations`` and ``tn.ops``: the functions Keras tutorials call, on NumPy arrays, each
activation the forward pass of its textbook layer and Keras's value."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tinynet as tn

ACTIVATIONS = np.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "activations.npz"))


@pytest.mark.parametrize(
    "name, call",
    [
        ("leaky_relu", lambda x: tn.activations.leaky_relu(x)),
        ("elu", lambda x: tn.activations.elu(x)),
        ("gelu", lambda x: tn.activations.gelu(x)),
        ("gelu_approximate", lambda x: tn.activations.gelu(x, approximate=True)),
        ("silu", lambda x: tn.activations.silu(x)),
        ("softplus", lambda x: tn.ops.softplus(x)),
    ],
)
def test_the_activation_functions_are_keras_s(xp, name, call):
    y = tn.backend.to_numpy(call(xp.asarray(ACTIVATIONS["x"])))
    # the tolerance of tests/test_activations.py: GELU's tail near -8 is 1e-15 off in absolute terms
    np.testing.assert_allclose(y, ACTIVATIONS[f"{name}_keras_y"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(tn.activations.FUNCTIONS))
def test_each_function_is_its_layer_s_forward(name, rng):
    x = rng.standard_normal((4, 6))
    layer = tn.layers.core.get_activation(name)
    np.testing.assert_array_equal(tn.activations.get(name)(x), layer.forward(x))
    assert tn.activations.get(tn.activations.serialize(tn.activations.get(name))) is tn.activations.get(name)


def test_softmax_and_log_softmax_on_rows_and_on_other_axes():
    z = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0]])
    p = tn.ops.softmax(z)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)
    np.testing.assert_allclose(p[1], [0.5, 0.5, 0.0])  # no overflow at 1000
    np.testing.assert_allclose(tn.ops.log_softmax(z)[0], np.log(p[0]), atol=1e-12)
    assert tn.ops.log_softmax(z)[1, 2] == pytest.approx(-2000 - np.log(2))  # finite, where log(p) is not
    np.testing.assert_allclose(tn.activations.softmax(z.T, axis=0), p.T)


def test_the_ops_a_tutorial_calls_work_on_plain_arrays_and_lists():
    probabilities = tn.ops.softmax([[2.0, 1.0, 0.1]])  # a list is fine
    assert isinstance(probabilities, np.ndarray) and probabilities.dtype == np.float32
    assert int(tn.ops.argmax(probabilities, axis=-1)[0]) == 0
    assert tn.ops.convert_to_numpy(probabilities) is not None
    np.testing.assert_array_equal(tn.ops.one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    assert tn.ops.mean(np.array([1.0, 3.0])) == 2.0
    assert tn.ops.cast(np.array([1.7]), "int32").dtype == np.int32
    assert tn.ops.shape(np.zeros((2, 3))) == (2, 3)
    np.testing.assert_array_equal(tn.ops.concatenate([np.ones(2), np.zeros(1)]), [1, 1, 0])


def test_a_keras_op_tinynet_lacks_points_at_numpy():
    with pytest.raises(AttributeError, match=r"tinynet.ops has no 'einsum'.*numpy.einsum"):
        tn.ops.einsum  # noqa: B018
    with pytest.raises(ValueError, match="unknown activation 'mish'"):
        tn.activations.get("mish")
