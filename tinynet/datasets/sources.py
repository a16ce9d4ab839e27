"""Where a data set's files come from: one rule for every data set in :mod:`tinynet.datasets`.

``load_data(path=None)`` of each data set looks, in order:

1. ``path``, when given. An explicit path is the only place looked at: if the data is
   not there, that is an error.
2. ``$TINYNET_DATA_DIR/<name>/``, when the environment variable ``TINYNET_DATA_DIR`` is
   set, ``<name>`` being the data set's module name (``mnist``, ``fashion_mnist``,
   ``cifar10``): one variable serves every data set, each in its own folder. MNIST also
   looks in ``$TINYNET_DATA_DIR`` itself, as it did when it was the only data set
   (Fashion-MNIST's files have MNIST's names: they could not share that place). Set, the
   variable is the only place looked at too: a folder that is not there, or holds none of
   the data set's files, is an error (a typo must not turn into a download).
3. The user cache: ``$XDG_CACHE_HOME/tinynet/<name>`` or ``~/.cache/tinynet/<name>``.
4. A download from the data set's mirrors into the cache. Each file is downloaded into
   memory, never more than it may hold, checked against its published checksum, and only
   then written to a temporary file beside its final name and renamed into place, so a bad
   or broken download never replaces a good cached file.

This module holds those rules, and the checks on a file's bytes that Fashion-MNIST and
CIFAR-10 need (their publishers give checksums of the compressed files as downloaded).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from ..engine.progress import ProgressBar
from ..files.fileio import atomic_write
from .idx import CHUNK, DatasetError, open_data_file

ENVIRONMENT_VARIABLE = "TINYNET_DATA_DIR"
HASH_NAMES = {"md5": "MD5", "sha256": "SHA-256"}  # the checksums a data set may publish, by hashlib's names


@dataclass(frozen=True)
class Dataset:
    """What the shared rules need to know of one data set."""

    name: str  # its folder in the cache and in TINYNET_DATA_DIR, e.g. "fashion_mnist"
    title: str  # its name in messages, e.g. "Fashion-MNIST"
    should_hold: str  # what TINYNET_DATA_DIR should hold for it, in words
    put: str  # how to provide it offline, in words: the first half of a sentence
    has_data: Callable[[str], bool]  # whether a folder holds any of its files (where TINYNET_DATA_DIR is looked at)
    complete: Callable[[str], bool]  # whether a folder holds all of them (what the cache must, to be used)
    flat: bool = False  # MNIST: TINYNET_DATA_DIR may hold the files itself, as before there were several data sets


def cache_dir(name: str) -> str:
    """``$XDG_CACHE_HOME/tinynet/<name>``, or ``~/.cache/tinynet/<name>``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tinynet", name)


def load_data(dataset: Dataset, path, load_from: Callable[[str], dict], download: Callable[[str], None]):
    """Keras's ``((x_train, y_train), (x_test, y_test))``: ``load_from(path)``, or, with no
    ``path``, from the places the module docstring lists (``download(cache)`` the last)."""
    if path is not None:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise DatasetError(f"{path}: no such file or directory")
        arrays = load_from(path)
    else:
        arrays = _load_default(dataset, load_from, download)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _load_default(dataset: Dataset, load_from, download) -> dict:
    env = os.environ.get(ENVIRONMENT_VARIABLE)
    cache = cache_dir(dataset.name)
    if env:
        return load_from(_folder_in_environment(dataset, env, cache))
    if dataset.complete(cache):
        return load_from(cache)
    try:
        download(cache)
    except DatasetError as e:
        raise DatasetError(
            f"{dataset.title} not found. Looked in {ENVIRONMENT_VARIABLE} (not set) and the cache {cache}; "
            f"the download failed: {e}\n{dataset.put}, or pass load_data(path=...)."
        ) from None
    return load_from(cache)


def _folder_in_environment(dataset: Dataset, env: str, cache: str) -> str:
    """The folder TINYNET_DATA_DIR names for ``dataset``: its subfolder ``<name>``, or (MNIST) itself."""
    for folder in [os.path.join(env, dataset.name)] + ([env] if dataset.flat else []):
        if os.path.isdir(folder) and dataset.has_data(folder):
            return folder
    what = f"holds no {dataset.title} files" if os.path.isdir(env) else "is not a directory"
    raise DatasetError(
        f"{ENVIRONMENT_VARIABLE}={env!r} {what} (it should hold {dataset.should_hold}); "
        f"set it to such a folder, or unset it to use the cache {cache} or a download"
    )


def guarded(load: Callable[[], dict], location: str, title: str) -> dict:
    """``load()``, any failure a DatasetError naming ``location``, never another exception type."""
    try:
        return load()
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(f"{location}: cannot be read as {title} ({type(e).__name__}: {e})") from e


def read_exactly(f, nbytes: int, source: str, what: str) -> bytearray:
    """Exactly ``nbytes`` from ``f``, read in chunks, and then its end (DatasetError if it ends
    sooner or goes on); ``what`` names what declared the size, for the messages."""
    data = bytearray()  # grows as the data arrives: memory is what came, never what was declared
    while len(data) < nbytes:
        chunk = f.read(min(CHUNK, nbytes - len(data)))
        if not chunk:
            raise DatasetError(f"{source}: truncated: {what} needs {nbytes} data bytes, found {len(data)}")
        data += chunk
    if f.read(1):
        raise DatasetError(f"{source}: more bytes than its {what} holds")
    return data


# -------------------------------------------------------------------- checksums of a file's bytes


def file_digests(source, most: int, label: str, algorithms=HASH_NAMES) -> dict:
    """``{algorithm: hex digest}`` of the bytes of ``source`` (a path, or a binary file object
    read from where it is), read in chunks; refused (DatasetError) past ``most`` bytes, and a
    path whose size is larger before anything is read."""
    if isinstance(source, (str, os.PathLike)):
        with open_data_file(os.fspath(source)) as f:
            size = os.fstat(f.fileno()).st_size
            if size > most:
                raise DatasetError(f"{label}: refused before reading: {size} bytes, more than the {most} it may have")
            return file_digests(f, most, label, algorithms)
    hashers = {name: hashlib.new(name, usedforsecurity=False) for name in algorithms}  # (MD5 on FIPS systems too)
    read = 0
    while chunk := source.read(CHUNK):
        read += len(chunk)
        if read > most:
            raise DatasetError(f"{label}: refused: more than the {most} bytes it may have")
        for hasher in hashers.values():
            hasher.update(chunk)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def check_digests(source, expected: dict, most: int, label: str, title: str, hint: str = ""):
    """Raise DatasetError unless the bytes of ``source`` have every checksum of ``expected``
    (``{"md5": ..., "sha256": ...}``, as ``title`` publishes them); ``hint`` ends the message."""
    got = file_digests(source, most, label, algorithms=list(expected))
    for algorithm, digest in expected.items():
        if got[algorithm] != digest:
            raise DatasetError(
                f"{label}: {HASH_NAMES[algorithm]} of the file is {got[algorithm]}, expected {title}'s {digest} "
                f"(a corrupt or incomplete copy, or one compressed again?{hint})"
            )


VERIFY_HINT = " for other data in its format pass verify=False"  # check_digests's hint for a file on disk


# -------------------------------------------------------------------- downloads


def download(directory: str, files: dict, mirrors, check, timeout: float = 30.0, verbose: bool = True):
    """Fetch each file of ``files`` (``{file name: the most bytes it may have}``) into
    ``directory`` from the first of ``mirrors`` (URL prefixes) that serves a good copy.

    ``check(name, source, label)`` raises DatasetError unless ``source`` (a path, or a file
    object of what was downloaded; ``label`` names it) is a good copy of the file ``name``.
    A file already there that passes is kept; a new one is written atomically, only once it
    has passed, so a failed or wrong download leaves any old file untouched.
    """
    os.makedirs(directory, exist_ok=True)
    for name, most in files.items():
        target = os.path.join(directory, name)
        if os.path.isfile(target) and _passes(check, name, target):
            continue
        errors = []
        for mirror in mirrors:
            url = mirror + name
            try:
                data = fetch(url, most, timeout, verbose, label=name)
                check(name, io.BytesIO(data), url)
                with atomic_write(target) as f:
                    f.write(data)
                break
            except (OSError, DatasetError, http.client.HTTPException) as e:  # URLError is an OSError
                errors.append(str(e) if str(e).startswith(url) else f"{url}: {e}")  # (a check may name the url)
        else:
            raise DatasetError(f"could not fetch {name}: " + "; ".join(errors))


def _passes(check, name: str, path: str) -> bool:
    try:
        check(name, path, path)
        return True
    except DatasetError:
        return False  # a broken cached file is replaced, only by a good one


def fetch(url: str, most: int, timeout: float = 30.0, verbose: bool = True, label: str = "") -> bytes:
    """The body of ``url``, downloaded into memory: refused (DatasetError) as soon as the server
    announces or sends more than ``most`` bytes; a progress bar on stderr with ``verbose``."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https mirrors)
        total = int(response.headers.get("Content-Length") or 0)
        if total > most:
            raise DatasetError(f"the server announces {total} bytes, more than the {most} the file can take")
        chunks, received = [], 0
        bar = ProgressBar(
            max(total, 1), verbose=1 if verbose else 0, stream=sys.stderr, label=f"{label} ", megabytes=True
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
    if total and received != total:  # (http.client usually raises IncompleteRead first)
        raise DatasetError(f"connection closed after {received} of {total} bytes")
    bar.finish({})
    return b"".join(chunks)
