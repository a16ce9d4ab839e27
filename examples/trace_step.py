"""See backprop happen: trace one batch of MNIST forward and backward, layer by layer.

Builds the tutorial MLP (784 -> Dense(100, relu) -> Dense(10, softmax), as
examples/mnist_mlp.py) or, with --model cnn, the simple convnet of
examples/mnist_cnn.py; trains it for --epochs while a GradientMonitor records the
gradient norms, update ratios and dead ReLUs; then traces one batch of --batch-size
test images (tinynet.trace) and prints, for every layer, its formula, what went in
and out, the gradients that came back, the step the optimizer would take, and a float64
gradient check on that very batch. Writes trace.png and gradients.png to --plots.

    python examples/trace_step.py                     # the MLP after one epoch
    python examples/trace_step.py --model cnn --subset 6000
    python examples/trace_step.py --learning-rate 2 --optimizer sgd    # watch it go wrong: dead ReLUs, no gradient

Exits with status 1 if a layer's gradient check fails (a relative error of 1e-6 or more).
"""

from __future__ import annotations

import argparse
import os
import sys

from common import add_common_flags, check_prerequisites, load, main_guarded, plural, train
from mnist_cnn import build_model as build_cnn
from mnist_mlp import build_model as build_mlp
from mnist_mlp import parse_hidden

import tinynet as tn
from tinynet.trace import CHECK_TOLERANCE


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    add_common_flags(p, epochs=1, batch_size=32, dropout=0.0, plots="plots/trace_step")
    p.set_defaults(dropout=None)
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp", help="default: mlp")
    p.add_argument("--hidden", type=parse_hidden, default=[100], help="MLP hidden layer sizes (default: 100)")
    p.add_argument("--batch-norm", action="store_true", help="CNN: BatchNormalization after each convolution")
    return p


def build(args) -> tn.Sequential:
    if args.dropout is None:  # each example's own default
        args.dropout = 0.5 if args.model == "cnn" else 0.0
    args.output_activation, args.l2 = "softmax", 0.0
    return build_cnn(args) if args.model == "cnn" else build_mlp(args)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    problem = check_prerequisites(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    model = build(args)
    data = load(args, (28, 28, 1) if args.model == "cnn" else (784,))
    if data is None:
        return 2
    x_train, y_train, x_test, y_test, _ = data
    monitor = tn.callbacks.GradientMonitor(every=10)
    _, status = train(model, args, x_train, y_train, callbacks=[monitor])
    if status:
        return status
    if args.save:
        print(f"model saved to {model.save(args.save)}")
    batch = min(args.batch_size, len(x_test))
    print(f"\nTracing test images 0-{batch - 1} after {plural(args.epochs, 'epoch')} of training:\n")
    trace = tn.trace(model, x_test[:batch], y_test[:batch])
    print(trace)
    worst = trace.max_check_error
    verdict = "every check passed" if worst < CHECK_TOLERANCE else "A CHECK FAILED: a backward disagrees"
    print(f"\nlargest gradient-check error: {worst:.2g} ({verdict}; passing is below {CHECK_TOLERANCE:g})")
    if args.plots:
        written = [os.path.join(args.plots, "trace.png")]
        trace.plot(written[0])
        if monitor.history["step"]:
            path = os.path.join(args.plots, "gradients.png")
            monitor.plot(path, title=f"Gradients while training the {args.model.upper()}")
            written.append(path)
        print("plots: " + ", ".join(written))
    return 0 if worst < CHECK_TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main_guarded(main))
