"""How many threads a training step uses on the CPU, and whose threads they are.

A small matrix product (784-100-10 at batch 32 is a few MFLOP) gains little from a
second thread on a quiet machine (about 10% on two cores) and loses a lot on a busy
one: every product then waits for a thread that is not running (measured on this
project's 2-core machine with both cores held by other work: 5x slower per epoch
with two OpenBLAS threads, 1.3x with one). So in fit, evaluate and the one-batch
calls, a step whose largest product is small runs on one thread.

A step with large products (a convnet's middle layers) runs on every core BLAS would
use, in one of two ways:

- a training step whose largest product is a convolution's (in fit, its validation
  too): tinynet's own threads. The convolution and pooling twins (tinynet/engine/twins.py)
  cut the batch into ranges of samples and run each range, its products and its
  passes over memory, on its own thread, with BLAS on one thread.
  BLAS's threads would help only the products, and they spin for a while after each
  one, so the passes NumPy runs in between could not use the second core; a worker of
  tinynet's that waits sleeps instead, which also keeps a busy machine usable.
- other large steps (a large Dense layer; ``evaluate`` and ``predict``, which run
  the textbook methods): BLAS's own threads for the products, as BLAS chooses.

The pools are limited with threadpoolctl, the well-kept library made for exactly this.
``TINYNET_BLAS_THREADS=N`` sets the number of threads of a step (BLAS's, or tinynet's
own); the benchmarks' README has the figures behind these choices.
"""

from __future__ import annotations

import contextlib
import math
import os

from threadpoolctl import threadpool_info, threadpool_limits

ENV = "TINYNET_BLAS_THREADS"
SMALL = 64e6  # FLOPs: a step whose largest product is smaller runs on one thread


def _products(model, batch_size: int):
    """(FLOPs, is a convolution) of each layer's matrix product in one step at ``batch_size``."""
    for layer, out_shape in zip(model.layers, model.shapes):
        kernel = getattr(getattr(layer, "kernel", None), "value", None)
        if kernel is not None:  # Dense: (N, I) @ (I, U); Conv2D: (N * OH * OW, kh * kw * C) @ (..., F)
            pixels = math.prod(out_shape[:-1]) if kernel.ndim == 4 else 1
            yield 2.0 * batch_size * pixels * math.prod(kernel.shape), kernel.ndim == 4


def largest_product(model, batch_size: int) -> float:
    """The FLOPs of the largest matrix product in one step of ``model`` at ``batch_size``."""
    return max((flops for flops, _ in _products(model, batch_size)), default=0.0)


def choose(model, batch_size: int):
    """The threads of a step of ``model`` at ``batch_size``: an int, or None for as many as BLAS has."""
    override = os.environ.get(ENV)
    if override:
        try:
            return max(1, int(override))
        except ValueError:
            raise ValueError(f"{ENV} must be a whole number of threads, got {override!r}") from None
    return 1 if largest_product(model, batch_size) < SMALL else None


def _blas_pools() -> list:
    return [p for p in threadpool_info() if p.get("user_api") == "blas"]


def blas_threads() -> int:
    """How many threads NumPy's BLAS runs now (1 where none is found)."""
    pools = _blas_pools()
    return max(1, min(p.get("num_threads") or 1 for p in pools)) if pools else 1


def plan(model, batch_size: int, own_threads: bool) -> tuple:
    """(BLAS's thread limit or None to leave it, tinynet's own threads) for a step of a
    CPU ``model``; ``own_threads``: whether its twins can split the step themselves, which
    they do when its largest product is a convolution's."""
    if model.device != "cpu" or not (model.layers and model.built):
        return None, 1
    threads = choose(model, batch_size)
    largest = max(_products(model, batch_size), default=(0.0, False))
    if not (own_threads and largest[1]):  # tinynet's own threads split only convolutions' products
        return threads, 1
    return 1, threads if threads is not None else blas_threads()


@contextlib.contextmanager
def limited(model, batch_size: int, own_threads: bool = False):
    """For the block: BLAS's pool limited as :func:`plan` says; yields tinynet's own threads."""
    limit, own = plan(model, batch_size, own_threads)
    if limit is None:
        yield own
        return
    with threadpool_limits(limits=limit, user_api="blas"):
        yield own


def describe() -> str:
    """One line for the summary: the BLAS library, its threads, and the policy while training."""
    pools = _blas_pools()
    name = pools[0].get("internal_api", "BLAS") if pools else "no BLAS found"
    threads = pools[0].get("num_threads") if pools else "?"
    if os.environ.get(ENV):
        return f"{name}, {os.environ[ENV]} thread(s) in fit ({ENV})"
    return f"{name}, {threads} threads; in fit 1 for small products, own ones in convnets"
