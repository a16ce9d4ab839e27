"""Keras 3 model files both ways: Keras-written .keras files load in tinynet and predict
what Keras predicted; tinynet writes exactly the structure Keras writes; what tinynet
lacks is refused by name. The fixtures were written by Keras 3.15.1
(benchmarks/keras_files_reference.py), so these tests need no Keras."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

import tinynet as tn

h5py = pytest.importorskip("h5py")
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "keras_files")


def fixture(name):
    return os.path.join(FIXTURES, name)


@pytest.mark.parametrize(
    "name,kinds,iterations",
    [
        ("mlp", ["Dense", "Dropout", "Dense"], 8),
        (
            "cnn",
            [
                "Conv2D",
                "MaxPooling2D",
                "Conv2D",
                "BatchNormalization",
                "ReLU",
                "AveragePooling2D",
                "Flatten",
                "Dropout",
                "Dense",
                "Activation",
            ],
            4,
        ),
        ("zoo", ["Reshape", "Flatten", "Dense", "Activation", "Dense", "Softmax"], None),
    ],
)
def test_keras_written_files_load_and_predict_what_keras_predicted(name, kinds, iterations):
    model = tn.load_model(fixture(f"{name}.keras"))
    expected = np.load(fixture(f"{name}_expected.npz"))
    assert [type(layer).__name__ for layer in model.layers] == kinds
    np.testing.assert_allclose(model.predict(expected["x"]), expected["y"], rtol=1e-5, atol=1e-6)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_array_equal(w, expected[f"weights_{i}"])
    if iterations is None:
        assert model.optimizer is None
    else:
        assert isinstance(model.optimizer, tn.optimizers.Adam) and model.optimizer.iterations == iterations
        assert model.metrics == ["accuracy"] and model.loss.name == "sparse_categorical_crossentropy"


def test_train_in_keras_then_go_on_in_tinynet_with_keras_adam_state():
    model = tn.load_model(fixture("mlp.keras"))
    m = model.optimizer.slots["m"]
    assert len(m) == 4 and np.abs(np.concatenate([a.ravel() for a in m])).max() > 0  # Keras's moments, not zeros
    rng = np.random.default_rng(0)
    history = model.fit(rng.random((64, 64), dtype=np.float32), rng.integers(0, 10, 64), verbose=0)
    assert model.optimizer.iterations == 10 and np.isfinite(history.history["loss"][0])


def test_load_weights_from_a_keras_weights_file():
    model = tn.Sequential(
        [tn.Input((64,)), tn.Dense(32, activation="relu"), tn.Dropout(0.2), tn.Dense(10, activation="softmax")], seed=1
    )
    model.load_weights(fixture("mlp.weights.h5"))
    expected = np.load(fixture("mlp_expected.npz"))
    np.testing.assert_allclose(model.predict(expected["x"]), expected["y"], rtol=1e-5, atol=1e-6)


def _structure(path):
    """Zip entries, every HDF5 dataset with shape and dtype and every group's name attribute,
    and each layer's class and config keys, as written."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        config = json.loads(z.read("config.json"))
        with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
            datasets, attrs = {}, {}
            f.visititems(
                lambda k, v: (
                    datasets.__setitem__(k, (v.shape, v.dtype.str))
                    if isinstance(v, h5py.Dataset)
                    else attrs.__setitem__(k, dict(v.attrs))
                )
            )
    inner = config["config"]
    layers = [
        (e["class_name"], sorted(set(e["config"]) - {"dtype"}), sorted(e), e.get("build_config"))
        for e in inner["layers"]
    ]
    top = (sorted(config), sorted(set(inner) - {"layers"}), sorted(config["compile_config"]))
    return names, datasets, attrs, layers, top


def test_tinynet_writes_the_structure_keras_writes(tmp_path):
    for name in ("cnn", "mlp", "zoo"):
        path = tmp_path / f"{name}.keras"
        tn.load_model(fixture(f"{name}.keras")).save(path)
        mine, keras = _structure(path), _structure(fixture(f"{name}.keras"))
        assert mine[0] == keras[0] == ["metadata.json", "config.json", "model.weights.h5"]
        assert mine[1] == keras[1], name  # every dataset path, shape and dtype, the optimizer's included
        assert mine[2] == keras[2], name  # the name attributes of the vars groups
        for a, b in zip(mine[3], keras[3]):
            assert a[0] == b[0] and a[1] == b[1] and a[3] == b[3], (name, a, b)
        assert mine[4][0] == keras[4][0] and mine[4][1] == keras[4][1]


def test_a_tinynet_model_round_trips_through_keras_format(tmp_path):
    rng = np.random.default_rng(0)
    model = tn.Sequential(
        [
            tn.Input((5,)),
            tn.Dense(8, activation="tanh", kernel_regularizer=tn.regularizers.l2(1e-3)),
            tn.Sigmoid(),
            tn.Dense(3),
        ],
        seed=0,
    )
    model.compile(
        tn.optimizers.RMSprop(0.01),
        tn.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )
    x = rng.random((16, 5), dtype=np.float32)
    model.fit(x, rng.integers(0, 3, 16), verbose=0)
    loaded = tn.load_model(model.save(tmp_path / "m.keras"))
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-6)
    assert loaded.loss.from_logits and loaded.metrics == ["sparse_categorical_accuracy"]
    assert loaded.optimizer.iterations == 1 and loaded.optimizer.learning_rate == pytest.approx(0.01)
    assert loaded.layers[0].kernel_regularizer.l2 == pytest.approx(1e-3)
    assert type(loaded.layers[1]).__name__ == "Activation"  # Keras has no Sigmoid layer


def _edited(tmp_path, source, edit):
    """A copy of a Keras fixture whose config.json went through ``edit``."""
    with zipfile.ZipFile(fixture(source)) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    config = json.loads(parts["config.json"])
    edit(config)
    parts["config.json"] = json.dumps(config).encode()
    path = tmp_path / "edited.keras"
    with zipfile.ZipFile(path, "w") as z:
        for n, data in parts.items():
            z.writestr(n, data)
    return path


def _layer(config, index):
    return config["config"]["layers"][index]["config"]


@pytest.mark.parametrize(
    "source,edit,message",
    [
        (
            "cnn.keras",
            lambda c: _layer(c, 1).update(dilation_rate=[2, 2]),
            r"layer 'conv2d' has dilation_rate=\[2, 2\]; tinynet supports only \[1, 1\]",
        ),
        ("cnn.keras", lambda c: _layer(c, 1).update(data_format="channels_first"), "channels_first"),
        ("mlp.keras", lambda c: _layer(c, 1).update(trainable=False), "frozen"),
        ("mlp.keras", lambda c: _layer(c, 1).update(activation="selu"), "activation 'selu'"),
        ("mlp.keras", lambda c: _layer(c, 1).update(kernel_constraint={"class_name": "MaxNorm"}), "kernel_constraint"),
        (
            "mlp.keras",
            lambda c: c["config"]["layers"].insert(2, {"class_name": "LSTM", "config": {"units": 4}}),
            "layer 'LSTM' is not one tinynet has",
        ),
        ("mlp.keras", lambda c: c.update(class_name="Functional"), "tinynet reads Sequential models"),
        ("mlp.keras", lambda c: _layer(c, 1).update(units=10**12), "needs at least"),
        ("mlp.keras", lambda c: c["compile_config"].update(loss="log_cosh"), "compile=False"),
    ],
)
def test_what_tinynet_lacks_is_refused_by_name(tmp_path, source, edit, message):
    path = _edited(tmp_path, source, edit)
    with pytest.raises(tn.ModelFileError, match=message) as info:
        tn.load_model(path)
    assert str(path) in str(info.value)


def test_without_compile_a_model_with_a_foreign_loss_still_loads(tmp_path):
    path = _edited(tmp_path, "mlp.keras", lambda c: c["compile_config"].update(loss="huber"))
    assert tn.load_model(path, compile=False).optimizer is None


def test_file_name_mistakes(tmp_path):
    model = tn.load_model(fixture("zoo.keras"))
    with pytest.raises(ValueError, match="must end in .weights.h5"):
        model.save_weights(tmp_path / "w.h5")
    with pytest.raises(ValueError, match="legacy Keras .h5"):
        model.save(tmp_path / "m.h5")
    os.rename(model.save(tmp_path / "m.keras"), tmp_path / "m.npz")
    with pytest.raises(tn.ModelFileError, match="this is a Keras .keras file"):
        tn.load_model(tmp_path / "m.npz")


def test_keras_itself_loads_what_tinynet_wrote(tmp_path):
    """Runs where Keras is installed (pip install keras jax); CI relies on the structure test."""
    keras = pytest.importorskip("keras")
    model = tn.load_model(fixture("cnn.keras"))
    path = model.save(tmp_path / "cnn.keras")
    expected = np.load(fixture("cnn_expected.npz"))
    np.testing.assert_allclose(
        keras.models.load_model(path).predict(expected["x"], verbose=0), expected["y"], rtol=1e-5, atol=1e-6
    )
