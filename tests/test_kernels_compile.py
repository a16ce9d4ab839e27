"""Every fused CUDA kernel (tinynet/engine/kernels.py) compiles with NVRTC for the GPUs
tinynet targets, with no GPU and no driver: a syntax or type error fails CI.

NVRTC comes from the pip wheels of the ``nvrtc`` extra (``pip install -e ".[nvrtc]"``;
``.ci/run`` installs it and sets TINYNET_REQUIRE_NVRTC=1, so there a missing NVRTC is
a failure, not a skip). Each installed NVRTC (CUDA 12 and CUDA 13: the one each
``cupy-cuda1?x[ctk]`` uses) compiles every kernel for each architecture.
"""

import os

import nvrtc_compiler as nvrtc
import pytest

from tinynet.engine import kernels

ARCHITECTURES = ["sm_80", "sm_90"]  # A100; H100 and H200
LIBRARIES = nvrtc.libraries()


@pytest.fixture(params=LIBRARIES or [None], ids=lambda path: f"nvrtc{path.rsplit('.', 1)[1]}" if path else "none")
def compiler(request):
    if request.param is None:
        message = 'NVRTC is not installed: pip install -e ".[nvrtc]" (the nvidia-cuda-nvrtc wheels)'
        if os.environ.get("TINYNET_REQUIRE_NVRTC"):
            pytest.fail(message)
        pytest.skip(message)
    return nvrtc.NVRTC(request.param)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("name", sorted(kernels.SOURCES))
def test_every_kernel_compiles(compiler, name, arch):
    cubin = compiler.compile_cubin(kernels.SOURCES[name], arch, f"{name}.cu")
    assert cubin[:4] == b"\x7fELF", "NVRTC gave no CUBIN"
    assert f"tinynet_{name}".encode() in cubin, f"the CUBIN has no kernel tinynet_{name} for RawKernel to find"


BROKEN = {
    "an undefined name": 'extern "C" __global__ void k(float* y) { y[0] = undefined_name; }',
    "a type error": 'extern "C" __global__ void k(float* y, const long long* t) { float* p = t; y[0] = *p; }',
    "a missing semicolon": 'extern "C" __global__ void k(float* y) { y[0] = 1.f }',
}


@pytest.mark.parametrize("what", list(BROKEN))
def test_a_broken_kernel_fails_to_compile(compiler, what):
    with pytest.raises(nvrtc.CompileError, match="error"):
        compiler.compile_cubin(BROKEN[what], "sm_90", "broken.cu")


def test_every_kernel_in_the_table_has_a_source():
    """The module docstring's table and SOURCES name the same kernels."""
    for name in kernels.SOURCES:
        assert f"| {name} " in kernels.__doc__
