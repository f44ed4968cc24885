"""Unbiased, low-variance gradient estimators for stochastic neural architecture search.

The distribution, estimators and schedules import without NNI; the NNI strategies (``SF``,
``RELAX``, ``RAM``, ``EstimatorStrategy``) and the Optuna sampler (``EstimatorSampler``) import on first use.
"""

from __future__ import annotations

from typing import Any

from .distribution import ArchitectureDistribution
from .estimators import Estimator, Ram, Relax, ScoreFunction
from .schedules import Constant, Cosine, Exponential, Linear, Schedule

__version__ = "0.1.0"

_STRATEGIES = {"SF", "RELAX", "RAM", "EstimatorStrategy"}

__all__ = [
    "ArchitectureDistribution", "Estimator", "ScoreFunction", "Relax", "Ram",
    "Schedule", "Constant", "Linear", "Exponential", "Cosine", "EstimatorSampler", *sorted(_STRATEGIES),
]


def __getattr__(name: str) -> Any:
    if name in _STRATEGIES:
        from . import strategy

        return getattr(strategy, name)
    if name == "EstimatorSampler":
        from .optuna_sampler import EstimatorSampler

        return EstimatorSampler
    raise AttributeError(f"module 'nas_estimators' has no attribute {name!r}")
