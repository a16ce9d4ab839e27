"""A small, honest hyperparameter search for the MNIST MLP.

Trials are scored on the validation split only (the last --validation-split of
the training set); the test set is used once, for the best configuration, at
the end. Grid search tries every combination; random search draws --trials of
them.

    python examples/tune_mlp.py --search random --trials 6 --epochs 3
    python examples/tune_mlp.py --search grid --learning-rates 0.001,0.003 --batch-sizes 32,128 --hidden 100,256

Prints a table ranked by validation accuracy and plots validation accuracy per
trial to --plots/tuning.png.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

import numpy as np

import tinynet as tn
from tinynet import preprocessing
from tinynet.datasets import DatasetError, mnist


def floats(text):
    return [float(v) for v in text.split(",")]


def ints(text):
    return [int(v) for v in text.split(",")]


def make_model(hidden, learning_rate, seed, device):
    model = tn.Sequential(
        [tn.Input((784,)), tn.Dense(hidden, activation="relu"), tn.Dense(10, activation="softmax")],
        seed=seed,
        device=device,
    )
    model.compile(tn.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--search", choices=["grid", "random"], default="random")
    p.add_argument("--trials", type=int, default=6, help="random search: how many configurations (default 6)")
    p.add_argument("--learning-rates", type=floats, default=[3e-4, 1e-3, 3e-3])
    p.add_argument("--batch-sizes", type=ints, default=[32, 64, 128])
    p.add_argument("--hidden", type=ints, default=[64, 100, 256])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--validation-split", type=float, default=0.1)
    p.add_argument("--subset", type=int, default=None, help="use the first N training images only")
    p.add_argument("--device", choices=["cpu", "gpu", "auto"], default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--no-verify", action="store_true")
    p.add_argument("--plots", default="plots")
    args = p.parse_args(argv)

    try:
        (x_train, y_train), (x_test, y_test) = mnist.load_data(args.data_dir, verify=not args.no_verify)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.subset:
        x_train, y_train = x_train[: args.subset], y_train[: args.subset]
    x_train = preprocessing.flatten(preprocessing.scale(x_train))
    x_test = preprocessing.flatten(preprocessing.scale(x_test))
    (x_fit, y_fit), (x_val, y_val) = preprocessing.train_val_split(x_train, y_train, args.validation_split)

    grid = list(itertools.product(args.learning_rates, args.batch_sizes, args.hidden))
    if args.search == "random":
        rng = np.random.default_rng(args.seed)
        grid = [grid[i] for i in rng.choice(len(grid), size=min(args.trials, len(grid)), replace=False)]
    print(
        f"{args.search} search: {len(grid)} trials of {args.epochs} epochs, "
        f"{len(x_fit)} training / {len(x_val)} validation images"
    )

    results = []
    for k, (lr, batch, hidden) in enumerate(grid, start=1):
        model = make_model(hidden, lr, args.seed, args.device)
        start = time.perf_counter()
        model.fit(x_fit, y_fit, batch_size=batch, epochs=args.epochs, validation_data=(x_val, y_val), verbose=0)
        val_loss, val_acc = model.evaluate(x_val, y_val, batch_size=512, verbose=0)
        seconds = time.perf_counter() - start
        results.append(
            {
                "learning_rate": lr,
                "batch_size": batch,
                "hidden": hidden,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "seconds": seconds,
            }
        )
        print(
            f"trial {k}/{len(grid)}: lr {lr:g}, batch {batch}, hidden {hidden} -> "
            f"val_accuracy {val_acc:.4f}, val_loss {val_loss:.4f} ({seconds:.1f} s)"
        )

    ranked = sorted(results, key=lambda r: (-r["val_accuracy"], r["val_loss"]))
    print(f"\n{'rank':>4} {'learning_rate':>13} {'batch':>5} {'hidden':>6} {'val_acc':>8} {'val_loss':>8} {'time':>7}")
    for i, r in enumerate(ranked, start=1):
        print(
            f"{i:>4} {r['learning_rate']:>13g} {r['batch_size']:>5} {r['hidden']:>6} {r['val_accuracy']:>8.4f} "
            f"{r['val_loss']:>8.4f} {r['seconds']:>6.1f}s"
        )

    best = ranked[0]
    model = make_model(best["hidden"], best["learning_rate"], args.seed, args.device)
    model.fit(x_fit, y_fit, batch_size=best["batch_size"], epochs=args.epochs, verbose=0)
    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=512, verbose=0)
    print(
        f"\nbest on validation: lr {best['learning_rate']:g}, batch {best['batch_size']}, hidden {best['hidden']};"
        f" scored once on the test set: accuracy {test_acc:.4f}, loss {test_loss:.4f}"
    )

    if args.plots:
        from tinynet import plot

        os.makedirs(args.plots, exist_ok=True)
        labels = [f"lr {r['learning_rate']:g}\nb {r['batch_size']}\nh {r['hidden']}" for r in results]
        path = plot.plot_trials(
            labels,
            [r["val_accuracy"] for r in results],
            os.path.join(args.plots, "tuning.png"),
            best=results.index(best),
        )
        print("plot: " + path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
