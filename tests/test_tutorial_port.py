"""Keras tutorials, ported by changing their imports alone, train in tinynet.

Each tutorial below is Keras 3's text as published (the TensorFlow 2 beginners' quickstart,
in the Keras 3 spelling of its three ``.numpy()`` calls, and keras.io's "Simple MNIST
convnet"). :func:`port` changes its import lines and nothing else, and a test holds that.
MNIST is replaced by small digits the tests draw themselves (tests/synthetic.py), handed to
the tutorial's own ``keras.datasets.mnist.load_data()`` call. Where Keras is installed, the
same texts also run unchanged in Keras: they are Keras's, not written for tinynet.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from synthetic import make_digits

import tinynet

QUICKSTART = """
import keras

mnist = keras.datasets.mnist
(x_train, y_train), (x_test, y_test) = mnist.load_data()
x_train, x_test = x_train / 255.0, x_test / 255.0

model = keras.models.Sequential([
    keras.layers.Flatten(input_shape=(28, 28)),
    keras.layers.Dense(128, activation="relu"),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10),
])

predictions = keras.ops.convert_to_numpy(model(x_train[:1]))
print(keras.ops.convert_to_numpy(keras.ops.softmax(predictions)))

loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
print(keras.ops.convert_to_numpy(loss_fn(y_train[:1], predictions)))

model.compile(optimizer="adam", loss=loss_fn, metrics=["accuracy"])
model.fit(x_train, y_train, epochs=5)
model.evaluate(x_test, y_test, verbose=2)

probability_model = keras.Sequential([model, keras.layers.Softmax()])
print(probability_model(x_test[:5]))
"""

SIMPLE_CONVNET = """
import numpy as np
import keras
from keras import layers

num_classes = 10
input_shape = (28, 28, 1)

(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()

x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)
print("x_train shape:", x_train.shape)
print(x_train.shape[0], "train samples")
print(x_test.shape[0], "test samples")

y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)

model.summary()

batch_size = 128
epochs = 15

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1)

score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
"""

IMPORTS = [(r"^import keras$", "import tinynet as keras"), (r"^from keras import (\w+)$", r"from tinynet import \1")]


def port(text: str) -> str:
    """The tutorial with its Keras imports made tinynet's; every other line as it was."""
    for pattern, replacement in IMPORTS:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    return text


@pytest.fixture
def small_mnist(monkeypatch):
    """``mnist.load_data()`` gives 600 training and 200 test digits drawn by the tests."""
    data = make_digits(600, 0), make_digits(200, 1)
    monkeypatch.setattr(tinynet.datasets.mnist, "load_data", lambda *args, **kwargs: data)
    return data


def run(text):
    namespace = {}
    exec(compile(text, "<tutorial>", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("tutorial", [QUICKSTART, SIMPLE_CONVNET], ids=["quickstart", "simple_convnet"])
def test_the_port_changes_import_lines_only(tutorial):
    changed = [(a, b) for a, b in zip(tutorial.splitlines(), port(tutorial).splitlines(), strict=True) if a != b]
    assert changed and all(a.startswith(("import keras", "from keras import")) for a, _ in changed)


def test_the_quickstart_trains_as_written(small_mnist, capsys):
    ns = run(port(QUICKSTART))
    out = capsys.readouterr().out
    assert "Epoch 5/5" in out and "accuracy:" in out
    assert ns["model"].history.history["accuracy"][-1] > 0.9
    probabilities = ns["probability_model"](ns["x_test"][:5])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert (probabilities.argmax(axis=1) == small_mnist[1][1][:5]).mean() >= 0.8


def test_the_simple_convnet_trains_as_written(small_mnist, capsys):
    ns = run(port(SIMPLE_CONVNET))
    out = capsys.readouterr().out
    assert "x_train shape: (600, 28, 28, 1)" in out and "max_pooling2d_1 (MaxPooling2D)" in out
    assert ns["score"][1] > 0.9  # test accuracy on the drawn digits
    assert set(ns["model"].history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}


@pytest.mark.parametrize("tutorial", [QUICKSTART, SIMPLE_CONVNET], ids=["quickstart", "simple_convnet"])
def test_the_texts_are_keras_s_own(tutorial, small_mnist, monkeypatch):
    """Runs where Keras is installed (pip install keras jax): the unported text, in Keras."""
    keras = pytest.importorskip("keras")
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda *args, **kwargs: small_mnist)
    run(tutorial.replace("epochs = 15", "epochs = 1").replace("epochs=5", "epochs=1"))
