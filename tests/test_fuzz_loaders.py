"""Fuzzing every loader: random bytes, truncations and bit flips of a valid file.

Whatever the bytes, a loader either loads or raises tinynet's own clear error
(ModelFileError for models and checkpoints, DatasetError for IDX files and Keras
npz files): never another exception type, a hang or a crash. Nothing is unpickled.
The normal run tries a few hundred examples per loader; ``-m slow`` runs the
long version (thousands per loader).
"""

import gzip
import io
import os
import tempfile
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.datasets import DatasetError, mnist
from tinynet.datasets.idx import read_idx, to_idx_bytes

WORK = tempfile.mkdtemp(prefix="tinynet-fuzz-")


def _valid_checkpoint() -> bytes:
    rng = np.random.default_rng(0)
    model = tn.Sequential(
        [
            tn.Input((4, 4, 1)),
            tn.Conv2D(2, 3, padding="same"),
            tn.BatchNormalization(),
            tn.Flatten(),
            tn.Dropout(0.1),
            tn.Dense(3, activation="softmax"),
        ],
        seed=0,
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(rng.random((8, 4, 4, 1)).astype(np.float32), rng.integers(0, 3, 8), epochs=1, verbose=0)
    path = os.path.join(WORK, "valid.npz")
    model.save(path)
    with open(path, "rb") as f:
        return f.read()


def _valid_npz() -> bytes:
    rng = np.random.default_rng(1)
    path = os.path.join(WORK, "valid_mnist.npz")
    np.savez(
        path,
        x_train=rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        y_train=np.arange(5, dtype=np.uint8),
        x_test=rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        y_test=np.arange(2, dtype=np.uint8),
    )
    with open(path, "rb") as f:
        return f.read()


CHECKPOINT = _valid_checkpoint()
IDX = to_idx_bytes(np.random.default_rng(2).integers(0, 256, (3, 28, 28), dtype=np.uint8))
IDX_GZ = gzip.compress(IDX, mtime=0)
NPZ = _valid_npz()


def _write_and_load(name, data, load, expected_error):
    """Write ``data`` to a file and load it: it may load, or raise ``expected_error``, nothing else."""
    path = os.path.join(WORK, name)
    with open(path, "wb") as f:
        f.write(data)
    try:
        load(path)
    except expected_error:
        pass


def load_model_bytes(data):
    _write_and_load("fuzzed.npz", data, tn.load_model, tn.ModelFileError)


def load_idx_bytes(data):
    _write_and_load("fuzzed-idx3-ubyte", data, read_idx, DatasetError)


def load_npz_bytes(data):
    _write_and_load("mnist.npz", data, lambda path: mnist.load_data(path, verify=False), DatasetError)


with np.load(os.path.join(WORK, "valid.npz"), allow_pickle=False) as _f:
    ARRAYS = {k: _f[k] for k in _f.files}
CONFIG = ARRAYS["tinynet_config"].tobytes()


def load_edited_config(data):
    """A well-formed .npz whose JSON description was edited (the zip's checksums stay
    valid, so the parser behind them is what gets fuzzed); ``data`` is the new JSON."""
    arrays = dict(ARRAYS, tinynet_config=np.frombuffer(data, dtype=np.uint8))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    load_model_bytes(buffer.getvalue())


KERAS_FILE = os.path.join(os.path.dirname(__file__), "fixtures", "keras_files", "cnn.keras")
with open(KERAS_FILE, "rb") as _f:
    KERAS = _f.read()
with zipfile.ZipFile(KERAS_FILE) as _z:
    KERAS_PARTS = {n: _z.read(n) for n in _z.namelist()}


def load_keras_bytes(data):
    _write_and_load("fuzzed.keras", data, tn.load_model, tn.ModelFileError)


def load_edited_keras_config(data):
    """A well-formed .keras zip whose config.json was edited (the parser behind the zip's checksums)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, part in KERAS_PARTS.items():
            z.writestr(name, data if name == "config.json" else part)
    load_keras_bytes(buffer.getvalue())


LOADERS = {
    "model/checkpoint": (load_model_bytes, CHECKPOINT),
    ".keras file": (load_keras_bytes, KERAS),
    ".keras JSON": (load_edited_keras_config, KERAS_PARTS["config.json"]),
    "model JSON": (load_edited_config, CONFIG),
    "IDX": (load_idx_bytes, IDX),
    "IDX.gz": (load_idx_bytes, IDX_GZ),
    "Keras npz": (load_npz_bytes, NPZ),
}


def mutations(valid: bytes):
    """Random bytes, a truncation, or 1-8 bit flips of the valid file."""
    flips = st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 7)), min_size=1, max_size=8)
    # JSON-aware edits: replace one number or word of the text with another token
    tokens = st.sampled_from(
        [
            b"0",
            b"-1",
            b"1e9",
            b"null",
            b"true",
            b'"x"',
            b"[]",
            b"{}",
            b"[1, -2]",
            b"NaN",
            b'"Dense"',
            b'"relu"',
            b"2.5",
            b"99999999999999999999",
        ]
    )
    edits = st.tuples(st.integers(0, len(valid) - 1), st.integers(1, 12), tokens).map(
        lambda e: valid[: e[0]] + e[2] + valid[e[0] + e[1] :]
    )
    return st.one_of(
        st.binary(max_size=4096),
        st.integers(0, len(valid) - 1).map(lambda k: valid[:k]),
        flips.map(lambda fl: bytes(_flip(valid, fl))),
        edits,
    )


def _flip(valid, flips):
    data = bytearray(valid)
    for position, bit in flips:
        data[position] ^= 1 << bit
    return data


def _fuzz(name, examples):
    load, valid = LOADERS[name]
    load(valid)  # the valid file loads

    @settings(
        max_examples=examples,
        deadline=5000,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutations(valid))
    def run(data):
        load(data)  # only tinynet's own error may come out

    run()


@pytest.mark.parametrize("name", list(LOADERS))
def test_fuzz_loaders(name):
    _fuzz(name, 150)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LOADERS))
def test_fuzz_loaders_long(name):
    _fuzz(name, 3000)
