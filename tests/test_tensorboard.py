"""tn.callbacks.TensorBoard writes what keras.callbacks.TensorBoard writes, where Keras writes
it, in files TensorBoard's own reader (EventAccumulator) loads; plus gradient histograms."""

from __future__ import annotations

import os

import numpy as np
import pytest
from extras import require

import tinynet as tn

require("tensorboardX", "tensorboard")
event_accumulator = require("tensorboard.backend.event_processing.event_accumulator", "tensorboard")


def read(folder):
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def trained(tmp_path, **kwargs):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((96, 4)).astype(np.float32), rng.integers(0, 3, 96)
    model = tn.Sequential([tn.Input((4,)), tn.Dense(5, activation="relu"), tn.Dense(3, activation="softmax")], seed=0)
    model.compile(tn.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    board = tn.callbacks.TensorBoard(log_dir=tmp_path / "logs", **kwargs)
    history = model.fit(x, y, epochs=3, batch_size=32, validation_split=0.25, callbacks=[board], verbose=0)
    return model, history.history


def test_epoch_scalars_where_keras_writes_them(tmp_path):
    _, history = trained(tmp_path)
    train, val = read(tmp_path / "logs" / "train"), read(tmp_path / "logs" / "validation")
    assert set(train.Tags()["scalars"]) == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"}
    assert set(val.Tags()["scalars"]) == {"epoch_loss", "epoch_accuracy"}
    for tag, key in (("epoch_loss", "loss"), ("epoch_accuracy", "accuracy")):
        assert [s for s, _ in scalars(train, tag)] == [0, 1, 2]
        np.testing.assert_allclose([v for _, v in scalars(train, tag)], history[key], rtol=1e-6)
        np.testing.assert_allclose([v for _, v in scalars(val, tag)], history[f"val_{key}"], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in scalars(train, "epoch_learning_rate")], [0.01] * 3, rtol=1e-6)
    assert train.Tags()["histograms"] == []  # histogram_freq=0: none


def test_weight_and_gradient_histograms(tmp_path):
    model, _ = trained(tmp_path, histogram_freq=2, write_grads=True)
    train = read(tmp_path / "logs" / "train")
    names = [(layer.name, p.name) for layer in model.layers for p in layer.weights]
    expected = {f"{n}/{w}/histogram" for n, w in names} | {f"{n}/{w}/gradient/histogram" for n, w in names}
    assert set(train.Tags()["histograms"]) == expected
    kernel = train.Histograms(f"{model.layers[0].name}/kernel/histogram")
    assert [h.step for h in kernel] == [0, 2]  # every second epoch
    last = kernel[-1].histogram_value
    assert last.num == model.layers[0].kernel.value.size
    np.testing.assert_allclose(last.sum, float(model.layers[0].kernel.value.sum()), rtol=1e-4, atol=1e-5)


def test_batch_scalars_every_n_batches(tmp_path):
    trained(tmp_path, update_freq=2)  # 3 batches an epoch, 3 epochs: steps 2, 4, 6, 8
    train = read(tmp_path / "logs" / "train")
    assert [s for s, _ in scalars(train, "batch_loss")] == [2, 4, 6, 8]
    assert "batch_accuracy" in train.Tags()["scalars"]


def test_a_log_dir_that_cannot_be_written_fails_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    model = tn.Sequential([tn.Input((4,)), tn.Dense(3)], seed=0)
    model.compile("sgd", "mse")
    before = model.get_weights()
    with pytest.raises(OSError, match="TensorBoard cannot write its logs"):
        model.fit(np.ones((8, 4)), np.ones((8, 3)), callbacks=[tn.callbacks.TensorBoard(blocker / "logs")], verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # no step was taken


@pytest.mark.parametrize(
    "kwargs, match",
    [({"update_freq": 0}, "update_freq"), ({"histogram_freq": -1}, "histogram_freq"), ({"log_dir": 3}, "log_dir")],
)
def test_bad_arguments_are_refused_at_once(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        tn.callbacks.TensorBoard(**kwargs)


def test_the_logs_reach_the_batch_hooks_without_a_read_unless_looked_at(tmp_path):
    seen = []
    spy = tn.callbacks.LambdaCallback(on_train_batch_end=lambda step, logs: seen.append(logs))
    trained_model, _ = trained(tmp_path, update_freq="epoch")
    rng = np.random.default_rng(0)
    trained_model.fit(rng.standard_normal((64, 4)), rng.integers(0, 3, 64), epochs=1, callbacks=[spy], verbose=0)
    assert len(seen) == 2 and set(seen[-1]) == {"loss", "accuracy"} and np.isfinite(seen[-1]["loss"])
    assert os.path.isdir(tmp_path / "logs" / "train")
