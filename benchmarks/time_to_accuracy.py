"""How long the Keras simple convnet trains until its test accuracy reaches a target.

    python benchmarks/time_to_accuracy.py --device gpu          # target 99%, at most 15 epochs

The model, optimizer and batch size of examples/mnist_cnn.py (conv 32, pool, conv 64,
pool, dropout 0.5, dense 10; Adam; batch 128) on all 60,000 training images. After each
epoch the test accuracy is measured; the time counts training alone (fit's epochs, the
first with its kernels' compilation), not the evaluations. Writes
time_to_accuracy_{cpu,gpu}.json / .md to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import tinynet as tn  # noqa: E402
from benchmarks.bench_mnist_mlp import CNN, machine, tinynet_model  # noqa: E402
from tinynet import preprocessing  # noqa: E402
from tinynet.datasets import mnist  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--target", type=float, default=0.99, help="test accuracy to reach (default 0.99)")
    p.add_argument("--max-epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    (x, y), (x_test, y_test) = mnist.load_data(args.data_dir)
    x, x_test = preprocessing.scale(x)[..., None], preprocessing.scale(x_test)[..., None]
    model = tinynet_model(CNN, args.device, args.seed)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    trained, epochs, reached = 0.0, [], None
    for epoch in range(args.max_epochs):
        start = time.perf_counter()
        model.fit(x, y, batch_size=128, epochs=epoch + 1, initial_epoch=epoch, verbose=0)
        trained += time.perf_counter() - start  # fit returns once the epoch's loss was read: the device is done
        accuracy = float(model.evaluate(x_test, y_test, batch_size=1024, verbose=0)[1])
        epochs.append({"epoch": epoch + 1, "train_s": trained, "test_accuracy": accuracy})
        print(f"epoch {epoch + 1}: {trained:.2f} s of training, test accuracy {accuracy:.4f}", flush=True)
        if accuracy >= args.target and reached is None:
            reached = epochs[-1]
            break
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"time_to_accuracy_{args.device}")
    meta = {"machine": machine(args), "target": args.target, "seed": args.seed, "tinynet": tn.__version__}
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, "epochs": epochs, "reached": reached}, f, indent=1)
    verdict = (
        f"**{reached['train_s']:.1f} s** of training ({reached['epoch']} epochs) to {reached['test_accuracy']:.2%}"
        if reached
        else f"not reached in {args.max_epochs} epochs"
    )
    lines = [
        f"# Time to {args.target:.0%} test accuracy: the Keras simple convnet ({args.device})",
        "",
        f"Machine: {meta['machine']}. tinynet {tn.__version__}, seed {args.seed}, Adam, batch 128, all 60,000 images.",
        "",
        f"Command: `python benchmarks/time_to_accuracy.py --device {args.device}`",
        "",
        f"Result: {verdict}.",
        "",
        "| epoch | training time so far (s) | test accuracy |",
        "|---|---|---|",
    ] + [f"| {e['epoch']} | {e['train_s']:.2f} | {e['test_accuracy']:.4f} |" for e in epochs]
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if reached else 1


if __name__ == "__main__":
    sys.exit(main())
