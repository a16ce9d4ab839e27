"""Shared fixtures: every device-aware test runs on both backends.

NumPy ("cpu") always. "gpu": real CuPy when CuPy and a CUDA device pass tinynet's
probe; otherwise the strict CuPy stand-in of tests/cupy_standin.py, installed as
``sys.modules["cupy"]`` for the length of the test, so the GPU code path (dispatch,
data movement, the fused kernels' CUDA sources run on the CPU) is tested on every
commit. TINYNET_TEST_STANDIN=0 skips the "gpu" tests instead; =1 uses the stand-in
even where a GPU is present. One test file per concern, never a copied GPU file.
"""

import os
import sys

import cupy_standin
import numpy as np
import pytest

from tinynet import backend
from tinynet.engine import kernels

STANDIN = cupy_standin.make_module()


def use_standin(monkeypatch):
    """Install the CuPy stand-in for one test, its counts at zero."""
    monkeypatch.setitem(sys.modules, "cupy", STANDIN)
    monkeypatch.setattr(kernels, "_cache", {})  # kernels built for the stand-in stay with it
    cupy_standin.reset_counts()
    monkeypatch.setattr(cupy_standin, "_capture", None)  # no capture left open by an earlier test


def gpu_backend(monkeypatch):
    """Real CuPy where a GPU passes tinynet's probe, else the stand-in (as the module says)."""
    choice = os.environ.get("TINYNET_TEST_STANDIN")
    ok, why = (False, "TINYNET_TEST_STANDIN=1") if choice == "1" else backend.gpu_status()
    if not ok:
        if choice == "0":
            pytest.skip(f"no GPU backend: {why}")
        use_standin(monkeypatch)
    return "gpu"


@pytest.fixture(params=["cpu", "gpu"])
def device(request, monkeypatch):
    return gpu_backend(monkeypatch) if request.param == "gpu" else "cpu"


@pytest.fixture
def gpu(monkeypatch):
    """The "gpu" device alone: for what only runs there (CUDA graphs)."""
    return gpu_backend(monkeypatch)


@pytest.fixture
def xp(device):
    return backend.xp_for(device)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
