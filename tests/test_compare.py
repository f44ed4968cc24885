"""compare: methods x seeds end to end on a tiny setting, against a fake NAS-Bench-201 table."""

import dataclasses
import itertools
import json

import pandas as pd
import pytest
import torch

from nas_estimators import compare
from nas_estimators.cli import main
from nas_estimators.run_folder import CompareFolder
from nas_estimators.nasbench201 import LABELS, NNI_OPS, to_arch_string

from nas_estimators.integrations.compare_report import FIGURES, figures, markdown_table, report_html


def run_compare(config, **options):
    """compare as the command runs it: with the report page."""
    return compare.run_compare(config, report=report_html, **options)


TINY = dict(space="nb201", dataset="digits", epochs=1, batch_size=64, width=4, cells=1, device="cpu", progress=False)
METHODS = ("sf", "nni-darts", "nni-evolution")
BUDGET = 12


def fake_accuracy(index: int) -> float:
    return 50 + (index * 7919 % 4500) / 100  # deterministic, spread over [50, 95)


def write_table(path, archs):
    pd.DataFrame({"arch": archs, "test_acc": [fake_accuracy(i) for i in range(len(archs))]}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def table_csv(tmp_path_factory):
    archs = [to_arch_string(dict(zip(LABELS, ops))) for ops in itertools.product(NNI_OPS, repeat=6)]
    return write_table(tmp_path_factory.mktemp("table") / "nb201.csv", archs)


@pytest.fixture(scope="module")
def table(table_csv):
    from nas_estimators.nasbench201 import BenchmarkTable

    return BenchmarkTable.from_csv(table_csv)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory, table_csv):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steadier on a shared 2-core machine; the runs are tiny
    config = compare.CompareConfig(methods=METHODS, seeds=(0, 1), benchmark_table=str(table_csv), budget=BUDGET,
                                   output=str(tmp_path_factory.mktemp("compare") / "out"), **TINY)
    messages = []
    try:
        result = run_compare(config, progress=messages.append)
    finally:
        torch.set_num_threads(threads)
    return config, result, messages


def test_results_hold_one_row_per_method_seed_epoch_with_the_mode_scored(comparison, table):
    config, result, _ = comparison
    results = pd.read_csv(f"{config.output}/results.csv")
    assert sorted(zip(results["method"], results["seed"], results["epoch"])) == [
        ("nni-darts", 0, 0), ("nni-darts", 1, 0), ("sf", 0, 0), ("sf", 1, 0)]
    for row in results.itertuples():
        assert row.benchmark_acc == table.accuracy(json.loads(row.mode))
        assert 0 <= row.val_acc <= 1 and row.entropy > 0 and row.seconds > 0
    trials = pd.read_csv(f"{config.output}/trials.csv")
    assert list(trials.groupby("seed")["trial"].max()) == [BUDGET, BUDGET]
    for seed, frame in trials.groupby("seed"):
        assert list(frame["best_so_far"]) == list(frame["benchmark_acc"].cummax())
        assert frame["architecture"].nunique() == BUDGET  # NNI's evolution deduplicates
    for row in trials.itertuples():
        assert row.benchmark_acc == table.accuracy(json.loads(row.architecture))


def test_summary_equals_the_aggregates_of_the_results(comparison):
    config, _, _ = comparison
    results = pd.read_csv(f"{config.output}/results.csv")
    trials = pd.read_csv(f"{config.output}/trials.csv")
    summary = pd.read_csv(f"{config.output}/summary.csv").set_index("method")
    assert list(summary.index) == ["sf", "nni-darts", "nni-evolution"]
    for method in ("sf", "nni-darts"):
        final = results[results["method"] == method].sort_values("epoch").groupby("seed").tail(1)
        assert summary.loc[method, "kind"] == "one-shot" and summary.loc[method, "runs"] == 2
        assert summary.loc[method, "final_benchmark_acc_mean"] == pytest.approx(final["benchmark_acc"].mean())
        assert summary.loc[method, "final_benchmark_acc_std"] == pytest.approx(final["benchmark_acc"].std())
        seconds = results[results["method"] == method].groupby("seed")["seconds"].sum().mean()
        assert summary.loc[method, "search_seconds_mean"] == pytest.approx(seconds)
    best = trials.groupby("seed")["benchmark_acc"].max()
    assert summary.loc["nni-evolution", "kind"] == "multi-trial" and summary.loc["nni-evolution", "budget"] == BUDGET
    assert summary.loc["nni-evolution", "final_benchmark_acc_mean"] == pytest.approx(best.mean())
    assert summary.loc["nni-evolution", "final_benchmark_acc_std"] == pytest.approx(best.std())
    markdown = markdown_table(summary.reset_index())
    assert f"| nni-evolution | multi-trial | 2 | {BUDGET} archs |" in markdown


def test_report_holds_each_figure(comparison):
    config, result, _ = comparison
    html = open(f"{config.output}/report.html").read()
    for figure_id, title in FIGURES.items():
        assert f'id="{figure_id}"' in html and title in html, figure_id
    assert html.count("<script type=\"text/javascript\">/**") <= 1  # plotly.js inlined once
    made = figures(result["results"], result["trials"], result["summary"])
    bars = made["final-comparison"].data[0]
    assert list(bars.x) == ["sf", "nni-darts", f"nni-evolution ({BUDGET} archs)"]


def test_a_rerun_skips_finished_runs_and_redoes_only_the_missing_one(comparison, monkeypatch):
    import shutil

    config, _, _ = comparison
    folder = CompareFolder(config.output)
    outputs = [folder.run(m, s).path / ("trials.csv" if m == "nni-evolution" else "history.csv")
               for m in METHODS for s in (0, 1)]
    before = {path: path.stat().st_mtime_ns for path in outputs}
    shutil.rmtree(folder.run("sf", 1).path)
    calls = []
    real = compare.run_oneshot_method
    monkeypatch.setattr(compare, "run_oneshot_method", lambda *args: (calls.append(args[1:3]), real(*args)))
    monkeypatch.setattr(compare, "run_multi_trial_method", lambda *args: calls.append(args[:2]))
    messages = []
    torch.set_num_threads(1)
    run_compare(config, progress=messages.append)
    assert calls == [("sf", 1)]
    assert sum("finished before, skipped" in m for m in messages) == 5
    for path, mtime in before.items():
        if "sf-s1" not in str(path):
            assert path.stat().st_mtime_ns == mtime, path
    assert len(pd.read_csv(f"{config.output}/results.csv")) == 4


def test_a_rerun_with_other_settings_is_refused(comparison):
    config, _, _ = comparison
    with pytest.raises(compare.InputError, match=r"other settings \(epochs 1 -> 2\)"):
        run_compare(dataclasses.replace(config, epochs=2), progress=lambda line: None)


def test_a_comparison_moved_to_another_machine_continues_there(comparison, tmp_path):
    import shutil

    config, _, _ = comparison
    moved = tmp_path / "elsewhere"
    shutil.copytree(config.output, moved)
    table_copy = shutil.copy(config.benchmark_table, tmp_path / "table-copy.csv")
    messages = []
    run_compare(dataclasses.replace(config, output=str(moved), benchmark_table=str(table_copy)),
                        progress=messages.append)
    assert messages and all("finished before, skipped" in line for line in messages)
    assert (moved / "report.html").is_file()

    other = pd.read_csv(table_copy)
    other.loc[0, "test_acc"] += 1.0
    other.to_csv(table_copy, index=False)
    with pytest.raises(compare.InputError, match=r"other settings \(benchmark_table 'sha256:"):
        run_compare(dataclasses.replace(config, output=str(moved), benchmark_table=str(table_copy)),
                            progress=lambda line: None)


def test_a_comparison_recorded_with_the_table_path_continues(comparison, tmp_path):
    import os
    import shutil

    config, _, _ = comparison
    copy = tmp_path / "old"
    shutil.copytree(config.output, copy)
    record = json.loads((copy / "compare.json").read_text())
    record["settings"]["benchmark_table"] = os.path.abspath(config.benchmark_table)  # what earlier versions wrote
    (copy / "compare.json").write_text(json.dumps(record))
    messages = []
    run_compare(dataclasses.replace(config, output=str(copy)), progress=messages.append)
    assert messages and all("finished before, skipped" in line for line in messages)
    other = tmp_path / "other.csv"
    shutil.copy(config.benchmark_table, other)
    (copy / "compare.json").write_text(json.dumps(record))
    with pytest.raises(compare.InputError, match="other settings"):
        run_compare(dataclasses.replace(config, output=str(copy), benchmark_table=str(other)),
                            progress=lambda line: None)


def test_report_only_covers_the_finished_runs_and_runs_nothing(comparison, tmp_path, monkeypatch, capsys):
    import shutil

    config, result, _ = comparison
    copy = tmp_path / "copy"
    shutil.copytree(config.output, copy)
    (copy / "runs" / "sf-s1" / "architecture.json").unlink()  # as if its GPU time had run out
    for name in ("results.csv", "summary.csv", "report.html"):
        (copy / name).unlink()
    monkeypatch.setattr(compare, "run_oneshot_method", lambda *args: pytest.fail("report-only ran a search"))
    monkeypatch.setattr(compare, "run_multi_trial_method", lambda *args: pytest.fail("report-only ran a search"))
    assert main(["compare", "--methods", ",".join(METHODS), "--seeds", "0,1", "--benchmark-table",
                 config.benchmark_table, "--output", str(copy), "--report-only", "--no-progress"]) == 0
    assert "not finished, left out: sf seed 1" in capsys.readouterr().err
    results = pd.read_csv(copy / "results.csv")
    assert set(zip(results["method"], results["seed"])) == {("sf", 0), ("nni-darts", 0), ("nni-darts", 1)}
    summary = pd.read_csv(copy / "summary.csv").set_index("method")
    assert summary.loc["sf", "runs"] == 1 and summary.loc["nni-darts", "runs"] == 2
    assert (copy / "report.html").is_file()
    with pytest.raises(compare.InputError, match="no run of sf with seeds 1 has finished"):
        run_compare(dataclasses.replace(config, output=str(copy), methods=("sf",), seeds=(1,),
                                                report_only=True), progress=lambda line: None)


def test_nni_random_scores_nni_random_export(tmp_path, table_csv, table):
    """nni-random's mode is NNI's export, a random architecture: the score follows that architecture."""
    torch.set_num_threads(1)
    config = compare.CompareConfig(methods=("nni-random",), seeds=(3,), benchmark_table=str(table_csv),
                                   output=str(tmp_path / "out"), **{**TINY, "epochs": 2})
    results = run_compare(config, progress=lambda line: None)["results"]
    assert results["val_acc"].isna().all()  # no architecture step, no validation pass
    assert [table.accuracy(json.loads(mode)) for mode in results["mode"]] == list(results["benchmark_acc"])


def _cli_error(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--no-progress", *args])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in error and error.count("\n") == 1, error
    return error


def test_bad_input_is_a_one_line_error_before_any_run(tmp_path, table_csv, capsys):
    out = ["--output", str(tmp_path / "out")]
    assert "unknown method 'bogus'" in _cli_error(["--methods", "sf,bogus", *out], capsys)
    assert "benchmark-table: no file" in _cli_error(["--benchmark-table", str(tmp_path / "missing.csv"), *out], capsys)
    assert "scores the nb201 space, not 'darts'" in _cli_error(
        ["--space", "darts", "--benchmark-table", str(table_csv), *out], capsys)
    assert "budget: expected a positive number" in _cli_error(
        ["--methods", "nni-evolution", "--benchmark-table", str(table_csv), "--budget", "0", *out], capsys)
    assert "budget: at most the 15625" in _cli_error(
        ["--methods", "nni-tpe", "--benchmark-table", str(table_csv), "--budget", "20000", *out], capsys)
    assert "pass --benchmark-table" in _cli_error(["--methods", "nni-evolution", *out], capsys)
    assert "seeds: expected integers" in _cli_error(["--seeds", "0,x", *out], capsys)
    assert "arc-learning-rate: expected a positive number" in _cli_error(["--arc-learning-rate", "0", *out], capsys)
    assert "warmup-epochs: expected an integer >= 0" in _cli_error(["--warmup-epochs", "-1", *out], capsys)
    partial = write_table(tmp_path / "partial.csv", ["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
    assert "has 1 architectures" in _cli_error(["--benchmark-table", str(partial), *out], capsys)
    assert not (tmp_path / "out").exists()  # nothing was started


def test_arc_learning_rate_and_warmup_reach_our_runs_and_nnis_start_at_once(tmp_path, table_csv):
    config = compare.CompareConfig(methods=("sf", "nni-random"), seeds=(0,), benchmark_table=str(table_csv),
                                   arc_learning_rate=0.05, warmup_epochs=1, output=str(tmp_path / "out"),
                                   **{**TINY, "epochs": 2})
    result = run_compare(config, progress=lambda line: None)
    saved = json.loads((tmp_path / "out" / "runs" / "sf-s0" / "config.json").read_text())
    assert saved["arc_learning_rate"] == 0.05 and saved["warmup_epochs"] == 1
    saved = json.loads((tmp_path / "out" / "runs" / "nni-random-s0" / "config.json").read_text())
    assert saved["warmup_epochs"] == 0
    assert set(result["results"]["method"]) == {"sf", "nni-random"}


def test_method_epochs_give_a_method_its_own_epochs_and_are_part_of_the_settings(tmp_path, table_csv, capsys):
    out = tmp_path / "out"
    common = ["--methods", "sf,nni-random", "--seeds", "0", "--benchmark-table", str(table_csv), "--dataset", "digits",
              "--epochs", "1", "--width", "4", "--cells", "1", "--device", "cpu", "--no-progress", "--output", str(out)]
    assert main(["compare", *common, "--method-epochs", "nni-random=3"]) == 0
    results = pd.read_csv(out / "results.csv")
    assert results.groupby("method")["epoch"].max().to_dict() == {"nni-random": 2, "sf": 0}  # 0-based
    assert json.loads((out / "compare.json").read_text())["settings"]["method_epochs"] == {"nni-random": 3}
    capsys.readouterr()
    assert "method_epochs {'nni-random': 3} -> {}" in _cli_error(common, capsys)
    # A method that has not run here joins with epochs of its own; the record keeps everyone's.
    joined = [part if part != "sf,nni-random" else "nni-darts" for part in common]
    assert main(["compare", *joined, "--method-epochs", "nni-darts=2"]) == 0
    assert json.loads((out / "compare.json").read_text())["settings"]["method_epochs"] == {"nni-random": 3,
                                                                                           "nni-darts": 2}
    assert pd.read_csv(out / "runs" / "nni-darts-s0" / "history.csv")["epoch"].max() == 1


def test_bad_method_epochs_are_one_line_errors_before_any_run(tmp_path, table_csv, capsys):
    out = ["--methods", "sf,nni-evolution", "--benchmark-table", str(table_csv), "--output", str(tmp_path / "out")]
    assert "method-epochs: expected METHOD=EPOCHS" in _cli_error([*out, "--method-epochs", "sf=two"], capsys)
    assert "method-epochs: 'nni-darts' is not a one-shot method of this comparison; expected some of sf" in \
        _cli_error([*out, "--method-epochs", "nni-darts=2"], capsys)
    assert "method-epochs: 'nni-evolution' is not a one-shot method" in _cli_error(
        [*out, "--method-epochs", "nni-evolution=2"], capsys)
    assert "method-epochs: sf needs a positive integer of epochs, got 0" in _cli_error(
        [*out, "--method-epochs", "sf=0"], capsys)
    assert not (tmp_path / "out").exists()


def test_nni_enas_is_refused_with_the_reason(tmp_path, capsys):
    assert "nni-enas: NNI 3.0's ENAS does not run with pytorch-lightning" in _cli_error(
        ["--methods", "nni-enas", "--output", str(tmp_path / "out")], capsys)


def test_nni_rl_needs_tianshou_or_runs_by_look_up(tmp_path, table_csv, table, capsys):
    from nas_estimators import _nni

    args = ["--methods", "nni-rl", "--seeds", "0", "--benchmark-table", str(table_csv), "--budget", "6",
            "--output", str(tmp_path / "out")]
    if not _nni.has_tianshou():
        assert "nni-rl: NNI's PolicyBasedRL needs tianshou" in _cli_error(args, capsys)
        return
    assert main(["compare", "--no-progress", *args]) == 0
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert len(trials) == 6
    assert [table.accuracy(json.loads(a)) for a in trials["architecture"]] == list(trials["benchmark_acc"])


def test_an_interrupted_nni_run_continues_from_its_checkpoint(tmp_path, table_csv):
    """A run killed after its first epoch left a checkpoint and no architecture.json: it is continued."""
    from nas_estimators.search import SearchConfig, prepare, run_search

    torch.set_num_threads(1)
    output = tmp_path / "out"
    directory = CompareFolder(output).run("nni-darts", 0).path
    first = SearchConfig(estimator="nni-darts", output=str(directory), seed=0,
                         **{k: v for k, v in TINY.items()})
    run_search(first, prepare(first))
    (directory / "architecture.json").unlink()
    epoch0 = pd.read_csv(directory / "history.csv")
    config = compare.CompareConfig(methods=("nni-darts",), seeds=(0,), benchmark_table=str(table_csv),
                                   output=str(output), **{**TINY, "epochs": 2})
    messages = []
    results = run_compare(config, progress=messages.append)["results"]
    assert list(results["epoch"]) == [0, 1]
    assert results["train_loss"].iloc[0] == pytest.approx(epoch0["train_loss"].iloc[0])
    assert (directory / "architecture.json").is_file()


def test_a_comparison_recorded_before_the_new_settings_continues_at_their_defaults(comparison, tmp_path):
    import shutil

    config, _, _ = comparison
    copy = tmp_path / "old"
    shutil.copytree(config.output, copy)
    record = json.loads((copy / "compare.json").read_text())
    for key in ("uniform_weight_paths", "table_learning_rate", "table_noise", "weight_learning_rate", "batch_norm"):
        del record["settings"][key]  # what earlier versions wrote
    (copy / "compare.json").write_text(json.dumps(record))
    # a missing setting ran at the default of its time: weight paths from the distribution (0.0), which
    # is no longer the default, so continuing it asks for that value and refuses today's default
    messages = []
    run_compare(dataclasses.replace(config, output=str(copy), uniform_weight_paths=0.0),
                        progress=messages.append)
    assert messages and all("finished before, skipped" in line for line in messages)
    (copy / "compare.json").write_text(json.dumps(record))
    with pytest.raises(compare.InputError, match="uniform_weight_paths 0.0 -> 1.0"):
        run_compare(dataclasses.replace(config, output=str(copy)), progress=lambda line: None)


def test_uniform_paths_weight_rate_and_panel_reach_our_runs_only(tmp_path, table_csv):
    config = compare.CompareConfig(methods=("sf", "nni-random"), seeds=(0,), benchmark_table=str(table_csv),
                                   uniform_weight_paths=1.0, weight_learning_rate=0.05, panel_images=64,
                                   output=str(tmp_path / "out"), **TINY)
    result = run_compare(config, progress=lambda line: None)
    ours = json.loads((tmp_path / "out" / "runs" / "sf-s0" / "config.json").read_text())
    nnis = json.loads((tmp_path / "out" / "runs" / "nni-random-s0" / "config.json").read_text())
    assert ours["uniform_weight_paths"] == 1.0 and nnis["uniform_weight_paths"] == 0.0
    assert ours["weight_learning_rate"] == nnis["weight_learning_rate"] == 0.05
    results = result["results"].set_index("method")
    assert -1 <= results.loc["sf", "panel_tau"] <= 1 and pd.isna(results.loc["nni-random", "panel_tau"])
    report = (tmp_path / "out" / "report.html").read_text()
    assert 'id="panel-tau"' in report and 'id="panel-best"' in report


def test_estimator_hyperparameters_reach_each_estimator_and_are_part_of_the_settings(tmp_path, table_csv, capsys):
    out = str(tmp_path / "out")
    assert main(["compare", "--no-progress", "--methods", "sf,ram,sf-table", "--seeds", "0", "--space", "nb201",
                 "--epochs", "1", "--width", "4", "--cells", "1", "--device", "cpu", "--benchmark-table",
                 str(table_csv), "--budget", "6", "--samples-per-step", "2", "--labels-per-step", "2",
                 "--output", out]) == 0
    sf = json.loads((tmp_path / "out" / "runs" / "sf-s0" / "config.json").read_text())
    ram = json.loads((tmp_path / "out" / "runs" / "ram-s0" / "config.json").read_text())
    assert sf["samples_per_step"] == 2 and ram["labels_per_step"] == 2
    # SF scores two architectures a step; RAM the shared sample plus 2 labels x 4 other values
    for method, evaluations in (("sf", 2), ("ram", 9)):
        history = pd.read_csv(tmp_path / "out" / "runs" / f"{method}-s0" / "history.csv")
        assert (history["forward_evaluations"] == evaluations).all(), method
    settings = json.loads((tmp_path / "out" / "compare.json").read_text())["settings"]
    assert settings["estimator_options"] == {"labels_per_step": 2, "samples_per_step": 2}
    capsys.readouterr()
    assert "samples_per_step" in _cli_error(
        ["--methods", "sf,ram,sf-table", "--seeds", "0", "--space", "nb201", "--epochs", "1", "--width", "4",
         "--cells", "1", "--device", "cpu", "--benchmark-table", str(table_csv), "--budget", "6",
         "--samples-per-step", "3", "--labels-per-step", "2", "--output", out], capsys)


def test_a_bad_estimator_hyperparameter_is_refused_before_any_run(tmp_path, capsys):
    assert "samples: expected an integer >= 1" in _cli_error(["--methods", "sf", "--samples-per-step", "0", "--output", str(tmp_path / "out")],
                               capsys)
    assert not (tmp_path / "out").exists()


def test_an_unknown_estimator_option_is_refused_with_the_known_ones(tmp_path):
    config = compare.CompareConfig(methods=("sf",), seeds=(0,), estimator_options={"sample_per_step": 4},
                                   output=str(tmp_path / "out"), **TINY)
    with pytest.raises(compare.InputError, match="estimator options: unknown sample_per_step; expected some of "
                                                 ".*samples_per_step"):
        run_compare(config, progress=lambda line: None)
    assert not (tmp_path / "out").exists()


def test_a_signal_stops_compare_with_one_line_and_the_signal_status(tmp_path, capsys, monkeypatch):
    import signal

    from nas_estimators.recorder import SearchInterrupted

    def interrupted(config, progress=print, report=None):  # what a SIGTERM in the running search raises
        raise SearchInterrupted("stopped by SIGTERM in epoch 3; checkpoint saved to X/checkpoint.ckpt, continue "
                                "with --resume", signal.SIGTERM)

    monkeypatch.setattr(compare, "run_compare", interrupted)
    code = main(["compare", "--methods", "sf-table", "--seeds", "0", "--benchmark-table", str(tmp_path / "t.csv"),
                 "--output", str(tmp_path / "o")])
    error = capsys.readouterr().err.strip()
    assert code == 128 + signal.SIGTERM
    assert error.startswith("nas-estimators compare: stopped by SIGTERM") and "rerun the same command" in error
    assert len(error.splitlines()) == 1 and "Traceback" not in error


def test_rescoring_reaches_our_runs_only(tmp_path):
    config = compare.CompareConfig(methods=("sf", "nni-darts"), seeds=(0,), rescore_top_k=3, rescore_images=512,
                                   output=str(tmp_path / "out"), **TINY)
    ours = compare.oneshot_search_config(config, "sf", 0, tmp_path / "sf")
    nnis = compare.oneshot_search_config(config, "nni-darts", 0, tmp_path / "darts")
    assert (ours.rescore_top_k, ours.rescore_images) == (3, 512) and nnis.rescore_top_k == 0
    assert compare.settings(config)["rescore_top_k"] == 3
