"""The frozen-supernet search: an estimator on a finished search's fixed weights."""

import hashlib
import itertools
import json
import math

import pandas as pd
import pytest
import torch

from helpers import one_line_error, tiny_search
from nas_estimators import ArchitectureDistribution, Ram, Relax, ScoreFunction
from nas_estimators.cli import main
from nas_estimators.frozen import frozen_search, load_supernet, search_frozen


class _KnownObjective:
    """A stand-in supernet whose loss is a fixed function of the architecture plus batch noise."""

    def __init__(self, steps: int, noise: float = 0.3) -> None:
        generator = torch.Generator().manual_seed(7)
        self.batches = [float(value) for value in torch.randn(steps, generator=generator)]  # a batch's noise
        self.noise, self.table, self.calls = noise, None, 0
        self.cost = {"a": [0.6, 0.0, 0.9], "b": [0.5, 0.8, 0.7, 0.1]}  # best: a=1, b=3

    def distribution(self) -> ArchitectureDistribution:
        return ArchitectureDistribution({"a": [0, 1, 2], "b": [0, 1, 2, 3]})

    def loss(self, batch, architecture):
        self.calls += 1
        return torch.tensor(sum(self.cost[label][value] for label, value in architecture.items())
                            + self.noise * batch)


@pytest.mark.parametrize("estimator", [ScoreFunction(), Relax(), Ram()], ids=["sf", "relax", "ram"])
def test_the_loop_settles_on_the_objectives_best(estimator):
    torch.manual_seed(0)
    objective = _KnownObjective(steps=100)
    distribution, rows = search_frozen(objective, estimator, epochs=3, arc_learning_rate=0.1, seed=1)
    assert distribution.mode() == {"a": 1, "b": 3}
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert rows[-1]["entropy"] < rows[0]["entropy"] < math.log(12)
    assert objective.calls >= 300  # every step evaluates at least the sampled architecture


def test_the_loop_is_seeded():
    def run(seed):
        _, rows = search_frozen(_KnownObjective(steps=30), ScoreFunction(), epochs=2, arc_learning_rate=0.1, seed=seed)
        return [(row["entropy"], row["sampled_loss"], row["mode"]) for row in rows]

    assert run(3) == run(3)
    assert run(3) != run(4)


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    return tiny_search(tmp_path_factory.mktemp("frozen") / "search")


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_frozen_search_writes_its_history_and_leaves_the_search_alone(finished_search, capsys):
    checkpoint = finished_search / "checkpoint.ckpt"
    before = _digest(checkpoint), (finished_search / "architecture.json").read_text()
    assert main(["frozen-search", str(finished_search), "--epochs", "2", "--arc-learning-rate", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "frozen sf epoch 2/2" in out and "supernet's preference" in out
    history = pd.read_csv(finished_search / "frozen-sf" / "history.csv")
    assert list(history["epoch"]) == [0, 1]
    assert history["entropy"].iloc[-1] < history["entropy"].iloc[0]  # the logits moved
    architecture = json.loads((finished_search / "frozen-sf" / "architecture.json").read_text())
    assert json.loads(history["mode"].iloc[-1]) == architecture
    assert (_digest(checkpoint), (finished_search / "architecture.json").read_text()) == before


def test_the_frozen_supernet_never_changes_its_weights(finished_search):
    supernet = load_supernet(finished_search)
    weights = {name: value.clone() for name, value in supernet.model.named_parameters()}
    distribution = supernet.distribution()
    batch = next(iter(supernet.batches))
    losses = [float(supernet.loss(batch, distribution.sample())) for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert all(torch.equal(value, weights[name]) for name, value in supernet.model.named_parameters())
    assert not any(value.requires_grad for value in supernet.model.parameters())


def test_another_estimator_writes_beside_and_an_existing_output_is_refused(finished_search, capsys):
    assert main(["frozen-search", str(finished_search), "--estimator", "ram", "--epochs", "1", "--quiet"]) == 0
    written = (finished_search / "frozen-ram" / "history.csv").read_text()
    error = one_line_error(capsys, ["frozen-search", str(finished_search), "--estimator", "ram", "--epochs", "1"])
    assert "already exists" in error
    assert (finished_search / "frozen-ram" / "history.csv").read_text() == written


def test_hyperparameters_default_to_the_searchs_and_options_override_them(finished_search, tmp_path):
    assert main(["frozen-search", str(finished_search), "--epochs", "1", "--quiet", "--output", str(tmp_path / "a")]) == 0
    assert main(["frozen-search", str(finished_search), "--epochs", "1", "--quiet", "--samples-per-step", "3",
                 "--baseline-decay", "0.5", "--output", str(tmp_path / "b")]) == 0
    search = json.loads((finished_search / "config.json").read_text())
    default = json.loads((tmp_path / "a" / "config.json").read_text())["options"]
    given = json.loads((tmp_path / "b" / "config.json").read_text())["options"]
    assert default == {"baseline_decay": search["baseline_decay"], "samples_per_step": search["samples_per_step"]}
    assert given == {"baseline_decay": 0.5, "samples_per_step": 3}


def test_bad_input_gets_one_line(finished_search, tmp_path, capsys):
    assert "no search in" in one_line_error(capsys, ["frozen-search", str(tmp_path / "missing")])
    assert "epochs" in one_line_error(capsys, ["frozen-search", str(finished_search), "--epochs", "0",
                                               "--output", str(tmp_path / "a")])
    assert "arc_learning_rate" in one_line_error(capsys, ["frozen-search", str(finished_search),
                                                          "--arc-learning-rate", "-1", "--output", str(tmp_path / "b")])
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((finished_search / "config.json").read_text())
    assert "checkpoint.ckpt" in one_line_error(capsys, ["frozen-search", str(no_weights)])
    assert "nb201" in one_line_error(capsys, ["frozen-search", str(finished_search), "--benchmark-table",
                                              str(tmp_path / "t.csv"), "--output", str(tmp_path / "c")])
    assert "samples: expected an integer >= 1" in one_line_error(
        capsys, ["frozen-search", str(finished_search), "--samples-per-step", "0", "--output", str(tmp_path / "d")])
    baseline = tmp_path / "nni-search"
    baseline.mkdir()
    config = json.loads((finished_search / "config.json").read_text())
    (baseline / "config.json").write_text(json.dumps({**config, "estimator": "nni-darts"}))
    assert "nni-darts" in one_line_error(capsys, ["frozen-search", str(baseline), "--output", str(tmp_path / "e")])
    assert "unknown term 'zico'" in one_line_error(
        capsys, ["frozen-search", str(finished_search), "--objective", "zico=1", "--output", str(tmp_path / "f")])
    assert "threads" in one_line_error(
        capsys, ["frozen-search", str(finished_search), "--threads", "0", "--output", str(tmp_path / "g")])
    assert not any((tmp_path / name).exists() for name in "abcdefg")
    assert not list(tmp_path.glob("*.partial"))


def test_a_benchmark_table_scores_the_mode_every_epoch(tmp_path, capsys):
    from nas_estimators.nasbench201 import LABELS, NNI_OPS, BenchmarkTable, to_arch_string

    search = tiny_search(tmp_path / "nb201", "--space", "nb201", "--epochs", "1")
    archs = [to_arch_string(dict(zip(LABELS, ops))) for ops in itertools.product(NNI_OPS, repeat=6)]
    table_path = tmp_path / "table.csv"
    pd.DataFrame({"arch": archs, "test_acc": [ops.count("conv_3x3") * 10.0 + 1 for ops in
                                              itertools.product(NNI_OPS, repeat=6)]}).to_csv(table_path, index=False)
    assert main(["frozen-search", str(search), "--epochs", "2", "--benchmark-table", str(table_path)]) == 0
    assert "mode's benchmark accuracy" in capsys.readouterr().out
    history = pd.read_csv(search / "frozen-sf" / "history.csv")
    table = BenchmarkTable.from_csv(table_path)
    assert list(history["benchmark_acc"]) == [table.accuracy(json.loads(mode)) for mode in history["mode"]]
    error = one_line_error(capsys, ["frozen-search", str(search), "--benchmark-table", str(tmp_path / "none.csv"),
                                    "--output", str(tmp_path / "x")])
    assert "none.csv" in error and not (tmp_path / "x").exists()


def test_frozen_search_from_python(finished_search, tmp_path):
    result = frozen_search(finished_search, epochs=1, destination=tmp_path / "f", estimator="relax")
    assert result["output"] == tmp_path / "f" and len(result["history"]) == 1
    settings = json.loads((tmp_path / "f" / "config.json").read_text())
    assert settings["estimator"] == "relax" and settings["arc_learning_rate"] == json.loads(
        (finished_search / "config.json").read_text())["arc_learning_rate"]
    assert set(result["architecture"]) == set(json.loads((finished_search / "architecture.json").read_text()))


def test_frozen_search_with_training_free_terms_records_them(finished_search, tmp_path):
    out = tmp_path / "tf"
    assert main(["frozen-search", str(finished_search), "--epochs", "1", "--quiet", "--output", str(out),
                 "--objective", "supernet=2,synflow=1,params=1"]) == 0
    history = pd.read_csv(out / "history.csv")
    assert history["seconds/synflow"].iloc[-1] > 0 and history["seconds/params"].iloc[-1] > 0
    assert json.loads((out / "config.json").read_text())["objective"] == {"supernet": 2.0, "synflow": 1.0, "params": 1.0}


def test_the_loop_under_a_budget_settles_on_the_best_within_it():
    from nas_estimators.budget import CostBudget

    torch.manual_seed(0)
    objective = _KnownObjective(steps=100)
    # b=3 (the unconstrained best) costs 2, every other b 0 or 1: a budget of 1 rules it out.
    budget = CostBudget(lambda arch: {0: 1.0, 1: 0.0, 2: 1.0, 3: 2.0}[arch["b"]], target=1.0, rate=0.05, name="flops")
    distribution, rows = search_frozen(objective, ScoreFunction(), epochs=3, arc_learning_rate=0.1, seed=1,
                                       budget=budget)
    exported = json.loads(rows[-1]["mode"])
    assert budget.within(exported) and exported["b"] != 3
    assert max(row["multiplier"] for row in budget.history) > 0 and rows[-1]["cost/mode"] <= 1.0
    assert exported == budget.export(distribution)


def test_frozen_search_under_a_parameter_budget_writes_the_cost_record(finished_search, tmp_path, capsys):
    from nas_estimators.search import SearchConfig
    from nas_estimators.budget import CostBudget

    supernet = load_supernet(finished_search)
    probe = CostBudget("params", 1.0)
    probe.bind(supernet.model, supernet.scoring_inputs)
    cheapest = probe.cheapest(supernet.distribution())[1]
    largest = probe.cost(supernet.distribution().to_architecture({label: len(values) - 1 for label, values
                                                                  in supernet.distribution().values.items()}))
    target = (cheapest + largest) / 2
    out = tmp_path / "budget"
    assert main(["frozen-search", str(finished_search), "--epochs", "1", "--quiet", "--cost", "params",
                 "--cost-target", str(target), "--output", str(out)]) == 0
    record = json.loads((out / "cost.json").read_text())
    architecture = json.loads((out / "architecture.json").read_text())
    assert record["target"] == pytest.approx(target) and record["architecture_cost"] == pytest.approx(probe.cost(architecture))
    assert record["within"] == (probe.cost(architecture) <= target) and len(record["multiplier"]) > 0
    assert SearchConfig.saved(finished_search).space  # the search's folder is untouched and still loads
    error = one_line_error(capsys, ["frozen-search", str(finished_search), "--cost", "params", "--output",
                                    str(tmp_path / "x")])
    assert "--cost and --cost-target go together" in error and not (tmp_path / "x").exists()
    error = one_line_error(capsys, ["frozen-search", str(finished_search), "--cost", "params", "--cost-target",
                                    str(cheapest / 2), "--output", str(tmp_path / "y")])
    assert "cost-target: no architecture of this space" in error and not (tmp_path / "y").exists()
