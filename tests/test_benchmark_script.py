"""The benchmark scripts run and report what they say (not their speed: no test times anything).

Each runs with tinynet alone on a few synthetic MNIST-format images: benchmarks/bench_mnist_mlp.py
runs every round and reports each framework's median round and the rounds' spread, and names
Keras's backend; benchmarks/bench_numpy_floor.py's bare NumPy training is tinynet's, bit for bit."""

import json
import os
import subprocess
import sys

from synthetic import write_mnist_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(tmp_path, script, *args, n_train=256):
    """Run benchmarks/``script`` on synthetic images with ``args``; returns (its run, the --out folder)."""
    data, out = tmp_path / "mnist", tmp_path / "out"
    write_mnist_dir(str(data), n_train=n_train, n_test=64)
    command = [sys.executable, os.path.join(ROOT, "benchmarks", script), *args, "--no-verify"]
    command += ["--data-dir", str(data), "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("KERAS_BACKEND", None)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done, out


def test_two_rounds_of_the_convnet_are_run_and_reported(tmp_path):
    args = ["--model", "cnn", "--only", "tinynet", "--epochs", "2", "--rounds", "2", "--no-compile"]
    done, out = run_script(tmp_path, "bench_mnist_mlp.py", *args)
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


def test_the_keras_backend_is_named_in_the_report(tmp_path):
    """--keras-backend jax: the report's file name and command say which Keras it compared with
    (run here with tinynet alone, so no Keras is needed)."""
    args = ["--configs", "100:32", "--only", "tinynet", "--epochs", "2", "--keras-backend", "jax", "--no-compile"]
    _, out = run_script(tmp_path, "bench_mnist_mlp.py", *args, n_train=128)
    assert sorted(p.name for p in out.iterdir() if p.suffix != ".png") == [
        "bench_mnist_mlp_cpu_keras_jax.json",
        "bench_mnist_mlp_cpu_keras_jax.md",
    ]
    assert "--keras-backend jax" in (out / "bench_mnist_mlp_cpu_keras_jax.md").read_text()


def test_the_numpy_floor_trains_bit_for_bit_like_tinynet_and_is_reported(tmp_path):
    """benchmarks/bench_numpy_floor.py: the bare-NumPy training it times against tinynet's fit
    is the same training (the same weights after an epoch, bit for bit), so its time is a fair
    floor; and the report says so."""
    args = ["--subset", "256", "--configs", "100:32,30-20:64", "--rounds", "2"]
    _, out = run_script(tmp_path, "bench_numpy_floor.py", *args)
    rows = json.loads((out / "bench_numpy_floor_cpu.json").read_text())["results"]
    assert [(r["model"], r["batch"]) for r in rows] == [("784-100-10", 32), ("784-30-20-10", 64)]
    for r in rows:
        assert r["max_weight_difference"] == 0.0, r  # the same arithmetic, so the same weights
        assert abs(r["loss_tinynet"] - r["loss_bare"]) < 1e-6 * r["loss_bare"]
        assert len(r["tinynet_rounds_s"]) == len(r["bare_rounds_s"]) == 2
        assert r["ratio"] == r["tinynet_s"] / r["bare_s"]
    table = (out / "bench_numpy_floor_cpu.md").read_text()
    assert table.count("| bit for bit equal |") == 2 and "--rounds 2" in table


def test_the_gpu_session_script_runs_each_stage_named_within_its_budget(tmp_path):
    script = os.path.join(ROOT, "benchmarks", "gpu_session.sh")
    bin_dir = os.path.dirname(sys.executable)  # python3 is this interpreter, as on the GPU machine
    env = dict(os.environ, OUT=str(tmp_path / "out"), PATH=bin_dir + os.pathsep + os.environ["PATH"])

    def session(*stages, budget="540"):
        return subprocess.run(
            ["bash", script, *stages], capture_output=True, text=True, env=dict(env, BUDGET=budget), timeout=120
        )

    done = session("probe")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["nvidia-smi", "probe"], lines
    assert 'device="gpu"' in lines[1] and "CuPy" in (tmp_path / "out" / "probe.log").read_text()
    done = session("probe", budget="5")  # too little left: skipped, to run in another call
    assert done.stdout.splitlines()[0].startswith("nvidia-smi skipped: ")
    for stages in (("probe", "bogus"), ()):  # refused before any stage runs
        done = session(*stages)
        assert done.returncode == 2 and done.stdout == "" and "the stages are probe tests" in done.stderr
