"""CIFAR-10, loaded the way ``keras.datasets.cifar10.load_data()`` returns it.

``load_data()`` returns ``((x_train, y_train), (x_test, y_test))``: uint8 arrays of
shapes (50000, 32, 32, 3), (50000, 1), (10000, 32, 32, 3), (10000, 1). Images are
channels last, as Keras's default: ``x[i, row, column]`` is a pixel's red, green and
blue. Labels are 0-9, the classes of :data:`CLASS_NAMES`.

tinynet reads CIFAR-10's *binary version*, ``cifar-10-binary.tar.gz`` (the one "for C
programs"): six files of fixed-size records, each a label byte and then 3072 pixel
bytes, the 1024 red ones, then the green, then the blue, each 32x32 in row-major order.
(Keras reads the Python version, whose batches are pickles, and unpickling a file runs
whatever code it holds.) ``data_batch_1.bin`` to ``data_batch_5.bin`` are the training
set, ``test_batch.bin`` the test set, 10000 records each.

Where it looks, in order (:mod:`tinynet.datasets.sources`): ``path`` when given, else
``$TINYNET_DATA_DIR/cifar10/`` when that variable is set, else the user cache
``$XDG_CACHE_HOME/tinynet/cifar10`` (or ``~/.cache/tinynet/cifar10``), else a download of the
archive (162 MB) into the cache. A folder may hold the archive, the folder
``cifar-10-batches-bin`` it unpacks to, or the six ``.bin`` files; ``path`` may also be the
archive itself.

Checks. CIFAR-10's page publishes the archive's MD5, TensorFlow Datasets its SHA-256 and
size (:data:`CHECKSUMS`); with ``verify=True`` (the default) the archive must have all three
before it is opened, and each of its ``.bin`` files CIFAR-10's 10000 records. Unpacked
``.bin`` files have no published checksum: with ``verify=True`` they are refused, saying
so; pass ``verify=False`` to load them, or other data in this format (up to
:data:`MAX_RECORDS` records a file).

The archive is read as a stream with :mod:`tarfile` and never unpacked to disk: only the
members the binary version holds are accepted, by their exact names (so no name can point
outside it), only as regular files, each size checked on its header before its data is
read, and never more content in all than those members can hold.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib

import numpy as np

from . import sources
from .idx import CHUNK, GZIP_MAGIC, DatasetError, open_data_file

ARCHIVE = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"  # what the archive unpacks to
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
BATCH_FILES = TRAIN_FILES + TEST_FILES
EXTRA_FILES = ("batches.meta.txt", "readme.html")  # in the archive too; never read
RECORD_BYTES = 1 + 3 * 32 * 32  # a label byte, then 1024 red, 1024 green and 1024 blue pixel bytes
RECORDS = 10000  # in each of CIFAR-10's files
MAX_RECORDS = 8 * RECORDS  # the most one file may hold with verify=False
MAX_EXTRA_BYTES = 1 << 16  # batches.meta.txt and readme.html are a few dozen bytes
SHAPES = {"x_train": (50000, 32, 32, 3), "y_train": (50000, 1), "x_test": (10000, 32, 32, 3), "y_test": (10000, 1)}
# MD5: https://www.cs.toronto.edu/~kriz/cifar.html ("CIFAR-10 binary version (suitable for C programs)").
# SHA-256 and size: TensorFlow Datasets, tensorflow_datasets/url_checksums/cifar10.txt.
CHECKSUMS = {
    ARCHIVE: {
        "md5": "c32a1d4ab5d03f1284b67883e8d87530",
        "sha256": "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    }
}
ARCHIVE_BYTES = 170052171
MIRRORS = ["https://www.cs.toronto.edu/~kriz/"]
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TITLE = "CIFAR-10"
NAME = "cifar10"
MAX_READ = 4 * CHUNK  # far more than tarfile reads at once for a member, far less than a crafted header may ask
TAR_BLOCK = 512  # a member costs its size, a header block and less than a block of padding


def cache_dir() -> str:
    """``$XDG_CACHE_HOME/tinynet/cifar10``, or ``~/.cache/tinynet/cifar10``."""
    return sources.cache_dir(NAME)


def _bin_folder(directory: str):
    """Where ``directory`` holds the ``.bin`` files: in the folder the archive unpacks to, or itself; or None."""
    for folder in (os.path.join(directory, FOLDER), directory):
        if any(os.path.exists(os.path.join(folder, name)) for name in BATCH_FILES):
            return folder
    return None


def _has_data(directory: str) -> bool:
    return os.path.exists(os.path.join(directory, ARCHIVE)) or _bin_folder(directory) is not None


def _complete(directory: str) -> bool:
    if os.path.exists(os.path.join(directory, ARCHIVE)):
        return True
    folder = _bin_folder(directory)
    return folder is not None and all(os.path.exists(os.path.join(folder, name)) for name in BATCH_FILES)


DATASET = sources.Dataset(
    name=NAME,
    title=TITLE,
    should_hold=f"a folder {NAME} with {ARCHIVE}, or with the folder {FOLDER} it unpacks to",
    put=f"Put {ARCHIVE} in a folder {NAME} and set TINYNET_DATA_DIR to the folder that holds it",
    has_data=_has_data,
    complete=_complete,
)


# -------------------------------------------------------------------- one file of records


def _most_batch_bytes(verify: bool) -> int:
    return (RECORDS if verify else MAX_RECORDS) * RECORD_BYTES


def _check_batch_size(source: str, size: int, verify: bool):
    """A batch file of ``size`` bytes is CIFAR-10's own (``verify``), or whole records, not too many."""
    if verify and size != RECORDS * RECORD_BYTES:
        raise DatasetError(
            f"{source}: {size} bytes, expected CIFAR-10's {RECORDS * RECORD_BYTES} ({RECORDS} records of "
            f"{RECORD_BYTES} bytes; for other data in its format pass verify=False)"
        )
    if size == 0 or size % RECORD_BYTES:
        raise DatasetError(
            f"{source}: {size} bytes, not a whole number of {RECORD_BYTES}-byte records (a label byte and 3072 pixels)"
        )
    if size > _most_batch_bytes(verify):
        raise DatasetError(
            f"{source}: refused before reading: {size // RECORD_BYTES} records, more than the {MAX_RECORDS} "
            "verify=False reads from one file"
        )


def _parse_batch(data: bytearray, source: str):
    """``(images, labels)`` of a batch file's records: (N, 32, 32, 3) channels last, and (N,)."""
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0]
    if labels.max() > 9:
        first = int(np.argmax(labels > 9))
        raise DatasetError(f"{source}: labels must be 0-9, found {labels[first]} in record {first}")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # stored channel by channel
    return images, labels


def _arrays(batches: dict) -> dict:
    """Keras's four arrays from ``{file name: (images, labels)}``, each C-contiguous."""
    arrays = {}
    for split, names in (("train", TRAIN_FILES), ("test", TEST_FILES)):
        images = [batches[name][0] for name in names]
        x = np.empty((sum(len(a) for a in images), 32, 32, 3), dtype=np.uint8)  # (a view's layout would carry over)
        arrays[f"x_{split}"] = np.concatenate(images, out=x)
        arrays[f"y_{split}"] = np.concatenate([batches[name][1] for name in names]).reshape(-1, 1)
    return arrays


# -------------------------------------------------------------------- a folder of .bin files


def _load_folder(directory: str, verify: bool) -> dict:
    folder = _bin_folder(directory) or directory
    if verify:
        raise DatasetError(
            f"{folder}: unpacked .bin files cannot be checked: CIFAR-10's published checksums are of {ARCHIVE}. "
            "Put the archive there, or pass verify=False to load these files unchecked"
        )
    batches = {}
    for name in BATCH_FILES:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            raise DatasetError(f"{folder}: {name} is missing (CIFAR-10's binary version has {', '.join(BATCH_FILES)})")
        with open_data_file(path) as f:  # a FIFO or a device refused before reading
            size = os.fstat(f.fileno()).st_size
            _check_batch_size(path, size, verify)
            batches[name] = _parse_batch(sources.read_exactly(f, size, path, "size on disk"), path)
    return batches


# -------------------------------------------------------------------- the archive


def _archive_limit(verify: bool) -> int:
    """The most tar content an archive may hold: its six batch files at their largest, each with its
    header and padding, and a MiB for the folder, the two small files and the end of the archive."""
    return len(BATCH_FILES) * (_most_batch_bytes(verify) + 2 * TAR_BLOCK) + (1 << 20)


class _Bounded:
    """The archive's tar content, as :mod:`tarfile` reads it, refused (DatasetError) past ``most``
    bytes and in any one read of more than MAX_READ: tarfile reads a header's extension (a pax
    header, a GNU long name) whole into memory, whatever size the archive declares for it."""

    def __init__(self, stream, most: int, source: str):
        self.stream, self.most, self.source = stream, most, source

    def read(self, size=-1):
        if size is None or not 0 <= size <= MAX_READ:
            raise DatasetError(f"{self.source}: refused: a tar header asks to read {size} bytes at once")
        data = self.stream.read(size)
        if self.stream.tell() > self.most:
            raise DatasetError(f"{self.source}: refused: more than the {self.most} bytes CIFAR-10's files can take")
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET):
        if whence != os.SEEK_SET or offset > self.most:  # (tarfile only ever seeks forward, to a member)
            raise DatasetError(f"{self.source}: refused: a tar header points {offset} bytes in")
        return self.stream.seek(offset)

    def tell(self) -> int:
        return self.stream.tell()


def _load_archive(path: str, verify: bool) -> dict:
    with open_data_file(path) as f:  # a FIFO or a device refused before reading
        if verify:  # all of it checked before tarfile reads a byte
            size = os.fstat(f.fileno()).st_size
            if size != ARCHIVE_BYTES:
                raise DatasetError(
                    f"{path}: {size} bytes, expected the {ARCHIVE_BYTES} of CIFAR-10's {ARCHIVE} "
                    "(a partial download? for other data in its format pass verify=False)"
                )
            sources.check_digests(f, CHECKSUMS[ARCHIVE], ARCHIVE_BYTES, path, TITLE, hint=sources.VERIFY_HINT)
            f.seek(0)
        return _read_archive(f, path, verify)


def _read_archive(f, source: str, verify: bool) -> dict:
    """``{file name: (images, labels)}`` of each batch file in the tar (gzip-compressed or not) ``f``."""
    compressed = f.read(2) == GZIP_MAGIC
    f.seek(0)
    content = _Bounded(gzip.GzipFile(fileobj=f, mode="rb") if compressed else f, _archive_limit(verify), source)
    batches, seen = {}, set()
    try:
        with tarfile.open(fileobj=content, mode="r:") as tar:
            for member in tar:
                name = _expected(member, source, verify, seen)
                if name in BATCH_FILES:
                    where = f"{source}: {member.name}"
                    with tar.extractfile(member) as m:
                        batches[name] = _parse_batch(
                            sources.read_exactly(m, member.size, where, "tar header's size"), where
                        )
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"{source}: not a readable tar archive ({type(e).__name__}: {e})") from None
    missing = [name for name in BATCH_FILES if name not in batches]
    if missing:
        raise DatasetError(f"{source}: {FOLDER}/{missing[0]} is missing from the archive ({len(missing)} of 6 missing)")
    return batches


def _expected(member: tarfile.TarInfo, source: str, verify: bool, seen: set):
    """The name in FOLDER of a member CIFAR-10's binary archive holds (None for the folder
    itself); anything else is refused, on its header, before its data is read."""
    path = member.name.removeprefix("./")
    if path == FOLDER and member.isdir():
        return None
    folder, _, name = path.partition("/")
    if folder != FOLDER or name not in BATCH_FILES + EXTRA_FILES:
        raise DatasetError(
            f"{source}: refused: unexpected member {member.name!r} (CIFAR-10's binary archive holds only "
            f"{FOLDER}/ with {', '.join(BATCH_FILES + EXTRA_FILES)}); nothing was unpacked"
        )
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or member.sparse is not None:
        raise DatasetError(f"{source}: refused: {member.name} is {_kind(member)}, not a regular file")
    if path in seen:
        raise DatasetError(f"{source}: refused: {member.name} is in the archive twice")
    seen.add(path)
    if name in EXTRA_FILES and member.size > MAX_EXTRA_BYTES:
        raise DatasetError(
            f"{source}: refused before reading: {member.name} declares {member.size} bytes, more than "
            f"the {MAX_EXTRA_BYTES} such a file may have"
        )
    if name in BATCH_FILES:
        _check_batch_size(f"{source}: {member.name}", member.size, verify)
    return name


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"a symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"a hard link (to {member.linkname!r})"
    if member.isdir():
        return "a directory"
    return "a sparse file" if member.issparse() else "a device or a FIFO"


# -------------------------------------------------------------------- the public API


def load_from(location: str, verify: bool = True) -> dict:
    """Load CIFAR-10 from its archive (a path, or a directory that holds it), or from a directory
    of ``.bin`` files (or holding ``cifar-10-batches-bin/``); any failure a DatasetError naming the file."""
    return sources.guarded(lambda: _arrays(_load_batches(location, verify)), location, TITLE)


def _load_batches(location: str, verify: bool) -> dict:
    if not os.path.isdir(location):
        return _load_archive(location, verify)
    archive = os.path.join(location, ARCHIVE)
    if os.path.exists(archive):  # checked by its published checksums: before unpacked files, which have none
        return _load_archive(archive, verify)
    return _load_folder(location, verify)


def load_data(path=None, verify: bool = True):
    """CIFAR-10 as ``((x_train, y_train), (x_test, y_test))``, uint8, like Keras.

    Args:
        path: the archive ``cifar-10-binary.tar.gz``, or a directory with it (or with its
            ``.bin`` files); see the module docstring for where tinynet looks when it is None.
        verify: check the archive's size, MD5 and SHA-256, and CIFAR-10's exact sizes.
            Defaults to True.

    Raises:
        DatasetError: a file is corrupt, truncated, of the wrong kind or fails its
            checksum (the message names it), or no copy could be found or fetched.
    """
    return sources.load_data(DATASET, path, lambda where: load_from(where, verify), download)


def download(directory=None, mirrors=None, timeout: float = 30.0, verbose: bool = True, checksums=None):
    """Fetch ``cifar-10-binary.tar.gz`` into ``directory`` (the cache by default), checked by its
    MD5 and SHA-256 before it is written (atomically); a copy already there that passes is kept.
    ``checksums`` maps the file name to ``{"md5": ..., "sha256": ...}`` (CIFAR-10's by default)."""
    checksums = CHECKSUMS if checksums is None else checksums
    most = ARCHIVE_BYTES if checksums == CHECKSUMS else _archive_limit(verify=False)

    def check(name: str, source, label: str):
        sources.check_digests(source, checksums[name], most, label, TITLE)

    mirrors = list(mirrors) if mirrors is not None else MIRRORS
    sources.download(directory or cache_dir(), {name: most for name in checksums}, mirrors, check, timeout, verbose)
