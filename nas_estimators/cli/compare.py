"""``nas-estimators compare``: methods x seeds on one space and data, side by side, resumable."""

from __future__ import annotations

import argparse
import sys

from .common import (UsageError, add_estimator_arguments, add_objective_argument, add_threads_argument,
                     estimator_values, objective_weights)


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..compare import DEFAULT_METHODS, methods

    parser = subparsers.add_parser(
        "compare", help="compare search methods (ours and NNI's) over several seeds",
        description="Run each method with each seed on the same space, data, epochs and batch size; write "
                    "results.csv, summary.csv and report.html to --output. Finished runs are not redone.")
    parser.add_argument("--methods", nargs="+", default=[",".join(DEFAULT_METHODS)], metavar="NAME",
                        help=f"comma- or space-separated, from {', '.join(methods())} (default: {','.join(DEFAULT_METHODS)})")
    parser.add_argument("--seeds", nargs="+", default=["0,1,2"], metavar="SEED", help="seeds (default: 0,1,2)")
    parser.add_argument("--space", default="nb201", help="nb201 or darts (default: nb201)")
    parser.add_argument("--dataset", default="digits", help="digits (the default) or cifar10 (needs --data-root)")
    parser.add_argument("--data-root", help="CIFAR-10, as for search --data-root")
    parser.add_argument("--epochs", type=int, help="search epochs of every one-shot method (default: 10 on digits, 50 on cifar10)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    parser.add_argument("--width", type=int, help="initial channels (default: 16; 8 on digits)")
    parser.add_argument("--cells", type=int, help="nb201: cells per stage (default 5; 1 on digits); darts: cells")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                        help="bf16 autocast or fp32 (default auto: bf16 on CUDA, fp32 on CPU)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last images and weights")
    parser.add_argument("--benchmark-table", metavar="CSV",
                        help="NAS-Bench-201 accuracies (arch, accuracy columns): score the mode every epoch")
    parser.add_argument("--arc-learning-rate", type=float, default=3e-3,
                        help="Adam learning rate of the logits of sf, relax and ram (default: 3e-3; NNI's "
                             "strategies keep their own)")
    parser.add_argument("--batch-norm", default="nni",
                        help="every one-shot method's supernet batch norm: nni or no-affine (default: nni)")
    parser.add_argument("--weight-learning-rate", type=float, default=0.025,
                        help="SGD learning rate of the shared weights, for every one-shot method (default: 0.025)")
    parser.add_argument("--warmup-epochs", type=int, default=0,
                        help="epochs that train weights only, for every one-shot method (default: 0)")
    parser.add_argument("--uniform-weight-paths", type=float, default=0.0, metavar="SHARE",
                        help="sf, relax, ram: share of steps whose weights train a uniformly drawn path, in [0, 1]")
    parser.add_argument("--panel-images", type=int, default=512,
                        help="sf, relax, ram with --benchmark-table: held-out images scoring the supernet's "
                             "ranking panel each epoch (0: off)")
    parser.add_argument("--budget", type=int, default=100,
                        help="architectures each multi-trial method queries (default: 100)")
    parser.add_argument("--table-learning-rate", type=float, default=0.1,
                        help="sf-table, relax-table, ram-table: Adam learning rate of the logits (default: 0.1)")
    parser.add_argument("--table-noise", type=float, default=0.0,
                        help="table and multi-trial methods: standard deviation of Gaussian noise added to each "
                             "queried error (1 - accuracy/100; default: 0); they return their best-scored query")
    parser.add_argument("--output", default="runs/compare", help="output directory (default: runs/compare)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: write results.csv, summary.csv and report.html of the runs already "
                             "finished in --output (the others are named and left out)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--freeze-weights", action="store_true",
                        help="sf, relax, ram: after the weights-only epochs keep the weights fixed (two stages)")
    add_objective_argument(parser)
    add_threads_argument(parser)
    add_estimator_arguments(parser)  # each of our estimators reads its own; the others ignore them
    parser.set_defaults(handler=_compare)
    return parser


def _compare(args: argparse.Namespace) -> int:
    from ..compare import CompareConfig, InputError, list_argument, run_compare

    try:
        config = CompareConfig(
            methods=list_argument(args.methods), seeds=list_argument(args.seeds, int), space=args.space,
            dataset=args.dataset, data_root=args.data_root, epochs=args.epochs, batch_size=args.batch_size,
            width=args.width, cells=args.cells, device=args.device, precision=args.precision,
            channels_last=args.channels_last, benchmark_table=args.benchmark_table, budget=args.budget,
            arc_learning_rate=args.arc_learning_rate, warmup_epochs=args.warmup_epochs,
            weight_learning_rate=args.weight_learning_rate, batch_norm=args.batch_norm, uniform_weight_paths=args.uniform_weight_paths, panel_images=args.panel_images,
            table_learning_rate=args.table_learning_rate, table_noise=args.table_noise,
            estimator_options=estimator_values(args), objective=objective_weights(args.objective),
            threads=args.threads, freeze_weights=args.freeze_weights, output=args.output, progress=not args.no_progress, report_only=args.report_only)
    except ValueError as error:  # a seed that is not an integer
        raise UsageError(f"seeds: expected integers, {error}") from None
    from ..recorder import SearchInterrupted

    try:
        result = run_compare(config, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except InputError as error:
        raise UsageError(" ".join(str(error).split())) from None
    except SearchInterrupted as error:  # the running search saved a checkpoint: the same command resumes it
        print(f"nas-estimators compare: {error}; rerun the same command to continue", file=sys.stderr)
        return 128 + error.signal_number
    import pandas as pd

    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 200):
        print(result["summary"].to_string(index=False))
    print(f"results: {result['output'] / 'results.csv'}, summary: {result['output'] / 'summary.csv'}, "
          f"report: {result['output'] / 'report.html'}")
    return 0
