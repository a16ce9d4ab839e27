"""How many threads NumPy's BLAS may use while tinynet trains on the CPU.

A small matrix product (784-100-10 at batch 32 is a few MFLOP) gains little from a
second thread on a quiet machine (about 10% on two cores) and loses a lot on a busy
one: every product then waits for a thread that is not running (measured on this
project's 2-core machine with both cores held by other work: 5x slower per epoch
with two OpenBLAS threads, 1.3x with one). So while tinynet trains or evaluates, the
BLAS pool is limited to one thread when the largest product of a step is small,
and left as it is for large ones (a convnet's middle layers), with threadpoolctl,
the well-kept library made for exactly this. ``TINYNET_BLAS_THREADS=N`` overrides
the choice; the benchmarks' README has the figures behind the threshold.
"""

from __future__ import annotations

import contextlib
import math
import os

from threadpoolctl import threadpool_info, threadpool_limits

ENV = "TINYNET_BLAS_THREADS"
SMALL = 64e6  # FLOPs: a step whose largest product is smaller runs its BLAS on one thread


def largest_product(model, batch_size: int) -> float:
    """The FLOPs of the largest matrix product in one step of ``model`` at ``batch_size``."""
    largest = 0.0
    for layer, out_shape in zip(model.layers, model.shapes):
        kernel = getattr(getattr(layer, "kernel", None), "value", None)
        if kernel is not None:  # Dense: (N, I) @ (I, U); Conv2D: (N * OH * OW, kh * kw * C) @ (..., F)
            pixels = math.prod(out_shape[:-1]) if kernel.ndim == 4 else 1
            largest = max(largest, 2.0 * batch_size * pixels * math.prod(kernel.shape))
    return largest


def choose(model, batch_size: int):
    """The thread limit for training ``model`` at ``batch_size``: an int, or None to leave BLAS as it is."""
    override = os.environ.get(ENV)
    if override:
        try:
            return max(1, int(override))
        except ValueError:
            raise ValueError(f"{ENV} must be a whole number of threads, got {override!r}") from None
    return 1 if largest_product(model, batch_size) < SMALL else None


@contextlib.contextmanager
def limited(model, batch_size: int):
    """For the block: the BLAS pool limited as :func:`choose` says (CPU models only)."""
    limit = choose(model, batch_size) if model.device == "cpu" and model.layers and model.built else None
    if limit is None:
        yield
        return
    with threadpool_limits(limits=limit, user_api="blas"):
        yield


def describe() -> str:
    """One line for the summary: the BLAS library, its threads, and the policy while training."""
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    name = pools[0].get("internal_api", "BLAS") if pools else "no BLAS found"
    threads = pools[0].get("num_threads") if pools else "?"
    if os.environ.get(ENV):
        return f"{name}, {os.environ[ENV]} thread(s) in fit ({ENV})"
    return f"{name}, {threads} threads; 1 in fit when products are small (< {SMALL / 1e6:g} MFLOP)"
