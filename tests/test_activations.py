"""The activations beyond the core (leaky_relu, elu, gelu, swish/silu, softplus): the same
numbers as Keras's, and backward equal to JAX's automatic differentiation, in float64, on
every device present; by name in Dense and Activation, as layers, and in model files.
(Their gradient checks are in test_gradcheck_layers.py.)"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import tinynet as tn

FIXTURE = np.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "activations.npz"))

LAYERS = {  # the fixture's name: the tinynet layer that computes it
    "leaky_relu": lambda: tn.layers.get_activation("leaky_relu"),
    "leaky_relu_layer": tn.LeakyReLU,
    "elu": lambda: tn.layers.get_activation("elu"),
    "elu_layer": tn.ELU,
    "gelu": lambda: tn.layers.get_activation("gelu"),
    "gelu_approximate": lambda: tn.layers.GELU(approximate=True),
    "silu": lambda: tn.layers.get_activation("silu"),
    "softplus": lambda: tn.layers.get_activation("softplus"),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_forward_is_keras_and_backward_is_jax_autodiff_in_float64(device, xp, name):
    layer = LAYERS[name]()
    x, gy = xp.asarray(FIXTURE["x"]), xp.asarray(FIXTURE["gy"])
    y = tn.backend.to_numpy(layer.forward(x))
    gx = tn.backend.to_numpy(layer.backward(gy))
    np.testing.assert_allclose(y, FIXTURE[f"{name}_keras_y"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, FIXTURE[f"{name}_jax_gx"], rtol=1e-12, atol=1e-12)


def test_the_defaults_are_keras_s():
    assert tn.LeakyReLU().negative_slope == 0.3  # keras.layers.LeakyReLU
    assert tn.layers.get_activation("leaky_relu").negative_slope == 0.2  # keras.activations.leaky_relu
    assert tn.ELU().alpha == 1.0 and tn.layers.GELU().approximate is False
    assert type(tn.layers.get_activation("swish")) is type(tn.layers.get_activation("silu")) is tn.layers.SiLU


def test_erf_to_float64_precision(xp):
    x = np.concatenate([np.linspace(-7, 7, 2001), [0.0, 1e-9, -1e-300]])
    expected = np.array([math.erf(v) for v in x])
    got = tn.backend.to_numpy(tn.layers.erf(xp.asarray(x)))
    np.testing.assert_allclose(got, expected, rtol=5e-15, atol=1e-300)


@pytest.mark.parametrize("name", ["gelu", "elu", "softplus", "swish", "leaky_relu"])
def test_no_overflow_or_nan_at_large_inputs(name):
    layer = tn.layers.get_activation(name)
    x = np.array([-1e4, -80.0, 80.0, 1e4], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        y, gx = layer.forward(x), layer.backward(np.ones_like(x))
    assert np.isfinite(y).all() and np.isfinite(gx).all() and y.dtype == gx.dtype == np.float32


def test_an_unknown_activation_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown activation 'mish'.*'elu'.*'gelu'.*'leaky_relu'.*'softplus'"):
        tn.Dense(3, activation="mish")


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="negative_slope"):
        tn.LeakyReLU(negative_slope=-1)
    with pytest.raises(ValueError, match="alpha"):
        tn.ELU(alpha=float("nan"))
    with pytest.raises((TypeError, ValueError), match="approximate"):
        tn.layers.GELU(approximate="yes")


def model_of_every_activation():
    return tn.Sequential(
        [
            tn.Input((5,)),
            tn.Dense(6, activation="gelu"),
            tn.LeakyReLU(0.1),
            tn.Dense(6, activation="leaky_relu"),
            tn.ELU(0.7),
            tn.Dense(6, activation="swish"),
            tn.Activation("softplus"),
            tn.Dense(6, activation="elu"),
            tn.layers.GELU(),
            tn.Dense(3, activation="softmax"),
        ],
        seed=0,
    )


@pytest.mark.parametrize("suffix", [".npz", ".keras"])
def test_every_activation_trains_and_round_trips_through_model_files(tmp_path, suffix):
    pytest.importorskip("h5py") if suffix == ".keras" else None
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 5)).astype(np.float32), rng.integers(0, 3, 64)
    model = model_of_every_activation()
    model.compile("adam", "sparse_categorical_crossentropy")
    first = model.fit(x, y, epochs=3, verbose=0).history["loss"]
    assert first[-1] < first[0]  # it learns
    model.save(str(tmp_path / f"m{suffix}"))
    loaded = tn.load_model(str(tmp_path / f"m{suffix}"))
    kinds = [type(b).__name__ for b in model.layers]
    if suffix == ".keras":  # Keras has these as Activation layers only: they come back as such
        kinds = ["Activation" if k in ("GELU", "Swish", "Softplus") else k for k in kinds]
        assert loaded.layers[7].activation_name == "gelu"
    assert [type(a).__name__ for a in loaded.layers] == kinds
    assert loaded.layers[1].negative_slope == 0.1 and loaded.layers[3].alpha == 0.7
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_an_approximate_gelu_layer_has_no_keras_file_form(tmp_path):
    model = tn.Sequential([tn.Input((3,)), tn.Dense(4), tn.layers.GELU(approximate=True)])
    with pytest.raises(ValueError, match="no Keras counterpart"):
        model.save(str(tmp_path / "m.keras"))
    model.save(str(tmp_path / "m.npz"))  # tinynet's own format holds it
    assert tn.load_model(str(tmp_path / "m.npz")).layers[1].approximate is True
