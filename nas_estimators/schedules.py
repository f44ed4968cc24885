"""Temperature schedules for RELAX's relaxation: small objects, called with the step number."""

from __future__ import annotations

import math

from .checks import integer
from .checks import positive_number as positive


class Schedule:
    """A value as a function of the step (0, 1, 2, ...)."""

    kind = "schedule"

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def state(self) -> dict:
        return {"kind": self.kind, **{k: v for k, v in vars(self).items()}}


class Constant(Schedule):
    """Always ``value``.

    Example:
        >>> Constant(0.5)(1000)
        0.5
    """

    kind = "constant"

    def __init__(self, value: float) -> None:
        self.value = positive("temperature", value)

    def __call__(self, step: int) -> float:
        return self.value


class _Anneal(Schedule):
    def __init__(self, initial: float, final: float, steps: int) -> None:
        self.initial = positive("temperature initial", initial)
        self.final = positive("temperature final", final)
        self.steps = integer("temperature steps", steps)

    def fraction(self, step: int) -> float:
        return min(max(step, 0), self.steps) / self.steps


class Linear(_Anneal):
    """From ``initial`` to ``final`` in a straight line over ``steps``, then ``final``.

    Example:
        >>> Linear(1.0, 0.5, steps=10)(5)
        0.75
    """

    kind = "linear"

    def __call__(self, step: int) -> float:
        return self.initial + (self.final - self.initial) * self.fraction(step)


class Exponential(_Anneal):
    """From ``initial`` to ``final`` geometrically over ``steps``, then ``final``.

    Example:
        >>> round(Exponential(1.0, 0.25, steps=10)(5), 6)
        0.5
    """

    kind = "exponential"

    def __call__(self, step: int) -> float:
        return self.initial * (self.final / self.initial) ** self.fraction(step)


class Cosine(_Anneal):
    """From ``initial`` to ``final`` along half a cosine over ``steps``, then ``final``."""

    kind = "cosine"

    def __call__(self, step: int) -> float:
        return self.final + (self.initial - self.final) * 0.5 * (1 + math.cos(math.pi * self.fraction(step)))


SCHEDULES = {cls.kind: cls for cls in (Constant, Linear, Exponential, Cosine)}


def make_schedule(kind: str, initial: float, final: float | None = None, steps: int | None = None) -> Schedule:
    """A schedule by name: ``constant`` (``initial`` only) or ``linear``/``exponential``/``cosine``."""
    if kind not in SCHEDULES:
        raise ValueError(f"temperature schedule: expected one of {sorted(SCHEDULES)}, got {kind!r}")
    if kind == "constant":
        return Constant(initial)
    return SCHEDULES[kind](initial, initial if final is None else final, steps or 1)
