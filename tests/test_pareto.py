"""The Pareto sweep: fronts and hypervolumes by hand, and the sweep on a fake full table."""

import itertools
import json

import pandas as pd
import pytest

from nas_estimators.cli import main
from nas_estimators.nasbench201 import LABELS, NNI_OPS, BenchmarkTable, to_arch_string
from nas_estimators.nasbench201 import CellCosts
from nas_estimators.pareto import EVOLUTION_PENALTY, evolution_sweep, hypervolume, pareto_front, run_pareto


def test_the_front_keeps_exactly_the_non_dominated_points():
    points = [(1, 50), (1, 60), (2, 55), (2, 70), (3, 65), (4, 90), (5, 90)]
    assert pareto_front(points) == [(1, 60), (2, 70), (4, 90)]
    assert hypervolume([(1, 60), (2, 70), (4, 90)], reference=(5, 50)) == 4 * 10 + 3 * 10 + 1 * 20
    assert hypervolume([(6, 95)], reference=(5, 50)) == 0  # dearer than the reference: dominates nothing
    assert hypervolume([(1, 60), (2, 70), (4, 90)], (5, 50)) > hypervolume([(1, 60), (4, 90)], (5, 50))


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    archs = [to_arch_string(dict(zip(LABELS, ops))) for ops in itertools.product(NNI_OPS, repeat=6)]
    # accuracy grows with the convolutions a cell holds, plus a deterministic spread
    accuracy = [50 + 5 * a.count("conv_3x3") + 3 * a.count("conv_1x1") + (i * 7919 % 100) / 50
                for i, a in enumerate(archs)]
    path = tmp_path_factory.mktemp("table") / "table.csv"
    pd.DataFrame({"arch": archs, "test_acc": accuracy}).to_csv(path, index=False)
    return BenchmarkTable.from_csv(path)


def test_each_run_finds_a_non_dominated_front_of_cells_it_queried(table):
    result = run_pareto(table, "params", ["ram", "optuna-nsga2"], [0], [48], targets=3, progress=lambda line: None)
    assert set(result["results"]["method"]) == {"ram", "optuna-nsga2"}
    assert result["results"]["hypervolume_ratio"].between(0, 1 + 1e-9).all()
    for method, front in result["fronts"].groupby("method"):
        points = list(zip(front["cost"], front["benchmark_acc"]))
        assert pareto_front(points) == sorted(points)  # non-dominated, cheapest first
        if method != "table":
            queried = result["queries"][result["queries"]["method"] == method]
            assert set(points) <= set(zip(queried["cost"], queried["benchmark_acc"]))
            assert len(queried) <= 48
    table_front = result["fronts"][result["fronts"]["method"] == "table"]
    assert table_front["benchmark_acc"].max() == max(table.accuracy(a) for a in table)
    summary = result["summary"].set_index("method")
    assert summary.loc["ram", "runs"] == 1 and summary.loc["ram", "hypervolume_ratio_mean"] > 0


def test_nni_evolution_sweeps_each_target_with_the_penalty_and_queries_its_share(table, monkeypatch):
    from nas_estimators import _nni

    costs = CellCosts("params")
    low, high = costs.bounds()
    targets = [low + (high - low) / 3, low + 2 * (high - low) / 3]
    frame = evolution_sweep(table, costs, targets, queries=60, seed=0)  # NNI's own evolution, for real
    assert len(frame) == 60 and (frame.groupby("target").size() == 30).all()
    assert list(frame["target"].unique()) == sorted(targets, reverse=True)
    # what the strategy is told for a cell: its accuracy less the penalty on its relative excess cost
    told = []
    cheap = {label: "none" for label in LABELS}
    dear = {label: "conv_3x3" for label in LABELS}

    def fake_run(strategy, space, score, budget, **counting):
        told.extend(score(dict(cell)) for cell in (cheap, dear))

    monkeypatch.setattr(_nni, "run_multi_trial", fake_run)
    evolution_sweep(table, costs, targets[:1], queries=2, seed=0)
    assert told[0] == table.accuracy(cheap)  # within the target: no penalty
    excess = costs(dear) / targets[0] - 1
    assert excess > 0 and told[1] == pytest.approx(table.accuracy(dear) - EVOLUTION_PENALTY * excess)


def test_bad_input_is_one_line_and_a_finished_sweep_is_kept(tmp_path, table, capsys):
    def fails(*argv):
        with pytest.raises(SystemExit) as excinfo:
            main(["pareto", *argv])
        error = capsys.readouterr().err
        assert excinfo.value.code == 2 and "Traceback" not in error and error.count("\n") == 1, error
        return error

    out = str(tmp_path / "out")
    assert "benchmark-table: no file" in fails("--benchmark-table", str(tmp_path / "none.csv"), "--output", out)
    csv = tmp_path / "t.csv"
    pd.DataFrame({"arch": list(table)[:5], "test_acc": [1, 2, 3, 4, 5]}).to_csv(csv, index=False)
    assert "has 5 architectures; the nb201 space has 15625" in fails("--benchmark-table", str(csv), "--output", out)
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "summary.csv").write_text("kept\n")
    assert "holds a finished sweep" in fails("--benchmark-table", str(csv), "--output", str(tmp_path / "done"))
    assert (tmp_path / "done" / "summary.csv").read_text() == "kept\n"
    assert "seeds: expected comma-separated integers" in fails("--benchmark-table", str(csv), "--seeds", "a",
                                                               "--output", out)
    full = tmp_path / "full.csv"
    pd.DataFrame({"arch": list(table), "test_acc": [table.accuracy(a) for a in table]}).to_csv(full, index=False)
    assert "table_learning_rate" in fails("--benchmark-table", str(full), "--table-learning-rate", "0", "--output", out)
    assert "baseline_decay" in fails("--benchmark-table", str(full), "--methods", "sf", "--baseline-decay", "2",
                                     "--output", out)
    assert "target-spacing" in fails("--benchmark-table", str(full), "--target-spacing", "log", "--output", out)
    # latency is measured on whole networks: the table's costs are those that add over the edges
    assert "argument --cost: invalid choice: 'latency'" in fails("--benchmark-table", str(full), "--cost", "latency",
                                                                 "--output", out)
    assert "argument --target-patience: expected an integer >= 1 or 'never'" in fails(
        "--benchmark-table", str(full), "--target-patience", "0", "--output", out)
    assert "argument --count: invalid choice: 'unique'" in fails("--benchmark-table", str(full), "--count", "unique",
                                                                   "--output", out)
    assert not (tmp_path / "out").exists()


def test_geometric_targets_keep_equal_ratios_and_both_spacings_sweep_the_same_range():
    from nas_estimators.pareto import default_targets

    costs = CellCosts("flops")
    low, high = costs.bounds()
    even, geometric = default_targets(costs, 7), default_targets(costs, 7, "geometric")
    assert low < geometric[0] < even[0] and geometric[-1] < high  # denser among cheap networks
    ratios = [b / a for a, b in zip([low, *geometric], [*geometric, high])]
    assert max(ratios) == pytest.approx(min(ratios))
    steps = [b - a for a, b in zip([low, *even], [*even, high])]
    assert max(steps) == pytest.approx(min(steps))
    with pytest.raises(ValueError, match="target_spacing: expected one of even, geometric"):
        default_targets(costs, 3, "log")


def test_the_command_writes_its_tables_and_a_page_that_opens_offline(tmp_path, table, capsys):
    full = tmp_path / "full.csv"
    pd.DataFrame({"arch": list(table), "test_acc": [table.accuracy(a) for a in table]}).to_csv(full, index=False)
    out = tmp_path / "sweep"
    assert main(["pareto", "--benchmark-table", str(full), "--methods", "ram,optuna-nsga2", "--seeds", "0",
                 "--queries", "32", "--targets", "2", "--output", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["method"]) == {"ram", "optuna-nsga2"} and summary["hypervolume_ratio_mean"].between(0, 1).all()
    fronts = pd.read_csv(out / "pareto.csv")  # accuracy against cost: each run's front and the table's
    assert set(fronts["method"]) == {"ram", "optuna-nsga2", "table"} and {"cost", "benchmark_acc"} <= set(fronts)
    assert sorted(p.name for p in out.iterdir()) == ["pareto.csv", "pareto.html", "queries.csv", "results.csv",
                                                      "summary.csv"]
    page = (out / "pareto.html").read_text()
    assert 'src="https://cdn.plot.ly' not in page and "plotly.js v" in page  # the library is in the page itself
    assert "ram seed 0" in page and "the table's front" in page


def test_unknown_methods_are_refused(table):
    with pytest.raises(ValueError, match="methods: expected some of sf, relax, ram, nni-evolution, optuna-nsga2, optuna-tpe"):
        run_pareto(table, "flops", ["darts"], [0], [10])


def test_a_sweep_steps_by_its_share_of_queries_and_takes_the_estimators_options(table, monkeypatch):
    from nas_estimators import pareto, table_search

    costs = CellCosts("params")
    targets = pareto.default_targets(costs, 4)
    seen = []
    real = table_search.TableSearch.__init__

    def spy(self, estimator, choices, accuracy, learning_rate=0.1, noise=0.0, budget=None):
        seen.append((type(estimator).__name__, learning_rate, getattr(estimator, "baseline_decay", None)))
        real(self, estimator, choices, accuracy, learning_rate, noise, budget)

    monkeypatch.setattr(table_search.TableSearch, "__init__", spy)
    pareto.sweep("sf", table, costs, targets, queries=48, seed=0, options={"baseline_decay": 0.5, "surrogate_lr": 1},
                 patience=None)
    pareto.sweep("relax", table, costs, targets, queries=48, seed=0, patience=None)
    pareto.sweep("ram", table, costs, targets, queries=400, seed=0, learning_rate=0.05, patience=None)
    assert seen == [("ScoreFunction", pytest.approx(0.3), 0.5)] * 4 + [("Relax", 0.1, 0.9)] * 4 + \
        [("Ram", 0.05, None)] * 4


def test_bad_estimator_options_are_refused_before_any_query(table):
    with pytest.raises(ValueError, match="baseline_decay"):
        run_pareto(table, "flops", ["sf"], [0], [10], options={"baseline_decay": 2.0})
    with pytest.raises(ValueError, match="table_learning_rate"):
        run_pareto(table, "flops", ["sf"], [0], [10], learning_rate=0.0)


def test_counting_distinct_cells_makes_repeats_free_for_every_method(table):
    every = run_pareto(table, "params", ["sf", "nni-evolution", "optuna-tpe"], [0], [64], targets=2,
                       progress=lambda line: None)
    distinct = run_pareto(table, "params", ["sf", "nni-evolution", "optuna-tpe"], [0], [64], targets=2,
                          progress=lambda line: None, count="distinct")
    assert set(every["results"]["count"]) == {"every"} and set(distinct["summary"]["count"]) == {"distinct"}
    for method, queried in every["queries"].groupby("method"):
        cells = distinct["queries"][distinct["queries"]["method"] == method]["architecture"]
        assert cells.is_unique and len(cells) == len(queried) == 64, method  # 64 new cells, no repeat
    repeats = every["queries"].groupby("method")["architecture"].nunique() < 64
    assert repeats["sf"] and repeats["optuna-tpe"]  # so counting every look-up gave them fewer cells
    with pytest.raises(ValueError, match="count: expected one of every, distinct, got 'unique'"):
        run_pareto(table, "params", ["sf"], [0], [10], count="unique")


def test_a_known_cell_is_answered_free_and_a_cut_short_step_forgets_its_cells():
    from nas_estimators import Ram, ScoreFunction
    from nas_estimators.table_search import TableSearch

    space = {"a": ["x", "y"], "b": ["x", "y", "z"]}  # 6 cells
    looked_up = []

    def accuracy(cell):
        looked_up.append(json.dumps(cell))
        return 50.0 + 10 * (cell["a"] == "y") + 5 * (cell["b"] == "z")

    known: dict = {}
    frame = TableSearch(ScoreFunction(), space, accuracy).run(budget=6, seed=0, known=known, max_steps=200)
    queried = list(frame["architecture"])
    assert len(queried) == len(set(queried)) and set(known) == set(queried)
    again = TableSearch(ScoreFunction(), space, accuracy).run(budget=6, seed=1, known=known, max_steps=30)
    assert set(again["architecture"]).isdisjoint(queried)  # the cells queried before cost nothing now
    assert len(known) == len(queried) + len(again) <= 6
    # RAM's step on one label of 5 values asks for 5 cells: with a budget of 4 it is not taken, nor its cells kept
    known = {}
    frame = TableSearch(Ram(), {"a": list("vwxyz")}, lambda cell: 50.0).run(budget=4, seed=0, known=known)
    assert frame.empty and known == {}



def test_a_settled_search_stops_after_its_patience_and_not_before():
    from nas_estimators import ScoreFunction
    from nas_estimators.table_search import TableSearch

    space = {"a": ["x", "y"], "b": ["x", "y", "z"]}  # 6 cells: it settles on the best soon

    def accuracy(cell):
        return 50.0 + 40 * (cell["a"] == "y") + 40 * (cell["b"] == "z")

    def search(patience):
        return TableSearch(ScoreFunction(), space, accuracy, learning_rate=0.5).run(budget=200, seed=0,
                                                                                    patience=patience)

    full, settled = search(None), search(3)
    assert len(full) == 200 and 3 <= len(settled) < 200
    cells = list(settled["architecture"])
    assert all(cell in cells[:-3 - i] for i, cell in enumerate(reversed(cells[-3:])))  # 3 repeats in a row
    assert not any(all(cell in cells[:j] for j, cell in zip(range(k, k + 3), cells[k:k + 3]))
                   for k in range(len(cells) - 3))  # and no earlier run of 3
    assert list(settled["architecture"]) == list(full["architecture"])[:len(settled)]  # the same search till then
    with pytest.raises(ValueError, match="patience"):
        search(0)


def test_cost_levels_are_every_cost_a_cell_has(table):
    costs = CellCosts("params")
    levels = costs.levels()
    assert levels == sorted(levels)
    assert [round(level, 6) for level in levels] == sorted({round(costs(a), 6) for a in table})


def test_a_refining_target_goes_where_neighbouring_exports_differ_most_and_admits_new_cells(table):
    from nas_estimators.pareto import _refinement

    levels = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    a, b, c = (json.dumps(dict(zip(LABELS, [op] * 6))) for op in ("none", "avg_pool_3x3", "conv_3x3"))
    assert table.accuracy(json.loads(c)) > table.accuracy(json.loads(b))
    ends = {6.5: (None, c), 4.5: (None, b), 2.5: (None, b)}
    # 6.5 -> 4.5 differ (the only pair that does); between them only level 5.0 admits cells 4.5 does not and
    # leaves 6.5 more (a target at 6.0 admits what 6.5 does)
    assert _refinement(ends, levels, set(), table) == (6.5, 4.5, 5.0)
    # once refined, no pair of targets is left: the cheapest target's queries go under it
    assert _refinement(ends, levels, {(6.5, 4.5)}, table) == (2.5, 0.0, 1.0)
    assert _refinement(ends, levels, {(6.5, 4.5), (2.5, 0.0)}, table) is None
    # neighbours one level apart hold no level between them that admits new cells
    assert _refinement({5.0: (None, c), 4.0: (None, b)}, levels, {(4.0, 0.0)}, table) is None
    ends = {6.5: (None, c), 4.5: (None, a), 2.5: (None, c)}
    assert _refinement(ends, levels, set(), table)[:2] == (6.5, 4.5)  # the larger rise first


def test_a_sweep_refines_with_the_queries_its_settled_searches_leave(table):
    from nas_estimators import pareto

    costs = CellCosts("params")
    targets = pareto.default_targets(costs, 4)
    grid = pareto.sweep("sf", table, costs, targets, queries=400, seed=0, patience=None)
    assert sorted(grid["target"].unique()) == sorted(targets) and (grid.groupby("target").size() == 100).all()
    refined = pareto.sweep("sf", table, costs, targets, queries=400, seed=0, patience=3)
    extra = [t for t in refined["target"].unique() if t not in targets]
    assert len(refined) <= 400 and extra  # the settled searches' queries went to new targets
    levels = [round(level, 6) for level in costs.levels()]
    assert all(round(t, 6) in levels for t in extra)
    dearest = refined[refined["target"] == max(targets)]
    assert (dearest["architecture"].tolist() == grid[grid["target"] == max(targets)]["architecture"].tolist()
            [:len(dearest)])  # the same first search, ended early


def test_free_samples_do_not_count_in_an_nni_strategys_budget_up_to_the_cap():
    from nas_estimators import _nni
    from nas_estimators.spaces import build_space

    scored, free = [], iter([True] * 5)
    _nni.run_multi_trial(_nni.multi_trial_strategy("RegularizedEvolution", 0, 10), build_space("nb201", 1, 1),
                         lambda sample: scored.append(sample) or 1.0, 10, free=lambda sample: next(free, False),
                         most_free=3)
    assert len(scored) == 13  # 10 counted and 3 of the 5 free ones: the cap
