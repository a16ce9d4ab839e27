"""Devices: "gpu" without CuPy or without a CUDA device is a clear error, never a
raw ImportError or a silent fall back to the CPU."""

import builtins
import importlib.util
import subprocess
import sys
import types

import numpy as np
import pytest
from conftest import STANDIN, use_standin

import tinynet as tn
from tinynet import backend
from tinynet.engine import kernels


@pytest.fixture
def no_cupy(monkeypatch):
    """CuPy missing on a machine with an NVIDIA driver (whatever this machine has)."""
    monkeypatch.setattr(backend, "_load_driver", lambda: None)
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
    assert "CuPy is not installed" in message and 'pip install -e ".[cuda12]"' in message
    assert not isinstance(info.value, ImportError)


def test_gpu_without_a_driver_says_so_first_and_names_the_cpu(no_cupy, monkeypatch):
    def no_driver():
        raise OSError("libcuda.so.1: cannot open shared object file")

    monkeypatch.setattr(backend, "_load_driver", no_driver)
    with pytest.raises(tn.DeviceUnavailableError) as info:
        backend.resolve_device("gpu")
    message = str(info.value)
    assert message.startswith('device="gpu" is not available: no NVIDIA driver found (')
    assert (
        "; CuPy is not installed (with a driver, install CuPy" in message
        and 'device="cpu" trains on the CPU' in message
    )
    assert "NVIDIA driver: no NVIDIA driver found" in "\n".join(backend.report())


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
    monkeypatch.setattr(backend, "_load_driver", lambda: None)  # a driver is there, but too old
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


# ------------------------------------------------------------------ the probe, with fakes


@pytest.fixture
def fresh_probe(monkeypatch):
    monkeypatch.setattr(backend, "_probed", {})
    monkeypatch.setattr(backend, "_told_auto", False)
    monkeypatch.setattr(kernels, "_cache", {})


def standin_with(**replaced):
    """The CuPy stand-in with some of its names replaced (a partial install)."""
    module = types.ModuleType("cupy")
    module.__dict__.update({name: getattr(STANDIN, name) for name in dir(STANDIN) if not name.startswith("__")})
    module.__dict__.update(__version__=STANDIN.__version__, **replaced)
    return module


def _fail(error):
    def fail(*args, **kwargs):
        raise error

    return fail


def test_no_nvidia_driver_is_said_as_such(monkeypatch, fresh_probe):
    def broken():
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version")

    monkeypatch.setattr(backend, "_import_cupy", lambda: (fake_cupy(broken), None))
    monkeypatch.setattr(backend, "_load_driver", _fail(OSError("libcuda.so.1: cannot open shared object file")))
    with pytest.raises(tn.DeviceUnavailableError, match="no NVIDIA driver found"):
        backend.resolve_device("gpu")


def test_a_partial_install_names_the_missing_library_and_the_command(monkeypatch, fresh_probe):
    no_nvrtc = standin_with(RawKernel=_fail(RuntimeError("DynamicLibNotFoundError: Failure finding libnvrtc.so")))
    no_cublas = standin_with(ones=_fail(ImportError("libcublasLt.so.13: cannot open shared object file")))
    no_cublas.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(**vars(STANDIN.cuda.runtime)))
    no_cublas.cuda.runtime.runtimeGetVersion = lambda: 13000
    for module, library, command in (
        (no_nvrtc, "NVRTC", 'pip install "cupy-cuda12x[ctk]>=14"'),
        (no_cublas, "cuBLAS", 'pip install "cupy-cuda13x[ctk]>=14"'),
    ):
        monkeypatch.setattr(backend, "_import_cupy", lambda module=module: (module, None))
        with pytest.raises(tn.DeviceUnavailableError) as info:
            backend.resolve_device("gpu")
        assert library in str(info.value) and command in str(info.value)


def test_a_broken_cupy_import_of_any_kind_is_caught(monkeypatch, fresh_probe):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "cupy":
            raise OSError("libcudart.so.12: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(tn.DeviceUnavailableError, match="CuPy is installed but cannot be imported .OSError"):
        backend.resolve_device("gpu")


def test_auto_says_once_why_it_chose_the_cpu(no_cupy, fresh_probe, capsys):
    assert backend.resolve_device("auto") == "cpu"
    assert backend.resolve_device("auto") == "cpu"
    lines = capsys.readouterr().err.splitlines()
    assert lines == ['tinynet: device="auto" uses the CPU: CuPy is not installed (python -m tinynet says more)']


def test_the_probe_passes_on_the_standin_and_the_report_says_so(monkeypatch, fresh_probe):
    use_standin(monkeypatch)
    assert backend.gpu_status() == (True, "1 CUDA device(s), every probe passed")
    lines = backend.report()
    assert lines[0] == f"CuPy: {STANDIN.__version__}" and lines[1] == "CUDA: runtime 12.9, driver 12.9"
    assert lines[2] == "device 0: CuPy stand-in (NumPy on the CPU) (sm_90)"
    assert [line.rsplit(": ", 1)[1] for line in lines[3:6]] == ["passed"] * 3
    assert lines[-1].startswith('device="gpu": works')


def test_python_m_tinynet_says_what_is_missing():
    if backend.gpu_status()[0] or importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here")
    done = subprocess.run([sys.executable, "-m", "tinynet"], capture_output=True, text=True)
    assert done.returncode == 1
    driver = backend.driver_problem() or "an NVIDIA driver is installed (libcuda loads)"
    assert done.stdout.splitlines()[:3] == [
        f"NVIDIA driver: {driver}.",
        "CuPy is not installed.",
        f"To use a GPU, {backend.install_hint()}.",
    ]
