"""The estimators by name: the one place that says what each needs, its defaults, and how Optuna tunes it.

The command line (``--estimator`` and the hyperparameter options), ``search``, ``compare``, ``bench`` and
``tune`` are all built from :data:`ESTIMATORS`, so a new estimator is one :func:`register` call:

    >>> import dataclasses
    >>> from nas_estimators import ScoreFunction, registry
    >>> class Toy(ScoreFunction):
    ...     name = "toy"
    >>> registry.register(registry.EstimatorSpec(
    ...     name="toy", summary="score function with a slow baseline",
    ...     hyperparameters=(registry.Hyperparameter("toy_decay", 0.99, "toy: baseline decay"),),
    ...     build=lambda options, steps: Toy(baseline_decay=options["toy_decay"])))
    >>> from nas_estimators.search import SearchConfig
    >>> SearchConfig(estimator="toy", estimator_options={"toy_decay": 0.5}).build_estimator().baseline_decay
    0.5
    >>> registry.unregister("toy")

A search keeps the values in ``SearchConfig.estimator_options`` (a name left out: its default here); the NNI
strategies (``SF(baseline_decay=...)``) take the built-in ones as typed keywords with these defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Mapping

from .estimators import SURROGATE_INITS, Estimator, Ram, Relax, ScoreFunction
from .schedules import SCHEDULES, make_schedule

__all__ = ["Hyperparameter", "EstimatorSpec", "ESTIMATORS", "register", "unregister", "get", "names",
           "default", "hyperparameters", "int_or_all",
           "int_or_never"]


def int_or_all(text: str) -> int | None:
    """Command-line type: a positive integer, or ``all``/``none`` (None)."""
    if text.lower() in ("none", "all"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or 'all', got {text!r}") from None


#: ``suggest(trial, num_labels, values)``: draw the value from an Optuna trial; ``values`` holds those drawn
#: (or fixed) before it, for conditional ones. Returning ``None`` leaves the hyperparameter out of the trial.
Suggest = Callable[[Any, int, Mapping[str, Any]], Any]


@dataclasses.dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter: its config name (``--name-with-dashes`` on the command line), default and help.

    ``type`` parses the command-line text; ``choices`` restricts it; ``suggest`` is its Optuna search space
    (None: ``tune`` leaves it at its value). The estimator's constructor checks the value.
    """

    name: str
    default: Any
    help: str
    type: Callable[[str], Any] = float
    choices: tuple[Any, ...] | None = None
    suggest: Suggest | None = None

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class EstimatorSpec:
    """An estimator as the tools see it. ``build(options, steps)`` makes one from its hyperparameters' values
    (``steps``: the search's architecture steps, for schedules)."""

    name: str
    summary: str
    hyperparameters: tuple[Hyperparameter, ...]
    build: Callable[[Mapping[str, Any], int], Estimator]


ESTIMATORS: dict[str, EstimatorSpec] = {}


def register(spec: EstimatorSpec) -> EstimatorSpec:
    """Add ``spec``; its name must be new, and a hyperparameter it shares with another must be the same one."""
    if spec.name in ESTIMATORS:
        raise ValueError(f"estimator {spec.name!r} is registered already")
    known = hyperparameters()
    for hyperparameter in spec.hyperparameters:
        if hyperparameter.name in known and known[hyperparameter.name] != hyperparameter:
            raise ValueError(f"hyperparameter {hyperparameter.name!r} is registered already with other settings")
    ESTIMATORS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    ESTIMATORS.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(ESTIMATORS)


def get(name: str) -> EstimatorSpec:
    """The spec of ``name``, or a one-line ValueError naming the registered ones."""
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise ValueError(f"estimator: expected one of {', '.join(ESTIMATORS)}, got {name!r}") from None


def default(name: str) -> Any:
    """The default of the registered hyperparameter ``name``."""
    return hyperparameters()[name].default


def hyperparameters() -> dict[str, Hyperparameter]:
    """Every registered estimator's hyperparameters by name (the command line offers them all)."""
    return {h.name: h for spec in ESTIMATORS.values() for h in spec.hyperparameters}


def int_or_never(text: str) -> int | None:
    """Command-line type: a positive integer, or ``never`` (None)."""
    if text.lower() == "never":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or 'never', got {text!r}")
    return value


# ------------------------------------------------------------------------------------------ built-in

def _schedule_final(trial: Any, num_labels: int, values: Mapping[str, Any]) -> float | None:
    if values.get("temperature_schedule") == "constant":
        return None  # a constant schedule has no final value: not drawn
    return trial.suggest_float("temperature_final", 0.05, 1.0, log=True)


register(EstimatorSpec(
    name="sf", summary="score function with a moving-average baseline",
    hyperparameters=(
        Hyperparameter("baseline_decay", 0.9, "sf: moving-average decay, in [0, 1)",
                       suggest=lambda trial, n, values: trial.suggest_float("baseline_decay", 0.5, 0.99)),
        Hyperparameter("samples_per_step", 1, "sf: architectures scored a step; >= 2 uses leave-one-out baselines",
                       type=int),
    ),
    build=lambda options, steps: ScoreFunction(baseline_decay=options["baseline_decay"],
                                               samples=options["samples_per_step"])))

register(EstimatorSpec(
    name="relax", summary="score function with a learned, reparameterised control variate",
    hyperparameters=(
        Hyperparameter("surrogate_lr", 1e-3, "relax: surrogate learning rate",
                       suggest=lambda trial, n, values: trial.suggest_float("surrogate_lr", 1e-4, 1e-2, log=True)),
        Hyperparameter("surrogate_width", 64, "relax: hidden units of the surrogate", type=int,
                       suggest=lambda trial, n, values: trial.suggest_categorical("surrogate_width",
                                                                                  (16, 32, 64, 128))),
        Hyperparameter("temperature_schedule", "constant", "relax: temperature schedule over the search",
                       type=str, choices=tuple(sorted(SCHEDULES)),
                       suggest=lambda trial, n, values: trial.suggest_categorical("temperature_schedule",
                                                                                  tuple(SCHEDULES))),
        Hyperparameter("temperature", 0.5, "relax: (initial) temperature",
                       suggest=lambda trial, n, values: trial.suggest_float("temperature", 0.1, 2.0, log=True)),
        Hyperparameter("temperature_final", None, "relax: final temperature of the schedule",
                       suggest=_schedule_final),
        Hyperparameter("surrogate_init", "zero", "relax: the surrogate's output layer at the start: zero (the "
                       "first estimates are the score function's) or random", type=str, choices=SURROGATE_INITS),
        Hyperparameter("baseline_fade_steps", 30, "relax: steps over which a moving-average baseline (decay 0.9) "
                       "fades out while the surrogate learns, or 'never'", type=int_or_never),
    ),
    build=lambda options, steps: Relax(
        surrogate_width=options["surrogate_width"], surrogate_lr=options["surrogate_lr"],
        surrogate_init=options["surrogate_init"], baseline_fade_steps=options["baseline_fade_steps"],
        temperature=make_schedule(options["temperature_schedule"], options["temperature"],
                                  options["temperature_final"], steps=steps))))

register(EstimatorSpec(
    name="ram", summary="exact marginalisation of one label at a time at a shared sample",
    hyperparameters=(
        Hyperparameter("labels_per_step", 1, "ram: labels marginalised per step, or 'all' (one: at most "
                       "~2x SF's time)", type=int_or_all,
                       suggest=lambda trial, n, values: trial.suggest_int("labels_per_step", 1, max(1, n))),
    ),
    build=lambda options, steps: Ram(labels_per_step=options["labels_per_step"])))
