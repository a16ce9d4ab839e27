"""The GPU code path without a GPU: on the strict CuPy stand-in (tests/cupy_standin.py),
a training epoch reads nothing back from the device per step and uploads the training
data once per fit; and the stand-in refuses what real CuPy refuses (else these tests
would prove nothing)."""

import math
import warnings
from collections import Counter

import cupy_standin
import numpy as np
import pytest
from conftest import use_standin

import tinynet as tn
from tinynet.engine import kernels
from tinynet.engine import loop as training


@pytest.fixture
def cp(monkeypatch):
    use_standin(monkeypatch)
    import cupy

    return cupy


def test_the_standin_refuses_what_cupy_refuses(cp):
    a = cp.asarray(np.ones(3, np.float32))
    host = np.ones(3, np.float32)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    for mixed in (lambda: a + host, lambda: host + a, lambda: cp.maximum(a, host), lambda: np.add(host, a)):
        with pytest.raises(TypeError, match="host"):
            mixed()
    with pytest.raises(TypeError, match="out= must be a cupy.ndarray"):
        cp.multiply(a, 2, out=host)
    with pytest.raises(AttributeError, match="no cupy.histogramdd"):
        cp.histogramdd  # noqa: B018 (NumPy has it, the stand-in does not)
    assert isinstance(np.exp(a), cp.ndarray) and isinstance(a.sum(), cp.ndarray)  # as CuPy: on the device


def test_the_standin_warns_of_no_floating_point_event_as_cupy(cp):
    """A GPU raises no floating-point exceptions and CuPy warns of none; NumPy would warn of each."""
    zero, big = cp.asarray(np.zeros(2, np.float32)), cp.asarray(np.full(2, 3e38, np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would fail the test
        results = [zero / zero, big * big, cp.exp(-cp.log(zero)), np.sqrt(zero - 1), zero.__rtruediv__(1.0)]
        big *= 10
        results += [big, (big - big).sum(), cp.matmul(big.reshape(1, 2), big.reshape(2, 1))]
    assert [bool(cp.isnan(r).all()) or bool(cp.isinf(r).all()) for r in results] == [True] * len(results)


def test_the_standin_counts_syncs_and_uploads(cp):
    a = cp.asarray(np.arange(4.0))  # upload
    b = a * 2  # neither
    float(b.sum()), b.get(), bool(b[0] == 0), b[1].item()  # four syncs
    a[...] = np.zeros(4)  # an upload
    assert cupy_standin.counts == {"sync": 4, "upload": 2, "capture": 0}


def test_a_kernel_argument_of_the_wrong_c_type_is_refused(cp):
    y = cp.asarray(np.ones(4, np.float32))
    kernel = cp.RawKernel(kernels.SOURCES["relu_backward"], "tinynet_relu_backward")
    with pytest.raises(TypeError, match="long long n.*numpy.int64"):
        kernel((1,), (32,), (y, y, y, 4))  # a Python int: a long long by luck, but not said
    with pytest.raises(TypeError, match="C-contiguous float32"):
        kernel((1,), (32,), (y, y, y.astype(np.float64), np.int64(4)))
    with pytest.raises(TypeError, match="takes 4 arguments"):
        kernel((1,), (32,), (y, y, np.int64(4)))


def _epoch_events(steps, **fit):
    rng = np.random.default_rng(0)
    n, batch = steps * 8, 8
    x, y = rng.random((n, 20)).astype(np.float32), rng.integers(0, 5, n)
    model = tn.Sequential(
        [tn.Input((20,)), tn.Dense(32, activation="relu"), tn.Dropout(0.2), tn.Dense(5, activation="softmax")],
        device="gpu",
        seed=0,
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    cupy_standin.reset_counts()
    model.fit(x, y, batch_size=batch, verbose=0, **fit)
    assert tn.engine.twins.installed(model) == []  # the fused twins were there (checked below) and are gone
    return Counter(cupy_standin.events)


def test_a_training_epoch_reads_the_device_only_for_the_nan_watch_and_its_end(cp):
    steps, epochs = 125, 2
    events = _epoch_events(steps, epochs=epochs)
    syncs = Counter()
    for (kind, what, where), k in events.items():
        syncs[what, where] += k if kind == "sync" else 0
    watch = sum(k for (_, where), k in syncs.items() if "_watch_divergence" in where)
    end = sum(k for (_, where), k in syncs.items() if "loop.py" in where and ("read" in where or "dictcomp" in where))
    first_step = sum(k for (_, where), k in syncs.items() if "_check_every_gradient_was_set" in where)
    finite = sum(k for (_, where), k in syncs.items() if "weights_finite" in where)
    assert watch == epochs * math.ceil(steps / training.NAN_CHECK_EVERY)  # steps 50, 100 and the last
    assert end == epochs * 2  # the running loss and accuracy, once per epoch
    assert first_step == 1  # the layer contract's check at the first step of the fit, in one read
    assert finite == epochs  # every weight and moment checked finite at the end of each epoch, in one read
    assert sum(syncs.values()) == watch + end + first_step + finite, f"a sync elsewhere: {syncs}"


def test_fit_uploads_the_training_data_once(cp):
    steps, epochs = 20, 3
    events = _epoch_events(steps, epochs=epochs)
    uploads = Counter()
    for (kind, what, _), k in events.items():
        uploads[what] += k if kind == "upload" else 0
    n = steps * 8
    assert uploads[f"ndarray ({n}, 20)"] == 1  # x
    # y once, and each epoch's shuffled order (drawn on the host as on the CPU, so both train alike)
    assert uploads[f"ndarray ({n},)"] == 1 + epochs
    assert sum(uploads.values()) == 2 + epochs, uploads


def test_the_fused_kernels_ran_in_that_epoch(cp, monkeypatch):
    launched = Counter()
    real = kernels._launch
    monkeypatch.setattr(kernels, "_launch", lambda name, *args: (launched.update([name]), real(name, *args)))
    _epoch_events(10, epochs=1)
    assert set(launched) == {"bias_relu", "relu_backward", "softmax_xent", "adam"}
    assert launched["adam"] == 10
