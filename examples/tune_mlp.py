"""A hyperparameter search for the MNIST MLP on Optuna: resumable, parallel, pruned, honest.

Trials are scored on the validation split only (the last --validation-split of the
training set); the test set is used once, for the best trial of the study, at the end.
TPE (Optuna's default sampler) picks each trial from the ones before; --search grid tries
every combination (Optuna's grid sampler), --search random draws them. A trial whose
validation accuracy after an epoch is below the median of the trials before at that epoch
is stopped early (pruned). The study lives in --storage (default: a SQLite file in --plots),
so running the same command again adds --trials more trials to it; --n-jobs N runs N
trials at once, in N processes on that storage.

    python examples/tune_mlp.py --trials 12 --epochs 3
    python examples/tune_mlp.py --search grid --learning-rates 0.001,0.003 --batch-sizes 32,128 --hidden 100,256

Prints the study's trials ranked by validation accuracy, and plots Optuna's optimization
history and parameter importances into --plots (default: plots/tune_mlp). Needs Optuna:
pip install -e ".[tune]".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from common import check_prerequisites, fraction, load, main_guarded, positive_int

import tinynet as tn
from tinynet import preprocessing

SEARCH_FLAGS = ("search", "learning_rates", "batch_sizes", "hidden", "epochs", "validation_split", "subset", "seed")


def _listed(kind, text):
    try:
        values = [kind(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list like 1,2,3, got {text!r}") from None
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:  # the same trial twice; and "512,512" may mean two layers, as in mnist_mlp.py
        raise argparse.ArgumentTypeError(
            f"{text!r} lists {', '.join(map(str, twice))} more than once: each value is one candidate "
            "(every trial has one hidden layer)"
        )
    return values


def floats(text):
    values = _listed(float, text)
    if any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def ints(text):
    values = _listed(int, text)
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected whole numbers >= 1, got {text!r}")
    return values


def make_model(hidden, learning_rate, seed, device):
    model = tn.Sequential(
        [tn.Input((784,)), tn.Dense(hidden, activation="relu"), tn.Dense(10, activation="softmax")],
        seed=seed,
        device=device,
    )
    model.compile(tn.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class Pruning(tn.callbacks.Callback):
    """Reports each epoch's validation accuracy to the Optuna trial, and stops a trial the
    pruner gives up on (raising optuna.TrialPruned, which the study records as pruned)."""

    def __init__(self, trial, optuna):
        super().__init__()
        self.trial, self.optuna = trial, optuna

    def on_epoch_end(self, epoch, logs=None):
        self.trial.report(logs["val_accuracy"], epoch)
        if self.trial.should_prune():
            raise self.optuna.TrialPruned(f"epoch {epoch + 1}: val_accuracy {logs['val_accuracy']:.4f}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--search", choices=["tpe", "grid", "random"], default="tpe", help="how to pick the trials (default: tpe)"
    )
    p.add_argument("--trials", type=positive_int, default=6, help="trials this run adds to the study (default: 6)")
    p.add_argument(
        "--learning-rates",
        type=floats,
        default=[3e-4, 1e-3, 3e-3],
        help="comma-separated; tpe and random draw from their range on a log scale,\n"
        "grid tries each (default: 0.0003,0.001,0.003)",
    )
    p.add_argument(
        "--batch-sizes", type=ints, default=[32, 64, 128], help="comma-separated candidates (default: 32,64,128)"
    )
    p.add_argument(
        "--hidden",
        type=ints,
        default=[64, 100, 256],
        help="candidate sizes of the one hidden layer, comma-separated\n"
        "(not layers, as in mnist_mlp.py; default: 64,100,256)",
    )
    p.add_argument("--epochs", type=positive_int, default=3, help="epochs per trial (default: 3)")
    p.add_argument("--validation-split", type=fraction, default=0.1, help="held out to score the trials (default: 0.1)")
    p.add_argument(
        "--subset",
        type=positive_int,
        default=None,
        help="use only the first N training and N test images (default: all)",
    )
    p.add_argument("--device", choices=["cpu", "gpu", "auto"], default="cpu", help="where to train (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="seeds the sampler and every model (default: 0)")
    p.add_argument(
        "--storage",
        default=None,
        help="Optuna's storage URL, e.g. sqlite:///study.db, or postgresql://...\n"
        "shared by many machines (default: sqlite:///PLOTS/tune_mlp.db,\n"
        "so the same command resumes the study)",
    )
    p.add_argument("--study-name", default="tune_mlp", help="the study's name in the storage (default: tune_mlp)")
    p.add_argument(
        "--n-jobs", type=positive_int, default=1, help="trials at once, each in a process of its own (default: 1)"
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="directory with the MNIST files\n(default: $TINYNET_DATA_DIR, the cache, or a download)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the SHA-256 check")
    p.add_argument(
        "--plots",
        default="plots/tune_mlp",
        help="directory for the plots and the default storage ('' for no plots;\ndefault: plots/tune_mlp)",
    )
    p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)  # k: the k-th of --n-jobs's processes
    return p


def parse(argv):
    p = build_parser()
    args = p.parse_args(argv)
    if args.validation_split == 0:
        p.error("--validation-split must be above 0: the trials are scored on it")
    if args.storage is None:
        folder = args.plots or "."
        os.makedirs(folder, exist_ok=True)
        args.storage = f"sqlite:///{os.path.join(folder, 'tune_mlp.db')}"
    return args


def open_study(args, optuna):
    """The study in ``args.storage`` (made if new), or an error message: the storage cannot be
    opened, or the study was made with other search flags."""
    flags = {k: getattr(args, k) for k in SEARCH_FLAGS}
    seed = args.seed + args.worker  # each process of --n-jobs draws its own trials
    if args.search == "grid":
        space = {"batch_size": args.batch_sizes, "hidden": args.hidden}
        if len(args.learning_rates) > 1:  # a single one is not a parameter of the trials
            space["learning_rate"] = args.learning_rates
        sampler = optuna.samplers.GridSampler(space, seed=seed)
    elif args.search == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    try:
        study = optuna.create_study(
            study_name=args.study_name,
            storage=args.storage,
            load_if_exists=True,
            direction="maximize",
            sampler=sampler,
            pruner=pruner,
        )
    except Exception as e:  # a URL Optuna cannot open: any of SQLAlchemy's errors
        return None, f"cannot open the storage {args.storage!r}: {type(e).__name__}: {str(e).splitlines()[0]}"
    saved = study.user_attrs.get("search_flags")
    if saved is None:
        study.set_user_attr("search_flags", flags)
    elif saved != flags:
        differ = ", ".join(
            f"--{k.replace('_', '-')} {saved[k]!r} -> {flags[k]!r}" for k in flags if saved[k] != flags[k]
        )
        return None, (
            f"the study {args.study_name!r} in {args.storage} was made with other search flags ({differ}); "
            "give the same flags to resume it, or --study-name NEW for a new study"
        )
    return study, None


def objective(args, optuna, data):
    x_fit, y_fit, x_val, y_val = data

    def run_trial(trial):
        lo, hi = min(args.learning_rates), max(args.learning_rates)
        lr = trial.suggest_float("learning_rate", lo, hi, log=True) if lo < hi else lo
        batch = trial.suggest_categorical("batch_size", args.batch_sizes)
        hidden = trial.suggest_categorical("hidden", args.hidden)
        model = make_model(hidden, lr, args.seed, args.device)
        start = time.perf_counter()
        try:
            history = model.fit(
                x_fit,
                y_fit,
                batch_size=batch,
                epochs=args.epochs,
                validation_data=(x_val, y_val),
                callbacks=[Pruning(trial, optuna)],
                verbose=0,
            )
        except optuna.TrialPruned as pruned:
            print(f"trial {trial.number}: lr {lr:g}, batch {batch}, hidden {hidden} -> pruned at {pruned}", flush=True)
            raise
        val_acc, val_loss = history.history["val_accuracy"][-1], history.history["val_loss"][-1]
        trial.set_user_attr("val_loss", val_loss)
        trial.set_user_attr("seconds", time.perf_counter() - start)
        print(
            f"trial {trial.number}: lr {lr:g}, batch {batch}, hidden {hidden} -> "
            f"val_accuracy {val_acc:.4f}, val_loss {val_loss:.4f} ({time.perf_counter() - start:.2f} s)",
            flush=True,
        )
        return val_acc

    return run_trial


def start_workers(args, argv, count):
    """``count`` more processes of this script on the same study, each adding its share of the trials."""
    shares = [args.trials // (count + 1) + (k < args.trials % (count + 1)) for k in range(count + 1)]
    procs = []
    for k, share in enumerate(shares[1:], start=1):
        if share:
            command = [sys.executable, os.path.abspath(__file__), *argv, "--trials", str(share), "--worker", str(k)]
            command += ["--n-jobs", "1", "--storage", args.storage, "--plots", ""]
            procs.append(subprocess.Popen(command))
    return shares[0], procs


def report(study, args, optuna, data, x_test, y_test):
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    ranked = sorted(done, key=lambda t: (-t.value, t.user_attrs.get("val_loss", 0)))
    print(f"\nstudy {study.study_name!r}: {len(study.trials)} trials ({len(done)} complete, {len(pruned)} pruned)")
    print(f"{'rank':>4} {'trial':>5} {'learning_rate':>13} {'batch':>5} {'hidden':>6} {'val_acc':>8} {'val_loss':>8}")
    for i, t in enumerate(ranked, start=1):
        lr = t.params.get("learning_rate", min(args.learning_rates))
        print(
            f"{i:>4} {t.number:>5} {lr:>13.3g} {t.params['batch_size']:>5} {t.params['hidden']:>6} "
            f"{t.value:>8.4f} {t.user_attrs.get('val_loss', float('nan')):>8.4f}"
        )
    if not ranked:
        print("no trial completed")
        return
    best = ranked[0]
    lr = best.params.get("learning_rate", min(args.learning_rates))
    x_fit, y_fit, _, _ = data
    model = make_model(best.params["hidden"], lr, args.seed, args.device)
    model.fit(x_fit, y_fit, batch_size=best.params["batch_size"], epochs=args.epochs, verbose=0)
    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=512, verbose=0)
    print(
        f"\nbest on validation: trial {best.number}, lr {lr:.3g}, batch {best.params['batch_size']}, "
        f"hidden {best.params['hidden']}; scored once on the test set: accuracy {test_acc:.4f}, loss {test_loss:.4f}"
    )
    if args.plots:
        plot_study(study, args.plots, optuna)


def plot_study(study, folder, optuna):
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Target and region quantiles")  # importances of a tiny study
    from optuna.visualization import matplotlib as optuna_plots

    from tinynet.files.fileio import atomic_write

    plots = [("history", optuna_plots.plot_optimization_history)]
    if len([t for t in study.trials if t.value is not None]) >= 2:
        plots.append(("importances", optuna_plots.plot_param_importances))
    for name, draw in plots:
        try:
            ax = draw(study)
        except (ValueError, RuntimeError) as e:  # too few trials, or a parameter that never varied
            print(f"no {name} plot: {e}")
            continue
        figure = ax.figure
        figure.set_size_inches(8, 4.5)
        figure.tight_layout()
        path = os.path.join(folder, f"tuning_{name}.png")
        with atomic_write(path) as f:
            figure.savefig(f, format="png", dpi=100)
        matplotlib.pyplot.close(figure)
        print("plot: " + path)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    try:
        import optuna
    except ImportError:
        print('error: the search needs Optuna: pip install -e ".[tune]"', file=sys.stderr)
        return 2
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.batch_size, args.save = 32, None
    problem = check_prerequisites(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    study, problem = open_study(args, optuna)  # before any data is read, and before any trial
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    data = load(args, (784,))
    if data is None:
        return 2
    x_train, y_train, x_test, y_test, _ = data
    (x_fit, y_fit), (x_val, y_val) = preprocessing.train_val_split(x_train, y_train, args.validation_split)
    before = len(study.trials)
    mine, workers = (args.trials, []) if args.worker else start_workers(args, argv, args.n_jobs - 1)
    if not args.worker:
        print(
            f"{args.search} search, study {args.study_name!r} in {args.storage}: {before} trials before, "
            f"{args.trials} more of {args.epochs} epochs on {len(x_fit)} training / {len(x_val)} validation images"
            + (f", {args.n_jobs} at once" if args.n_jobs > 1 else "")
        )
    study.optimize(objective(args, optuna, (x_fit, y_fit, x_val, y_val)), n_trials=mine)
    failed = [w.wait() for w in workers]
    if any(failed):
        print(f"error: {sum(1 for rc in failed if rc)} of the --n-jobs processes failed", file=sys.stderr)
        return 1
    if not args.worker:
        report(study, args, optuna, (x_fit, y_fit, x_val, y_val), x_test, y_test)
    return 0


if __name__ == "__main__":
    sys.exit(main_guarded(main))
