"""What every command shares: usage errors, option types and the search options."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Mapping

from .. import methods, recipe, registry
from ..objective import TERMS, parse_weights
from ..options import add_options
from ..search import SearchConfig, SupernetSettings
from ..settings import loop_fields


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit status 2."""


def usage_error(error: BaseException) -> UsageError:
    """``error`` as a usage error: its first line, shown to the user without a traceback (exit 2)."""
    return UsageError(str(error).splitlines()[0] if str(error) else type(error).__name__)


optional_int = registry.int_or_all  # a positive integer or all (None)


#: The search options every command that runs searches takes (their fields, defaults and help: SearchConfig's).
_LOOP = tuple(field.name for field in loop_fields())
SEARCH_OPTIONS = (*(field.name for field in dataclasses.fields(SupernetSettings) if field.name not in _LOOP),
                  "download", "seed", *_LOOP)  # what is searched, then how


def add_search_arguments(parser: argparse.ArgumentParser, nni_strategies: bool = False) -> None:
    """The search options, shared by every command that runs searches (``nni_strategies``: NNI's one-shot
    strategies are offered beside our estimators, as ``search`` runs them)."""
    kinds = ("estimator", "nni-oneshot") if nni_strategies else ("estimator",)
    parser.add_argument("--estimator", choices=methods.names(*kinds), default="sf",
                        help="gradient estimator" + (" or NNI's one-shot strategy, run with NNI's defaults"
                                                     if nni_strategies else "") + " (default: sf)")
    add_options(parser, SearchConfig, SEARCH_OPTIONS)
    add_objective_argument(parser, budget=nni_strategies)  # search alone takes --cost
    add_estimator_arguments(parser)


def objective_weights(text: str | None) -> dict[str, float] | None:
    """``--objective``'s value as term weights (None: unset), or a one-line :class:`UsageError`."""
    if text is None:
        return None
    try:
        return parse_weights(text)
    except ValueError as error:
        raise UsageError(str(error)) from None


def add_objective_argument(parser: argparse.ArgumentParser, default: Mapping[str, float] | None = None,
                           budget: bool = False) -> None:
    """``--objective``; unset (``default`` None) it is the method's: the recipe's terms for ours (``budget``: the
    help also names those under ``--cost``), the supernet's loss alone for NNI's (see :mod:`~nas_estimators.recipe`)."""
    def text(weights: Mapping[str, float]) -> str:
        return ",".join(f"{name}={weight:g}" for name, weight in weights.items())

    shown = text(default) if default is not None else \
        f"{text(recipe.OBJECTIVE)} for sf, relax and ram" + \
        (f" ({text(recipe.BUDGET_OBJECTIVE)} with --cost {' or '.join(recipe.BUDGET_OBJECTIVE_COSTS)})" if budget else "") + \
        f", {text(recipe.NNI_OBJECTIVE)} for NNI's strategies"
    parser.add_argument("--objective", default=None if default is None else text(default), metavar="TERM=W,...",
                        help=f"what the estimator minimises, as weighted terms from {', '.join(TERMS)} "
                             f"(default: {shown}; training-free terms are standardised, higher scores better)")


def add_estimator_arguments(parser: argparse.ArgumentParser, unset: str | None = None) -> None:
    """One option per registered estimator hyperparameter (``--baseline-decay``, ``--samples-per-step``, ...).

    ``unset`` says what an option left out means where it is not the registry's default (its value is then None).
    """
    estimators = parser.add_argument_group("estimator hyperparameters")
    for hyperparameter in registry.hyperparameters().values():
        default = hyperparameter.default if unset is None else None
        shown = unset if unset is not None else ("none" if default is None else default)
        estimators.add_argument(hyperparameter.option, dest=hyperparameter.name, type=hyperparameter.type,
                                choices=hyperparameter.choices, default=default,
                                help=f"{hyperparameter.help} (default: {shown})")


def estimator_values(args: argparse.Namespace) -> dict[str, Any]:
    """The registered hyperparameters' values in parsed options."""
    return {name: getattr(args, name) for name in registry.hyperparameters() if hasattr(args, name)}


def search_config(args: argparse.Namespace, **overrides: Any) -> SearchConfig:
    """The :class:`~nas_estimators.search.SearchConfig` of parsed search options (``overrides`` win)."""
    fields = {field.name for field in dataclasses.fields(SearchConfig)}
    values = {name: value for name, value in vars(args).items() if name in fields}
    values["estimator_options"] = {name: value for name, value in estimator_values(args).items() if name not in fields}
    if hasattr(args, "no_progress"):
        values["progress"] = not args.no_progress
    if isinstance(values.get("objective"), str):
        values["objective"] = objective_weights(values["objective"])
    values.update(overrides)
    return SearchConfig(**values)


