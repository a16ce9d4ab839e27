"""Crafted model files, as a hostile user would make them: each is loaded in a child
process under a memory limit and a time limit, so that a regression fails here as a
test (a MemoryError, a timeout) instead of taking the machine's memory or hanging it.

What each must give: a ModelFileError that names the file, the object and the reason,
before the bytes it would cost are read. ``python tests/test_hostile_files.py`` prints
every case's outcome, peak memory and time.
"""

import io
import json
import os
import struct
import textwrap
import zipfile

import numpy as np
import pytest
from limits import UNAVAILABLE
from limits import run_limited as run_in_child

import tinynet as tn

h5py = pytest.importorskip("h5py")


pytestmark = pytest.mark.skipif(bool(UNAVAILABLE), reason=UNAVAILABLE or "")

MEMORY_LIMIT = 1 << 30  # bytes each child may take past its imports: a bomb that is read fails with MemoryError
TIME_LIMIT = 60  # seconds: a read that blocks (a FIFO) fails as a timeout

OUTCOME = """
try:
{body}
    print("outcome: loaded")
except Exception as e:
    print(f"outcome: {{type(e).__name__}}: {{e}}")
"""


def run_limited(body: str) -> dict:
    """Run ``body`` (statements) in a child under the limits above (``tests/limits.py``): its
    outcome (``"loaded"`` or ``"ErrorType: message"``), the seconds it took and its peak memory."""
    code = OUTCOME.format(body=textwrap.indent(textwrap.dedent(body), "    "))
    done = run_in_child(
        code, MEMORY_LIMIT, TIME_LIMIT, setup="import numpy, tinynet as tn, h5py", env={"OPENBLAS_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, (done.figures(), done.stderr[-2000:])
    outcome = [line for line in done.stdout.splitlines() if line.startswith("outcome: ")][-1]
    return {"outcome": outcome[len("outcome: ") :], "seconds": done.seconds, "peak_kib": done.peak_rss_bytes >> 10}


# ----------------------------------------------------------------- the files


def _model():
    model = tn.Sequential([tn.Input((6,)), tn.Dense(4, activation="relu"), tn.Dense(3, activation="softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).standard_normal((16, 6)).astype(np.float32)
    model.fit(x, np.arange(16) % 3, epochs=1, verbose=0)
    return model


def _keras_with_h5(tmp, name, edit_h5, config_edit=None):
    """A .keras file of the small model whose weights file ``edit_h5(h5py.File)`` changed."""
    good = os.path.join(tmp, "good.keras")
    _model().save(good)
    with zipfile.ZipFile(good) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    buffer = io.BytesIO(entries["model.weights.h5"])
    with h5py.File(buffer, "r+") as f:
        edit_h5(f)
    entries["model.weights.h5"] = buffer.getvalue()
    if config_edit is not None:
        config = json.loads(entries["config.json"])
        config_edit(config)
        entries["config.json"] = json.dumps(config).encode()
    path = os.path.join(tmp, name)
    with zipfile.ZipFile(path, "w") as z:
        for n, data in entries.items():
            z.writestr(n, data)
    return path


def _weights_h5(tmp, name, edit_h5):
    path = os.path.join(tmp, name)
    _model().save_weights(path)
    with h5py.File(path, "r+") as f:
        edit_h5(f)
    return path


def _secret(tmp):
    path = os.path.join(tmp, "secret.bin")
    with open(path, "wb") as f:
        f.write(np.arange(24, dtype=np.float32).tobytes())  # 96 bytes: the kernel's size
    return path


def _replace(f, where, make):
    del f[where]
    make(where)


def _kernel_stored_in(outside):
    """An edit that makes the first kernel's 96 bytes live in the file ``outside`` (external storage)."""

    def edit(f):
        _replace(f, "layers/dense/vars/0", lambda w: f.create_dataset(w, (6, 4), "<f4", external=[(outside, 0, 96)]))

    return edit


def external_storage(tmp):
    return _keras_with_h5(tmp, "external.keras", _kernel_stored_in(_secret(tmp))), "external storage"


def external_storage_weights_h5(tmp):
    return _weights_h5(tmp, "external.weights.h5", _kernel_stored_in(_secret(tmp))), "external storage"


def external_storage_on_a_fifo(tmp):
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    return _keras_with_h5(tmp, "fifo.keras", _kernel_stored_in(fifo)), "external storage"


def virtual_dataset(tmp):
    other = os.path.join(tmp, "other.h5")
    with h5py.File(other, "w") as g:
        g["x"] = np.ones((6, 4), np.float32)

    def edit(f):
        layout = h5py.VirtualLayout((6, 4), "<f4")
        layout[:] = h5py.VirtualSource(other, "x", shape=(6, 4))
        _replace(f, "layers/dense/vars/0", lambda w: f.create_virtual_dataset(w, layout))

    return _keras_with_h5(tmp, "virtual.keras", edit), "virtual dataset"


def external_link(tmp):
    other = os.path.join(tmp, "other.h5")
    with h5py.File(other, "w") as g:
        g["kernel"] = np.ones((6, 4), np.float32)

    def edit(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.ExternalLink(other, "kernel")

    return _weights_h5(tmp, "link.weights.h5", edit), "external link"


def soft_link(tmp):
    def edit(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.SoftLink("/layers/dense_1/vars/0")

    return _weights_h5(tmp, "soft.weights.h5", edit), "soft link"


def declared_but_never_written(tmp):
    """2.9 GB declared in a few KB: a dataset with no data written reads as fill values."""

    def edit(f):
        f.create_dataset("layers/dense/vars/junk", (30_000, 24_000), "<f4")

    return _keras_with_h5(tmp, "unwritten.keras", edit), "never written"


def declared_but_never_written_as_the_architecture(tmp):
    """The same, as weights that the edited architecture (Dense(24000) on 30000 inputs) wants."""

    def edit(f):
        _replace(f, "layers/dense/vars/0", lambda w: f.create_dataset(w, (30_000, 24_000), "<f4"))

    def config(c):
        c["config"]["layers"][0]["config"]["batch_shape"] = [None, 30_000]
        c["config"]["layers"][1]["config"]["units"] = 24_000

    return _keras_with_h5(tmp, "unwritten-arch.keras", edit, config), "never written"


def _deflated(path, entries, big_name, big_size, head=b""):
    """A zip whose entry ``big_name`` is ``head`` then ``big_size`` spaces, deflated (a bomb)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for n, data in entries.items():
            z.writestr(n, data)
        with z.open(big_name, "w", force_zip64=True) as f:
            f.write(head)
            block = b" " * (1 << 22)
            for _ in range(big_size // len(block)):
                f.write(block)
    return path


def config_json_bomb(tmp):
    """config.json of 1.9 GB in a few MB of deflate: valid JSON, padded with spaces."""
    good = os.path.join(tmp, "good.keras")
    _model().save(good)
    with zipfile.ZipFile(good) as z:
        entries = {n: z.read(n) for n in z.namelist() if n != "config.json"}
        config = z.read("config.json")
    path = _deflated(os.path.join(tmp, "bomb.keras"), entries, "config.json", 19 * 10**8, head=config)
    return path, "config.json claims 1895828035 bytes"


def weights_entry_bomb(tmp):
    """model.weights.h5 padded to 1 GB of spaces: far more than the 43 weights need."""
    good = os.path.join(tmp, "good.keras")
    _model().save(good)
    with zipfile.ZipFile(good) as z:
        entries = {n: z.read(n) for n in z.namelist() if n != "model.weights.h5"}
        weights = z.read("model.weights.h5")
    return _deflated(
        os.path.join(tmp, "h5bomb.keras"), entries, "model.weights.h5", 10**9, head=weights
    ), "model.weights.h5 claims"


def npz_member_bomb(tmp):
    """A checkpoint whose first kernel is a deflated .npy declaring 1.5 GB of float32."""
    good = os.path.join(tmp, "good.npz")
    _model().save(good)
    with zipfile.ZipFile(good) as z:
        entries = {n: z.read(n) for n in z.namelist() if n != "weight_0.npy"}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (20_000, 20_000)})
    path = _deflated(os.path.join(tmp, "bomb.npz"), entries, "weight_0.npy", 16 * 10**8, head=header.getvalue())
    return path, "should have shape"


def npz_member_bomb_as_the_architecture(tmp):
    """The same bomb, with the description edited to ask for it: the stored bytes refuse it."""
    good = os.path.join(tmp, "good.npz")
    _model().save(good)
    with zipfile.ZipFile(good) as z:
        entries = {n: z.read(n) for n in z.namelist() if n not in ("weight_0.npy", "tinynet_config.npy")}
        config = json.loads(np.load(io.BytesIO(z.read("tinynet_config.npy"))).tobytes())
    config["input_shape"] = [20_000]
    config["layers"][0]["config"]["units"] = 20_000
    entries["tinynet_config.npy"] = _npy(np.frombuffer(json.dumps(config).encode(), np.uint8))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (20_000, 20_000)})
    path = _deflated(os.path.join(tmp, "bomb2.npz"), entries, "weight_0.npy", 16 * 10**8, head=header.getvalue())
    return path, "needs at least"


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def thousands_of_layers(tmp):
    """A description of 200,000 Dense(1) layers (#33): refused before one is built."""
    good = os.path.join(tmp, "good.npz")
    _model().save(good)
    with zipfile.ZipFile(good) as z:
        entries = {n: z.read(n) for n in z.namelist() if n != "tinynet_config.npy"}
        config = json.loads(np.load(io.BytesIO(z.read("tinynet_config.npy"))).tobytes())
    config["layers"] = [{"class": "Dense", "config": {"units": 1}}] * 200_000
    entries["tinynet_config.npy"] = _npy(np.frombuffer(json.dumps(config).encode(), np.uint8))
    path = os.path.join(tmp, "layers.npz")
    with zipfile.ZipFile(path, "w") as z:
        for n, data in entries.items():
            z.writestr(n, data)
    return path, "describes 200000 layers"


def a_fifo_as_the_model_file(tmp):
    path = os.path.join(tmp, "model.npz")
    os.mkfifo(path)
    return path, "FIFO"


def a_fifo_as_the_keras_file(tmp):
    path = os.path.join(tmp, "model.keras")
    os.mkfifo(path)
    return path, "FIFO"


def npz_index_that_lies_about_stored_sizes(tmp):
    """A 2 KB .npz whose central directory says each weight stores 4 GB: the stored bytes must not
    come from the index alone (a Dense(10**8) was built before any data was read)."""
    good = os.path.join(tmp, "good.npz")
    _model().save(good)
    with zipfile.ZipFile(good) as z:
        config = json.loads(np.load(io.BytesIO(z.read("tinynet_config.npy"))).tobytes())
    units = 10**8
    config["layers"][0]["config"]["units"] = units
    config.pop("training_state")
    config["compile"] = None
    shapes = [(6, units), (units,), (units, 3), (3,)]
    config["weights"] = [{"layer": "x", "name": "w", "shape": list(shape), "dtype": "float32"} for shape in shapes]
    path = os.path.join(tmp, "lying.npz")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("tinynet_config.npy", _npy(np.frombuffer(json.dumps(config).encode(), np.uint8)))
        for i, shape in enumerate(shapes):
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
            z.writestr(f"weight_{i}.npy", header.getvalue())
    data = bytearray(open(path, "rb").read())
    at = 0
    while (at := data.find(b"PK\x01\x02", at)) != -1:  # each central-directory record
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_length].startswith(b"weight_"):
            struct.pack_into("<I", data, at + 20, 0xFFFFFFF0)  # its compressed size
        at += 4
    with open(path, "wb") as f:
        f.write(data)
    return path, "past the end of the"


def keras_config_that_asks_for_a_huge_weights_entry(tmp):
    """config.json asking for Dense(10**8), so that its own architecture would allow gigabytes of
    model.weights.h5: the entry's stored size must cap it, not the file's own description."""
    good = os.path.join(tmp, "good.keras")
    _model().save(good)
    with zipfile.ZipFile(good) as z:
        entries = {n: z.read(n) for n in z.namelist() if n != "model.weights.h5"}
        weights = z.read("model.weights.h5")
    config = json.loads(entries["config.json"])
    config["config"]["layers"][1]["config"]["units"] = 10**8
    entries["config.json"] = json.dumps(config).encode()
    path = _deflated(os.path.join(tmp, "asks.keras"), entries, "model.weights.h5", 2 * 10**9, head=weights)
    return path, "model.weights.h5 claims"


def npy_header_bomb(tmp):
    """An .npy (version 2) whose header declares 1 GiB: NumPy reads a declared header whole."""
    path = os.path.join(tmp, "header.npz")
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z,
        z.open("tinynet_config.npy", "w", force_zip64=True) as f,
    ):
        f.write(b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 30))
        block = b" " * (1 << 22)
        for _ in range(256):
            f.write(block)
    return path, "header of 1073741824 bytes"


def hdf5_chunk_bomb(tmp):
    """A 4-value bias stored in one gzip chunk of 2**28 values: reading it decompresses 1 GiB."""

    def edit(f):
        bias = f["layers/dense/vars/1"][()]
        del f["layers/dense/vars/1"]
        d = f.create_dataset(
            "layers/dense/vars/1", shape=(4,), maxshape=(None,), chunks=(1 << 28,), dtype="<f4", compression="gzip"
        )
        d[...] = bias

    return _keras_with_h5(tmp, "chunks.keras", edit), "stored in chunks of 1073741824 bytes"


def ten_thousand_links_weights_h5(tmp):
    """A .weights.h5 of 917 KB holding 10,000 hard links to one kernel: each link costs ~230 us
    to walk (a 99,000-link file took 23 s); a 2-layer model's file has a few dozen objects."""

    def edit(f):
        group = f.create_group("layers/junk")
        for k in range(10_000):
            group[str(k)] = f["layers/dense/vars/0"]

    return _weights_h5(tmp, "links.weights.h5", edit), "more than 320 objects"


def oversized_weights_h5(tmp):
    """A .weights.h5 padded with a 64 MB array: far more bytes than 43 weights need."""

    def edit(f):
        f.create_dataset("padding", data=np.zeros(1 << 24, np.float32))

    return _weights_h5(tmp, "big.weights.h5", edit), "take at most"


CASES = {
    f.__name__: f
    for f in (
        external_storage,
        external_storage_weights_h5,
        external_storage_on_a_fifo,
        virtual_dataset,
        external_link,
        soft_link,
        declared_but_never_written,
        declared_but_never_written_as_the_architecture,
        config_json_bomb,
        weights_entry_bomb,
        npz_member_bomb,
        npz_member_bomb_as_the_architecture,
        thousands_of_layers,
        a_fifo_as_the_model_file,
        a_fifo_as_the_keras_file,
        npz_index_that_lies_about_stored_sizes,
        keras_config_that_asks_for_a_huge_weights_entry,
        npy_header_bomb,
        hdf5_chunk_bomb,
        ten_thousand_links_weights_h5,
        oversized_weights_h5,
    )
}


def _load_code(path):
    if path.endswith(".weights.h5"):
        return f"""
        model = tn.Sequential([tn.Input((6,)), tn.Dense(4, activation="relu"), tn.Dense(3, activation="softmax")])
        model.load_weights({path!r})
        """
    return f"tn.load_model({path!r})"


def run_case(name, tmp):
    path, expected = CASES[name](str(tmp))
    result = run_limited(_load_code(path))
    return path, expected, result


@pytest.mark.parametrize("name", list(CASES))
def test_a_crafted_model_file_is_refused_cheaply_and_by_name(tmp_path, name):
    path, expected, result = run_case(name, tmp_path)
    assert result["outcome"].startswith("ModelFileError: "), result
    assert path in result["outcome"] and expected in result["outcome"], result
    assert result["peak_kib"] < 400 * 1024, result  # a few times what the legitimate file needs, not gigabytes
    assert result["seconds"] < 20, result


def test_the_children_do_fail_when_a_file_costs_more_than_their_limit(tmp_path):
    """The test of the tests: under the same limit, reading 1.6 GB as NumPy would fails."""
    path, _ = npz_member_bomb(str(tmp_path))
    result = run_limited(f"numpy.load({path!r})['weight_0']")
    assert result["outcome"].startswith("MemoryError"), result


if __name__ == "__main__":  # the table for a closing note: each case's outcome, peak memory and time
    import tempfile

    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            path, _, r = run_case(case, tmp)
            outcome = r["outcome"].replace(tmp + os.sep, "")
            print(f"| {case} | {outcome[:150]} | {r['peak_kib'] / 1024:.0f} MiB | {r['seconds']:.3f} s |")
