"""Train the classic tutorial model in Keras and in tinynet, side by side.

    pip install keras tensorflow matplotlib && pip install -e .
    TINYNET_DATA_DIR=/path/to/mnist python benchmarks/compare_keras.py

784 -> Dense(100, relu) -> Dense(10, softmax), Adam, sparse categorical
cross-entropy, batch 32, 10 epochs, validation split 0.1, pixels scaled to [0, 1].
Both start from the same initial weights (Keras's, copied into tinynet with
set_weights); each shuffles with its own random generator, as a user would run
them. Prints per-epoch loss / accuracy / val_loss / val_accuracy of both, the test
accuracy and the time per epoch, and writes to benchmarks/results/:
compare_keras.json, compare_keras.md and compare_keras.png (the learning curves
overlaid).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import tinynet as tn  # noqa: E402
from benchmarks.common import cpu_name, epoch_timer  # noqa: E402
from tinynet import preprocessing  # noqa: E402
from tinynet.datasets import mnist  # noqa: E402

KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


def run_keras(x, y, x_test, y_test, args):
    import keras

    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential(
        [keras.Input((784,)), keras.layers.Dense(100, activation="relu"), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    initial = model.get_weights()
    times = []
    history = model.fit(
        x,
        y,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_split=0.1,
        callbacks=[epoch_timer(keras.callbacks.Callback, times)],
        verbose=0,
        shuffle=not args.no_shuffle,
    )
    _, test_accuracy = model.evaluate(x_test, y_test, batch_size=1024, verbose=0)
    return (
        initial,
        {k: [float(v) for v in history.history[k]] for k in KEYS},
        times,
        float(test_accuracy),
        keras.__version__,
    )


def run_tinynet(initial, x, y, x_test, y_test, args):
    model = tn.Sequential(
        [tn.Input((784,)), tn.Dense(100, activation="relu"), tn.Dense(10, activation="softmax")], seed=args.seed
    )
    model.compile(tn.optimizers.Adam(), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.set_weights(initial)
    times = []
    history = model.fit(
        x,
        y,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_split=0.1,
        callbacks=[epoch_timer(tn.callbacks.Callback, times)],
        verbose=0,
        shuffle=not args.no_shuffle,
    )
    _, test_accuracy = model.evaluate(x_test, y_test, batch_size=1024, verbose=0)
    return {k: history.history[k] for k in KEYS}, times, float(test_accuracy)


def plot(result, path):
    from tinynet.plot import plot_histories

    order = "shuffled" if result["shuffle"] else "same fixed order"
    return plot_histories(
        {"keras": result["keras"]["history"], "tinynet": result["tinynet"]["history"]},
        path,
        title=f"MNIST 784-100-10, Adam, batch {result['batch_size']}: Keras vs tinynet (same initial weights, {order})",
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument(
        "--no-shuffle", action="store_true", help="both train on the same fixed order: the curves should then coincide"
    )
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    args = p.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = mnist.load_data(args.data_dir)
    x = preprocessing.flatten(preprocessing.scale(x_train))
    x_test = preprocessing.flatten(preprocessing.scale(x_test))

    initial, k_hist, k_times, k_acc, keras_version = run_keras(x, y_train, x_test, y_test, args)
    t_hist, t_times, t_acc = run_tinynet(initial, x, y_train, x_test, y_test, args)
    import tensorflow as tf

    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, CPU only",
        "versions": {
            "keras": keras_version,
            "tensorflow": tf.__version__,
            "numpy": np.__version__,
            "tinynet": tn.__version__,
            "python": platform.python_version(),
        },
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "seed": args.seed,
        "shuffle": not args.no_shuffle,
        "keras": {"history": k_hist, "epoch_seconds": k_times, "test_accuracy": k_acc},
        "tinynet": {"history": t_hist, "epoch_seconds": t_times, "test_accuracy": t_acc},
    }
    lines = [
        f"Machine: {result['machine']}; Keras {keras_version} (TensorFlow {tf.__version__}), "
        f"tinynet {tn.__version__}, NumPy {np.__version__}",
        "",
        "| epoch | Keras loss | tinynet loss | Keras acc | tinynet acc | Keras val_loss | tinynet val_loss "
        "| Keras val_acc | tinynet val_acc | Keras s | tinynet s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in range(len(k_hist["loss"])):
        lines.append(
            f"| {e + 1} | {k_hist['loss'][e]:.4f} | {t_hist['loss'][e]:.4f} | {k_hist['accuracy'][e]:.4f} "
            f"| {t_hist['accuracy'][e]:.4f} | {k_hist['val_loss'][e]:.4f} | {t_hist['val_loss'][e]:.4f} "
            f"| {k_hist['val_accuracy'][e]:.4f} | {t_hist['val_accuracy'][e]:.4f} "
            f"| {k_times[e]:.2f} | {t_times[e]:.2f} |"
        )
    k_med, t_med = float(np.median(k_times[1:] or k_times)), float(np.median(t_times[1:] or t_times))
    lines += [
        "",
        f"Test accuracy: Keras {k_acc:.4f}, tinynet {t_acc:.4f} (difference {100 * (t_acc - k_acc):+.2f} points).",
        f"Median epoch time after the first: Keras {k_med:.2f} s, tinynet {t_med:.2f} s "
        f"(tinynet {k_med / t_med:.1f}x faster).",
    ]
    text = "\n".join(lines)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "compare_keras" + ("_noshuffle" if args.no_shuffle else ""))
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write(
            f"# Keras vs tinynet: the classic MNIST MLP ({'fixed order' if args.no_shuffle else 'shuffled'})\n\n"
            f"Command: `python benchmarks/compare_keras.py{' --no-shuffle' if args.no_shuffle else ''}`\n\n"
            + text
            + "\n"
        )
    print("plot: " + plot(result, stem + ".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
