"""Checks of values a user gives: each returns the value, or raises a one-line ValueError naming it and what is allowed.

Example:
    >>> integer("batch_size", 64), integer("top_k", 0, minimum=0), share("dropout", 0.5)
    (64, 0, 0.5)
    >>> integer("batch_size", 0)
    Traceback (most recent call last):
    ...
    ValueError: batch_size: expected a positive integer, got 0
"""

from __future__ import annotations

import math
from typing import Any, Sequence


def integer(name: str, value: Any, minimum: int = 1, *, optional: bool = False) -> int | None:
    """``value`` as an int of at least ``minimum`` (a whole float counts; a bool does not); ``optional``: None passes."""
    if optional and value is None:
        return None
    try:
        whole = not isinstance(value, bool) and int(value) == value and value >= minimum
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole:
        said = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name}: expected {said}, got {value!r}")
    return int(value)


def positive_number(name: str, value: Any) -> float:
    """``value`` as a finite float above zero."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, (bool, str)) or not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    return number


def share(name: str, value: Any) -> float:
    """``value`` as a float in [0, 1]."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not 0.0 <= number <= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
    return number


def one_of(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(str, choices))}, got {value!r}")
    return value
