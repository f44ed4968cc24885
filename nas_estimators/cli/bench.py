"""``nas-estimators bench``: search steps per second of each strategy, ours and NNI's."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import UsageError, optional_int


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..bench import DEFAULT_STRATEGIES, strategies

    parser = subparsers.add_parser(
        "bench", help="time search steps of each strategy, ours and NNI's",
        description="Run a fixed number of search steps for each strategy on the same space, data, batch size, "
                    "precision and device, one after the other after a warm-up; print a table and write JSON.")
    parser.add_argument("--strategies", nargs="+", default=[",".join(DEFAULT_STRATEGIES)], metavar="NAME",
                        help=f"comma- or space-separated, from {', '.join(strategies())} "
                             f"(default: {','.join(DEFAULT_STRATEGIES)})")
    parser.add_argument("--space", default="darts", help="darts or nb201 (default: darts)")
    parser.add_argument("--width", type=int, help="initial channels (default: 16; 8 on digits)")
    parser.add_argument("--cells", type=int, help="DARTS: cells (default 8; 5 on digits); nb201: cells per stage (5; 1 on digits)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per strategy (default: 20)")
    parser.add_argument("--warmup-steps", type=int, default=5, help="untimed steps before them (default: 5)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds over all strategies, interleaved; the median round is reported (default: 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--data-root", help="real CIFAR-10 (as for search --data-root); default: scikit-learn's digits")
    parser.add_argument("--random-data", action="store_true", help="random uint8 images of CIFAR-10's shape instead")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                        help="bf16 autocast or fp32 for every strategy (default auto: bf16 on CUDA, fp32 on CPU)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last images and weights")
    parser.add_argument("--labels-per-step", type=optional_int, default=1,
                        help="ram: labels marginalised per step, or 'all' (default: 1, as in search)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--threads", type=int,
                        help="torch CPU threads (default: torch's); 1 gives steadier CPU timings on a busy machine")
    parser.add_argument("--devices", default="1", metavar="K[,K...]",
                        help="processes of a data-parallel search to time, e.g. 1,2 (ours only; rows sf-k2, ...; "
                             "default: 1)")
    parser.add_argument("--json", dest="json_path", help="also write the results as JSON to this path")
    parser.set_defaults(handler=_bench)
    return parser


def _bench(args: argparse.Namespace) -> int:
    from ..bench import BenchConfig, InputError, run_bench, strategies_argument, table

    config = BenchConfig(
        strategies=strategies_argument(args.strategies), space=args.space, width=args.width, cells=args.cells,
        batch_size=args.batch_size, steps=args.steps, warmup_steps=args.warmup_steps, device=args.device,
        data_root=args.data_root, random_data=args.random_data, precision=args.precision,
        channels_last=args.channels_last, labels_per_step=args.labels_per_step, seed=args.seed,
        threads=args.threads, repeats=args.repeats, devices=_devices(args.devices))
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
