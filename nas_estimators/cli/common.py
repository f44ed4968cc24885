"""What every command shares: usage errors, option types and the search options."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from .. import registry
from ..data import DATASETS
from ..objective import DEFAULT_OBJECTIVE, TERMS, parse_weights
from ..search import WARMUP_SHARE, SearchConfig
from ..spaces import BATCH_NORMS, SPACES


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit status 2."""


def usage_error(error: BaseException) -> UsageError:
    """``error`` as a usage error: its first line, shown to the user without a traceback (exit 2)."""
    return UsageError(str(error).splitlines()[0] if str(error) else type(error).__name__)


optional_int = registry.int_or_all  # a positive integer or all (None)


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """The search options, shared by every command that runs searches."""
    parser.add_argument("--estimator", choices=registry.names(), default="sf", help="gradient estimator (default: sf)")
    parser.add_argument("--space", choices=SPACES, default="darts", help="model space (default: darts)")
    parser.add_argument("--dataset", choices=DATASETS, default="digits",
                        help="digits (ships with scikit-learn, the default) or cifar10 (needs --data-root)")
    parser.add_argument("--data-root", help="CIFAR-10: torchvision's cifar-10-batches-py files or DIR/train/<class>/, "
                                            "DIR/test/<class>/ image folders")
    parser.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10 into --data-root")
    parser.add_argument("--epochs", type=int, help="search epochs (default: 100 on digits, 50 on cifar10)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--width", type=int, help="initial channels (default: 16; 8 on digits)")
    parser.add_argument("--cells", type=int,
                        help="DARTS: cells in the network (default 8; 5 on digits); nb201: cells per stage (5; 1 on digits)")
    parser.add_argument("--weight-learning-rate", type=float, default=0.025, help="SGD learning rate of the weights")
    parser.add_argument("--arc-learning-rate", type=float, default=SearchConfig.arc_learning_rate,
                        help=f"Adam learning rate of the logits (default: {SearchConfig.arc_learning_rate})")
    parser.add_argument("--warmup-epochs", type=int,
                        help=f"epochs that train weights only (default: {WARMUP_SHARE * 100:.0f}%% of --epochs)")
    parser.add_argument("--batch-norm", choices=BATCH_NORMS, default="nni",
                        help="supernet batch norm: nni (as NNI builds it) or no-affine (batch statistics only, "
                             "no affine parameters, as NAS-Bench-201's one-shot searches)")
    parser.add_argument("--uniform-weight-paths", type=float, default=SearchConfig.uniform_weight_paths, metavar="SHARE",
                        help="share of steps whose weights train a uniformly drawn path, in [0, 1] "
                             "(default 1: single-path one-shot; 0: paths from the learnt distribution)")
    parser.add_argument("--freeze-weights", action="store_true",
                        help="after the weights-only epochs keep the shared weights fixed: each step only updates "
                             "the distribution (two stages: train the supernet, then search it)")
    add_threads_argument(parser)
    add_objective_argument(parser)
    add_estimator_arguments(parser)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads of this process (default: OMP_NUM_THREADS if set, else 1 on the CPU, "
                             "which measured fastest for these small supernets, alone and beside other jobs)")


def objective_weights(text: str) -> dict[str, float]:
    """``--objective``'s value as term weights, or a one-line :class:`UsageError`."""
    try:
        return parse_weights(text)
    except ValueError as error:
        raise UsageError(str(error)) from None


def add_objective_argument(parser: argparse.ArgumentParser) -> None:
    default = ",".join(f"{name}={weight:g}" for name, weight in DEFAULT_OBJECTIVE.items())
    parser.add_argument("--objective", default=default, metavar="TERM=W,...",
                        help=f"what the estimator minimises, as weighted terms from {', '.join(TERMS)} "
                             f"(default: {default}; training-free terms are standardised, higher scores better)")


def add_estimator_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per registered estimator hyperparameter (``--baseline-decay``, ``--samples-per-step``, ...)."""
    estimators = parser.add_argument_group("estimator hyperparameters")
    for hyperparameter in registry.hyperparameters().values():
        estimators.add_argument(hyperparameter.option, dest=hyperparameter.name, type=hyperparameter.type,
                                choices=hyperparameter.choices, default=hyperparameter.default, help=hyperparameter.help)


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


