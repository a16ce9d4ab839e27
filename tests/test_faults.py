"""Faults during training and saving: a checkpoint's training state is checked as the
constructors check their arguments, non-finite weights never escape into a file or a
model, and a save keeps what it replaces (its mode, its link, the last good file) and
says which path it could not write."""

import errno
import io
import json
import os
import stat
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import tinynet as tn
from tinynet.files import fileio


def _data(n=48):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 5)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)


def _model(optimizer="adam"):
    model = tn.Sequential([tn.Input((5,)), tn.Dense(6, activation="relu"), tn.Dense(3, activation="softmax")], seed=0)
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _checkpoint(tmp_path, optimizer="adam"):
    model = _model(optimizer)
    model.fit(*_data(), batch_size=16, epochs=2, verbose=0)
    path = tmp_path / "ckpt.npz"
    model.save(path)
    return path


def _edit_npz(path, edit_config=None, edit_arrays=None):
    """Rewrite the checkpoint at ``path`` with its description and arrays edited."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    config = json.loads(arrays.pop("tinynet_config").tobytes())
    if edit_config:
        edit_config(config)
    if edit_arrays:
        edit_arrays(arrays)
    np.savez(path, tinynet_config=np.frombuffer(json.dumps(config).encode(), np.uint8), **arrays)


def _set(key, value):
    def edit(config):
        state = config["training_state"]
        if key in ("iterations", "learning_rate"):
            state["optimizer"][key] = value
        else:
            state[key] = value

    return edit


def _slot(name, value):
    def edit(arrays):
        a = arrays[name].copy()
        a.flat[0] = value
        arrays[name] = a

    return edit


@pytest.mark.parametrize(
    "edit_config, edit_arrays, message",
    [
        (_set("learning_rate", float("nan")), None, "learning_rate must be a finite number >= 0, got nan"),
        (_set("learning_rate", -5.0), None, "learning_rate must be a finite number >= 0, got -5.0"),
        (_set("iterations", -1), None, "iterations must be an integer >= 0, got -1"),
        (_set("iterations", 2.5), None, "iterations must be an integer >= 0, got 2.5"),
        (_set("epoch", -7), None, "epoch must be an integer >= 0, got -7"),
        (_set("history", "loss"), None, "History must map names to lists of numbers"),
        (_set("history", {"loss": ["a"]}), None, "History must map names to lists of numbers"),
        (None, _slot("slot_m_0", np.nan), "'m' contains NaN or infinite values"),
        (None, _slot("slot_v_0", -1.0), "'v' is a running sum of squares but holds -1.0 < 0"),
        (None, lambda a: a.update(slot_m_0=a["slot_m_0"].astype(np.int32)), "expected float"),
    ],
)
def test_a_checkpoints_training_state_is_checked_as_the_constructors_check(tmp_path, edit_config, edit_arrays, message):
    path = _checkpoint(tmp_path)
    _edit_npz(path, edit_config, edit_arrays)
    with pytest.raises(tn.ModelFileError) as info:
        tn.load_model(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_the_optimizer_state_of_the_wrong_shape_is_refused_before_it_is_read(tmp_path):
    path = _checkpoint(tmp_path)
    _edit_npz(path, edit_arrays=lambda a: a.update(slot_m_0=np.zeros(7, np.float32)))
    with pytest.raises(tn.ModelFileError, match="'m' holds 7 values, the model has 57 parameters"):
        tn.load_model(path)


def test_an_untouched_checkpoint_still_loads_and_resumes(tmp_path):
    path = _checkpoint(tmp_path)
    _edit_npz(path)  # rewritten, unchanged
    model = tn.load_model(path)
    assert model.epochs_done == 2 and model.optimizer.iterations == 6
    model.fit(*_data(), batch_size=16, epochs=3, initial_epoch=2, verbose=0)


def test_a_keras_file_with_a_negative_step_count_is_refused(tmp_path):
    h5py = pytest.importorskip("h5py")
    model = _model()
    model.fit(*_data(), batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    buffer = io.BytesIO(entries["model.weights.h5"])
    with h5py.File(buffer, "r+") as f:
        f["optimizer/vars/0"][()] = -1
    entries["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for n, data in entries.items():
            z.writestr(n, data)
    with pytest.raises(tn.ModelFileError, match="iterations must be an integer >= 0, got -1"):
        tn.load_model(path)


# ----------------------------------------------------------------- non-finite weights


class BlowUpAtLastStep(tn.callbacks.Callback):
    """Makes a kernel infinite in the last step of an epoch, after the step's loss was computed:
    the loss stays finite, so only a check of the weights can see it."""

    def __init__(self, epoch, steps):
        super().__init__()
        self.epoch, self.steps, self.current = epoch, steps, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, step, logs=None):
        if self.current == self.epoch and step == self.steps - 1:
            self.model.layers[0].kernel.value[0, 0] = np.inf


def test_weights_made_infinite_by_the_last_step_are_caught_and_the_last_good_ones_restored(tmp_path):
    x, y = _data()
    reference = _model()
    reference.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    model = _model()
    checkpoint = tn.callbacks.ModelCheckpoint(str(tmp_path / "best.npz"))
    with pytest.raises(tn.TrainingDiverged, match="weights became NaN or infinite in epoch 2") as info:
        model.fit(
            x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[checkpoint, BlowUpAtLastStep(1, 3)]
        )
    assert "last finite weights and optimizer state, from the end of epoch 1" in str(info.value)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)  # the model is as after epoch 1, not NaN
    assert model.optimizer.iterations == 3
    for a, b in zip(model.optimizer.get_state()["slots"]["m"], reference.optimizer.get_state()["slots"]["m"]):
        np.testing.assert_array_equal(a, b)
    loaded = tn.load_model(tmp_path / "best.npz")  # the good checkpoint of epoch 1 was not overwritten
    assert loaded.epochs_done == 1
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # and training can go on from there


def test_a_nan_loss_restores_the_last_good_weights_with_terminate_on_nan_too(capsys):
    x, y = _data()
    for callbacks in ([], [tn.callbacks.TerminateOnNaN()]):
        model = _model(tn.optimizers.SGD(1e30))
        before = model.get_weights()
        if callbacks:
            model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=callbacks)
            assert "last finite weights" in capsys.readouterr().out
        else:
            with pytest.raises(tn.TrainingDiverged, match="from the start of this fit"):
                model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        for a, b in zip(model.get_weights(), before):
            np.testing.assert_array_equal(a, b)


def test_a_divergence_before_any_state_gives_a_fresh_optimizers_state_back():
    """Adagrad's accumulator starts at initial_accumulator_value, not 0: restored as the optimizer makes it."""
    x, y = _data()
    model = _model(tn.optimizers.Adagrad(1e30, initial_accumulator_value=0.1))
    with pytest.raises(tn.TrainingDiverged):
        model.fit(x * 1e20, y, batch_size=16, epochs=2, verbose=0)
    assert model.optimizer.slots is None and model.optimizer.iterations == 0
    model.optimizer.learning_rate = 0.01
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    fresh = _model(tn.optimizers.Adagrad(0.01, initial_accumulator_value=0.1))
    fresh.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("options", [{"centered": True}, {"momentum": 0.5}])
def test_a_keras_file_of_rmsprop_with_more_state_than_keras_s_layout_loads_back(tmp_path, options):
    pytest.importorskip("h5py")
    model = _model(tn.optimizers.RMSprop(0.01, **options))
    model.fit(*_data(), batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = tn.load_model(tmp_path / "m.keras")
    assert loaded.optimizer.iterations == 3 and loaded.optimizer.slots is None  # moments start afresh
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["m.npz", "m.keras", "m.weights.h5"])
def test_a_model_with_nan_weights_is_never_saved_over_a_good_file(tmp_path, name):
    if not name.endswith(".npz"):
        pytest.importorskip("h5py")
    model = _model()
    model.fit(*_data(), batch_size=16, epochs=1, verbose=0)
    path = tmp_path / name
    (model.save_weights if name.endswith(".weights.h5") else model.save)(path)
    good = path.read_bytes()
    model.layers[1].bias.value[0] = np.nan
    with pytest.raises(ValueError, match=r"not saved: layer 'dense_1' bias contains NaN.*unchanged"):
        (model.save_weights if name.endswith(".weights.h5") else model.save)(path)
    assert path.read_bytes() == good


def test_set_state_refuses_before_changing_anything():
    model = _model()
    model.fit(*_data(), batch_size=16, epochs=1, verbose=0)
    state = model.get_state()
    with pytest.raises(ValueError, match="epoch must be an integer >= 0, got True"):
        model.set_state({**state, "epoch": True})
    assert model.epochs_done == 1


# ----------------------------------------------------------------- saving keeps what it replaces


def test_a_killed_save_leaves_a_temporary_file_that_the_next_save_removes(tmp_path):
    path = tmp_path / "m.npz"
    code = f"""
        import os, signal, numpy as np, tinynet as tn
        from tinynet.files import fileio
        real = os.fsync
        def die(fd):
            os.kill(os.getpid(), signal.SIGKILL)
        os.fsync = die
        model = tn.Sequential([tn.Input((3,)), tn.Dense(2)])
        model.save({str(path)!r})
    """
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False)
    left = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".m.npz."), os.listdir(tmp_path)
    host = fileio._host()
    live = tmp_path / f".m.npz.{host}-{os.getpid()}.abcdefgh.tmp"  # a save under way in this process: kept
    elsewhere = tmp_path / ".m.npz.0badc0de-1.abcdefgh.tmp"  # another machine's (a shared folder): kept
    live.write_bytes(b"")
    elsewhere.write_bytes(b"")
    model = tn.Sequential([tn.Input((3,)), tn.Dense(2)])
    model.save(path)
    assert sorted(os.listdir(tmp_path)) == sorted(["m.npz", live.name, elsewhere.name])
    tn.load_model(path)


def test_an_old_unnamed_temporary_file_is_removed_once_an_hour_old(tmp_path):
    """Earlier tinynet named its temporary files ``.<name>.<8 random>.tmp``, with no pid to ask:
    one untouched for an hour is a killed save's (a save under way writes to it); a fresh one stays."""
    old, fresh = tmp_path / ".m.npz.k3_9xq2a.tmp", tmp_path / ".m.npz.zz81hq0b.tmp"
    other = tmp_path / ".m.npz.notes.txt"  # not a temporary file's name: never touched
    for p in (old, fresh, other):
        p.write_bytes(b"x" * 1000)
    hour_ago = os.path.getmtime(old) - fileio.LEGACY_STALE_AFTER_S - 5
    os.utime(old, (hour_ago, hour_ago))
    os.utime(other, (hour_ago, hour_ago))
    tn.Sequential([tn.Input((3,)), tn.Dense(2)]).save(tmp_path / "m.npz")
    assert sorted(os.listdir(tmp_path)) == sorted(["m.npz", fresh.name, other.name])


@pytest.mark.parametrize("path", [3, None, 2.5])
@pytest.mark.parametrize("call", ["load_model", "save", "save_weights", "load_weights"])
def test_a_path_that_is_not_a_path_is_refused_by_name(call, path):
    model = tn.Sequential([tn.Input((3,)), tn.Dense(2)])
    do = tn.load_model if call == "load_model" else getattr(model, call)
    with pytest.raises(TypeError, match=rf"^{call} expects a file path .*, got {type(path).__name__} {path}$"):
        do(path)


def test_a_bytes_path_is_a_path(tmp_path):
    path = os.fsencode(tmp_path / "m.npz")
    model = tn.Sequential([tn.Input((3,)), tn.Dense(2)], seed=0)
    model.save(path)
    np.testing.assert_array_equal(tn.load_model(path).get_weights()[0], model.get_weights()[0])


def test_resaving_keeps_the_files_permissions(tmp_path):
    path = tmp_path / "m.npz"
    model = tn.Sequential([tn.Input((3,)), tn.Dense(2)])
    model.save(path)
    os.chmod(path, 0o600)
    model.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_new_file_gets_the_users_umask(tmp_path):
    old = os.umask(0o027)
    try:
        tn.Sequential([tn.Input((3,)), tn.Dense(2)]).save(tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "m.npz").st_mode) == 0o640


def test_saving_onto_a_symlink_writes_through_to_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "m.npz"
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    model = tn.Sequential([tn.Input((3,)), tn.Dense(2)])
    model.save(link)
    assert link.is_symlink() and target.is_file()
    assert [n for n in os.listdir(tmp_path / "real") if n.endswith(".tmp")] == []
    tn.load_model(link)


@pytest.mark.parametrize(
    "given, message",
    [
        ("", "cannot save to an empty path"),
        (".", "it is a folder"),
        ("blocked/m.npz", "cannot create its folder"),
        ("newdir/", "it names a folder"),
        ("dangling.npz", "whose folder does not exist"),
    ],
)
def test_a_bad_save_path_is_named_as_given(tmp_path, monkeypatch, given, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocked").write_text("a file where a folder should be")
    (tmp_path / "dangling.npz").symlink_to(tmp_path / "nowhere" / "m.npz")
    model = tn.Sequential([tn.Input((3,)), tn.Dense(2)])
    with pytest.raises(tn.SaveError, match=message) as info:
        model.save(given)
    assert given in str(info.value)
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []
    assert not (tmp_path / "newdir").exists() and not (tmp_path / "nowhere").exists()


def _disk_full(monkeypatch, after=0):
    """os.fsync fails with ENOSPC from the (after+1)-th call on: the disk is full."""
    calls = []
    real = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) > after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    model = tn.Sequential([tn.Input((3,)), tn.Dense(2)])
    model.save(path)
    good = path.read_bytes()
    _disk_full(monkeypatch)
    with pytest.raises(tn.SaveError, match="could not write .*m.npz: No space left on device; the file already"):
        model.save(path)
    assert path.read_bytes() == good
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []


def test_a_full_disk_during_model_checkpoint_says_which_file_and_that_the_last_is_intact(tmp_path, monkeypatch):
    model = _model()
    saves = []

    class FillTheDisk(tn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            saves.append(epoch)
            if epoch == 1:
                _disk_full(monkeypatch)

    pattern = str(tmp_path / "ckpt-{epoch:02d}.npz")
    callbacks = [FillTheDisk(), tn.callbacks.ModelCheckpoint(pattern)]
    with pytest.raises(tn.SaveError) as info:
        model.fit(*_data(), batch_size=16, epochs=3, verbose=0, callbacks=callbacks)
    message = str(info.value)
    assert "ModelCheckpoint could not write" in message and "ckpt-02.npz at the end of epoch 2" in message
    assert "No space left on device" in message and "ckpt-01.npz, is intact" in message
    monkeypatch.undo()
    assert tn.load_model(tmp_path / "ckpt-01.npz").epochs_done == 1
