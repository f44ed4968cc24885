"""The top-k architectures as trials of an NNI experiment, found on NNI's own web UI in headless Chromium."""

from __future__ import annotations

import json

import pytest

from helpers import needs_browser
from nas_estimators.cli import main
from nas_estimators.architectures import load_search
from nas_estimators.integrations.nni_webui import (
    MUTATION_SUMMARY, TopKTuner, capture_webui, free_port, launch, wait_for_trials,
)


def test_tuner_proposes_the_architectures_in_rank_order_then_stops():
    import nni

    tuner = TopKTuner([{"a": 1}, {"a": 2}], [0.6, 0.3])
    tuner.update_search_space({})
    first, second = tuner.generate_parameters(0), tuner.generate_parameters(1)
    assert first == {MUTATION_SUMMARY: {"a": 1}, "rank": 1, "search_probability": 0.6}
    assert second[MUTATION_SUMMARY] == {"a": 2} and second["rank"] == 2
    with pytest.raises(nni.NoMoreTrialError):
        tuner.generate_parameters(2)


def test_webui_command_bad_input_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["webui", str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "no such directory" in error


@needs_browser
def test_top_k_architectures_appear_in_nni_web_ui_with_their_metrics(tmp_path):
    run = tmp_path / "run"
    assert main(["search", "--space", "nb201", "--width", "4", "--cells", "1", "--epochs", "1", "--batch-size",
                 "256", "--top-k", "2", "--rescore-top-k", "0",  # the export is then rank 1: two trials
                 "--no-progress", "--output", str(run)]) == 0
    search = load_search(run)
    top = json.loads((run / "top_k.json").read_text())
    assert search.architectures == [row["architecture"] for row in top]
    port = free_port()
    experiment = launch(search, port=port, trial_epochs=1, working_directory=tmp_path / "nni", batch_size=256)
    try:
        trials = wait_for_trials(experiment, 2, timeout=420)
        assert [trial.status for trial in trials] == ["SUCCEEDED", "SUCCEEDED"]
        by_rank = {}
        for trial in trials:
            parameters = trial.hyperParameters[0].parameters
            final = trial.finalMetricData[0].data
            final = json.loads(final) if isinstance(final, str) else final
            assert parameters[MUTATION_SUMMARY] == top[parameters["rank"] - 1]["architecture"]
            assert 0 <= final["default"] <= 1 and final["rank"] == parameters["rank"]
            assert final["search_probability"] == pytest.approx(top[parameters["rank"] - 1]["probability"])
            by_rank[parameters["rank"]] = (trial.trialJobId, final)

        shown = capture_webui(port, screenshot=tmp_path / "webui.png")
        assert shown["errors"] == []  # failed font downloads (no network) are not script errors
        text = shown["text"]
        assert (tmp_path / "webui.png").read_bytes()[:4] == b"\x89PNG"
        for rank, (trial_id, final) in by_rank.items():
            assert trial_id in text
            shown_metric = f"{final['default']:.6f}".rstrip("0").rstrip(".")  # NNI's formatAccuracy
            assert f"{shown_metric} (FINAL)" in text  # the default metric column
            rows = [line for line in text.splitlines() if line.startswith("cell/")]
            for label, operation in top[rank - 1]["architecture"].items():
                assert f'{label}:"{operation}"' in rows
        assert text.count('cell/0_1:"') == 2  # both architectures are shown
    finally:
        experiment.stop()
