"""examples/tune_mlp.py on Optuna: trials scored on the validation split, the best once on
the test set; a study that resumes from its storage, runs trials in several processes,
prunes, and refuses a storage it cannot open or a resume with other search flags."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from extras import require
from synthetic import write_mnist_dir

optuna = require("optuna", "tune")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tune(*args, cwd, ok=True):
    env = {**os.environ, "PYTHONPATH": ROOT, "MPLBACKEND": "Agg"}
    env.pop("TINYNET_DATA_DIR", None)
    command = [sys.executable, os.path.join(ROOT, "examples", "tune_mlp.py"), "--data-dir", "data", "--no-verify"]
    done = subprocess.run(
        command + [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    return done


@pytest.fixture
def work(tmp_path_factory, tmp_path):
    write_mnist_dir(tmp_path / "data", n_train=400, n_test=100)
    return tmp_path


def trial_count(out):
    return int(re.search(r"study 'tune_mlp': (\d+) trials", out)[1])


def test_a_grid_search_scores_on_validation_tests_once_and_plots(work):
    out = tune(
        "--search", "grid", "--learning-rates", "0.001,0.01", "--batch-sizes", "32", "--hidden", "32",
        "--epochs", "1", "--trials", "5", "--plots", "out", cwd=work,
    ).stdout  # fmt: skip
    assert out.count("-> val_accuracy") == 2  # the grid has 2 points: the study stops there
    assert "rank trial learning_rate" in out and out.count("scored once on the test set") == 1
    for name in ("history", "importances"):
        assert (work / "out" / f"tuning_{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert (work / "out" / "tune_mlp.db").exists()  # the default storage, beside the plots


def test_the_same_command_resumes_the_study(work):
    first = tune("--trials", "2", "--epochs", "1", "--hidden", "16,32", "--plots", "", cwd=work).stdout
    second = tune("--trials", "3", "--epochs", "1", "--hidden", "16,32", "--plots", "", cwd=work).stdout
    assert trial_count(first) == 2 and trial_count(second) == 5
    assert "2 trials before, 3 more" in second
    numbers = [int(n) for n in re.findall(r"^trial (\d+):", second, flags=re.M)]
    assert numbers == [2, 3, 4]


def test_trials_in_several_processes_share_the_study(work):
    out = tune("--trials", "4", "--n-jobs", "2", "--epochs", "1", "--hidden", "16,32", "--plots", "", cwd=work).stdout
    assert trial_count(out) == 4 and "2 at once" in out
    picked = re.findall(r"^trial \d+: (lr \S+, batch \d+, hidden \d+)", out, flags=re.M)
    assert len(picked) == 4 and len(set(picked)) > 1  # each process draws its own trials


def test_a_resume_with_other_search_flags_says_so(work):
    tune("--trials", "1", "--epochs", "1", "--plots", "", cwd=work)
    done = tune("--trials", "1", "--epochs", "2", "--plots", "", cwd=work, ok=False)
    assert "made with other search flags (--epochs 1 -> 2)" in done.stderr and "--study-name NEW" in done.stderr
    assert "trial 1:" not in done.stdout


def test_a_storage_that_cannot_be_opened_fails_before_any_trial(work):
    done = tune("--storage", "nosuchdatabase://here", "--plots", "", cwd=work, ok=False)
    assert "cannot open the storage 'nosuchdatabase://here'" in done.stderr
    assert "MNIST" not in done.stdout and "trial" not in done.stdout  # not even the data was read


def test_bad_trials_are_pruned_by_the_median_of_earlier_ones(work):
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    for values in ([0.9, 0.95], [0.9, 0.96]):  # two good trials, epoch by epoch
        trial = study.ask()
        for epoch, v in enumerate(values):
            trial.report(v, epoch)
        study.tell(trial, values[-1])
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        from tune_mlp import Pruning
    finally:
        sys.path.remove(os.path.join(ROOT, "examples"))
    callback = Pruning(study.ask(), optuna)
    with pytest.raises(optuna.TrialPruned, match="epoch 1: val_accuracy 0.1000"):
        callback.on_epoch_end(0, {"val_accuracy": 0.1})


def test_the_help_is_styled_as_the_other_examples():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "tune_mlp.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "default: 0.0003,0.001,0.003" in out and "[0.0003" not in out  # as a user types it, not a list's repr
    assert all(len(line) <= 100 for line in out.splitlines())
