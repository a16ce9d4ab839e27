"""tinynet against tinynet: the MLP epoch of two checkouts, side by side in one run.

For a change that must not cost speed (a refactor, a new check), time ``fit``'s epoch of
this checkout and of another one (``--before``, e.g. a ``git worktree`` of main)::

    git worktree add /tmp/before main
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/ab_tinynet.py --before /tmp/before --rounds 20 --subset 19200

Each checkout trains in a process of its own that imports tinynet from that checkout and
keeps its model and data between epochs; the two take turns, one ``fit(epochs=1)`` each per
round (the order alternating), so both see the same machine at nearly the same moment. The
table gives each side's median epoch and the median (and range) of the rounds' ratios: on a
noisy machine a single pair of runs can differ by 20% while the rounds' median holds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = ("100:32", "100:128", "512-512:128")


def serve(checkout, config, subset, data_dir):
    """The worker: build the model once, then one epoch per line read, its time printed."""
    sys.path.insert(0, checkout)
    import numpy as np

    import tinynet as tn

    assert os.path.dirname(os.path.abspath(tn.__file__)) == os.path.join(checkout, "tinynet"), tn.__file__
    hidden, batch = config.split(":")
    (x, y), _ = tn.datasets.mnist.load_data(data_dir)
    x = tn.preprocessing.flatten(tn.preprocessing.scale(x[:subset]))
    y = y[:subset].astype(np.int64)
    layers = [tn.Dense(int(units), activation="relu") for units in hidden.split("-")]
    model = tn.Sequential([tn.Input((784,))] + layers + [tn.Dense(10, activation="softmax")], seed=0)
    model.compile(tn.optimizers.Adam(), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=int(batch), epochs=1, verbose=0)  # warm-up
    print("ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        model.fit(x, y, batch_size=int(batch), epochs=1, verbose=0)
        print(json.dumps({"epoch_s": time.perf_counter() - start}), flush=True)


def start(checkout, config, args):
    command = [sys.executable, os.path.abspath(__file__), "--serve", checkout, "--configs", config]
    command += ["--subset", str(args.subset)] + (["--data-dir", args.data_dir] if args.data_dir else [])
    worker = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if worker.stdout.readline().strip() != "ready":
        raise SystemExit(f"{checkout} {config}: the worker failed to start")
    return worker


def epoch(worker) -> float:
    worker.stdin.write("go\n")
    worker.stdin.flush()
    return json.loads(worker.stdout.readline())["epoch_s"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", help="the other checkout (a directory with tinynet/)")
    p.add_argument("--rounds", type=int, default=20, help="epochs of each checkout per configuration (default 20)")
    p.add_argument("--subset", type=int, default=60000, help="train on the first N images (default 60000)")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"default: {','.join(CONFIGS)}")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve, args.configs, args.subset, args.data_dir)
        return 0
    if not args.before:
        p.error("--before is required: the checkout to compare this one with")
    before, after = os.path.abspath(args.before), os.path.dirname(HERE)
    for path in (before, after):
        if not os.path.isfile(os.path.join(path, "tinynet", "__init__.py")):
            p.error(f"{path} is not a tinynet checkout (no tinynet/__init__.py)")
    print(f"before: {before}\nafter:  {after}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, {args.subset} images, {args.rounds} rounds")
    print("| model:batch | before (s) | after (s) | after / before (median of rounds) | range |")
    print("|---|---|---|---|---|")
    for config in args.configs.split(","):
        workers = {before: start(before, config, args), after: start(after, config, args)}
        times = {before: [], after: []}
        for k in range(args.rounds):
            for checkout in (before, after) if k % 2 == 0 else (after, before):
                times[checkout].append(epoch(workers[checkout]))
        for worker in workers.values():
            worker.stdin.close()
            worker.wait()
        ratios = sorted(a / b for b, a in zip(times[before], times[after]))
        b, a = statistics.median(times[before]), statistics.median(times[after])
        print(
            f"| {config} | {b:.4f} | {a:.4f} | {statistics.median(ratios):.3f} | {ratios[0]:.3f}-{ratios[-1]:.3f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
