"""``nas-estimators`` command line (also ``python -m nas_estimators``)."""

# One module a command; common.py holds what they share.

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import bench, benchmark_table, compare, export, frozen, pareto, retrain, search, tune
from .common import UsageError

COMMANDS = (search, frozen, bench, compare, pareto, export, tune, retrain, benchmark_table)  # in the order ``--help`` lists them


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line (``prog: error: ...``), without the usage block: a bad
    choice or a missing value reads as every other refused input does. ``--help`` shows the usage."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nas-estimators", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as error:
        parser.exit(2, f"nas-estimators {args.command}: error: {error}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"nas-estimators {args.command}: interrupted\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
