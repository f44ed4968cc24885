"""``nas-estimators compare``: methods x seeds on one space and data, side by side, resumable."""

from __future__ import annotations

import argparse
import sys

from .common import (UsageError, add_estimator_arguments, add_objective_argument, estimator_values,
                     objective_weights)


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..run_folder import REPORT, RESULTS, SUMMARY
    from ..compare import DEFAULT_METHODS, CompareConfig
    from ..methods import names as methods
    from ..options import add_options

    parser = subparsers.add_parser(
        "compare", help="compare search methods (ours and NNI's) over several seeds",
        description="Run each method with each seed on the same space, data, epochs and batch size; write "
                    f"{RESULTS}, {SUMMARY} and {REPORT} to --output. Finished runs are not redone.")
    parser.add_argument("--methods", nargs="+", default=[",".join(DEFAULT_METHODS)], metavar="NAME",
                        help=f"comma- or space-separated, from {', '.join(methods())} (default: {','.join(DEFAULT_METHODS)})")
    parser.add_argument("--seeds", nargs="+", default=["0,1,2"], metavar="SEED", help="seeds (default: 0,1,2)")
    add_options(parser, CompareConfig)
    parser.add_argument("--method-epochs", default="", metavar="METHOD=N,...",
                        help="epochs of the named one-shot methods instead of --epochs, to give each the same "
                             "wall-clock (a step of NNI's DARTS runs every candidate: fewer epochs fill the same seconds)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_objective_argument(parser)
    add_estimator_arguments(parser)  # each of our estimators reads its own; the others ignore them
    parser.set_defaults(handler=_compare)
    return parser


def _compare(args: argparse.Namespace) -> int:
    from ..compare import CompareConfig, InputError, list_argument, method_epochs_argument, run_compare
    from ..integrations.compare_report import report_html
    from ..options import values

    try:
        epochs = method_epochs_argument(args.method_epochs)
    except InputError as error:
        raise UsageError(str(error)) from None
    try:
        config = CompareConfig(**values(args, CompareConfig), method_epochs=epochs,
                               methods=list_argument(args.methods), seeds=list_argument(args.seeds, int),
                               estimator_options=estimator_values(args), objective=objective_weights(args.objective),
                               progress=not args.no_progress)
    except ValueError as error:  # a seed that is not an integer
        raise UsageError(f"seeds: expected integers, {error}") from None
    from ..recorder import SearchInterrupted
    from ..run_folder import CompareFolder

    try:
        result = run_compare(config, progress=lambda line: print(line, file=sys.stderr, flush=True), report=report_html)
    except InputError as error:
        raise UsageError(" ".join(str(error).split())) from None
    except SearchInterrupted as error:  # the running search saved a checkpoint: the same command resumes it
        print(f"nas-estimators compare: {error}; rerun the same command to continue", file=sys.stderr)
        return 128 + error.signal_number
    import pandas as pd

    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 200):
        print(result["summary"].to_string(index=False))
    folder = CompareFolder(result["output"])
    print(f"results: {folder.results}, summary: {folder.summary}, report: {folder.report}")
    return 0
