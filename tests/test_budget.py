"""Cost budgets: the cost model against torch's own counts, and a budget that binds."""

import itertools
import random

import pytest
import torch

from nas_estimators import Ram, ScoreFunction, recipe
from nas_estimators.budget import CostBudget
from nas_estimators.nasbench201 import LABELS, NNI_OPS, CellCosts
from nas_estimators.pooling import native_pooling
from nas_estimators.spaces import build_space
from nas_estimators.table_search import TableSearch


@pytest.fixture(scope="module")
def tiny_costs():
    return {cost: CellCosts(cost, width=4, cells=1, image_size=8) for cost in ("params", "flops")}


def test_cell_costs_equal_torchs_counts_on_frozen_networks(tiny_costs):
    from torch.utils.flop_counter import FlopCounterMode

    rng = random.Random(0)
    cells = [{label: rng.choice(NNI_OPS) for label in LABELS} for _ in range(6)]
    cells.append({label: "conv_3x3" for label in LABELS})
    for cell in cells:
        network = build_space("nb201", 4, 1).freeze(cell).eval()
        counter = FlopCounterMode(display=False)
        # FLOPs are those of NNI's network with its own pooling (FlopCounterMode counts no pooling), not of the
        # faster stand-in build_space puts in (a convolution, which it would count)
        with torch.no_grad(), native_pooling(), counter:
            network(torch.zeros(1, 3, 8, 8))
        assert tiny_costs["flops"](cell) == pytest.approx(counter.get_total_flops() / 1e6, rel=1e-9)
        assert tiny_costs["params"](cell) == pytest.approx(sum(p.numel() for p in network.parameters()) / 1e6,
                                                           rel=1e-9)
    low, high = tiny_costs["flops"].bounds()
    assert low == pytest.approx(tiny_costs["flops"]({label: "none" for label in LABELS}))
    assert high == pytest.approx(tiny_costs["flops"]({label: "conv_3x3" for label in LABELS}))


def test_the_multiplier_rises_while_over_budget_and_rests_at_zero_when_it_does_not_bind():
    budget = CostBudget(lambda arch: float(arch["size"]), target=2.0, rate=0.5)
    loss = budget.wrap(lambda arch: 1.0)
    assert loss({"size": 4}) == 1.0 and budget.end_step() == pytest.approx(0.5)  # 0.5 * (4/2 - 1)
    loss = budget.wrap(lambda arch: 1.0)
    assert loss({"size": 4}) == pytest.approx(1.0 + 0.5 * 1.0)
    assert loss({"size": 1}) == pytest.approx(1.0 + 0.5 * -0.5)  # a RAM-style extra evaluation: not averaged
    assert budget.end_step() == pytest.approx(1.0)
    for _ in range(5):
        budget.wrap(lambda arch: 1.0)({"size": 1})
        budget.end_step()
    assert budget.multiplier == 0.0  # under budget: the constraint stops costing anything
    assert [row["multiplier"] for row in budget.history][:2] == pytest.approx([0.5, 1.0])


@pytest.mark.parametrize("estimator", [ScoreFunction, Ram])
def test_a_binding_budget_ends_within_it_on_the_best_cell_it_allows(estimator):
    # Two labels of four sizes; accuracy grows with size, the budget allows a total size of 3.
    choices = {"a": [0, 1, 2, 3], "b": [0, 1, 2, 3]}
    accuracy = {(a, b): 50 + 10 * a + 9 * b for a, b in itertools.product(range(4), repeat=2)}

    def run(budget):
        torch.manual_seed(0)
        search = TableSearch(estimator(), choices, lambda arch: accuracy[arch["a"], arch["b"]], learning_rate=0.2,
                             budget=budget)
        return search.run(budget=1500, seed=0)

    free = run(None)
    assert free["mode_acc"].iloc[-1] == 50 + 30 + 27  # unconstrained: the largest cell
    budget = CostBudget(lambda arch: float(arch["a"] + arch["b"]), target=3.0)
    bound = run(budget)
    assert max(row["multiplier"] for row in budget.history) > 0.1  # it bound
    final = {(a, b) for (a, b), acc in accuracy.items() if acc == bound["mode_acc"].iloc[-1]}
    assert {a + b for a, b in final} == {3}  # within the budget, and all of it used (bigger is better here)
    recent = [row["mean_cost"] for row in budget.history[-100:]]
    assert sum(recent) / len(recent) <= 3.0 * 1.1  # the sampled cells keep to the budget on average
    assert bound["best_so_far"].iloc[-1] == max(acc for (a, b), acc in accuracy.items() if a + b <= 3)
    assert (bound["cost"] >= 0).all() and bound["multiplier"].notna().all()


@pytest.mark.parametrize("target, rate, message", [(0, 0.5, "cost-target: expected a positive number"),
                                                   (float("nan"), 0.5, "cost-target"),
                                                   (1.0, -1, "cost rate: expected a positive number")])
def test_bad_budgets_are_refused(target, rate, message):
    with pytest.raises(ValueError, match=message):
        CostBudget(lambda arch: 1.0, target=target, rate=rate)


def test_a_checkpoint_of_another_budget_is_refused_and_the_same_resumes():
    budget = CostBudget(lambda arch: 3.0, target=2.0, name="flops")
    budget.wrap(lambda arch: 0.0)({"x": 1})
    budget.end_step()
    copy = CostBudget(lambda arch: 3.0, target=2.0, name="flops")
    copy.load_state_dict(budget.state_dict())
    assert copy.multiplier == budget.multiplier > 0 and copy.history == budget.history
    with pytest.raises(ValueError, match="is not this search's"):
        CostBudget(lambda arch: 3.0, target=1.0, name="flops").load_state_dict(budget.state_dict())


def test_a_search_under_a_flops_budget_exports_a_cell_within_it_and_records_the_multiplier(tmp_path, capsys):
    import json

    import pandas as pd

    from nas_estimators.cli import main

    output = tmp_path / "out"
    assert main(["search", "--space", "nb201", "--epochs", "4", "--warmup-epochs", "1", "--arc-learning-rate", "0.3",
                 "--no-progress", "--uniform-draws", "0", "--cost", "flops", "--cost-target", "0.4",
                 # the supernet term alone: the multiplier is then the only pull toward cheap cells
                 "--objective", "supernet=1", "--output", str(output)]) == 0
    record = json.loads((output / "cost.json").read_text())
    architecture = json.loads((output / "architecture.json").read_text())
    # The digits network: NAS-Bench-201 at width 8, one cell a stage, 8x8 images.
    assert record["architecture_cost"] == pytest.approx(CellCosts("flops", 8, 1, 8)(architecture))
    assert record["within"] and record["architecture_cost"] <= 0.4 and max(record["multiplier"]) > 0
    history = pd.read_csv(output / "history.csv")
    assert 0 < history["cost/multiplier"].iloc[-1] <= max(record["multiplier"])  # the epoch's mean of the steps
    assert (history["seconds/cost"] > 0).all()
    assert json.loads(history["mode"].iloc[-1]) == architecture
    capsys.readouterr()
    for argv, message in ((["--cost-target", "0.1"], "no architecture of this space has flops <= 0.1"),
                          ([], "--cost and --cost-target go together"),
                          (["--cost-target", "-1"], "cost-target: expected a positive number")):
        with pytest.raises(SystemExit):
            main(["search", "--space", "nb201", "--cost", "flops", *argv, "--output", str(tmp_path / "bad")])
        error = capsys.readouterr().err
        assert message in error and "Traceback" not in error and error.count("\n") == 1
    assert not (tmp_path / "bad").exists()


def test_the_nni_strategy_under_a_parameter_budget_exports_cells_within_it(tmp_path):
    import warnings

    import nas_estimators

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nni.nas.experiment import NasExperiment
        from nni.nas.hub.pytorch import NasBench201
    from test_strategies import in_folder, tiny_evaluator

    costs = CellCosts("params", width=4, cells=1, image_size=8)
    low, high = costs.bounds()
    target = low + 0.2 * (high - low)
    torch.manual_seed(0)
    strategy = nas_estimators.SF(cost="params", cost_target=target, arc_learning_rate=0.3, warmup_epochs=1)
    assert strategy.objective.weights() == recipe.BUDGET_OBJECTIVE  # the budget's own recipe, NASWOT included
    space = NasBench201(stem_out_channels=4, num_modules_per_stack=1)
    experiment = in_folder(NasExperiment(space, tiny_evaluator(epochs=4), strategy), tmp_path)
    experiment.run()
    assert max(row["multiplier"] for row in strategy.budget.history) > 0
    top = experiment.export_top_models(top_k=3, formatter="dict")
    assert len(top) == 3 and all(costs(architecture) <= target for architecture in top)
    assert top[0] == strategy.search_module.export()
    with pytest.raises(ValueError, match="give both"):
        nas_estimators.SF(cost="params")
