"""MNIST training speed: tinynet, Keras and PyTorch side by side, in one run.

    python benchmarks/bench_mnist_mlp.py                 # CPU: every framework installed
    python benchmarks/bench_mnist_mlp.py --device gpu    # on a CUDA machine
    python benchmarks/bench_mnist_mlp.py --model cnn     # the Keras simple convnet instead

Every framework trains the same model on the same real MNIST (60,000 images,
pixels in [0, 1]) with Adam and sparse categorical cross-entropy, one after the
other, each run in a fresh worker process of this script (so that one
framework's threads and memory cannot slow another down, and peak memory is
each run's own):

- tinynet on the chosen device;
- Keras 3 ``fit`` (TensorFlow backend when TensorFlow is installed, else JAX);
- PyTorch eager: data already on the device, the idiomatic loop (randperm,
  index, zero_grad, forward, loss, backward, step), the loss summed on the device;
- PyTorch with ``torch.compile`` on the model, as an extra column where it runs.

Configurations: 784-100-10 at batch 32 and 128, 784-512-512-10 at batch 128.
For each: the median epoch time over the epochs after the first (the device is
synchronised before the clock is read), the test accuracy after the run, and the
peak memory (resident set on the CPU, the framework's allocator on the GPU);
ratios are framework time / tinynet time. A framework that is missing is skipped
with a line saying so. Writes bench_mnist_mlp_{cpu,gpu}.json / .md / .png to
benchmarks/results/, each naming the machine, the library versions and the TF32
setting.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time

try:
    import resource  # Unix only: the other-load column reads '–' elsewhere
except ImportError:
    resource = None

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402

import tinynet as tn  # noqa: E402
import tinynet.engine.threads  # noqa: E402, F401
from benchmarks.common import cpu_name, epoch_timer  # noqa: E402
from tinynet import preprocessing  # noqa: E402
from tinynet.datasets import mnist  # noqa: E402

CONFIGS = [((100,), 32), ((100,), 128), ((512, 512), 128)]
CNN = ("cnn",)  # the Keras "simple MNIST convnet": conv 32, pool, conv 64, pool, dropout 0.5, dense 10
CNN_CONFIGS = [(CNN, 128)]


def model_name(hidden) -> str:
    return "convnet 32-64" if hidden == CNN else "784-" + "-".join(map(str, hidden)) + "-10"


def images(x, hidden, channels_first=False):
    """Flat pixels as the model wants them: (N, 784), or images for the convnet."""
    if hidden != CNN:
        return x
    return x.reshape(-1, 1, 28, 28) if channels_first else x.reshape(-1, 28, 28, 1)


# ------------------------------------------------------------------ machine facts


def peak_rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ------------------------------------------------------------------ frameworks


def tinynet_model(hidden, device, seed=0):
    """The benchmark's model in tinynet (uncompiled): the MLP of ``hidden``, or the convnet."""
    if hidden == CNN:
        layers = [
            tn.Input((28, 28, 1)),
            tn.Conv2D(32, 3, activation="relu"),
            tn.MaxPooling2D(2),
            tn.Conv2D(64, 3, activation="relu"),
            tn.MaxPooling2D(2),
            tn.Flatten(),
            tn.Dropout(0.5),
        ]
    else:
        layers = [tn.Input((784,))] + [tn.Dense(h, activation="relu") for h in hidden]
    return tn.Sequential(layers + [tn.Dense(10, activation="softmax")], device=device, seed=seed)


def bench_tinynet(hidden, batch, data, args, cuda_graph=False):
    x, y, x_test, y_test = data
    x, x_test = images(x, hidden), images(x_test, hidden)
    model = tinynet_model(hidden, args.device)
    model.compile(tn.optimizers.Adam(), "sparse_categorical_crossentropy", metrics=["accuracy"], cuda_graph=cuda_graph)
    times = []
    timer = epoch_timer(tn.callbacks.Callback, times, sync=lambda: sync_tinynet(args.device))
    model.fit(x, y, batch_size=batch, epochs=args.epochs, verbose=0, callbacks=[timer])
    accuracy = model.evaluate(x_test, y_test, batch_size=1024, verbose=0)[1]
    memory = gpu_peak_tinynet(args.device)  # before graph_floor uploads its own copy of x
    extra = graph_floor(model, x, y, batch) if cuda_graph else {}
    return times, accuracy, memory, extra


def graph_floor(model, x, y, batch):
    """What a graph of this size costs with nothing in it, and tinynet's gemm against cuBLAS.

    The launch floor: a CUDA graph of as many empty kernels as the epoch's graph has
    nodes, replayed (median of 20). The products: each product shape of the step, timed
    with CUDA events over 200 runs, tinynet's gemm (what the graph runs) against CuPy's
    matmul (cuBLAS, outside any graph), in microseconds."""
    from tinynet.engine import graphs

    cp = tn.backend.xp_for("gpu")
    xd, yd = tn.backend.to_device(x, "gpu"), tn.backend.to_device(y, "gpu")
    epoch = graphs.EpochGraph(model, xd, yd, batch)
    nodes = epoch.launches  # (timing its gemm below launches more)
    empty = cp.RawKernel('extern "C" __global__ void bench_empty() {}', "bench_empty")
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        for _ in range(nodes):
            empty((1,), (32,), ())
        floor_graph = stream.end_capture()

    def replay_s(graph):
        times = []
        for _ in range(21):
            start = time.perf_counter()
            graph.launch(stream)
            stream.synchronize()
            times.append(time.perf_counter() - start)
        return statistics.median(times[1:])

    products = []
    for layer in epoch.layers:  # the step's own shapes: epoch.partial holds their split sums
        for what, (M, N, K) in graphs.products(layer, batch).items():
            a = cp.random.standard_normal((M, K), dtype=np.float32)
            b = cp.random.standard_normal((K, N), dtype=np.float32)
            c = cp.empty((M, N), np.float32)
            ours = functools.partial(epoch._gemm, a, b, c, M, N, K, (K, 1), M, K, (N, 1))
            cublas = functools.partial(cp.matmul, a, b, out=c)
            products.append(
                {
                    "product": what,
                    "M": M,
                    "N": N,
                    "K": K,
                    "gemm_us": _event_us(cp, ours),
                    "cublas_us": _event_us(cp, cublas),
                }
            )
    return {"graph_nodes": nodes, "floor_s": replay_s(floor_graph), "products": products}


def _event_us(cp, run, repeat=200):
    for _ in range(10):
        run()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    for _ in range(repeat):
        run()
    end.record()
    end.synchronize()
    return cp.cuda.get_elapsed_time(start, end) * 1000 / repeat


def sync_tinynet(device):
    if device == "gpu":
        tn.backend.xp_for("gpu").cuda.Device().synchronize()


def gpu_peak_tinynet(device):
    if device != "gpu":
        return None
    pool = tn.backend.xp_for("gpu").get_default_memory_pool()
    return pool.total_bytes() / 2**20


def bench_keras(hidden, batch, data, args):
    import keras

    keras.utils.set_random_seed(0)
    x, y, x_test, y_test = data
    x, x_test = images(x, hidden), images(x_test, hidden)
    L = keras.layers
    if hidden == CNN:
        layers = [
            keras.Input((28, 28, 1)),
            L.Conv2D(32, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Conv2D(64, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dropout(0.5),
        ]
    else:
        layers = [keras.Input((784,))] + [L.Dense(h, activation="relu") for h in hidden]
    model = keras.Sequential(layers + [keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    times = []
    model.fit(
        x, y, batch_size=batch, epochs=args.epochs, verbose=0, callbacks=[epoch_timer(keras.callbacks.Callback, times)]
    )
    accuracy = float(model.evaluate(x_test, y_test, batch_size=1024, verbose=0)[1])
    return times, accuracy, None, {}


def bench_torch(hidden, batch, data, args, compiled=False, graphed=False):
    import torch

    torch.manual_seed(0)
    dev = torch.device("cuda" if args.device == "gpu" else "cpu")
    x, y, x_test, y_test = data
    x, x_test = images(x, hidden, channels_first=True), images(x_test, hidden, channels_first=True)
    nn = torch.nn
    if hidden == CNN:
        modules = [
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.5),
        ]
        last = 1600
    else:
        sizes, modules = [784, *hidden], []
        for a, b in zip(sizes[:-1], sizes[1:]):
            modules += [nn.Linear(a, b), nn.ReLU()]
        last = sizes[-1]
    model = nn.Sequential(*modules, nn.Linear(last, 10)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7, capturable=graphed)
    loss_fn = torch.nn.CrossEntropyLoss()
    forward = torch.compile(model) if compiled else model
    X, Y = torch.from_numpy(x).to(dev), torch.from_numpy(y.astype(np.int64)).to(dev)
    n, times = len(X), []
    if graphed:
        return _torch_graphed(torch, model, opt, loss_fn, X, Y, x_test, y_test, batch, args)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.epochs):
        sync()
        start = time.perf_counter()
        total = torch.zeros((), device=dev)
        perm = torch.randperm(n, device=dev)
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(forward(X[idx]), Y[idx])
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        float(total)  # read once per epoch, like the others
        sync()
        times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        xt = torch.from_numpy(x_test).to(dev)
        accuracy = float((model(xt).argmax(1).cpu().numpy() == y_test).mean())
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
    return times, accuracy, peak, {}


def _torch_graphed(torch, model, opt, loss_fn, X, Y, x_test, y_test, batch, args):
    """PyTorch's whole-network CUDA graph (torch.cuda.graph, Adam(capturable=True)): the step
    captured once on static tensors, each batch copied into them and the graph replayed.
    A graph has one batch size: the last partial batch of an epoch is dropped."""
    static_x, static_y = X[:batch].clone(), Y[:batch].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up steps, as the PyTorch documentation asks, before capture
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(static_x), static_y).backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = loss_fn(model(static_x), static_y)
        static_loss.backward()
        opt.step()
    n, times = len(X), []
    torch.cuda.reset_peak_memory_stats()
    for _ in range(args.epochs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        total = torch.zeros((), device=X.device)
        perm = torch.randperm(n, device=X.device)
        for i in range(0, n - batch + 1, batch):
            idx = perm[i : i + batch]
            static_x.copy_(X[idx])
            static_y.copy_(Y[idx])
            graph.replay()
            total += static_loss.detach() * batch
        float(total)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(x_test).to(X.device)).argmax(1).cpu().numpy() == y_test).mean())
    return times, accuracy, torch.cuda.max_memory_allocated() / 2**20, {}


def bench_jax(hidden, batch, data, args):
    """A plain JAX training loop: the step (forward, grad, Adam as Keras writes it) under
    jax.jit, called batch by batch from Python; the data on the device, the loss summed there."""
    import jax
    import jax.numpy as jnp

    x, y, x_test, y_test = data
    x, x_test = images(x, hidden), images(x_test, hidden)
    rng = np.random.default_rng(0)

    def glorot(shape, fan_in, fan_out):
        limit = np.sqrt(6 / (fan_in + fan_out))
        return jnp.asarray(rng.uniform(-limit, limit, shape).astype(np.float32))

    if hidden == CNN:
        params = [
            (glorot((3, 3, 1, 32), 9, 288), jnp.zeros(32)),
            (glorot((3, 3, 32, 64), 288, 576), jnp.zeros(64)),
            (glorot((1600, 10), 1600, 10), jnp.zeros(10)),
        ]
    else:
        sizes = [784, *hidden, 10]
        params = [(glorot((a, b), a, b), jnp.zeros(b)) for a, b in zip(sizes[:-1], sizes[1:])]

    def forward(params, xb, key, train):
        if hidden != CNN:
            h = xb
            for W, b in params[:-1]:
                h = jax.nn.relu(h @ W + b)
            return h @ params[-1][0] + params[-1][1]
        h = xb
        for W, b in params[:2]:
            h = jax.lax.conv_general_dilated(h, W, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            h = jax.nn.relu(h + b)
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        h = h.reshape(h.shape[0], -1)
        if train:
            keep = jax.random.bernoulli(key, 0.5, h.shape)
            h = jnp.where(keep, h / 0.5, 0.0)
        return h @ params[-1][0] + params[-1][1]

    def loss_fn(params, xb, yb, key):
        logits = forward(params, xb, key, True)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), yb[:, None], axis=1))

    @jax.jit
    def step(params, m, v, t, X, Y, idx, key, total):
        loss, grads = jax.value_and_grad(loss_fn)(params, X[idx], Y[idx], key)
        t = t + 1
        alpha = 1e-3 * jnp.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        m = jax.tree.map(lambda m, g: m + (g - m) * 0.1, m, grads)
        v = jax.tree.map(lambda v, g: v + (g * g - v) * 0.001, v, grads)
        params = jax.tree.map(lambda p, m, v: p - alpha * m / (jnp.sqrt(v) + 1e-7), params, m, v)
        return params, m, v, t, total + loss * idx.shape[0]

    X, Y = jnp.asarray(x), jnp.asarray(y.astype(np.int32))
    m = jax.tree.map(jnp.zeros_like, params)
    v = jax.tree.map(jnp.zeros_like, params)
    t, key, n, times = jnp.zeros((), jnp.float32), jax.random.PRNGKey(0), len(x), []
    for _ in range(args.epochs):
        start = time.perf_counter()
        key, shuffle = jax.random.split(key)
        perm = jax.random.permutation(shuffle, n)
        total = jnp.zeros(())
        for i in range(0, n, batch):
            key, sub = jax.random.split(key)
            params, m, v, t, total = step(params, m, v, t, X, Y, perm[i : i + batch], sub, total)
        float(total)  # read once per epoch (waits for the device)
        times.append(time.perf_counter() - start)
    logits = jax.jit(lambda p, xb: forward(p, xb, None, False))(params, jnp.asarray(x_test))
    accuracy = float((np.asarray(logits).argmax(1) == y_test).mean())
    return times, accuracy, None, {}


def _keras(args):
    backend = os.environ.get("KERAS_BACKEND")
    if backend is None:
        try:
            import tensorflow  # noqa: F401

            backend = "tensorflow"
        except ImportError:
            backend = "jax"
        os.environ["KERAS_BACKEND"] = backend
    if backend == "jax" and not args.tf32:
        os.environ["JAX_DEFAULT_MATMUL_PRECISION"] = "highest"  # JAX's default on a GPU is TF32
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return bench_keras, f"{keras.__version__} / {backend} {__import__(backend).__version__}"


def _torch(args, compiled=False):
    import torch

    if args.device == "gpu" and not torch.cuda.is_available():
        raise ImportError("this PyTorch has no CUDA build or sees no device")
    torch.backends.cuda.matmul.allow_tf32 = bool(args.tf32)
    torch.backends.cudnn.allow_tf32 = bool(args.tf32)
    return (lambda *a: bench_torch(*a, compiled=compiled)), torch.__version__


def _gpu_only(args, what):
    if args.device != "gpu":
        raise ImportError(f"{what} is a GPU column")


def _tinynet_graph(args):
    _gpu_only(args, "CUDA graphs")
    if args.model == "cnn":
        raise ImportError("tinynet's CUDA graph trains Dense models only")
    return (lambda *a: bench_tinynet(*a, cuda_graph=True)), tn.__version__


def _torch_graph(args):
    _gpu_only(args, "CUDA graphs")
    run, version = _torch(args)
    return (lambda *a: bench_torch(*a, graphed=True)), version


def _jax(args):
    _gpu_only(args, "the JAX jit loop")
    if not args.tf32:
        os.environ["JAX_DEFAULT_MATMUL_PRECISION"] = "highest"  # float32 products, as the others
    import jax

    if not any(d.platform == "gpu" for d in jax.devices()):
        raise ImportError("this JAX sees no GPU")
    return bench_jax, jax.__version__


RUNNERS = {
    "tinynet": lambda args: (bench_tinynet, tn.__version__),
    "tinynet graph": _tinynet_graph,
    "keras": _keras,
    "pytorch eager": _torch,
    "pytorch compile": lambda args: _torch(args, compiled=True),
    "pytorch graph": _torch_graph,
    "jax jit": _jax,
}


def available(args):
    """The frameworks that can run here; prints a line for each one that is missing."""
    out = []
    for name in RUNNERS:
        if name == "pytorch compile" and args.no_compile:
            continue
        try:
            RUNNERS[name](args)
            out.append(name)
        except ImportError as e:
            print(f"skipping {name}: not installed or not usable here ({e})")
    return out


# ------------------------------------------------------------------ report


def machine(args):
    if args.device == "gpu":
        cupy = tn.backend.xp_for("gpu")
        rt = cupy.cuda.runtime
        props = rt.getDeviceProperties(0)
        runtime, driver = (divmod(v // 10, 100) for v in (rt.runtimeGetVersion(), rt.driverGetVersion()))
        return (
            f"{props['name'].decode()} (CuPy {cupy.__version__}, CUDA runtime {runtime[0]}.{runtime[1]}, driver "
            f"{_nvidia_driver()} for CUDA {driver[0]}.{driver[1]}), host {cpu_name()}, {os.cpu_count()} cores"
        )
    return f"{cpu_name()}, {os.cpu_count()} cores, CPU only"


def _nvidia_driver():
    """The NVIDIA driver's version, as nvidia-smi says it ('?' without nvidia-smi)."""
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
        )
        return done.stdout.strip().splitlines()[0] if done.returncode == 0 else "?"
    except (OSError, IndexError):
        return "?"


def _load(cores):
    return "–" if cores is None else f"{cores:.2f}"


def _graph_lines(results):
    """The launch floor beside tinynet's graph, and its gemm against cuBLAS."""
    graphed = [r for r in results if "floor_s" in r]
    if not graphed:
        return []
    lines = [
        "",
        "## tinynet's CUDA graph against its launch floor",
        "",
        "The floor: a CUDA graph of as many empty kernels as the epoch's graph has nodes, replayed "
        "(median of 20): what the launches alone cost.",
        "",
        "| model | batch | nodes per epoch | floor (s) | tinynet graph (s) | × floor |",
        "|---|---|---|---|---|---|",
    ]
    for r in graphed:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['graph_nodes']} | {r['floor_s']:.4f} | {r['epoch_s']:.4f} "
            f"| {r['epoch_s'] / r['floor_s']:.2f} |"
        )
    lines += [
        "",
        "The step's matrix products, tinynet's gemm (what the graph runs: cuBLAS cannot be captured by CuPy) "
        "against cuBLAS (CuPy's matmul), each called 200 times from Python between two CUDA events: at these "
        "sizes both times are mostly the call's CPU cost, not the kernel's:",
        "",
        "| model | batch | product | M × N × K | gemm (µs) | cuBLAS (µs) |",
        "|---|---|---|---|---|---|",
    ]
    for r in graphed:
        for p in r["products"]:
            lines.append(
                f"| {r['model']} | {r['batch']} | {p['product']} | {p['M']} × {p['N']} × {p['K']} "
                f"| {p['gemm_us']:.1f} | {p['cublas_us']:.1f} |"
            )
    return lines


def write_report(results, args, versions):
    os.makedirs(args.out, exist_ok=True)
    stem = f"bench_mnist_{args.model}_{args.device}" + ("_busy" if args.busy else "")
    stem = os.path.join(args.out, stem + (f"_keras_{args.keras_backend}" if args.keras_backend else ""))
    meta = {
        "machine": machine(args),
        "device": args.device,
        "epochs": args.epochs,
        "subset": args.subset,
        "tf32": bool(args.tf32),
        "versions": versions,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default")
        + f"; tinynet: {tn.engine.threads.describe()}",
        "busy": bool(args.busy),
    }
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    lines = [
        f"# MNIST {args.model.upper()} training speed ({args.device})",
        "",
        f"Machine: {meta['machine']}"
        + (f", every core held by {os.cpu_count()} busy-loop processes" if args.busy else ", quiet")
        + f". BLAS: {meta['blas_threads']}. TF32: {'on' if args.tf32 else 'off'}. "
        f"Epochs: {args.epochs} (median of epochs 2..{args.epochs}) over "
        f"{args.subset or 60000} training images"
        + (f"; {args.rounds} rounds, the frameworks taking turns, the median round shown" if args.rounds > 1 else "")
        + ". Versions: "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f", NumPy {np.__version__}.",
        "",
        "Command: `python benchmarks/bench_mnist_mlp.py"
        + (" --device gpu" if args.device == "gpu" else "")
        + (f" --model {args.model}" if args.model != "mlp" else "")
        + (f" --subset {args.subset}" if args.subset else "")
        + (" --busy" if args.busy else "")
        + (f" --keras-backend {args.keras_backend}" if args.keras_backend else "")
        + (f" --configs {args.configs}" if args.configs else "")
        + (" --no-compile" if args.no_compile else "")
        + (f" --rounds {args.rounds}" if args.rounds > 1 else "")
        + f" --epochs {args.epochs}`",
        "",
        "| model | batch | framework | epoch (s) | rounds (s) | × tinynet | test acc | peak mem (MB) "
        "| other load (cores) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        mem = f"{r['peak_mb']:.0f}" if r["peak_mb"] is not None else "–"
        rounds = r.get("round_epoch_s", [r["epoch_s"]])
        spread = f"{min(rounds):.3f}–{max(rounds):.3f}" if len(rounds) > 1 else "–"
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['framework']} | {r['epoch_s']:.3f} | {spread} | "
            f"{r['ratio']:.2f} | {r['test_accuracy']:.4f} | {mem} | {_load(r.get('other_cores'))} |"
        )
    lines += [
        "",
        "× tinynet = the framework's epoch time / tinynet's: above 1 means tinynet is faster. "
        "Rounds: the fastest and slowest of the rounds; test acc and peak memory: the first round's and the "
        "largest. "
        "Other load: how many cores other processes kept busy during that run (about 0 on a quiet "
        "machine; the busy mode's loops count; the most of any round).",
    ]
    lines += _graph_lines(results)
    noisy = [r for r in results if not args.busy and (r.get("other_cores") or 0) > 0.25]
    if noisy:
        lines += ["", f"Not quiet: other processes held more than a quarter of a core during {len(noisy)} run(s)."]
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        from tinynet.plot import plot_grouped_bars

        groups = list(dict.fromkeys((r["model"], r["batch"]) for r in results))
        names = list(dict.fromkeys(r["framework"] for r in results))
        series = {
            name: [
                next((r["epoch_s"] for r in results if (r["model"], r["batch"]) == g and r["framework"] == name), None)
                for g in groups
            ]
            for name in names
        }
        path = plot_grouped_bars(
            [f"{m}\nbatch {b}" for m, b in groups],
            series,
            stem + ".png",
            "seconds per epoch (lower is better)",
            f"MNIST {args.model.upper()} epoch time, {meta['machine']}, TF32 {'on' if args.tf32 else 'off'}",
            log=True,
        )
        print("plot: " + path)
    except ImportError:
        print("no plot: matplotlib is not installed")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument(
        "--model",
        choices=["mlp", "cnn"],
        default="mlp",
        help="mlp: the three MLP configurations; cnn: the Keras simple convnet at batch 128",
    )
    p.add_argument("--subset", type=int, default=None, help="train on the first N images only (a faster run)")
    p.add_argument("--epochs", type=int, default=4, help="epochs per run; the first is warm-up (default 4)")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every framework this many times, taking turns; report each one's median round (default 1)",
    )
    p.add_argument("--only", nargs="*", default=None, help="framework names to run (default: all installed)")
    p.add_argument("--configs", default=None, help="e.g. '100:32,100:128,512-512:128' (default: all three)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matrix products on the GPU (default: off)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--no-verify", action="store_true", help="other data in MNIST's format: skip the checksums")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    p.add_argument(
        "--busy",
        action="store_true",
        help="a busy machine: busy-loop processes hold every core during the whole run (ended by the benchmark)",
    )
    p.add_argument(
        "--keras-backend",
        choices=["tensorflow", "jax"],
        default=None,
        help="Keras's backend (default: TensorFlow where installed, else JAX); the report's name says it",
    )
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.device == "gpu" and args.tf32:
        os.environ["CUPY_TF32"] = "1"
    if args.keras_backend:
        os.environ["KERAS_BACKEND"] = args.keras_backend  # read by each worker process
    configs = CNN_CONFIGS if args.model == "cnn" else CONFIGS
    if args.configs:
        configs = [
            (
                CNN if c.split(":")[0] == "cnn" else tuple(int(u) for u in c.split(":")[0].split("-")),
                int(c.split(":")[1]),
            )
            for c in args.configs.split(",")
        ]

    if args.worker:
        return worker(args, configs[0])
    frameworks = [name for name in available(args) if args.only is None or name in args.only]
    with busy_cores(os.cpu_count() if args.busy else 0):
        results, versions = run_all(args, configs, frameworks)
    write_report(results, args, versions)
    return 0


@contextlib.contextmanager
def busy_cores(n: int, seconds: float = 3600.0):
    """``n`` processes that spin (a compile, a shared server, a CI runner next door) for the
    block, each bounded to ``seconds`` on its own and ended when the block ends."""
    spin = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(n)]
    if n:
        print(f"busy machine: {n} busy-loop processes hold the cores", flush=True)
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


class OtherLoad:
    """How many cores *other* processes kept busy while a worker ran: the machine's busy CPU
    time (/proc/stat) less the worker's own (it has ended: RUSAGE_CHILDREN), over the wall
    time. A quiet run should read about 0; the busy mode about the number of cores. None
    where /proc/stat does not exist (not Linux)."""

    def __init__(self):
        self.start = (self._busy_seconds(), self._children_seconds(), time.perf_counter())

    @staticmethod
    def _busy_seconds():
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except OSError:
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _children_seconds():
        if resource is None:
            return None
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def cores(self):
        busy, children, wall = self._busy_seconds(), self._children_seconds(), time.perf_counter()
        if busy is None or self.start[0] is None or children is None:
            return None
        return max(0.0, ((busy - self.start[0]) - (children - self.start[1])) / (wall - self.start[2]))


def run_all(args, configs, frameworks):
    """Each framework on each configuration, one worker process each, the frameworks taking
    turns ``--rounds`` times (so a slow spell of the machine falls on all of them); each
    framework's time is the median of its rounds. Returns (results, versions)."""
    results, versions = [], {}
    for hidden, batch in configs:
        model = model_name(hidden)
        runs = {name: [] for name in frameworks}
        for _ in range(args.rounds):
            for name in frameworks:
                r = run_worker(args, name, hidden, batch)
                if r is None:
                    continue
                versions[name] = r.pop("version")
                runs[name].append(r)
                print(
                    f"{model} batch {batch} {name}: {r['epoch_s']:.3f} s/epoch, test accuracy {r['test_accuracy']:.4f}",
                    flush=True,
                )
        base = None
        for name in frameworks:
            if not runs[name]:
                continue
            r = dict(runs[name][0])
            r["round_epoch_s"] = [run["epoch_s"] for run in runs[name]]
            r["epoch_s"] = statistics.median(r["round_epoch_s"])
            r["peak_mb"] = max((run["peak_mb"] for run in runs[name] if run["peak_mb"] is not None), default=None)
            loads = [run["other_cores"] for run in runs[name] if run["other_cores"] is not None]
            r["other_cores"] = max(loads) if loads else None
            base = r["epoch_s"] if name == "tinynet" else base
            r.update(model=model, batch=batch, framework=name, ratio=r["epoch_s"] / base if base else float("nan"))
            results.append(r)
    return results, versions


def run_worker(args, name, hidden, batch):
    """One framework on one configuration in a fresh process: its result, or None if it failed."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        name,
        "--device",
        args.device,
        "--epochs",
        str(args.epochs),
        "--configs",
        f"{'-'.join(map(str, hidden))}:{batch}",
        "--model",
        args.model,
    ] + (["--subset", str(args.subset)] if args.subset else [])
    command += (["--data-dir", args.data_dir] if args.data_dir else []) + (["--tf32"] if args.tf32 else [])
    command += ["--no-verify"] if args.no_verify else []
    load = OtherLoad()
    done = subprocess.run(command, capture_output=True, text=True)
    others = load.cores()
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        print(f"{model_name(hidden)} batch {batch} {name}: failed\n{done.stderr[-2000:]}")
        return None
    r = json.loads(lines[-1])
    r["other_cores"] = others
    return r


def worker(args, config):
    """Run one framework on one configuration; print the result as one JSON line."""
    hidden, batch = config
    (x_train, y_train), (x_test, y_test) = mnist.load_data(args.data_dir, verify=not args.no_verify)
    if args.subset:
        x_train, y_train = x_train[: args.subset], y_train[: args.subset]
    data = (
        preprocessing.flatten(preprocessing.scale(x_train)),
        y_train.astype(np.int64),
        preprocessing.flatten(preprocessing.scale(x_test)),
        y_test.astype(np.int64),
    )
    run, version = RUNNERS[args.worker](args)
    times, accuracy, gpu_peak, extra = run(hidden, batch, data, args)
    peak = gpu_peak if args.device == "gpu" else peak_rss_mb()
    print(
        json.dumps(
            {
                "epoch_s": statistics.median(times[1:] or times),
                "epoch_times": times,
                "test_accuracy": float(accuracy),
                "peak_mb": peak,
                "version": version,
                **extra,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
