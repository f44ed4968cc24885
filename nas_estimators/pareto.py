"""Accuracy against cost on the NAS-Bench-201 table: the Pareto front each method finds, and its hypervolume.

Our estimators sweep cost targets (a :class:`~nas_estimators.budget.CostBudget` search per target, the
query budget split evenly); NNI's regularized evolution sweeps the same targets with a fixed penalty on the
relative excess cost (:data:`EVOLUTION_PENALTY`); Optuna's multi-objective samplers (NSGA-II, TPE) maximise
accuracy and minimise cost at once. Every queried cell counts, for all methods: a method's front is the
non-dominated set of what it queried, scored exactly by the table. The hypervolume (the area the front
dominates up to a reference point: the dearest cell's cost and the table's median accuracy) over the
true front's, computed from all 15,625 cells, says how much of the best trade-off a method found. (With
the lowest accuracy as reference, 10%, the area between 10 and 90 dominates and every front scores
above 0.99: the median keeps the part where methods differ.)

Example:
    >>> front = pareto_front([(1.0, 80.0), (2.0, 90.0), (2.5, 85.0), (3.0, 95.0)])
    >>> front
    [(1.0, 80.0), (2.0, 90.0), (3.0, 95.0)]
    >>> hypervolume(front, reference=(4.0, 70.0))   # 3 x 10 + 2 x 10 + 1 x 5
    55.0
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd
import torch

from .budget import CostBudget
from .checks import integer, positive_number
from .distribution import ArchitectureDistribution
from .table_search import LEARNING_RATE, TableSearch
from .nasbench201 import LABELS, NNI_OPS, BenchmarkTable, CellCosts, from_arch_string

__all__ = ["PATIENCE", "ESTIMATORS", "SAMPLERS", "EVOLUTION", "SPACINGS", "COUNTS", "evolution_sweep", "pareto_front", "hypervolume", "sweep", "optuna_front", "true_front",
           "default_targets"]

ESTIMATORS = ("sf", "relax", "ram")
SAMPLERS = ("optuna-nsga2", "optuna-tpe")
EVOLUTION = "nni-evolution"
#: Accuracy points NNI's evolution loses per 100% over a target (``accuracy - penalty * max(0, cost / target - 1)``):
#: a cell 10% over the target scores 10 points lower, about the spread of the table's good cells.
EVOLUTION_PENALTY = 100.0
#: A sweep's logits take larger steps when each target has few queries: ``LEARNING_RATE`` at
#: :data:`FULL_SHARE` queries a target (1,000 over 16 targets) or more, up to :data:`MOST_SCALE` times it with
#: fewer; RELAX keeps ``LEARNING_RATE`` (larger steps lost it 0.07 at 200 queries). Chosen on tuning seeds 0-5
#: (docs/cost-aware.md, "Session 15").
FULL_SHARE, MOST_SCALE, UNSCALED = 62, 3.0, ("relax",)
#: What a query budget counts: ``every`` look-up of the table, a repeat too, or each ``distinct`` cell once per
#: run (a repeat is answered from memory, as a trained network is not trained again). Every method is
#: measured the same way; ``distinct`` lets a method that concentrates take more steps for the same cells.
COUNTS = ("every", "distinct")
#: Under ``distinct`` a run may draw at most this many times its query budget (steps, trials, submissions):
#: a search whose samples are all known by then has converged.
MOST_DRAWS = 10


def sweep_learning_rate(method: str, per_target: int) -> float:
    """The logits' learning rate of ``method``'s sweep with ``per_target`` queries a target.

    >>> [round(sweep_learning_rate("sf", q), 3) for q in (12, 31, 62, 125)], sweep_learning_rate("relax", 12)
    ([0.3, 0.2, 0.1, 0.1], 0.1)
    """
    if method in UNSCALED:
        return LEARNING_RATE
    return LEARNING_RATE * min(MOST_SCALE, max(1.0, FULL_SHARE / max(1, per_target)))


def pareto_front(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated (cost, accuracy) points, cheapest first: no other is as cheap and as accurate."""
    front: list[tuple[float, float]] = []
    for cost, accuracy in sorted(set(points), key=lambda p: (p[0], -p[1])):
        if not front or accuracy > front[-1][1]:
            front.append((cost, accuracy))
    return front


def hypervolume(front: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by ``front`` (cost minimised, accuracy maximised) up to ``reference`` (cost, accuracy)."""
    area, previous_accuracy = 0.0, reference[1]
    for cost, accuracy in pareto_front(front):
        if cost >= reference[0] or accuracy <= previous_accuracy:
            continue
        area += (reference[0] - cost) * (accuracy - previous_accuracy)
        previous_accuracy = accuracy
    return area


def true_front(table: BenchmarkTable, costs: Callable[[str], float]) -> tuple[list[tuple[float, float]], tuple[float, float]]:
    """The table's own front over every cell, and the reference point (the dearest cost, the median accuracy)."""
    points = [(costs(arch), table.accuracy(arch)) for arch in table]
    accuracies = sorted(a for _, a in points)
    reference = (max(c for c, _ in points), accuracies[len(accuracies) // 2])
    return pareto_front(points), reference


#: How a sweep spaces its targets between the cheapest and the dearest network: ``even`` (equal steps) or
#: ``geometric`` (equal ratios: denser among cheap networks, where a front's points are widest).
SPACINGS = ("even", "geometric")


def default_targets(costs: CellCosts, count: int = 16, spacing: str = "even") -> list[float]:
    """``count`` targets between the cheapest and the dearest network, both ends excluded, spaced by ``spacing``.

    >>> class Costs:
    ...     def bounds(self): return 1.0, 16.0
    >>> default_targets(Costs(), 3), [round(t, 6) for t in default_targets(Costs(), 3, "geometric")]
    ([4.75, 8.5, 12.25], [2.0, 4.0, 8.0])
    """
    low, high = costs.bounds()
    if spacing not in SPACINGS:
        raise ValueError(f"target_spacing: expected one of {', '.join(SPACINGS)}, got {spacing!r}")
    if spacing == "geometric":
        return [low * (high / low) ** ((i + 1) / (count + 1)) for i in range(count)]
    return [low + (high - low) * (i + 1) / (count + 1) for i in range(count)]


def _estimator(method: str, options: Mapping[str, Any] | None, steps: int) -> Any:
    """``method``'s estimator with its hyperparameters from ``options`` (by registry name), others at defaults."""
    from . import registry

    spec = registry.get(method)
    return spec.build({h.name: (options or {}).get(h.name, h.default) for h in spec.hyperparameters}, steps)


#: A target's search ends once this many cells in a row were ones it had drawn before (it has settled); the
#: queries it leaves go to targets between neighbours whose exported cells differ (:func:`sweep`). Chosen on
#: tuning seeds 0-5 from {2, 3} and none (docs/cost-aware.md, "Session 19").
PATIENCE = 2


def sweep(method: str, table: BenchmarkTable, costs: CellCosts, targets: Sequence[float], queries: int,
          seed: int, learning_rate: float | None = None, carry: bool = True,
          options: Mapping[str, Any] | None = None, count: str = "every",
          patience: int | None = PATIENCE) -> pd.DataFrame:
    """One :class:`~nas_estimators.table_search.TableSearch` under each target, ``queries // len(targets)``
    queries each; one row per query (``target``, ``architecture``, ``cost``, ``benchmark_acc``).

    With ``carry`` the targets run from the dearest to the cheapest and each search starts from the
    previous one's distribution (a continuation along the front), else each starts uniform. A search ends
    early after ``patience`` repeats in a row (None: never); the queries left then refine the grid: a new
    target at a cost level between two neighbouring targets whose exported cells differ (where the front
    climbs, the largest difference in accuracy first), starting from the dearer one's distribution, until
    they run out or no such pair is left. ``options``: registered hyperparameters by name (those of other
    estimators are ignored; the rest keep defaults); ``learning_rate``: the logits' (None:
    :func:`sweep_learning_rate`'s); ``count``: one of :data:`COUNTS` (``distinct``: one memory of queried
    cells across the targets, a target's search drawing at most :data:`MOST_DRAWS` steps per query)."""
    integer("patience", patience, optional=True)
    known, per_target = ({} if _counts_distinct(count) else None), max(1, queries // len(targets))
    rate = learning_rate or sweep_learning_rate(method, per_target)
    frames: list[pd.DataFrame] = []
    ends: dict[float, tuple[ArchitectureDistribution, str | None]] = {}  # target -> final distribution, export

    def search(target: float, index: int, start: ArchitectureDistribution | None, size: int) -> None:
        torch.manual_seed(seed)
        budget = CostBudget(costs, target, name=costs.cost)
        run = TableSearch(_estimator(method, options, size), {label: list(NNI_OPS) for label in LABELS},
                          table.accuracy, learning_rate=rate, budget=budget)
        frame = run.run(budget=size, seed=seed * 1000 + index, distribution=start, known=known,
                        max_steps=None if known is None else MOST_DRAWS * size, patience=patience)
        frames.append(frame.assign(target=target))
        exported = budget.export(run.distribution)
        ends[target] = (run.distribution, None if exported is None else json.dumps(exported))

    grid = sorted(targets, reverse=True) if carry else list(targets)
    for index, target in enumerate(grid):
        previous = ends[grid[index - 1]][0] if carry and index else None
        search(target, index, copy.deepcopy(previous) if previous is not None else None, per_target)
    levels, refined, index = costs.levels(), set(), len(grid)
    while patience is not None and queries - sum(map(len, frames)) >= max(2, per_target // 2):
        pair = _refinement(ends, levels, refined, table)
        if pair is None:
            break
        refined.add(pair[:2])
        search(pair[2], index, copy.deepcopy(ends[pair[0]][0]), min(per_target, queries - sum(map(len, frames))))
        index += 1
    return pd.concat(frames, ignore_index=True)[["target", "architecture", "cost", "benchmark_acc", "mode_acc"]]


def _refinement(ends: Mapping[float, tuple[Any, str | None]], levels: Sequence[float],
                refined: set[tuple[float, float]], table: BenchmarkTable) -> tuple[float, float, float] | None:
    """(dearer target, cheaper target, new target) of the neighbours whose exports differ most in accuracy,
    the new target the cost level nearest their middle that admits cells the cheaper one does not and fewer
    than the dearer one; when no such pair is left, under the cheapest target (the cheaper end then below the
    cheapest level); None: nothing is left to refine."""
    def accuracy(export: str | None) -> float:
        return -math.inf if export is None else table.accuracy(json.loads(export))

    order = sorted(ends, reverse=True)
    best = None
    for high, low in zip(order, order[1:] + [levels[0] - 1.0]):
        below = low not in ends  # under the cheapest target: only once no pair of targets is left
        if (high, low) in refined or (not below and ends[high][1] == ends[low][1]):
            continue
        # a target at level L admits cells a target at `low` does not (L > low), and `high` admits
        # more than L (a level in (L, high])
        inside = [level for level in levels if low < level and any(level < other <= high for other in levels)]
        if not inside:
            continue
        middle = min(inside, key=lambda level: abs(level - (high + low) / 2))
        key = (not below, accuracy(ends[high][1]) - (0.0 if below else accuracy(ends[low][1])))
        if best is None or key > best[0]:
            best = (key, high, low, middle)
    return None if best is None else best[1:]


def evolution_sweep(table: BenchmarkTable, costs: CellCosts, targets: Sequence[float], queries: int, seed: int,
                    penalty: float = EVOLUTION_PENALTY, count: str = "every") -> pd.DataFrame:
    """NNI's regularized evolution under each target, ``queries // len(targets)`` queries each, maximising the
    accuracy less ``penalty`` times the relative excess cost; one row per query, as :func:`sweep`'s.
    Under ``count="distinct"`` a cell queried under an earlier target is free (NNI's evolution already
    submits a cell once per target)."""
    from . import _nni
    from .spaces import build_space

    per_target = max(1, queries // len(targets))
    known: set[str] | None = set() if _counts_distinct(count) else None
    frames = []
    for index, target in enumerate(sorted(targets, reverse=True)):
        rows: list[dict] = []

        def score(sample: dict, target: float = target) -> float:
            architecture = {label: sample[label] for label in LABELS}
            accuracy, cost = table.accuracy(architecture), costs(architecture)
            key = json.dumps(architecture)
            if known is None or key not in known:
                rows.append({"target": target, "architecture": key, "cost": cost, "benchmark_acc": accuracy})
            return accuracy - penalty * max(0.0, cost / target - 1.0)

        def free(sample: dict) -> bool:
            return known is not None and json.dumps({label: sample[label] for label in LABELS}) in known

        strategy = _nni.multi_trial_strategy("RegularizedEvolution", seed * 1000 + index, per_target)
        _nni.run_multi_trial(strategy, build_space("nb201", 1, 1), score, per_target,  # labels only: smallest
                             free=free, most_free=(MOST_DRAWS - 1) * per_target)
        if known is not None:
            known.update(row["architecture"] for row in rows)
        frames.append(pd.DataFrame(rows, columns=["target", "architecture", "cost", "benchmark_acc"]))
    return pd.concat(frames, ignore_index=True)


def optuna_front(method: str, table: BenchmarkTable, costs: CellCosts, queries: int, seed: int,
                 count: str = "every") -> pd.DataFrame:
    """An Optuna multi-objective study (accuracy up, cost down) of ``queries`` trials; one row per trial.
    Under ``count="distinct"``: until ``queries`` distinct cells (at most :data:`MOST_DRAWS` times as many
    trials), one row per distinct cell."""
    import optuna

    sampler = {"optuna-nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
               "optuna-tpe": lambda: optuna.samplers.TPESampler(seed=seed)}[method]()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    rows, seen, distinct = [], set(), _counts_distinct(count)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        architecture = {label: trial.suggest_categorical(label, list(NNI_OPS)) for label in LABELS}
        accuracy, cost = table.accuracy(architecture), costs(architecture)
        key = json.dumps(architecture)
        if not distinct or key not in seen:
            rows.append({"architecture": key, "cost": cost, "benchmark_acc": accuracy})
            seen.add(key)
        if len(rows) >= queries:
            trial.study.stop()
        return accuracy, cost

    study.optimize(objective, n_trials=MOST_DRAWS * queries if distinct else queries)
    return pd.DataFrame(rows)


def _counts_distinct(count: str) -> bool:
    if count not in COUNTS:
        raise ValueError(f"count: expected one of {', '.join(COUNTS)}, got {count!r}")
    return count == "distinct"


def front_of(frame: pd.DataFrame) -> list[tuple[float, float]]:
    return pareto_front(zip(frame["cost"].astype(float), frame["benchmark_acc"].astype(float)))


def arch_string_cost(costs: CellCosts) -> Callable[[str], float]:
    return lambda arch: costs(from_arch_string(arch))


def run_pareto(table: BenchmarkTable, cost: str, methods: Sequence[str], seeds: Sequence[int],
               budgets: Sequence[int], targets: int = 16, progress: Callable[[str], None] = print,
               learning_rate: float | None = None, options: Mapping[str, Any] | None = None,
               spacing: str = "even", count: str = "every", patience: int | None = PATIENCE) -> dict[str, pd.DataFrame]:
    """Every method x seed x query budget: ``queries`` (every queried cell), ``fronts`` (each run's front
    and the table's, ``method == "table"``) and ``summary`` (hypervolume ratio per method and budget).
    ``learning_rate`` (None: :func:`sweep_learning_rate`'s) and ``options`` (hyperparameters by registry
    name) are our estimators'; ``spacing`` places the targets (:data:`SPACINGS`) of ours and of NNI's evolution;
    ``count`` (:data:`COUNTS`) is what every method's query budget counts; ``patience``: our estimators' (see
    :func:`sweep`)."""
    known = (*ESTIMATORS, EVOLUTION, *SAMPLERS)
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise ValueError(f"methods: expected some of {', '.join(known)}, got {', '.join(methods) or 'none'}")
    if not seeds or any(isinstance(s, bool) or int(s) != s or s < 0 for s in seeds):
        raise ValueError(f"seeds: expected integers >= 0, got {list(seeds)}")
    if not budgets or any(isinstance(b, bool) or int(b) != b or b < 1 for b in budgets):
        raise ValueError(f"queries: expected positive integers, got {list(budgets)}")
    integer("targets", targets)
    _counts_distinct(count)
    integer("target_patience", patience, optional=True)
    if learning_rate is not None:
        positive_number("table_learning_rate", learning_rate)
    for method in set(methods) & set(ESTIMATORS):  # a bad hyperparameter fails now, not after hours
        _estimator(method, options, 1)
    costs = CellCosts(cost)
    targets_of_sweeps = default_targets(costs, targets, spacing)
    front, reference = true_front(table, arch_string_cost(costs))
    best = hypervolume(front, reference)
    queries, fronts, rows = [], [pd.DataFrame(front, columns=["cost", "benchmark_acc"]).assign(method="table")], []
    for budget in budgets:
        for method in methods:
            for seed in seeds:
                if method in ESTIMATORS:
                    frame = sweep(method, table, costs, targets_of_sweeps, budget, seed,
                                  learning_rate, options=options, count=count, patience=patience)
                elif method == EVOLUTION:
                    frame = evolution_sweep(table, costs, targets_of_sweeps, budget, seed, count=count)
                else:
                    frame = optuna_front(method, table, costs, budget, seed, count=count)
                found = front_of(frame)
                ratio = hypervolume(found, reference) / best
                progress(f"{method} seed {seed}, {budget} queries: hypervolume ratio {ratio:.4f}")
                queries.append(frame.assign(method=method, seed=seed, queries=budget))
                fronts.append(pd.DataFrame(found, columns=["cost", "benchmark_acc"]).assign(
                    method=method, seed=seed, queries=budget))
                rows.append({"method": method, "seed": seed, "queries": budget, "count": count,
                             "hypervolume_ratio": ratio, "front_size": len(found)})
    results = pd.DataFrame(rows)
    summary = (results.groupby(["method", "queries", "count"], sort=False)["hypervolume_ratio"]
               .agg(hypervolume_ratio_mean="mean", hypervolume_ratio_std="std", hypervolume_ratio_min="min",
                    runs="count").reset_index())
    return {"queries": pd.concat(queries, ignore_index=True), "fronts": pd.concat(fronts, ignore_index=True),
            "results": results, "summary": summary, "reference": pd.DataFrame([reference], columns=["cost", "benchmark_acc"])}
