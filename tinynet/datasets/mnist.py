"""MNIST, loaded the way ``keras.datasets.mnist.load_data()`` returns it.

``load_data()`` returns ``((x_train, y_train), (x_test, y_test))``: uint8 arrays of
shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,).

Where it looks, in order:

1. ``path``, when given: a directory with the four IDX files (``.gz`` or not) or a
   Keras ``mnist.npz``, or the path of such an ``.npz`` file. An explicit path is
   the only place looked at: if the data is not there, that is an error.
2. The directory named by the environment variable ``TINYNET_DATA_DIR``. Set, it is the
   only place looked at too: a folder that is not there, or holds no MNIST files, is an
   error (a typo must not turn into a download).
3. The user cache: ``$XDG_CACHE_HOME/tinynet/mnist`` or ``~/.cache/tinynet/mnist``.
4. A download of the four IDX ``.gz`` files from the public mirrors into the cache.
   Each file is written to a temporary file beside its final name, checked, and
   only then renamed into place, so a bad or broken download never replaces a good
   cached file.

Every file is parsed with every field checked (:mod:`tinynet.datasets.idx`), its
shapes and dtypes are compared with MNIST's, and, with ``verify=True`` (the
default), the SHA-256 of its *decompressed* content with MNIST's published one
(the check that holds for any copy, whatever compressed it). Pass
``verify=False`` to load other data in MNIST's format (your own subset, or
Fashion-MNIST, which uses the same file names).

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

import http.client
import io
import math
import os
import sys
import urllib.request
import zipfile

import numpy as np

from ..engine.progress import ProgressBar
from ..files import archives
from ..files.fileio import atomic_write, open_regular
from .idx import CHUNK, MAX_BYTES, DatasetError, read_idx_with_sha256

FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
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
SHAPES = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}
MAX_SAMPLES = 8 * 60000  # the most images (or labels) one file may hold with verify=False


def max_bytes(key: str, verify: bool) -> int:
    """The most content (IDX header and data) the file of ``key`` may hold: MNIST's own
    size with ``verify``, :data:`MAX_SAMPLES` samples without."""
    n = SHAPES[key][0] if verify else MAX_SAMPLES
    ndim = len(SHAPES[key])
    return 4 + 4 * ndim + n * math.prod(SHAPES[key][1:])


def _limit_reason(verify: bool) -> str:
    if verify:
        return " (MNIST's own size; for other data in MNIST's format pass verify=False)"
    return f" (verify=False reads at most {MAX_SAMPLES} samples per file)"


def cache_dir() -> str:
    """``$XDG_CACHE_HOME/tinynet/mnist``, or ``~/.cache/tinynet/mnist``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tinynet", "mnist")


def _find(directory: str, stem: str):
    """The path of ``stem`` or ``stem.gz`` in ``directory``, or None. Whatever is there
    counts (a FIFO too: reading it refuses it, with a message that says what it is)."""
    for name in (stem + ".gz", stem):
        candidate = os.path.join(directory, name)
        if os.path.exists(candidate):
            return candidate
    return None


def _has_data(directory) -> bool:
    if not directory or not os.path.isdir(directory):
        return False
    if os.path.exists(os.path.join(directory, "mnist.npz")):
        return True
    return any(_find(directory, stem) for stem in FILES.values())


def _check_kind(key: str, shape: tuple, dtype, source: str, strict_shapes: bool):
    """The dtype and shape ``key`` must have (declared or read): uint8, (N, 28, 28) or (N,),
    MNIST's own shape when ``strict_shapes``, else at most MAX_SAMPLES samples."""
    if dtype != np.uint8:
        raise DatasetError(f"{source}: {key} has dtype {dtype}, expected uint8")
    want_ndim = 3 if key.startswith("x") else 1
    if len(shape) != want_ndim or (want_ndim == 3 and shape[1:] != (28, 28)):
        expected = "(N, 28, 28)" if want_ndim == 3 else "(N,)"
        raise DatasetError(f"{source}: {key} has shape {shape}, expected {expected}")
    if strict_shapes and shape != SHAPES[key]:
        raise DatasetError(f"{source}: {key} has shape {shape}, expected MNIST's {SHAPES[key]}")
    if shape[0] > MAX_SAMPLES:
        raise DatasetError(
            f"{source}: {key} has shape {shape}: more samples than the {MAX_SAMPLES} verify=False reads from one file"
        )


def _check_arrays(arrays: dict, source: str, strict_shapes: bool):
    for key, a in arrays.items():
        _check_kind(key, a.shape, a.dtype, source, strict_shapes)
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.shape[0] != y.shape[0]:
            raise DatasetError(f"{source}: {x.shape[0]} {split} images but {y.shape[0]} {split} labels")
        if y.size and int(y.max()) > 9:
            raise DatasetError(f"{source}: {split} labels must be 0-9, found {int(y.max())}")


def _load_idx_dir(directory: str, verify: bool) -> dict:
    arrays = {}
    for key, stem in FILES.items():
        path = _find(directory, stem)
        if path is None:
            raise DatasetError(f"{directory}: {stem}.gz (or {stem}) is missing")
        array, digest = read_idx_with_sha256(path, max_bytes(key, verify), why=_limit_reason(verify))
        if verify and digest != SHA256[stem]:
            raise DatasetError(
                f"{path}: SHA-256 of the content is {digest}, expected MNIST's {SHA256[stem]} "
                "(corrupt file? for other data in MNIST's format pass verify=False)"
            )
        arrays[key] = array
    return arrays


def _load_npz(path: str, verify: bool) -> dict:
    """A Keras ``mnist.npz``, each member's ``.npy`` header checked before its data is read."""
    try:
        f = open_regular(path)
    except OSError as e:  # a FIFO, a device, no permission: refused before reading
        raise DatasetError(str(e) if path in str(e) else f"{path}: cannot read ({e})") from None
    with f:
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
        _check_kind(key, shape, dtype, path, strict_shapes=verify)  # before any data is read
        nbytes = math.prod(shape) * dtype.itemsize
        data = bytearray()
        while len(data) < nbytes:
            chunk = m.read(min(CHUNK, nbytes - len(data)))
            if not chunk:
                raise DatasetError(f"{source}: truncated: shape {shape} needs {nbytes} data bytes, found {len(data)}")
            data += chunk
        if m.read(1):
            raise DatasetError(f"{source}: more bytes than its shape {shape} holds")
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape[::-1]).transpose() if fortran_order else array.reshape(shape)


def load_from(location: str, verify: bool = True) -> dict:
    """Load MNIST from a directory of IDX files, a directory with mnist.npz, or an .npz path.

    Any failure is a DatasetError naming the file, never another exception type.
    """
    try:
        return _load_from(location, verify)
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(f"{location}: cannot be read as MNIST ({type(e).__name__}: {e})") from e


def _load_from(location: str, verify: bool) -> dict:
    if not os.path.isdir(location):  # a file: an mnist.npz, or refused as not one (or not a regular file)
        arrays, source = _load_npz(location, verify), location
    elif os.path.exists(os.path.join(location, "mnist.npz")) and not _find(location, FILES["x_train"]):
        source = os.path.join(location, "mnist.npz")
        arrays = _load_npz(source, verify)
    else:
        arrays, source = _load_idx_dir(location, verify), location
    _check_arrays(arrays, source, strict_shapes=verify)
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
    if path is not None:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise DatasetError(f"{path}: no such file or directory")
        arrays = load_from(path, verify)
    else:
        arrays = _load_default(verify)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


THE_FOUR_FILES = ", ".join(f"{stem}.gz" for stem in list(FILES.values())[:3]) + f" and {FILES['y_test']}.gz"


def _load_default(verify: bool) -> dict:
    env = os.environ.get("TINYNET_DATA_DIR")
    cache = cache_dir()
    if env:
        if not _has_data(env):
            what = "holds no MNIST files" if os.path.isdir(env) else "is not a directory"
            raise DatasetError(
                f"TINYNET_DATA_DIR={env!r} {what} (it should hold {THE_FOUR_FILES}, or a Keras mnist.npz); "
                f"set it to such a folder, or unset it to use the cache {cache} or a download"
            )
        return load_from(env, verify)
    if _complete(cache):
        return load_from(cache, verify)
    try:
        download(cache)
    except DatasetError as e:
        raise DatasetError(
            f"MNIST not found. Looked in TINYNET_DATA_DIR (not set) and the cache {cache}; the download failed: {e}\n"
            f"Put the four files {THE_FOUR_FILES} in a directory and set "
            "TINYNET_DATA_DIR to it, or pass load_data(path=...)."
        ) from None
    return load_from(cache, verify)


def _complete(directory) -> bool:
    return os.path.isdir(directory) and all(_find(directory, s) for s in FILES.values())


def download(directory=None, mirrors=None, timeout: float = 30.0, verbose: bool = True, checksums=None):
    """Fetch the four files into ``directory`` (the cache by default).

    Files already there with the right checksum are kept. Each new file is
    downloaded into memory, its decompressed SHA-256 and IDX structure checked,
    and only then written to a temporary file and renamed into place; a failed or
    wrong download leaves any old file untouched. ``checksums`` maps file stems to
    SHA-256 digests (MNIST's by default).
    """
    directory = directory or cache_dir()
    mirrors = list(mirrors) if mirrors is not None else MIRRORS
    checksums = SHA256 if checksums is None else checksums
    os.makedirs(directory, exist_ok=True)
    for stem in checksums:
        target = os.path.join(directory, stem + ".gz")
        limit = _download_limit(stem, checksums[stem])
        if os.path.isfile(target):
            try:
                if read_idx_with_sha256(target, limit)[1] == checksums[stem]:
                    continue
            except DatasetError:
                pass  # a broken cached file is replaced below, only by a good one
        errors = []
        for mirror in mirrors:
            url = mirror + stem + ".gz"
            try:
                _fetch_verified(url, target, checksums[stem], timeout, verbose, limit)
                break
            except (OSError, DatasetError, http.client.HTTPException) as e:  # URLError is an OSError
                errors.append(f"{url}: {e}")
        else:
            raise DatasetError(f"could not fetch {stem}.gz: " + "; ".join(errors))


def _download_limit(stem: str, sha256: str) -> int:
    """The most content a downloaded file may hold: MNIST's own size for MNIST's own file."""
    keys = [k for k, s in FILES.items() if s == stem]
    return max_bytes(keys[0], verify=sha256 == SHA256.get(stem)) if keys else MAX_BYTES


def _fetch_verified(url: str, target: str, sha256: str, timeout: float, verbose: bool, limit: int = MAX_BYTES):
    most = limit + limit // 100 + CHUNK  # gzip never grows what it compresses by more than a fraction
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https mirrors)
        total = int(response.headers.get("Content-Length") or 0)
        if total > most:
            raise DatasetError(f"the server announces {total} bytes, more than the {most} the file can take")
        chunks, received = [], 0
        bar = ProgressBar(
            max(total, 1),
            verbose=1 if verbose else 0,
            stream=sys.stderr,
            label=f"{os.path.basename(target)} ",
            megabytes=True,
        )
        while True:
            chunk = response.read(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
            if received > most:
                raise DatasetError(f"more than the {most} bytes the file can take; refused")
            bar.update(received, dict)
    data = b"".join(chunks)
    if total and received != total:  # (http.client usually raises IncompleteRead first)
        raise DatasetError(f"connection closed after {received} of {total} bytes")
    _, digest = read_idx_with_sha256(io.BytesIO(data), limit, name=url)  # a well-formed IDX file, within bounds
    if digest != sha256:
        raise DatasetError(f"SHA-256 of the content is {digest}, expected {sha256}")
    with atomic_write(target) as f:
        f.write(data)
    bar.finish({})
