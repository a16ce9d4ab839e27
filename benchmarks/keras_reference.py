"""Record what Keras computes, step by step, for tinynet's parity tests.

    pip install keras tensorflow jax        # Keras 3, its TensorFlow and JAX backends
    python benchmarks/keras_reference.py    # re-records every fixture from scratch

For each configuration in tests/parity_cases.py and each Keras backend it names,
this builds the Keras model, sets the same initial weights the tests will use,
trains on the fixed batch order with ``train_on_batch`` (the loss of each step,
computed before that step's update), and writes tests/fixtures/keras/NAME__BACKEND.npz:
the per-step losses, samples of the final weights with their sums and norms, the
predictions on 8 samples, and the Keras / backend versions. Each backend runs in
its own process (Keras picks its backend once, at import). It also records two
small CNNs (convolutions with valid/same padding and strides, max and average
pooling, BatchNormalization, Reshape): their weights, an input, and Keras's
output in inference and in training mode (tests/test_keras_parity.py loads the
weights into tinynet with set_weights and compares).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import parity_cases  # noqa: E402


def record(backend: str, names):
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    backend_version = {
        "tensorflow": lambda: __import__("tensorflow").__version__,
        "jax": lambda: __import__("jax").__version__,
    }[backend]()
    for name in names:
        case = parity_cases.CASES[name]
        if backend not in case["backends"]:
            continue
        x, y = parity_cases.make_data(case)
        initial = parity_cases.make_initial_weights(case)
        layers = [keras.Input((784,))]
        for spec in case["layers"]:
            if spec[0] == "dense":
                layers.append(keras.layers.Dense(spec[1], activation=spec[2]))
            else:
                layers.append(keras.layers.Dropout(spec[1]))
        model = keras.Sequential(layers)
        opt_name, opt_kwargs = case["optimizer"]
        loss_name, loss_kwargs = case["loss"]
        model.compile(
            optimizer=getattr(keras.optimizers, opt_name)(**opt_kwargs),
            loss=getattr(keras.losses, loss_name)(**loss_kwargs),
        )
        model.set_weights(initial)
        losses = [float(model.train_on_batch(xb, yb)) for xb, yb in parity_cases.batches(case, x, y)]
        samples, sums, norms = parity_cases.weight_samples(model.get_weights())
        predictions = np.asarray(model.predict(x[:8], verbose=0), dtype=np.float32)
        meta = {
            "case": name,
            "backend": backend,
            "keras": keras.__version__,
            "backend_version": backend_version,
            "numpy": np.__version__,
            "data_sha256": parity_cases.digest([x, y]),
            "weights_sha256": parity_cases.digest(initial),
            "config": case,
        }
        arrays = {
            "losses": np.array(losses),
            "sums": sums,
            "norms": norms,
            "predictions": predictions,
            "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        }
        arrays.update({f"sample_{i}": s for i, s in enumerate(samples)})
        os.makedirs(parity_cases.FIXTURES, exist_ok=True)
        path = parity_cases.fixture_path(name, backend)
        np.savez_compressed(path, **arrays)
        print(
            f"{path}: {len(losses)} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f} "
            f"({os.path.getsize(path) / 1024:.0f} KB)"
        )


CNN_MODELS = {
    # name: (input shape, layers as (kind, args, kwargs))
    "cnn_same_strided": (
        (11, 10, 2),
        [
            ("Conv2D", (4, 3), {"strides": 2, "padding": "same", "activation": "relu"}),
            ("MaxPooling2D", (2,), {"padding": "same"}),
            ("Conv2D", (3, (2, 2)), {"padding": "valid"}),
            ("AveragePooling2D", (2,), {"strides": 1, "padding": "same"}),
            ("BatchNormalization", (), {}),
            ("Flatten", (), {}),
            ("Dense", (5,), {"activation": "softmax"}),
        ],
    ),
    "cnn_valid_rectangular": (
        (12, 11, 3),
        [
            ("Conv2D", (5, (3, 2)), {"strides": (1, 2), "activation": "tanh"}),
            ("AveragePooling2D", (2,), {}),
            ("Conv2D", (2, 2), {"padding": "same", "activation": "sigmoid"}),
            ("MaxPooling2D", ((2, 1),), {"strides": (1, 1)}),
            ("Reshape", ((-1,),), {}),
            ("Dense", (4,), {}),
        ],
    ),
}


def record_cnn():
    """Forward outputs of small CNNs (inference and training mode) with given weights."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    import numpy as np

    for name, (shape, spec) in CNN_MODELS.items():
        rng = np.random.default_rng(11)
        layers = [keras.Input(shape)] + [getattr(keras.layers, kind)(*a, **kw) for kind, a, kw in spec]
        model = keras.Sequential(layers)
        weights = [w + rng.uniform(-0.1, 0.1, w.shape).astype(np.float32) for w in model.get_weights()]
        # non-trivial moving statistics for BatchNormalization (variance kept positive)
        weights = [np.abs(w) + 0.5 if model.weights[i].name == "moving_variance" else w for i, w in enumerate(weights)]
        model.set_weights(weights)
        x = rng.standard_normal((4,) + shape).astype(np.float32)
        arrays = {
            "x": x,
            "inference": np.asarray(model(x, training=False)),
            "training": np.asarray(model(x, training=True)),
            "meta": np.frombuffer(
                json.dumps({"keras": keras.__version__, "spec": spec, "shape": shape}).encode(), dtype=np.uint8
            ),
        }
        arrays.update({f"weight_{i}": w for i, w in enumerate(weights)})
        path = parity_cases.fixture_path(name, "tensorflow")
        np.savez_compressed(path, **arrays)
        print(f"{path}: {len(weights)} weights, output {arrays['inference'].shape}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=["tensorflow", "jax"], help="record one backend only (used internally)")
    p.add_argument("--cnn", action="store_true", help="record the CNN forward fixtures only (used internally)")
    p.add_argument("cases", nargs="*", help="case names (default: all)")
    args = p.parse_args()
    names = args.cases or list(parity_cases.CASES)
    if args.cnn:
        record_cnn()
        return 0
    if args.backend:
        record(args.backend, names)
        return 0
    for flags in (["--backend", "tensorflow", *names], ["--backend", "jax", *names], ["--cnn"]):
        result = subprocess.run([sys.executable, __file__, *flags])
        if result.returncode:
            print(f"recording {' '.join(flags)} failed", file=sys.stderr)
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
