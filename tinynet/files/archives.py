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

import io
import math
import os
import zipfile

import numpy as np

from .fileio import open_regular

CHUNK = 1 << 20


class ArchiveRefused(ValueError):
    """An entry of an archive is larger than allowed, or not what it should be."""


MAX_HEADER = 1 << 16  # bytes of an .npy header: NumPy's own ones are a few hundred


def open_zip(path) -> zipfile.ZipFile:
    """The zip archive at ``path``, opened only if it is a regular file (no FIFO can hang it),
    each entry's stored size checked against the file's real length: the index can claim any
    size, and a loader that trusts it would take a 2 KB file for gigabytes of weights."""
    f = open_regular(path)
    try:
        z = zipfile.ZipFile(f)
        length = os.fstat(f.fileno()).st_size
        for info in z.infolist():
            if info.header_offset + info.compress_size > length:
                z.close()
                raise ArchiveRefused(
                    f"the entry {info.filename} claims {info.compress_size} stored bytes at offset "
                    f"{info.header_offset}, past the end of the {length}-byte file"
                )
        return z
    except BaseException:
        f.close()
        raise


def read_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) from the ``.npy`` header at the start of the stream ``f``.
    The header's length is read and refused past :data:`MAX_HEADER` before the header itself
    (NumPy reads a declared 4 GiB header whole before its own check). A stream that is not
    an .npy at all raises NumPy's ValueError."""
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise ArchiveRefused(f".npy format version {version}, expected 1.0 or 2.0")
    size_field = f.read(2 if version == (1, 0) else 4)
    if len(size_field) != (2 if version == (1, 0) else 4):
        raise ArchiveRefused(".npy header cut short")
    length = int.from_bytes(size_field, "little")
    if length > MAX_HEADER:
        raise ArchiveRefused(f".npy header of {length} bytes; at most {MAX_HEADER} are read")
    header = f.read(length)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return reader(io.BytesIO(size_field + header))


MAX_RATIO = 50  # how many times its stored size an entry may expand to (float weights hardly compress)
RATIO_FREE = 64 << 20  # bytes any entry may expand to, whatever its stored size


def read_entry(z: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """The bytes of entry ``name``, refused once more than ``limit`` come out."""
    return read_entry_into(z, name, limit).getvalue()


def read_entry_into(z: zipfile.ZipFile, name: str, limit: int) -> io.BytesIO:
    """Entry ``name`` decompressed into a file in memory, refused once it passes ``limit``
    bytes, or :data:`MAX_RATIO` times what it stores past the first :data:`RATIO_FREE`
    (a limit the file's own description cannot raise)."""
    info = z.getinfo(name)
    limit = min(limit, RATIO_FREE + MAX_RATIO * info.compress_size)
    if info.file_size > limit:
        raise ArchiveRefused(f"the entry {name} claims {info.file_size} bytes; at most {limit} are accepted")
    out = io.BytesIO()
    with z.open(info) as f:
        while piece := f.read(min(CHUNK, limit + 1 - out.tell())):
            out.write(piece)
            if out.tell() > limit:  # the header lied: a deflated stream that goes on
                raise ArchiveRefused(f"the entry {name} expands past {limit} bytes; refused")
    out.seek(0)
    return out


def npy_header(z: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of the ``.npy`` entry ``name``, from its header alone. Object dtypes
    (which only pickle can read) and headers that are not NumPy's are refused."""
    with z.open(name) as f:
        try:
            shape, fortran, dtype = read_header(f)
        except ArchiveRefused as e:
            raise ArchiveRefused(f"the entry {name}: {e}") from None
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
