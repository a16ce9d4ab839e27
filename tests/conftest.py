"""Shared fixtures: every device-aware test runs once per backend that is present.

NumPy ("cpu") always; CuPy ("gpu") when CuPy and a CUDA device are there, skipped
otherwise with the reason. One test file per concern, never a copied GPU file.
"""

import numpy as np
import pytest

from tinynet import backend


@pytest.fixture(params=["cpu", "gpu"])
def device(request):
    if request.param == "gpu":
        ok, why = backend.gpu_status()
        if not ok:
            pytest.skip(f"no GPU backend: {why}")
    return request.param


@pytest.fixture
def xp(device):
    return backend.xp_for(device)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
