"""The learner's contract is safe: a layer that sets its gradients either way trains
exactly as its gradients say, with every optimizer, with and without clipping; a
layer that breaks the contract is named at the first step, never trained silently."""

import numpy as np
import pytest

import tinynet as tn
from tinynet.gradcheck import check_backward
from tinynet.layers import Layer, Parameter


class MyDense(Layer):
    """A learner's own Dense, written the obvious way: y = x W + b."""

    def __init__(self, units, style="assign", **kwargs):
        super().__init__(**kwargs)
        self.units, self.style = units, style

    def build(self, input_shape, rng=None):
        rng = rng if rng is not None else np.random.default_rng(0)
        self.W = Parameter(rng.standard_normal((input_shape[0], self.units)).astype(np.float32) * 0.5, "W")
        self.b = Parameter(np.zeros(self.units, np.float32), "b")
        return super().build(input_shape, rng)

    def compute_output_shape(self, input_shape):
        return (self.units,)

    def parameters(self):
        return [self.W, self.b]

    def forward(self, x, training=False):
        self.x = x
        return x @ self.W.value + self.b.value

    def backward(self, gy):
        if self.style == "assign":
            self.W.grad = self.x.T @ gy
            self.b.grad = gy.sum(axis=0)
        elif self.style == "in place":
            self.W.grad[...] = self.x.T @ gy
            self.b.grad[...] = gy.sum(axis=0)
        elif self.style == "adds":  # broken: += adds to the last step's gradient
            self.W.grad += self.x.T @ gy
            self.b.grad += gy.sum(axis=0)
        elif self.style == "forgets b":  # broken: never sets b.grad
            self.W.grad = self.x.T @ gy
        elif self.style == "transposed":  # broken: gW of the wrong shape
            self.W.grad = gy.T @ self.x
            self.b.grad = gy.sum(axis=0)
        elif self.style == "numpy":  # broken on a GPU: a NumPy array for a CuPy parameter
            self.W.grad = tn.backend.to_numpy(self.x).T @ tn.backend.to_numpy(gy)
            self.b.grad = gy.sum(axis=0)
        return gy @ self.W.value.T


def data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)


def model_with(layer, device, optimizer, first=None):
    """[Dense(5) first (so the custom layer is not the first), layer], MSE."""
    model = tn.Sequential([tn.Input((4,)), first or tn.Dense(5, activation="tanh"), layer], device=device, seed=0)
    model.compile(optimizer, "mse")
    return model


@pytest.mark.parametrize("style", ["assign", "in place"])
def test_check_backward_passes_on_the_custom_layer(style):
    layer = MyDense(3, style=style)
    layer.build((4,))
    check_backward(layer, np.random.default_rng(1).standard_normal((6, 4)))


@pytest.mark.parametrize("style", ["assign", "in place"])
@pytest.mark.parametrize("first", [False, True])
def test_sgd_with_learning_rate_1_moves_each_weight_by_minus_its_gradient(device, style, first):
    x, t = data()
    layer = MyDense(3, style=style)
    model = (
        tn.Sequential([tn.Input((4,)), layer], device=device, seed=0)
        if first
        else model_with(layer, device, tn.optimizers.SGD(1.0))
    )
    model.compile(tn.optimizers.SGD(1.0), "mse")
    model.train_on_batch(x, t)  # any first step; then one step by hand
    W0, b0 = (tn.backend.to_numpy(p.value).copy() for p in (layer.W, layer.b))
    h = np.tanh(x @ model.get_weights()[0] + model.get_weights()[1]) if not first else x
    gy = 2 * (h @ W0 + b0 - t) / t.size
    model.train_on_batch(x, t)
    np.testing.assert_allclose(tn.backend.to_numpy(layer.W.value), W0 - h.T @ gy, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(tn.backend.to_numpy(layer.b.value), b0 - gy.sum(axis=0), rtol=1e-6, atol=1e-7)


OPTIMIZERS = {
    "sgd": lambda: tn.optimizers.SGD(0.1),
    "sgd nesterov": lambda: tn.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "rmsprop": lambda: tn.optimizers.RMSprop(0.01),
    "adam": lambda: tn.optimizers.Adam(0.01),
    "adam clipnorm": lambda: tn.optimizers.Adam(0.01, clipnorm=0.05),
    "adam global_clipnorm": lambda: tn.optimizers.Adam(0.01, global_clipnorm=0.05),
    "adagrad clipvalue": lambda: tn.optimizers.Adagrad(0.01, clipvalue=0.01),
    "nadam": lambda: tn.optimizers.Nadam(0.01),
    "adamax": lambda: tn.optimizers.Adamax(0.01),
    "adadelta": lambda: tn.optimizers.Adadelta(1.0),
}


@pytest.mark.parametrize("style", ["assign", "in place"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_a_custom_layer_trains_exactly_like_the_builtin_dense(device, style, name):
    """The same weights, the same steps: a learner's layer and tn.Dense end equal."""
    x, t = data()
    mine = model_with(MyDense(3, style=style), device, OPTIMIZERS[name]())
    builtin = model_with(tn.Dense(3), device, OPTIMIZERS[name]())
    builtin.set_weights(mine.get_weights())
    for _ in range(5):
        mine.train_on_batch(x, t)
    builtin.fit(x, t, batch_size=8, epochs=5, shuffle=False, verbose=0)
    for a, b in zip(mine.get_weights(), builtin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(mine.get_weights()[2], model_with(MyDense(3), device, "sgd").get_weights()[2])


@pytest.mark.parametrize(
    "style,message",
    [
        ("adds", r"layer 'my_dense': backward did not set W.grad .* or added to it with \+="),
        ("forgets b", r"layer 'my_dense': backward did not set b.grad"),
        ("transposed", r"layer 'my_dense': backward set W.grad of shape \(3, 5\), but W has shape \(5, 3\)"),
    ],
)
@pytest.mark.parametrize("clip", [False, True])
def test_a_broken_contract_is_named_at_the_first_step(device, style, message, clip):
    x, t = data()
    model = model_with(MyDense(3, style=style), device, tn.optimizers.Adam(clipnorm=1.0 if clip else None))
    before = model.get_weights()
    with pytest.raises(tn.GradientContractError, match=message):
        model.fit(x, t, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # nothing was trained with a wrong gradient


def test_a_numpy_gradient_for_a_gpu_model_is_named(gpu):
    device = gpu  # only a GPU model can get a gradient on the wrong device
    x, t = data()
    model = model_with(MyDense(3, style="numpy"), device, "sgd")
    with pytest.raises(tn.GradientContractError, match="on the CPU, but the model is on the GPU"):
        model.fit(x, t, verbose=0)
