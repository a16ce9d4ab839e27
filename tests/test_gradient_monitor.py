"""GradientMonitor: gradient norms, update ratios and dead ReLUs recorded during fit,
without changing what fit computes."""

from collections import Counter

import cupy_standin
import numpy as np
import pytest

import tinynet as tn
from tinynet.callbacks import GradientMonitor


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6)).astype(np.float32), rng.integers(0, 3, n)


def tiny(optimizer, device="cpu", seed=0, dropout=None):
    hidden = [tn.Dense(8, activation="relu")] + ([tn.Dropout(dropout)] if dropout else [])
    model = tn.Sequential([tn.Input((6,)), *hidden, tn.Dense(3, activation="softmax")], device=device, seed=seed)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    return model


def test_a_too_high_learning_rate_shows_as_large_update_ratios():
    x, y = data()
    ratios = {}
    for lr in (1.0, 1e-3):
        monitor = GradientMonitor(every=1)
        tiny(tn.optimizers.SGD(lr)).fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[monitor])
        assert monitor.history["step"] == list(range(1, 9))
        ratios[lr] = np.array(monitor.history["update_ratio"]["dense/kernel"])
    assert (ratios[1.0] > 100 * ratios[1e-3]).all(), ratios
    assert ratios[1.0].mean() > 1e-2 > 1e-3 > ratios[1e-3].mean()  # 1e-3: the usual healthy ratio


def test_dead_fraction_and_gradient_norm_match_a_hand_count_and_the_trace():
    x, y = data()
    model = tiny("adam")
    kernel = model.layers[0].kernel.value
    kernel[:, :3] = -np.abs(kernel[:, :3])  # units 0-2: negative weights on positive inputs: dead
    kernel[:, 3:] = np.abs(kernel[:, 3:])  # units 3-7: alive for every input
    before = tn.trace(model, x, y, check=False)
    monitor = GradientMonitor(every=1)
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0, callbacks=[monitor])
    hidden = np.maximum(x @ kernel, 0)  # the bias is 0 before the first step
    np.testing.assert_array_equal(hidden, before.layers[0].output)
    assert monitor.history["dead_fraction"]["dense"] == [(hidden == 0).all(axis=0).mean()] == [3 / 8]
    grad = before.layers[1].parameters[0].grad_norm
    assert monitor.history["grad_norm"]["dense_1/kernel"][0] == pytest.approx(grad, rel=1e-5)
    ratio = before.layers[0].parameters[0].update_ratio  # the step the trace said Adam would take
    assert monitor.history["update_ratio"]["dense/kernel"][0] == pytest.approx(ratio, rel=1e-4)
    assert monitor.history["update_ratio"]["dense/bias"][0] == np.inf  # the bias starts at 0


def test_recording_changes_nothing_in_training(device):
    x, y = data(96)
    weights = []
    for callbacks in ([], [GradientMonitor(every=3)]):
        # the dropout's random generator must not be disturbed either. (After the softmax, a
        # dropout that zeroes a row's three probabilities made the loss NaN on a real GPU.)
        model = tiny("adam", device, seed=4, dropout=0.2)
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=callbacks)
        weights.append([w.tobytes() for w in model.get_weights()])
    assert weights[0] == weights[1]
    assert callbacks[0].history["step"] == [1, 4, 7, 10]
    assert all(isinstance(v, float) for v in callbacks[0].history["grad_norm"]["dense/kernel"])


def test_on_the_gpu_the_values_are_read_once_per_epoch(gpu):
    device = gpu
    x, y = data(160)
    model = tiny("adam", device)
    monitor = GradientMonitor(every=2)
    cupy_standin.reset_counts()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[monitor])
    reads = Counter(where for kind, _, where in cupy_standin.events if kind == "sync" and "callbacks.py" in where)
    if cupy_standin.events:  # on real CuPy nothing is counted
        assert sum(reads.values()) == 2, reads  # one read per epoch
    cpu = GradientMonitor(every=2)
    tiny("adam").fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[cpu])
    for key, values in cpu.history["grad_norm"].items():
        np.testing.assert_allclose(monitor.history["grad_norm"][key], values, rtol=1e-4)


def test_plot_writes_a_png_and_bad_arguments_are_refused(tmp_path):
    pytest.importorskip("matplotlib")
    monitor = GradientMonitor(every=2)
    with pytest.raises(ValueError, match="nothing recorded"):
        monitor.plot()
    x, y = data()
    tiny("adam").fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[monitor])
    fig = monitor.plot(tmp_path / "gradients.png")
    assert (tmp_path / "gradients.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "log", "linear"]
    with pytest.raises(ValueError, match="every must be a positive integer"):
        GradientMonitor(every=0)


def test_a_monitor_moved_to_another_model_starts_a_fresh_history_and_zero_weights_read_inf():
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 6)).astype(np.float32), rng.integers(0, 3, 64)
    monitor = tn.callbacks.GradientMonitor(every=1)
    first = tn.Sequential([tn.Input((6,)), tn.Dense(3, activation="softmax")], seed=0)
    first.compile("sgd", "sparse_categorical_crossentropy")
    first.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[monitor])
    second = tn.Sequential([tn.Input((6,)), tn.Dense(4, activation="relu"), tn.Dense(3, activation="softmax")], seed=0)
    second.compile("sgd", "sparse_categorical_crossentropy")
    second.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.history["step"] == [1, 2, 3, 4]
    assert all(len(v) == 4 for v in monitor.history["update_ratio"].values())
    keys = {f"{layer.name}/{p.name}" for layer in second.layers for p in layer.parameters()}
    assert set(monitor.history["grad_norm"]) == keys
    first_bias = f"{second.layers[0].name}/bias"
    assert monitor.history["update_ratio"][first_bias][0] == np.inf  # a bias of zeros that moved
