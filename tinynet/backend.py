"""Devices and array modules: the only module in tinynet that imports CuPy.

tinynet's math is written once against ``xp``, which is either ``numpy`` (device
``"cpu"``) or ``cupy`` (device ``"gpu"``). Everything else asks this module which
one to use:

- ``resolve_device(name)`` turns ``"cpu"``, ``"gpu"`` or ``"auto"`` into ``"cpu"`` or
  ``"gpu"``. Asking for ``"gpu"`` when CuPy or a CUDA device is missing raises
  :class:`DeviceUnavailableError` that says which is missing and how to install;
  tinynet never falls back to the CPU silently.
- ``xp_for(device)`` is the array module of a device, ``get_array_module(x)`` the one
  an array lives in.
- ``to_device(x, device)`` and ``to_numpy(x)`` move arrays explicitly.
"""

from __future__ import annotations

import ctypes
import os
import sys

import numpy as np

from .engine import kernels

DEVICES = ("cpu", "gpu", "auto")


def from_checkout() -> bool:
    """Whether this tinynet runs from a source checkout (``pip install -e .``, or the tree
    itself on the path): its folder sits beside the checkout's pyproject.toml."""
    project = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml")
    try:
        with open(project, encoding="utf-8") as f:
            return 'name = "tinynet"' in f.read(4096)
    except OSError:
        return False


def install_command(extra: str) -> str:
    """The pip command that adds the optional dependencies ``extra``, as this tinynet was
    installed: ``pip install -e ".[plot]"`` in a checkout, ``pip install "tinynet[plot]"`` else."""
    return f'pip install -e ".[{extra}]"' if from_checkout() else f'pip install "tinynet[{extra}]"'


def install_hint() -> str:
    """How to install CuPy with the CUDA libraries it needs, for either CUDA."""
    where = "in the tinynet checkout, " if from_checkout() else ""
    return (
        f"install CuPy with the CUDA libraries it needs, {where}{install_command('cuda12')} (CUDA 12) or "
        f"{install_command('cuda13')} (CUDA 13), which give cupy-cuda12x[ctk] or cupy-cuda13x[ctk]"
    )


# what a message names when a probe's error mentions it: (text in the error, the library)
LIBRARIES = (
    ("nvrtc", "NVRTC, the CUDA runtime compiler"),
    ("cublas", "cuBLAS"),
    ("curand", "cuRAND"),
    ("cudart", "the CUDA runtime (cudart)"),
    ("include", "the CUDA headers"),
)
_probed: dict = {}  # the cupy module -> (usable, why): the probe runs once per process
_told_auto = False


class DeviceUnavailableError(RuntimeError):
    """The requested device cannot be used on this machine."""


def _import_cupy():
    """Return the cupy module, or None with the reason it cannot be imported."""
    try:
        import cupy
    except Exception as e:  # not installed; or installed and broken (a missing library, a bad wheel)
        if isinstance(e, ImportError) and "No module named 'cupy'" in str(e):
            return None, "CuPy is not installed"
        return None, f"CuPy is installed but cannot be imported ({type(e).__name__}: {e})"
    return cupy, None


def _load_driver():
    """Load the NVIDIA driver's library (libcuda), which only the driver installs."""
    ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")


def driver_problem() -> str | None:
    """None when the NVIDIA driver's library loads, else a sentence saying it does not."""
    try:
        _load_driver()
    except OSError as e:
        return f"no NVIDIA driver found (its library libcuda could not be loaded: {e})"
    return None


def _cuda_major(cupy):
    try:
        return cupy.cuda.runtime.runtimeGetVersion() // 1000
    except Exception:
        return None


def _probe_elementwise(cupy):
    got = (cupy.arange(4, dtype=cupy.float32) * 2 + 1).get()
    assert got.tolist() == [1, 3, 5, 7], got


def _probe_matmul(cupy):
    a = cupy.ones((2, 3), dtype=cupy.float32)
    assert (a @ a.T).get().tolist() == [[3, 3], [3, 3]]


def _probe_tinynet_kernel(cupy):
    y = cupy.asarray(np.array([1, -1, 2, 0], dtype=np.float32))
    got = kernels.relu_backward(y, y * 3).get()
    assert got.tolist() == [3, 0, 6, 0], got


PROBES = (
    ("an element-wise kernel", _probe_elementwise),
    ("a matrix product (cuBLAS)", _probe_matmul),
    ("tinynet's own kernel relu_backward (NVRTC)", _probe_tinynet_kernel),
)


def run_probes(cupy) -> list[tuple[str, Exception | None]]:
    """Each probe's name and its error (None when it passed), all run on device 0."""
    results = []
    for name, probe in PROBES:
        try:
            probe(cupy)
            results.append((name, None))
        except Exception as e:  # a missing library shows up as any kind of error
            results.append((name, e))
    return results


def explain(cupy, probe, error) -> str:
    """A sentence for a failed probe: which library is missing and the pip command that installs it."""
    text = f"{type(error).__name__}: {error}".strip()
    missing = next((lib for key, lib in LIBRARIES if key in text.lower()), None)
    major = _cuda_major(cupy)
    install = (
        f'pip install "cupy-cuda{major}x[ctk]>=14" (or {install_command(f"cuda{major}")})' if major else install_hint()
    )
    what = f"{missing} is missing or broken" if missing else "the CUDA installation is incomplete"
    return f"CuPy {getattr(cupy, '__version__', '?')} is installed but {probe} failed: {what} ({text}); {install}"


def _probe(cupy) -> tuple[bool, str]:
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # no driver, a driver too old for this CUDA, ...
        return False, driver_problem() or f"CuPy is installed but cannot reach a CUDA device ({e})"
    if count == 0:
        return False, "CuPy is installed but this machine has no CUDA device"
    for name, error in run_probes(cupy):
        if error is not None:
            return False, explain(cupy, name, error)
    return True, f"{count} CUDA device(s), every probe passed"


def gpu_status() -> tuple[bool, str]:
    """Whether a CUDA GPU is usable, and if not, why (a sentence for a user).

    Usable means proven: CuPy imports, sees a device, and runs an element-wise kernel,
    a matrix product and one of tinynet's kernels with the right results (once per
    process). A partial install (no NVRTC, no cuBLAS) is found here, not in ``fit``."""
    cupy, why = _import_cupy()
    if cupy is None:
        driver = driver_problem()
        if driver is not None:  # the first thing missing: without a driver, CuPy would not help
            return False, f"{driver}; {why} (with a driver, {install_hint()})"
        return False, f"{why}; {install_hint()}"
    if cupy not in _probed:
        _probed[cupy] = _probe(cupy)
    return _probed[cupy]


def gpu_available() -> bool:
    """True when CuPy is installed and a CUDA device passed every probe."""
    return gpu_status()[0]


def resolve_device(device: str) -> str:
    """Turn ``"cpu"``, ``"gpu"`` or ``"auto"`` into ``"cpu"`` or ``"gpu"``.

    ``"auto"`` picks the GPU when one is usable, else the CPU (and says why, once).
    ``"gpu"`` raises :class:`DeviceUnavailableError` when the GPU is not usable.
    """
    global _told_auto
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return "cpu"
    ok, why = gpu_status()
    if device == "auto":
        if not ok and not _told_auto:  # the first reason, in one line; python -m tinynet tells the rest
            first = why.split("; ")[0]
            print(
                f'tinynet: device="auto" uses the CPU: {first} (python -m tinynet says more)',
                file=sys.stderr,
                flush=True,
            )
            _told_auto = True
        return "gpu" if ok else "cpu"
    if not ok:
        raise DeviceUnavailableError(
            f'device="gpu" is not available: {why}. device="cpu" trains on the CPU; device="auto" '
            "uses the GPU where one works, else the CPU."
        )
    return "gpu"


def xp_for(device: str):
    """The array module (numpy or cupy) of a resolved device."""
    if device == "cpu":
        return np
    if device == "gpu":
        cupy, why = _import_cupy()
        if cupy is None:
            raise DeviceUnavailableError(f'device="gpu" is not available: {why}; {install_hint()}.')
        return cupy
    raise ValueError(f'expected a resolved device "cpu" or "gpu", got {device!r}')


def get_array_module(x):
    """numpy for NumPy arrays (and Python scalars), cupy for CuPy arrays."""
    cupy = sys.modules.get("cupy")  # an array of CuPy's exists only once CuPy is imported
    if cupy is not None and isinstance(x, cupy.ndarray):
        return cupy
    return np


def device_of(x) -> str:
    """``"gpu"`` for a CuPy array, ``"cpu"`` otherwise."""
    return "gpu" if get_array_module(x) is not np else "cpu"


def to_device(x, device: str):
    """Return ``x`` as an array on ``device`` (a copy only when it has to move)."""
    if device == "cpu":
        return to_numpy(x)
    xp = xp_for(device)
    return xp.asarray(x)


def to_numpy(x) -> np.ndarray:
    """Return ``x`` as a NumPy array, copying it from the GPU when needed."""
    if device_of(x) == "gpu":
        return x.get()
    return np.asarray(x)


def clear_session():
    """As ``keras.backend.clear_session``: let go of what tinynet keeps between models. Layer
    names already start afresh in each model (dense, dense_1, ... per model), so there is no
    counter to reset; on the GPU, CuPy's cached device memory is handed back."""
    import gc

    gc.collect()
    cupy = sys.modules.get("cupy")
    if cupy is not None and getattr(cupy, "get_default_memory_pool", None):
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()


_model_seeds = None  # the generator of model seeds once tinynet.utils.set_random_seed was called


def seed_models(seed: int):
    """From here on, each model made without ``seed=`` takes the next seed of this sequence
    (``tinynet.utils.set_random_seed``)."""
    global _model_seeds
    _model_seeds = np.random.default_rng(int(seed))


def next_model_seed():
    """The seed for a model made without one: the next of :func:`seed_models`'s sequence, or None (fresh)."""
    return None if _model_seeds is None else int(_model_seeds.integers(2**31))


def random_generator(seed, device: str):
    """A random generator that lives on ``device`` (for dropout masks).

    On the CPU a NumPy ``Generator``; on the GPU a CuPy ``Generator``, so masks are
    drawn where they are used. ``seed`` may be an int or None.
    """
    xp = xp_for(device)
    return xp.random.default_rng(seed)


def generator_state(rng):
    """A random generator's state as JSON-able data (None for a GPU generator, whose
    state cannot be read back)."""
    state = getattr(getattr(rng, "bit_generator", None), "state", None)
    return state if isinstance(state, dict) else None


def set_generator_state(rng, state):
    """Restore what :func:`generator_state` returned (a GPU generator keeps its own)."""
    bit_generator = getattr(rng, "bit_generator", None)
    if bit_generator is not None and isinstance(getattr(bit_generator, "state", None), dict):
        bit_generator.state = state


def report() -> list[str]:
    """What tinynet sees of the GPU, line by line (``python -m tinynet``)."""
    cupy, why = _import_cupy()
    if cupy is None:
        driver = driver_problem() or "an NVIDIA driver is installed (libcuda loads)"
        return [
            f"NVIDIA driver: {driver}.",
            f"{why}.",
            f"To use a GPU, {install_hint()}.",
            'device="gpu": not available; "auto" uses the CPU',
        ]
    lines = [f"CuPy: {cupy.__version__}"]
    runtime = cupy.cuda.runtime
    try:
        count = runtime.getDeviceCount()
        versions = [runtime.runtimeGetVersion(), runtime.driverGetVersion()]
        lines.append("CUDA: runtime {}.{}, driver {}.{}".format(*(p for v in versions for p in divmod(v // 10, 100))))
        for i in range(count):
            props = runtime.getDeviceProperties(i)
            name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            lines.append(f"device {i}: {name} (sm_{props['major']}{props['minor']})")
    except Exception as e:
        lines.append(f"CUDA: {driver_problem() or f'no CUDA device can be reached ({e})'}")
        return lines + ['device="gpu": not available; "auto" uses the CPU']
    for name, error in run_probes(cupy):
        lines.append(f"probe, {name}: {'passed' if error is None else explain(cupy, name, error)}")
    ok, why = gpu_status()
    return lines + [f'device="gpu": {"works" if ok else "not available"} ({why})']


def main() -> int:
    print("\n".join(report()))
    return 0 if gpu_available() else 1


if __name__ == "__main__":
    sys.exit(main())
