"""What a Keras user types works as in Keras 3: names, signatures, results.

Numbers that matter (the loss with sample_weight and class_weight) are compared with
fixtures recorded from Keras 3.15.1 (benchmarks/keras_files_reference.py)."""

import os
import random

import numpy as np
import pytest

import tinynet as tn

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "keras_files")


def weighted_case():
    f = np.load(os.path.join(FIXTURES, "sample_weight.npz"))
    model = tn.Sequential([tn.Input((6,)), tn.Dense(5, activation="relu"), tn.Dense(3)])
    model.compile(
        tn.optimizers.SGD(0.1),
        tn.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )
    model.set_weights([f[f"w0_{i}"] for i in range(4)])
    return f, model


def test_evaluate_with_sample_weight_matches_keras():
    f, model = weighted_case()
    result = model.evaluate(f["x"], f["y"], sample_weight=f["w"], batch_size=8, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(float(f["evaluate_sw_loss"]), rel=1e-6)
    assert result["sparse_categorical_accuracy"] == pytest.approx(float(f["evaluate_sw_acc"]))  # unweighted


@pytest.mark.parametrize("kind", ["sw", "cw"])
def test_fit_with_sample_weight_or_class_weight_matches_keras(kind):
    f, model = weighted_case()
    weights = {"sample_weight": f["w"]} if kind == "sw" else {"class_weight": dict(enumerate(f["class_weight"]))}
    history = model.fit(f["x"], f["y"], batch_size=8, epochs=2, shuffle=False, verbose=0, **weights)
    np.testing.assert_allclose(history.history["loss"], f[f"fit_{kind}_loss"], rtol=1e-6)
    np.testing.assert_allclose(history.history["sparse_categorical_accuracy"], f[f"fit_{kind}_acc"])
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, f[f"fit_{kind}_w_{i}"], rtol=1e-5, atol=1e-6)
    assert history.params == {"verbose": 0, "epochs": 2, "steps": 5}


def test_train_on_batch_with_sample_weight_matches_keras():
    f, model = weighted_case()
    losses = [
        model.train_on_batch(f["x"][k : k + 8], f["y"][k : k + 8], sample_weight=f["w"][k : k + 8])[0]
        for k in range(0, 40, 8)
    ]
    np.testing.assert_allclose(losses, f["tob_sw_loss"], rtol=1e-6)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, f[f"tob_sw_w_{i}"], rtol=1e-5, atol=1e-6)


def test_sample_weight_mistakes_are_named():
    f, model = weighted_case()
    with pytest.raises(ValueError, match="not both"):
        model.fit(f["x"], f["y"], sample_weight=f["w"], class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match=r"one weight per sample, shape \(40,\), got shape \(39,\)"):
        model.fit(f["x"], f["y"], sample_weight=f["w"][:39], verbose=0)
    with pytest.raises(ValueError, match="finite and >= 0"):
        model.evaluate(f["x"], f["y"], sample_weight=-f["w"], verbose=0)
    with pytest.raises(TypeError, match="class_weight must be a dict"):
        model.fit(f["x"], f["y"], class_weight=[1.0, 2.0], verbose=0)


@pytest.mark.parametrize(
    "metrics,targets,keys",
    [
        (["sparse_categorical_accuracy"], "sparse", {"loss", "sparse_categorical_accuracy"}),
        (["acc"], "sparse", {"loss", "acc"}),
        (["accuracy", "categorical_accuracy"], "onehot", {"loss", "accuracy", "categorical_accuracy"}),
    ],
)
def test_metric_names_are_logged_under_the_name_given(metrics, targets, keys):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 4)).astype(np.float32), rng.integers(0, 3, 30)
    model = tn.Sequential([tn.Input((4,)), tn.Dense(3, activation="softmax")], seed=0)
    loss = "sparse_categorical_crossentropy" if targets == "sparse" else "categorical_crossentropy"
    model.compile("adam", loss, metrics=metrics)
    t = y if targets == "sparse" else tn.utils.to_categorical(y, 3)
    history = model.fit(x, t, epochs=1, verbose=0, validation_split=0.2)
    assert set(history.history) == keys | {f"val_{k}" for k in keys}
    assert model.metrics_names == ["loss"] + metrics
    result = model.evaluate(x, t, verbose=0)
    assert len(result) == len(model.metrics_names)
    acc = float((model.predict(x).argmax(1) == y).mean())
    assert result[1] == pytest.approx(acc)


def test_binary_accuracy_by_name():
    x = np.array([[0.0], [1.0], [2.0], [3.0]], np.float32)
    model = tn.Sequential([tn.Input((1,)), tn.Dense(1, activation="sigmoid")], seed=0)
    model.compile("sgd", "binary_crossentropy", metrics=["binary_accuracy"])
    model.set_weights([np.array([[1.0]], np.float32), np.array([-1.5], np.float32)])
    assert model.evaluate(x, np.array([0, 0, 1, 0]), verbose=0, return_dict=True)["binary_accuracy"] == 0.75


def test_set_random_seed_makes_models_made_without_a_seed_reproducible():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 4)).astype(np.float32), rng.integers(0, 3, 64)

    def run():
        model = tn.models.Sequential(
            [
                tn.layers.Dense(8, activation="relu", input_dim=4),
                tn.layers.Dropout(0.3),
                tn.layers.Dense(3, activation="softmax"),
            ]
        )
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, verbose=0)
        return model.get_weights(), np.random.rand(), random.random()

    tn.utils.set_random_seed(7)
    first = run()
    tn.utils.set_random_seed(7)
    second = run()
    for a, b in zip(first[0], second[0]):
        np.testing.assert_array_equal(a, b)
    assert first[1:] == second[1:]
    with pytest.raises(ValueError, match="integer"):
        tn.utils.set_random_seed(0.5)


def test_layer_and_model_api_as_keras():
    model = tn.models.Sequential(
        [
            tn.layers.Dense(4, activation="relu", input_dim=3, name="hidden"),
            tn.layers.BatchNormalization(),
            tn.layers.Dense(2),
        ],
        seed=0,
    )
    assert model.count_params() == 3 * 4 + 4 + 4 * 4 + 4 * 2 + 2
    hidden = model.get_layer("hidden")
    assert hidden is model.layers[0] and model.get_layer(index=-1) is model.layers[2]
    with pytest.raises(ValueError, match=r"no layer named 'nope'; the layers are \['hidden'"):
        model.get_layer("nope")
    assert [w.shape for w in hidden.weights] == [(3, 4), (4,)] and hidden.trainable_weights == hidden.weights
    bn = model.layers[1]
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2 and len(bn.weights) == 4
    kernel, bias = hidden.get_weights()
    hidden.set_weights([kernel * 2, bias + 1])
    np.testing.assert_array_equal(model.get_weights()[0], kernel * 2)
    with pytest.raises(ValueError, match=r"kernel has shape \(3, 4\), got an array of shape \(4, 3\)"):
        hidden.set_weights([kernel.T, bias])
    x = np.ones((5, 3), np.float32)
    np.testing.assert_allclose(tn.backend.to_numpy(model(x)), model.predict(x), rtol=1e-6)
    assert repr(hidden).startswith("<Dense name=hidden, activation='relu'") and "built=True" in repr(hidden)
    assert repr(model).startswith("<Sequential name=sequential") and "<Dense name=hidden" in repr(model)
    assert tn.layers.Conv2D and tn.layers.MaxPooling2D and tn.layers.AveragePooling2D and tn.models.load_model
    np.testing.assert_array_equal(tn.utils.to_categorical([2, 0]), [[0, 0, 1], [1, 0, 0]])


def test_automatic_layer_names_follow_keras_rule_within_each_model():
    # user names are kept; an automatic name skips any name already taken in the model
    model = tn.Sequential(
        [
            tn.Input((6, 6, 1)),
            tn.Conv2D(2, 3, name="dense_1"),  # a user name that a later automatic Dense would take
            tn.Conv2D(2, 3),
            tn.layers.MaxPooling2D(),
            tn.Flatten(),
            tn.Dense(4),
            tn.Dense(4),
            tn.Dense(4, name="dense_3"),
            tn.Dense(4),
            tn.layers.ReLU(),
        ]
    )
    assert [layer.name for layer in model.layers] == [
        "dense_1",
        "conv2d",
        "max_pooling2d",
        "flatten",
        "dense",
        "dense_2",
        "dense_3",
        "dense_4",
        "re_lu",
    ]
    # numbering starts again in every model; a layer reused from another model keeps its name
    shared = model.layers[5]
    second = tn.Sequential([tn.Input((4,)), shared, tn.Dense(2), tn.Dense(2), tn.Dense(2)])
    assert [layer.name for layer in second.layers] == ["dense_2", "dense", "dense_1", "dense_3"]


def test_automatic_names_try_each_candidate_at_most_once(monkeypatch):
    from tinynet.engine import keras_rules

    tried = []
    numbered = keras_rules.numbered
    monkeypatch.setattr(keras_rules, "numbered", lambda base, k: tried.append(k) or numbered(base, k))
    named = [tn.Dense(1, name=f"dense_{k}") for k in range(2, 202, 2)]  # 100 user names in the way
    model = tn.Sequential(named + [tn.Dense(1) for _ in range(1000)])
    names = [layer.name for layer in model.layers]
    assert len(set(names)) == 1100 and names[100:103] == ["dense", "dense_1", "dense_3"]
    assert names[-1] == "dense_1099"
    # per automatic name its free candidate (looked at, then made), plus each user name in the way,
    # skipped once (the old search built a million candidates for every layer)
    assert len(tried) <= 2 * 1000 + 100 and len(set(tried)) == 1100
