"""Step-by-step parity with Keras, from fixtures recorded by benchmarks/keras_reference.py.

No TensorFlow needed: each fixture holds what Keras computed for one configuration
(tests/parity_cases.py) on one Keras backend. tinynet starts from the same initial
weights, trains on the same batches in the same order, and must give the same
loss at every step and the same final weights.

Tolerances (float32 throughout, as in Keras):
- the first 100 steps' losses to 2e-5 relative. Agreeing formulas stay within 1e-6
  (measured: at most 6e-7 over every step of every case; the only differences are
  the order of float32 additions inside the matrix products); a wrong epsilon
  placement in Adam or RMSprop, a missing clip, or the wrong loss semantics is off
  by far more within those steps (the tests below prove each one is caught).
- later steps, final weights and predictions to 1e-3: rounding differences of 1e-7
  grow slowly over hundreds of steps of training, but stay far below what a wrong
  formula produces.
"""

import json
import os

import numpy as np
import pytest
from parity_cases import CASES, batches, digest, fixture_path, make_data, make_initial_weights, weight_samples

import tinynet as tn

RECORDINGS = [(name, backend) for name, case in CASES.items() for backend in case["backends"]]


def load_fixture(name, backend):
    path = fixture_path(name, backend)
    if not os.path.exists(path):
        pytest.fail(f"missing fixture {path}: run python benchmarks/keras_reference.py (needs Keras)")
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    data["meta"] = json.loads(data["meta"].tobytes())
    return data


def tinynet_model(case, backend, optimizer=None):
    """The case's model in tinynet; Keras's TensorFlow semantics unless backend is 'jax'."""
    layers = [tn.Input((784,))]
    for spec in case["layers"]:
        layers.append(tn.Dense(spec[1], activation=spec[2]) if spec[0] == "dense" else tn.Dropout(spec[1]))
    model = tn.Sequential(layers, seed=0)
    opt_name, opt_kwargs = case["optimizer"]
    loss_name, loss_kwargs = case["loss"]
    loss = getattr(tn.losses, loss_name)(**loss_kwargs, use_output_logits=backend == "tensorflow")
    model.compile(optimizer or getattr(tn.optimizers, opt_name)(**opt_kwargs), loss)
    model.set_weights(make_initial_weights(case))
    return model


def replay(case, backend, optimizer=None):
    x, y = make_data(case)
    model = tinynet_model(case, backend, optimizer)
    losses = np.array([model.train_on_batch(xb, yb) for xb, yb in batches(case, x, y)])
    return model, losses, x


@pytest.mark.parametrize("name,backend", RECORDINGS, ids=[f"{n}-{b}" for n, b in RECORDINGS])
def test_same_losses_and_weights_as_keras(name, backend):
    case = CASES[name]
    keras = load_fixture(name, backend)
    x, y = make_data(case)
    assert digest([x, y]) == keras["meta"]["data_sha256"], "the synthetic data changed: re-record the fixtures"
    assert digest(make_initial_weights(case)) == keras["meta"]["weights_sha256"]

    model, losses, x = replay(case, backend)
    strict = case.get("strict_steps", 100)
    np.testing.assert_allclose(losses[:strict], keras["losses"][:strict], rtol=2e-5, err_msg=f"first {strict} steps")
    if not case.get("compare_final", True):
        return
    np.testing.assert_allclose(losses, keras["losses"], rtol=1e-3, err_msg="all steps")
    samples, sums, norms = weight_samples(model.get_weights())
    for i, s in enumerate(samples):
        np.testing.assert_allclose(s, keras[f"sample_{i}"], rtol=1e-3, atol=1e-4, err_msg=f"final weights {i}")
    np.testing.assert_allclose(norms, keras["norms"], rtol=1e-4)
    np.testing.assert_allclose(model.predict(x[:8]), keras["predictions"], atol=1e-3)


def test_the_two_keras_backends_really_differ_for_a_sigmoid_output():
    tf, jax = load_fixture("mlp_adam_sigmoid", "tensorflow"), load_fixture("mlp_adam_sigmoid", "jax")
    assert abs(tf["losses"][0] - jax["losses"][0]) > 0.01


class AdamEpsilonOnCorrectedV(tn.optimizers.Adam):
    """PyTorch's placement: eps added to the bias-corrected sqrt(v_hat)."""

    def update(self, i, w, g, lr):
        m, v = self.slots["m"][i], self.slots["v"][i]
        t = self.iterations + 1
        m += (g - m) * (1 - self.beta_1)
        v += (g * g - v) * (1 - self.beta_2)
        m_hat, v_hat = m / (1 - self.beta_1**t), v / (1 - self.beta_2**t)
        w -= lr * m_hat / (np.sqrt(v_hat) + self.epsilon)


class RMSpropEpsilonOutside(tn.optimizers.RMSprop):
    """eps outside the square root: lr g / (sqrt(v) + eps)."""

    def update(self, i, w, g, lr):
        v = self.slots["velocity"][i]
        v *= self.rho
        v += (1 - self.rho) * g * g
        w -= lr * g / (np.sqrt(v) + self.epsilon)


@pytest.mark.parametrize(
    "name,optimizer",
    [
        ("mlp_adam_softmax", AdamEpsilonOnCorrectedV()),
        ("wide_rmsprop_dropout0", RMSpropEpsilonOutside()),
    ],
)
def test_a_wrong_epsilon_placement_is_caught(name, optimizer):
    keras = load_fixture(name, "tensorflow")
    _, losses, _ = replay(CASES[name], "tensorflow", optimizer)
    strict = CASES[name].get("strict_steps", 100)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(losses[:strict], keras["losses"][:strict], rtol=2e-5)


class AdamaxWithoutCorrection(tn.optimizers.Adamax):
    """Adamax without its 1 - beta_1^t bias correction."""

    def update(self, i, w, g, lr):
        m, u = self.slots["m"][i], self.slots["u"][i]
        m += (g - m) * (1 - self.beta_1)
        np.maximum(self.beta_2 * u, np.abs(g), out=u)
        w -= lr * m / (u + self.epsilon)


class AdadeltaEpsilonOutside(tn.optimizers.Adadelta):
    """eps outside both square roots: -(sqrt(d) + eps) / (sqrt(a) + eps) g."""

    def update(self, i, w, g, lr):
        a, d = self.slots["accumulated_grad"][i], self.slots["accumulated_delta_var"][i]
        a *= self.rho
        a += (1 - self.rho) * g * g
        dw = -(np.sqrt(d) + self.epsilon) / (np.sqrt(a) + self.epsilon) * g
        d *= self.rho
        d += (1 - self.rho) * dw * dw
        w += lr * dw


@pytest.mark.parametrize(
    "name,optimizer",
    [
        ("mlp_nadam", tn.optimizers.Adam(0.002)),  # Nadam's look-ahead left out
        ("mlp_adamax", AdamaxWithoutCorrection(0.002)),
        ("mlp_adadelta", AdadeltaEpsilonOutside(1.0)),
    ],
)
def test_a_near_miss_of_the_newer_optimizers_is_caught(name, optimizer):
    keras = load_fixture(name, "jax")
    _, losses, _ = replay(CASES[name], "jax", optimizer)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(losses[:100], keras["losses"][:100], rtol=2e-5)


@pytest.mark.parametrize("name", ["binary_saturating", "softmax_saturating", "mlp_adam_sigmoid"])
def test_the_wrong_loss_semantics_are_caught(name):
    """Replaying a backend's steps with the other backend's loss semantics (logits
    without clip vs renormalised and clipped probabilities) must fail."""
    for recorded, replayed in (("jax", "tensorflow"), ("tensorflow", "jax")):
        keras = load_fixture(name, recorded)
        _, losses, _ = replay(CASES[name], replayed)
        with pytest.raises(AssertionError):
            np.testing.assert_allclose(losses[:100], keras["losses"][:100], rtol=2e-5)


class SparseCrossentropyWithoutClip(tn.losses.SparseCategoricalCrossentropy):
    """Renormalised probabilities used as they are: no clip to [1e-7, 1 - 1e-7]."""

    def forward(self, y_pred, y_true):
        t = self._targets(y_true, y_pred)
        self._t, self._n, self._sum = t, y_pred.shape[0], y_pred.sum(axis=-1, keepdims=True)
        self._q = y_pred / self._sum
        with np.errstate(divide="ignore"):
            return -(t * np.log(self._q)).sum() / self._n

    def backward(self):
        with np.errstate(divide="ignore", invalid="ignore"):
            gq = np.where(self._t > 0, -self._t / self._q, 0) / self._n
        return (gq - (gq * self._q).sum(axis=-1, keepdims=True)) / self._sum


def test_a_missing_clip_is_caught():
    """softmax_saturating makes confident mistakes: the true class's probability falls
    below 1e-7, where Keras's JAX backend clips it (loss capped at -log(1e-7), no
    gradient); without the clip the loss and every later step differ."""
    case, keras = CASES["softmax_saturating"], load_fixture("softmax_saturating", "jax")
    x, y = make_data(case)
    model = tinynet_model(case, "jax")
    model.compile(tn.optimizers.Adam(**case["optimizer"][1]), SparseCrossentropyWithoutClip(use_output_logits=False))
    model.set_weights(make_initial_weights(case))
    losses = np.array([model.train_on_batch(xb, yb) for xb, yb in batches(case, x, y)])
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(losses[:100], keras["losses"][:100], rtol=2e-5)


@pytest.mark.parametrize("name", ["cnn_same_strided", "cnn_valid_rectangular"])
def test_cnn_with_keras_weights_gives_keras_outputs(name):
    """Keras-shaped weights (kernels (kh, kw, in, out), BatchNormalization's gamma, beta,
    moving mean and variance) load with set_weights and give Keras's forward output, in
    inference mode and in training mode (batch statistics)."""
    path = fixture_path(name, "tensorflow")
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    meta = json.loads(data["meta"].tobytes())
    layers = [tn.Input(tuple(meta["shape"]))] + [
        getattr(tn, kind)(*args, **kwargs) for kind, args, kwargs in meta["spec"]
    ]
    model = tn.Sequential(layers)
    model.set_weights([data[f"weight_{i}"] for i in range(sum(k.startswith("weight_") for k in data))])
    np.testing.assert_allclose(model.predict(data["x"]), data["inference"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.forward(data["x"], training=True), data["training"], rtol=1e-4, atol=1e-5)
