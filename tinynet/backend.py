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

import numpy as np

DEVICES = ("cpu", "gpu", "auto")

INSTALL_HINT = (
    'install CuPy for your CUDA version: pip install "tinynet[cuda12]" '
    '(CUDA 12) or pip install "tinynet[cuda13]" (CUDA 13)'
)


class DeviceUnavailableError(RuntimeError):
    """The requested device cannot be used on this machine."""


def _import_cupy():
    """Return the cupy module, or None with the reason it cannot be imported."""
    try:
        import cupy
    except ImportError as e:  # not installed, or a broken install
        return None, f"CuPy is not installed ({e})"
    return cupy, None


def gpu_status() -> tuple[bool, str]:
    """Whether a CUDA GPU is usable, and if not, why (a sentence for a user)."""
    cupy, why = _import_cupy()
    if cupy is None:
        return False, f"{why}; {INSTALL_HINT}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # driver missing, CUDA runtime mismatch, ...
        return False, f"CuPy is installed but cannot reach a CUDA device ({e})"
    if count == 0:
        return False, "CuPy is installed but this machine has no CUDA device"
    return True, f"{count} CUDA device(s)"


def gpu_available() -> bool:
    """True when CuPy is installed and sees at least one CUDA device."""
    return gpu_status()[0]


def resolve_device(device: str) -> str:
    """Turn ``"cpu"``, ``"gpu"`` or ``"auto"`` into ``"cpu"`` or ``"gpu"``.

    ``"auto"`` picks the GPU when one is usable, else the CPU. ``"gpu"`` raises
    :class:`DeviceUnavailableError` when CuPy or a CUDA device is missing.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return "cpu"
    ok, why = gpu_status()
    if device == "auto":
        return "gpu" if ok else "cpu"
    if not ok:
        raise DeviceUnavailableError(f'device="gpu" is not available: {why}.')
    return "gpu"


def xp_for(device: str):
    """The array module (numpy or cupy) of a resolved device."""
    if device == "cpu":
        return np
    if device == "gpu":
        cupy, why = _import_cupy()
        if cupy is None:
            raise DeviceUnavailableError(f'device="gpu" is not available: {why}; {INSTALL_HINT}.')
        return cupy
    raise ValueError(f'expected a resolved device "cpu" or "gpu", got {device!r}')


def get_array_module(x):
    """numpy for NumPy arrays (and Python scalars), cupy for CuPy arrays."""
    if type(x).__module__.startswith("cupy"):
        import cupy

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
