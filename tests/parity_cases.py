"""The configurations that tinynet must train exactly like Keras, in one place.

Used by ``benchmarks/keras_reference.py`` (which records what Keras does, with
Keras installed) and by ``tests/test_keras_parity.py`` (which replays the same
steps in tinynet, without TensorFlow). Both build the same data and the same
initial weights from the seeds here, so a fixture stores only what Keras
computed: the loss of every step, samples of the final weights, and a few
predictions. Hashes of the data and initial weights are stored with it, so a
change in NumPy's random streams shows up as a clear failure, not as a mismatch.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "keras")

# name: layers, optimizer, loss, label kind, batch size, steps, samples, backends to record;
# optionally label_noise (default 0.15), strict_steps (default 100: how many steps must agree to 2e-5) and
# compare_final (default True: compare the whole run, the final weights and predictions)
CASES = {
    "mlp_adam_softmax": dict(
        layers=[("dense", 100, "relu"), ("dense", 10, "softmax")],
        optimizer=("Adam", {}),
        loss=("SparseCategoricalCrossentropy", {"from_logits": False}),
        labels="sparse",
        batch_size=32,
        steps=300,
        samples=1600,
        backends=("tensorflow", "jax"),
    ),
    "mlp_adam_sigmoid": dict(
        layers=[("dense", 100, "relu"), ("dense", 10, "sigmoid")],
        optimizer=("Adam", {}),
        loss=("SparseCategoricalCrossentropy", {"from_logits": False}),
        labels="sparse",
        batch_size=32,
        steps=300,
        samples=1600,
        backends=("tensorflow", "jax"),
    ),
    "mlp_adam_logits": dict(
        layers=[("dense", 100, "relu"), ("dense", 10, None)],
        optimizer=("Adam", {}),
        loss=("SparseCategoricalCrossentropy", {"from_logits": True}),
        labels="sparse",
        batch_size=32,
        steps=300,
        samples=1600,
        backends=("tensorflow",),
    ),
    "wide_rmsprop_dropout0": dict(
        layers=[
            ("dense", 512, "relu"),
            ("dropout", 0.0),
            ("dense", 512, "relu"),
            ("dropout", 0.0),
            ("dense", 10, "softmax"),
        ],
        optimizer=("RMSprop", {}),
        loss=("SparseCategoricalCrossentropy", {"from_logits": False}),
        labels="sparse",
        batch_size=128,
        steps=100,
        samples=1600,
        backends=("tensorflow",),
        # At step 25 one ReLU input of the second layer lies within float32 rounding of 0,
        # and Keras and tinynet round it to opposite sides (found by replaying both side by
        # side: every weight agrees to 4e-8 up to there, then the layers before that ReLU
        # jump by 1e-4). That is chaos, not a formula difference, so only the steps
        # before it are compared tightly.
        strict_steps=25,
        compare_final=False,
    ),
    "small_sgd_momentum": dict(
        layers=[("dense", 32, "tanh"), ("dense", 10, "softmax")],
        optimizer=("SGD", {"learning_rate": 0.05, "momentum": 0.9}),
        loss=("SparseCategoricalCrossentropy", {"from_logits": False}),
        labels="sparse",
        batch_size=32,
        steps=200,
        samples=1600,
        backends=("tensorflow",),
    ),
    "small_sgd_nesterov": dict(
        layers=[("dense", 32, "sigmoid"), ("dense", 10, "softmax")],
        optimizer=("SGD", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
        loss=("SparseCategoricalCrossentropy", {"from_logits": False}),
        labels="sparse",
        batch_size=32,
        steps=200,
        samples=1600,
        backends=("tensorflow",),
    ),
    "onehot_categorical": dict(
        layers=[("dense", 64, "relu"), ("dense", 10, "softmax")],
        optimizer=("Adam", {"learning_rate": 0.002}),
        loss=("CategoricalCrossentropy", {"from_logits": False}),
        labels="onehot",
        batch_size=32,
        steps=200,
        samples=1600,
        backends=("tensorflow", "jax"),
    ),
    "binary_two_class": dict(
        layers=[("dense", 32, "relu"), ("dense", 1, "sigmoid")],
        optimizer=("Adam", {"learning_rate": 0.003}),
        loss=("BinaryCrossentropy", {"from_logits": False}),
        labels="binary",
        batch_size=32,
        steps=200,
        samples=1600,
        backends=("tensorflow", "jax"),
    ),
    "binary_saturating": dict(
        layers=[("dense", 32, "relu"), ("dense", 1, "sigmoid")],
        optimizer=("Adam", {"learning_rate": 0.01}),
        loss=("BinaryCrossentropy", {"from_logits": False}),
        labels="binary",
        label_noise=0.05,
        batch_size=32,
        steps=150,
        samples=1600,
        backends=("tensorflow", "jax"),
    ),
    "softmax_saturating": dict(
        layers=[("dense", 64, "relu"), ("dense", 10, "softmax")],
        optimizer=("Adam", {"learning_rate": 0.01}),
        loss=("SparseCategoricalCrossentropy", {"from_logits": False}),
        labels="sparse",
        label_noise=0.05,
        batch_size=32,
        steps=150,
        samples=1600,
        backends=("tensorflow", "jax"),
    ),
    "mlp_nadam": dict(
        layers=[("dense", 64, "relu"), ("dense", 10, "softmax")],
        optimizer=("Nadam", {"learning_rate": 0.002}),
        loss=("SparseCategoricalCrossentropy", {"from_logits": False}),
        labels="sparse",
        batch_size=32,
        steps=150,
        samples=1600,
        backends=("jax",),
    ),
    "mlp_adamax": dict(
        layers=[("dense", 64, "relu"), ("dense", 10, "softmax")],
        optimizer=("Adamax", {"learning_rate": 0.002}),
        loss=("SparseCategoricalCrossentropy", {"from_logits": False}),
        labels="sparse",
        batch_size=32,
        steps=150,
        samples=1600,
        backends=("jax",),
    ),
    "mlp_adadelta": dict(
        layers=[("dense", 64, "relu"), ("dense", 10, "softmax")],
        optimizer=("Adadelta", {"learning_rate": 1.0}),
        loss=("SparseCategoricalCrossentropy", {"from_logits": False}),
        labels="sparse",
        batch_size=32,
        steps=150,
        samples=1600,
        backends=("jax",),
    ),
}


def make_data(case: dict, seed: int = 20261121):
    """MNIST-shaped synthetic data: noisy prototypes, pixels in [0, 1], and a fraction
    (label_noise, 15% by default) of the labels replaced at random, so the loss stays
    well above zero. The *_saturating cases use 5% and a high learning rate: the model
    grows confident fast, and its confident mistakes put the true class's probability
    below 1e-7, where clipping (Keras's non-TensorFlow backends) changes the loss and
    its gradient."""
    rng = np.random.default_rng(seed)
    n = case["samples"]
    classes = 2 if case["labels"] == "binary" else 10
    prototypes = rng.random((classes, 784)) < 0.15
    y = rng.integers(0, classes, size=n)
    pixels = prototypes[y] * rng.integers(60, 200, size=(n, 1)) + rng.integers(0, 120, size=(n, 784))
    x = (np.clip(pixels, 0, 255).astype(np.uint8) / 255.0).astype(np.float32)
    flip = rng.random(n) < case.get("label_noise", 0.15)
    y = np.where(flip, rng.integers(0, classes, size=n), y)
    if case["labels"] == "onehot":
        labels = np.eye(10, dtype=np.float32)[y]
    elif case["labels"] == "binary":
        labels = y.astype(np.float32)[:, None]
    else:
        labels = y.astype(np.int64)
    return x, labels


def make_initial_weights(case: dict, seed: int = 7):
    """Glorot-uniform kernels and small random biases (so the bias path matters)."""
    rng = np.random.default_rng(seed)
    weights, fan_in = [], 784
    for layer in case["layers"]:
        if layer[0] != "dense":
            continue
        units = layer[1]
        limit = np.sqrt(6.0 / (fan_in + units))
        weights.append(rng.uniform(-limit, limit, size=(fan_in, units)).astype(np.float32))
        weights.append(rng.uniform(-0.05, 0.05, size=units).astype(np.float32))
        fan_in = units
    return weights


def batches(case: dict, x, y):
    """The fixed batch order: consecutive batches, wrapping around, no shuffling."""
    n, b = len(x), case["batch_size"]
    per_epoch = int(np.ceil(n / b))
    for step in range(case["steps"]):
        lo = (step % per_epoch) * b
        yield x[lo : lo + b], y[lo : lo + b]


def digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def weight_samples(weights):
    """A deterministic sample (up to 2048 evenly spaced entries) of each array, plus sums and norms."""
    samples, sums, norms = [], [], []
    for w in weights:
        flat = np.asarray(w, dtype=np.float64).ravel()
        idx = np.linspace(0, flat.size - 1, min(flat.size, 2048)).astype(np.int64)
        samples.append(flat[idx].astype(np.float32))
        sums.append(flat.sum())
        norms.append(np.sqrt((flat * flat).sum()))
    return samples, np.array(sums), np.array(norms)


def fixture_path(name: str, backend: str) -> str:
    return os.path.join(FIXTURES, f"{name}__{backend}.npz")
