"""The IDX file format of MNIST, read and written with every field checked.

An IDX file is a header followed by the raw array, big-endian::

    bytes 0-1   0x00 0x00                 magic: always zero
    byte  2     dtype code                0x08 uint8, 0x09 int8, 0x0B int16,
                                          0x0C int32, 0x0D float32, 0x0E float64
    byte  3     ndim                      number of dimensions
    4 * ndim    dimension sizes           big-endian uint32 each
    the rest    prod(dims) items          big-endian, C order

Files may be gzip-compressed (recognised by gzip's own magic bytes, whatever the
file is called). Any disagreement (a wrong magic, an unknown dtype code, a size
that does not match the dimensions, a gzip stream cut short) raises
:class:`DatasetError` naming the file and the problem; nothing half-read is
returned.

A file is read, and decompressed, in chunks of a megabyte, never whole: the header
is checked as soon as its bytes arrive, a file whose dimensions declare more than
``max_bytes`` (1 GiB unless the caller says otherwise) is refused before its data is
read, and one whose content runs on past what its dimensions declare is refused
there, so a small gzip "bomb" that would expand to gigabytes costs a megabyte or
two of work. A file is opened only if it is a regular file
(:func:`tinynet.files.fileio.open_regular`): a FIFO or a device is refused, never waited on.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib

import numpy as np

from ..files.fileio import atomic_write, open_regular

DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CODES = {np.dtype(v).newbyteorder("="): k for k, v in DTYPES.items()}  # native dtype -> code
GZIP_MAGIC = b"\x1f\x8b"
MAX_BYTES = 1 << 30  # the most content (header and data) read_idx accepts unless told otherwise
CHUNK = 1 << 20  # read and decompress this much at a time


class DatasetError(ValueError):
    """A data file is missing, corrupt, truncated, of the wrong kind or fails its checksum."""


def read_idx(path, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) whose content is at most ``max_bytes``.

    The file is read and decompressed in chunks: its header is checked as soon as its
    bytes arrive, and the file is refused (:class:`DatasetError`) before its data is
    read if the dimensions declare more than ``max_bytes`` (header included), or as
    soon as the content runs past what they declare. Memory is the array's size and a
    chunk, whatever the file holds.
    """
    return read_idx_with_sha256(path, max_bytes)[0]


def read_idx_with_sha256(source, max_bytes: int = MAX_BYTES, name=None, why: str = ""):
    """``(array, sha256)``: :func:`read_idx`, and the SHA-256 (hex) of the file's
    decompressed content, hashed as it is read.

    ``source`` is a path or a binary file object (then ``name`` names it in errors);
    ``why`` is added to the message that refuses a file larger than ``max_bytes``.
    """
    why = why or " (read_idx's max_bytes; pass a larger one to read a larger file)"
    if not hasattr(source, "read"):
        name = os.fspath(source)
        with open_data_file(name) as f:
            return _read_stream(f, name, max_bytes, why)
    return _read_stream(source, name or "<stream>", max_bytes, why)


def open_data_file(name: str):
    """Open ``name`` for reading in binary, only if it is a regular file; any failure a
    :class:`DatasetError` naming the file (a FIFO or a device is refused before reading)."""
    try:
        return open_regular(name)
    except FileNotFoundError:
        raise DatasetError(f"{name}: no such file") from None
    except OSError as e:  # a FIFO, a device, a directory, no permission: refused before reading
        raise DatasetError(str(e) if name in str(e) else f"{name}: cannot read ({e})") from None


def _read_stream(f, name: str, max_bytes: int, why: str):
    hasher = hashlib.sha256()
    try:
        chunks = _hashed(_content(f, name), hasher)
        return _parse_chunks(chunks, name, max_bytes, why), hasher.hexdigest()
    except OSError as e:
        raise DatasetError(f"{name}: cannot read ({e})") from e


def _hashed(chunks, hasher):
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk


def _content(f, name: str):
    """The file's content in chunks of at most CHUNK bytes, decompressed when it is gzip."""
    first = f.read(CHUNK)
    if first[:2] != GZIP_MAGIC:
        while first:
            yield first
            first = f.read(CHUNK)
        return
    try:
        yield from _gunzip(f, first, name)
    except zlib.error as e:
        raise DatasetError(f"{name}: corrupt gzip data (zlib.error: {e})") from None


def _gunzip(f, data: bytes, name: str):
    """Decompress gzip members (one after another, as gzip allows) from ``data`` and then ``f``,
    never more than CHUNK bytes of output at a time."""
    while True:
        d, full = zlib.decompressobj(16 + zlib.MAX_WBITS), False
        while not d.eof:
            if not data and not full:  # (after a full chunk, zlib may hold more output: ask for it first)
                data = f.read(CHUNK)
                if not data:
                    raise DatasetError(f"{name}: the gzip stream is cut short (truncated download or copy?)")
            out = d.decompress(data, CHUNK)
            data, full = d.unconsumed_tail, len(out) == CHUNK
            if out:
                yield out
        data = d.unused_data.lstrip(b"\0")  # gzip allows zero padding after a member
        while len(data) < 2:
            more = f.read(CHUNK)
            if not more:
                if data:
                    break
                return
            data = (data + more).lstrip(b"\0")
        if data[:2] != GZIP_MAGIC:
            raise DatasetError(f"{name}: corrupt gzip data: bytes after the end of the gzip stream")


def _parse_chunks(chunks, name: str, max_bytes, why: str) -> np.ndarray:
    """Parse IDX content arriving in chunks: the header first, then exactly the data it declares
    (no more than ``max_bytes`` in all, unless it is None)."""
    chunks = iter(chunks)
    head = bytearray()
    for need in (4, None):  # the fixed 4 bytes, then the dimensions they announce
        need = need or 4 + 4 * head[3]
        while len(head) < need:
            chunk = next(chunks, None)
            if chunk is None:
                break
            head += chunk
        if len(head) < 4:
            break
    header, dims, dtype, expected = _header(bytes(head[:1024]), name, file_size=len(head))
    if max_bytes is not None and header + expected > max_bytes:
        raise DatasetError(
            f"{name}: refused before reading its data: the IDX header declares dimensions {dims} of "
            f"{dtype.name}, {header + expected} bytes with the header, more than the {max_bytes} allowed{why}"
        )
    data = bytearray(head[header:])  # grows as the data arrives: memory is what came, never what is declared
    del head
    for chunk in chunks:
        if len(data) + len(chunk) > expected:
            _refuse_surplus(name, dims, dtype, expected, len(data) + len(chunk) - expected, chunks)
        data += chunk
    if len(data) > expected:
        _refuse_surplus(name, dims, dtype, expected, len(data) - expected, chunks)
    if len(data) < expected:
        raise DatasetError(
            f"{name}: truncated: dimensions {dims} of {dtype.name} need {expected} data bytes, found {len(data)}"
        )
    array = np.frombuffer(data, dtype=dtype).reshape(dims)  # writable: a bytearray of its own
    if not dtype.isnative:
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array


def _refuse_surplus(name, dims, dtype, expected, surplus, chunks):
    """Count what comes after the data, but never more than CHUNK bytes of it: then refuse."""
    for chunk in chunks:
        surplus += len(chunk)
        if surplus > CHUNK:
            raise DatasetError(
                f"{name}: refused: more than {CHUNK} unexpected bytes after the data (not read further): "
                f"dimensions {dims} of {dtype.name} need {expected} data bytes (a decompression bomb, or not "
                "the file it is named after?)"
            )
    raise DatasetError(
        f"{name}: {surplus} unexpected bytes after the data: dimensions {dims} of "
        f"{dtype.name} need {expected} data bytes, found {expected + surplus}"
    )


def _header(data: bytes, name: str, file_size: int):
    """Check an IDX header at the start of ``data`` (``file_size`` bytes long in all): its
    length in bytes, the dimensions, the dtype and the number of data bytes they declare."""
    if len(data) < 4:
        raise DatasetError(f"{name}: not an IDX file: {len(data)} bytes, shorter than the 4-byte header")
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(
            f"{name}: not an IDX file: magic bytes are {data[0]:#04x} {data[1]:#04x}, expected 0x00 0x00"
        )
    code, ndim = data[2], data[3]
    if code not in DTYPES:
        raise DatasetError(
            f"{name}: unknown IDX dtype code {code:#04x}; known: " + ", ".join(f"{c:#04x}" for c in DTYPES)
        )
    if ndim == 0:
        raise DatasetError(f"{name}: IDX header says 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{name}: truncated header: {ndim} dimensions need {header} bytes, file has {file_size}")
    dims = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    dtype = np.dtype(DTYPES[code])
    return header, dims, dtype, math.prod(dims) * dtype.itemsize  # Python ints: no wrap-around past 2**63


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes (already in memory, not compressed) into a native-endian NumPy array."""
    return _parse_chunks([data], name, max_bytes=None, why="")


def to_idx_bytes(array) -> bytes:
    """Encode an array as IDX bytes."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use uint8, int8, int16, int32, float32 or float64")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX stores 1 to 255 dimensions, got {array.ndim}")
    code = CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()


def write_idx(path, array, compress=None):
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in .gz
    (or when ``compress`` says so), atomically."""
    path = os.fspath(path)
    data = to_idx_bytes(array)
    if compress if compress is not None else path.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with atomic_write(path) as f:
        f.write(data)
