"""The estimators without weight sharing: search a benchmark table directly, one query per forward pass.

The loss of an architecture is its table error, ``1 - accuracy / 100``, optionally plus Gaussian
noise of a chosen standard deviation (a stand-in for the noise of a supernet's validation batch).
Every evaluation an estimator asks for is one query, so SF and RELAX spend one query a step and RAM
``1 + (A_k - 1)`` per marginalised label: at an equal query budget this compares how much each
estimator learns per evaluation, the seed's variance claim, in seconds and with no supernet at all.

Example:
    >>> from nas_estimators import ScoreFunction
    >>> from nas_estimators.nasbench201 import BenchmarkTable, LABELS
    >>> table = BenchmarkTable({"|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|": 10.0})
    >>> run = TableSearch(ScoreFunction(), {label: ["none", "skip_connect"] for label in LABELS}, lambda a: 0.5)
    >>> frame = run.run(budget=3, seed=0)
    >>> list(frame["trial"])
    [1, 2, 3]
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Callable, Mapping, Sequence

import pandas as pd
import torch

from .budget import CostBudget
from .checks import integer, positive_number
from .distribution import ArchitectureDistribution
from .estimators import Estimator
from .lightning import arc_optimizer, arc_update


#: Adam learning rate of the logits in a table search (``compare``'s and ``pareto``'s default).
LEARNING_RATE = 0.1


class BudgetExhausted(Exception):
    """Raised by the counting loss when an estimator asks for more queries than the budget holds."""


class TableSearch:
    """Train an :class:`ArchitectureDistribution` with ``estimator`` on a black-box ``accuracy(arch)``.

    The architecture step is the search's own (Adam, betas 0.5 and 0.999, logits centred and clamped),
    so the only difference from a supernet search is where the losses come from.

    Args:
        estimator: any :class:`~nas_estimators.estimators.Estimator`.
        choices: label -> candidate values (the space).
        accuracy: architecture -> accuracy in percent (a table look-up).
        learning_rate: Adam learning rate of the logits.
        noise: standard deviation of the Gaussian noise added to each queried loss (0: none).
        budget: a :class:`~nas_estimators.budget.CostBudget`: minimise the error with the expected cost
            within its target; the best query and the mode count only within the budget.
    """

    def __init__(self, estimator: Estimator, choices: Mapping[str, Sequence[Any]],
                 accuracy: Callable[[dict], float], learning_rate: float = LEARNING_RATE, noise: float = 0.0,
                 budget: CostBudget | None = None) -> None:
        positive_number("learning_rate", learning_rate)
        if not (math.isfinite(float(noise)) and noise >= 0):
            raise ValueError(f"noise: expected a number >= 0, got {noise!r}")
        self.estimator = estimator
        self.choices = {label: list(values) for label, values in choices.items()}
        self.accuracy = accuracy
        self.learning_rate = float(learning_rate)
        self.noise = float(noise)
        self.budget = budget

    def run(self, budget: int, seed: int = 0, distribution: ArchitectureDistribution | None = None,
            known: dict[str, float] | None = None, max_steps: int | None = None,
            patience: int | None = None) -> pd.DataFrame:
        """Query at most ``budget`` architectures; one row per query.

        ``known`` (architecture JSON -> the loss the search saw) makes a repeat free: a cell in it is
        answered from it, without a query or a row, as a trained network is not trained again; each new
        query is added to it (a sweep shares one across its targets). ``max_steps`` then ends a search whose
        samples are all known (None: no limit). ``patience`` ends the search once that many cells in a row
        were ones it had drawn before (it has settled; None: it runs to the budget).

        Columns: ``trial``, ``architecture`` (JSON), ``benchmark_acc`` (of the queried architecture),
        ``score`` (its accuracy as the search saw it, noise included), ``best_so_far`` (see :func:`best_so_far`), ``mode_acc`` (the distribution's mode after the step the query belongs to),
        ``step``, ``seconds``. A step that would need more queries than are left is not taken. With a
        budget also ``cost`` (of the query) and ``multiplier`` (after its step); ``mode_acc`` is then the
        accuracy of :meth:`CostBudget.export`'s architecture and ``best_so_far`` counts queries within it.
        """
        integer("budget", budget)
        if patience is not None:
            integer("patience", patience)
        torch.manual_seed(seed)  # a RELAX surrogate's initial weights
        generator = torch.Generator().manual_seed(seed)
        noise_generator = torch.Generator().manual_seed(seed + 1_000_003)
        if distribution is None:  # else continue from the given one (a sweep of cost targets carries it over)
            distribution = ArchitectureDistribution(self.choices)
        self.distribution = distribution
        optimizer = arc_optimizer(distribution, self.learning_rate)
        rows: list[dict[str, Any]] = []
        started = time.perf_counter()
        step = 0
        drawn: set[str] = set()
        repeats = 0  # cells in a row drawn before by this search

        def loss(architecture: dict) -> float:
            nonlocal repeats
            key = json.dumps(architecture)
            repeats = repeats + 1 if key in drawn else 0
            drawn.add(key)
            if known is not None and key in known:
                return known[key]
            if len(rows) >= budget:
                raise BudgetExhausted
            accuracy = float(self.accuracy(architecture))
            rows.append({"trial": len(rows) + 1, "architecture": key, "benchmark_acc": accuracy, "step": step})
            value = 1.0 - accuracy / 100.0
            if self.noise:
                value += self.noise * float(torch.randn((), generator=noise_generator))
            rows[-1]["score"] = 100.0 * (1.0 - value)  # what the search saw, in accuracy units
            if known is not None:
                known[key] = value
            return value

        objective = loss if self.budget is None else self.budget.wrap(loss)
        while len(rows) < budget and (max_steps is None or step < max_steps):
            before = len(rows)
            try:
                gradients = self.estimator.estimate(distribution, objective, generator=generator)
            except BudgetExhausted:
                for row in rows[before:] if known is not None else ():
                    del known[row["architecture"]]
                del rows[before:]  # a step cut short by the budget is not taken
                break
            arc_update(distribution, optimizer, gradients)
            extra: dict[str, Any] = {}
            if self.budget is None:
                mode_accuracy = float(self.accuracy(distribution.mode()))
            else:
                multiplier = self.budget.end_step()
                exported = self.budget.export(distribution)
                mode_accuracy = math.nan if exported is None else float(self.accuracy(exported))
                extra = {"multiplier": multiplier}
                objective = self.budget.wrap(loss)  # the next step's first call is its sampled architecture
            elapsed = time.perf_counter() - started
            for row in rows[before:]:
                row.update(mode_acc=mode_accuracy, seconds=elapsed, **extra)
                if self.budget is not None:
                    row["cost"] = self.budget.cost(json.loads(row["architecture"]))
            step += 1
            if patience is not None and repeats >= patience:
                break
        columns = ["trial", "architecture", "benchmark_acc", "score", "mode_acc", "step", "seconds"]
        frame = pd.DataFrame(rows, columns=columns + ([] if self.budget is None else ["cost", "multiplier"]))
        scores = frame["score"]
        if self.budget is not None:  # a query over the budget is no answer
            scores = scores.where(frame["cost"] <= self.budget.target, -math.inf)
        frame["best_so_far"] = best_so_far(scores, frame["benchmark_acc"])
        return frame


def best_so_far(scores: pd.Series, accuracies: pd.Series) -> pd.Series:
    """After each query, the benchmark accuracy of the query with the best score so far.

    With exact scores this is the running maximum of the accuracy; with noisy ones it is what a
    search that returns its best-scored query would return (not the best it happened to query).
    """
    best, values = -math.inf, []
    current = math.nan
    for score, accuracy in zip(scores, accuracies):
        if score > best:
            best, current = score, accuracy
        values.append(current)
    return pd.Series(values, index=scores.index)
