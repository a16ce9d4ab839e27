"""The plots write real PNG files headless, and say so clearly when matplotlib is missing."""

import builtins

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from tinynet import plot  # noqa: E402
from tinynet.callbacks import History  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    data = open(path, "rb").read()
    assert data[:8] == PNG
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_all_plots_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 30)
    history = History()
    for epoch, (loss, acc) in enumerate([(1.0, 0.5), (0.5, 0.8), (0.3, 0.9)]):
        history.on_epoch_end(epoch, {"loss": loss, "accuracy": acc, "val_loss": loss + 0.1, "val_accuracy": acc - 0.05})
    cm = rng.integers(0, 50, (10, 10))
    paths = [
        plot.plot_samples(images, labels, tmp_path / "samples.png"),
        plot.plot_history(history, tmp_path / "history.png"),
        plot.plot_confusion_matrix(cm, tmp_path / "cm.png"),
        plot.plot_misclassified(images, labels, (labels + 1) % 10, tmp_path / "wrong.png"),
        plot.plot_misclassified(images, labels, labels, tmp_path / "none_wrong.png"),
        plot.plot_trials(["a", "b"], [0.9, 0.95], tmp_path / "trials.png", best=1),
    ]
    for p in paths:
        width, height = png_size(p)
        assert width > 150 and height > 25
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(
        ["samples.png", "history.png", "cm.png", "wrong.png", "none_wrong.png", "trials.png"]
    )


def test_history_without_loss_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least a 'loss'"):
        plot.plot_history({}, tmp_path / "h.png")


def test_missing_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r'tinynet.plot needs matplotlib.*pip install -e ".\[plot\]"'):
        plot.plot_confusion_matrix(np.eye(2), tmp_path / "cm.png")


def test_a_grid_of_images_starts_right_under_its_title(tmp_path):
    """samples.png once had an empty band under its title (matplotlib's default top margin:
    46 empty pixel rows for 5 rows of images, measured; 18 now)."""
    from PIL import Image

    images = np.full((25, 28, 28), 255, dtype=np.uint8)  # all ink: the only white rows are margins
    path = plot.plot_samples(images, np.arange(25) % 10, tmp_path / "s.png")
    ink = (np.asarray(Image.open(path).convert("L")) < 200).any(axis=1)  # rows with something drawn
    gaps = np.diff(np.flatnonzero(ink))
    first = gaps[gaps > 1][0]  # from the title down to the first row's labels
    assert first < 30, f"{first} empty pixel rows under the title"
