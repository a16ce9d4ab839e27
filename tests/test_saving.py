"""Save and load: identical predictions after a round trip, atomic writes, and a
clear error for every file that is not a good tinynet model. Nothing loads with pickle."""

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import tinynet as tn
from tinynet import saving


def trained_model(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)
    model = tn.Sequential(
        [tn.Input((6,)), tn.Dense(8, activation="relu"), tn.Dropout(0.1), tn.Dense(3, activation="softmax")], seed=seed
    )
    model.compile(tn.optimizers.RMSprop(0.01, rho=0.8), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=0)
    return model, x, y


def test_round_trip_gives_identical_predictions_and_settings(tmp_path):
    model, x, y = trained_model()
    path = model.save(tmp_path / "model.npz")
    loaded = tn.load_model(path)
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))
    assert [type(layer).__name__ for layer in loaded.layers] == ["Dense", "Dropout", "Dense"]
    assert loaded.layers[1].rate == 0.1 and isinstance(loaded.layers[2].activation, tn.Softmax)
    assert isinstance(loaded.optimizer, tn.optimizers.RMSprop) and loaded.optimizer.rho == 0.8
    assert loaded.loss.name == "sparse_categorical_crossentropy" and loaded.metrics == ["accuracy"]
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    loaded.fit(x, y, epochs=1, verbose=0)  # trainable again


def test_cuda_graph_is_kept_and_a_file_without_it_or_with_a_bad_one_loads_as_it_should(tmp_path):
    model, _, _ = trained_model()
    model.compile("adam", "sparse_categorical_crossentropy", cuda_graph="auto")
    assert tn.load_model(model.save(tmp_path / "auto.npz")).cuda_graph == "auto"
    model.compile("adam", "sparse_categorical_crossentropy", cuda_graph=True)
    on_the_cpu = tn.load_model(model.save(tmp_path / "true.npz"))  # a GPU model's file, loaded on the CPU
    assert on_the_cpu.cuda_graph == "auto"  # trains step by step there, where True would refuse
    on_the_cpu.fit(np.ones((4, 6), np.float32), np.array([0, 1, 2, 0]), verbose=0)
    config = saving._describe(model)
    older = json.loads(json.dumps(config))
    del older["compile"]["cuda_graph"]  # saved before it was kept
    write_model_file(tmp_path / "older.npz", older)
    assert tn.load_model(tmp_path / "older.npz").cuda_graph is False
    edited = json.loads(json.dumps(config))
    edited["compile"]["cuda_graph"] = "always"
    write_model_file(tmp_path / "edited.npz", edited)
    with pytest.raises(tn.ModelFileError, match="compile configuration cannot be restored.*cuda_graph"):
        tn.load_model(tmp_path / "edited.npz")


def test_saving_an_unbuilt_model_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="not built"):
        tn.Sequential([tn.Dense(2)]).save(tmp_path / "m.npz")


def test_a_failing_save_leaves_the_old_file_whole(tmp_path, monkeypatch):
    model, x, _ = trained_model()
    path = tmp_path / "model.npz"
    model.save(path)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        trained_model(seed=1)[0].save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]  # no stray temporary file
    np.testing.assert_array_equal(tn.load_model(path).predict(x), model.predict(x))


def test_a_process_killed_mid_save_leaves_the_old_file_loadable(tmp_path):
    model, x, _ = trained_model()
    path = tmp_path / "model.npz"
    model.save(path)
    before = path.read_bytes()
    script = textwrap.dedent(f"""
        import os, signal, numpy as np, tinynet as tn
        model = tn.Sequential([tn.Input((6,)), tn.Dense(8), tn.Dense(3)], seed=5)
        real_savez = np.savez
        def savez_then_die(f, **arrays):
            f.write(b"PK\\x03\\x04 partial")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        np.savez = savez_then_die
        model.save({str(path)!r})
    """)
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(tn.__file__))}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert result.returncode == -9, result.stderr.decode()
    assert path.read_bytes() == before
    np.testing.assert_array_equal(tn.load_model(path).predict(x), model.predict(x))


def write_model_file(path, config=None, weights=None, drop_config=False):
    model, _, _ = trained_model()
    described = saving._describe(model) if config is None else config
    arrays = {} if drop_config else {"tinynet_config": np.frombuffer(json.dumps(described).encode(), np.uint8)}
    for i, w in enumerate(model.get_weights() if weights is None else weights):
        arrays[f"weight_{i}"] = w
    np.savez(path, **arrays)
    return model


def test_not_a_model_file(tmp_path):
    (tmp_path / "random.npz").write_bytes(os.urandom(300))
    with pytest.raises(tn.ModelFileError, match="random.npz: not a tinynet model file"):
        tn.load_model(tmp_path / "random.npz")
    write_model_file(tmp_path / "plain.npz", drop_config=True)
    with pytest.raises(tn.ModelFileError, match="plain.npz: not a tinynet model file \\(no tinynet_config"):
        tn.load_model(tmp_path / "plain.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(tn.ModelFileError, match="single .npy array"):
        tn.load_model(tmp_path / "array.npy")
    with pytest.raises(tn.ModelFileError, match="no such file"):
        tn.load_model(tmp_path / "missing.npz")


def test_truncated_file(tmp_path):
    model, _, _ = trained_model()
    path = tmp_path / "model.npz"
    model.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(tn.ModelFileError, match="model.npz: not a tinynet model file, or truncated/corrupted"):
        tn.load_model(path)


def test_hand_edited_or_foreign_content(tmp_path):
    model, _, _ = trained_model()
    config = saving._describe(model)
    newer = dict(config, version=saving.VERSION + 1)
    write_model_file(tmp_path / "newer.npz", newer)
    expected = r"format version 2; this tinynet reads versions 1 to 1 \(saved by a newer"
    with pytest.raises(tn.ModelFileError, match=expected):
        tn.load_model(tmp_path / "newer.npz")
    foreign = dict(config, format="keras")
    write_model_file(tmp_path / "foreign.npz", foreign)
    with pytest.raises(tn.ModelFileError, match="format 'keras'"):
        tn.load_model(tmp_path / "foreign.npz")
    unknown = json.loads(json.dumps(config))
    unknown["layers"][0]["class"] = "os.system"
    write_model_file(tmp_path / "unknown.npz", unknown)
    with pytest.raises(tn.ModelFileError, match="unknown layer class 'os.system'"):
        tn.load_model(tmp_path / "unknown.npz")
    weights = model.get_weights()
    weights[2] = np.zeros((3, 3), np.float32)
    write_model_file(tmp_path / "shape.npz", weights=weights)
    expected = r"layer 'dense_1' kernel should have shape \(8, 3\), the file has \(3, 3\)"
    with pytest.raises(tn.ModelFileError, match=expected):
        tn.load_model(tmp_path / "shape.npz")
    weights = model.get_weights()
    weights[0] = np.full_like(weights[0], np.nan)
    write_model_file(tmp_path / "nan.npz", weights=weights)
    with pytest.raises(tn.ModelFileError, match="NaN"):
        tn.load_model(tmp_path / "nan.npz")
    write_model_file(tmp_path / "short.npz", weights=model.get_weights()[:3])
    with pytest.raises(tn.ModelFileError, match="the architecture has 4 weight arrays, the file 3"):
        tn.load_model(tmp_path / "short.npz")


def test_broken_json_and_pickled_objects_are_refused(tmp_path):
    np.savez(tmp_path / "json.npz", tinynet_config=np.frombuffer(b"{not json", np.uint8))
    with pytest.raises(tn.ModelFileError, match="not valid JSON"):
        tn.load_model(tmp_path / "json.npz")
    objects = np.empty(1, dtype=object)
    np.savez(tmp_path / "pickle.npz", tinynet_config=objects)
    with pytest.raises(tn.ModelFileError, match="object values.*never pickled"):
        tn.load_model(tmp_path / "pickle.npz")


def test_file_holds_only_arrays_and_json(tmp_path):
    model, _, _ = trained_model()
    model.save(tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        # the config, the weights, and RMSprop's velocity (one flat array: see Sequential)
        assert sorted(z.namelist()) == (
            ["slot_velocity_0.npy", "tinynet_config.npy"] + [f"weight_{i}.npy" for i in range(4)]
        )
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        config = json.loads(f["tinynet_config"].tobytes())
    assert config["format"] == "tinynet-model" and config["version"] == 1


SAVING_OPTIMIZERS = {
    "sgd": lambda: tn.optimizers.SGD(0.05),
    "sgd-momentum": lambda: tn.optimizers.SGD(0.05, momentum=0.9),
    "sgd-nesterov": lambda: tn.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: tn.optimizers.RMSprop(0.01),
    "adam": lambda: tn.optimizers.Adam(0.01),
    "adamw": lambda: tn.optimizers.AdamW(0.01),
    "adagrad": lambda: tn.optimizers.Adagrad(0.05),
    "nadam": lambda: tn.optimizers.Nadam(0.01),
    "adamax": lambda: tn.optimizers.Adamax(0.01),
    "adadelta": lambda: tn.optimizers.Adadelta(1.0),
    "adam-clipnorm": lambda: tn.optimizers.Adam(0.01, clipnorm=1.0),  # per-parameter state, not the flat buffer
}
SAVING_FORMATS = ["ckpt.npz", "weights-only.npz", "model.keras", "model.weights.h5"]


def _train_saving_each_epoch(optimizer, filename, directory):
    """(weights, optimizer state) after 3 epochs, saving to ``filename`` after each epoch (None: no saving)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((96, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 0)
    model = tn.Sequential(
        [tn.Input((5,)), tn.Dense(7, activation="relu"), tn.BatchNormalization(), tn.Dense(3, activation="softmax")],
        seed=1,
    )
    model.compile(SAVING_OPTIMIZERS[optimizer](), "sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = []
    if filename == "model.weights.h5":
        callbacks = [tn.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: model.save_weights(directory / filename))]
    elif filename is not None:
        only = filename.startswith("weights-only")
        callbacks = [tn.callbacks.ModelCheckpoint(str(directory / filename), save_weights_only=only)]
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=callbacks)
    state = model.optimizer.get_state()
    return (
        model.get_weights(),
        state["iterations"],
        {k: [tn.backend.to_numpy(a) for a in v] for k, v in state["slots"].items()},
    )


@pytest.mark.parametrize("optimizer", list(SAVING_OPTIMIZERS))
@pytest.mark.parametrize("filename", SAVING_FORMATS)
def test_saving_during_training_changes_nothing_in_the_model_or_its_optimizer(tmp_path, optimizer, filename):
    """A checkpoint in any format, written after every epoch, leaves training bit for bit as without it
    (a .keras save once rearranged the optimizer's flat state per layer and broke the next epoch)."""
    weights, iterations, slots = _train_saving_each_epoch(optimizer, None, tmp_path)
    saved_weights, saved_iterations, saved_slots = _train_saving_each_epoch(optimizer, filename, tmp_path)
    assert os.path.exists(tmp_path / filename)
    assert saved_iterations == iterations == 18
    for a, b in zip(weights, saved_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert slots.keys() == saved_slots.keys()
    for name in slots:
        assert [a.shape for a in slots[name]] == [b.shape for b in saved_slots[name]]
        for a, b in zip(slots[name], saved_slots[name]):
            np.testing.assert_array_equal(a, b)
