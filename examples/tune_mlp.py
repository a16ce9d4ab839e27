"""A small, honest hyperparameter search for the MNIST MLP.

Trials are scored on the validation split only (the last --validation-split of
the training set); the test set is used once, for the best configuration, at
the end. Grid search tries every combination; random search draws --trials of
them.

    python examples/tune_mlp.py --search random --trials 6 --epochs 3
    python examples/tune_mlp.py --search grid --learning-rates 0.001,0.003 --batch-sizes 32,128 --hidden 100,256

Prints a table ranked by validation accuracy and plots validation accuracy per
trial to tuning.png in --plots (default: plots/tune_mlp).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

import numpy as np
from common import check_prerequisites, fraction, load, main_guarded, positive_int

import tinynet as tn
from tinynet import preprocessing


def _listed(kind, text):
    try:
        values = [kind(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list like 1,2,3, got {text!r}") from None
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:  # the same trial twice; and "512,512" may mean two layers, as in mnist_mlp.py
        raise argparse.ArgumentTypeError(
            f"{text!r} lists {', '.join(map(str, twice))} more than once: each value is one candidate "
            "(every trial has one hidden layer)"
        )
    return values


def floats(text):
    values = _listed(float, text)
    if any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def ints(text):
    values = _listed(int, text)
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected whole numbers >= 1, got {text!r}")
    return values


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """Each flag's default after its help, except where the help says it, or there is none to say."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool) or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def make_model(hidden, learning_rate, seed, device):
    model = tn.Sequential(
        [tn.Input((784,)), tn.Dense(hidden, activation="relu"), tn.Dense(10, activation="softmax")],
        seed=seed,
        device=device,
    )
    model.compile(tn.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=_Defaults)
    p.add_argument("--search", choices=["grid", "random"], default="random", help="how to pick the trials")
    p.add_argument("--trials", type=positive_int, default=6, help="random search: how many configurations")
    p.add_argument("--learning-rates", type=floats, default=[3e-4, 1e-3, 3e-3], help="comma-separated")
    p.add_argument("--batch-sizes", type=ints, default=[32, 64, 128], help="comma-separated")
    p.add_argument(
        "--hidden",
        type=ints,
        default=[64, 100, 256],
        help="candidate sizes of the one hidden layer, comma-separated (not layers, as in mnist_mlp.py)",
    )
    p.add_argument("--epochs", type=positive_int, default=3, help="epochs per trial")
    p.add_argument("--validation-split", type=fraction, default=0.1, help="held out to score the trials")
    p.add_argument(
        "--subset",
        type=positive_int,
        default=None,
        help="use only the first N training and N test images (default: all)",
    )
    p.add_argument("--device", choices=["cpu", "gpu", "auto"], default="cpu", help="where to train")
    p.add_argument("--seed", type=int, default=0, help="seeds the search and every model")
    p.add_argument(
        "--data-dir",
        default=None,
        help="directory with the MNIST files (default: $TINYNET_DATA_DIR, the cache, or a download)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the SHA-256 check")
    p.add_argument("--plots", default="plots/tune_mlp", help="directory for the trials plot ('' for none)")
    args = p.parse_args(argv)
    args.save = None
    if args.validation_split == 0:
        p.error("--validation-split must be above 0: the trials are scored on it")
    problem = check_prerequisites(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    args.batch_size = 32
    data = load(args, (784,))
    if data is None:
        return 2
    x_train, y_train, x_test, y_test, _ = data
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
            f"val_accuracy {val_acc:.4f}, val_loss {val_loss:.4f} ({seconds:.2f} s)"
        )

    ranked = sorted(results, key=lambda r: (-r["val_accuracy"], r["val_loss"]))
    print(f"\n{'rank':>4} {'learning_rate':>13} {'batch':>5} {'hidden':>6} {'val_acc':>8} {'val_loss':>8} {'time':>7}")
    for i, r in enumerate(ranked, start=1):
        print(
            f"{i:>4} {r['learning_rate']:>13g} {r['batch_size']:>5} {r['hidden']:>6} {r['val_accuracy']:>8.4f} "
            f"{r['val_loss']:>8.4f} {r['seconds']:>6.2f}s"
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
    sys.exit(main_guarded(main))
