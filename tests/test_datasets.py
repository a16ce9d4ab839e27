"""tinynet.datasets.fashion_mnist, and the rules every data set shares
(tinynet.datasets.sources): where they look, what they refuse, and downloads from a fake
urlopen (nothing here touches the network). All data is small and made by the tests."""

import gzip
import hashlib
import io
import os
import urllib.error
import urllib.request

import numpy as np
import pytest
from synthetic import write_mnist_dir

from tinynet.datasets import DatasetError, fashion_mnist, mnist
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


@pytest.mark.parametrize("module", [fashion_mnist])
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
    written = write_mnist_dir(fashion_mnist.cache_dir(), n_train=4, n_test=2)
    assert_same(fashion_mnist.load_data(verify=False), written)


@pytest.mark.parametrize("module", [fashion_mnist])
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
