"""Reading zip archives (tinynet's ``.npz``, Keras's ``.keras``) with every size bounded
before the bytes behind it are read.

A zip entry can claim any size and a deflated one can expand a thousandfold (a "zip
bomb"), and an ``.npy`` member's header can declare any shape. So nothing here trusts a
size it has not checked: an entry is read in pieces and refused as soon as it passes the
limit its caller gives, and an array's header is read and checked (dtype, shape) before
its data, which then cannot be larger than the shape the caller accepted.

Every refusal is an :class:`ArchiveRefused` naming the entry; the loaders add the file.
"""

from __future__ import annotations

import math
import zipfile

import numpy as np

from .fileio import open_regular

CHUNK = 1 << 20


class ArchiveRefused(ValueError):
    """An entry of an archive is larger than allowed, or not what it should be."""


def open_zip(path) -> zipfile.ZipFile:
    """The zip archive at ``path``, opened only if it is a regular file (no FIFO can hang it)."""
    f = open_regular(path)
    try:
        return zipfile.ZipFile(f)
    except BaseException:
        f.close()
        raise


def read_entry(z: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """The bytes of entry ``name``, refused once more than ``limit`` come out."""
    info = z.getinfo(name)
    if info.file_size > limit:
        raise ArchiveRefused(f"the entry {name} claims {info.file_size} bytes; at most {limit} are accepted")
    pieces, total = [], 0
    with z.open(info) as f:
        while piece := f.read(min(CHUNK, limit + 1 - total)):
            pieces.append(piece)
            total += len(piece)
            if total > limit:  # the header lied: a deflated stream that goes on
                raise ArchiveRefused(f"the entry {name} expands past {limit} bytes; refused")
    return b"".join(pieces)


def npy_header(z: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of the ``.npy`` entry ``name``, from its header alone. Object dtypes
    (which only pickle can read) and headers that are not NumPy's are refused."""
    with z.open(name) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ArchiveRefused(f"the entry {name} is an .npy of version {version}; versions 1.0 and 2.0 are read")
        except ArchiveRefused:
            raise
        except (ValueError, EOFError, SyntaxError) as e:
            raise ArchiveRefused(f"the entry {name} has no valid .npy header ({e})") from e
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
        raise ArchiveRefused(f"the entry {name} holds {dtype} values; only numbers are read (never pickled objects)")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ArchiveRefused(f"the entry {name} has an impossible shape {shape}")
    return tuple(shape), dtype


def backed_items(z: zipfile.ZipFile, name: str, shape, dtype) -> int:
    """How many of the items an entry declares are backed by bytes the archive really
    holds: its compressed size bounds what a legitimate (uncompressed) array can hold."""
    return min(math.prod(shape), z.getinfo(name).compress_size // max(dtype.itemsize, 1))


def read_npy(z: zipfile.ZipFile, name: str, limit_items: int) -> np.ndarray:
    """The array in ``.npy`` entry ``name``, its header checked first: at most ``limit_items``
    items, never an object array."""
    shape, dtype = npy_header(z, name)
    if math.prod(shape) > limit_items:
        raise ArchiveRefused(f"the entry {name} declares shape {shape}; at most {limit_items} items are accepted")
    with z.open(name) as f:
        try:
            array = np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, EOFError, OSError) as e:
            raise ArchiveRefused(f"the entry {name} is cut short or corrupt ({e})") from e
    if array.shape != shape:
        raise ArchiveRefused(f"the entry {name} changed shape while read ({shape} -> {array.shape})")
    return array
