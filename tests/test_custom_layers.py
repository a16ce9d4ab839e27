"""A layer of the user's own saves and loads, the Keras way: by its class name and its
``get_config()``, given back with ``custom_objects=`` or registered once with
``tn.saving.register_keras_serializable``; in ``.npz``, ``.keras`` and ModelCheckpoint's
files; and a ``.keras`` file Keras itself wrote with such a layer loads into tinynet."""

from __future__ import annotations

import json
import os
import sys
import zipfile

import numpy as np
import pytest

import tinynet as tn
from tinynet.gradcheck import check_backward

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "keras_files")


class FeatureScale(tn.layers.Layer):
    """y = x * s: one trainable scale s per feature, starting at ``initial``.

    Forward:   y = x * s
    Backward:  gx = gy * s,   gs = sum_n gy * x
    """

    formula = "y = x * s  |  gx = gy * s,  gs = sum_n gy * x"

    def __init__(self, initial=1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial = initial

    def build(self, input_shape, rng=None):
        self.scale = tn.layers.Parameter(np.full(input_shape[-1], self.initial, dtype=np.float32), "scale")
        return super().build(input_shape, rng)

    def parameters(self):
        return [self.scale]

    def forward(self, x, training=False):
        self._x = x
        return x * self.scale.value

    def backward(self, gy):
        self.scale.grad = (gy * self._x).sum(axis=0)
        return gy * self.scale.value

    def get_config(self):
        return {**super().get_config(), "initial": self.initial}


@tn.saving.register_keras_serializable(package="test_custom_layers")
class RegisteredScale(FeatureScale):
    """FeatureScale, registered: its files load without custom_objects."""


class ScaleWithoutConfig(FeatureScale):
    """Takes ``initial`` in __init__ but its get_config forgets it."""

    def get_config(self):
        return {"name": self.name}


def model_with(layer):
    model = tn.Sequential(
        [tn.Input((6,)), tn.Dense(8, activation="relu"), layer, tn.Dense(3, activation="softmax")], seed=0
    )
    model.compile(tn.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.random((64, 6), dtype=np.float32), rng.integers(0, 3, 64)


def test_the_custom_layer_of_these_tests_is_right():
    layer = FeatureScale(0.5)
    layer.build((5,), np.random.default_rng(0))
    layer.scale.value[...] = np.linspace(-1, 2, 5)
    check_backward(layer, np.random.default_rng(1).standard_normal((4, 5)))


@pytest.mark.parametrize("suffix", [".npz", ".keras"])
def test_a_custom_layer_round_trips_and_trains_on_identically(tmp_path, data, suffix):
    x, y = data
    model = model_with(FeatureScale(0.5, name="scale"))
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert not np.allclose(model.get_layer("scale").scale.value, 0.5)  # it trained
    path = str(tmp_path / f"m{suffix}")
    model.save(path)
    loaded = tn.models.load_model(path, custom_objects={"FeatureScale": FeatureScale})
    layer = loaded.get_layer("scale")
    assert type(layer) is FeatureScale and layer.initial == 0.5
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    if suffix == ".npz":  # a checkpoint: training goes on exactly as without the save
        model.fit(x, y, epochs=3, initial_epoch=2, batch_size=16, verbose=0)
        loaded.fit(x, y, epochs=3, initial_epoch=2, batch_size=16, verbose=0)
        for a, b in zip(loaded.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("suffix", [".npz", ".keras"])
def test_a_file_naming_an_unknown_class_says_which_and_how_to_give_it(tmp_path, data, suffix):
    model = model_with(FeatureScale(0.5))
    path = str(tmp_path / f"m{suffix}")
    model.save(path)
    with pytest.raises(tn.ModelFileError) as caught:
        tn.models.load_model(path)
    message = str(caught.value)
    assert "'FeatureScale'" in message and path in message
    assert "custom_objects={'FeatureScale': FeatureScale}" in message
    assert "register_keras_serializable" in message


@pytest.mark.parametrize("suffix", [".npz", ".keras"])
def test_a_registered_class_loads_without_custom_objects(tmp_path, data, suffix):
    x, y = data
    model = model_with(RegisteredScale(2.0))
    model.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / f"m{suffix}")
    model.save(path)
    loaded = tn.load_model(path)
    assert type(loaded.layers[1]) is RegisteredScale and loaded.layers[1].initial == 2.0
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert tn.saving.get_registered_name(RegisteredScale) == "test_custom_layers>RegisteredScale"


def test_the_keras_file_names_the_class_as_keras_does(tmp_path):
    model = model_with(RegisteredScale(2.0))
    model.save(str(tmp_path / "m.keras"))
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        entry = json.loads(z.read("config.json"))["config"]["layers"][2]
    assert entry["class_name"] == "RegisteredScale"
    assert entry["registered_name"] == "test_custom_layers>RegisteredScale"
    assert entry["config"]["initial"] == 2.0 and entry["config"]["trainable"] is True
    assert entry["build_config"] == {"input_shape": [None, 8]}


def test_model_checkpoint_files_of_a_custom_layer_load(tmp_path, data):
    x, y = data
    model = model_with(FeatureScale(0.5))
    path = str(tmp_path / "best.npz")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[tn.callbacks.ModelCheckpoint(path)])
    loaded = tn.models.load_model(path, custom_objects={"FeatureScale": FeatureScale})
    assert loaded.epochs_done == 2
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_a_keras_written_file_with_a_custom_layer_loads_given_the_same_class():
    expected = np.load(os.path.join(FIXTURES, "custom_expected.npz"))
    model = tn.models.load_model(os.path.join(FIXTURES, "custom.keras"), custom_objects={"FeatureScale": FeatureScale})
    layer = model.layers[1]
    assert type(layer) is FeatureScale and layer.initial == 0.5 and layer.name == "feature_scale"
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_array_equal(w, expected[f"weights_{i}"])
    assert not np.allclose(layer.scale.value, 0.5)  # Keras trained it: its own weights, one to one
    np.testing.assert_allclose(model.predict(expected["x"]), expected["y"], rtol=1e-5, atol=1e-6)


def test_a_keras_written_custom_layer_without_the_class_is_named():
    with pytest.raises(tn.ModelFileError, match=r"'FeatureScale' \(registered as 'tinynet_tests>FeatureScale'\)"):
        tn.models.load_model(os.path.join(FIXTURES, "custom.keras"))


def test_a_custom_layer_whose_get_config_misses_an_argument_is_refused_before_writing(tmp_path):
    model = model_with(ScaleWithoutConfig(3.0))
    for suffix in (".npz", ".keras"):
        path = tmp_path / f"m{suffix}"
        with pytest.raises(ValueError, match=r"takes initial in __init__.*'initial': self.initial"):
            model.save(str(path))
        assert not path.exists()


def test_a_get_config_that_json_cannot_hold_is_refused(tmp_path):
    model = model_with(FeatureScale(np.float32(0.5)))
    with pytest.raises(ValueError, match="cannot hold"):
        model.save(str(tmp_path / "m.npz"))


@pytest.mark.parametrize(
    "custom_objects, expected",
    [
        ([FeatureScale], "must be a dict"),
        ({"FeatureScale": FeatureScale(1.0)}, "not an instance"),
        ({1: FeatureScale}, "maps names to tinynet Layer classes"),
    ],
)
def test_bad_custom_objects_are_refused_before_any_work(tmp_path, custom_objects, expected):
    with pytest.raises(TypeError, match=expected):
        tn.models.load_model(str(tmp_path / "absent.npz"), custom_objects=custom_objects)


def test_nothing_is_imported_from_a_file(tmp_path, monkeypatch):
    """A .keras file naming a module of the user's (one that would run code) is only looked up by name."""
    (tmp_path / "evil_module_for_tinynet.py").write_text("raise SystemExit('imported!')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = model_with(FeatureScale(0.5))
    path = tmp_path / "m.keras"
    model.save(str(path))
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    config = json.loads(entries["config.json"])
    config["config"]["layers"][2].update(module="evil_module_for_tinynet", class_name="Evil", registered_name="Evil")
    entries["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in entries.items():
            z.writestr(name, blob)
    with pytest.raises(tn.ModelFileError, match="unknown layer class 'Evil': neither a tinynet layer nor given"):
        tn.models.load_model(str(path))
    assert "evil_module_for_tinynet" not in sys.modules


def test_register_keras_serializable_refuses_what_it_cannot_register():
    with pytest.raises(TypeError, match="Layer classes"):
        tn.saving.register_keras_serializable()(lambda x: x)
    with pytest.raises(ValueError, match="already registered"):
        tn.saving.register_keras_serializable(package="test_custom_layers", name="RegisteredScale")(FeatureScale)
    with pytest.raises(ValueError, match="without '>'"):
        tn.saving.register_keras_serializable(package="a>b")


def test_registering_a_redefined_class_replaces_it_as_a_notebook_rerun_does():
    def define():
        @tn.saving.register_keras_serializable(package="test_custom_layers_rerun")
        class Rerun(FeatureScale):
            pass

        return Rerun

    first, second = define(), define()  # a cell run twice: a new class of the same name
    assert first is not second
    assert tn.saving.get_registered_object("test_custom_layers_rerun>Rerun") is second
