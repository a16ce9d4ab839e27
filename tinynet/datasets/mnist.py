"""MNIST, loaded the way ``keras.datasets.mnist.load_data()`` returns it.

``load_data()`` returns ``((x_train, y_train), (x_test, y_test))``: uint8 arrays of
shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,).

Where it looks, in order:

1. ``path``, when given: a directory with the four IDX files (``.gz`` or not) or a
   Keras ``mnist.npz``, or the path of such an ``.npz`` file. An explicit path is
   the only place looked at: if the data is not there, that is an error.
2. When the environment variable ``TINYNET_DATA_DIR`` is set, its subfolder ``mnist``
   (where every data set of :mod:`tinynet.datasets` looks for its own), or the folder
   itself, as before there were other data sets. Set, it is the only place looked at too:
   a folder that is not there, or holds no MNIST files, is an error (a typo must not turn
   into a download).
3. The user cache: ``$XDG_CACHE_HOME/tinynet/mnist`` or ``~/.cache/tinynet/mnist``.
4. A download of the four IDX ``.gz`` files from the public mirrors into the cache.
   Each file is downloaded into memory, checked, and only then written to a temporary
   file beside its final name and renamed into place, so a bad or broken download never
   replaces a good cached file (:mod:`tinynet.datasets.sources` holds these rules).

Every file is parsed with every field checked (:mod:`tinynet.datasets.idx`), its
shapes and dtypes are compared with MNIST's, and, with ``verify=True`` (the
default), the SHA-256 of its *decompressed* content with MNIST's published one
(the check that holds for any copy, whatever compressed it). Pass
``verify=False`` to load other data in MNIST's format (your own subset; Fashion-MNIST,
which uses the same file names, has its own loader, :mod:`tinynet.datasets.fashion_mnist`).

No file can cost more than its size says it should. With ``verify=True`` each file
may hold MNIST's own number of samples, with ``verify=False`` up to
:data:`MAX_SAMPLES` (480,000: eight times MNIST's training set); a file that declares
more is refused before its data is read, and a gzip file that decompresses past what
its header declares is refused there (:mod:`tinynet.datasets.idx`). An ``mnist.npz``'s
members are refused the same way, on the shape and dtype their ``.npy`` headers
declare, before their data is read. Only regular files are opened: a FIFO or a
device named like an MNIST file is refused, never waited on.
"""

from __future__ import annotations

import math
import os
import zipfile

import numpy as np

from ..files import archives
from . import mnist_format, sources
from .idx import MAX_BYTES, DatasetError, open_data_file, read_idx_with_sha256
from .mnist_format import FILES, MAX_SAMPLES, SHAPES, THE_FOUR_FILES, max_bytes  # noqa: F401 (MNIST's names too)

# SHA-256 of each file's decompressed content.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MIRRORS = [
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
]
TITLE = "MNIST"


def cache_dir() -> str:
    """``$XDG_CACHE_HOME/tinynet/mnist``, or ``~/.cache/tinynet/mnist``."""
    return sources.cache_dir("mnist")


def _has_data(directory) -> bool:
    if os.path.exists(os.path.join(directory, "mnist.npz")):
        return True
    return mnist_format.has_any(directory)


_complete = mnist_format.complete

DATASET = sources.Dataset(
    name="mnist",
    title=TITLE,
    should_hold=f"{THE_FOUR_FILES}, or a Keras mnist.npz",
    put=f"Put the four files {THE_FOUR_FILES} in a directory and set TINYNET_DATA_DIR to it",
    has_data=_has_data,
    complete=_complete,
    flat=True,  # TINYNET_DATA_DIR holding MNIST's files itself still works, as before there were several data sets
)


def _check_sha256(path: str, key: str, digest: str):
    stem = FILES[key]
    if digest != SHA256[stem]:
        raise DatasetError(
            f"{path}: SHA-256 of the content is {digest}, expected MNIST's {SHA256[stem]} "
            "(corrupt file? for other data in MNIST's format pass verify=False)"
        )


def _load_npz(path: str, verify: bool) -> dict:
    """A Keras ``mnist.npz``, each member's ``.npy`` header checked before its data is read."""
    with open_data_file(path) as f:  # a FIFO, a device, no permission: refused before reading
        if f.read(4) != b"PK\x03\x04":
            raise DatasetError(f"{path}: not a readable .npz file (not a zip archive)")
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as z:
                members = {n.removesuffix(".npy"): n for n in z.namelist()}
                missing = [k for k in FILES if k not in members]
                if missing:
                    raise DatasetError(
                        f"{path}: not a Keras mnist.npz: keys {missing} are missing (has {sorted(members)})"
                    )
                return {k: _read_member(z, members[k], k, path, verify) for k in FILES}
        except DatasetError:
            raise
        except Exception as e:  # zipfile.BadZipFile, a bad CRC, an unknown compression, a bad .npy header ...
            raise DatasetError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from e


def _read_member(z: zipfile.ZipFile, member: str, key: str, path: str, verify: bool) -> np.ndarray:
    """One .npy member: its header read and checked (dtype, shape) first, then exactly the
    data it declares, in chunks, to the end of the member (where zipfile checks its CRC)."""
    source = f"{path}: {member}"
    with z.open(member) as m:
        try:
            shape, fortran_order, dtype = archives.read_header(m)  # a huge declared header refused unread
        except archives.ArchiveRefused as e:
            raise DatasetError(f"{source}: {e}") from None
        if dtype.hasobject:
            raise DatasetError(f"{source}: refused: an array of Python objects ({dtype}) would need pickle")
        mnist_format.check_kind(key, shape, dtype, path, verify, TITLE)  # before any data is read
        data = sources.read_exactly(m, math.prod(shape) * dtype.itemsize, source, f"shape {shape}")
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape[::-1]).transpose() if fortran_order else array.reshape(shape)


def load_from(location: str, verify: bool = True) -> dict:
    """Load MNIST from a directory of IDX files, a directory with mnist.npz, or an .npz path.

    Any failure is a DatasetError naming the file, never another exception type.
    """
    return sources.guarded(lambda: _load_from(location, verify), location, TITLE)


def _load_from(location: str, verify: bool) -> dict:
    if not os.path.isdir(location):  # a file: an mnist.npz, or refused as not one (or not a regular file)
        arrays, source = _load_npz(location, verify), location
    elif os.path.exists(os.path.join(location, "mnist.npz")) and not mnist_format.find(location, FILES["x_train"]):
        source = os.path.join(location, "mnist.npz")
        arrays = _load_npz(source, verify)
    else:
        return mnist_format.load_dir(location, verify, TITLE, _check_sha256)
    mnist_format.check_arrays(arrays, source, verify, TITLE)
    return arrays


def load_data(path=None, verify: bool = True):
    """MNIST as ``((x_train, y_train), (x_test, y_test))``, uint8, like Keras.

    Args:
        path: a directory or an ``mnist.npz``; see the module docstring for where
            tinynet looks when it is None.
        verify: check each file's SHA-256 and MNIST's exact shapes. Defaults to True.

    Raises:
        DatasetError: a file is corrupt, truncated, of the wrong kind or fails its
            checksum (the message names it), or no copy could be found or fetched.
    """
    return sources.load_data(DATASET, path, lambda where: load_from(where, verify), download)


def download(directory=None, mirrors=None, timeout: float = 30.0, verbose: bool = True, checksums=None):
    """Fetch the four files into ``directory`` (the cache by default).

    Files already there with the right checksum are kept. Each new file is
    downloaded into memory, its decompressed SHA-256 and IDX structure checked,
    and only then written to a temporary file and renamed into place; a failed or
    wrong download leaves any old file untouched. ``checksums`` maps file stems to
    SHA-256 digests (MNIST's by default).
    """
    checksums = SHA256 if checksums is None else checksums
    limits = {stem: _download_limit(stem, sha256) for stem, sha256 in checksums.items()}

    def check(name: str, source, label: str):
        stem = name.removesuffix(".gz")
        _, digest = read_idx_with_sha256(source, limits[stem], name=label)  # a well-formed IDX file, within bounds
        if digest != checksums[stem]:
            raise DatasetError(f"SHA-256 of the content is {digest}, expected {checksums[stem]}")

    files = {stem + ".gz": mnist_format.gzip_limit(limit) for stem, limit in limits.items()}
    mirrors = list(mirrors) if mirrors is not None else MIRRORS
    sources.download(directory or cache_dir(), files, mirrors, check, timeout, verbose)


def _download_limit(stem: str, sha256: str) -> int:
    """The most content a downloaded file may hold: MNIST's own size for MNIST's own file."""
    keys = [k for k, s in FILES.items() if s == stem]
    return max_bytes(keys[0], verify=sha256 == SHA256.get(stem)) if keys else MAX_BYTES
