"""Optuna tuning: search spaces, the objective (reports, pruning, failures, benchmark), the ``tune`` command."""

import itertools
import json
import math

import optuna
import pandas as pd
import pytest

from nas_estimators.cli import main
from nas_estimators.nasbench201 import BenchmarkTable, LABELS, NNI_OPS, to_arch_string
from nas_estimators.integrations.optuna_tuning import (
    SearchDiverged, SearchObjective, _EpochReporter, open_study, suggest_hyperparameters)
from nas_estimators.search import SearchConfig

optuna.logging.set_verbosity(optuna.logging.ERROR)
# No weights-only epochs: every epoch reports (the default's weights-only epochs are tested in test_recipe).
TINY = dict(dataset="digits", space="nb201", width=4, cells=1, batch_size=64, progress=False, warmup_epochs=0)
TINY_ARGS = ["--space", "nb201", "--width", "4", "--cells", "1", "--epochs", "1"]


def _study(sampler=None, pruner=None):
    return optuna.create_study(direction="maximize", sampler=sampler or optuna.samplers.RandomSampler(seed=0),
                               pruner=pruner)


# ------------------------------------------------------------------------------------------- search spaces

def test_each_estimator_draws_its_own_parameters_with_the_schedule_conditional():
    study = _study()
    schedules = set()
    for _ in range(40):
        trial = study.ask()
        values = suggest_hyperparameters(trial, "relax", num_labels=6)
        assert set(trial.params) >= {"arc_learning_rate", "surrogate_lr", "surrogate_width",
                                     "temperature_schedule", "temperature"}
        # temperature_final exists exactly when the schedule anneals
        assert ("temperature_final" in trial.params) == (values["temperature_schedule"] != "constant")
        assert 1e-4 <= values["surrogate_lr"] <= 1e-2 and values["surrogate_width"] in (16, 32, 64, 128)
        assert 0.1 <= values["temperature"] <= 2.0
        schedules.add(values["temperature_schedule"])
        study.tell(trial, 0.5)
    assert schedules == {"constant", "linear", "exponential", "cosine"}
    distributions = study.trials[0].distributions
    assert distributions["surrogate_lr"].log and distributions["arc_learning_rate"].log

    trial = study.ask()
    assert set(suggest_hyperparameters(trial, "sf", 6)) == {"arc_learning_rate", "baseline_decay"}
    assert 0.5 <= trial.params["baseline_decay"] <= 0.99
    labels = [suggest_hyperparameters(study.ask(), "ram", 6)["labels_per_step"] for _ in range(30)]
    assert min(labels) >= 1 and max(labels) <= 6 and len(set(labels)) > 2


def test_fixed_hyperparameters_are_not_drawn_and_a_fixed_constant_schedule_has_no_final_temperature():
    trial = _study().ask()
    values = suggest_hyperparameters(trial, "relax", 6, {"temperature_schedule": "constant", "surrogate_lr": 0.005})
    assert values["surrogate_lr"] == 0.005 and values["temperature_schedule"] == "constant"
    assert not {"surrogate_lr", "temperature_schedule", "temperature_final"} & set(trial.params)
    with pytest.raises(ValueError, match="estimator"):
        suggest_hyperparameters(trial, "reinforce", 6)


# ------------------------------------------------------------------------------------------- the objective

def test_objective_reports_each_epoch_and_stores_the_exported_architecture(tmp_path):
    # A grid sampler: the caller's sampler decides the hyperparameters.
    grid = optuna.samplers.GridSampler({"arc_learning_rate": [0.01], "baseline_decay": [0.7]}, seed=0)
    study = _study(sampler=grid)
    study.optimize(SearchObjective(SearchConfig(estimator="sf", epochs=2, **TINY), tmp_path), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.params == {"arc_learning_rate": 0.01, "baseline_decay": 0.7}
    directory = tmp_path / "trials" / "0000"
    history = pd.read_csv(directory / "history.csv")
    assert trial.intermediate_values == dict(zip(history["epoch"], history["val_acc"]))
    assert trial.user_attrs["architecture"] == json.loads((directory / "architecture.json").read_text())
    assert json.loads((directory / "config.json").read_text())["baseline_decay"] == 0.7
    assert trial.user_attrs["search_seconds"] > 0 and trial.user_attrs["output"] == str(directory)
    assert 0 < trial.value <= 1 and trial.value == trial.user_attrs["val_acc"]


def test_trials_with_the_same_hyperparameters_score_the_same_whatever_ran_before(tmp_path):
    def same(trial, estimator, num_labels, fixed):
        trial.suggest_float("arc_learning_rate", 0.01, 0.01)  # recorded, always 0.01
        return {"arc_learning_rate": 0.01, "surrogate_width": 16, "surrogate_lr": 1e-3, "temperature": 0.5,
                "temperature_schedule": "constant"}

    study = _study()
    study.optimize(SearchObjective(SearchConfig(estimator="relax", epochs=1, **TINY), tmp_path, suggest=same),
                   n_trials=2)
    first, second = study.trials
    assert first.value == second.value and first.intermediate_values == second.intermediate_values


def test_exported_accuracy_runs_the_given_path_and_leaves_the_supernet_as_it_was(tmp_path):
    import torch

    from nas_estimators.data import split_halves
    from nas_estimators.evaluate import exported_val_accuracy
    from nas_estimators.search import prepare, run_search

    config = SearchConfig(estimator="sf", epochs=1, output=str(tmp_path / "s"), **TINY)
    parts = prepare(config)
    result = run_search(config, parts)
    network = result["strategy"]._search_module.training_module
    before = {k: v.clone() for k, v in network.state_dict().items()}
    accuracy = exported_val_accuracy(result, parts, config.seed)
    assert accuracy == exported_val_accuracy(result, parts, config.seed) and 0 < accuracy <= 1
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())  # BN statistics restored
    # An all-"none" cell outputs zeros: the network predicts one class for every image, so the
    # accuracy is that class's share of the architecture half.
    empty = exported_val_accuracy({**result, "architecture": {label: "none" for label in LABELS}}, parts, config.seed)
    labels = parts.data.train_labels[split_halves(len(parts.data.train_labels), config.seed)[1]]
    shares = {count / len(labels) for count in torch.bincount(labels).tolist()}
    assert empty in shares


def _synthetic_table(missing_all_but=None):
    """Accuracy = 10 x the number of conv_3x3 edges + the index of the cell/0_1 op (distinct, deterministic)."""
    rows = {}
    for ops in itertools.product(NNI_OPS, repeat=len(LABELS)):
        sample = dict(zip(LABELS, ops))
        rows[to_arch_string(sample)] = 10.0 * ops.count("conv_3x3") + NNI_OPS.index(ops[0])
    if missing_all_but is not None:
        rows = {missing_all_but: rows[missing_all_but]}
    return BenchmarkTable(rows)


def test_with_a_table_the_objective_is_the_benchmark_accuracy_of_the_exported_architecture(tmp_path):
    table = _synthetic_table()
    study = _study()
    study.optimize(SearchObjective(SearchConfig(estimator="sf", epochs=1, **TINY), tmp_path, table=table),
                   n_trials=1)
    trial = study.trials[0]
    assert trial.value == table.accuracy(trial.user_attrs["architecture"]) == trial.user_attrs["benchmark_acc"]
    history = pd.read_csv(tmp_path / "trials" / "0000" / "history.csv")
    # each epoch's row carries the table accuracy of that epoch's mode
    assert history["benchmark_acc"].iloc[-1] == table.accuracy(json.loads(history["mode"].iloc[-1]))
    with pytest.raises(ValueError, match="nb201"):
        SearchObjective(SearchConfig(estimator="sf", space="darts"), tmp_path, table=table)


def test_diverging_and_raising_trials_fail_with_their_reason_and_the_study_goes_on(tmp_path):
    def suggest(trial, estimator, num_labels, fixed):
        values = suggest_hyperparameters(trial, estimator, num_labels, fixed)
        if trial.number == 0:  # weights blow up: the loss is NaN after the first steps
            values["weight_learning_rate"] = 1e12
            values["gradient_clip"] = None
        return values

    study = _study()
    # one epoch and no warm-up: the weights train (not fixed, as the recipe's second stage keeps them) and blow up
    study.optimize(SearchObjective(SearchConfig(estimator="sf", epochs=1, freeze_weights=False, **TINY), tmp_path,
                                   suggest=suggest), n_trials=2)  # no catch=: the objective itself must not raise
    diverged, healthy = study.trials
    assert diverged.state == optuna.trial.TrialState.FAIL
    assert diverged.user_attrs["fail_reason"].startswith("SearchDiverged: epoch 0: ")
    assert "nan" in diverged.user_attrs["fail_reason"]
    assert "SearchDiverged" in (tmp_path / "trials" / "0000" / "error.txt").read_text()
    assert healthy.state == optuna.trial.TrialState.COMPLETE

    # An exception from the search (the exported architecture is not in a partial table): failed, reason kept.
    only = to_arch_string({label: "none" for label in LABELS})
    study = _study()
    objective = SearchObjective(SearchConfig(estimator="sf", epochs=1, **TINY), tmp_path / "partial",
                                table=_synthetic_table(missing_all_but=only))
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["fail_reason"].startswith("ArchitectureNotFoundError: architecture ")


class _PruneAll(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_the_callers_pruner_stops_a_trial_after_its_first_report(tmp_path):
    study = _study(pruner=_PruneAll())
    study.optimize(SearchObjective(SearchConfig(estimator="relax", epochs=3, **TINY), tmp_path), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [0] and trial.user_attrs["pruned_at_epoch"] == 0
    assert set(trial.user_attrs["architecture"]) == set(LABELS) and trial.user_attrs["search_seconds"] > 0


class _FakeModule:
    class distribution:
        @staticmethod
        def mode():
            return {"a": 1}


@pytest.mark.parametrize("column", ["train_loss", "val_loss", "val_acc"])
def test_a_non_finite_epoch_is_a_divergence_except_validation_numbers_during_warmup(column):
    trial = _study().ask()
    row = {"epoch": 0, "train_loss": 1.0, "val_loss": 1.0, "val_acc": 0.5, column: float("nan")}
    with pytest.raises(SearchDiverged, match=f"epoch 0: {column} is nan"):
        _EpochReporter(trial, weights_only_epochs=0)(dict(row), _FakeModule())
    reporter = _EpochReporter(trial, weights_only_epochs=1)
    if column == "train_loss":
        with pytest.raises(SearchDiverged):
            reporter(dict(row), _FakeModule())
    else:  # warm-up epochs have no validation numbers: nothing checked, nothing reported
        reporter(dict(row), _FakeModule())
        assert reporter.architecture == {"a": 1}


def test_an_existing_study_of_another_setting_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    open_study(url, "s", metadata={"estimator": "sf"})
    assert open_study(url, "s", metadata={"estimator": "sf"}).user_attrs == {"estimator": "sf"}
    with pytest.raises(ValueError, match="estimator='sf', not 'relax'"):
        open_study(url, "s", metadata={"estimator": "relax"})


# ------------------------------------------------------------------------------------------- the tune command

def test_tune_writes_the_best_trial_and_resumes_the_study(tmp_path, capsys):
    output = tmp_path / "tune"
    code = main(["tune", "--estimator", "sf", *TINY_ARGS, "--n-trials", "2", "--sampler-seed", "0",
                 "--output", str(output)])
    out = capsys.readouterr().out
    assert code == 0
    assert "0 trial(s) so far" in out and f"optuna-dashboard sqlite:///{output.resolve()}/optuna.db" in out
    assert "[1/2] trial 0 value " in out and "[2/2] trial 1 value " in out and "best: trial " in out
    study = optuna.load_study(study_name="sf-nb201-digits", storage=f"sqlite:///{output / 'optuna.db'}")
    best = study.best_trial
    assert json.loads((output / "best_architecture.json").read_text()) == best.user_attrs["architecture"] == \
        json.loads((output / "trials" / f"{best.number:04d}" / "architecture.json").read_text())
    assert json.loads((output / "best_trial.json").read_text())["params"] == best.params
    trials = pd.read_csv(output / "trials.csv")
    assert list(trials["number"]) == [0, 1] and "params_baseline_decay" in trials

    # Resume: same name and storage; a hyperparameter given on the command line is fixed, not drawn.
    code = main(["tune", "--estimator", "sf", *TINY_ARGS, "--n-trials", "1", "--baseline-decay", "0.8",
                 "--output", str(output)])
    out = capsys.readouterr().out
    assert code == 0 and "2 trial(s) so far" in out and "tuning arc_learning_rate" in out
    study = optuna.load_study(study_name="sf-nb201-digits", storage=f"sqlite:///{output / 'optuna.db'}")
    assert len(study.trials) == 3 and "baseline_decay" not in study.trials[2].params
    assert json.loads((output / "trials" / "0002" / "config.json").read_text())["baseline_decay"] == 0.8
    assert len(pd.read_csv(output / "trials.csv")) == 3


def test_importances_rank_the_parameter_that_decides_the_value(tmp_path, capsys):
    from nas_estimators.cli.tune import _write_results

    study = _study()
    distributions = {"arc_learning_rate": optuna.distributions.FloatDistribution(1e-4, 3e-2, log=True),
                     "baseline_decay": optuna.distributions.FloatDistribution(0.5, 0.99)}
    for number in range(12):
        decay, rate = 0.5 + 0.04 * number, 1e-4 * 1.5 ** ((7 * number) % 12)
        study.add_trial(optuna.trial.create_trial(
            params={"arc_learning_rate": rate, "baseline_decay": decay}, distributions=distributions,
            value=decay + 1e-3 * rate, user_attrs={"architecture": {"op": number}}))
    assert _write_results(study, tmp_path) == 0
    importances = pd.read_csv(tmp_path / "importances.csv")
    assert list(importances["parameter"]) == ["baseline_decay", "arc_learning_rate"]
    assert importances["importance"].iloc[0] > 0.9
    assert json.loads((tmp_path / "best_architecture.json").read_text()) == {"op": 11}
    assert "parameter importance (fANOVA): baseline_decay" in capsys.readouterr().out

    # Every trial scoring the same: nothing to rank, said so, no file.
    flat = _study()
    for number in range(3):
        flat.add_trial(optuna.trial.create_trial(params={"baseline_decay": 0.5 + 0.1 * number},
                                                 distributions={"baseline_decay": distributions["baseline_decay"]},
                                                 value=0.5, user_attrs={"architecture": {}}))
    (tmp_path / "flat").mkdir()
    assert _write_results(flat, tmp_path / "flat") == 0
    assert "parameter importance: not available" in capsys.readouterr().out
    assert not (tmp_path / "flat" / "importances.csv").exists()


def test_tune_with_every_trial_failing_says_so_and_exits_1(tmp_path, capsys):
    output = tmp_path / "tune"
    code = main(["tune", "--estimator", "sf", *TINY_ARGS, "--n-trials", "1", "--weight-learning-rate", "1e12",
                 "--no-freeze-weights", "--output", str(output)])
    out = capsys.readouterr().out
    assert code == 1
    assert "trial 0 failed: SearchDiverged: epoch 0: " in out and "no trial of study 'sf-nb201-digits' finished" in out
    assert pd.read_csv(output / "trials.csv")["user_attrs_fail_reason"].str.startswith("SearchDiverged").all()
    assert not (output / "best_architecture.json").exists()


def _fails(capsys, *argv):
    with pytest.raises(SystemExit) as excinfo:
        main(list(argv))
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("storage, expected", [
    ("postgresql://user:secret@127.0.0.1:1/optuna", "storage: cannot open postgresql://user:***@127.0.0.1:1/optuna: "),
    ("not a url", "storage: cannot open not a url: Could not parse"),
    ("nosuchdb://host/x", "storage: cannot open nosuchdb://host/x"),
])
def test_a_storage_that_cannot_be_opened_is_a_one_line_error(tmp_path, capsys, storage, expected):
    err = _fails(capsys, "tune", *TINY_ARGS, "--storage", storage, "--output", str(tmp_path / "o"))
    assert expected in err and "secret" not in err
    assert not (tmp_path / "o").exists()


def test_a_cost_objective_makes_a_two_objective_study_and_writes_its_pareto_front(tmp_path, capsys):
    from nas_estimators.nasbench201 import CellCosts

    output = tmp_path / "tune"
    code = main(["tune", "--estimator", "sf", "--space", "nb201", "--epochs", "2", "--n-trials", "3",
                 "--sampler-seed", "0", "--cost-objective", "params", "--output", str(output)])
    out = capsys.readouterr().out
    assert code == 0 and "Pareto front: trial " in out
    study = optuna.load_study(study_name="sf-nb201-digits", storage=f"sqlite:///{output / 'optuna.db'}")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    costs = CellCosts("params", width=8, cells=1, image_size=8)  # the digits network
    for trial in study.trials:
        assert trial.values[1] == pytest.approx(costs(trial.user_attrs["architecture"]))
        assert trial.user_attrs["params"] == trial.values[1]
    record = json.loads((output / "best_trial.json").read_text())
    front = {t.number for t in study.best_trials}
    assert {row["trial"] for row in record["pareto_front"]} == front
    assert json.loads((output / "best_architecture.json").read_text()) == \
        study.trials[record["pareto_front"][0]["trial"]].user_attrs["architecture"]
    # The same study without the cost is another setting: one line, nothing run.
    err = _fails(capsys, "tune", "--estimator", "sf", "--space", "nb201", "--epochs", "2", "--n-trials", "1",
                 "--output", str(output))
    assert "study-name: study 'sf-nb201-digits' has directions ['maximize', 'minimize']; the tuner maximises " \
           "accuracy" in err
    assert len(optuna.load_study(study_name="sf-nb201-digits", storage=f"sqlite:///{output / 'optuna.db'}").trials) == 3


def test_bad_tune_options_are_one_line_errors_and_keep_an_existing_study(tmp_path, capsys):
    output = tmp_path / "o"
    assert "n-trials" in _fails(capsys, "tune", *TINY_ARGS, "--n-trials", "0", "--output", str(output))
    assert "timeout" in _fails(capsys, "tune", *TINY_ARGS, "--timeout", "nan", "--output", str(output))
    assert "study-name" in _fails(capsys, "tune", *TINY_ARGS, "--study-name", " ", "--output", str(output))
    assert "baseline_decay" in _fails(capsys, "tune", *TINY_ARGS, "--baseline-decay", "1.5", "--output", str(output))
    assert "benchmark" in _fails(capsys, "tune", "--space", "darts", "--benchmark", "x.csv", "--output", str(output))
    assert "not found" in _fails(capsys, "tune", *TINY_ARGS, "--benchmark", str(tmp_path / "none.csv"),
                                 "--output", str(output))
    assert not output.exists()
    # A study made for SF is not resumed by RELAX: one line, the database untouched.
    open_study(f"sqlite:///{tmp_path / 'db.sqlite'}", "mine", metadata={"estimator": "sf"})
    before = (tmp_path / "db.sqlite").read_bytes()
    err = _fails(capsys, "tune", "--estimator", "relax", *TINY_ARGS, "--storage", f"sqlite:///{tmp_path / 'db.sqlite'}",
                 "--study-name", "mine", "--output", str(output))
    assert "study-name: study 'mine' was made with estimator='sf', not 'relax'" in err
    assert (tmp_path / "db.sqlite").read_bytes() == before


def test_tune_example_runs(tmp_path, monkeypatch, capsys):
    import runpy
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "tune_relax.py"
    monkeypatch.setattr(sys, "argv", [str(example), "--n-trials", "1", "--epochs", "1", "--width", "4",
                                      "--output", str(tmp_path / "ex")])
    runpy.run_path(str(example), run_name="__main__")
    out = capsys.readouterr().out
    assert "optuna-dashboard sqlite:///" in out and "best value" in out
    study = optuna.load_study(study_name="relax-example", storage=f"sqlite:///{tmp_path / 'ex' / 'optuna.db'}")
    assert len(study.trials) == 1 and not math.isnan(study.trials[0].value)


def test_a_latency_cost_objective_records_the_tables_prediction_for_each_trial(tmp_path, capsys, monkeypatch):
    from nas_estimators import latency

    monkeypatch.setenv("NAS_ESTIMATORS_CACHE", str(tmp_path / "cache"))
    timings = iter(range(10_000))

    def clock(forward, device, repeats):  # a deterministic, architecture-blind "latency": the table fits it
        forward()
        return 3.0 + 1e-3 * next(timings)

    monkeypatch.setattr(latency, "measure_latency", clock)
    output = tmp_path / "tune"
    assert main(["tune", "--estimator", "sf", "--space", "nb201", "--epochs", "1", "--n-trials", "2",
                 "--sampler-seed", "0", "--cost-objective", "latency", "--output", str(output)]) == 0
    assert "Pareto front: trial " in capsys.readouterr().out
    study = optuna.load_study(study_name="sf-nb201-digits", storage=f"sqlite:///{output / 'optuna.db'}")
    tables = list((tmp_path / "cache" / "latency").glob("*.json"))
    assert len(tables) == 1  # measured once, read back by the second trial
    table = latency.LatencyTable.from_dict(json.loads(tables[0].read_text())["table"])
    for trial in study.trials:
        assert trial.values[1] == pytest.approx(table.predict(trial.user_attrs["architecture"]))
        assert trial.user_attrs["latency"] == trial.values[1]
