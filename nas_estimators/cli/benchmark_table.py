"""``nas-estimators benchmark-table``: the official NAS-Bench-201/NATS-Bench file as ``--benchmark-table``'s CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import UsageError


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..benchmark_files import DATASETS

    parser = subparsers.add_parser(
        "benchmark-table", help="make the NAS-Bench-201 table CSV from the official benchmark file",
        description="Read NATS-Bench's topology file (NATS-tss-v1_0-3ffb9-full.pickle.pbz2, its -simple directory) "
                    "or NAS-Bench-201's .pth with the nats_bench package, and write each cell's mean test "
                    "accuracy as the CSV that --benchmark-table reads.")
    parser.add_argument("source", metavar="FILE", help="the official file or directory")
    parser.add_argument("--output", required=True, help="the CSV to write (an existing file is not replaced)")
    parser.add_argument("--dataset", choices=list(DATASETS), default="cifar10",
                        help="whose test accuracy (default: cifar10)")
    parser.add_argument("--epochs", default="200",
                        help="results after this many training epochs: 200 or 12 in NATS-Bench, full or less in "
                             "NAS-Bench-201 v1_0 (default: 200)")
    parser.set_defaults(handler=_benchmark_table)
    return parser


def _benchmark_table(args: argparse.Namespace) -> int:
    from ..benchmark_files import read_official
    from ..files import atomic_write_text

    output = Path(args.output)
    if output.exists():
        raise UsageError(f"output: {output} exists; choose another --output")
    try:
        table = read_official(args.source, args.dataset, args.epochs)
    except ValueError as error:
        raise UsageError(" ".join(str(error).split())) from None
    atomic_write_text(output, table.to_csv(index=False, float_format="%.4f"))
    best = table.iloc[table.iloc[:, 1].idxmax()]
    print(f"{output}: {len(table)} cells; best {best.iloc[1]:.2f} ({best['arch']})")
    return 0
