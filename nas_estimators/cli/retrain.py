"""``retrain`` and ``table`` subcommands: the DARTS evaluation protocol for found cells, and the results table.

Heavy imports (torch, NNI, plotly) happen inside the handlers so ``nas-estimators --help`` stays quick.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import run_folder
from .common import usage_error


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``retrain`` and ``table`` on the ``nas-estimators`` subcommand parser."""
    retrain = commands.add_parser(
        "retrain", help="train a found DARTS cell from scratch (DARTS evaluation protocol)",
        description="Build the fixed DARTS network of an architecture at evaluation size and train it on the whole "
                    f"training set; writes {run_folder.RETRAIN_HISTORY} (per epoch), {run_folder.RETRAIN_RESULT} (test error, "
                    f"parameters, GPU seconds), {run_folder.ARCHITECTURE}, {run_folder.CONFIG} and "
                    f"{run_folder.CHECKPOINT} (every epoch) to --output.")
    retrain.add_argument("--architecture", required=True,
                         help="a search output directory, a JSON file of an NNI DARTS sample, darts-v2 (the published "
                              "DARTS second-order cell) or random:SEED (a random cell)")
    retrain.add_argument("--output", help="output directory (default: runs/retrain-NAME)")
    retrain.add_argument("--dataset", default="cifar10", help="cifar10 (the default; needs --data-root) or digits")
    retrain.add_argument("--data-root", help="CIFAR-10 location (as for search)")
    retrain.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10")
    protocol = retrain.add_argument_group("protocol (defaults: DARTS evaluation)")
    protocol.add_argument("--cells", type=int, default=20, help="cells in the network (default: 20)")
    protocol.add_argument("--width", type=int, default=36, help="initial channels (default: 36)")
    protocol.add_argument("--epochs", type=int, default=600, help="epochs (default: 600)")
    protocol.add_argument("--batch-size", type=int, default=96, help="images per batch (default: 96)")
    protocol.add_argument("--learning-rate", type=float, default=0.025, help="SGD learning rate, cosine to 0 (0.025)")
    protocol.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: 0.9)")
    protocol.add_argument("--weight-decay", type=float, default=3e-4, help="weight decay (default: 3e-4)")
    protocol.add_argument("--cutout", type=int, default=16, help="cutout square side, 0 for none (default: 16)")
    protocol.add_argument("--drop-path", type=float, default=0.2,
                          help="final drop-path probability, ramped linearly from 0 (default: 0.2)")
    protocol.add_argument("--auxiliary-weight", type=float, default=0.4,
                          help="auxiliary head loss weight, 0 for no head (default: 0.4; needs 32x32 images)")
    protocol.add_argument("--grad-clip", type=float, default=5.0, help="gradient norm clip, 0 for none (default: 5)")
    retrain.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    retrain.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    retrain.add_argument("--precision", default="auto", help="auto (bf16 autocast on CUDA), bf16 or fp32")
    retrain.add_argument("--resume", action="store_true", help="continue the retraining in --output")
    retrain.set_defaults(handler=_retrain)

    table = commands.add_parser(
        "table", help="the results table (error, parameters, search cost) from search and retrain outputs",
        description="Write table.csv, table.md and table.html (error against search cost) from retraining "
                    f"directories ({run_folder.RETRAIN_RESULT}) and search directories ({run_folder.CONFIG}, "
                    f"{run_folder.HISTORY}).")
    table.add_argument("paths", nargs="+", metavar="DIR", help="retrain and search output directories")
    table.add_argument("--output", default=".", help="folder for table.csv/md/html (default: .)")
    table.set_defaults(handler=_table)



def _retrain(args: argparse.Namespace) -> int:
    from ..checkpoints import CheckpointError
    from ..data import DATASETS, DataError
    from ..retrain import RetrainConfig, RetrainDiverged, RetrainError, retrain

    if args.dataset not in DATASETS:
        raise usage_error(ValueError(f"--dataset: expected one of {', '.join(DATASETS)}, got {args.dataset!r}"))
    name = Path(args.architecture.rstrip("/")).name.replace(":", "-").removesuffix(".json") or "architecture"
    config = RetrainConfig(
        architecture=args.architecture, output=args.output or f"runs/retrain-{name}", dataset=args.dataset,
        data_root=args.data_root, download=args.download, cells=args.cells, width=args.width,
        batch_size=args.batch_size, learning_rate=args.learning_rate, momentum=args.momentum,
        weight_decay=args.weight_decay, epochs=args.epochs, cutout=args.cutout, drop_path=args.drop_path,
        auxiliary_weight=args.auxiliary_weight, grad_clip=args.grad_clip, seed=args.seed, device=args.device,
        precision=args.precision, resume=args.resume)
    try:
        result = retrain(config, progress=lambda line: print(line, flush=True))
    except (RetrainError, DataError, CheckpointError, ValueError) as error:
        raise usage_error(error) from None
    except RetrainDiverged as error:
        print(f"nas-estimators retrain: diverged: {error}", file=sys.stderr)
        return 1
    print(f"test error {result['test_error']:.2f}%  parameters {result['parameters_m']:.3f} M  "
          f"{result['epochs']} epochs in {result['gpu_seconds']:.1f} s: {run_folder.RunFolder(config.output).retrain_result}")
    return 0


def _table(args: argparse.Namespace) -> int:
    from ..retrain import RetrainError, table_rows, write_table

    try:
        table = table_rows(args.paths)
    except RetrainError as error:
        raise usage_error(error) from None
    for path in write_table(table, Path(args.output)):
        print(path)
    print(table.drop(columns=["directory"]).to_string(index=False), file=sys.stdout)
    return 0
