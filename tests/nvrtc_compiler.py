"""NVRTC, NVIDIA's runtime CUDA compiler, called through ctypes: no GPU, no driver.

NVRTC is a plain shared library; the pip wheels ``nvidia-cuda-nvrtc-cu12`` (CUDA 12)
and ``nvidia-cuda-nvrtc`` (CUDA 13) install it under ``site-packages/nvidia``
(``pip install -e ".[nvrtc]"``). ``libraries()`` finds every one installed, and
``compile_cubin`` compiles a CUDA C source for one architecture, exactly as
``cupy.RawKernel`` has NVRTC do it on a GPU machine.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os


class CompileError(RuntimeError):
    """NVRTC refused a source; the message holds its log."""


def libraries() -> list[str]:
    """Paths of every libnvrtc.so.<major> that a pip wheel installed (newest CUDA last)."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    found = []
    for root in spec.submodule_search_locations:
        found += glob.glob(os.path.join(root, "*", "lib", "libnvrtc.so.[0-9]*"))
    return sorted(found, key=lambda path: int(path.rsplit(".", 1)[1]))


class NVRTC:
    """One libnvrtc, loaded by path."""

    def __init__(self, path: str):
        self.path = path
        self.lib = ctypes.CDLL(path)
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        self.version = (major.value, minor.value)

    def _check(self, status, what, log=""):
        if status != 0:
            self.lib.nvrtcGetErrorString.restype = ctypes.c_char_p
            reason = self.lib.nvrtcGetErrorString(status).decode()
            raise CompileError(f"{what} failed: {reason}\n{log}".rstrip())

    def compile_cubin(self, source: str, arch: str, name: str = "kernel.cu") -> bytes:
        """The CUBIN (machine code) of ``source`` for ``arch`` ("sm_80", ...); CompileError
        with NVRTC's log when the source has an error."""
        program = ctypes.c_void_p()
        self._check(
            self.lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), name.encode(), 0, None, None),
            "nvrtcCreateProgram",
        )
        try:
            options = [f"--gpu-architecture={arch}".encode()]
            status = self.lib.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options))
            self._check(status, f"compiling {name} for {arch} with NVRTC {self.version}", self._log(program))
            size = ctypes.c_size_t()
            self._check(self.lib.nvrtcGetCUBINSize(program, ctypes.byref(size)), "nvrtcGetCUBINSize")
            cubin = ctypes.create_string_buffer(size.value)
            self._check(self.lib.nvrtcGetCUBIN(program, cubin), "nvrtcGetCUBIN")
            return cubin.raw
        finally:
            self.lib.nvrtcDestroyProgram(ctypes.byref(program))

    def _log(self, program) -> str:
        size = ctypes.c_size_t()
        self.lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        self.lib.nvrtcGetProgramLog(program, log)
        return log.value.decode(errors="replace")
