"""Each optimizer's first three steps equal numbers worked out by hand from Keras's
formulas (scalar Python arithmetic, element by element, independent of the code
under test); a broken Adam bias correction is caught by the same comparison."""

import math

import numpy as np
import pytest

import tinynet as tn
from tinynet.layers import Parameter
from tinynet.optimizers import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, Nadam, RMSprop

W0 = [0.5, -1.0, 2.0]
GRADS = [[0.1, -0.2, 0.3], [-0.4, 0.5, 0.05], [0.2, 0.2, -0.6]]


def run(opt, device="cpu", steps=3):
    p = Parameter(tn.backend.to_device(np.array(W0, dtype=np.float64), device), "w")
    out = []
    for g in GRADS[:steps]:
        p.grad = tn.backend.to_device(np.array(g, dtype=np.float64), device)
        opt.apply([p])
        out.append(tn.backend.to_numpy(p.value).copy())
    return out


def by_hand(step_fn, state0):
    """Apply a scalar update rule element by element: step_fn(w, g, state, t) -> (w, state)."""
    results, ws, states = [], list(W0), [dict(state0) for _ in W0]
    for t, gs in enumerate(GRADS, start=1):
        for i, g in enumerate(gs):
            ws[i], states[i] = step_fn(ws[i], g, states[i], t)
        results.append(list(ws))
    return results


def sgd_plain(w, g, s, t):
    return w - 0.1 * g, s


def sgd_momentum(w, g, s, t, nesterov=False):
    m = 0.9 * s["m"] - 0.1 * g
    w = w + 0.9 * m - 0.1 * g if nesterov else w + m
    return w, {"m": m}


def rmsprop(w, g, s, t):
    v = 0.9 * s["v"] + 0.1 * g * g
    return w - 0.01 * g / math.sqrt(v + 1e-7), {"v": v}


def rmsprop_centered_momentum(w, g, s, t):
    v = 0.9 * s["v"] + 0.1 * g * g
    a = 0.9 * s["a"] + 0.1 * g
    step = 0.01 * g / math.sqrt(v - a * a + 1e-7)
    mom = 0.5 * s["mom"] + step
    return w - mom, {"v": v, "a": a, "mom": mom}


def adam(w, g, s, t, wd=0.0, lr=0.01):
    w = w - w * wd * lr
    m = 0.9 * s["m"] + 0.1 * g
    v = 0.999 * s["v"] + 0.001 * g * g
    alpha = lr * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
    return w - alpha * m / (math.sqrt(v) + 1e-7), {"m": m, "v": v}


def adagrad(w, g, s, t):
    a = s["a"] + g * g
    return w - 0.01 * g / math.sqrt(a + 1e-7), {"a": a}


def nadam(w, g, s, t, lr=0.01):
    mu_t, mu_next = 0.9 * (1 - 0.5 * 0.96**t), 0.9 * (1 - 0.5 * 0.96 ** (t + 1))
    product = s["p"] * mu_t
    m = 0.9 * s["m"] + 0.1 * g
    v = 0.999 * s["v"] + 0.001 * g * g
    m_hat = mu_next * m / (1 - product * mu_next) + (1 - mu_t) * g / (1 - product)
    v_hat = v / (1 - 0.999**t)
    return w - lr * m_hat / (math.sqrt(v_hat) + 1e-7), {"m": m, "v": v, "p": product}


def adamax(w, g, s, t, lr=0.01):
    m = 0.9 * s["m"] + 0.1 * g
    u = max(0.999 * s["u"], abs(g))
    return w - lr * m / ((1 - 0.9**t) * (u + 1e-7)), {"m": m, "u": u}


def adadelta(w, g, s, t, lr=1.0):
    a = 0.95 * s["a"] + 0.05 * g * g
    step = -math.sqrt(s["d"] + 1e-7) / math.sqrt(a + 1e-7) * g
    d = 0.95 * s["d"] + 0.05 * step * step
    return w + lr * step, {"a": a, "d": d}


CASES = [
    (lambda: SGD(0.1), sgd_plain, {}),
    (lambda: SGD(0.1, momentum=0.9), sgd_momentum, {"m": 0.0}),
    (
        lambda: SGD(0.1, momentum=0.9, nesterov=True),
        lambda w, g, s, t: sgd_momentum(w, g, s, t, nesterov=True),
        {"m": 0.0},
    ),
    (lambda: RMSprop(0.01), rmsprop, {"v": 0.0}),
    (lambda: RMSprop(0.01, momentum=0.5, centered=True), rmsprop_centered_momentum, {"v": 0.0, "a": 0.0, "mom": 0.0}),
    (lambda: Adam(0.01), adam, {"m": 0.0, "v": 0.0}),
    (lambda: AdamW(0.01, weight_decay=0.1), lambda w, g, s, t: adam(w, g, s, t, wd=0.1), {"m": 0.0, "v": 0.0}),
    (lambda: Adagrad(0.01), adagrad, {"a": 0.1}),
    (lambda: Nadam(0.01), nadam, {"m": 0.0, "v": 0.0, "p": 1.0}),
    (lambda: Adamax(0.01), adamax, {"m": 0.0, "u": 0.0}),
    (lambda: Adadelta(1.0), adadelta, {"a": 0.0, "d": 0.0}),
]


@pytest.mark.parametrize(
    "make,rule,state0",
    CASES,
    ids=[
        *("sgd", "sgd-momentum", "sgd-nesterov", "rmsprop", "rmsprop-centered-momentum", "adam", "adamw"),
        *("adagrad", "nadam", "adamax", "adadelta"),
    ],
)
def test_first_three_steps_match_hand_computation(device, make, rule, state0):
    got = run(make(), device)
    want = by_hand(rule, state0)
    for step, (g, w) in enumerate(zip(got, want), start=1):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15, err_msg=f"step {step}")


class AdamWithoutPowerT(Adam):
    """Adam's classic bug: bias correction with (1 - beta) instead of (1 - beta**t)."""

    def update(self, i, w, g, lr):
        m, v = self.slots["m"][i], self.slots["v"][i]
        m += (g - m) * (1 - self.beta_1)
        v += (g * g - v) * (1 - self.beta_2)
        alpha = lr * math.sqrt(1 - self.beta_2) / (1 - self.beta_1)  # wrong: no **t
        w -= alpha * m / (np.sqrt(v) + self.epsilon)


def test_adam_without_power_t_is_caught():
    got = run(AdamWithoutPowerT(0.01))
    want = by_hand(adam, {"m": 0.0, "v": 0.0})
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)  # t = 1: identical by coincidence
    with pytest.raises(AssertionError):  # from t = 2 on the hand computation catches it
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)


def test_keras_defaults():
    assert (SGD().learning_rate, SGD().momentum, SGD().nesterov) == (0.01, 0.0, False)
    r = RMSprop()
    assert (r.learning_rate, r.rho, r.epsilon) == (0.001, 0.9, 1e-7)
    a = Adam()
    assert (a.learning_rate, a.beta_1, a.beta_2, a.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert AdamW().weight_decay == 0.004
    assert isinstance(tn.optimizers.get("adam"), Adam) and isinstance(tn.optimizers.get("RMSprop"), RMSprop)


def test_clipnorm_clipvalue_global_clipnorm():
    p = Parameter(np.zeros(2), "w")
    p.grad = np.array([3.0, 4.0])  # norm 5
    SGD(1.0, clipnorm=1.0).apply([p])
    np.testing.assert_allclose(p.value, [-0.6, -0.8])
    p.value[:] = 0
    SGD(1.0, clipvalue=3.5).apply([p])
    np.testing.assert_allclose(p.value, [-3.0, -3.5])
    q = Parameter(np.zeros(1), "q")
    p.value[:], q.grad = 0, np.array([12.0])  # global norm 13
    SGD(1.0, global_clipnorm=1.3).apply([p, q])
    np.testing.assert_allclose(np.concatenate([p.value, q.value]), [-0.3, -0.4, -1.2])
    p.value[:], p.grad = 0, np.array([0.3, 0.4])  # under the limit: untouched
    SGD(1.0, clipnorm=1.0).apply([p])
    np.testing.assert_allclose(p.value, [-0.3, -0.4])


def test_weight_decay_comes_before_the_update_and_updates_are_in_place():
    p = Parameter(np.array([2.0]), "w")
    value = p.value
    p.grad = np.array([1.0])
    SGD(0.1, weight_decay=0.5).apply([p])
    assert p.value is value
    np.testing.assert_allclose(p.value, [2.0 - 2.0 * 0.5 * 0.1 - 0.1])


def test_float32_parameters_stay_float32():
    p = Parameter(np.ones(3, dtype=np.float32), "w")
    p.grad = np.ones(3, dtype=np.float32)
    for opt in (SGD(momentum=0.9), RMSprop(), Adam(), AdamW(), Adagrad(), Nadam(), Adamax(), Adadelta()):
        opt.apply([p])
        assert p.value.dtype == np.float32
        assert all(s[0].dtype == np.float32 for s in opt.slots.values())


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: Adam(learning_rate=-0.001), "learning_rate must be a finite number >= 0, got -0.001"),
        (lambda: SGD(learning_rate=float("nan")), "learning_rate"),
        (lambda: Adam(beta_1=1.0), r"beta_1 must be a number in \[0, 1\), got 1.0"),
        (lambda: SGD(momentum=-0.1), "momentum"),
        (lambda: RMSprop(rho=1.5), "rho"),
        (lambda: SGD(clipnorm=0), "clipnorm"),
        (lambda: SGD(clipnorm=1.0, clipvalue=1.0), "at most one"),
        (lambda: Adam(epsilon=-1e-7), "epsilon"),
        (lambda: tn.optimizers.get("adabelief"), r"unknown optimizer .adabelief.; expected one of"),
    ],
)
def test_bad_hyperparameters_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()
