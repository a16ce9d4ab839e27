"""tinynet.datasets.mnist: where it looks, what it refuses, and downloads from a
local HTTP server on 127.0.0.1 (good files, a wrong checksum, a dropped connection)."""

import gzip
import hashlib
import http.server
import os
import threading

import bombs
import numpy as np
import pytest
from limits import UNAVAILABLE, run_limited
from synthetic import write_mnist_dir

from tinynet.datasets import DatasetError, mnist
from tinynet.datasets.idx import CHUNK, to_idx_bytes

STEMS = list(mnist.FILES.values())


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mnist")
    arrays = write_mnist_dir(directory, n_train=40, n_test=12)
    return directory, arrays


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No TINYNET_DATA_DIR, an empty cache, and mirrors that refuse connections."""
    monkeypatch.delenv("TINYNET_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist, "MIRRORS", ["http://127.0.0.1:9/"])  # discard port: nothing listens
    return tmp_path


def test_explicit_directory(fake_dir):
    directory, ((x_train, y_train), (x_test, y_test)) = fake_dir
    (a, b), (c, d) = mnist.load_data(directory, verify=False)
    assert a.dtype == b.dtype == c.dtype == d.dtype == np.uint8
    assert a.shape == (40, 28, 28) and b.shape == (40,) and c.shape == (12, 28, 28) and d.shape == (12,)
    np.testing.assert_array_equal(a, x_train)
    np.testing.assert_array_equal(d, y_test)


def test_checksum_failure_names_the_file(fake_dir):
    directory, _ = fake_dir
    with pytest.raises(
        DatasetError,
        match=r"train-images-idx3-ubyte.gz: SHA-256 of the content is [0-9a-f]{64}, "
        r"expected MNIST's ba8910.*verify=False",
    ):
        mnist.load_data(directory)


def test_environment_variable_then_cache(fake_dir, isolated, monkeypatch):
    directory, _ = fake_dir
    monkeypatch.setenv("TINYNET_DATA_DIR", str(directory))
    assert mnist.load_data(verify=False)[0][0].shape == (40, 28, 28)
    monkeypatch.delenv("TINYNET_DATA_DIR")
    write_mnist_dir(os.path.join(isolated, "cache", "tinynet", "mnist"), n_train=7, n_test=3)
    assert mnist.load_data(verify=False)[0][0].shape == (7, 28, 28)


def test_a_mistyped_data_dir_variable_is_an_error_not_a_download(isolated, tmp_path, monkeypatch):
    write_mnist_dir(os.path.join(isolated, "cache", "tinynet", "mnist"), n_train=7, n_test=3)  # a cache is there
    for where, what in ((tmp_path / "typo", "is not a directory"), (tmp_path, "holds no MNIST files")):
        monkeypatch.setenv("TINYNET_DATA_DIR", str(where))
        with pytest.raises(DatasetError, match=f"TINYNET_DATA_DIR='{where}' {what} .*or unset it to use the cache"):
            mnist.load_data(verify=False)


def test_offline_with_nothing_cached_gives_one_clear_message(isolated):
    with pytest.raises(DatasetError) as info:
        mnist.load_data()
    message = str(info.value)
    assert "MNIST not found" in message and "TINYNET_DATA_DIR (not set)" in message
    assert "Put the four files" in message and "set TINYNET_DATA_DIR" in message
    assert "127.0.0.1:9" in message  # which download failed


def test_explicit_path_that_does_not_exist(tmp_path):
    with pytest.raises(DatasetError, match="no such file or directory"):
        mnist.load_data(tmp_path / "missing")


def test_directory_with_a_missing_file(tmp_path):
    write_mnist_dir(tmp_path, n_train=5, n_test=2)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.gz \(or t10k-labels-idx1-ubyte\) is missing"):
        mnist.load_data(tmp_path, verify=False)


def test_uncompressed_files_are_accepted(tmp_path):
    write_mnist_dir(tmp_path, n_train=5, n_test=2, compress=False)
    assert mnist.load_data(tmp_path, verify=False)[1][1].shape == (2,)


def test_mismatched_counts_and_wrong_dtype(tmp_path):
    write_mnist_dir(tmp_path, n_train=5, n_test=2)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(to_idx_bytes(np.zeros(4, np.uint8))))
    with pytest.raises(DatasetError, match="5 train images but 4 train labels"):
        mnist.load_data(tmp_path, verify=False)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(to_idx_bytes(np.zeros(5, np.int16))))
    with pytest.raises(DatasetError, match="y_train has dtype int16, expected uint8"):
        mnist.load_data(tmp_path, verify=False)


def test_keras_npz(tmp_path, fake_dir):
    _, ((x_train, y_train), (x_test, y_test)) = fake_dir
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    for where in (tmp_path, tmp_path / "mnist.npz"):
        (a, _), (_, d) = mnist.load_data(where, verify=False)
        np.testing.assert_array_equal(a, x_train)
        np.testing.assert_array_equal(d, y_test)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    objects = np.empty(2, dtype=object)
    np.savez(tmp_path / "mnist.npz", x_train=objects, y_train=objects, x_test=objects, y_test=objects)
    with pytest.raises(DatasetError, match="refused"):
        mnist.load_data(tmp_path / "mnist.npz", verify=False)


def test_npz_that_is_not_an_npz(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DatasetError, match=r"mnist.npz: not a readable .npz file"):
        mnist.load_data(tmp_path / "mnist.npz", verify=False)


# -------------------------------------------------------------------- bombs, huge declared sizes, FIFOs
# Each crafted file is loaded in a child process with a memory limit and a timeout (tests/limits.py),
# so a loader that reads everything first fails here as a test instead of taking the machine.

BOMB_LIMIT = 256 << 20  # what the child may take beyond its imports; MNIST's largest file is 47 MB


def _limited_load(path, verify):
    code = f"from tinynet.datasets import mnist; mnist.load_data({str(path)!r}, verify={verify})"
    result = run_limited(code, BOMB_LIMIT, timeout=60)
    print(f"{path.name} (verify={verify}): {result.figures()}")
    assert result.returncode == 1 and not result.timed_out, result.stderr[-2000:]
    return result


@pytest.mark.skipif(bool(UNAVAILABLE), reason=UNAVAILABLE or "")
@pytest.mark.parametrize("verify", [True, False])
def test_a_gzip_bomb_named_like_mnist_is_refused_a_chunk_past_its_data(tmp_path, verify):
    write_mnist_dir(tmp_path, n_train=5, n_test=2)
    bomb = tmp_path / "train-images-idx3-ubyte.gz"  # MNIST's header, then 1 GiB of zeros, in 1 MB
    bomb.write_bytes(bombs.gzip_zeros(bombs.idx_header((60000, 28, 28)), 1 << 30))
    result = _limited_load(tmp_path, verify)
    assert f"DatasetError: {bomb}: refused: more than {CHUNK} unexpected bytes after the data" in result.stderr
    assert result.peak_rss_bytes - result.baseline_rss_bytes < 2 * mnist.max_bytes("x_train", True) + (32 << 20)


@pytest.mark.parametrize(
    "verify,count,message",
    [
        (True, 60001, r"47040800 bytes with the header, more than the 47040016 allowed \(MNIST's own size; for other "),
        (False, 480001, r"376320800 bytes with the header, more than the 376320016 allowed \(verify=False reads at"),
    ],
)
def test_a_header_declaring_more_than_mnist_is_refused_before_the_data(tmp_path, verify, count, message):
    write_mnist_dir(tmp_path, n_train=5, n_test=2)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(bombs.idx_header((count, 28, 28)) + bytes(1000)))
    with pytest.raises(DatasetError, match=f"{path}: refused before reading its data: .*{message}"):
        mnist.load_data(tmp_path, verify=verify)


@pytest.mark.skipif(bool(UNAVAILABLE), reason=UNAVAILABLE or "")
@pytest.mark.parametrize("name", ["train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte", "mnist.npz"])
def test_a_fifo_named_like_an_mnist_file_is_refused_not_waited_on(tmp_path, name):
    write_mnist_dir(tmp_path, n_train=5, n_test=2, compress=not name.endswith("ubyte"))
    if name != "mnist.npz":
        os.remove(tmp_path / name)
    os.mkfifo(tmp_path / name)  # nobody writes: a plain open and read would wait forever
    where = tmp_path / name if name == "mnist.npz" else tmp_path
    result = _limited_load(where, False)
    assert f"DatasetError: {tmp_path / name}: a FIFO, not a regular file; refused before reading" in result.stderr


def _npz_bomb(tmp_path, x_train):
    y = bombs.npy_bytes(np.zeros(5, np.uint8))
    members = {"x_train.npy": x_train, "y_train.npy": y, "x_test.npy": bombs.npy_bytes(np.zeros((5, 28, 28), np.uint8))}
    path = tmp_path / "mnist.npz"
    path.write_bytes(bombs.npz({**members, "y_test.npy": y}))
    return path


@pytest.mark.skipif(bool(UNAVAILABLE), reason=UNAVAILABLE or "")
@pytest.mark.parametrize(
    "verify,message",
    [
        (True, r"x_train has shape (2000000, 28, 28), expected MNIST's (60000, 28, 28)"),
        (False, r"x_train has shape (2000000, 28, 28): more samples than the 480000 verify=False reads from one file"),
    ],
)
def test_an_npz_member_declaring_a_huge_shape_is_refused_before_its_data(tmp_path, verify, message):
    # 1.5 MB on disk; a member of 1.57 GB of zeros, all of which np.load would allocate and read
    path = _npz_bomb(tmp_path, (bombs.npy_header((2_000_000, 28, 28)), 2_000_000 * 784))
    result = _limited_load(path, verify)
    assert f"DatasetError: {path}: {message}" in result.stderr, result.stderr[-2000:]


@pytest.mark.skipif(bool(UNAVAILABLE), reason=UNAVAILABLE or "")
def test_an_npz_member_holding_more_than_its_shape_is_refused_past_its_data(tmp_path):
    path = _npz_bomb(tmp_path, (bombs.npy_header((5, 28, 28)), 1 << 30))
    result = _limited_load(path, False)
    assert f"DatasetError: {path}: x_train.npy: more bytes than its shape (5, 28, 28) holds" in result.stderr


@pytest.mark.parametrize(
    "member,message",
    [
        (bombs.npy_bytes(np.zeros((5, 28, 28), np.float32)), r"x_train has dtype float32, expected uint8"),
        (bombs.npy_bytes(np.zeros((5, 28, 27), np.uint8)), r"x_train has shape \(5, 28, 27\), expected \(N, 28, 28\)"),
        (bombs.npy_bytes(np.zeros((5, 28, 28), np.uint8))[:-10], r"x_train.npy: truncated: shape \(5, 28, 28\) needs"),
        (b"\x93NUMPY\x03\x00" + bytes(8), r"x_train.npy: .npy format version \(3, 0\), expected 1.0 or 2.0"),
        (b"not an npy file at all", r"not a readable .npz file \(ValueError: "),
    ],
)
def test_npz_members_that_are_not_what_mnist_needs(tmp_path, member, message):
    path = _npz_bomb(tmp_path, member)
    with pytest.raises(DatasetError, match=f"{path}: {message}"):
        mnist.load_data(path, verify=False)


def test_npz_members_in_fortran_order_load_as_np_load_reads_them(tmp_path, fake_dir):
    _, ((x_train, y_train), (x_test, y_test)) = fake_dir
    np.savez(tmp_path / "mnist.npz", x_train=np.asfortranarray(x_train), y_train=y_train, x_test=x_test, y_test=y_test)
    (a, _), _ = mnist.load_data(tmp_path / "mnist.npz", verify=False)
    np.testing.assert_array_equal(a, x_train)


# -------------------------------------------------------------------- downloads


class Server:
    """A local HTTP server with a route table: path -> bytes, or ("drop", bytes)."""

    def __init__(self):
        routes = self.routes = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                drop = isinstance(body, tuple)
                data = body[1] if drop else body
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 3] if drop else data)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def synthetic_files(seed=0):
    """stem -> (gz bytes, sha256 of the content) for a tiny MNIST-shaped set."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 6).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 3).astype(np.uint8),
    }
    out = {}
    for stem, a in arrays.items():
        content = to_idx_bytes(a)
        out[stem] = (gzip.compress(content), hashlib.sha256(content).hexdigest())
    return out


def test_download_good_files_land_in_the_cache(server, tmp_path):
    files = synthetic_files()
    for stem, (gz, _) in files.items():
        server.routes[f"/{stem}.gz"] = gz
    checksums = {stem: sha for stem, (_, sha) in files.items()}
    mnist.download(tmp_path, mirrors=[server.url], verbose=False, checksums=checksums)
    assert sorted(os.listdir(tmp_path)) == sorted(f"{s}.gz" for s in STEMS)  # no temporary files
    (a, _), (_, d) = mnist.load_data(tmp_path, verify=False)
    assert a.shape == (6, 28, 28) and d.shape == (3,)


def test_load_data_downloads_into_the_cache_when_nothing_else_is_there(server, isolated, monkeypatch):
    files = synthetic_files()
    for stem, (gz, _) in files.items():
        server.routes[f"/{stem}.gz"] = gz
    monkeypatch.setattr(mnist, "MIRRORS", ["http://127.0.0.1:9/", server.url])  # the first mirror is down
    monkeypatch.setattr(mnist, "SHA256", {stem: sha for stem, (_, sha) in files.items()})
    (a, _), _ = mnist.load_data(verify=False)
    assert a.shape == (6, 28, 28)
    assert sorted(os.listdir(mnist.cache_dir())) == sorted(f"{s}.gz" for s in STEMS)


@pytest.mark.parametrize("failure", ["checksum", "dropped"])
def test_a_bad_download_never_replaces_the_good_cached_file(server, tmp_path, failure):
    old, new = synthetic_files(seed=1), synthetic_files(seed=2)
    stem = "train-images-idx3-ubyte"
    target = tmp_path / f"{stem}.gz"
    target.write_bytes(old[stem][0])  # the good cached copy of an older version
    if failure == "checksum":
        server.routes[f"/{stem}.gz"] = new[stem][0]
        expected = {stem: hashlib.sha256(b"something else").hexdigest()}
        message = "SHA-256 of the content is"
    else:
        server.routes[f"/{stem}.gz"] = ("drop", new[stem][0])
        expected = {stem: new[stem][1]}
        message = "IncompleteRead|connection closed|cut short"
    with pytest.raises(DatasetError, match=message):
        mnist.download(tmp_path, mirrors=[server.url], verbose=False, checksums=expected)
    assert target.read_bytes() == old[stem][0]  # the old file survives, whole
    assert os.listdir(tmp_path) == [f"{stem}.gz"]  # and no temporary file is left


def test_files_already_cached_with_the_right_checksum_are_not_fetched_again(server, tmp_path):
    files = synthetic_files()
    stem = "t10k-labels-idx1-ubyte"
    (tmp_path / f"{stem}.gz").write_bytes(files[stem][0])
    mnist.download(tmp_path, mirrors=[server.url], verbose=False, checksums={stem: files[stem][1]})  # no route: 404


# -------------------------------------------------------------------- the real data

REAL = os.environ.get("TINYNET_DATA_DIR")
needs_real = pytest.mark.skipif(
    not (REAL and os.path.isdir(REAL) and mnist._complete(REAL)),
    reason="the real MNIST: set TINYNET_DATA_DIR to a folder with the four files",
)


@needs_real
def test_real_mnist():
    (x_train, y_train), (x_test, y_test) = mnist.load_data()  # verifies the SHA-256 of each file
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == x_test.dtype == y_test.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    pixels = x_train / 255.0
    assert pixels.mean() == pytest.approx(0.1307, abs=5e-5)
    assert pixels.std() == pytest.approx(0.3081, abs=5e-5)


@pytest.mark.skipif(bool(UNAVAILABLE), reason=UNAVAILABLE or "")
def test_a_gzip_bomb_from_a_mirror_is_refused_and_never_cached(tmp_path):
    code = f"""
import bombs
from test_mnist_loader import Server
from tinynet.datasets import mnist
server = Server()
stem = "train-images-idx3-ubyte"
server.routes[f"/{{stem}}.gz"] = bombs.gzip_zeros(bombs.idx_header((60000, 28, 28)), 1 << 30)
try:
    mnist.download({str(tmp_path)!r}, mirrors=[server.url], verbose=False, checksums={{stem: mnist.SHA256[stem]}})
finally:
    server.close()
"""
    result = run_limited(code, BOMB_LIMIT, timeout=60)
    print(f"gzip bomb from a mirror: {result.figures()}")
    assert "could not fetch train-images-idx3-ubyte.gz: http://127.0.0.1:" in result.stderr, result.stderr[-2000:]
    assert f"refused: more than {CHUNK} unexpected bytes after the data" in result.stderr
    assert os.listdir(tmp_path) == []  # nothing written, not even a temporary file
