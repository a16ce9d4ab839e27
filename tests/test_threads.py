"""The thread policy of a step: one thread for small products; for large ones BLAS's own
threads, or, in a convnet, tinynet's own threads with BLAS on one; TINYNET_BLAS_THREADS
to override; only during fit/evaluate."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import tinynet as tn
from tinynet.engine import threads
from tinynet.engine import twins as fast


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
    assert threads.plan(convnet.compile("sgd", "mse") or convnet, 128, own_threads=True) == (1, 2)
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
    assert "BLAS: " in lines[0] and "in fit 1 for small products" in lines[0]


def convnet(head=None):
    model = tn.Sequential(
        [
            tn.Input((28, 28, 1)),
            tn.Conv2D(32, 3, activation="relu"),
            tn.MaxPooling2D(2),
            tn.Conv2D(64, 3, activation="relu"),  # 570 MFLOP at batch 128
            tn.Flatten(),
            tn.Dense(10, activation=head),
        ]
    )
    model.compile("adam", tn.losses.SparseCategoricalCrossentropy(from_logits=head is None))
    return model


def test_plan_small_steps_one_thread_large_ones_blas_or_tinynets_own(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    cores = threads.blas_threads()
    assert threads.plan(mlp(), 32, own_threads=False) == (1, 1)
    assert threads.plan(mlp(), 4096, own_threads=False) == (None, 1)  # BLAS's threads, as it has them
    assert threads.plan(convnet(), 8, own_threads=True) == (1, 1)  # small: one thread
    assert threads.plan(convnet(), 128, own_threads=True) == (1, cores)  # BLAS on one, tinynet's on every core
    assert threads.plan(tn.Sequential([tn.Dense(3)]), 128, own_threads=True) == (None, 1)  # not built
    big_head = tn.Sequential(
        [tn.Input((28, 28, 1)), tn.Conv2D(16, 3), tn.MaxPooling2D(2), tn.Flatten(), tn.Dense(1024)]
    )
    assert threads.plan(big_head, 256, own_threads=True) == (None, 1)  # the Dense's product is the largest
    monkeypatch.setenv(threads.ENV, "3")
    assert threads.plan(convnet(), 128, own_threads=True) == (1, 3)
    assert threads.plan(mlp(), 32, own_threads=False) == (3, 1)


def test_a_convnet_trains_on_tinynets_threads_with_blas_on_one(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    model, seen = convnet(), []

    def spy(batch, logs):
        conv, pool = model.layers[0], model.layers[1]
        seen.append((blas_threads(), conv.forward.__func__.keywords["threads"], pool.backward.__func__.keywords))

    x = np.random.default_rng(0).random((256, 28, 28, 1), dtype=np.float32)
    spy = tn.callbacks.LambdaCallback(on_train_batch_end=spy)
    model.fit(x, np.zeros(256, int), batch_size=128, verbose=0, callbacks=[spy])
    cores = threads.blas_threads()
    assert seen[0] == ([1] * len(blas_threads()), cores, {"threads": cores})
    assert not fast.installed(model)


def test_evaluate_in_a_callback_leaves_fit_as_it_was(monkeypatch):
    """An evaluate (Keras's habit in on_epoch_end) or any one-batch call inside fit keeps the
    outer fit's set-up: the twins stay, BLAS keeps its limit, the loss its logits rule, and
    the weights come out bit for bit as without it."""
    monkeypatch.delenv(threads.ENV, raising=False)
    x = np.random.default_rng(0).random((384, 28, 28, 1), dtype=np.float32)
    y = np.random.default_rng(1).integers(0, 10, 384)
    weights = []
    for nested in (False, True):
        tn.utils.set_random_seed(0)
        model = convnet(head="softmax")  # Keras's logits rule applies
        seen = []

        def after(batch, logs, model=model, nested=nested, seen=seen):
            if nested and batch == 0:
                model.evaluate(x[:40], y[:40], batch_size=20, verbose=0)
            seen.append((tuple(blas_threads()), len(fast.installed(model))))

        model.fit(x, y, batch_size=128, verbose=0, callbacks=[tn.callbacks.LambdaCallback(on_train_batch_end=after)])
        assert len(set(seen)) == 1 and seen[0][1] > 0
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
