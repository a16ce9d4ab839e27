"""The checker itself is tested: deliberately wrong backward passes must fail it,
with a report that says where. A checker that passes everything proves nothing."""

import numpy as np
import pytest

import tinynet as tn
from tinynet.gradcheck import GradientCheckError, check_backward, numerical_grad


def built(layer, shape):
    layer.build(shape, np.random.default_rng(0))
    return layer


class DenseMissingTransposeInGx(tn.Dense):
    def backward(self, gy):
        gz = self.activation.backward(gy)
        self.kernel.grad = self._x.T @ gz
        self.bias.grad = gz.sum(axis=0)
        return gz @ self.kernel.value  # wrong: should be W^T (square W keeps shapes valid)


class DenseMissingTransposeInGW(tn.Dense):
    def backward(self, gy):
        gz = gy
        self.kernel.grad = (self._x.T @ gz).T  # wrong: the transpose of dL/dW
        self.bias.grad = gz.sum(axis=0)
        return gz @ self.kernel.value.T


class SigmoidFactorTwo(tn.Sigmoid):
    def backward(self, gy):
        return 2 * super().backward(gy)  # wrong: a stray factor of 2


class SoftmaxDiagonalOnly(tn.Softmax):
    def backward(self, gy):
        y = self._y
        return gy * y * (1 - y)  # wrong: only the diagonal of the Jacobian


class BiasGradNotSummed(tn.Dense):
    def backward(self, gy):
        out = super().backward(gy)
        self.bias.grad = gy.mean(axis=0)  # wrong: mean instead of sum over the batch
        return out


@pytest.mark.parametrize(
    "layer,shape,culprit",
    [
        (DenseMissingTransposeInGx(4), (4,), "x"),
        (DenseMissingTransposeInGW(4), (4,), "parameter kernel"),
        (BiasGradNotSummed(3), (5,), "parameter bias"),
        (SigmoidFactorTwo(), (6,), "x"),
        (SoftmaxDiagonalOnly(), (6,), "x"),
    ],
)
def test_wrong_backwards_fail(layer, shape, culprit):
    # (x drawn with another seed than the checker's gy: gy == x would make x^T gy symmetric)
    x = np.random.default_rng(11).standard_normal((5,) + shape)
    with pytest.raises(GradientCheckError) as info:
        check_backward(built(layer, shape), x)
    report = str(info.value)
    assert "gradient check failed" in report
    assert f"  {culprit} " in report, report  # names the culprit ...
    assert "worst element" in report  # ... and where it is worst


def test_correct_versions_of_the_same_layers_pass():
    x = np.random.default_rng(0).standard_normal((5, 4))
    check_backward(built(tn.Dense(4), (4,)), x)
    check_backward(built(tn.Softmax(), (4,)), x)
    check_backward(built(tn.Sigmoid(), (4,)), x)


def test_wrong_gradient_shape_is_reported():
    def forward(x):
        return x * 2

    def backward(gy):
        return gy.sum(axis=0)

    with pytest.raises(GradientCheckError, match=r"shape \(3,\), expected \(4, 3\)"):
        check_backward((forward, backward), np.ones((4, 3)))


def test_integer_inputs_are_skipped_and_pairs_with_several_inputs_work():
    def forward(a, idx):
        return a[np.arange(a.shape[0]), idx] ** 2

    def backward(gy):
        g = np.zeros_like(a)
        g[np.arange(a.shape[0]), idx] = 2 * a[np.arange(a.shape[0]), idx] * gy
        return g, None

    a = np.random.default_rng(1).standard_normal((4, 3))
    idx = np.array([0, 2, 1, 1])
    analytic, numerical = check_backward((forward, backward), (a, idx))
    assert analytic == pytest.approx(numerical, rel=1e-6)


class DenseSeeingDtypes(tn.Dense):
    """A Dense that records the dtypes its forward sees."""

    def forward(self, x, training=False):
        self.seen = getattr(self, "seen", set()) | {(x.dtype, self.kernel.value.dtype)}
        return super().forward(x, training)


@pytest.mark.parametrize("check", ["check_backward", "compare_backward"])
def test_check_runs_in_float64_and_leaves_a_float32_layer_as_it_was(check):
    layer = built(DenseSeeingDtypes(3), (2,))
    layer.kernel.grad = np.full((2, 3), 7.0, dtype=np.float32)
    kernel, grad, bias = layer.kernel.value, layer.kernel.grad, layer.bias.value.copy()
    before = kernel.copy()
    getattr(tn.gradcheck, check)(layer, np.ones((2, 2), dtype=np.float32))
    assert layer.seen == {(np.dtype(np.float64), np.dtype(np.float64))}  # the check itself ran in float64
    assert layer.kernel.value is kernel and layer.kernel.grad is grad  # its own arrays, not the check's
    assert kernel.dtype == np.float32 and layer.bias.value.dtype == np.float32
    np.testing.assert_array_equal(kernel, before)
    np.testing.assert_array_equal(layer.bias.value, bias)
    np.testing.assert_array_equal(grad, 7.0)


def test_a_failing_check_leaves_the_layer_as_it_was_too():
    layer = built(BiasGradNotSummed(3), (5,))
    kernel = layer.kernel.value
    with pytest.raises(GradientCheckError):
        check_backward(layer, np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32))
    assert layer.kernel.value is kernel and kernel.dtype == np.float32


def test_checking_a_trained_model_keeps_its_flat_buffer_and_it_trains_on(rng):
    model = tn.Sequential([tn.Input((4,)), tn.Dense(5, activation="tanh"), tn.Dense(3)], seed=0)
    model.compile("adam", tn.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = rng.standard_normal((16, 4)).astype(np.float32), rng.integers(0, 3, 16)
    model.fit(x, y, epochs=1, verbose=0)
    views = [p.value for p in model.parameters()]
    check_backward(model, x[:4])
    assert all(p.value is v for p, v in zip(model.parameters(), views))  # still views of the flat buffer
    before = model.get_weights()
    model.fit(x, y, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # it still learns


def test_numerical_grad_matches_a_known_gradient():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = numerical_grad(lambda v: (v**3).sum(), x)
    np.testing.assert_allclose(g, 3 * x**2, rtol=1e-5)
    np.testing.assert_array_equal(x, [[1.0, -2.0], [0.5, 3.0]])  # restored
