"""The speed benchmark runs and reports what it says (not its speed: no test times anything).

benchmarks/bench_mnist_mlp.py with tinynet alone on a few synthetic MNIST-format images, two
rounds: every round runs, the report has each framework's median round and the rounds'
spread, and the files land where --out says."""

import json
import os
import subprocess
import sys

from synthetic import write_mnist_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_two_rounds_of_the_convnet_are_run_and_reported(tmp_path):
    data, out = tmp_path / "mnist", tmp_path / "out"
    write_mnist_dir(str(data), n_train=256, n_test=64)
    command = [sys.executable, os.path.join(ROOT, "benchmarks", "bench_mnist_mlp.py"), "--model", "cnn"]
    command += ["--only", "tinynet", "--epochs", "2", "--rounds", "2", "--no-compile", "--no-verify"]
    command += ["--data-dir", str(data), "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.count("convnet 32-64 batch 128 tinynet:") == 2  # one line per round
    report = json.loads((out / "bench_mnist_cnn_cpu.json").read_text())
    (row,) = report["results"]
    assert row["framework"] == "tinynet" and len(row["round_epoch_s"]) == 2
    assert abs(row["epoch_s"] - sum(row["round_epoch_s"]) / 2) < 1e-12  # the median of two rounds
    assert row["ratio"] == 1.0 and 0.0 <= row["test_accuracy"] <= 1.0
    table = (out / "bench_mnist_cnn_cpu.md").read_text()
    assert "--rounds 2" in table and "2 rounds, the frameworks taking turns" in table
    fastest, slowest = min(row["round_epoch_s"]), max(row["round_epoch_s"])
    assert f"| {fastest:.3f}–{slowest:.3f} |" in table
