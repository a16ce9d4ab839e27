"""Small MNIST-like data that the tests make themselves (never the real files).

Class k is a thick stroke at angle 18k degrees, drawn large, then put through the
same MNIST-style preparation as any user image (fit into 20x20, centred by its
centre of mass in 28x28). Easy to learn, and shaped like MNIST digits.
"""

import os

import numpy as np

from tinynet.datasets.idx import write_idx
from tinynet.images import prepare_digit


def stroke(label: int, rng) -> np.ndarray:
    size = 84
    yy, xx = np.mgrid[0:size, 0:size] - size / 2
    angle = np.deg2rad(18 * label + rng.uniform(-4, 4))
    along = xx * np.cos(angle) + yy * np.sin(angle)
    across = -xx * np.sin(angle) + yy * np.cos(angle)
    half_length, thickness = rng.uniform(22, 34), rng.uniform(3, 6)
    canvas = ((np.abs(along) <= half_length) & (np.abs(across) <= thickness)).astype(np.float32)
    if label % 2:  # odd classes get a dot beside the stroke: more to tell them apart
        canvas[(yy - 20) ** 2 + (xx - 20) ** 2 < 40] = 1.0
    return canvas


def make_digits(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = np.stack([(prepare_digit(stroke(int(k), rng)) * 255).round().astype(np.uint8) for k in labels])
    return images, labels


def write_mnist_dir(directory, n_train=300, n_test=100, seed=0, compress=True):
    """Write the four MNIST-named IDX files with synthetic content; returns the arrays."""
    os.makedirs(directory, exist_ok=True)
    x_train, y_train = make_digits(n_train, seed)
    x_test, y_test = make_digits(n_test, seed + 1)
    suffix = ".gz" if compress else ""
    for stem, array in (
        ("train-images-idx3-ubyte", x_train),
        ("train-labels-idx1-ubyte", y_train),
        ("t10k-images-idx3-ubyte", x_test),
        ("t10k-labels-idx1-ubyte", y_test),
    ):
        write_idx(os.path.join(directory, stem + suffix), array)
    return (x_train, y_train), (x_test, y_test)
