"""What the MNIST example scripts share: flags, data loading and the final report."""

from __future__ import annotations

import argparse
import os
import sys
import time

import tinynet as tn
from tinynet import metrics, optimizers, preprocessing
from tinynet.datasets import DatasetError, mnist

OPTIMIZERS = {
    "adam": optimizers.Adam,
    "adamw": optimizers.AdamW,
    "rmsprop": optimizers.RMSprop,
    "sgd": optimizers.SGD,
    "adagrad": optimizers.Adagrad,
}


def add_common_flags(p: argparse.ArgumentParser, epochs: int, batch_size: int, dropout: float):
    p.add_argument("--device", choices=["cpu", "gpu", "auto"], default="cpu", help="default: cpu")
    p.add_argument("--epochs", type=int, default=epochs, help=f"default: {epochs}")
    p.add_argument("--batch-size", type=int, default=batch_size, help=f"default: {batch_size}")
    p.add_argument("--learning-rate", type=float, default=None, help="default: the optimizer's Keras default")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam", help="default: adam")
    p.add_argument("--dropout", type=float, default=dropout, help=f"dropout rate (default: {dropout})")
    p.add_argument("--validation-split", type=float, default=0.1, help="default: 0.1")
    p.add_argument("--seed", type=int, default=0, help="default: 0")
    p.add_argument(
        "--data-dir",
        default=None,
        help="directory with the MNIST files (default: $TINYNET_DATA_DIR, the cache, or a download)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the SHA-256 check (other data in MNIST's format)")
    p.add_argument("--subset", type=int, default=None, help="use only the first N training and test images")
    p.add_argument("--plots", default="plots", help="directory for the PNG plots (default: plots; '' for none)")
    p.add_argument("--save", default=None, help="save the trained model to this .npz path")
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1, help="fit's verbosity (default: 1)")


def make_optimizer(args):
    kwargs = {} if args.learning_rate is None else {"learning_rate": args.learning_rate}
    return OPTIMIZERS[args.optimizer](**kwargs)


def load(args, image_shape):
    """MNIST scaled to [0, 1] and shaped (N,) + image_shape; None after printing an error."""
    try:
        tn.backend.resolve_device(args.device)  # fail before loading anything
        (x_train, y_train), (x_test, y_test) = mnist.load_data(args.data_dir, verify=not args.no_verify)
    except (DatasetError, tn.DeviceUnavailableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return None
    if args.subset:
        x_train, y_train = x_train[: args.subset], y_train[: args.subset]
        x_test, y_test = x_test[: args.subset], y_test[: args.subset]
    print(f"MNIST: {len(x_train)} training and {len(x_test)} test images of {x_train.shape[1:]}")
    images_test = x_test
    x_train = preprocessing.scale(x_train).reshape((len(x_train),) + image_shape)
    x_test = preprocessing.scale(x_test).reshape((len(x_test),) + image_shape)
    return x_train, y_train, x_test, y_test, images_test


def train(model, args, x_train, y_train):
    """summary + fit; returns the History, or None after printing an error."""
    try:
        model.summary()
        start = time.perf_counter()
        history = model.fit(
            x_train,
            y_train,
            batch_size=args.batch_size,
            epochs=args.epochs,
            validation_split=args.validation_split,
            verbose=args.verbose,
        )
    except (ValueError, tn.DeviceUnavailableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return None
    seconds = time.perf_counter() - start
    print(
        f"trained {len(history.epoch)} epochs in {seconds:.1f} s ({seconds / max(len(history.epoch), 1):.2f} s/epoch)"
        f" on {model.device}"
    )
    return history


def report(model, history, args, x_test, y_test, images_test, title):
    """Test loss and accuracy, confusion matrix, per-class report, the four plots, --save."""
    batch = max(args.batch_size, 256)
    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=batch, verbose=0)
    print(f"test loss: {test_loss:.4f}  test accuracy: {test_accuracy:.4f}")
    predicted = model.predict(x_test, batch_size=batch).argmax(axis=1)
    cm = metrics.confusion_matrix(y_test, predicted, num_classes=10)
    print("\nconfusion matrix:")
    print(metrics.format_confusion_matrix(cm))
    print("\nper-class report:")
    print(metrics.classification_report(y_test, predicted, num_classes=10))
    if args.plots:
        from tinynet import plot

        os.makedirs(args.plots, exist_ok=True)
        written = [
            plot.plot_samples(images_test, y_test, os.path.join(args.plots, "samples.png")),
            plot.plot_history(history, os.path.join(args.plots, "history.png"), title=title),
            plot.plot_confusion_matrix(cm, os.path.join(args.plots, "confusion_matrix.png")),
            plot.plot_misclassified(images_test, y_test, predicted, os.path.join(args.plots, "misclassified.png")),
        ]
        print("\nplots: " + ", ".join(written))
    if args.save:
        print(f"model saved to {model.save(args.save)}")


def run(args, build_model, image_shape, title) -> int:
    """Load, build, train and report: the whole example; returns the exit status."""
    data = load(args, image_shape)
    if data is None:
        return 2
    x_train, y_train, x_test, y_test, images_test = data
    try:
        model = build_model(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    history = train(model, args, x_train, y_train)
    if history is None:
        return 2
    report(model, history, args, x_test, y_test, images_test, title)
    return 0
