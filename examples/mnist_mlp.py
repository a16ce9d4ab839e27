"""Train a multilayer perceptron on MNIST with tinynet, the way the tutorials do.

Defaults reproduce the classic tutorial model:
784 -> Dense(100, relu) -> Dense(10, softmax), Adam, sparse categorical
cross-entropy, 10 epochs, batch 32, validation split 0.1, pixels scaled to [0, 1].

    python examples/mnist_mlp.py                        # CPU
    python examples/mnist_mlp.py --device gpu           # needs CuPy and a CUDA GPU
    python examples/mnist_mlp.py --hidden 512,512 --dropout 0.2 --optimizer rmsprop --batch-size 128 --epochs 20

The data is read from --data-dir, else $TINYNET_DATA_DIR, else the user cache,
else downloaded (see tinynet.datasets.mnist); --dataset fashion_mnist trains on
Fashion-MNIST instead. Prints each epoch, the test loss and accuracy, the
confusion matrix and a per-class report; writes four plots to --plots (default:
plots/mnist_mlp/) and saves the model with --save PATH.
"""

from __future__ import annotations

import argparse
import sys

from common import add_common_flags, dataset, main_guarded, make_optimizer, run

import tinynet as tn
from tinynet import losses


def parse_hidden(text: str) -> list[int]:
    try:
        units = [int(u) for u in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--hidden expects comma-separated positive integers like 512,512, got {text!r}"
        ) from None
    if any(u < 1 for u in units):
        raise argparse.ArgumentTypeError(f"--hidden sizes must be positive, got {text!r}")
    return units


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    add_common_flags(p, epochs=10, batch_size=32, dropout=0.0, plots="plots/mnist_mlp")
    p.add_argument("--hidden", type=parse_hidden, default=[100], help="hidden layer sizes, e.g. 100 or 512,512")
    p.add_argument(
        "--output-activation",
        choices=["softmax", "sigmoid"],
        default="softmax",
        help="default: softmax. sigmoid: ten sigmoid outputs, but under this\n"
        "cross-entropy Keras (and tinynet) computes the loss from their\n"
        "input, so it trains exactly as softmax does (its scores need not\n"
        "sum to 1). Independent scores need binary cross-entropy on one-hot\n"
        "targets: loss='binary_crossentropy', tn.utils.to_categorical(y)",
    )
    p.add_argument(
        "--cuda-graph",
        choices=["auto", "on", "off"],
        default="auto",
        help="on the GPU, train each epoch as one CUDA graph (auto: where the model allows it, else step by step;\n"
        "on: an error where it cannot, or on the CPU; off: step by step; default: auto)",
    )
    return p


def build_model(args) -> tn.Sequential:
    layers = [tn.Input((784,))]
    for units in args.hidden:
        layers.append(tn.Dense(units, activation="relu"))
        if args.dropout > 0:
            layers.append(tn.Dropout(args.dropout))
    layers.append(tn.Dense(10, activation=args.output_activation))
    model = tn.Sequential(layers, device=args.device, seed=args.seed)
    model.compile(
        optimizer=make_optimizer(args),
        loss=losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
        # (examples/trace_step.py builds this model from its own flags, without --cuda-graph)
        cuda_graph={"auto": "auto", "on": True, "off": False}[getattr(args, "cuda_graph", "auto")],
    )
    return model


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run(args, build_model, (784,), f"{dataset(args).TITLE} MLP {args.hidden}, {args.optimizer}")


if __name__ == "__main__":
    sys.exit(main_guarded(main))
