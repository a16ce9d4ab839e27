"""Training people can trust: exact resume from checkpoints, callbacks with Keras's
semantics, divergence caught, Ctrl-C handled."""

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tinynet as tn
from tinynet import TrainingDiverged
from tinynet.callbacks import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    return x, y


def make_model(seed=3, optimizer=None):
    model = tn.Sequential(
        [tn.Input((6,)), tn.Dense(16, activation="relu"), tn.Dropout(0.3), tn.Dense(3, activation="softmax")], seed=seed
    )
    model.compile(optimizer or tn.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: tn.optimizers.Adam(0.01),
        lambda: tn.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        lambda: tn.optimizers.RMSprop(0.01),
    ],
)
def test_resume_from_a_checkpoint_is_bit_for_bit(tmp_path, optimizer):
    x, y = data()
    straight = make_model(optimizer=optimizer())
    h_straight = straight.fit(x, y, epochs=4, batch_size=16, validation_split=0.25, verbose=0)

    first = make_model(optimizer=optimizer())
    first.fit(
        x,
        y,
        epochs=2,
        batch_size=16,
        validation_split=0.25,
        verbose=0,
        callbacks=[ModelCheckpoint(tmp_path / "ckpt-{epoch:02d}.npz")],
    )
    assert sorted(os.listdir(tmp_path)) == ["ckpt-01.npz", "ckpt-02.npz"]  # and no temporary files
    resumed = tn.load_model(tmp_path / "ckpt-02.npz")
    h_resumed = resumed.fit(x, y, epochs=4, batch_size=16, validation_split=0.25, verbose=0, initial_epoch=2)

    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h_resumed.history == h_straight.history
    assert h_resumed.epoch == [0, 1, 2, 3]


def test_early_stopping_restores_the_best_weights():
    x, y = data()
    model = make_model(optimizer=tn.optimizers.Adam(0.05))
    snapshots = {}
    record = LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshots.update({epoch: (logs["val_loss"], model.get_weights())})
    )
    stop = EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=40, batch_size=8, validation_split=0.5, verbose=0, callbacks=[record, stop])
    best = min(snapshots, key=lambda e: snapshots[e][0])
    assert len(history.epoch) < 40 and stop.stopped_epoch == len(history.epoch) - 1
    assert stop.best_epoch == best and len(history.epoch) - 1 - best == 2  # patience 2 after the best
    for a, b in zip(model.get_weights(), snapshots[best][1]):
        np.testing.assert_array_equal(a, b)


def scripted(values, key="score"):
    """A callback that puts a scripted value into each epoch's logs (runs before the others)."""
    return LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update({key: values[epoch]}))


@pytest.mark.parametrize(
    "values,kwargs,stopped",
    [
        ([5, 4, 4.5, 4.2, 3, 2], {"patience": 2}, 3),
        ([5, 4, 4.5, 4.2, 3, 2], {"patience": 3}, None),
        ([5, 4.9, 4.85, 4.8, 4.75, 4.7], {"patience": 1, "min_delta": 0.2}, 1),
        ([1, 2, 3, 2, 1, 0], {"patience": 1, "mode": "max"}, 3),
        ([5, 6, 7, 8, 9, 10], {"patience": 0, "start_from_epoch": 3}, 4),
    ],
)
def test_early_stopping_semantics(values, kwargs, stopped):
    x, y = data(n=32)
    model = make_model()
    stop = EarlyStopping(monitor="score", **kwargs)
    history = model.fit(x, y, epochs=6, verbose=0, callbacks=[scripted(values), stop])
    assert len(history.epoch) == (6 if stopped is None else stopped + 1)


def test_model_checkpoint_save_best_only_and_formatting(tmp_path):
    x, y = data(n=32)
    model = make_model()
    cb = ModelCheckpoint(tmp_path / "best-{epoch}-{score:.1f}.npz", monitor="score", save_best_only=True)
    model.fit(x, y, epochs=5, verbose=0, callbacks=[scripted([3.0, 2.0, 2.5, 1.0, 1.5]), cb])
    assert sorted(os.listdir(tmp_path)) == ["best-1-3.0.npz", "best-2-2.0.npz", "best-4-1.0.npz"]
    weights_only = ModelCheckpoint(tmp_path / "w.npz", save_weights_only=True)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[weights_only])
    assert tn.load_model(tmp_path / "w.npz").optimizer.iterations == 0  # weights, no optimizer state
    with pytest.raises(ValueError, match="cannot be filled from epoch and the logs"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ModelCheckpoint(tmp_path / "{nope}.npz")])


def test_reduce_lr_on_plateau_and_scheduler():
    x, y = data(n=32)
    model = make_model(optimizer=tn.optimizers.SGD(0.1))
    seen = []
    log_lr = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(model.optimizer.current_learning_rate))
    reduce = ReduceLROnPlateau(monitor="score", factor=0.5, patience=2, min_lr=0.02)
    model.fit(x, y, epochs=7, verbose=0, callbacks=[scripted([1, 1, 1, 1, 1, 1, 1]), reduce, log_lr])
    assert seen == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02])
    model.fit(x, y, epochs=3, verbose=0, callbacks=[LearningRateScheduler(lambda epoch, lr: 0.01 * (epoch + 1))])
    assert model.optimizer.current_learning_rate == pytest.approx(0.03)


def test_learning_rate_schedules_follow_keras_formulas():
    s = tn.schedules
    assert s.ExponentialDecay(0.1, 10, 0.5)(5) == pytest.approx(0.1 * 0.5**0.5)
    assert s.ExponentialDecay(0.1, 10, 0.5, staircase=True)(15) == pytest.approx(0.05)
    pc = s.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [pc(0), pc(10), pc(11), pc(20), pc(21)] == [1.0, 1.0, 0.5, 0.5, 0.1]
    cos = s.CosineDecay(0.2, 100, alpha=0.1)
    assert cos(0) == pytest.approx(0.2) and cos(50) == pytest.approx(0.2 * (0.9 * 0.5 + 0.1))
    assert cos(500) == pytest.approx(0.02)
    x, y = data(n=32)
    opt = tn.optimizers.SGD(s.PiecewiseConstantDecay([2], [0.1, 0.0]))
    model = make_model(optimizer=opt)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # 4 steps: lr 0.1, 0.1, 0.1, then 0
    before = model.get_weights()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # lr 0 from here on: nothing moves
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_csv_logger(tmp_path):
    x, y = data(n=32)
    model = make_model()
    model.fit(x, y, epochs=3, verbose=0, validation_split=0.25, callbacks=[CSVLogger(tmp_path / "log.csv")])
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert set(rows[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"}


def test_divergence_stops_within_the_first_epoch_with_a_clear_message():
    x, y = data()
    model = make_model(optimizer=tn.optimizers.SGD(1e6))
    with pytest.raises(TrainingDiverged) as info:
        model.fit(x * 1e3, y, epochs=5, verbose=0)
    message = str(info.value)
    assert "NaN or infinite in epoch 1, step" in message
    assert "lower learning rate" in message and "clipnorm" in message
    assert info.value.epoch == 0 and info.value.history.epoch == []


def test_terminate_on_nan_stops_quietly(capsys):
    x, y = data()
    model = make_model(optimizer=tn.optimizers.SGD(1e6))
    history = model.fit(x * 1e3, y, epochs=5, verbose=0, callbacks=[TerminateOnNaN()])
    assert history.epoch == [] and "TerminateOnNaN: the training loss became NaN" in capsys.readouterr().out


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: EarlyStopping(patience=-1), "patience must be an integer >= 0, got -1"),
        (lambda: EarlyStopping(mode="maximize"), 'mode must be "auto", "min" or "max", got \'maximize\''),
        (lambda: ReduceLROnPlateau(factor=1.5), r"factor must be in \(0, 1\), got 1.5"),
        (lambda: ReduceLROnPlateau(cooldown=0.5), "cooldown must be an integer >= 0"),
        (lambda: LearningRateScheduler(0.1), "needs a function schedule"),
        (lambda: tn.schedules.ExponentialDecay(0.1, 0, 0.5), "decay_steps must be a finite number > 0, got 0"),
        (lambda: tn.schedules.PiecewiseConstantDecay([1, 2], [1.0]), "one more value than boundaries"),
        (lambda: tn.regularizers.l2(-1), "l2 must be a finite number >= 0, got -1"),
        (lambda: tn.BatchNormalization(momentum=2), r"momentum must be in \[0, 1\], got 2"),
        (lambda: make_model().fit(*data(n=8), initial_epoch=-1), "initial_epoch must be an integer >= 0, got -1"),
    ],
)
def test_bad_hyperparameters_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_ctrl_c_stops_cleanly_with_a_resumable_checkpoint(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time, numpy as np, tinynet as tn
        from tinynet.callbacks import LambdaCallback, ModelCheckpoint
        rng = np.random.default_rng(0)
        x = rng.standard_normal((400, 6)).astype(np.float32)
        y = (x[:, 0] > 0).astype(int)
        model = tn.Sequential([tn.Input((6,)), tn.Dense(8, activation="relu"), tn.Dense(2, activation="softmax")],
                              seed=0)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        slow = LambdaCallback(on_train_batch_end=lambda step, logs: time.sleep(0.01))
        ready = LambdaCallback(on_epoch_end=lambda epoch, logs: print("EPOCH-DONE", flush=True))
        history = model.fit(x, y, epochs=1000, batch_size=16, verbose=0,
                            callbacks=[ModelCheckpoint({str(tmp_path / "ckpt.npz")!r}), ready, slow])
        print("HISTORY", len(history.epoch), history.history["loss"][-1], flush=True)
    """)
    env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.time() + 60
    while time.time() < deadline:  # wait for the first finished epoch (and its checkpoint)
        if proc.stdout.readline().startswith("EPOCH-DONE"):
            break
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Interrupted: stopping after this batch" in out and "Training interrupted in epoch" in out
    assert "HISTORY" in out and int(out.split("HISTORY")[1].split()[0]) >= 1
    model = tn.load_model(tmp_path / "ckpt.npz")
    done = model.epochs_done
    assert done >= 1
    history = model.fit(
        np.zeros((16, 6), np.float32), np.zeros(16, int), epochs=done + 1, initial_epoch=done, verbose=0
    )
    assert len(history.epoch) == done + 1


def test_lambda_callback_calls_each_hook_it_is_given_in_order():
    x, y = data()
    model = make_model()
    calls = []
    hooks = ["on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end", "on_epoch_end"]
    spy = LambdaCallback(**{h: (lambda *args, h=h: calls.append(h)) for h in hooks + ["on_train_end"]})
    model.fit(x[:16], y[:16], epochs=1, batch_size=8, verbose=0, callbacks=[spy])
    batch = ["on_train_batch_begin", "on_train_batch_end"]
    assert calls == ["on_train_begin", "on_epoch_begin"] + batch + batch + ["on_epoch_end", "on_train_end"]
