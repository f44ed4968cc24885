"""The run folder: one module names a run's files; reads and writes go through it; old folders still load."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from nas_estimators import run_folder
from nas_estimators.architectures import load_search
from nas_estimators.retrain import table_rows
from nas_estimators.run_folder import CompareFolder, RunFolder, StudyFolder
from nas_estimators.search import SearchConfig

ROOT = Path(__file__).resolve().parents[1]
FILE_NAMES = {value for name, value in vars(run_folder).items() if name.isupper() and isinstance(value, str)}


def test_every_file_name_is_a_constant_of_the_run_folder_module():
    assert {"architecture.json", "config.json", "history.csv", "probabilities.csv", "checkpoint.ckpt", "top_k.json",
            "top_k.csv", "trials.csv", "retrain.csv", "result.json"} <= FILE_NAMES


def test_no_other_module_spells_a_run_file_name():
    """A string literal (help texts and docstrings included) naming a run's file belongs in run_folder.py."""
    offenders = []
    for folder in (ROOT / "nas_estimators", ROOT / "integrations"):
        for path in folder.rglob("*.py"):
            if path.name == "run_folder.py" or "integrations" in path.relative_to(folder).parts[:-1]:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {name}" for name in FILE_NAMES
                                  if name in node.value]
    assert offenders == []


def test_reads_return_what_writes_wrote(tmp_path):
    run = RunFolder(tmp_path)
    assert not run.is_search() and not run.finished() and not run.started()
    run.write_config({"estimator": "sf", "seed": 3})
    run.write_history(pd.DataFrame({"epoch": [0, 1], "seconds": [1.5, 2.5]}))
    run.write_probabilities(pd.DataFrame({"epoch": [0], "label": ["a"], "value": ["x"], "probability": [1.0]}))
    assert run.is_search() and not run.finished()
    run.write_architecture({"cell/0_1": "skip_connect"})
    run.write_top_k([{"rank": 1, "probability": 0.5, "architecture": {"cell/0_1": "skip_connect"}}])
    assert run.finished() and run.started()
    assert run.read_config() == {"estimator": "sf", "seed": 3}
    assert run.read_history()["seconds"].tolist() == [1.5, 2.5]
    assert run.read_architecture() == {"cell/0_1": "skip_connect"}
    assert json.loads(run.top_k_csv.read_text().splitlines()[1].split(",", 2)[2].strip('"').replace('""', '"')) \
        == {"cell/0_1": "skip_connect"}
    assert not run.finished(multi_trial=True)
    run.write_trials(pd.DataFrame({"trial": [1], "benchmark_acc": [90.0]}))
    assert run.finished(multi_trial=True) and run.read_trials()["benchmark_acc"].tolist() == [90.0]
    assert not list(tmp_path.glob("*.tmp"))  # every write renamed its temporary into place


@pytest.mark.parametrize("content, message", [(None, "no config.json"), ("{not json", "is unreadable"),
                                              ("[1, 2]", "expected a JSON object")])
def test_a_missing_or_broken_config_is_one_line_naming_the_folder(tmp_path, content, message):
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        RunFolder(tmp_path).read_config()
    assert "\n" not in str(error.value)


def test_a_study_folder_holds_what_tune_writes(tmp_path):
    study = StudyFolder(tmp_path)
    study.write_trials(pd.DataFrame({"number": [0]}))
    study.write_best({"cell/0_1": "none"}, {"trial": 0, "value": 0.9})
    study.write_importances({"baseline_decay": 0.7, "arc_learning_rate": 0.3})
    assert json.loads(study.best_architecture.read_text()) == {"cell/0_1": "none"}
    assert json.loads(study.best_trial.read_text())["value"] == 0.9
    assert pd.read_csv(study.importances)["parameter"].tolist() == ["baseline_decay", "arc_learning_rate"]
    assert pd.read_csv(study.trials)["number"].tolist() == [0]


def test_a_compare_folder_holds_its_settings_runs_and_tables(tmp_path):
    folder = CompareFolder(tmp_path / "cmp")
    assert not folder.has_settings()
    folder.write_settings({"seeds": [10, 11], "method_epochs": {"ram": 22}})
    assert folder.read_settings() == {"seeds": [10, 11], "method_epochs": {"ram": 22}}
    folder.run("sf", 10).path.mkdir(parents=True)
    folder.run("sf", 10).write_architecture({"cell/0_1": "none"})
    folder.run("nni-darts", 11).path.mkdir(parents=True)
    assert folder.methods_run() == {"sf", "nni-darts"}
    assert folder.run("sf", 10).finished()
    frame = pd.DataFrame({"method": ["sf"]})
    folder.write_tables(frame, frame.iloc[:0], frame, report="<html></html>")
    assert pd.read_csv(folder.results)["method"].tolist() == ["sf"] and folder.summary.is_file()
    assert folder.report.read_text() == "<html></html>" and not folder.trials.exists()  # no trials, no file
    folder.settings.write_text("[]")
    with pytest.raises(ValueError, match="is not a comparison record"):
        folder.read_settings()


def test_a_run_folder_in_the_format_written_before_the_change_still_loads(tmp_path):
    """A fixture of the files a search wrote before RunFolder existed (session 7's format), written by hand."""
    architecture = {"cell/0_1": "skip_connect", "cell/0_2": "none", "cell/1_2": "conv_3x3",
                    "cell/0_3": "conv_1x1", "cell/1_3": "avg_pool_3x3", "cell/2_3": "conv_3x3"}
    (tmp_path / "config.json").write_text(json.dumps({"estimator": "sf", "space": "nb201", "dataset": "digits",
                                                      "epochs": 4, "seed": 1, "arc_learning_rate": 0.03}, indent=2))
    (tmp_path / "history.csv").write_text("epoch,train_loss,val_loss,val_acc,entropy,seconds\n"
                                          "0,2.0,2.1,0.2,9.6,1.25\n1,1.9,2.0,0.3,9.5,1.75\n")
    (tmp_path / "architecture.json").write_text(json.dumps(architecture, indent=2) + "\n")
    (tmp_path / "top_k.json").write_text(json.dumps([{"rank": 1, "probability": 0.25,
                                                       "architecture": architecture}], indent=2) + "\n")
    config = SearchConfig.saved(tmp_path)
    assert (config.estimator, config.seed, config.epochs) == ("sf", 1, 4)
    assert config.warmup_epochs == 0  # saved before the recipe: it ran without warm-up
    assert load_search(tmp_path).architectures == [architecture]
    row = table_rows([str(tmp_path)]).iloc[0]
    assert row["search_gpu_hours"] == pytest.approx(3.0 / 3600)


@pytest.mark.parametrize("layout", ["session 14: built-in fields flat, others nested", "flat"])
def test_estimator_hyperparameters_load_from_every_config_layout(tmp_path, layout):
    """Session 14's config.json kept the built-in estimators' hyperparameters as fields and a registered
    estimator's in ``estimator_options``; today every registered one sits beside the fields."""
    record = {"estimator": "relax", "space": "nb201", "dataset": "digits", "epochs": 4, "surrogate_width": 8,
              "temperature": 0.75, "baseline_decay": 0.5}
    if layout == "flat":
        record = SearchConfig.from_record(record).to_record()
        assert record["surrogate_width"] == 8 and "estimator_options" not in record
    else:
        record["estimator_options"] = {"surrogate_lr": 0.02}
    (tmp_path / "config.json").write_text(json.dumps(record))
    config = SearchConfig.saved(tmp_path)
    estimator = config.build_estimator()
    assert (estimator.surrogate_width, float(estimator.temperature.value), config.hyperparameter_values()["temperature"]) \
        == (8, 0.75, 0.75)
    assert config.estimator_options["baseline_decay"] == 0.5
    if layout != "flat":
        assert config.hyperparameter_values()["surrogate_lr"] == 0.02


def test_a_hyperparameter_keyword_and_attribute_still_work_on_search_config():
    """Before the hyperparameters moved into estimator_options they were fields: code written then still runs."""
    config = SearchConfig(estimator="ram", labels_per_step=2, seed=3)
    assert config.estimator_options == {"labels_per_step": 2} and config.seed == 3
    assert config.labels_per_step == 2 and config.baseline_decay == 0.9  # set, and the registry's default
    assert config.build_estimator().labels_per_step == 2
    assert dataclasses.replace(config, seed=4).labels_per_step == 2
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        config.no_such_thing
    with pytest.raises(TypeError, match="no_such_option"):
        SearchConfig(no_such_option=1)
