"""Crafted files that decompress to far more than their size: gzip'd IDX, .npz members, PNG.

Each is built in a few milliseconds however much it expands to: a megabyte of zeros
deflated once, with a full flush (which ends the block byte-aligned and forgets the
dictionary), gives a block that can be repeated as many times as wanted. What would
take long to compute is left wrong: the gzip trailer's CRC-32 and a zip member's
CRC-32 are zero (a loader refuses these files long before it reaches them, as it
must; one that reads everything fails there, after the damage is done). The PNG is
valid throughout (its zlib Adler-32 has a closed form for zeros).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

BLOCK = 1 << 20


def deflate_zeros(prefix: bytes, zeros: int) -> bytes:
    """Raw deflate of ``prefix`` followed by ``zeros`` zero bytes."""
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [head.compress(prefix) + head.flush(zlib.Z_FULL_FLUSH)]
    if zeros >= BLOCK:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = c.compress(bytes(BLOCK)) + c.flush(zlib.Z_FULL_FLUSH)
        assert block == c.compress(bytes(BLOCK)) + c.flush(zlib.Z_FULL_FLUSH)  # the block repeats
        out.append(block * (zeros // BLOCK))
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    out.append(tail.compress(bytes(zeros % BLOCK)) + tail.flush())
    return b"".join(out)


def gzip_zeros(prefix: bytes, zeros: int) -> bytes:
    """A gzip file of ``prefix`` + ``zeros`` zero bytes (CRC-32 left 0)."""
    header = b"\x1f\x8b\x08\x00" + b"\x00" * 4 + b"\x00\xff"
    return header + deflate_zeros(prefix, zeros) + struct.pack("<II", 0, (len(prefix) + zeros) & 0xFFFFFFFF)


def idx_header(dims, code: int = 0x08) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def npy_header(shape, dtype="|u1") -> bytes:
    """A version 1.0 .npy header (magic, length, the padded dict) for ``shape``."""
    text = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    text += " " * (-(len(text) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def npz(members: dict) -> bytes:
    """A zip of deflated members; each value is ``bytes`` (stored as is) or ``(prefix, zeros)``
    (``prefix`` followed by that many zero bytes, CRC-32 left 0)."""
    local, central = [], []
    offset = 0
    for name, content in members.items():
        if isinstance(content, bytes):
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            data, crc, size = c.compress(content) + c.flush(), zlib.crc32(content), len(content)
        else:
            prefix, zeros = content
            data, crc, size = deflate_zeros(prefix, zeros), 0, len(prefix) + zeros
        raw = name.encode()
        fields = struct.pack("<HHHHHIIIHH", 20, 0, 8, 0, 0x21, crc, len(data), size, len(raw), 0)
        local.append(b"PK\x03\x04" + fields + raw + data)
        central.append(b"PK\x01\x02" + struct.pack("<H", 20) + fields + struct.pack("<HHHII", 0, 0, 0, 0, offset) + raw)
        offset += len(local[-1])
    directory = b"".join(central)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, len(central), len(central), len(directory), offset, 0)
    return b"".join(local) + directory + end


def npy_bytes(array) -> bytes:
    array = np.ascontiguousarray(array)
    return npy_header(array.shape, array.dtype.str) + array.tobytes()


def png_zeros(width: int, height: int) -> bytes:
    """A valid 8-bit grey PNG of ``width`` x ``height`` black pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    n = (width + 1) * height  # each row: filter type 0, then the pixels
    adler = ((n % 65521) << 16) | 1  # Adler-32 of n zero bytes
    stream = b"\x78\xda" + deflate_zeros(b"", n) + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")
