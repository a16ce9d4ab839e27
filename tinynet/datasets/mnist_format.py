"""Data in MNIST's format: four IDX files, found in a folder, read and checked.

MNIST and Fashion-MNIST are both four IDX files (:mod:`tinynet.datasets.idx`) of the same
names, shapes and dtypes: 60000 training and 10000 test images of 28x28 uint8 pixels, and
as many uint8 labels, 0-9. Each file may be gzip-compressed (``<stem>.gz``) or not
(``<stem>``). What differs between the two, the checksums and how they are checked, each
data set's module passes in; ``title`` names the data set in messages.

With ``verify`` each file may hold the data set's own number of samples, without up to
:data:`MAX_SAMPLES`; a file that declares more is refused before its data is read.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .idx import CHUNK, DatasetError, read_idx_with_sha256

FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
SHAPES = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}
MAX_SAMPLES = 8 * 60000  # the most images (or labels) one file may hold with verify=False
THE_FOUR_FILES = ", ".join(f"{stem}.gz" for stem in list(FILES.values())[:3]) + f" and {FILES['y_test']}.gz"


def max_bytes(key: str, verify: bool) -> int:
    """The most content (IDX header and data) the file of ``key`` may hold: the data set's own
    size with ``verify``, :data:`MAX_SAMPLES` samples without."""
    n = SHAPES[key][0] if verify else MAX_SAMPLES
    ndim = len(SHAPES[key])
    return 4 + 4 * ndim + n * math.prod(SHAPES[key][1:])


def gzip_limit(content_bytes: int) -> int:
    """The most bytes a gzip file of ``content_bytes`` may take: gzip never grows what it
    compresses by more than a fraction (a download is refused past this)."""
    return content_bytes + content_bytes // 100 + CHUNK


def limit_reason(verify: bool, title: str) -> str:
    if verify:
        return f" ({title}'s own size; for other data in {title}'s format pass verify=False)"
    return f" (verify=False reads at most {MAX_SAMPLES} samples per file)"


def find(directory: str, stem: str):
    """The path of ``stem`` or ``stem.gz`` in ``directory``, or None. Whatever is there
    counts (a FIFO too: reading it refuses it, with a message that says what it is)."""
    for name in (stem + ".gz", stem):
        candidate = os.path.join(directory, name)
        if os.path.exists(candidate):
            return candidate
    return None


def has_any(directory: str) -> bool:
    return any(find(directory, stem) for stem in FILES.values())


def complete(directory) -> bool:
    return os.path.isdir(directory) and all(find(directory, s) for s in FILES.values())


def check_kind(key: str, shape: tuple, dtype, source: str, strict_shapes: bool, title: str):
    """The dtype and shape ``key`` must have (declared or read): uint8, (N, 28, 28) or (N,),
    the data set's own shape when ``strict_shapes``, else at most MAX_SAMPLES samples."""
    if dtype != np.uint8:
        raise DatasetError(f"{source}: {key} has dtype {dtype}, expected uint8")
    want_ndim = 3 if key.startswith("x") else 1
    if len(shape) != want_ndim or (want_ndim == 3 and shape[1:] != (28, 28)):
        expected = "(N, 28, 28)" if want_ndim == 3 else "(N,)"
        raise DatasetError(f"{source}: {key} has shape {shape}, expected {expected}")
    if strict_shapes and shape != SHAPES[key]:
        raise DatasetError(f"{source}: {key} has shape {shape}, expected {title}'s {SHAPES[key]}")
    if shape[0] > MAX_SAMPLES:
        raise DatasetError(
            f"{source}: {key} has shape {shape}: more samples than the {MAX_SAMPLES} verify=False reads from one file"
        )


def check_arrays(arrays: dict, source: str, strict_shapes: bool, title: str):
    for key, a in arrays.items():
        check_kind(key, a.shape, a.dtype, source, strict_shapes, title)
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.shape[0] != y.shape[0]:
            raise DatasetError(f"{source}: {x.shape[0]} {split} images but {y.shape[0]} {split} labels")
        if y.size and int(y.max()) > 9:
            raise DatasetError(f"{source}: {split} labels must be 0-9, found {int(y.max())}")


def load_dir(directory: str, verify: bool, title: str, check_file) -> dict:
    """The four arrays of the IDX files in ``directory``, each within its size limit; with
    ``verify``, ``check_file(path, key, sha256 of its content)`` raises for a wrong file."""
    arrays = {}
    for key, stem in FILES.items():
        path = find(directory, stem)
        if path is None:
            raise DatasetError(f"{directory}: {stem}.gz (or {stem}) is missing")
        array, digest = read_idx_with_sha256(path, max_bytes(key, verify), why=limit_reason(verify, title))
        if verify:
            check_file(path, key, digest)
        arrays[key] = array
    check_arrays(arrays, directory, verify, title)
    return arrays
