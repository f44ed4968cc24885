"""``nas-estimators search``: one estimator over one model space, resumable."""

from __future__ import annotations

import argparse
import math
import sys

from .. import methods, run_folder
from ..options import add_options
from ..search import SearchConfig
from .common import UsageError, add_search_arguments, search_config


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    search = commands.add_parser("search", help="search a model space with one estimator",
                                 description=f"Search a model space; writes {run_folder.ARCHITECTURE}, {run_folder.HISTORY}, "
                                             f"{run_folder.PROBABILITIES}, {run_folder.TOP_K_CSV}, "
                                             f"{run_folder.TOP_K_JSON} and {run_folder.CHECKPOINT} to --output.")
    add_search_arguments(search, nni_strategies=True)
    search.add_argument("--output", default=None, help="output directory (default: runs/ESTIMATOR-SPACE-DATASET-sSEED)")
    add_options(search, SearchConfig, ("top_k", "benchmark_table", "panel_images", "resume", "deterministic", "cost",
                                       "cost_target"))
    search.add_argument("--no-progress", action="store_true", help="no progress bar")
    search.add_argument("--devices", type=int, default=None,
                        help="processes on this machine (GPUs, or CPU processes with --device cpu), each sampling "
                             "its own architectures; Lightning's DDP (default: 1)")
    search.add_argument("--num-nodes", type=int, default=None,
                        help="machines, each running --devices processes (Lightning's num_nodes; default: 1)")
    search.add_argument("--uniform-draws", type=int, default=4, metavar="N",
                        help="architectures drawn uniformly from the space and scored after the search as the exported "
                             "one is (same weights, same held-out half): the chance level it should clear; each costs "
                             "one pass over the data (default: 4; 0: none)")
    search.set_defaults(handler=_search)
    return search


def _search(args: argparse.Namespace) -> int:
    from ..search import SearchConfig, SearchDiverged, SearchInterrupted, prepare, run_search

    output = args.output or f"runs/{args.estimator}-{args.space}-{args.dataset}-s{args.seed}"
    if isinstance(args.uniform_draws, bool) or args.uniform_draws < 0:
        raise UsageError(f"uniform-draws: expected an integer >= 0, got {args.uniform_draws}")
    if args.resume:
        if args.output is None:
            raise UsageError("resume: name the search to continue with --output DIR")
        try:
            config = SearchConfig.saved(output)
        except ValueError as error:
            raise UsageError(str(error)) from None
        # The directory given wins over the one saved: a search may have been moved or copied.
        config.output, config.resume, config.progress, config.device = output, True, not args.no_progress, args.device
        config.epochs = args.epochs if args.epochs is not None else config.epochs
        # Given again, they must match the checkpoint's (checked with its other options).
        config.devices = args.devices if args.devices is not None else config.devices
        config.num_nodes = args.num_nodes if args.num_nodes is not None else config.num_nodes
        return _run(config, prepare, run_search, SearchDiverged, SearchInterrupted, args.uniform_draws)
    config = search_config(args, output=output, devices=1 if args.devices is None else args.devices,
                           num_nodes=1 if args.num_nodes is None else args.num_nodes)
    return _run(config, prepare, run_search, SearchDiverged, SearchInterrupted, args.uniform_draws)


def _run(config, prepare, run_search, diverged, interrupted, uniform_draws: int) -> int:
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
                  f"{run_folder.RunFolder(parts.output).checkpoint}", file=sys.stderr)
        return 1
    if result["rank"] != 0:  # another process of a data-parallel search: rank 0 reports
        return 0
    history = result["history"]
    last = history.iloc[-1] if len(history) else None
    output = run_folder.RunFolder(result['output'])
    print(f"architecture: {output.architecture}")
    if last is not None:
        # without the supernet term no step scores a path on the held-out half: there is no val_acc to print
        accuracy = f"val_acc {last['val_acc']:.4f}  " if last['val_acc'] == last['val_acc'] else ""
        values = getattr(result["strategy"].search_module.distribution, "values", None)  # NNI's: none
        # where every search of ours starts
        uniform = "" if values is None else f" (uniform: {sum(math.log(len(v)) for v in values.values()):.3f})"
        print(f"final epoch: {accuracy}entropy {last['entropy']:.3f}{uniform}  search time {result['seconds']:.1f} s")
    from ..search import weights_trained

    # NNI's supernet mixes candidates (no single path to score); untrained weights' accuracy says nothing
    scored = methods.get(config.estimator).kind == "estimator" and weights_trained(config, parts)
    if scored:
        from ..evaluate import exported_val_accuracy, uniform_val_accuracies

        accuracy = exported_val_accuracy(result, parts, config.seed)
        print(f"exported architecture: val_acc {accuracy:.4f} (shared weights, batch norm recalibrated on the "
              "weights half, scored on the architecture half)")
        if uniform_draws:
            chance = uniform_val_accuracies(result, parts, config.seed, uniform_draws)
            print(f"{uniform_draws} uniformly drawn architectures, scored the same way: mean val_acc "
                  f"{sum(chance) / len(chance):.4f} (min {min(chance):.4f}, max {max(chance):.4f})")
    print(f"next: nas-estimators report {output.path}  (probabilities, entropy, the cell's diagram); "
          f"nas-estimators export {output.path}")
    return 0
