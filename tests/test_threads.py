"""The BLAS thread policy: one thread for a step of small products, the library's own
choice for large ones, TINYNET_BLAS_THREADS to override, and only during fit/evaluate."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import tinynet as tn
from tinynet import threads


def blas_threads():
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def mlp():
    model = tn.Sequential([tn.Input((784,)), tn.Dense(100, activation="relu"), tn.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def test_the_policy_follows_the_size_of_the_products(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    model = mlp()
    assert threads.largest_product(model, 32) == 2 * 32 * 784 * 100
    assert threads.choose(model, 32) == 1 and threads.choose(model, 4096) is None
    convnet = tn.Sequential([tn.Input((28, 28, 1)), tn.Conv2D(32, 3), tn.Conv2D(64, 3)])
    assert threads.largest_product(convnet, 128) == 2 * 128 * 24 * 24 * 3 * 3 * 32 * 64
    monkeypatch.setenv(threads.ENV, "2")
    assert threads.choose(model, 32) == 2
    monkeypatch.setenv(threads.ENV, "many")
    with pytest.raises(ValueError, match="TINYNET_BLAS_THREADS must be a whole number"):
        threads.choose(model, 32)


def test_the_limit_holds_during_fit_only(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    before = blas_threads()
    if not before or max(before) < 2:
        pytest.skip("this BLAS runs one thread anyway: nothing to limit")
    model, seen = mlp(), []
    spy = tn.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(blas_threads()))
    model.fit(np.zeros((64, 784), np.float32), np.zeros(64, int), verbose=0, callbacks=[spy])
    assert seen == [[1] * len(before)] and blas_threads() == before
    lines = []
    model.summary(print_fn=lines.append)
    assert "BLAS: " in lines[0] and "1 in fit when products are small" in lines[0]
