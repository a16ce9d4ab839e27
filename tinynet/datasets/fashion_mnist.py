"""Fashion-MNIST, loaded the way ``keras.datasets.fashion_mnist.load_data()`` returns it.

``load_data()`` returns ``((x_train, y_train), (x_test, y_test))``: uint8 arrays of
shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,): Zalando's photos of
clothes, 28x28 grey levels, in 10 classes (labels 0-9, named in :data:`CLASS_NAMES`).
It is a drop-in replacement for MNIST: the same IDX files, names, shapes and dtypes
(:mod:`tinynet.datasets.mnist_format`), harder to learn.

Where it looks, in order (:mod:`tinynet.datasets.sources`):

1. ``path``, when given: a directory with the four IDX files (``.gz`` or not).
2. ``$TINYNET_DATA_DIR/fashion_mnist/``, when ``TINYNET_DATA_DIR`` is set (its files have
   MNIST's names, so they cannot share a folder with MNIST's). Set, it is the only place
   looked at: a folder without Fashion-MNIST's files is an error, never a download.
3. The user cache: ``$XDG_CACHE_HOME/tinynet/fashion_mnist`` or ``~/.cache/tinynet/fashion_mnist``.
4. A download of the four ``.gz`` files (30 MB) from the mirrors into the cache.

Checks. Fashion-MNIST's authors publish the MD5 of each ``.gz`` file, and Keras and
TensorFlow Datasets the SHA-256 of the same files; with ``verify=True`` (the default)
each ``.gz`` file must have both (:data:`CHECKSUMS`). They are checksums of the
compressed files as published, so an uncompressed copy cannot be checked against them:
with ``verify=True`` it is refused, saying so; pass ``verify=False`` to load it (or
other data in this format), each file's structure still checked and its size bounded as
MNIST's are.
"""

from __future__ import annotations

import os

from . import mnist_format, sources
from .idx import DatasetError
from .mnist_format import FILES, MAX_SAMPLES, SHAPES, THE_FOUR_FILES, max_bytes  # noqa: F401 (its names too)

# MD5: https://github.com/zalandoresearch/fashion-mnist (README, "Get the Data").
# SHA-256: keras/src/datasets/fashion_mnist.py (FILE_HASHES) and TensorFlow Datasets'
# url_checksums/fashion_mnist.txt, which agree. Both of the .gz files, as downloaded.
CHECKSUMS = {
    "train-images-idx3-ubyte.gz": {
        "md5": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "sha256": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    },
    "train-labels-idx1-ubyte.gz": {
        "md5": "25c81989df183df01b3e8a0aad5dffbe",
        "sha256": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    },
    "t10k-images-idx3-ubyte.gz": {
        "md5": "bef4ecab320f06d8554ea6380940ec79",
        "sha256": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    },
    "t10k-labels-idx1-ubyte.gz": {
        "md5": "bb300cfdad3c16e7a12a480ee83cd310",
        "sha256": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}
MIRRORS = [
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras's
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # the authors' (plain http: the checksums guard it)
]
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
TITLE = "Fashion-MNIST"
NAME = "fashion_mnist"


def cache_dir() -> str:
    """``$XDG_CACHE_HOME/tinynet/fashion_mnist``, or ``~/.cache/tinynet/fashion_mnist``."""
    return sources.cache_dir(NAME)


DATASET = sources.Dataset(
    name=NAME,
    title=TITLE,
    should_hold=f"a folder {NAME} with {THE_FOUR_FILES}",
    put=f"Put the four files {THE_FOUR_FILES} in a folder {NAME} and set TINYNET_DATA_DIR to the folder that holds it",
    has_data=mnist_format.has_any,
    complete=mnist_format.complete,
)


def _most_compressed(key: str) -> int:
    """The most bytes the .gz file of ``key`` may take: what Fashion-MNIST's own content may."""
    return mnist_format.gzip_limit(max_bytes(key, verify=True))


def _check_published(path: str, key: str, _content_sha256: str):
    """The file at ``path`` is Fashion-MNIST's own ``.gz`` file of ``key``, by its MD5 and SHA-256."""
    name = FILES[key] + ".gz"
    if not path.endswith(".gz"):
        raise DatasetError(
            f"{path}: an uncompressed copy cannot be checked: Fashion-MNIST's published checksums are of {name} "
            "as downloaded. Put that file there, or pass verify=False to load this one unchecked"
        )
    sources.check_digests(path, CHECKSUMS[name], _most_compressed(key), path, TITLE, hint=sources.VERIFY_HINT)


def load_from(location: str, verify: bool = True) -> dict:
    """Load Fashion-MNIST from a directory of IDX files; any failure a DatasetError naming the file."""
    if not os.path.isdir(location):
        raise DatasetError(f"{location}: not a directory (Fashion-MNIST is four IDX files in a folder)")
    return sources.guarded(lambda: mnist_format.load_dir(location, verify, TITLE, _check_published), location, TITLE)


def load_data(path=None, verify: bool = True):
    """Fashion-MNIST as ``((x_train, y_train), (x_test, y_test))``, uint8, like Keras.

    Args:
        path: a directory with the four IDX files; see the module docstring for where
            tinynet looks when it is None.
        verify: check each ``.gz`` file's published MD5 and SHA-256 and Fashion-MNIST's
            exact shapes. Defaults to True.

    Raises:
        DatasetError: a file is corrupt, truncated, of the wrong kind or fails its
            checksum (the message names it), or no copy could be found or fetched.
    """
    return sources.load_data(DATASET, path, lambda where: load_from(where, verify), download)


def download(directory=None, mirrors=None, timeout: float = 30.0, verbose: bool = True, checksums=None):
    """Fetch the four ``.gz`` files into ``directory`` (the cache by default), each checked
    by its MD5 and SHA-256 before it is written (atomically); files already there that pass
    are kept. ``checksums`` maps file names to ``{"md5": ..., "sha256": ...}`` (Fashion-MNIST's
    by default)."""
    checksums = CHECKSUMS if checksums is None else checksums
    most = {stem + ".gz": _most_compressed(key) for key, stem in FILES.items()}

    def check(name: str, source, label: str):
        sources.check_digests(source, checksums[name], most[name], label, TITLE)

    files = {name: most[name] for name in checksums}
    mirrors = list(mirrors) if mirrors is not None else MIRRORS
    sources.download(directory or cache_dir(), files, mirrors, check, timeout, verbose)
