"""Record Keras-written model files for tinynet's loading/saving tests.

    pip install keras jax h5py && KERAS_BACKEND=jax python benchmarks/keras_files_reference.py [NAME ...]

(Recorded with keras 3.15.1, jax/jaxlib 0.10.2, h5py 3.16, numpy 2.4 on CPU.)
With fixed seeds (``keras.utils.set_random_seed(0)`` before each model, NumPy
``default_rng`` for the data) this writes into tests/fixtures/keras_files/:

* ``mlp.keras``   64 -> Dense(32, relu) -> Dropout(0.2) -> Dense(10, softmax),
  compiled (Adam, sparse_categorical_crossentropy, accuracy), trained 1 epoch on
  256 random samples, saved with ``model.save``;
* ``mlp.weights.h5``  the same model's ``model.save_weights``;
* ``cnn.keras``   Conv2D / MaxPooling2D / Conv2D(strides=2, same, no bias) /
  BatchNormalization / ReLU / AveragePooling2D(same) / Flatten / Dropout /
  Dense / Activation("softmax") on 28x28x1, trained 1 epoch on 128 samples (so
  BatchNormalization's moving statistics are not the initial ones);
* ``zoo.keras``   Reshape / Flatten / Dense(tanh) / Activation(sigmoid) / Dense /
  Softmax on 12 inputs, saved without compiling;
* ``<name>_expected.npz`` for each of the three: ``x`` (8 float32 samples),
  ``y = model.predict(x)`` and ``weights_<i>`` (``model.get_weights()`` in order);
* ``custom.keras``  6 -> Dense(8, relu) -> FeatureScale (a layer of the user's own,
  registered as ``tinynet_tests>FeatureScale``: y = x * s, one weight s per feature) ->
  Dense(3, softmax), compiled (Adam), trained 2 epochs on 64 samples (so s moved off
  its start); with ``custom_expected.npz``;
* ``nested.keras``  a Sequential inside a Sequential, as the TensorFlow quickstart builds its
  ``probability_model``: [Sequential(8 -> Dense(16, relu) -> BatchNormalization -> Dense(4)),
  Softmax], compiled (Adam), trained 2 epochs on 64 samples; with ``nested_expected.npz``;
* ``sample_weight.npz``  losses/accuracies/weights of a small model trained with
  ``sample_weight`` and with ``class_weight`` (fit, evaluate, train_on_batch).

Every npz also holds ``versions``, a string array like ["keras=3.15.1", "jax=0.10.2"].
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "keras_files")


def versions():
    backend = keras.backend.backend()
    mod = {"jax": "jax", "tensorflow": "tensorflow", "torch": "torch"}.get(backend)
    bv = __import__(mod).__version__ if mod else "?"
    return np.array([f"keras={keras.__version__}", f"{backend}={bv}"])


def expected(name, model, x):
    arrays = {"x": x.astype(np.float32), "y": model.predict(x, verbose=0)}
    for i, w in enumerate(model.get_weights()):
        arrays[f"weights_{i}"] = w
    arrays["versions"] = versions()
    np.savez_compressed(os.path.join(OUT, f"{name}_expected.npz"), **arrays)


def record_mlp():
    keras.backend.clear_session()  # layer names restart at "dense", "dense_1", ...
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            layers.Dense(32, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(10, activation="softmax"),
        ],
        name="mlp",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((256, 64), dtype=np.float32)
    y = rng.integers(0, 10, size=256)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    model.save(os.path.join(OUT, "mlp.keras"))
    model.save_weights(os.path.join(OUT, "mlp.weights.h5"))
    expected("mlp", model, np.random.default_rng(1).random((8, 64), dtype=np.float32))


def record_cnn():
    keras.backend.clear_session()  # layer names restart at "dense", "dense_1", ...
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(6, 3, strides=2, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.AveragePooling2D(2, padding="same"),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(10),
            layers.Activation("softmax"),
        ],
        name="cnn",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((128, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, size=128)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    model.save(os.path.join(OUT, "cnn.keras"))
    expected("cnn", model, np.random.default_rng(1).random((8, 28, 28, 1), dtype=np.float32))


def record_zoo():
    keras.backend.clear_session()  # layer names restart at "dense", "dense_1", ...
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((12,)),
            layers.Reshape((3, 4)),
            layers.Flatten(),
            layers.Dense(8, activation="tanh"),
            layers.Activation("sigmoid"),
            layers.Dense(5),
            layers.Softmax(),
        ],
        name="zoo",
    )
    model.save(os.path.join(OUT, "zoo.keras"))  # never compiled
    expected("zoo", model, np.random.default_rng(1).standard_normal((8, 12)).astype(np.float32))


def record_sample_weight():
    keras.backend.clear_session()  # layer names restart at "dense", "dense_1", ...
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), layers.Dense(5, activation="relu"), layers.Dense(3)],
        name="sw",
    )

    def compile_():
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["sparse_categorical_accuracy"],
        )

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=40)
    w = rng.uniform(0.0, 2.0, size=40).astype(np.float32)
    class_weight = {0: 1.0, 1: 2.0, 2: 0.5}
    w0 = model.get_weights()
    out = {"x": x, "y": y, "w": w, "class_weight": np.array([1.0, 2.0, 0.5])}
    for i, a in enumerate(w0):
        out[f"w0_{i}"] = a

    # (i) evaluate with sample weights, before any training
    compile_()
    ev = model.evaluate(x, y, sample_weight=w, batch_size=8, return_dict=True, verbose=0)
    out["evaluate_sw_loss"] = np.float64(ev["loss"])
    out["evaluate_sw_acc"] = np.float64(ev["sparse_categorical_accuracy"])
    out["evaluate_sw"] = np.array([ev["loss"], ev["sparse_categorical_accuracy"]])

    # (ii) fit with sample weights
    model.set_weights(w0)
    compile_()
    h = model.fit(x, y, sample_weight=w, batch_size=8, epochs=2, shuffle=False, verbose=0)
    out["fit_sw_loss"] = np.array(h.history["loss"])
    out["fit_sw_acc"] = np.array(h.history["sparse_categorical_accuracy"])
    for i, a in enumerate(model.get_weights()):
        out[f"fit_sw_w_{i}"] = a

    # (iii) fit with class weights
    model.set_weights(w0)
    compile_()
    h = model.fit(x, y, class_weight=class_weight, batch_size=8, epochs=2, shuffle=False, verbose=0)
    out["fit_cw_loss"] = np.array(h.history["loss"])
    out["fit_cw_acc"] = np.array(h.history["sparse_categorical_accuracy"])
    for i, a in enumerate(model.get_weights()):
        out[f"fit_cw_w_{i}"] = a

    # (iv) train_on_batch with sample weights (metrics are reset on each call)
    model.set_weights(w0)
    compile_()
    losses, accs = [], []
    for k in range(0, 40, 8):
        logs = model.train_on_batch(x[k : k + 8], y[k : k + 8], sample_weight=w[k : k + 8], return_dict=True)
        losses.append(logs["loss"])
        accs.append(logs["sparse_categorical_accuracy"])
    out["tob_sw_loss"] = np.array(losses)
    out["tob_sw_acc"] = np.array(accs)
    for i, a in enumerate(model.get_weights()):
        out[f"tob_sw_w_{i}"] = a

    out["versions"] = versions()
    np.savez(os.path.join(OUT, "sample_weight.npz"), **out)


@keras.saving.register_keras_serializable(package="tinynet_tests")
class FeatureScale(layers.Layer):
    """y = x * s: one trainable scale per feature, starting at ``initial``."""

    def __init__(self, initial=1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial = initial

    def build(self, input_shape):
        init = keras.initializers.Constant(self.initial)
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer=init, name="scale")

    def call(self, x):
        return x * self.scale

    def get_config(self):
        return {**super().get_config(), "initial": self.initial}


def record_custom():
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            layers.Dense(8, activation="relu"),
            FeatureScale(0.5),
            layers.Dense(3, activation="softmax"),
        ],
        name="custom",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.random((64, 6), dtype=np.float32), rng.integers(0, 3, 64), epochs=2, batch_size=16, verbose=0)
    model.save(os.path.join(OUT, "custom.keras"))
    expected("custom", model, np.random.default_rng(1).random((8, 6), dtype=np.float32))


def record_nested():
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    inner = keras.Sequential(
        [keras.Input((8,)), layers.Dense(16, activation="relu"), layers.BatchNormalization(), layers.Dense(4)]
    )
    model = keras.Sequential([inner, layers.Softmax()], name="nested")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.random((64, 8), dtype=np.float32), rng.integers(0, 4, 64), epochs=2, batch_size=16, verbose=0)
    model.save(os.path.join(OUT, "nested.keras"))
    expected("nested", model, np.random.default_rng(1).random((8, 8), dtype=np.float32))


RECORDS = {
    "mlp": record_mlp,
    "cnn": record_cnn,
    "zoo": record_zoo,
    "sample_weight": record_sample_weight,
    "custom": record_custom,
    "nested": record_nested,
}


def main():
    import sys

    os.makedirs(OUT, exist_ok=True)
    for name in sys.argv[1:] or list(RECORDS):  # e.g. "custom": record that one alone
        RECORDS[name]()
    for f in sorted(os.listdir(OUT)):
        print(f"{f:28s} {os.path.getsize(os.path.join(OUT, f)):>8d} bytes")


if __name__ == "__main__":
    main()
