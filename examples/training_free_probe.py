"""Screen the training-free objective terms on NAS-Bench-201: Kendall's tau against the table, seconds a cell.

Scores a panel of cells (the table's best plus uniformly drawn ones, or every cell with --all) in a
never-trained NAS-Bench-201 supernet, as the search's objective terms do (one batch of CIFAR-10
training images, the copy initialised from --seed), and writes per-cell raw scores to OUT.csv and a
summary (tau, seconds per cell, the table accuracy of each term's best-scored cell) to OUT-summary.csv.

Usage (one thread, as every measured run):
    OMP_NUM_THREADS=1 python examples/training_free_probe.py CIFAR10_DIR TABLE_CSV OUT [--width 8 --cells 1]
        [--seed 0] [--uniform 200 --best 50 | --all]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from nas_estimators import objective
from nas_estimators.data import load_dataset, search_batches
from nas_estimators.nasbench201 import BenchmarkTable, from_arch_string
from nas_estimators.ranking import kendall_tau, panel_architectures
from nas_estimators.spaces import build_space
from nas_estimators.strategy import path_sampling_supernet

DEFAULT_TERMS = ("synflow", "naswot", "params", "flops")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root")
    parser.add_argument("table")
    parser.add_argument("out")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--cells", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--uniform", type=int, default=200)
    parser.add_argument("--best", type=int, default=50)
    parser.add_argument("--all", action="store_true", help="score every cell of the table")
    parser.add_argument("--terms", default=",".join(DEFAULT_TERMS), help="training-free terms to score, comma-separated")
    args = parser.parse_args()
    terms = tuple(args.terms.split(","))

    table = BenchmarkTable.from_csv(args.table)
    data = load_dataset("cifar10", args.data_root)
    torch.manual_seed(args.seed)
    supernet = path_sampling_supernet(build_space("nb201", args.width, args.cells, num_classes=data.num_classes))
    inputs, _ = search_batches(data, 64, device=torch.device("cpu"), seed=args.seed)[0].fixed(objective.SCORING_IMAGES)
    network = objective.ScoringNetwork(supernet, inputs, seed=args.seed)
    cells = [from_arch_string(key) for key in table] if args.all else \
        panel_architectures(table, args.uniform, args.best, seed=args.seed)
    rows, seconds = [], dict.fromkeys(terms, 0.0)
    for i, cell in enumerate(cells):
        row = {"benchmark_acc": table.accuracy(cell), "cell": cell}
        for name in terms:
            started = time.perf_counter()
            row[name] = network.score(cell, objective.TERMS[name].score_function)
            seconds[name] += time.perf_counter() - started
        rows.append(row)
        if (i + 1) % 200 == 0:
            print(f"{i + 1}/{len(cells)} cells, {sum(seconds.values()):.0f} s", flush=True)
    frame = pd.DataFrame(rows)
    frame["cell"] = frame["cell"].map(lambda c: "|".join(f"{k}={v}" for k, v in c.items()))
    frame.to_csv(f"{args.out}.csv", index=False)
    ranks = frame[list(terms)].rank(pct=True)
    sums = [combo for combo in (("synflow", "naswot", "params"), ("synflow", "naswot"), ("synflow", "params", "ntk"))
            if set(combo) <= set(terms)]
    for combo in sums:
        frame["sum_" + "_".join(combo)] = ranks[list(combo)].sum(axis=1)
    summary = []
    for name in [*terms, *("sum_" + "_".join(combo) for combo in sums)]:
        finite = frame[frame[name] > float("-inf")]
        best = frame.loc[frame[name].idxmax()]
        summary.append({"term": name, "tau": kendall_tau(finite[name].tolist(), finite["benchmark_acc"].tolist()),
                        "seconds_per_cell": seconds[name] / len(frame) if name in seconds else float("nan"),
                        "best_scored_benchmark_acc": best["benchmark_acc"], "cells": len(frame),
                        "width": args.width, "cells_per_stage": args.cells, "seed": args.seed})
    summary = pd.DataFrame(summary)
    summary.to_csv(f"{args.out}-summary.csv", index=False)
    print(summary.to_string(index=False))


if __name__ == "__main__":
    main()
