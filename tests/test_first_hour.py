"""The first hour of a new user: flags checked before any data is loaded, a finished model
never lost, messages that point at the fix, output that fits an 80-column terminal, files
with the usual permissions, and a warning, once, for the classic mistakes."""

import io
import os
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest
from synthetic import write_mnist_dir

import tinynet as tn
from tinynet import images
from tinynet.engine import progress
from tinynet.files.fileio import atomic_write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def example(script, *args, cwd, env_extra=None, shell_tail=""):
    env = {**os.environ, "PYTHONPATH": ROOT, "MPLBACKEND": "Agg", **(env_extra or {})}
    env.pop("TINYNET_DATA_DIR", None)
    command = [sys.executable, os.path.join(ROOT, "examples", script), *map(str, args)]
    if shell_tail:
        command = " ".join(f"'{c}'" for c in command) + shell_tail
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, shell=bool(shell_tail)
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mnist")
    write_mnist_dir(directory, n_train=300, n_test=60)
    return directory


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--epochs", "0"], "--epochs: expected a whole number >= 1"),
        (["--batch-size", "0"], "--batch-size: expected a whole number >= 1"),
        (["--validation-split", "1.5"], r"--validation-split: expected a number in [0, 1)"),
        (["--subset", "0"], "--subset: expected a whole number >= 1"),
        (["--hidden", "100,,50"], "--hidden expects comma-separated positive integers"),
        (["--learning-rate", "-1"], "--learning-rate: expected a positive number"),
    ],
)
def test_bad_flags_are_refused_before_any_data_is_loaded(tmp_path, flags, message):
    result = example("mnist_mlp.py", "--data-dir", tmp_path / "nowhere", *flags, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "MNIST" not in result.stdout and "nowhere" not in result.stderr


def test_tune_mlp_refuses_a_candidate_listed_twice_as_mnist_mlps_layers_would_read(tmp_path):
    result = example("tune_mlp.py", "--data-dir", tmp_path / "nowhere", "--hidden", "512,512", cwd=tmp_path)
    assert result.returncode == 2 and "'512,512' lists 512 more than once: each value is one candidate" in result.stderr
    assert "MNIST" not in result.stdout


def test_missing_matplotlib_and_unwritable_folders_are_found_before_training(tmp_path, data):
    fake = tmp_path / "no_matplotlib" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('matplotlib is not installed')\n")
    result = example(
        "mnist_mlp.py",
        "--data-dir",
        data,
        "--no-verify",
        cwd=tmp_path,
        env_extra={"PYTHONPATH": f"{fake.parent}{os.pathsep}{ROOT}"},
    )
    assert result.returncode == 2 and 'pip install -e ".[plot]"' in result.stderr and "Epoch" not in result.stdout
    (tmp_path / "afile").write_text("")
    result = example(
        "mnist_mlp.py", "--data-dir", data, "--no-verify", "--plots", tmp_path / "afile" / "plots", cwd=tmp_path
    )
    assert result.returncode == 2 and "cannot create the --plots directory" in result.stderr
    assert "Epoch" not in result.stdout


def test_cuda_graph_on_is_refused_on_the_cpu_before_any_data_is_loaded(tmp_path):
    result = example("mnist_mlp.py", "--data-dir", tmp_path / "nowhere", "--cuda-graph", "on", cwd=tmp_path)
    assert result.returncode == 2 and "--cuda-graph on needs the GPU (--device gpu)" in result.stderr
    assert "Traceback" not in result.stderr and "MNIST" not in result.stdout


def test_cuda_graph_on_with_a_model_it_cannot_train_is_refused_before_any_data_is_loaded(gpu, tmp_path, capsys):
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import mnist_mlp
    finally:
        sys.path.pop(0)
    flags = ["--device", "gpu", "--dropout", "0.2", "--cuda-graph", "on", "--data-dir", str(tmp_path / "nowhere")]
    assert mnist_mlp.main(flags) == 2
    out, err = capsys.readouterr()
    assert "--cuda-graph on, but this model cannot train as a CUDA graph: the graph trains Dense layers only" in err
    assert "MNIST" not in out


def test_an_unavailable_gpu_is_refused_in_the_flags_words(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import mnist_mlp
    finally:
        sys.path.pop(0)
    why = "no NVIDIA driver found (libcuda could not be loaded); CuPy is not installed"
    monkeypatch.setattr(tn.backend, "gpu_status", lambda: (False, why))
    assert mnist_mlp.main(["--device", "gpu", "--data-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --device gpu is not available: {why}. --device cpu trains on the CPU; --device auto")


def test_predict_digits_without_pillow_says_how_to_install_it(tmp_path):
    fake = tmp_path / "no_pil" / "PIL"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('PIL is not installed')\n")
    result = example(
        "predict_digits.py",
        tmp_path / "model.npz",
        tmp_path / "seven.png",
        cwd=tmp_path,
        env_extra={"PYTHONPATH": f"{fake.parent}{os.pathsep}{ROOT}"},
    )
    assert result.returncode == 2 and "needs Pillow" in result.stderr and 'pip install -e ".[plot]"' in result.stderr
    assert "Traceback" not in result.stderr


def test_the_model_is_saved_before_anything_optional(tmp_path, data):
    result = example(
        "mnist_mlp.py",
        "--data-dir",
        data,
        "--no-verify",
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--plots",
        "",
        "--save",
        tmp_path / "m.npz",
        "--verbose",
        "0",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index("model saved to") < out.index("test loss:") and "trained 1 epoch in" in out
    assert (
        "TensorFlow" not in out and "Loss: sparse_categorical_crossentropy, from the softmax's input (as Keras)" in out
    )
    assert stat.S_IMODE(os.stat(tmp_path / "m.npz").st_mode) == 0o666 & ~_umask()


def test_divergence_ends_with_one_clear_message_and_exit_1(tmp_path, data):
    result = example(
        "mnist_mlp.py",
        "--data-dir",
        data,
        "--no-verify",
        "--epochs",
        "2",
        "--learning-rate",
        "1e30",
        "--plots",
        "",
        cwd=tmp_path,
    )
    assert result.returncode == 1 and "error: training diverged" in result.stderr
    assert "RuntimeWarning" not in result.stderr and "Traceback" not in result.stderr


def test_a_run_that_does_not_converge_says_so(tmp_path, data):
    result = example(
        "mnist_mlp.py",
        "--data-dir",
        data,
        "--no-verify",
        "--epochs",
        "2",
        "--learning-rate",
        "1e6",
        "--plots",
        "",
        cwd=tmp_path,
    )
    assert ("did not converge" in result.stderr and "lower --learning-rate" in result.stderr) or (
        result.returncode == 1 and "training diverged" in result.stderr
    )


def test_piping_into_head_ends_quietly(tmp_path, data):
    result = example(
        "mnist_mlp.py",
        "--data-dir",
        data,
        "--no-verify",
        "--epochs",
        "1",
        "--plots",
        "",
        cwd=tmp_path,
        shell_tail=" | head -n 2",
    )
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
    assert result.stdout.count("\n") == 2


def test_tune_help_shows_defaults(tmp_path):
    out = example("tune_mlp.py", "--help", cwd=tmp_path).stdout
    assert "(default: tpe)" in out and "(default: 3)" in out


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_files_get_the_mode_the_umask_says(tmp_path, mask):
    old = os.umask(mask)
    try:
        with atomic_write(tmp_path / "f.bin") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "f.bin").st_mode) == 0o666 & ~mask


class Terminal(io.StringIO):
    encoding = "utf-8"

    def isatty(self):
        return True


def test_the_progress_bar_fits_an_80_column_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    stream = Terminal()
    bar = progress.ProgressBar(1688, 1, stream=stream, interval=0)
    logs = {"accuracy": 0.91, "loss": 0.31, "val_accuracy": 0.95, "val_loss": 0.2}
    for step in (1, 500, 1687):
        bar.update(step, lambda: logs)
    bar.finish(logs)
    redraws = stream.getvalue().split("\r")[1:-1]
    assert redraws and all(len(line) <= 79 for line in redraws), redraws
    assert stream.getvalue().rstrip().endswith("val_loss: 0.2000")  # the closing line keeps every number


def test_summary_fits_80_columns():
    model = tn.Sequential(
        [
            tn.Input((28, 28, 1)),
            tn.Conv2D(32, 3, activation="relu"),
            tn.BatchNormalization(),
            tn.MaxPooling2D(),
            tn.Flatten(),
            tn.Dense(10, activation="softmax"),
        ]
    )
    lines = []
    model.summary(print_fn=lines.append)
    assert max(len(line) for line in lines[0].splitlines()) <= 80


def test_evaluate_bar_reports_the_real_time(capsys):
    model = tn.Sequential([tn.Input((3,)), tn.Dense(2, activation="softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.evaluate(np.ones((64, 3), np.float32), np.zeros(64, int), batch_size=8, verbose=2)
    assert " 0us/step" not in capsys.readouterr().out


def test_classic_mistakes_get_one_warning_with_the_fix():
    rng = np.random.default_rng(0)
    model = tn.Sequential([tn.Input((4,)), tn.Dense(3, activation="softmax")], seed=0)
    with pytest.warns(UserWarning, match="from_logits=True, but the model's output comes from a softmax"):
        model.compile("adam", tn.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.compile("adam", "sparse_categorical_crossentropy")
    pixels = rng.integers(0, 256, (16, 4)).astype(np.uint8)
    with pytest.warns(UserWarning, match=r"raw pixels\? Scale them to \[0, 1\] first, e.g. x / 255"):
        model.fit(pixels, rng.integers(0, 3, 16), verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(pixels / 255, rng.integers(0, 3, 16), verbose=0)  # scaled: no warning
    with pytest.raises(ValueError, match=r"pass y_pred.argmax\(axis=1\)"):
        tn.metrics.confusion_matrix(np.zeros(5, int), np.full((5, 3), 1 / 3))
    with pytest.raises(TypeError, match=r"write Sequential\(\[\.\.\.\]\)"):
        tn.Sequential(tn.Dense(10))
    with pytest.raises(ValueError, match="y is None"):
        model.fit(pixels / 255, None)
    with pytest.raises(RuntimeError, match="not built yet"):
        tn.Sequential([tn.Dense(3)]).get_weights()


def test_images_that_are_empty_or_hold_two_digits(tmp_path):
    from PIL import Image, ImageDraw, ImageFont

    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png: the file is empty"):
        images.load_image(tmp_path / "empty.png")
    image = Image.new("L", (120, 80), 255)
    ImageDraw.Draw(image).text((20, 10), "42", fill=0, font=ImageFont.load_default(size=50))
    assert images.count_digits(np.asarray(image)) == 2
    image = Image.new("L", (120, 80), 255)
    ImageDraw.Draw(image).text((20, 10), "7", fill=0, font=ImageFont.load_default(size=50))
    assert images.count_digits(np.asarray(image)) == 1
