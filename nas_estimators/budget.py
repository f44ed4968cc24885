"""A cost budget: the best architecture whose cost (parameters, FLOPs, ...) stays within a target.

The estimators only need the value of what they minimise for a sampled architecture, so a measured
cost enters as it is, with no differentiable cost model. :class:`CostBudget` turns the constrained
problem ``min E[L(Z)] subject to E[cost(Z)] <= target`` into its Lagrangian

    ``L(Z) + multiplier * (cost(Z) / target - 1)``,

which the estimators minimise over the logits (unbiasedly, at each step's multiplier), while the
multiplier follows dual ascent on the measured relative violation, ``multiplier <- max(0, multiplier +
rate * (mean sampled cost / target - 1))``: it rises while the distribution's architectures are over
budget and falls back to zero when the budget stops binding. At the end, :meth:`export` picks the most
probable architecture within the budget.

Example:
    >>> from nas_estimators import ArchitectureDistribution
    >>> dist = ArchitectureDistribution({"op": ["small", "large"]})
    >>> budget = CostBudget(lambda arch: {"small": 1.0, "large": 3.0}[arch["op"]], target=2.0, rate=0.5, name="flops")
    >>> loss = budget.wrap(lambda arch: 0.0)
    >>> loss({"op": "large"}), budget.end_step()   # the multiplier rises: the sampled cell is over budget
    (0.0, 0.25)
    >>> loss({"op": "large"})                       # now the cost is paid
    0.125
    >>> budget.export(dist)
    {'op': 'small'}
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

from .checks import positive_number
from .distribution import Architecture, ArchitectureDistribution, architecture_key

__all__ = ["COSTS", "COST_RATE", "CostBudget"]

#: The multiplier's default dual-ascent step (see :class:`CostBudget`).
COST_RATE = 0.02

#: The costs a budget can bound, with their units (as ``--help`` and README state them).
COSTS = {"params": "millions of parameters", "flops": "MFLOPs for one input as torch's FlopCounterMode counts them "
                                                      "(two per multiply-add)",
         "latency": "milliseconds for one input on the search's device and threads, as a per-candidate table "
                    "measured there predicts them"}


class CostBudget:
    """``E[cost] <= target`` by a Lagrange multiplier updated by dual ascent.

    Args:
        cost: architecture -> cost (cached per architecture: it is a fixed property of the cell).
        target: the budget, in the cost's units; positive.
        rate: the dual-ascent step on the relative violation (``cost / target - 1``) per step. The
            multiplier must move slower than the logits, or it overshoots and the distribution swings
            across the budget (0.2 did on a 16-cell test space; 0.02 settled on the boundary).
        name: what the cost is (``params``, ``flops``), for the records.
    """

    def __init__(self, cost: Callable[[Architecture], float] | str, target: float, rate: float = COST_RATE,
                 name: str = "cost") -> None:
        if isinstance(cost, str):  # measured on the search's own network: see bind()
            if cost not in COSTS:
                raise ValueError(f"cost: expected one of {', '.join(COSTS)}, got {cost!r}")
            name, cost = cost, None
        target, rate = positive_number("cost-target", target), positive_number("cost rate", rate)
        self.cost_fn, self.target, self.rate, self.name = cost, target, rate, name
        self.multiplier = 0.0
        self.seconds = 0.0  # spent measuring costs: part of the search's time
        self.cache: dict[str, float] = {}
        self.history: list[dict[str, float]] = []  # one row per step: multiplier, mean sampled cost
        self._step_costs: list[float] = []
        self.latency_table: Path | None = None  # the cached table a latency budget reads
        # Spent before the first epoch (the reachability check of a search): the recorder adds it to the next
        # epoch's seconds, so that measuring a latency table counts in the search's time.
        self.pre_search_seconds = 0.0

    @property
    def bound(self) -> bool:
        return self.cost_fn is not None

    def bind(self, supernet: Any, inputs: Any, distribution: ArchitectureDistribution | None = None) -> None:
        """Measure a named cost on ``supernet``'s sampled path, in a never-trained copy, for one of ``inputs``.

        Latency reads a table of ``distribution``'s candidates (:mod:`~nas_estimators.latency`), measured here
        unless cached; the measuring counts in :attr:`seconds`.
        """
        from . import training_free
        from .objective import ScoringNetwork

        network = ScoringNetwork(supernet, inputs[:1])
        if self.name == "latency":
            from .latency import cached_table

            if distribution is None:
                raise ValueError("cost latency: the budget needs the distribution's candidates to measure its table")
            started = time.perf_counter()
            table, self.latency_table = cached_table(network.network, network.inputs, distribution, network.apply)
            self.seconds += time.perf_counter() - started
            self.cost_fn = table.predict
            return
        function = {"params": training_free.parameter_count, "flops": training_free.flops}[self.name]
        self.cost_fn = lambda architecture: network.score(architecture, function)

    def cheapest(self, distribution: ArchitectureDistribution) -> tuple[Architecture, float]:
        """Each label's cheapest candidate with the others at theirs: the cheapest architecture where
        candidates add their own cost (parameters and FLOPs of cell spaces do)."""
        indices = {label: 0 for label in distribution.labels}
        for label in distribution.labels:  # by index: a wrapped label's value is not its candidate (DARTS's inputs)
            options = [{**indices, label: index} for index in range(len(distribution.values[label]))]
            indices = min(options, key=lambda option: self.cost(distribution.to_architecture(option)))
        architecture = distribution.to_architecture(indices)
        return architecture, self.cost(architecture)

    def check_reachable(self, distribution: ArchitectureDistribution) -> None:
        """Raise ValueError (one line) when even the cheapest architecture is over the target."""
        _, cost = self.cheapest(distribution)
        if cost > self.target:
            raise ValueError(f"cost-target: no architecture of this space has {self.name} <= {self.target:g} "
                             f"({COSTS[self.name] if self.name in COSTS else self.name}); the cheapest has {cost:.4g}")

    def cost(self, architecture: Architecture) -> float:
        key = architecture_key(architecture)
        if key not in self.cache:
            if self.cost_fn is None:
                raise RuntimeError(f"cost budget on {self.name}: bind() it to the search's network first")
            started = time.perf_counter()
            self.cache[key] = float(self.cost_fn(architecture))
            self.seconds += time.perf_counter() - started
        return self.cache[key]

    @property
    def last_cost(self) -> float | None:
        """The last finished step's mean sampled cost."""
        return self.history[-1]["mean_cost"] if self.history else None

    def wrap(self, loss_fn: Callable[[Architecture], Any]) -> Callable[[Architecture], Any]:
        """``loss_fn`` plus the multiplier times the relative violation; the step's first call (the
        sampled architecture) is the one whose cost the next :meth:`end_step` averages."""
        first = [True]

        def loss(architecture: Architecture) -> Any:
            cost = self.cost(architecture)
            if first[0]:
                self._step_costs.append(cost)
                first[0] = False
            value = loss_fn(architecture)
            return value + self.multiplier * (cost / self.target - 1.0) if self.multiplier else value

        return loss

    def end_step(self) -> float:
        """Dual ascent on the sampled costs since the last call; returns the new multiplier."""
        if self._step_costs:
            mean = sum(self._step_costs) / len(self._step_costs)
            self.multiplier = max(0.0, self.multiplier + self.rate * (mean / self.target - 1.0))
            self.history.append({"step": len(self.history), "multiplier": self.multiplier, "mean_cost": mean})
            self._step_costs = []
        return self.multiplier

    def within(self, architecture: Architecture) -> bool:
        return self.cost(architecture) <= self.target

    def export(self, distribution: ArchitectureDistribution, candidates: int = 1000) -> Architecture | None:
        """The most probable architecture within the budget among the ``candidates`` most probable
        (None if none of them is)."""
        for architecture, _ in distribution.top_k(min(candidates, distribution.num_architectures)):
            if self.within(architecture):
                return architecture
        return None

    def record(self, architecture: Architecture) -> dict[str, Any]:
        """The run folder's cost record: the target, the exported ``architecture``'s cost and
        the multiplier's and sampled cost's history."""
        return {"cost": self.name, "target": self.target, "units": COSTS.get(self.name, self.name),
                "architecture_cost": self.cost(architecture), "within": self.within(architecture),
                **({} if self.latency_table is None else {"latency_table": str(self.latency_table)}),
                "multiplier": [row["multiplier"] for row in self.history],
                "sampled_cost": [row["mean_cost"] for row in self.history]}

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "rate": self.rate, "multiplier": self.multiplier,
                "seconds": self.seconds,
                "cache": dict(self.cache), "history": list(self.history)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if (state.get("name"), state.get("target")) != (self.name, self.target):
            raise ValueError(f"the checkpoint's budget ({state.get('name')} <= {state.get('target')}) is not this "
                             f"search's ({self.name} <= {self.target})")
        self.multiplier = float(state["multiplier"])
        self.seconds = float(state.get("seconds", 0.0))
        self.cache = dict(state.get("cache", {}))
        self.history = list(state.get("history", []))
