"""The example scripts, end to end, on small MNIST-format data the test writes."""

import os
import subprocess
import sys

import numpy as np
import pytest
from synthetic import write_mnist_dir

import tinynet as tn

pytest.importorskip("matplotlib")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args, cwd, data_dir=None):
    env = {**os.environ, "PYTHONPATH": ROOT, "MPLBACKEND": "Agg"}
    env.pop("TINYNET_DATA_DIR", None)
    if data_dir is not None:
        env["TINYNET_DATA_DIR"] = str(data_dir)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", script), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Run mnist_mlp.py once for one epoch; share its outputs between the tests."""
    work = tmp_path_factory.mktemp("example")
    data = work / "data"
    arrays = write_mnist_dir(data, n_train=600, n_test=120)
    out = run(
        "mnist_mlp.py",
        "--data-dir",
        data,
        "--no-verify",
        "--epochs",
        "1",
        "--hidden",
        "64",
        "--plots",
        work / "plots",
        "--save",
        work / "model.npz",
        "--verbose",
        "2",
        cwd=work,
    )
    return work, arrays, out


def test_mnist_mlp_prints_progress_results_and_writes_plots(trained):
    work, _, out = trained
    assert "MNIST: 600 training and 120 test images of (28, 28)" in out
    assert "Epoch 1/1" in out and "- val_accuracy: " in out
    assert "test loss: " in out and "test accuracy: " in out
    assert "confusion matrix:" in out and "per-class report:" in out and "macro" in out
    for name in ("samples.png", "history.png", "confusion_matrix.png", "misclassified.png"):
        data = (work / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    assert 0.3 < accuracy <= 1.0  # the strokes are learnable: far above chance (0.1) after one epoch


def test_saved_model_loads_with_identical_predictions(trained):
    work, (_, (x_test, _)), out = trained
    model = tn.load_model(work / "model.npz")
    x = x_test.reshape(len(x_test), -1).astype(np.float32) / 255
    again = tn.load_model(work / "model.npz")
    np.testing.assert_array_equal(model.predict(x), again.predict(x))
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    assert model.evaluate(x, trained[1][1][1], verbose=0)[1] == pytest.approx(accuracy, abs=1e-4)


def test_predict_digits_on_images_drawn_by_the_test(trained):
    from PIL import Image

    work, (_, (x_test, _)), _ = trained
    model = tn.load_model(work / "model.npz")
    paths, expected = [], []
    for k in range(6):
        digit = x_test[k].astype(np.float32) / 255
        big = np.kron(1 - digit, np.ones((4, 4)))  # dark on light, 4x larger
        big = np.pad(big, ((7 * k, 20), (30, 5 + 3 * k)), constant_values=1.0)  # off-centre
        if k % 2:  # colour, with a tint
            img = Image.fromarray((np.stack([big, big * 0.9, big * 0.8], -1) * 255).astype(np.uint8), "RGB")
        else:
            img = Image.fromarray((big * 255).astype(np.uint8), "L")
        path = work / f"digit{k}.{'jpg' if k == 3 else 'png'}"
        img.save(path)
        paths.append(path)
        expected.append(int(model.predict(digit.reshape(1, -1)).argmax()))
    out = run("predict_digits.py", work / "model.npz", *paths, "--show-input", work / "seen", cwd=work)
    predicted = [int(line.split("predicted ")[1].split()[0]) for line in out.splitlines() if "predicted" in line]
    assert predicted == expected, out
    assert out.count("probabilities: ") == 6
    assert len(os.listdir(work / "seen")) == 6


def test_predict_digits_reports_unreadable_images(trained, tmp_path):
    work, _, _ = trained
    (tmp_path / "notes.png").write_text("not an image")
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "examples", "predict_digits.py"),
            str(work / "model.npz"),
            str(tmp_path / "notes.png"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1 and "cannot read it as an image" in result.stderr
    assert result.stderr.count("notes.png") == 1  # the path once, not twice


def test_predict_digits_reports_each_bad_image_and_reads_every_frame_and_float_image(trained, tmp_path):
    from bombs import png_zeros
    from PIL import Image

    work, (_, (x_test, _)), _ = trained
    model = tn.load_model(work / "model.npz")
    digits = [x_test[k].astype(np.float32) / 255 for k in range(3)]
    expected = [int(model.predict(d.reshape(1, -1)).argmax()) for d in digits]
    (tmp_path / "bomb.png").write_bytes(png_zeros(30_000, 30_000))  # 0.9 MB, 900 megapixels
    Image.fromarray(np.kron(digits[0], np.ones((3, 3))).astype(np.float32), "F").save(tmp_path / "float.tiff")
    frames = [Image.fromarray((np.kron(d, np.ones((3, 3))) * 255).astype(np.uint8)) for d in digits[1:]]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=200)
    Image.fromarray((digits[2] * 255).astype(np.uint8)).save(tmp_path / "last.png")
    names = ["bomb.png", "float.tiff", "anim.gif", "last.png"]
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "predict_digits.py"), str(work / "model.npz")]
        + [str(tmp_path / n) for n in names]
        + ["--show-input", str(tmp_path / "seen")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr  # one image could not be read
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "bomb.png: the image is 900.0 megapixels" in errors[0], result.stderr
    predicted = {
        line.split(": predicted ")[0].replace(str(tmp_path) + os.sep, ""): int(line.split("predicted ")[1].split()[0])
        for line in result.stdout.splitlines()
        if ": predicted " in line
    }
    assert predicted == {
        "float.tiff": expected[0],
        "anim.gif [frame 1 of 2]": expected[1],
        "anim.gif [frame 2 of 2]": expected[2],
        "last.png": expected[2],
    }, result.stdout
    assert sorted(os.listdir(tmp_path / "seen")) == [
        "anim_frame1_28x28.png",
        "anim_frame2_28x28.png",
        "float_28x28.png",
        "last_28x28.png",
    ]


def test_mnist_mlp_bad_arguments_are_clear(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "mnist_mlp.py"), "--hidden", "10,x"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2 and "--hidden expects comma-separated positive integers" in result.stderr
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "mnist_mlp.py"), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2 and "is missing" in result.stderr


def test_mnist_cnn_on_a_subset_for_one_epoch(trained):
    work, _, _ = trained
    out = run(
        "mnist_cnn.py",
        "--data-dir",
        work / "data",
        "--no-verify",
        "--epochs",
        "1",
        "--subset",
        "300",
        "--batch-size",
        "32",
        "--plots",
        work / "cnn_plots",
        "--save",
        work / "cnn.npz",
        "--verbose",
        "2",
        cwd=work,
    )
    assert "conv2d (Conv2D)" in out and "max_pooling2d (MaxPooling2D)" in out and "dropout (Dropout)" in out
    assert "test accuracy: " in out and "confusion matrix:" in out
    for name in ("samples.png", "history.png", "confusion_matrix.png", "misclassified.png"):
        assert (work / "cnn_plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert tn.load_model(work / "cnn.npz").input_shape == (28, 28, 1)


def test_mnist_cnn_trains_on_fashion_mnist_from_its_folder_in_the_data_dir(tmp_path):
    data = tmp_path / "data"
    write_mnist_dir(data / "fashion_mnist", n_train=300, n_test=120, seed=3)  # MNIST's format, and no MNIST beside
    out = run(
        "mnist_cnn.py",
        "--dataset",
        "fashion_mnist",
        "--no-verify",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--plots",
        tmp_path / "plots",
        "--verbose",
        "2",
        cwd=tmp_path,
        data_dir=data,
    )
    assert "Fashion-MNIST: 300 training and 120 test images of (28, 28)" in out
    assert "classes: 0 T-shirt/top, 1 Trouser, 2 Pullover" in out and "9 Ankle boot" in out
    assert "Epoch 1/1" in out and "conv2d (Conv2D)" in out
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    assert 0.3 < accuracy <= 1.0  # it trained: far above chance (0.1) after one epoch
    for name in ("samples.png", "history.png", "confusion_matrix.png", "misclassified.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_predict_digits_warns_on_two_digits_and_keeps_same_named_inputs_apart(trained, tmp_path):
    from PIL import Image, ImageDraw, ImageFont

    work, _, _ = trained
    for name, text in (("seven.png", "7"), ("seven.jpg", "7"), ("fortytwo.png", "42")):
        image = Image.new("RGB", (120, 80), "white")
        ImageDraw.Draw(image).text((20, 10), text, fill="black", font=ImageFont.load_default(size=50))
        image.save(tmp_path / name)
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "examples", "predict_digits.py"),
            str(work / "model.npz"),
            *(str(tmp_path / n) for n in ("seven.png", "seven.jpg", "fortytwo.png")),
            "--show-input",
            str(tmp_path / "seen"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "fortytwo.png seems to hold 2 digits side by side" in result.stderr
    assert "seven.png seems" not in result.stderr
    assert sorted(os.listdir(tmp_path / "seen")) == ["fortytwo_28x28.png", "seven_jpg_28x28.png", "seven_png_28x28.png"]


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_trace_step_prints_the_trace_and_writes_both_figures(trained, model):
    work, _, _ = trained
    plots = work / f"trace_{model}"
    out = run(
        "trace_step.py",
        "--data-dir",
        work / "data",
        "--no-verify",
        "--model",
        model,
        "--subset",
        "96" if model == "cnn" else "300",
        "--batch-size",
        "8",
        "--plots",
        plots,
        "--verbose",
        "0",
        cwd=work,
    )
    assert "Tracing test images 0-7 after 1 epoch of training" in out
    assert "y = act(x W + b)  |  gW = x^T gz" in out and "gradient check" in out
    assert "every check passed" in out and "WRONG?" not in out
    if model == "cnn":
        assert "max_pooling2d (MaxPooling2D)" in out and "dead ReLU units" in out
    for name in ("trace.png", "gradients.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
