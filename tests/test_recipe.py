"""The search's default recipe: weights-only epochs first (a share of the epochs), uniform weight paths."""

import json
import math

import pandas as pd
import pytest

from nas_estimators import recipe
from nas_estimators.cli import main
from nas_estimators.search import WARMUP_SHARE, SearchConfig, schedule


def test_the_weights_only_epochs_default_to_a_share_of_the_epochs_and_leave_one_to_search():
    assert schedule(SearchConfig()) == (100, int(WARMUP_SHARE * 100))  # digits
    assert schedule(SearchConfig(dataset="cifar10")) == (50, int(WARMUP_SHARE * 50))
    assert schedule(SearchConfig(epochs=24)) == (24, 20)  # the CPU proxy's recipe: 20 weights-only, 4 searching
    assert schedule(SearchConfig(epochs=20)) == (20, 16)
    assert schedule(SearchConfig(epochs=1)) == (1, 0)
    assert schedule(SearchConfig(epochs=20, warmup_epochs=3)) == (20, 3)
    with pytest.raises(ValueError, match="warmup_epochs: expected an integer >= 0"):
        schedule(SearchConfig(warmup_epochs=-1))


def test_a_default_search_trains_weights_first_and_a_resumed_one_keeps_its_warmup(tmp_path):
    output = tmp_path / "out"
    assert main(["search", "--space", "nb201", "--epochs", "3", "--batch-size", "256", "--no-progress",
                 "--output", str(output)]) == 0
    config = json.loads((output / "config.json").read_text())
    assert config["warmup_epochs"] == 2 and config["uniform_weight_paths"] == 1.0
    assert config["freeze_weights"] is True and config["rescore_top_k"] == 5
    assert config["objective"] == {"supernet": 1.0, "synflow": 1.0, "params": 1.0}
    assert config["arc_learning_rate"] == SearchConfig.arc_learning_rate
    entropy = pd.read_csv(output / "history.csv")["entropy"].tolist()
    uniform = 6 * math.log(5)
    assert entropy[0] == pytest.approx(uniform, abs=1e-4) and entropy[2] < uniform - 1e-3
    # Extending the search does not stretch its weights-only phase: the saved value is used.
    assert main(["search", "--resume", "--output", str(output), "--epochs", "5", "--no-progress"]) == 0
    assert json.loads((output / "config.json").read_text())["warmup_epochs"] == 2


def test_a_search_saved_before_the_recipe_options_existed_resumes_as_it_ran(tmp_path):
    from nas_estimators.search import SearchConfig

    record = {"estimator": "sf", "space": "nb201", "epochs": 4}  # what an early config.json held
    (tmp_path / "config.json").write_text(json.dumps(record))
    config = SearchConfig.saved(tmp_path)
    assert (config.warmup_epochs, config.uniform_weight_paths, config.arc_learning_rate) == (0, 0.0, 3e-3)
    assert (config.objective, config.freeze_weights, config.rescore_top_k) == ({"supernet": 1.0}, False, 0)
    assert schedule(config) == (4, 0)


def test_history_rows_of_an_older_checkpoint_take_todays_benchmark_column_name(tmp_path):
    import random

    import torch

    from nas_estimators.checkpoints import SEARCH_KEY
    from nas_estimators.recorder import SearchRecorder

    recorder = SearchRecorder(tmp_path, tmp_path / "checkpoint.ckpt", [], torch.device("cpu"), {})
    state = {"rows": [{"epoch": 0, "benchmark_accuracy": 91.5}], "probability_rows": [],
             "torch_rng": torch.get_rng_state(), "python_rng": random.getstate()}
    recorder.on_load_checkpoint(None, None, {SEARCH_KEY: state})
    assert recorder.rows == [{"epoch": 0, "benchmark_acc": 91.5}]


def test_under_a_budget_the_default_objective_is_the_budget_recipes_and_a_given_one_is_kept():
    assert SearchConfig().objective == recipe.OBJECTIVE
    assert SearchConfig(cost="flops", cost_target=10.0).objective == recipe.BUDGET_OBJECTIVE != recipe.OBJECTIVE
    assert SearchConfig(cost="params", cost_target=1.0).objective == recipe.BUDGET_OBJECTIVE
    assert SearchConfig(cost="latency", cost_target=1.0).objective == recipe.OBJECTIVE  # NASWOT measured lower there
    assert SearchConfig(cost="flops", cost_target=10.0, objective={"supernet": 2.0}).objective == {"supernet": 2.0}
    # NNI's strategies keep the supernet's loss alone, budget or not
    assert SearchConfig(estimator="nni-darts", cost="flops", cost_target=1.0).objective == recipe.NNI_OBJECTIVE
