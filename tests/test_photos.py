"""Photos of digits (tests/photos.py: paper times light, plus noise) prepared as MNIST was made:
the background taken away, the contrast normalised, the digit found, fitted into 20x20 and
centred by mass. What comes out must look like the digit that went in, and read as it."""

import os

import numpy as np
import pytest
import synthetic

import tinynet as tn
from tinynet import images

photos = pytest.importorskip("photos")  # needs Pillow


def _correlation(a, b):
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


@pytest.mark.parametrize("condition", list(photos.CONDITIONS))
def test_a_photo_comes_out_as_the_digit_that_went_in(condition):
    digits, _ = synthetic.make_digits(30, seed=3)
    scores = [
        _correlation(images.prepare_digit(photos.photo(d, condition, seed=k)), d / 255.0) for k, d in enumerate(digits)
    ]
    assert np.mean(scores) > 0.85 and np.min(scores) > 0.5, (condition, np.round(scores, 2))


def test_dark_ink_and_light_ink_are_told_apart_under_any_light():
    digits, _ = synthetic.make_digits(10, seed=4)
    for k, d in enumerate(digits):
        assert images.ink_is_dark(images.to_grey(photos.photo(d, "shadow", seed=k)))
        assert images.ink_is_dark(images.to_grey(photos.photo(d, "everything", seed=k)))
        assert not images.ink_is_dark(images.to_grey(photos.photo(d, "light on dark", seed=k)))


def test_the_blob_labels_match_a_plain_flood_fill():
    rng = np.random.default_rng(0)
    mask = rng.random((40, 50)) > 0.6
    found = images.blobs(mask)
    assert sum(len(r) for r, _ in found) == mask.sum()
    sizes = [len(r) for r, _ in found]
    assert sizes == sorted(sizes, reverse=True)
    for rows, cols in found:  # each blob is closed under 8-neighbours and connected
        inside = set(zip(rows.tolist(), cols.tolist()))
        start, seen, stack = next(iter(inside)), set(), []
        stack.append(start)
        while stack:
            r, c = stack.pop()
            if (r, c) in seen:
                continue
            seen.add((r, c))
            for rr in range(r - 1, r + 2):
                for cc in range(c - 1, c + 2):
                    if 0 <= rr < 40 and 0 <= cc < 50 and mask[rr, cc]:
                        assert (rr, cc) in inside
                        stack.append((rr, cc))
        assert seen == inside


def test_a_blank_photo_or_pure_noise_is_no_digit():
    with pytest.raises(ValueError, match="the image is blank"):
        images.prepare_digit(np.full((50, 40), 0.7))
    noise = np.random.default_rng(1).normal(0.7, 0.03, (120, 100)).clip(0, 1)
    with pytest.raises(ValueError, match="nothing stands out"):
        images.prepare_digit(noise)


@pytest.mark.skipif(not os.environ.get("TINYNET_DATA_DIR"), reason="TINYNET_DATA_DIR is not set")
def test_photos_of_real_mnist_digits_read_as_the_digits_do():
    (x, y), (x_test, y_test) = tn.datasets.mnist.load_data()
    model = tn.Sequential([tn.Input((784,)), tn.Dense(100, activation="relu"), tn.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x.reshape(-1, 784) / 255.0, y, epochs=2, verbose=0)
    n = 60
    clean = (model.predict(x_test[:n].reshape(n, -1) / 255.0).argmax(1) == y_test[:n]).mean()
    for condition in photos.CONDITIONS:
        seen = np.stack([images.prepare_digit(photos.photo(x_test[k], condition, seed=k)) for k in range(n)])
        accuracy = (model.predict(seen.reshape(n, -1)).argmax(1) == y_test[:n]).mean()
        assert accuracy >= clean - (0.15 if condition == "everything" else 0.07), (condition, accuracy, clean)
