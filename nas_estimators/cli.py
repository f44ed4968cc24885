"""``nas-estimators`` command line (also ``python -m nas_estimators``)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import commands_bench, commands_compare
from .data import DATASETS
from .schedules import SCHEDULES
from .spaces import BATCH_NORMS

ESTIMATOR_CHOICES = ("sf", "relax", "ram")
SPACE_CHOICES = ("darts", "nb201")


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit status 2."""


def usage_error(error: BaseException) -> UsageError:
    """``error`` as a usage error: its first line, shown to the user without a traceback (exit 2)."""
    return UsageError(str(error).splitlines()[0] if str(error) else type(error).__name__)


def _optional_int(text: str) -> int | None:
    if text.lower() in ("none", "all"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or 'all', got {text!r}") from None


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """The search options, shared by every command that runs searches."""
    parser.add_argument("--estimator", choices=ESTIMATOR_CHOICES, default="sf", help="gradient estimator (default: sf)")
    parser.add_argument("--space", choices=SPACE_CHOICES, default="darts", help="model space (default: darts)")
    parser.add_argument("--dataset", choices=DATASETS, default="digits",
                        help="digits (ships with scikit-learn, the default) or cifar10 (needs --data-root)")
    parser.add_argument("--data-root", help="CIFAR-10: torchvision's cifar-10-batches-py files or DIR/train/<class>/, "
                                            "DIR/test/<class>/ image folders")
    parser.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10 into --data-root")
    parser.add_argument("--epochs", type=int, help="search epochs (default: 40 on digits, 50 on cifar10)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--width", type=int, help="initial channels (default: 16; 8 on digits)")
    parser.add_argument("--cells", type=int,
                        help="DARTS: cells in the network (default 8; 5 on digits); nb201: cells per stage (5; 1 on digits)")
    parser.add_argument("--weight-learning-rate", type=float, default=0.025, help="SGD learning rate of the weights")
    parser.add_argument("--arc-learning-rate", type=float, default=3e-3, help="Adam learning rate of the logits")
    parser.add_argument("--warmup-epochs", type=int, default=0, help="epochs that train weights only")
    parser.add_argument("--batch-norm", choices=BATCH_NORMS, default="nni",
                        help="supernet batch norm: nni (as NNI builds it) or no-affine (batch statistics only, "
                             "no affine parameters, as NAS-Bench-201's one-shot searches)")
    parser.add_argument("--uniform-weight-paths", type=float, default=0.0, metavar="SHARE",
                        help="share of steps whose weights train a uniformly drawn path, in [0, 1] "
                             "(1: single-path one-shot; 0: paths from the learnt distribution)")
    estimators = parser.add_argument_group("estimator hyperparameters")
    estimators.add_argument("--baseline-decay", type=float, default=0.9, help="sf: moving-average decay, in [0, 1)")
    estimators.add_argument("--samples-per-step", type=int, default=1,
                            help="sf: architectures scored a step; >= 2 uses leave-one-out baselines (default: 1)")
    estimators.add_argument("--surrogate-width", type=int, default=64, help="relax: hidden units of the surrogate")
    estimators.add_argument("--surrogate-lr", type=float, default=1e-3, help="relax: surrogate learning rate")
    estimators.add_argument("--temperature", type=float, default=0.5, help="relax: (initial) temperature")
    estimators.add_argument("--temperature-final", type=float, help="relax: final temperature of the schedule")
    estimators.add_argument("--temperature-schedule", choices=sorted(SCHEDULES), default="constant",
                            help="relax: temperature schedule over the search")
    estimators.add_argument("--labels-per-step", type=_optional_int, default=1,
                            help="ram: labels marginalised per step, or 'all' (default: 1, at most ~2x SF's time)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas-estimators", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    search = commands.add_parser("search", help="search a model space with one estimator",
                                 description="Search a model space; writes architecture.json, history.csv, "
                                             "probabilities.csv, top_k.csv/json and checkpoint.ckpt to --output.")
    add_search_arguments(search)
    search.add_argument("--output", default=None, help="output directory (default: runs/ESTIMATOR-SPACE-DATASET-sSEED)")
    search.add_argument("--top-k", type=int, default=5, help="also write the K most probable architectures")
    search.add_argument("--benchmark-table", metavar="CSV",
                        help="nb201: NAS-Bench-201 accuracy table (arch, accuracy); scores the mode every epoch "
                             "and the top-k architectures")
    search.add_argument("--panel-images", type=int, default=512,
                        help="with --benchmark-table: held-out images on which a panel of 80 architectures is "
                             "scored each epoch (Kendall's tau in history.csv; 0: off)")
    search.add_argument("--resume", action="store_true",
                        help="continue the search in --output with its saved options (--epochs may extend it)")
    search.add_argument("--max-bad-steps", type=int, default=20,
                        help="stop after this many consecutive non-finite steps (0: never; default 20)")
    search.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="auto: bf16 autocast on CUDA, fp32 on the CPU")
    search.add_argument("--channels-last", action="store_true", help="channels-last memory format (CUDA)")
    search.add_argument("--deterministic", action="store_true",
                        help="deterministic algorithms only (CUDA: reproducible, slower)")
    search.add_argument("--no-progress", action="store_true", help="no progress bar")
    search.set_defaults(handler=_search)
    for command in (commands_bench, commands_compare):
        command.add_parser(commands)
    from .commands_export import add_parsers as add_export_commands  # export, report, webui
    add_export_commands(commands)
    from .commands_tune import add_parser as add_tune_command  # imports cli: not at module level
    add_tune_command(commands)
    from .commands_retrain import add_parser as add_retrain_commands  # retrain, table
    add_retrain_commands(commands)
    return parser


def _search(args: argparse.Namespace) -> int:
    from .search import SearchConfig, SearchDiverged, SearchInterrupted, load_saved_config, prepare, run_search

    output = args.output or f"runs/{args.estimator}-{args.space}-{args.dataset}-s{args.seed}"
    if args.resume:
        if args.output is None:
            raise UsageError("resume: name the search to continue with --output DIR")
        try:
            config = load_saved_config(output)
        except ValueError as error:
            raise UsageError(str(error)) from None
        # The directory given wins over the one saved: a search may have been moved or copied.
        config.output, config.resume, config.progress, config.device = output, True, not args.no_progress, args.device
        config.epochs = args.epochs if args.epochs is not None else config.epochs
        return _run(config, prepare, run_search, SearchDiverged, SearchInterrupted)
    config = SearchConfig(
        estimator=args.estimator, space=args.space, dataset=args.dataset, data_root=args.data_root,
        download=args.download, output=output, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        device=args.device, width=args.width, cells=args.cells, weight_learning_rate=args.weight_learning_rate,
        arc_learning_rate=args.arc_learning_rate, warmup_epochs=args.warmup_epochs,
        uniform_weight_paths=args.uniform_weight_paths, panel_images=args.panel_images, batch_norm=args.batch_norm,
        baseline_decay=args.baseline_decay, samples_per_step=args.samples_per_step, surrogate_width=args.surrogate_width, surrogate_lr=args.surrogate_lr,
        temperature=args.temperature, temperature_final=args.temperature_final,
        temperature_schedule=args.temperature_schedule, labels_per_step=args.labels_per_step,
        top_k=args.top_k, benchmark_table=args.benchmark_table, max_bad_steps=args.max_bad_steps, deterministic=args.deterministic,
        precision=args.precision, channels_last=args.channels_last,
        progress=not args.no_progress)
    return _run(config, prepare, run_search, SearchDiverged, SearchInterrupted)


def _run(config, prepare, run_search, diverged, interrupted) -> int:
    try:
        parts = prepare(config)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise UsageError(str(error)) from None
    try:
        result = run_search(config, parts)
    except interrupted as error:
        print(f"nas-estimators search: {error}", file=sys.stderr)
        return 128 + error.signal_number
    except diverged as error:
        print(f"nas-estimators search: error: {error}; the last good checkpoint is "
              f"{parts['output'] / 'checkpoint.ckpt'}", file=sys.stderr)
        return 1
    history = result["history"]
    last = history.iloc[-1] if len(history) else None
    print(f"architecture: {result['output'] / 'architecture.json'}")
    if last is not None:
        print(f"final epoch: val_acc {last['val_acc']:.4f}  entropy {last['entropy']:.3f}  "
              f"search time {result['seconds']:.1f} s")
    return 0


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
