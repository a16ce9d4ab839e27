"""Train the Keras "simple MNIST convnet" with tinynet.

Conv2D(32, 3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3, relu) -> MaxPooling2D(2)
-> Flatten -> Dropout(0.5) -> Dense(10, softmax); Adam, sparse categorical
cross-entropy, batch 128, 15 epochs, validation split 0.1, pixels scaled to
[0, 1] and shaped (N, 28, 28, 1). Keras records 99.2% test accuracy for it.

    python examples/mnist_cnn.py                  # CPU (about 18 s per epoch on 2 cores)
    python examples/mnist_cnn.py --device gpu
    python examples/mnist_cnn.py --subset 2000 --epochs 1     # a quick look
    python examples/mnist_cnn.py --dataset fashion_mnist      # clothes instead of digits

Same flags, output and plots as examples/mnist_mlp.py, plus --batch-norm to add a
BatchNormalization after each convolution and --l2 for a weight penalty.
"""

from __future__ import annotations

import argparse
import sys

from common import add_common_flags, dataset, fraction, main_guarded, make_optimizer, run

import tinynet as tn


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    add_common_flags(p, epochs=15, batch_size=128, dropout=0.5, plots="plots/mnist_cnn")
    p.add_argument("--batch-norm", action="store_true", help="BatchNormalization after each convolution")
    p.add_argument("--l2", type=fraction, default=0.0, help="L2 penalty on every kernel (default: 0)")
    return p


def build_model(args) -> tn.Sequential:
    reg = tn.regularizers.l2(args.l2) if args.l2 > 0 else None
    layers = [tn.Input((28, 28, 1))]
    for filters in (32, 64):
        layers.append(tn.Conv2D(filters, 3, activation="relu", kernel_regularizer=reg))
        if args.batch_norm:
            layers.append(tn.BatchNormalization())
        layers.append(tn.MaxPooling2D(2))
    layers.append(tn.Flatten())
    if args.dropout > 0:
        layers.append(tn.Dropout(args.dropout))
    layers.append(tn.Dense(10, activation="softmax", kernel_regularizer=reg))
    model = tn.Sequential(layers, device=args.device, seed=args.seed)
    model.compile(optimizer=make_optimizer(args), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run(args, build_model, (28, 28, 1), f"{dataset(args).TITLE} CNN (Keras simple convnet)")


if __name__ == "__main__":
    sys.exit(main_guarded(main))
