"""The IDX parser on small files the tests write: every kind of damage is a clear
error naming the file."""

import gzip
import hashlib
import math
import os

import bombs
import numpy as np
import pytest
from limits import UNAVAILABLE, run_limited

from tinynet.datasets.idx import CHUNK, DatasetError, parse_idx, read_idx, read_idx_with_sha256, to_idx_bytes, write_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_round_trip(tmp_path, dtype, name):
    a = (np.arange(60) - 7).astype(dtype).reshape(3, 4, 5)
    write_idx(tmp_path / name, a)
    b = read_idx(tmp_path / name)
    assert b.dtype == dtype and b.shape == (3, 4, 5)
    np.testing.assert_array_equal(a, b)
    assert list(tmp_path.iterdir()) == [tmp_path / name]  # no temporary files left


def test_header_layout_is_big_endian_as_specified():
    data = to_idx_bytes(np.array([[1, 2, 3]], dtype=np.int16))
    assert data == bytes([0, 0, 0x0B, 2, 0, 0, 0, 1, 0, 0, 0, 3, 0, 1, 0, 2, 0, 3])


def damaged(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


GOOD = to_idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize(
    "data,message",
    [
        (b"\x01\x00" + GOOD[2:], r"not an IDX file: magic bytes are 0x01 0x00, expected 0x00 0x00"),
        (GOOD[:2] + b"\x07" + GOOD[3:], r"unknown IDX dtype code 0x07"),
        (GOOD[:-5], r"truncated: dimensions \(2, 3, 4\) of uint8 need 24 data bytes, found 19"),
        (GOOD + b"\x00" * 3, r"3 unexpected bytes after the data"),
        (GOOD[:3] + b"\x00", r"0 dimensions"),
        (GOOD[:9], r"truncated header: 3 dimensions need 16 bytes, file has 9"),
        (b"\x00\x00", r"shorter than the 4-byte header"),
    ],
)
def test_damaged_files(tmp_path, data, message):
    path = damaged(tmp_path, "bad-idx3-ubyte", data)
    with pytest.raises(DatasetError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_dimensions_that_disagree_with_the_size(tmp_path):
    header = bytes([0, 0, 0x08, 2]) + np.array([5, 5], dtype=">u4").tobytes()
    path = damaged(tmp_path, "x.idx", header + bytes(20))
    with pytest.raises(DatasetError, match=r"dimensions \(5, 5\) of uint8 need 25 data bytes, found 20"):
        read_idx(path)


def test_gzip_cut_short(tmp_path):
    compressed = gzip.compress(to_idx_bytes(np.random.default_rng(0).integers(0, 255, (50, 28, 28), dtype=np.uint8)))
    path = damaged(tmp_path, "train-images-idx3-ubyte.gz", compressed[: len(compressed) // 2])
    with pytest.raises(DatasetError, match="gzip stream is cut short") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_corrupt_gzip(tmp_path):
    compressed = bytearray(gzip.compress(GOOD))
    compressed[-6] ^= 0xFF  # break the CRC / length trailer
    path = damaged(tmp_path, "labels.gz", bytes(compressed))
    with pytest.raises(DatasetError, match="corrupt gzip data") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        read_idx(tmp_path / "nope.gz")


def test_unsupported_dtype_is_refused_on_write(tmp_path):
    with pytest.raises(ValueError, match="IDX cannot store dtype int64"):
        write_idx(tmp_path / "a.idx", np.zeros(3, dtype=np.int64))


# -------------------------------------------------------------------- reading in chunks, with bounds


@pytest.mark.parametrize("name", ["big.idx", "big.idx.gz"])
def test_files_larger_than_a_chunk_round_trip(tmp_path, name):
    a = np.random.default_rng(0).integers(-(2**15), 2**15, (3 * CHUNK // 2 // 10 + 7, 10), dtype=np.int16)
    write_idx(tmp_path / name, a)
    np.testing.assert_array_equal(read_idx(tmp_path / name), a)


def test_gzip_members_one_after_another_and_zero_padding_are_read_as_gzip_does(tmp_path):
    content = to_idx_bytes(np.arange(1000, dtype=np.int32).reshape(10, 100))
    data = gzip.compress(content[:2]) + gzip.compress(content[2:700]) + gzip.compress(content[700:]) + bytes(5)
    assert gzip.decompress(data) == content  # what gzip itself makes of these bytes
    path = damaged(tmp_path, "members.gz", data)
    np.testing.assert_array_equal(read_idx(path), np.arange(1000).reshape(10, 100))  # the header split in two


def test_bytes_after_the_gzip_stream_that_are_no_gzip_member(tmp_path):
    path = damaged(tmp_path, "tail.gz", gzip.compress(GOOD) + b"junk")
    with pytest.raises(DatasetError, match="tail.gz: corrupt gzip data: bytes after the end of the gzip stream"):
        read_idx(path)


def test_dimensions_past_2_to_the_63_are_refused_not_wrapped(tmp_path):
    header = bombs.idx_header((65536, 65536, 65536, 65536))  # 2**64 bytes: np.prod in int64 made it 0
    path = damaged(tmp_path, "huge-idx4-ubyte", header)
    with pytest.raises(
        DatasetError,
        match=r"huge-idx4-ubyte: refused before reading its data: the IDX header declares dimensions "
        r"\(65536, 65536, 65536, 65536\) of uint8, 18446744073709551636 bytes with the header, "
        r"more than the 1073741824 allowed",
    ):
        read_idx(path)
    with pytest.raises(DatasetError, match=r"need 18446744073709551616 data bytes, found 0"):
        parse_idx(header, "huge")


def test_a_file_larger_than_max_bytes_is_refused_before_its_data(tmp_path):
    path = damaged(tmp_path, "a-idx3-ubyte", GOOD)  # 16 bytes of header and 24 of data
    assert read_idx(path, max_bytes=40).shape == (2, 3, 4)
    with pytest.raises(DatasetError, match=r"40 bytes with the header, more than the 39 allowed \(read_idx's max_"):
        read_idx(path, max_bytes=39)


def test_the_sha256_is_that_of_the_decompressed_content(tmp_path):
    write_idx(tmp_path / "a.gz", np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    array, digest = read_idx_with_sha256(tmp_path / "a.gz")
    assert digest == hashlib.sha256(GOOD).hexdigest() and array.shape == (2, 3, 4)


def test_a_fifo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "train-images-idx3-ubyte.gz"
    os.mkfifo(fifo)  # nobody writes: opening and reading it would wait forever
    result = run_limited(f"from tinynet.datasets import read_idx; read_idx({str(fifo)!r})", 256 << 20, timeout=60)
    assert not result.timed_out, "read_idx waited on a FIFO"
    assert f"DatasetError: {fifo}: a FIFO, not a regular file; refused before reading" in result.stderr


# A 1 KB gzip file that expands to 1 GiB: with everything decompressed first (as gzip.decompress
# did), the child runs out of its 256 MiB; read in chunks, it is refused a megabyte past the data.
BOMB_LIMIT = 256 << 20


@pytest.mark.skipif(bool(UNAVAILABLE), reason=UNAVAILABLE or "")
@pytest.mark.parametrize("dims", [(100, 28, 28), (60000, 28, 28)])
def test_a_gzip_bomb_is_refused_a_chunk_past_its_data(tmp_path, dims):
    path = damaged(tmp_path, "bomb-idx3-ubyte.gz", bombs.gzip_zeros(bombs.idx_header(dims), 1 << 30))
    result = run_limited(f"from tinynet.datasets import read_idx; read_idx({str(path)!r})", BOMB_LIMIT, timeout=60)
    figures = result.figures()
    print(f"gzip bomb declaring {dims}: {figures}")
    assert f"DatasetError: {path}: refused: more than {CHUNK} unexpected bytes after the data" in result.stderr, (
        result.stderr[-2000:]
    )
    legitimate = 16 + math.prod(dims)
    assert result.peak_rss_bytes - result.baseline_rss_bytes < 2 * legitimate + 32 * CHUNK, figures
