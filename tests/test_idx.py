"""The IDX parser on small files the tests write: every kind of damage is a clear
error naming the file."""

import gzip

import numpy as np
import pytest

from tinynet.datasets.idx import DatasetError, read_idx, to_idx_bytes, write_idx


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
