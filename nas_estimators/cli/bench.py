"""``nas-estimators bench``: search steps per second of each strategy, ours and NNI's."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import UsageError, add_estimator_arguments, estimator_values


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..bench import DEFAULT_STRATEGIES, BenchConfig, strategies
    from ..options import add_options

    parser = subparsers.add_parser(
        "bench", help="time search steps of each strategy, ours and NNI's",
        description="Run a fixed number of search steps for each strategy on the same space, data, batch size, "
                    "precision and device, one after the other after a warm-up; print a table and write JSON.")
    parser.add_argument("--strategies", nargs="+", default=[",".join(DEFAULT_STRATEGIES)], metavar="NAME",
                        help=f"comma- or space-separated, from {', '.join(strategies())} "
                             f"(default: {','.join(DEFAULT_STRATEGIES)})")
    add_options(parser, BenchConfig)
    add_estimator_arguments(parser)
    parser.add_argument("--devices", default="1", metavar="K[,K...]",
                        help="processes of a data-parallel search to time, e.g. 1,2 (ours only; rows sf-k2, ...; "
                             "default: 1)")
    parser.add_argument("--json", dest="json_path", help="also write the results as JSON to this path")
    parser.set_defaults(handler=_bench)
    return parser


def _bench(args: argparse.Namespace) -> int:
    from ..bench import BenchConfig, InputError, run_bench, strategies_argument, table
    from ..options import values

    config = BenchConfig(**values(args, BenchConfig), strategies=strategies_argument(args.strategies),
                         devices=_devices(args.devices), estimator_options=estimator_values(args))
    json_path = Path(args.json_path) if args.json_path else None
    try:
        if json_path is not None and json_path.is_dir():
            raise InputError(f"json: {json_path} is a directory; give a file path")
        record = run_bench(config, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except InputError as error:
        raise UsageError(" ".join(str(error).split())) from None
    import pandas as pd

    with pd.option_context("display.float_format", "{:.3g}".format, "display.width", 200):
        print(f"{record['device']}, {record['space']} width {record['width']} cells {record['cells']}, "
              f"batch {record['batch_size']}, {record['data']} data, {record['precision']}"
              f"{', channels-last' if record['channels_last'] else ''}")
        print(table(record).to_string())
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"json: {json_path}")
    return 0


def _devices(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"devices: expected comma-separated positive integers, got {text!r}") from None
