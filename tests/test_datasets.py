"""tinynet.datasets.fashion_mnist and .cifar10, and the rules every data set shares
(tinynet.datasets.sources): where they look, what they refuse, and downloads from a fake
urlopen (nothing here touches the network). All data is small and made by the tests."""

import gzip
import hashlib
import io
import os
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest
from limits import UNAVAILABLE, run_limited
from synthetic import write_mnist_dir

from tinynet.datasets import DatasetError, cifar10, fashion_mnist, mnist
from tinynet.datasets.mnist_format import FILES

FASHION_FILES = [stem + ".gz" for stem in FILES.values()]


class FakeResponse:
    def __init__(self, body: bytes):
        self.body, self.headers = io.BytesIO(body), {"Content-Length": str(len(body))}

    def read(self, n=-1):
        return self.body.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def web(monkeypatch):
    """A fake internet: urlopen serves ``routes`` ({url: bytes}), any other URL fails as if offline;
    ``asked`` lists every URL asked for."""
    routes, asked = {}, []

    def urlopen(url, timeout=None):
        asked.append(url)
        if url not in routes:
            raise urllib.error.URLError("offline (a test)")
        return FakeResponse(routes[url])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return routes, asked


@pytest.fixture
def isolated(monkeypatch, tmp_path, web):
    """No TINYNET_DATA_DIR, an empty cache under tmp_path, and the fake internet."""
    monkeypatch.delenv("TINYNET_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return web


def digests(data: bytes) -> dict:
    return {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}


def assert_same(loaded, written):
    for got, want in zip((*loaded[0], *loaded[1]), (*written[0], *written[1])):
        assert got.dtype == np.uint8 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


# -------------------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_loads_a_directory_of_idx_files_exactly(tmp_path):
    written = write_mnist_dir(tmp_path, n_train=20, n_test=7)
    loaded = fashion_mnist.load_data(tmp_path, verify=False)
    assert [a.shape for a in (*loaded[0], *loaded[1])] == [(20, 28, 28), (20,), (7, 28, 28), (7,)]
    assert_same(loaded, written)
    assert len(fashion_mnist.CLASS_NAMES) == 10 and fashion_mnist.CLASS_NAMES[9] == "Ankle boot"


def test_fashion_mnist_checks_the_published_md5_of_each_gz_file(tmp_path):
    write_mnist_dir(tmp_path, n_train=20, n_test=7)
    with pytest.raises(
        DatasetError,
        match=r"train-images-idx3-ubyte.gz: MD5 of the file is [0-9a-f]{32}, expected Fashion-MNIST's "
        r"8d4fb7e6c68d591d4c3dfef9ec88bf0d .*verify=False",
    ):
        fashion_mnist.load_data(tmp_path)


def test_fashion_mnist_with_matching_checksums_goes_on_to_check_its_shapes(tmp_path, monkeypatch):
    write_mnist_dir(tmp_path, n_train=20, n_test=7)
    own = {name: digests((tmp_path / name).read_bytes()) for name in FASHION_FILES}
    monkeypatch.setattr(fashion_mnist, "CHECKSUMS", own)
    with pytest.raises(DatasetError, match=r"x_train has shape \(20, 28, 28\), expected Fashion-MNIST's \(60000, 28"):
        fashion_mnist.load_data(tmp_path)
    own["t10k-labels-idx1-ubyte.gz"] = {**own["t10k-labels-idx1-ubyte.gz"], "sha256": "0" * 64}  # MD5 right
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.gz: SHA-256 of the file is [0-9a-f]{64}, expected"):
        fashion_mnist.load_data(tmp_path)


def test_an_uncompressed_fashion_mnist_file_cannot_be_verified_but_loads_unchecked(tmp_path):
    written = write_mnist_dir(tmp_path, n_train=5, n_test=3, compress=False)
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: an uncompressed copy cannot be checked"):
        fashion_mnist.load_data(tmp_path)
    assert_same(fashion_mnist.load_data(tmp_path, verify=False), written)


def test_fashion_mnist_refuses_what_mnist_refuses(tmp_path):
    write_mnist_dir(tmp_path, n_train=5, n_test=2)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.gz \(or t10k-labels-idx1-ubyte\) is missing"):
        fashion_mnist.load_data(tmp_path, verify=False)
    with pytest.raises(DatasetError, match="not a directory"):
        fashion_mnist.load_data(tmp_path / "train-images-idx3-ubyte.gz", verify=False)


# -------------------------------------------------------------------- TINYNET_DATA_DIR and the cache


def test_one_data_dir_serves_each_data_set_from_its_own_folder(tmp_path, isolated, monkeypatch):
    mnist_arrays = write_mnist_dir(tmp_path / "data" / "mnist", n_train=9, n_test=4, seed=1)
    fashion_arrays = write_mnist_dir(tmp_path / "data" / "fashion_mnist", n_train=6, n_test=3, seed=2)
    monkeypatch.setenv("TINYNET_DATA_DIR", str(tmp_path / "data"))
    assert_same(mnist.load_data(verify=False), mnist_arrays)
    assert_same(fashion_mnist.load_data(verify=False), fashion_arrays)
    _, asked = isolated
    assert asked == []  # nothing downloaded


def test_mnist_still_reads_its_files_straight_from_the_data_dir(tmp_path, isolated, monkeypatch):
    written = write_mnist_dir(tmp_path, n_train=8, n_test=3)  # what CI's shared/data/mnist looks like
    monkeypatch.setenv("TINYNET_DATA_DIR", str(tmp_path))
    assert_same(mnist.load_data(verify=False), written)
    with pytest.raises(DatasetError) as info:  # but those are not Fashion-MNIST's, whatever their names
        fashion_mnist.load_data(verify=False)
    assert f"TINYNET_DATA_DIR='{tmp_path}' holds no Fashion-MNIST files (it should hold a folder fashion_mnist " in str(
        info.value
    )


@pytest.mark.parametrize("module", [fashion_mnist, cifar10])
def test_a_data_dir_set_but_missing_is_an_error_not_a_download(tmp_path, isolated, monkeypatch, module):
    monkeypatch.setenv("TINYNET_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(DatasetError, match=f"TINYNET_DATA_DIR='{tmp_path / 'typo'}' is not a directory .*unset it"):
        module.load_data(verify=False)
    (tmp_path / "data" / module.NAME).mkdir(parents=True)  # its folder, empty
    monkeypatch.setenv("TINYNET_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DatasetError, match=f"holds no {module.TITLE} files .*or unset it to use the cache"):
        module.load_data(verify=False)
    _, asked = isolated
    assert asked == []


def test_the_cache_is_a_folder_of_each_data_set(tmp_path, isolated):
    assert fashion_mnist.cache_dir() == str(tmp_path / "cache" / "tinynet" / "fashion_mnist")
    assert cifar10.cache_dir() == str(tmp_path / "cache" / "tinynet" / "cifar10")
    written = write_mnist_dir(fashion_mnist.cache_dir(), n_train=4, n_test=2)
    assert_same(fashion_mnist.load_data(verify=False), written)
    write_cifar_folder(os.path.join(cifar10.cache_dir(), cifar10.FOLDER), [2, 1, 1, 1, 1, 3])
    assert cifar10.load_data(verify=False)[1][1].shape == (3, 1)


@pytest.mark.parametrize("module", [fashion_mnist, cifar10])
def test_offline_with_nothing_cached_says_what_to_do(isolated, module):
    with pytest.raises(DatasetError) as info:
        module.load_data()
    message = str(info.value)
    assert message.startswith(f"{module.TITLE} not found. Looked in TINYNET_DATA_DIR (not set) and the cache ")
    assert "the download failed: could not fetch " in message and module.MIRRORS[-1] in message
    assert f"in a folder {module.NAME} and set TINYNET_DATA_DIR to the folder that holds it" in message
    assert os.listdir(module.cache_dir()) == []  # nothing half-downloaded left


# -------------------------------------------------------------------- downloads (fake urlopen)


def test_fashion_mnist_downloads_into_the_cache_when_nothing_else_is_there(tmp_path, isolated, monkeypatch):
    routes, asked = isolated
    written = write_mnist_dir(tmp_path / "served", n_train=6, n_test=3)
    served = {name: (tmp_path / "served" / name).read_bytes() for name in FASHION_FILES}
    routes.update({"https://second.test/" + name: data for name, data in served.items()})
    monkeypatch.setattr(fashion_mnist, "MIRRORS", ["https://first.test/", "https://second.test/"])  # first is down
    monkeypatch.setattr(fashion_mnist, "CHECKSUMS", {name: digests(data) for name, data in served.items()})
    assert_same(fashion_mnist.load_data(verify=False), written)
    assert sorted(os.listdir(fashion_mnist.cache_dir())) == sorted(FASHION_FILES)  # no temporary files
    assert len(asked) == 8
    asked.clear()
    fashion_mnist.load_data(verify=False)  # the second time, from the cache
    assert asked == []


def test_a_download_with_the_wrong_checksum_is_never_written(tmp_path, web):
    routes, _ = web
    data = gzip.compress(b"not Fashion-MNIST")
    routes["https://mirror.test/train-labels-idx1-ubyte.gz"] = data
    expected = {"train-labels-idx1-ubyte.gz": fashion_mnist.CHECKSUMS["train-labels-idx1-ubyte.gz"]}
    with pytest.raises(
        DatasetError,
        match=r"could not fetch train-labels-idx1-ubyte.gz: https://mirror.test/train-labels-idx1-ubyte.gz: "
        r"MD5 of the file is [0-9a-f]{32}, expected Fashion-MNIST's 25c81989",
    ):
        fashion_mnist.download(tmp_path, mirrors=["https://mirror.test/"], verbose=False, checksums=expected)
    assert os.listdir(tmp_path) == []  # not even a temporary file


def test_a_download_larger_than_the_file_can_be_is_refused_unwritten(tmp_path, web, monkeypatch):
    routes, _ = web
    routes["https://mirror.test/cifar-10-binary.tar.gz"] = bytes(4096)
    monkeypatch.setattr(cifar10, "ARCHIVE_BYTES", 1000)  # CIFAR-10's own checksums: its own size is the bound
    with pytest.raises(DatasetError, match="the server announces 4096 bytes, more than the 1000 the file can take"):
        cifar10.download(tmp_path, mirrors=["https://mirror.test/"], verbose=False)
    assert os.listdir(tmp_path) == []


def test_cifar10_downloads_its_archive_into_the_cache(tmp_path, isolated, monkeypatch):
    routes, _ = isolated
    written = cifar_arrays([2, 1, 1, 1, 2, 3])
    archive = tar_bytes(cifar_members(written))
    routes["https://mirror.test/cifar-10-binary.tar.gz"] = archive
    monkeypatch.setattr(cifar10, "MIRRORS", ["https://mirror.test/"])
    monkeypatch.setattr(cifar10, "CHECKSUMS", {cifar10.ARCHIVE: digests(archive)})
    assert_same(cifar10.load_data(verify=False), keras_arrays(written))
    assert os.listdir(cifar10.cache_dir()) == [cifar10.ARCHIVE]
    assert (tmp_path / "cache" / "tinynet" / "cifar10" / cifar10.ARCHIVE).read_bytes() == archive


# -------------------------------------------------------------------- CIFAR-10: the record layout


def cifar_arrays(counts, seed=0):
    """Six batches of random records: [(images (n, 32, 32, 3), labels (n,))], in BATCH_FILES's order."""
    rng = np.random.default_rng(seed)
    return [
        (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)) for n in counts
    ]


def batch_bytes(images, labels) -> bytes:
    """CIFAR-10's binary records: a label byte, then the red, green and blue planes, row by row."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), 3 * 32 * 32)
    return np.concatenate([labels[:, None], planes], axis=1).astype(np.uint8).tobytes()


def keras_arrays(batches):
    """What load_data should return for ``batches``."""
    train, test = batches[:5], batches[5:]
    return (
        (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]).reshape(-1, 1)),
        (np.concatenate([x for x, _ in test]), np.concatenate([y for _, y in test]).reshape(-1, 1)),
    )


def write_cifar_folder(folder, counts, seed=0):
    os.makedirs(folder, exist_ok=True)
    batches = cifar_arrays(counts, seed)
    for name, (images, labels) in zip(cifar10.BATCH_FILES, batches):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(batch_bytes(images, labels))
    return keras_arrays(batches)


def test_a_record_lands_channels_last_at_its_row_and_column(tmp_path):
    record = bytearray(cifar10.RECORD_BYTES)
    record[0] = 7  # the label
    row, column = 2, 5
    for channel, value in enumerate((11, 22, 33)):  # red, green, blue planes of 1024 bytes each, row-major
        record[1 + 1024 * channel + 32 * row + column] = value
    for name in cifar10.BATCH_FILES:
        (tmp_path / name).write_bytes(bytes(record))
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(tmp_path, verify=False)
    assert x_train.shape == (5, 32, 32, 3) and y_train.shape == (5, 1) and x_test.shape == (1, 32, 32, 3)
    assert x_train.dtype == y_train.dtype == x_test.dtype == y_test.dtype == np.uint8
    assert x_test[0, row, column].tolist() == [11, 22, 33] and y_test.tolist() == [[7]]
    assert int(x_test.sum()) == 66  # nothing else set: not transposed (x[0, 5, 2] would be)
    assert x_train.flags.c_contiguous


@pytest.mark.parametrize("inside", [True, False], ids=["cifar-10-batches-bin", "bin files directly"])
def test_cifar10_loads_a_folder_of_bin_files_unchecked(tmp_path, inside):
    written = write_cifar_folder(tmp_path / cifar10.FOLDER if inside else tmp_path, [3, 2, 4, 1, 2, 5])
    loaded = cifar10.load_data(tmp_path, verify=False)
    assert loaded[0][0].shape == (12, 32, 32, 3) and loaded[1][1].shape == (5, 1)
    assert_same(loaded, written)


def test_unpacked_bin_files_cannot_be_verified(tmp_path):
    write_cifar_folder(tmp_path / cifar10.FOLDER, [1] * 6)
    with pytest.raises(
        DatasetError, match=r"cifar-10-batches-bin: unpacked .bin files cannot be checked: .*verify=False"
    ):
        cifar10.load_data(tmp_path)


@pytest.mark.parametrize(
    "size,message",
    [
        (3 * 3073 - 100, r"data_batch_2.bin: 9119 bytes, not a whole number of 3073-byte records"),
        (0, r"data_batch_2.bin: 0 bytes, not a whole number"),
        (80001 * 3073, r"data_batch_2.bin: refused before reading: 80001 records, more than the 80000"),
    ],
)
def test_a_bin_file_of_the_wrong_size_is_refused(tmp_path, size, message):
    write_cifar_folder(tmp_path, [1] * 6)
    with open(tmp_path / "data_batch_2.bin", "wb") as f:
        f.truncate(size)  # sparse on disk: the big one costs nothing unless it is read
    with pytest.raises(DatasetError, match=message):
        cifar10.load_data(tmp_path, verify=False)


def test_labels_past_9_are_refused(tmp_path):
    write_cifar_folder(tmp_path, [2] * 6)
    data = bytearray((tmp_path / "test_batch.bin").read_bytes())
    data[cifar10.RECORD_BYTES] = 10  # the second record's label
    (tmp_path / "test_batch.bin").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"test_batch.bin: labels must be 0-9, found 10 in record 1"):
        cifar10.load_data(tmp_path, verify=False)


def test_a_missing_bin_file_is_named(tmp_path):
    write_cifar_folder(tmp_path, [1] * 6)
    os.remove(tmp_path / "data_batch_4.bin")
    with pytest.raises(DatasetError, match=r"data_batch_4.bin is missing"):
        cifar10.load_data(tmp_path, verify=False)


# -------------------------------------------------------------------- CIFAR-10: the archive


def cifar_members(batches, extra=()):
    """The members of a CIFAR-10 binary archive holding ``batches``: [(name, bytes or a TarInfo)]."""
    folder = tarfile.TarInfo(cifar10.FOLDER)
    folder.type = tarfile.DIRTYPE
    members = [(cifar10.FOLDER, folder)]
    members += [(f"{cifar10.FOLDER}/{n}", batch_bytes(*b)) for n, b in zip(cifar10.BATCH_FILES, batches)]
    members += [
        (f"{cifar10.FOLDER}/batches.meta.txt", b"airplane\nautomobile\n"),
        (f"{cifar10.FOLDER}/readme.html", b""),
    ]
    return members + list(extra)


def tar_bytes(members, compress=True, pax=None) -> bytes:
    """A tar (.gz) of ``members``; ``pax`` gives some of them pax headers ({name: {keyword: value}})."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT if pax else tarfile.GNU_FORMAT) as tar:
        for name, content in members:
            if isinstance(content, tarfile.TarInfo):  # a folder, a link: no data
                tar.addfile(content)
                continue
            info = tarfile.TarInfo(name)
            info.size, info.pax_headers = len(content), (pax or {}).get(name, {})
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(buffer.getvalue(), mtime=0) if compress else buffer.getvalue()


@pytest.mark.parametrize("compress", [True, False], ids=["tar.gz", "tar"])
def test_cifar10_reads_its_archive_without_unpacking_it(tmp_path, compress):
    batches = cifar_arrays([3, 1, 2, 1, 1, 4])
    (tmp_path / cifar10.ARCHIVE).write_bytes(tar_bytes(cifar_members(batches), compress))
    write_cifar_folder(tmp_path / cifar10.FOLDER, [1] * 6, seed=9)  # beside it, unpacked files of other data
    for where in (tmp_path, tmp_path / cifar10.ARCHIVE):  # the archive first: it is the one with checksums
        assert_same(cifar10.load_data(where, verify=False), keras_arrays(batches))
    assert sorted(os.listdir(tmp_path)) == sorted([cifar10.ARCHIVE, cifar10.FOLDER])  # nothing unpacked
    assert sorted(os.listdir(tmp_path / cifar10.FOLDER)) == sorted(cifar10.BATCH_FILES)


def test_verify_checks_the_archive_size_then_its_checksums_then_its_records(tmp_path, monkeypatch):
    archive = tar_bytes(cifar_members(cifar_arrays([1] * 6)))
    path = tmp_path / cifar10.ARCHIVE
    path.write_bytes(archive)
    with pytest.raises(DatasetError, match=rf"{len(archive)} bytes, expected the 170052171 of CIFAR-10's cifar-10-b"):
        cifar10.load_data(tmp_path)
    monkeypatch.setattr(cifar10, "ARCHIVE_BYTES", len(archive))
    with pytest.raises(DatasetError, match=r"MD5 of the file is [0-9a-f]{32}, expected CIFAR-10's c32a1d4ab5d03f12"):
        cifar10.load_data(tmp_path)
    monkeypatch.setattr(cifar10, "CHECKSUMS", {cifar10.ARCHIVE: digests(archive)})
    with pytest.raises(DatasetError, match=r"data_batch_1.bin: 3073 bytes, expected CIFAR-10's 30730000 \(10000 rec"):
        cifar10.load_data(tmp_path)


def _symlink(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return name, info


BATCH = f"{cifar10.FOLDER}/data_batch_1.bin"


@pytest.mark.parametrize(
    "change,message",
    [
        (
            lambda m: m + [(f"{cifar10.FOLDER}/../../evil.bin", b"x")],
            r"unexpected member 'cifar-10-batches-bin/../../ev",
        ),
        (lambda m: m + [("/etc/evil", b"x")], r"refused: unexpected member '/etc/evil'"),
        (lambda m: m + [(f"{cifar10.FOLDER}/data_batch_6.bin", b"x" * 3073)], r"unexpected member .*data_batch_6.bin"),
        (lambda m: [_symlink(BATCH, "/etc/passwd") if n == BATCH else (n, c) for n, c in m], r"a symbolic link"),
        (lambda m: m + [(BATCH, b"\0" * 3073)], r"data_batch_1.bin is in the archive twice"),
        (lambda m: [(n, c[:-7] if n == BATCH else c) for n, c in m], r"data_batch_1.bin: 3066 bytes, not a whole"),
        (lambda m: [(n, c) for n, c in m if not n.endswith("test_batch.bin")], r"test_batch.bin is missing from the"),
        (
            lambda m: m[:-1] + [(f"{cifar10.FOLDER}/readme.html", b"x" * 70000)],
            r"refused before reading: .*readme.html",
        ),
    ],
    ids=["traversal", "absolute", "unexpected", "symlink", "twice", "wrong size", "missing", "big extra"],
)
def test_an_archive_that_is_not_cifar10s_is_refused_and_nothing_is_written(tmp_path, change, message):
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / cifar10.ARCHIVE
    path.write_bytes(tar_bytes(change(cifar_members(cifar_arrays([1] * 6)))))
    with pytest.raises(DatasetError, match=f"{path}: .*{message}"):
        cifar10.load_data(path, verify=False)
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted([cifar10.ARCHIVE, "in"])  # nothing unpacked


def test_a_huge_pax_header_is_refused_before_tarfile_reads_it_whole(tmp_path):
    path = tmp_path / cifar10.ARCHIVE
    big = {BATCH: {"comment": "x" * (16 << 20)}}  # 16 kB compressed; tarfile reads such a header in one read
    path.write_bytes(tar_bytes(cifar_members(cifar_arrays([1] * 6)), pax=big))
    with pytest.raises(DatasetError, match=r"refused: a tar header asks to read \d+ bytes at once"):
        cifar10.load_data(path, verify=False)


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_a_truncated_archive_is_refused(tmp_path, cut):
    archive = tar_bytes(cifar_members(cifar_arrays([2] * 6)))
    path = tmp_path / cifar10.ARCHIVE
    path.write_bytes(archive[: int(len(archive) * cut)])
    with pytest.raises(DatasetError, match=f"{path}: not a readable tar archive"):
        cifar10.load_data(path, verify=False)


def test_an_archive_that_is_not_a_tar_is_refused(tmp_path):
    path = tmp_path / cifar10.ARCHIVE
    path.write_bytes(gzip.compress(b"hello" * 1000))
    with pytest.raises(DatasetError, match=f"{path}: not a readable tar archive"):
        cifar10.load_data(path, verify=False)


@pytest.mark.skipif(bool(UNAVAILABLE), reason=UNAVAILABLE or "")
def test_a_fifo_named_like_the_archive_is_refused_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / cifar10.ARCHIVE)  # nobody writes: a plain open and read would wait forever
    code = f"from tinynet.datasets import cifar10; cifar10.load_data({str(tmp_path)!r}, verify=False)"
    result = run_limited(code, 256 << 20, timeout=60)
    assert result.returncode == 1 and not result.timed_out, result.stderr[-2000:]
    assert f"{tmp_path / cifar10.ARCHIVE}: a FIFO, not a regular file; refused before reading" in result.stderr
