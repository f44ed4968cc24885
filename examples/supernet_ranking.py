"""How well a finished NAS-Bench-201 supernet ranks cells, and which one-edge change of the trivial cell it prefers.

Scores, with the supernet's frozen weights on --images fixed held-out images (training-mode batch
norm, as the search scores paths): a panel of the table's --best cells and --uniform uniformly drawn
ones (seeded by the supernet's seed), and the all-conv_3x3 cell with each of its 24 one-edge changes.
Writes OUT.csv (one row a cell: loss, accuracy, table accuracy, which set) and prints a one-row
summary, also appended to SUMMARY (--summary): Kendall's tau of the loss (negated) and of the accuracy
against the table, the table accuracy of the panel's lowest-loss cell, and of the one-edge change
with the lowest loss (the table's best change is the skip on 0->3, 94.36).

    OMP_NUM_THREADS=1 python examples/supernet_ranking.py runs/paths/fair-s0 TABLE_CSV OUT [--images 2048]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from nas_estimators.frozen import load_supernet
from nas_estimators.nasbench201 import BenchmarkTable
from nas_estimators.ranking import kendall_tau, panel_architectures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet")
    parser.add_argument("table")
    parser.add_argument("out")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--uniform", type=int, default=200)
    parser.add_argument("--best", type=int, default=50)
    parser.add_argument("--summary", help="CSV to append the summary row to")
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = BenchmarkTable.from_csv(args.table)
    supernet = load_supernet(args.supernet, device="cpu")
    images, labels = supernet.batches.fixed(args.images)
    labels_of = supernet.distribution().labels
    trivial = {label: "conv_3x3" for label in labels_of}
    cells = [(cell, "panel") for cell in panel_architectures(table, args.uniform, args.best, seed=supernet.config.seed)]
    cells.append((trivial, "neighbourhood"))
    for label in labels_of:
        cells += [({**trivial, label: op}, "neighbourhood")
                  for op in supernet.distribution().values[label] if op != "conv_3x3"]
    started = time.perf_counter()
    rows = []
    for cell, group in cells:
        loss = correct = 0.0
        for i in range(0, len(labels), 256):
            batch = (images[i:i + 256], labels[i:i + 256])
            outputs = supernet.outputs(batch[0], cell)
            loss += float(torch.nn.functional.cross_entropy(outputs, batch[1], reduction="sum"))
            correct += float((outputs.argmax(1) == batch[1]).sum())
        changed = [f"{k.split('/')[-1]}={v}" for k, v in cell.items() if v != "conv_3x3"]
        rows.append({"group": group, "benchmark_acc": table.accuracy(cell), "loss": loss / len(labels),
                     "accuracy": correct / len(labels), "cell": "|".join(f"{k.split('/')[-1]}={v}" for k, v in cell.items()),
                     "change": ",".join(changed) or "(all conv_3x3)"})
    frame = pd.DataFrame(rows)
    frame.to_csv(f"{args.out}.csv", index=False)
    panel = frame[frame.group == "panel"]
    near = frame[frame.group == "neighbourhood"].sort_values("loss")
    summary = {
        "supernet": args.supernet, "seed": supernet.config.seed,
        "weight_paths": getattr(supernet.config, "weight_paths", "uniform"), "images": len(labels),
        "loss_tau": kendall_tau((-panel.loss).tolist(), panel.benchmark_acc.tolist()),
        "acc_tau": kendall_tau(panel.accuracy.tolist(), panel.benchmark_acc.tolist()),
        "panel_best_by_loss": panel.loc[panel.loss.idxmin(), "benchmark_acc"],
        "neighbour_best_by_loss": near.iloc[0]["benchmark_acc"], "neighbour_best_change": near.iloc[0]["change"],
        "rank_of_0_3_skip": int((near.change == "0_3=skip_connect").values.argmax()) + 1,
        "seconds": time.perf_counter() - started, "cells": len(frame),
    }
    print(pd.Series(summary).to_string(), flush=True)
    if args.summary:
        path = Path(args.summary)
        pd.DataFrame([summary]).to_csv(path, mode="a", header=not path.exists(), index=False)


if __name__ == "__main__":
    main()
