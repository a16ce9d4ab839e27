"""Devices: "gpu" without CuPy or without a CUDA device is a clear error, never a
raw ImportError or a silent fall back to the CPU."""

import builtins

import numpy as np
import pytest

import tinynet as tn
from tinynet import backend


@pytest.fixture
def no_cupy(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_gpu_without_cupy_says_how_to_install(no_cupy):
    with pytest.raises(tn.DeviceUnavailableError) as info:
        tn.Sequential([tn.Dense(2)], device="gpu")
    message = str(info.value)
    assert "CuPy is not installed" in message and 'pip install "tinynet[cuda12]"' in message
    assert not isinstance(info.value, ImportError)


def fake_cupy(device_count):
    """A stand-in for the cupy module whose runtime reports ``device_count()``."""

    class FakeCupy:
        class cuda:
            class runtime:
                getDeviceCount = staticmethod(device_count)

    return FakeCupy


def test_gpu_without_a_cuda_device(monkeypatch):
    monkeypatch.setattr(backend, "_import_cupy", lambda: (fake_cupy(lambda: 0), None))
    with pytest.raises(tn.DeviceUnavailableError, match="CuPy is installed but this machine has no CUDA device"):
        backend.resolve_device("gpu")
    assert backend.resolve_device("auto") == "cpu"


def test_driver_error_is_reported(monkeypatch):
    def broken():
        raise RuntimeError("cudaErrorInsufficientDriver")

    monkeypatch.setattr(backend, "_import_cupy", lambda: (fake_cupy(broken), None))
    with pytest.raises(tn.DeviceUnavailableError, match="cannot reach a CUDA device.*InsufficientDriver"):
        backend.resolve_device("gpu")


def test_auto_falls_back_only_when_asked(no_cupy):
    assert backend.resolve_device("auto") == "cpu"
    assert tn.Sequential(device="auto").device == "cpu"


def test_unknown_device():
    with pytest.raises(ValueError, match=r"device must be one of \('cpu', 'gpu', 'auto'\), got 'tpu'"):
        tn.Sequential(device="tpu")


def test_arrays_move_explicitly(device, xp):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    on_device = backend.to_device(a, device)
    assert backend.device_of(on_device) == device and backend.get_array_module(on_device) is xp
    back = backend.to_numpy(on_device)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, a)


def test_numpy_data_is_moved_to_the_models_device_at_the_api_boundary(device):
    model = tn.Sequential([tn.Input((3,)), tn.Dense(2, activation="softmax")], device=device, seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.ones((4, 3), dtype=np.float32)
    model.fit(x, np.array([0, 1, 0, 1]), verbose=0)  # NumPy in, moved once
    out = model.predict(x)
    assert isinstance(out, np.ndarray)  # NumPy out
    assert all(backend.device_of(p.value) == device for p in model.parameters())


def test_model_to_moves_parameters_and_optimizer_state(device):
    model = tn.Sequential([tn.Input((3,)), tn.Dense(2)], seed=0)
    model.compile("adam", "mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    model.to(device)
    assert all(backend.device_of(p.value) == device for p in model.parameters())
    assert all(backend.device_of(s) == device for slot in model.optimizer.slots.values() for s in slot)
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
