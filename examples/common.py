"""What the MNIST example scripts share: flags, checks, data loading and the final report.

--dataset picks MNIST (the default) or Fashion-MNIST, its drop-in replacement: the same
28x28 grey images in 10 classes, of clothes instead of digits, and harder to learn.

The order is chosen so that nothing is lost: every flag and every prerequisite (the
device, the plotting library, the folders to write to) is checked before the data is
loaded; the trained model is saved before anything optional (the reports, the plots).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time

import tinynet as tn
from tinynet import metrics, optimizers, preprocessing
from tinynet.datasets import DatasetError, fashion_mnist, mnist

OPTIMIZERS = dict(optimizers.OPTIMIZERS)  # --optimizer: every one tinynet has, by its Keras name
DATASETS = {"mnist": mnist, "fashion_mnist": fashion_mnist}  # --dataset: the data sets in MNIST's format


def _checked(convert, ok, expected):
    """An argparse type: ``convert(text)`` that must satisfy ``ok``, else "expected ...": the flag's error."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_int = _checked(int, lambda v: v >= 1, "a whole number >= 1")
fraction = _checked(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
positive_float = _checked(float, lambda v: math.isfinite(v) and v > 0, "a positive number")


def add_common_flags(p: argparse.ArgumentParser, epochs: int, batch_size: int, dropout: float, plots: str):
    p.add_argument("--device", choices=["cpu", "gpu", "auto"], default="cpu", help="default: cpu")
    p.add_argument("--epochs", type=positive_int, default=epochs, help=f"default: {epochs}")
    p.add_argument("--batch-size", type=positive_int, default=batch_size, help=f"default: {batch_size}")
    p.add_argument("--learning-rate", type=positive_float, default=None, help="default: the optimizer's Keras default")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam", help="default: adam")
    p.add_argument("--dropout", type=fraction, default=dropout, help=f"dropout rate (default: {dropout})")
    p.add_argument("--validation-split", type=fraction, default=0.1, help="default: 0.1")
    p.add_argument("--seed", type=int, default=0, help="default: 0")
    p.add_argument(
        "--dataset",
        choices=sorted(DATASETS),
        default="mnist",
        help="mnist (digits) or fashion_mnist (clothes: the same shapes, harder; default: mnist)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="directory with the data set's files (default: $TINYNET_DATA_DIR/<dataset>, the cache, or a download)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the checksum check (other data in MNIST's format)")
    p.add_argument("--subset", type=positive_int, default=None, help="use only the first N training and N test images")
    p.add_argument("--plots", default=plots, help=f"directory for the PNG plots (default: {plots}; '' for none)")
    p.add_argument("--save", default=None, help="save the trained model to this path (.npz, or .keras for Keras)")
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1, help="fit's verbosity (default: 1)")


def make_optimizer(args):
    kwargs = {} if args.learning_rate is None else {"learning_rate": args.learning_rate}
    return OPTIMIZERS[args.optimizer](**kwargs)


def _writable_directory(path: str, what: str):
    """Create ``path`` if needed and make sure files can be written there; an error message or None."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        return f"cannot create the {what} directory {path!r} ({e.strerror})"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"cannot write into the {what} directory {path!r} (permission denied)"
    return None


def check_prerequisites(args):
    """Everything that could fail after training, checked before anything is loaded: an
    error message, or None when all is well."""
    try:
        device = tn.backend.resolve_device(args.device)
    except tn.DeviceUnavailableError as e:
        return re.sub(r'device="(\w+)"', r"--device \1", str(e))  # in the flags' words
    # (--device auto on a machine without a GPU: tinynet itself says so, once)
    if getattr(args, "cuda_graph", None) == "on" and device != "gpu":
        return "--cuda-graph on needs the GPU (--device gpu); on the CPU each step runs as usual (--cuda-graph auto)"
    if args.plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return 'the plots need matplotlib: pip install -e ".[plot]", or pass --plots "" for no plots'
        problem = _writable_directory(args.plots, "--plots")
        if problem:
            return problem
    if args.save:
        if os.path.isdir(args.save):
            return f"--save {args.save!r} is a directory; give a file name such as {args.save}/model.npz"
        if args.save.endswith(".keras"):
            try:
                import h5py  # noqa: F401
            except ImportError:
                return 'saving a .keras file needs h5py: pip install -e ".[keras]", or save to a .npz'
        return _writable_directory(os.path.dirname(os.path.abspath(args.save)), "--save")
    return None


def dataset(args):
    """The module of --dataset (MNIST for a script without the flag, such as tune_mlp.py)."""
    return DATASETS[getattr(args, "dataset", "mnist")]


def load(args, image_shape):
    """The --dataset scaled to [0, 1] and shaped (N,) + image_shape; None after printing an error."""
    title = dataset(args).TITLE
    try:
        (x_train, y_train), (x_test, y_test) = dataset(args).load_data(args.data_dir, verify=not args.no_verify)
    except DatasetError as e:
        hint = f"pass --data-dir DIR (a directory with the four {title} files)"
        print(f"error: {str(e).replace('or pass load_data(path=...)', 'or ' + hint)}", file=sys.stderr)
        return None
    if args.subset:
        x_train, y_train = x_train[: args.subset], y_train[: args.subset]
        x_test, y_test = x_test[: args.subset], y_test[: args.subset]
    print(f"{title}: {len(x_train)} training and {len(x_test)} test images of {x_train.shape[1:]}")
    if hasattr(dataset(args), "CLASS_NAMES"):  # (MNIST's classes are their digits)
        print("classes: " + ", ".join(f"{k} {name}" for k, name in enumerate(dataset(args).CLASS_NAMES)))
    images_test = x_test
    x_train = preprocessing.scale(x_train).reshape((len(x_train),) + image_shape)
    x_test = preprocessing.scale(x_test).reshape((len(x_test),) + image_shape)
    return x_train, y_train, x_test, y_test, images_test


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def train(model, args, x_train, y_train, callbacks=None):
    """summary + fit (with ``callbacks``); returns (History, exit status)."""
    model.summary()
    start = time.perf_counter()
    try:
        history = model.fit(
            x_train,
            y_train,
            batch_size=args.batch_size,
            epochs=args.epochs,
            validation_split=args.validation_split,
            verbose=args.verbose,
            callbacks=callbacks,
        )
    except tn.TrainingDiverged as e:
        print(f"\nerror: training diverged: {e}", file=sys.stderr)
        return None, 1
    seconds = time.perf_counter() - start
    epochs = len(history.epoch)
    per_epoch = seconds / max(epochs, 1)
    where = model.device + (", each epoch one CUDA graph" if history.cuda_graph else "")
    if model.device == "gpu" and model.cuda_graph == "auto" and not history.cuda_graph:
        where += f", step by step ({tn.engine.graphs.why_not(model, None, callbacks)})"
    print(f"trained {plural(epochs, 'epoch')} in {seconds:.1f} s ({per_epoch:.2f} s/epoch) on {where}")
    losses = history.history.get("loss", [])
    if len(losses) > 1 and losses[-1] >= losses[0] or losses and losses[-1] > 10 * math.log(10):
        print(
            f"warning: training did not converge (loss {losses[0]:.4g} in the first epoch, {losses[-1]:.4g} in the "
            "last): try a lower --learning-rate",
            file=sys.stderr,
        )
    return history, 0


def report(model, history, args, x_test, y_test, images_test, title):
    """--save first (nothing optional may lose the model), then the test results and the plots."""
    if args.save:
        print(f"model saved to {model.save(args.save)}")
    batch = max(args.batch_size, 256)
    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=batch, verbose=0)
    print(f"test loss: {test_loss:.4f}  test accuracy: {test_accuracy:.4f}")
    predicted = model.predict(x_test, batch_size=batch).argmax(axis=1)
    cm = metrics.confusion_matrix(y_test, predicted, num_classes=10)
    print("\nconfusion matrix:")
    print(metrics.format_confusion_matrix(cm))
    print("\nper-class report:")
    print(metrics.classification_report(y_test, predicted, num_classes=10))
    if args.plots:
        from tinynet import plot

        name = dataset(args).TITLE
        written = [
            plot.plot_samples(images_test, y_test, os.path.join(args.plots, "samples.png"), title=f"{name} samples"),
            plot.plot_history(history, os.path.join(args.plots, "history.png"), title=title),
            plot.plot_confusion_matrix(cm, os.path.join(args.plots, "confusion_matrix.png")),
            plot.plot_misclassified(
                images_test,
                y_test,
                predicted,
                os.path.join(args.plots, "misclassified.png"),
                title=f"Misclassified {name} test images",
            ),
        ]
        print("\nplots: " + ", ".join(written))


def run(args, build_model, image_shape, title) -> int:
    """Check, load, build, train, save and report: the whole example; returns the exit status."""
    problem = check_prerequisites(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        model = build_model(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    why = tn.engine.graphs.why_not(model) if model.cuda_graph is True else None
    if why:
        print(f"error: --cuda-graph on, but this model cannot train as a CUDA graph: {why}", file=sys.stderr)
        return 2
    data = load(args, image_shape)
    if data is None:
        return 2
    x_train, y_train, x_test, y_test, images_test = data
    history, status = train(model, args, x_train, y_train)
    if history is None:
        return status
    report(model, history, args, x_test, y_test, images_test, title)
    return status


def main_guarded(main) -> int:
    """Run ``main()``; output piped into a reader that stops early (``| head``) ends quietly."""
    try:
        return main()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
