"""NNI's one-shot strategies in our search loop: what their history columns are made of."""

import json
import math

import pandas as pd
import pytest
import torch

from nas_estimators.cli import main
from nas_estimators.search import SearchConfig, prepare, run_search

from helpers import one_line_error, tiny_search


def run(tmp_path, estimator, epochs=1):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = SearchConfig(estimator=estimator, space="nb201", width=4, cells=1, epochs=epochs, batch_size=64,
                              device="cpu", output=str(tmp_path / estimator), progress=False)
        return run_search(config, prepare(config))
    finally:
        torch.set_num_threads(threads)


def test_gumbel_probabilities_are_the_softmax_of_its_logits_without_noise(tmp_path):
    result = run(tmp_path, "nni-gumbel")
    distribution = result["strategy"].distribution
    module = result["strategy"]._search_module
    layers = [m for m in module.modules() if hasattr(m, "_arch_alpha") and hasattr(m, "names")]
    expected = {}
    for layer in layers:
        expected.setdefault(layer.label, dict(zip(layer.names, torch.softmax(layer._arch_alpha.detach(), -1).tolist())))
    probabilities = distribution.probs_by_value()
    assert probabilities.keys() == expected.keys()
    for label, values in expected.items():
        assert probabilities[label] == pytest.approx(values)
    entropy = -sum(p * math.log(p) for values in expected.values() for p in values.values())
    assert float(distribution.entropy()) == pytest.approx(entropy)
    # the mode is NNI's export: the argmax of each label's logits
    assert distribution.mode() == {label: max(values, key=values.get) for label, values in expected.items()}
    history = pd.read_csv(tmp_path / "nni-gumbel" / "history.csv")
    assert history["entropy"].iloc[-1] == pytest.approx(entropy)


def test_darts_records_its_architecture_step_on_the_validation_batch(tmp_path):
    history = run(tmp_path, "nni-darts", epochs=2)["history"]
    assert list(history["forward_evaluations"]) == [1.0, 1.0]
    assert history["val_acc"].between(0, 1).all() and (history["val_loss"] > 0).all()
    assert (history["skipped_steps"] == 0).all()


def test_search_runs_nni_strategies_from_the_command_line_as_the_readme_offers(tmp_path):
    output = tiny_search(tmp_path / "darts", "--estimator", "nni-gumbel", "--space", "nb201")
    config = json.loads((output / "config.json").read_text())
    assert config["estimator"] == "nni-gumbel" and config["warmup_epochs"] == 0  # as NNI runs it
    assert len(pd.read_csv(output / "history.csv")) == 2 and (output / "architecture.json").is_file()


def test_search_refuses_what_nni_strategies_do_not_support_in_one_line(capsys, tmp_path):
    error = one_line_error(capsys, ["search", "--estimator", "nni-darts", "--objective", "supernet=1,params=1",
                                    "--output", str(tmp_path / "x")])
    assert "objective" in error and "nni-darts" in error
    assert not (tmp_path / "x").exists()
    # a multi-trial method is compare's, not a search: argparse refuses it and names the choices
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "--estimator", "nni-evolution"])
    assert exit_info.value.code == 2 and "invalid choice: 'nni-evolution'" in capsys.readouterr().err
