"""tinynet's MLP training against the same training written as bare NumPy, in one process.

The bare version is the arithmetic of tinynet's training step and nothing else: the same
matrix products on the same BLAS threads (tinynet/engine/threads.py), the bias and ReLU, the
log-softmax cross-entropy and its gradient (p - onehot) / N, the accuracy count, and Adam's
whole-buffer passes over one flat buffer with Keras's formula; no layers, no loss, optimizer
or metric objects, no callbacks. Its time is the floor of this training in NumPy on this
machine, and tinynet's time over it is what the library costs on top.

Both train the same MLP from the same initial weights over the same batches (no shuffling:
consecutive slices of the same data), one epoch each, taking turns; the first round is a
warm-up. Reported per configuration: each one's median epoch, the ratio, and how far apart the
two sets of weights are after the first epoch (they compute the same training, so only float32
rounding apart), which shows the floor is not cheaper by doing less.

    python benchmarks/bench_numpy_floor.py                       # MNIST, the three MLPs
    python benchmarks/bench_numpy_floor.py --configs 100:32 --rounds 3

Results: results/bench_numpy_floor_cpu.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import tinynet as tn  # noqa: E402
from benchmarks.common import cpu_name, epoch_timer  # noqa: E402
from tinynet import optimizers, preprocessing  # noqa: E402
from tinynet.datasets import mnist  # noqa: E402
from tinynet.engine import threads  # noqa: E402

CONFIGS = [((100,), 32), ((100,), 128), ((512, 512), 128)]


class BareMLP:
    """A ReLU MLP with a softmax output, sparse cross-entropy and Keras's Adam, as bare NumPy.

    ``weights``: [W1, b1, W2, b2, ...], the Keras order tinynet's ``get_weights`` gives."""

    def __init__(self, weights, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.flat = np.concatenate([w.ravel() for w in weights]).astype(np.float32)
        self.grad = np.zeros_like(self.flat)
        self.values, self.grads, offset = [], [], 0
        for w in weights:
            self.values.append(self.flat[offset : offset + w.size].reshape(w.shape))
            self.grads.append(self.grad[offset : offset + w.size].reshape(w.shape))
            offset += w.size
        self.m, self.v = np.zeros_like(self.flat), np.zeros_like(self.flat)
        self.tmp, self.den = np.empty_like(self.flat), np.empty_like(self.flat)
        self.lr, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.t = 0

    def weights(self):
        return [v.copy() for v in self.values]

    def step(self, x, y):
        """One training step on (x, y); returns (the batch's loss, its correct predictions)."""
        kernels, biases = self.values[0::2], self.values[1::2]
        g_kernels, g_biases = self.grads[0::2], self.grads[1::2]
        inputs = [x]
        for W, b in zip(kernels[:-1], biases[:-1]):
            h = inputs[-1] @ W
            h += b
            np.maximum(h, 0, out=h)
            inputs.append(h)
        z = inputs[-1] @ kernels[-1]
        z += biases[-1]
        shifted = z - z.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        rows = np.arange(len(y))
        loss = -log_p[rows, y].mean()
        correct = (z.argmax(axis=1) == y).sum()
        g = np.exp(log_p)  # dL/dz = (p - onehot) / N
        g[rows, y] -= 1
        g /= len(y)
        for k in reversed(range(len(kernels))):
            np.matmul(inputs[k].T, g, out=g_kernels[k])
            g.sum(axis=0, out=g_biases[k])
            if k:
                g = g @ kernels[k].T
                g *= inputs[k] > 0
        self._adam()
        return loss, correct

    def _adam(self):
        self.t += 1
        m, v, g, tmp, den = self.m, self.v, self.grad, self.tmp, self.den
        np.subtract(g, m, out=tmp)
        tmp *= 1 - self.beta_1
        m += tmp
        np.multiply(g, g, out=tmp)
        tmp -= v
        tmp *= 1 - self.beta_2
        v += tmp
        alpha = optimizers.adam_step_size(self.lr, self.beta_1, self.beta_2, self.t, np.float32)
        np.sqrt(v, out=den)
        den += self.epsilon
        np.multiply(m, alpha, out=tmp)
        tmp /= den
        self.flat -= tmp


def model_name(hidden) -> str:
    return "784-" + "-".join(map(str, hidden)) + "-10"


def bench(hidden, batch, x, y, rounds):
    """(tinynet's epoch times, the bare epoch times, the largest weight difference after epoch 1,
    the two first-epoch training losses)."""
    model = tn.Sequential(
        [tn.Input((784,))] + [tn.Dense(h, activation="relu") for h in hidden] + [tn.Dense(10, activation="softmax")],
        seed=0,
    )
    model.compile(tn.optimizers.Adam(), "sparse_categorical_crossentropy", metrics=["accuracy"])
    bare = BareMLP(model.get_weights())
    limit, _ = threads.plan(model, batch, own_threads=False)  # the BLAS threads tinynet's fit uses
    n_steps = -(-len(x) // batch)
    times, bare_times, losses = [], [], []
    difference = None
    for r in range(rounds + 1):
        history = model.fit(
            x,
            y,
            batch_size=batch,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[epoch_timer(tn.callbacks.Callback, times)],
        )
        with threadpool_limits(limit, "blas") if limit is not None else contextlib.nullcontext():
            start, total = time.perf_counter(), 0.0
            for k in range(n_steps):
                loss, _ = bare.step(x[k * batch : (k + 1) * batch], y[k * batch : (k + 1) * batch])
                total += float(loss) * len(y[k * batch : (k + 1) * batch])
            bare_times.append(time.perf_counter() - start)
        if r == 0:
            difference = max(float(np.abs(a - b).max()) for a, b in zip(model.get_weights(), bare.weights()))
            losses = [history.history["loss"][0], total / len(x)]
    return times[1:], bare_times[1:], difference, losses


def apart(difference: float) -> str:
    return "bit for bit equal" if difference == 0 else f"at most {difference:.1e}"


def write_report(rows, args):
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "bench_numpy_floor_cpu")
    meta = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, CPU only",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tinynet": tn.__version__,
        "blas": threads.describe(),
        "rounds": args.rounds,
        "images": args.subset,
    }
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, "results": rows}, f, indent=1)
    command = "python benchmarks/bench_numpy_floor.py" + "".join(
        f" {flag} {value}"
        for flag, value in (("--subset", args.subset), ("--configs", args.configs), ("--rounds", args.rounds))
        if value is not None
    )
    lines = [
        "# tinynet against bare NumPy: the same MLP training (cpu)",
        "",
        f"Machine: {meta['machine']}. NumPy {meta['numpy']}; {meta['blas']}. Python {meta['python']}. "
        f"{args.subset} training images; {args.rounds} round{'s' * (args.rounds != 1)} after a warm-up, "
        "the two taking turns, the median epoch shown.",
        "",
        f"Command: `{command}`",
        "",
        "| model | batch | tinynet (s) | bare NumPy (s) | tinynet / bare | weights apart after epoch 1 | "
        "loss after epoch 1 (tinynet / bare) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['tinynet_s']:.3f} | {r['bare_s']:.3f} | {r['ratio']:.2f} | "
            f"{apart(r['max_weight_difference'])} | {r['loss_tinynet']:.4f} / {r['loss_bare']:.4f} |"
        )
    lines += [
        "",
        "Bare NumPy: the same products on the same BLAS threads, bias, ReLU, log-softmax "
        "cross-entropy, accuracy count and Adam's passes over one flat buffer, without the "
        "library around them. tinynet / bare: what the library costs on top of that arithmetic.",
    ]
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"report: {stem}.md")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subset", type=int, default=19200, help="train on the first N images (default 19200)")
    p.add_argument("--rounds", type=int, default=5, help="timed epochs of each, after a warm-up (default 5)")
    p.add_argument("--configs", default=None, help="e.g. '100:32,100:128,512-512:128' (default: all three)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--no-verify", action="store_true", help="other data in MNIST's format: skip the checksums")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.rounds < 1 or args.subset < 1:
        p.error(f"--rounds and --subset must be at least 1, got {args.rounds} and {args.subset}")
    configs = CONFIGS
    if args.configs:
        configs = [
            (tuple(int(u) for u in c.split(":")[0].split("-")), int(c.split(":")[1])) for c in args.configs.split(",")
        ]
    (x, y), _ = mnist.load_data(args.data_dir, verify=not args.no_verify)
    x = preprocessing.flatten(preprocessing.scale(x[: args.subset]))
    y = y[: args.subset].astype(np.int64)
    args.subset = len(x)  # what ran, if the data set is smaller than asked
    rows = []
    for hidden, batch in configs:
        times, bare_times, difference, (loss, bare_loss) = bench(hidden, batch, x, y, args.rounds)
        row = {
            "model": model_name(hidden),
            "batch": batch,
            "tinynet_s": statistics.median(times),
            "bare_s": statistics.median(bare_times),
            "tinynet_rounds_s": times,
            "bare_rounds_s": bare_times,
            "max_weight_difference": difference,
            "loss_tinynet": loss,
            "loss_bare": bare_loss,
        }
        row["ratio"] = row["tinynet_s"] / row["bare_s"]
        print(f"{row['model']} batch {batch}: tinynet {row['tinynet_s']:.3f} s, bare {row['bare_s']:.3f} s", flush=True)
        rows.append(row)
    write_report(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
