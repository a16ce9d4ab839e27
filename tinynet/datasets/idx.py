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
"""

from __future__ import annotations

import gzip
import os

import numpy as np

from ..fileio import atomic_write

DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CODES = {np.dtype(v).newbyteorder("="): k for k, v in DTYPES.items()}  # native dtype -> code
GZIP_MAGIC = b"\x1f\x8b"


class DatasetError(ValueError):
    """A data file is missing, corrupt, truncated, of the wrong kind or fails its checksum."""


def read_bytes(path) -> bytes:
    """The file's content, decompressed when it is gzip; errors name the file."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e})") from e
    return maybe_decompress(raw, path)


def maybe_decompress(raw: bytes, name: str) -> bytes:
    """Decompress gzip bytes, pass anything else through; errors name ``name``."""
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DatasetError(f"{name}: the gzip stream is cut short (truncated download or copy?)") from None
    except Exception as e:  # zlib.error, BadGzipFile, struct.error, ...: whatever the bytes provoke
        raise DatasetError(f"{name}: corrupt gzip data ({type(e).__name__}: {e})") from e


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into a native-endian NumPy array."""
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
        raise DatasetError(f"{name}: truncated header: {ndim} dimensions need {header} bytes, file has {len(data)}")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(DTYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header
    if actual < expected:
        raise DatasetError(
            f"{name}: truncated: dimensions {dims} of {dtype.name} need {expected} data bytes, found {actual}"
        )
    if actual > expected:
        raise DatasetError(
            f"{name}: {actual - expected} unexpected bytes after the data: dimensions {dims} of "
            f"{dtype.name} need {expected} data bytes, found {actual}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not)."""
    return parse_idx(read_bytes(path), os.fspath(path))


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
