"""The command line: the default run (shortened) and every bad-input path."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from nas_estimators.cli import main


def run_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "nas_estimators", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_default_search_writes_a_loadable_architecture_history_and_checkpoint(tmp_path):
    output = tmp_path / "out"
    result = run_cli("search", "--epochs", "2", "--output", str(output), "--top-k", "5")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Epoch 1" in result.stdout  # the progress display
    exported = [line for line in result.stdout.splitlines() if line.startswith("exported architecture: val_acc ")]
    assert len(exported) == 1 and 0.0 <= float(exported[0].split()[3]) <= 1.0
    architecture = json.loads((output / "architecture.json").read_text())
    from nas_estimators.spaces import build_space

    space = build_space("darts", 8, 5)
    assert set(architecture) == set(space.simplify())
    import torch

    assert space.freeze(architecture)(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    history = pd.read_csv(output / "history.csv")
    assert list(history["epoch"]) == [0, 1]
    config = json.loads((output / "config.json").read_text())
    assert config["warmup_epochs"] == 1  # the default: weights only first, the architecture in the last epoch
    for column in ("train_loss", "entropy", "seconds"):
        assert history[column].notna().all(), column
    for column in ("val_loss", "val_acc", "baseline", "forward_evaluations"):
        assert history[column].iloc[1:].notna().all(), column
    assert (history["val_acc"].iloc[1:].between(0, 1)).all()
    assert (output / "checkpoint.ckpt").stat().st_size > 0
    top = json.loads((output / "top_k.json").read_text())
    assert [row["rank"] for row in top] == [1, 2, 3, 4, 5]
    # The recipe re-scores the five most probable on held-out images and exports the best-scored.
    assert all("rescored_objective" in row for row in top)
    assert min(top, key=lambda row: row["rescored_objective"])["architecture"] == architecture
    probabilities = pd.read_csv(output / "probabilities.csv")
    assert set(probabilities["label"]) == set(architecture)
    config = json.loads((output / "config.json").read_text())
    assert config["estimator"] == "sf" and config["dataset"] == "digits"


@pytest.mark.parametrize("estimator, extra", [("relax", ["--temperature-schedule", "exponential",
                                                         "--temperature-final", "0.1"]),
                                              ("ram", ["--labels-per-step", "2"]), ("ram", [])])
def test_other_estimators_on_nb201(tmp_path, estimator, extra, capsys):
    output = tmp_path / estimator
    code = main(["search", "--estimator", estimator, "--space", "nb201", "--epochs", "1", "--no-progress",
                 "--output", str(output), *extra])
    assert code == 0
    history = pd.read_csv(output / "history.csv")
    if estimator == "relax":
        assert history["surrogate_loss"].notna().all()
    elif extra:
        assert (history["forward_evaluations"] > 1).all()
    else:  # the default: one of the six labels a step, its four other values besides the shared sample
        assert (history["forward_evaluations"] == 1 + 4).all()


def test_a_search_ends_with_the_chance_level_beside_the_exported_architecture(tmp_path, capsys):
    output = tmp_path / "out"
    assert main(["search", "--space", "nb201", "--epochs", "2", "--no-progress", "--uniform-draws", "3",
                 "--output", str(output)]) == 0
    lines = capsys.readouterr().out.splitlines()
    final = next(line for line in lines if line.startswith("final epoch:"))
    assert "(uniform: 9.657)" in final  # six edges of five candidates: 6 ln 5
    chance = next(line for line in lines if line.startswith("3 uniformly drawn architectures"))
    mean, low, high = (float(chance.split(word)[1].split()[0].strip("(),")) for word in ("val_acc", "min", "max"))
    assert 0 <= low <= mean <= high <= 1 and low < high  # three different cells on briefly trained weights
    assert lines[-1] == f"next: nas-estimators report {output}  (probabilities, entropy, the cell's diagram); " \
                        f"nas-estimators export {output}"
    assert main(["search", "--space", "nb201", "--epochs", "1", "--no-progress", "--uniform-draws", "0",
                 "--output", str(tmp_path / "none")]) == 0
    assert "uniformly drawn" not in capsys.readouterr().out
    assert "uniform-draws: expected an integer >= 0, got -1" in _fails(
        capsys, "search", "--uniform-draws", "-1", "--output", str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()


def _fails(capsys, *argv, code=2):
    with pytest.raises(SystemExit) as excinfo:
        main(list(argv))
    assert excinfo.value.code == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("argv, expected", [
    (["search", "--estimator", "reinforce"], "choose from 'sf', 'relax', 'ram'"),
    (["search", "--space", "nasnet"], "choose from 'darts', 'nb201'"),
    (["search", "--dataset", "mnist"], "choose from 'digits', 'cifar10'"),
    (["search", "--labels-per-step", "some"], "--labels-per-step: expected an integer >= 1 or 'all', got 'some'"),
    (["bench", "--labels-per-step", "some"], "--labels-per-step: expected an integer >= 1 or 'all', got 'some'"),
])
def test_unknown_choices_are_usage_errors_listing_the_choices(capsys, argv, expected):
    error = _fails(capsys, *argv)
    assert expected in error and error.count("\n") == 1, error  # one line: no usage block


def test_a_missing_or_unknown_command_is_one_line_too(capsys):
    assert "required: COMMAND" in _fails(capsys).strip() and _fails(capsys).count("\n") == 1
    assert "invalid choice: 'serch'" in _fails(capsys, "serch")


@pytest.mark.parametrize("argv, expected", [
    (["--baseline-decay", "1.0"], "baseline_decay"),
    (["--baseline-decay", "-0.5"], "baseline_decay"),
    (["--arc-learning-rate", "0"], "arc_learning_rate"),
    (["--weight-learning-rate", "-1"], "weight_learning_rate"),
    (["--estimator", "relax", "--surrogate-lr", "0"], "surrogate_lr"),
    (["--estimator", "relax", "--temperature", "-1"], "temperature"),
    (["--estimator", "relax", "--surrogate-init", "normal"], "surrogate-init"),
    (["--estimator", "relax", "--baseline-fade-steps", "soon"], "baseline-fade-steps"),
    (["--estimator", "relax", "--baseline-fade-steps", "0"], "baseline-fade-steps"),
    (["--estimator", "ram", "--labels-per-step", "0"], "labels_per_step"),
    (["--epochs", "0"], "epochs"),
    (["--batch-size", "0"], "batch_size"),
    (["--device", "tpu"], "device"),
])
def test_bad_hyperparameters_are_one_line_errors(tmp_path, capsys, argv, expected):
    err = _fails(capsys, "search", "--output", str(tmp_path / "o"), *argv)
    assert expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("root", [None, "missing", "empty"])
def test_missing_or_malformed_data_directory_names_the_layouts(tmp_path, capsys, root):
    argv = ["search", "--dataset", "cifar10", "--output", str(tmp_path / "o")]
    if root == "missing":
        argv += ["--data-root", str(tmp_path / "nowhere")]
    elif root == "empty":
        (tmp_path / "empty").mkdir()
        argv += ["--data-root", str(tmp_path / "empty")]
    err = _fails(capsys, *argv)
    assert len(err.strip().splitlines()) == 1
    assert "cifar-10-batches-py" in err and "train/<class>" in err


def test_an_existing_search_is_not_overwritten(tmp_path, capsys):
    output = tmp_path / "o"
    output.mkdir()
    (output / "architecture.json").write_text("{\"kept\": true}")
    err = _fails(capsys, "search", "--output", str(output))
    assert "already holds a search" in err
    assert (output / "architecture.json").read_text() == "{\"kept\": true}"


def test_entry_point_reports_usage_errors_without_traceback(tmp_path):
    result = run_cli("search", "--estimator", "nope")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "sf" in result.stderr
    result = run_cli("search", "--baseline-decay", "2", "--output", str(tmp_path / "o"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("nas-estimators search: error: baseline_decay")


def test_lightning_logs_hold_each_epochs_aggregates(tmp_path):
    # The step aggregates on the host and hands Lightning one value per epoch and metric.
    output = tmp_path / "run"
    assert main(["search", "--space", "nb201", "--epochs", "2", "--warmup-epochs", "0", "--no-progress",
                 "--output", str(output)]) == 0
    history = pd.read_csv(output / "history.csv")
    logged = pd.read_csv(output / "logs" / "version_0" / "metrics.csv")
    per_epoch = logged.dropna(subset=["val_acc"]).set_index("epoch")
    assert list(per_epoch.index) == [0, 1]
    for column in ("val_acc", "val_loss", "entropy", "skipped_steps", "estimator/baseline"):
        assert per_epoch[column].notna().all(), column
    # Every validation batch has the same size here, so the weighted mean is the recorder's plain mean.
    assert per_epoch["val_acc"].tolist() == pytest.approx(history["val_acc"].tolist(), rel=1e-5)
    assert per_epoch["val_loss"].tolist() == pytest.approx(history["val_loss"].tolist(), rel=1e-5)
    assert per_epoch["skipped_steps"].tolist() == history["skipped_steps"].tolist()  # the largest: the count
