"""``nas-estimators frozen-search``: an estimator on a finished search's frozen supernet (see ``frozen.py``)."""

from __future__ import annotations

import argparse

from .. import registry, run_folder
from ..objective import DEFAULT_OBJECTIVE
from ..frozen import FrozenConfig
from ..options import add_options, values
from .common import (add_estimator_arguments, add_objective_argument, estimator_values, objective_weights,
                     usage_error)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "frozen-search", help="what a finished search's supernet prefers: an estimator on its frozen weights",
        description="Load a finished search, fix its shared weights and run an estimator from the uniform "
                    "distribution on them (forward passes on the held-out architecture half only). The mode it "
                    "settles on is the supernet's own preference: if it is no better than the search's, the "
                    "supernet, not the estimator, limits the search. "
                    f"Writes {run_folder.HISTORY} and {run_folder.ARCHITECTURE}.")
    parser.add_argument("search", metavar="SEARCH_DIR", help=f"a search output directory ({run_folder.CONFIG}, {run_folder.CHECKPOINT})")
    parser.add_argument("--estimator", choices=registry.names(),
                        help="default: the search's estimator; its hyperparameters default to the search's")
    parser.add_argument("--output", help="output directory, must not exist (default: SEARCH_DIR/frozen-ESTIMATOR)")
    parser.add_argument("--quiet", action="store_true", help="no line per epoch")
    add_objective_argument(parser, DEFAULT_OBJECTIVE)  # the supernet's own preference
    add_options(parser, FrozenConfig)
    add_estimator_arguments(parser, unset="the search's")
    parser.set_defaults(handler=_frozen_search)
    return parser


def _frozen_search(args: argparse.Namespace) -> int:
    import json

    from ..checkpoints import CheckpointError
    from ..data import DataError
    from ..frozen import frozen_search

    try:
        result = frozen_search(args.search, estimator=args.estimator, destination=args.output,
                               objective=objective_weights(args.objective),
                               **values(args, FrozenConfig),
                               options={k: v for k, v in estimator_values(args).items() if v is not None},
                               progress=None if args.quiet else lambda line: print(line, flush=True))
    except (ValueError, TypeError, FileNotFoundError, DataError, CheckpointError) as error:
        raise usage_error(error) from None
    print(f"supernet's preference: {json.dumps(result['architecture'])}")
    print(f"written: {result['output']}")
    return 0
