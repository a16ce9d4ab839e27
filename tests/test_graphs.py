"""CUDA graphs (tinynet/engine/graphs.py): a captured epoch trains as the usual step does.

On a GPU these run on CuPy; elsewhere on the CuPy stand-in, whose capture records
tinynet's kernel launches and refuses any other operation, and whose ``gemm`` runs
each block's threads at once, meeting at ``__syncthreads()``."""

from collections import Counter

import cupy_standin
import numpy as np
import pytest

import tinynet as tn
from tinynet import backend
from tinynet.callbacks import Callback, GradientMonitor
from tinynet.engine import graphs, kernels
from tinynet.engine import loop as training


def within_rounding(a, b, scale=None):
    """Equal within float32 rounding of sums taken in another order (gemm's tiles and
    splits against cuBLAS's or NumPy's)."""
    a, b = backend.to_numpy(a), backend.to_numpy(b)
    scale = float(np.abs(b).max()) if scale is None else scale
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * scale)


# ------------------------------------------------------------------ the matrix product of the graph


@pytest.mark.parametrize(
    "M, N, K, transposed, epilogue",
    [
        (5, 7, 3, False, graphs.NO_EPILOGUE),  # smaller than one tile
        (33, 40, 70, False, graphs.RELU),  # tiles cut at every edge; k split in 3, then summed
        (70, 9, 12, True, graphs.NO_EPILOGUE),  # A read as a transpose: [gW; gb] = [x, 1]^T gz
        (20, 33, 10, False, graphs.RELU_MASK),  # gx = (gz W^T) * (h > 0)
        (8, 20, 300, False, graphs.RELU_MASK),  # the same after a wide layer: k split, the mask applied by the sum
        (20, 40, 63, False, graphs.NO_EPILOGUE),  # k = 64, not split: one block sums two tiles of k in turn
        (96, 70, 2000, True, graphs.RELU),  # k split in 21, each block summing three tiles of k in turn
    ],
)
def test_gemm_equals_the_matrix_product(gpu, M, N, K, transposed, epilogue):
    cp, rng = backend.xp_for(gpu), np.random.default_rng(M * N * K)
    if transposed:  # stored (K, M), read as A = [stored^T; 1] (M + 1, K): a row of ones
        stored = rng.standard_normal((K, M)).astype(np.float32)
        A, strides, rows, inner = np.vstack([stored.T, np.ones((1, K))]), (1, M), M + 1, K
    else:  # stored (M, K), read as A = [stored, 1] (M, K + 1): a column of ones
        stored = rng.standard_normal((M, K)).astype(np.float32)
        A, strides, rows, inner = np.hstack([stored, np.ones((M, 1))]), (K, 1), M, K + 1
    b = rng.standard_normal((inner, N)).astype(np.float32)
    r = rng.standard_normal((rows, N)).astype(np.float32)
    expected = A.astype(np.float64) @ b.astype(np.float64)
    if epilogue == graphs.RELU:
        expected = np.maximum(expected, 0)
    if epilogue == graphs.RELU_MASK:
        expected = expected * (r > 0)
    out = cp.asarray(np.full((rows, N), np.nan, np.float32))  # every element must be written
    graph = graphs.EpochGraph.__new__(graphs.EpochGraph)  # the product alone, outside a graph
    splits, _ = graphs._splits(rows, N, inner)
    graph.launches, graph.partial = 0, cp.asarray(np.full(splits * rows * N, np.nan, np.float32))
    args = (cp.asarray(stored), cp.asarray(b), out, rows, N, inner, strides, M, K, (N, 1), epilogue, cp.asarray(r))
    graph._gemm(*args)
    within_rounding(out, expected, scale=float(np.abs(A).max() * np.abs(b).max() * inner))
    assert graph.launches == (2 if splits > 1 else 1)


# ------------------------------------------------------------------ a graph's epochs equal the usual step's


def mlp(
    device,
    output="softmax",
    hidden=("relu", "relu"),
    use_bias=True,
    metrics=("accuracy",),
    cuda_graph=False,
    optimizer="adam",
    units=(16, 11),
    inputs=12,
):
    layers = [tn.Input((inputs,))] + [tn.Dense(u, activation=a, use_bias=use_bias) for u, a in zip(units, hidden)]
    model = tn.Sequential(layers + [tn.Dense(4, activation=output, use_bias=use_bias)], device=device, seed=3)
    loss = tn.losses.SparseCategoricalCrossentropy(from_logits=output is None)
    model.compile(optimizer, loss, metrics=list(metrics), cuda_graph=cuda_graph)
    return model


class EveryEpoch(Callback):
    """The weights and the optimizer's state at the end of each epoch."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        opt = self.model.optimizer
        state = [backend.to_numpy(a) for name in ("m", "v") for a in opt.slots[name]]
        self.seen.append(([w.copy() for w in self.model.get_weights()], state, opt.iterations, dict(logs)))


def data(n, seed=0, inputs=12):
    rng = np.random.default_rng(seed)
    return rng.random((n, inputs)).astype(np.float32), rng.integers(0, 4, n)


@pytest.mark.parametrize(
    "n, batch, kwargs",
    [
        (16, 16, {}),  # one step an epoch: the two compared step by step
        (50, 16, {}),  # a last batch of 2
        (48, 16, {"output": None}),  # logits out, from_logits=True
        (40, 8, {"hidden": ("relu", None), "use_bias": False, "metrics": ()}),  # a linear hidden layer; no biases
        (24, 8, {"units": (6, 140)}),  # a wide layer: its backward's sum over k split, the ReLU mask after the sum
        # no biases, k split more finely than with them: their sums fill the shared buffer
        (256, 256, {"inputs": 512, "units": (64,), "hidden": ("relu",), "use_bias": False}),
    ],
)
def test_a_graphs_epochs_equal_the_usual_steps(gpu, n, batch, kwargs):
    x, y = data(n, inputs=kwargs.get("inputs", 12))
    runs = []
    for cuda_graph in (False, True):
        model, record = mlp(gpu, cuda_graph=cuda_graph, **kwargs), EveryEpoch()
        model.fit(x, y, batch_size=batch, epochs=3, verbose=0, callbacks=[record])
        runs.append(record.seen)
    for (w_usual, s_usual, t_usual, logs_usual), (w_graph, s_graph, t_graph, logs_graph) in zip(*runs):
        assert t_graph == t_usual
        for a, b in zip(w_graph + s_graph, w_usual + s_usual):
            within_rounding(a, b)
        assert logs_graph.keys() == logs_usual.keys()
        for key in logs_usual:
            assert logs_graph[key] == pytest.approx(logs_usual[key], rel=1e-5)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize(
    "inputs, units, batch, n", [(784, (100,), 32, 70), (128, (64,), 1024, 1500), (512, (64, 9), 256, 300)]
)
def test_the_split_sums_fit_the_buffer_they_share(gpu, monkeypatch, use_bias, inputs, units, batch, n):
    """Every product that splits its sum over k writes splits x M x N floats of the shared
    buffer: sized for the shapes captured, with or without biases (the capture alone)."""
    model = mlp(gpu, units=units, hidden=("relu",) * len(units), use_bias=use_bias, inputs=inputs)
    x, y = (backend.to_device(a, gpu) for a in data(n, inputs=inputs))
    launched, gemm = [], graphs.EpochGraph._gemm

    def checked(self, A, B, C, M, N, K, *rest):
        splits, _ = graphs._splits(M, N, K)
        launched.append((M, N, K, splits))
        capacity = int(self.partial.size)
        assert splits == 1 or splits * M * N <= capacity, (M, N, K, splits)
        return gemm(self, A, B, C, M, N, K, *rest)

    monkeypatch.setattr(graphs.EpochGraph, "_gemm", checked)
    with training.prepared(model, batch_size=batch):
        graphs.EpochGraph(model, x, y, batch)
    assert any(splits > 1 for *_, splits in launched)  # the case is one that splits


def test_a_learning_rate_schedule_and_a_second_fit_hold_in_the_graph(gpu):
    x, y = data(40)
    weights = []
    for cuda_graph in (False, True):
        schedule = tn.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5)
        model = mlp(gpu, cuda_graph=cuda_graph, optimizer=tn.optimizers.Adam(schedule))
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # a new capture, the optimizer's state kept
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        within_rounding(a, b)


def test_cuda_graph_auto_trains_the_usual_way_where_a_graph_cannot(gpu):
    x, y = data(32)
    weights = []
    for cuda_graph in (False, "auto"):
        model = mlp(gpu, cuda_graph=cuda_graph, optimizer="sgd")  # SGD: no graph
        history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert history.cuda_graph is False
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_cuda_graph_auto_uses_the_graph_where_it_can(gpu, monkeypatch):
    made, replays = [], []
    init, run = graphs.EpochGraph.__init__, graphs.EpochGraph.run
    monkeypatch.setattr(graphs.EpochGraph, "__init__", lambda self, *args: made.append(args) or init(self, *args))
    monkeypatch.setattr(graphs.EpochGraph, "run", lambda self, order=None: replays.append(order) or run(self, order))
    x, y = data(32)
    history = mlp(gpu, cuda_graph="auto").fit(x, y, batch_size=8, epochs=3, verbose=0)
    assert history.cuda_graph is True
    assert (len(made), len(replays)) == (1, 3)  # captured once, replayed each epoch


def test_a_graph_reads_the_device_once_an_epoch_and_captures_once_a_fit(gpu):
    if backend.xp_for(gpu) is not cupy_standin._module:
        pytest.skip("counts the stand-in's reads")
    x, y = data(64)
    model = mlp(gpu, cuda_graph=True)
    cupy_standin.reset_counts()
    model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    reads = Counter(where for kind, _, where in cupy_standin.events if kind == "sync")
    # per epoch: the NaN watch, the weights' finiteness, then the loss and the accuracy for the logs;
    # nothing per step
    assert sum(reads.values()) == 3 * 4, reads
    assert cupy_standin.counts["capture"] == 1


def test_an_error_during_capture_is_raised_and_leaves_no_stream_capturing(gpu, monkeypatch):
    x, y = data(32)
    model = mlp(gpu, cuda_graph=True)
    capture_step = graphs.EpochGraph._capture_step

    def failing(self, step):
        if step == 1:
            raise RuntimeError("failed at step 1")
        capture_step(self, step)

    monkeypatch.setattr(graphs.EpochGraph, "_capture_step", failing)
    with pytest.raises(RuntimeError, match="failed at step 1"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    monkeypatch.setattr(graphs.EpochGraph, "_capture_step", capture_step)
    assert model.fit(x, y, batch_size=8, epochs=1, verbose=0).cuda_graph is True  # the device works on


def test_a_diverging_graph_is_caught_at_the_end_of_its_epoch(gpu):
    x, y = data(32)
    model = mlp(gpu, cuda_graph=True, optimizer=tn.optimizers.Adam(1e30))
    with pytest.raises(tn.TrainingDiverged, match="epoch"):
        model.fit(x * 1e30, y, batch_size=8, epochs=3, verbose=0)


@pytest.mark.parametrize(
    "change, why",
    [
        (lambda m: m.compile("sgd", "sparse_categorical_crossentropy", cuda_graph=True), "Adam only"),
        (lambda m: m.compile("adam", "categorical_crossentropy", cuda_graph=True), "sparse categorical"),
        (
            lambda m: m.compile(tn.optimizers.Adam(clipnorm=1.0), "sparse_categorical_crossentropy", cuda_graph=True),
            "clips",
        ),
        (lambda m: m.add(tn.Dropout(0.5)), "Dense layers only"),
        (
            lambda m: m.compile(
                "adam", tn.losses.SparseCategoricalCrossentropy(use_output_logits=False), cuda_graph=True
            ),
            "use_output_logits=False",
        ),
    ],
)
def test_cuda_graph_true_says_why_a_fit_cannot_before_any_work(gpu, change, why):
    x, y = data(32)
    model = mlp(gpu, cuda_graph=True)
    change(model)
    if model.optimizer is None or model.loss is None:
        model.compile("adam", "sparse_categorical_crossentropy", cuda_graph=True)
    if model.loss.name == "categorical_crossentropy":
        y = np.eye(4, dtype=np.float32)[y]
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=why):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_float64_parameter_is_refused_by_true_and_trained_the_usual_way_by_auto(gpu):
    x, y = data(32)
    weights = []
    for cuda_graph in (True, "auto", False):
        layers = [tn.Input((12,)), tn.Dense(8, activation="relu")]
        layers.append(tn.Dense(4, activation="softmax", bias_initializer=lambda shape, rng: np.zeros(shape)))
        model = tn.Sequential(layers, device=gpu, seed=3)
        model.compile("adam", "sparse_categorical_crossentropy", cuda_graph=cuda_graph)
        if cuda_graph is True:
            with pytest.raises(ValueError, match="its bias is float64; the graph's kernels are float32"):
                model.fit(x, y, batch_size=8, epochs=1, verbose=0)
            continue
        history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert history.cuda_graph is False
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_a_flatten_first_model_trains_in_the_graph(gpu):
    rng = np.random.default_rng(0)
    x, y = rng.random((24, 3, 4)).astype(np.float32), rng.integers(0, 4, 24)
    weights = []
    for cuda_graph in (False, True):
        layers = [tn.Input((3, 4)), tn.Flatten(), tn.Dense(8, activation="relu"), tn.Dense(4, activation="softmax")]
        model = tn.Sequential(layers, device=gpu, seed=3)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"], cuda_graph=cuda_graph)
        assert model.fit(x, y, batch_size=8, epochs=2, verbose=0).cuda_graph is cuda_graph
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        within_rounding(a, b)


def test_cuda_graph_true_refuses_per_batch_callbacks_sample_weights_and_the_cpu(gpu):
    x, y = data(32)
    with pytest.raises(ValueError, match="every batch"):
        mlp(gpu, cuda_graph=True).fit(x, y, verbose=0, callbacks=[GradientMonitor()])
    with pytest.raises(ValueError, match="sample or class weights"):
        mlp(gpu, cuda_graph=True).fit(x, y, verbose=0, sample_weight=np.ones(32))
    with pytest.raises(ValueError, match='device="gpu"'):
        mlp("cpu", cuda_graph=True).fit(x, y, verbose=0)
    with pytest.raises(ValueError, match='False, True or "auto"'):
        mlp("cpu", cuda_graph="yes")


# ------------------------------------------------------------------ the stand-in's capture is strict


def test_the_standins_capture_refuses_what_a_graph_cannot_hold(monkeypatch):
    from conftest import use_standin

    use_standin(monkeypatch)
    import cupy as cp

    a = cp.asarray(np.arange(4, dtype=np.float32))
    stream = cp.cuda.Stream(non_blocking=True)
    for not_a_kernel in (lambda: a * 2, lambda: float(a[0]), lambda: cp.asarray(np.ones(2)), lambda: a.fill(0)):
        with stream:
            stream.begin_capture()
            with pytest.raises(RuntimeError, match="during stream capture"):
                not_a_kernel()
            stream.end_capture()
    gy = cp.asarray(np.ones(4, np.float32))
    with stream:
        stream.begin_capture()
        with pytest.raises(RuntimeError, match="during stream capture"):
            kernels.relu_backward(a, gy)  # allocates its output: refused as well
        stream.end_capture()
    out = cp.zeros(4, np.float32)
    with stream:
        stream.begin_capture()
        kernels._launch("relu_backward", 4, a, gy, out, np.int64(4))
        graph = stream.end_capture()
    np.testing.assert_array_equal(out.get(), [0, 0, 0, 0])  # captured, not run
    graph.launch(stream)
    np.testing.assert_array_equal(out.get(), [0, 1, 1, 1])
    del out
    with pytest.raises(RuntimeError, match="freed"):
        graph.launch(stream)
