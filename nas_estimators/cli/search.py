"""``nas-estimators search``: one estimator over one model space, resumable."""

from __future__ import annotations

import argparse
import sys

from .common import UsageError, add_search_arguments, search_config


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
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
    search.add_argument("--devices", type=int, default=None,
                        help="processes on this machine (GPUs, or CPU processes with --device cpu), each sampling "
                             "its own architectures; Lightning's DDP (default: 1)")
    search.add_argument("--num-nodes", type=int, default=None,
                        help="machines, each running --devices processes (Lightning's num_nodes; default: 1)")
    search.set_defaults(handler=_search)
    return search


def _search(args: argparse.Namespace) -> int:
    from ..search import SearchDiverged, SearchInterrupted, load_saved_config, prepare, run_search

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
        # Given again, they must match the checkpoint's (checked with its other options).
        config.devices = args.devices if args.devices is not None else config.devices
        config.num_nodes = args.num_nodes if args.num_nodes is not None else config.num_nodes
        return _run(config, prepare, run_search, SearchDiverged, SearchInterrupted)
    config = search_config(args, output=output, devices=1 if args.devices is None else args.devices,
                           num_nodes=1 if args.num_nodes is None else args.num_nodes)
    return _run(config, prepare, run_search, SearchDiverged, SearchInterrupted)


def _run(config, prepare, run_search, diverged, interrupted) -> int:
    try:
        parts = prepare(config)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise UsageError(str(error)) from None
    from pytorch_lightning.utilities import rank_zero_only  # Lightning sets each process's rank here
    from torch.distributed import DistError

    try:
        result = run_search(config, parts)
    except interrupted as error:
        if rank_zero_only.rank == 0:  # one search, one message
            print(f"nas-estimators search: {error}", file=sys.stderr)
        return 128 + error.signal_number
    except DistError as error:  # the process group could not form (address in use, unreachable, no NCCL)
        backend = "nccl" if parts.device.type == "cuda" else "gloo"
        reason = " ".join(str(error).split())[:200]
        raise UsageError(f"devices: the {backend} backend could not start {config.processes} processes ({reason}); "
                         "check MASTER_ADDR and MASTER_PORT, or run with --devices 1") from None
    except diverged as error:
        if rank_zero_only.rank == 0:
            print(f"nas-estimators search: error: {error}; the last good checkpoint is "
                  f"{parts.output / 'checkpoint.ckpt'}", file=sys.stderr)
        return 1
    if result["rank"] != 0:  # another process of a data-parallel search: rank 0 reports
        return 0
    history = result["history"]
    last = history.iloc[-1] if len(history) else None
    print(f"architecture: {result['output'] / 'architecture.json'}")
    if last is not None:
        print(f"final epoch: val_acc {last['val_acc']:.4f}  entropy {last['entropy']:.3f}  "
              f"search time {result['seconds']:.1f} s")
    from ..evaluate import exported_val_accuracy

    accuracy = exported_val_accuracy(result, parts, config.seed)
    print(f"exported architecture: val_acc {accuracy:.4f} (shared weights, batch norm recalibrated on the "
          "weights half, scored on the architecture half)")
    return 0


