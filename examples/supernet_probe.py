"""What a finished NAS-Bench-201 search's supernet ranks best, scored on many held-out images.

Two measurements of docs/search-quality.md, on the search's own weights (loaded as `frozen-search` does):

* ``--panel``: the table's 200 best cells and 200 others drawn uniformly, each scored with the shared
  weights; prints Kendall's tau against the table and the table accuracy of the cells the supernet
  scores best (what a perfect estimator would settle on, among these);
* ``--rescore K``: the distribution's K most probable cells rescored on the images; prints the table
  accuracy of the one with the lowest loss (deriving the result from the top K instead of the mode).

Usage:
    python examples/supernet_probe.py SEARCH_DIR [SEARCH_DIR ...] --table nas-bench-201-cifar10.csv \
        [--data-root CIFAR10_DIR] [--images 512] [--panel] [--rescore 5] [--json OUT.jsonl]
"""

from __future__ import annotations

import argparse
import json

import torch

from nas_estimators.checkpoints import read_checkpoint
from nas_estimators.distribution import ArchitectureDistribution
from nas_estimators.frozen import load_supernet
from nas_estimators.lightning import CHECKPOINT_KEY
from nas_estimators.nasbench201 import BenchmarkTable, from_arch_string
from nas_estimators.ranking import kendall_tau


def scores(supernet, architectures, images: int, batch_size: int = 256) -> list[float]:
    inputs, targets = supernet.batches.fixed(images)
    batches = [(inputs[i:i + batch_size], targets[i:i + batch_size]) for i in range(0, images, batch_size)]
    return [sum(float(supernet.loss(batch, a)) * len(batch[1]) for batch in batches) / images for a in architectures]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("searches", nargs="+")
    parser.add_argument("--table", required=True)
    parser.add_argument("--data-root")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--panel", action="store_true")
    parser.add_argument("--rescore", type=int, default=0)
    parser.add_argument("--json")
    args = parser.parse_args()
    table = BenchmarkTable.from_csv(args.table)
    keys = sorted(table, key=lambda key: (-table.accuracy(key), key))
    rest = keys[200:]
    panel = keys[:200] + [rest[i] for i in torch.randperm(len(rest), generator=torch.Generator().manual_seed(0))[:200]]
    for search in args.searches:
        supernet = load_supernet(search, data_root=args.data_root, device="cpu")
        record = {"search": search, "seed": supernet.config.seed, "estimator": supernet.config.estimator}
        if args.panel:
            losses = scores(supernet, [from_arch_string(key) for key in panel], args.images)
            accuracy = [table.accuracy(key) for key in panel]
            order = sorted(range(len(panel)), key=losses.__getitem__)
            record.update(panel_loss_tau=kendall_tau([-loss for loss in losses], accuracy),
                          panel_best=accuracy[order[0]], panel_top10_mean=sum(accuracy[i] for i in order[:10]) / 10,
                          panel_top10=[accuracy[i] for i in order[:10]])
        if args.rescore:
            distribution = ArchitectureDistribution.from_model_space(supernet.model)
            distribution.load_state_dict(read_checkpoint(f"{search}/checkpoint.ckpt")[CHECKPOINT_KEY]["distribution"])
            top = [architecture for architecture, _ in distribution.top_k(args.rescore)]
            losses = scores(supernet, top, args.images)
            record.update(mode=table.accuracy(top[0]), rescored=table.accuracy(top[min(range(len(top)), key=losses.__getitem__)]),
                          top_k=[table.accuracy(a) for a in top])
        print(json.dumps(record), flush=True)
        if args.json:
            with open(args.json, "a") as handle:
                handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
