"""Record what Keras computes, step by step, for tinynet's parity tests.

    pip install keras tensorflow jax        # Keras 3, its TensorFlow and JAX backends
    python benchmarks/keras_reference.py    # re-records every fixture from scratch

For each configuration in tests/parity_cases.py and each Keras backend it names,
this builds the Keras model, sets the same initial weights the tests will use,
trains on the fixed batch order with ``train_on_batch`` (the loss of each step,
computed before that step's update), and writes tests/fixtures/keras/NAME__BACKEND.npz:
the per-step losses, samples of the final weights with their sums and norms, the
predictions on 8 samples, and the Keras / backend versions. Each backend runs in
its own process (Keras picks its backend once, at import).
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
    backend_version = {"tensorflow": lambda: __import__("tensorflow").__version__,
                       "jax": lambda: __import__("jax").__version__}[backend]()
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
        model.compile(optimizer=getattr(keras.optimizers, opt_name)(**opt_kwargs),
                      loss=getattr(keras.losses, loss_name)(**loss_kwargs))
        model.set_weights(initial)
        losses = [float(model.train_on_batch(xb, yb)) for xb, yb in parity_cases.batches(case, x, y)]
        samples, sums, norms = parity_cases.weight_samples(model.get_weights())
        predictions = np.asarray(model.predict(x[:8], verbose=0), dtype=np.float32)
        meta = {"case": name, "backend": backend, "keras": keras.__version__, "backend_version": backend_version,
                "numpy": np.__version__, "data_sha256": parity_cases.digest([x, y]),
                "weights_sha256": parity_cases.digest(initial), "config": case}
        arrays = {"losses": np.array(losses), "sums": sums, "norms": norms, "predictions": predictions,
                  "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
        arrays.update({f"sample_{i}": s for i, s in enumerate(samples)})
        os.makedirs(parity_cases.FIXTURES, exist_ok=True)
        path = parity_cases.fixture_path(name, backend)
        np.savez_compressed(path, **arrays)
        print(f"{path}: {len(losses)} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f} "
              f"({os.path.getsize(path) / 1024:.0f} KB)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=["tensorflow", "jax"], help="record one backend only (used internally)")
    p.add_argument("cases", nargs="*", help="case names (default: all)")
    args = p.parse_args()
    names = args.cases or list(parity_cases.CASES)
    if args.backend:
        record(args.backend, names)
        return 0
    for backend in ("tensorflow", "jax"):
        result = subprocess.run([sys.executable, __file__, "--backend", backend, *names])
        if result.returncode:
            print(f"recording with the {backend} backend failed", file=sys.stderr)
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
