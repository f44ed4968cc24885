"""Which path the shared weights train on a step drawn "uniformly" (``uniform_weight_paths``).

Supernet levers of the ranking issue, each a small object with ``sample(distribution)`` (candidate
indices by label) and a state for checkpoints:

* :class:`UniformPaths` (``"uniform"``, the default): every candidate of every label equally likely.
* :class:`UniformPaths` with ``exclude=("none",)`` (``"no-none"``): as AdvantageNAS, the weights never
  train a path with a ``none`` edge; ``none`` stays searchable (it has no weights to train).
* :class:`FairPaths` (``"fair"``): FairNAS's strict fairness spread over consecutive steps: each label
  walks through a fresh random permutation of its candidates, so within every ``m`` steps each of its
  ``m`` candidates trains exactly once (FairNAS accumulates those ``m`` paths into one update; here each
  is its own step, at the cost of a uniform path).
* :class:`ShrinkingPaths` (``"shrinking"``): uniform over the candidates the distribution still holds
  (probability at least half of uniform's, ``1 / (2 m)``): as the logits settle, the shared weights
  train only the cells still in the running. During the weights-only warm-up it is uniform.

Example:
    >>> import torch
    >>> from nas_estimators.distribution import ArchitectureDistribution
    >>> dist = ArchitectureDistribution({"edge": ["none", "skip", "conv"]})
    >>> _ = torch.manual_seed(0)
    >>> paths = FairPaths()
    >>> sorted(paths.sample(dist)["edge"] for _ in range(3))
    [0, 1, 2]
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from .distribution import ArchitectureDistribution

__all__ = ["WeightPaths", "UniformPaths", "FairPaths", "ShrinkingPaths", "WEIGHT_PATHS", "weight_paths"]


class WeightPaths:
    """Draws the candidate indices of the path a weight step trains."""

    name = "uniform"

    def sample(self, distribution: ArchitectureDistribution) -> dict[str, int]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


class UniformPaths(WeightPaths):
    """Each label's candidate drawn uniformly from those not in ``exclude`` (all of them when all are)."""

    def __init__(self, exclude: Sequence[str] = ()) -> None:
        self.exclude = tuple(exclude)
        self.name = "no-none" if self.exclude else "uniform"

    def sample(self, distribution: ArchitectureDistribution) -> dict[str, int]:
        if not self.exclude:
            return distribution.uniform_indices()
        indices = {}
        for label in distribution.labels:
            allowed = [i for i, value in enumerate(distribution.values[label]) if str(value) not in self.exclude]
            allowed = allowed or list(range(len(distribution.values[label])))
            indices[label] = allowed[int(torch.randint(len(allowed), ()))]
        return indices


class FairPaths(WeightPaths):
    """Every candidate of a label trains once in each run of ``m`` steps (``m`` its number of candidates)."""

    name = "fair"

    def __init__(self) -> None:
        self.queues: dict[str, list[int]] = {}

    def sample(self, distribution: ArchitectureDistribution) -> dict[str, int]:
        indices = {}
        for label in distribution.labels:
            queue = self.queues.get(label)
            if not queue:
                queue = torch.randperm(len(distribution.values[label])).tolist()
            indices[label] = queue.pop(0)
            self.queues[label] = queue
        return indices

    def state_dict(self) -> dict[str, Any]:
        return {"queues": {label: list(queue) for label, queue in self.queues.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.queues = {label: list(queue) for label, queue in state.get("queues", {}).items()}


class ShrinkingPaths(WeightPaths):
    """Uniform over each label's candidates whose probability is at least ``share / m`` (all when none is)."""

    name = "shrinking"

    def __init__(self, share: float = 0.5) -> None:
        if not 0.0 <= float(share) <= 1.0:
            raise ValueError(f"weight_paths: the shrinking share must be in [0, 1], got {share!r}")
        self.share = float(share)

    def sample(self, distribution: ArchitectureDistribution) -> dict[str, int]:
        indices = {}
        probabilities = distribution.probs()
        for label in distribution.labels:
            p = probabilities[label].detach()
            allowed = torch.nonzero(p >= self.share / len(p) - 1e-12).flatten().tolist() or list(range(len(p)))
            indices[label] = allowed[int(torch.randint(len(allowed), ()))]
        return indices


#: ``--weight-paths`` choices.
WEIGHT_PATHS = {"uniform": UniformPaths, "no-none": lambda: UniformPaths(exclude=("none",)), "fair": FairPaths,
                "shrinking": ShrinkingPaths}


def weight_paths(name: str | WeightPaths) -> WeightPaths:
    """The weight-path rule called ``name`` (or ``name`` itself), or a ValueError naming the choices."""
    if isinstance(name, WeightPaths):
        return name
    if name not in WEIGHT_PATHS:
        raise ValueError(f"weight_paths: expected one of {', '.join(WEIGHT_PATHS)}, got {name!r}")
    return WEIGHT_PATHS[name]()
