"""Train a multilayer perceptron on MNIST with tinynet, the way the tutorials do.

Defaults reproduce the classic tutorial model:
784 -> Dense(100, relu) -> Dense(10, softmax), Adam, sparse categorical
cross-entropy, 10 epochs, batch 32, validation split 0.1, pixels scaled to [0, 1].

    python examples/mnist_mlp.py                        # CPU
    python examples/mnist_mlp.py --device gpu           # needs CuPy and a CUDA GPU
    python examples/mnist_mlp.py --hidden 512,512 --dropout 0.2 --optimizer rmsprop --batch-size 128 --epochs 20

The data is read from --data-dir, else $TINYNET_DATA_DIR, else the user cache,
else downloaded (see tinynet.datasets.mnist). Prints each epoch, the test loss
and accuracy, the confusion matrix and a per-class report; writes four plots to
--plots (default: plots/) and saves the model with --save PATH.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import tinynet as tn
from tinynet import losses, metrics, optimizers, preprocessing
from tinynet.datasets import DatasetError, mnist

OPTIMIZERS = {"adam": optimizers.Adam, "adamw": optimizers.AdamW, "rmsprop": optimizers.RMSprop,
              "sgd": optimizers.SGD, "adagrad": optimizers.Adagrad}


def parse_hidden(text: str) -> list[int]:
    try:
        units = [int(u) for u in text.split(",") if u.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--hidden expects comma-separated positive integers like 512,512, got {text!r}") from None
    if any(u < 1 for u in units):
        raise argparse.ArgumentTypeError(f"--hidden sizes must be positive, got {text!r}")
    return units


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", choices=["cpu", "gpu", "auto"], default="cpu", help="default: cpu")
    p.add_argument("--epochs", type=int, default=10, help="default: 10")
    p.add_argument("--batch-size", type=int, default=32, help="default: 32")
    p.add_argument("--learning-rate", type=float, default=None, help="default: the optimizer's Keras default")
    p.add_argument("--hidden", type=parse_hidden, default=[100], help="hidden layer sizes, e.g. 100 or 512,512")
    p.add_argument("--output-activation", choices=["softmax", "sigmoid"], default="softmax", help="default: softmax")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam", help="default: adam")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout rate after each hidden layer (default: 0)")
    p.add_argument("--validation-split", type=float, default=0.1, help="default: 0.1")
    p.add_argument("--seed", type=int, default=0, help="default: 0")
    p.add_argument("--data-dir", default=None, help="directory with the MNIST files (default: $TINYNET_DATA_DIR, "
                                                     "the cache, or a download)")
    p.add_argument("--no-verify", action="store_true", help="skip the SHA-256 check (other data in MNIST's format)")
    p.add_argument("--subset", type=int, default=None, help="use only the first N training and test images")
    p.add_argument("--plots", default="plots", help="directory for the PNG plots (default: plots; '' for none)")
    p.add_argument("--save", default=None, help="save the trained model to this .npz path")
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1, help="fit's verbosity (default: 1)")
    return p


def build_model(args) -> tn.Sequential:
    layers = [tn.Input((784,))]
    for units in args.hidden:
        layers.append(tn.Dense(units, activation="relu"))
        if args.dropout > 0:
            layers.append(tn.Dropout(args.dropout))
    layers.append(tn.Dense(10, activation=args.output_activation))
    model = tn.Sequential(layers, device=args.device, seed=args.seed)
    kwargs = {} if args.learning_rate is None else {"learning_rate": args.learning_rate}
    model.compile(optimizer=OPTIMIZERS[args.optimizer](**kwargs),
                  loss=losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    return model


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        tn.backend.resolve_device(args.device)  # fail before loading anything
    except tn.DeviceUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        (x_train, y_train), (x_test, y_test) = mnist.load_data(args.data_dir, verify=not args.no_verify)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.subset:
        x_train, y_train = x_train[:args.subset], y_train[:args.subset]
        x_test, y_test = x_test[:args.subset], y_test[:args.subset]
    print(f"MNIST: {len(x_train)} training and {len(x_test)} test images of {x_train.shape[1:]}")
    images_test = x_test
    x_train = preprocessing.flatten(preprocessing.scale(x_train))
    x_test = preprocessing.flatten(preprocessing.scale(x_test))

    try:
        model = build_model(args)
        model.summary()
        start = time.perf_counter()
        history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                            validation_split=args.validation_split, verbose=args.verbose)
    except (ValueError, tn.DeviceUnavailableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(f"trained {len(history.epoch)} epochs in {seconds:.1f} s ({seconds / max(len(history.epoch), 1):.2f} s/epoch)"
          f" on {model.device}")

    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=max(args.batch_size, 256), verbose=0)
    print(f"test loss: {test_loss:.4f}  test accuracy: {test_accuracy:.4f}")
    predicted = model.predict(x_test, batch_size=max(args.batch_size, 256)).argmax(axis=1)
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
            plot.plot_history(history, os.path.join(args.plots, "history.png"),
                              title=f"MNIST MLP {args.hidden}, {args.optimizer}"),
            plot.plot_confusion_matrix(cm, os.path.join(args.plots, "confusion_matrix.png")),
            plot.plot_misclassified(images_test, y_test, predicted, os.path.join(args.plots, "misclassified.png")),
        ]
        print("\nplots: " + ", ".join(written))
    if args.save:
        print(f"model saved to {model.save(args.save)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
