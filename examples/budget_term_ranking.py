"""Under a cost budget, do training-free terms rank cells of equal cost, or only their size?

Draws ``--cells`` NAS-Bench-201 cells within a FLOPs budget (default: half the all-``nor_conv_3x3`` cell's on the
CPU proxy's network, C=4, N=5), scores each on a never-trained copy of that network (SynFlow, parameters, NASWOT,
as the objective terms do) and prints Kendall's tau of each score with the table accuracy: over all drawn cells,
and within groups of cells of equal FLOPs (where size says nothing), weighted by group size:

    OMP_NUM_THREADS=1 python examples/budget_term_ranking.py nas-bench-201-cifar10.csv --cells 300 --seed 0 \\
        --out docs/results/nb201-budget-proxy/term-ranking-s0.csv

With ``--latency-table`` (a latency table ``search --cost latency`` cached for that network) the cells are drawn
within a latency budget (ms) instead, and grouped by the table's prediction rounded to ``--bucket`` ms.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys

import numpy as np
import pandas as pd
import torch
from scipy import stats

from nas_estimators import training_free
from nas_estimators.latency import LatencyTable
from nas_estimators.nasbench201 import LABELS, NNI_OPS, CellCosts, read_full_table, to_arch_string
from nas_estimators.objective import ScoringNetwork
from nas_estimators.pooling import native_pooling
from nas_estimators.spaces import build_space
from nas_estimators.strategy import path_sampling_supernet

SCORES = {"params": training_free.parameter_count, "synflow": training_free.synflow, "naswot": training_free.naswot}


def equal_cost_tau(frame: pd.DataFrame, score: str, groups: pd.Series) -> tuple[float, int]:
    """Kendall's tau of ``score`` with accuracy within each group of equal ``groups`` (4+ cells), weighted by size."""
    taus, sizes = [], []
    for _, group in frame.dropna(subset=[score]).groupby(groups):
        if len(group) >= 4 and group[score].round(9).nunique() > 1:
            tau = stats.kendalltau(group[score], group["accuracy"])[0]
            if not np.isnan(tau):
                taus.append(tau)
                sizes.append(len(group))
    return (float(np.average(taus, weights=sizes)) if sizes else float("nan")), int(sum(sizes))


def _refuse(message: str) -> int:
    print(f"budget_term_ranking.py: error: {message}", file=sys.stderr)
    return 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", help="the NAS-Bench-201 CIFAR-10 table (all 15,625 cells)")
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--stages", type=int, default=5, help="cells per stage (default: 5)")
    parser.add_argument("--budget", type=float, default=None,
                        help="MFLOPs, or ms with --latency-table (default: half the all-nor_conv_3x3 cell's)")
    parser.add_argument("--latency-table", metavar="JSON", help="a cached latency table of the network: rank within "
                                                                "a latency budget instead of FLOPs")
    parser.add_argument("--bucket", type=float, default=0.05, help="ms: latencies this close count as equal")
    parser.add_argument("--cells", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="CSV: each drawn cell's accuracy, FLOPs and scores")
    args = parser.parse_args()
    if args.cells < 4 or args.width < 1 or args.stages < 1:
        parser.error("--cells must be >= 4, --width and --stages >= 1")
    try:
        table = read_full_table(args.table)
    except ValueError as error:
        parser.error(str(error))
    if not args.bucket > 0:
        return _refuse(f"--bucket: expected milliseconds > 0, got {args.bucket}")
    if args.latency_table:
        try:
            cost_name, cost = "latency", LatencyTable.from_dict(json.load(open(args.latency_table))["table"]).predict
        except (OSError, ValueError, KeyError, TypeError) as error:
            return _refuse(f"--latency-table: expected a latency table cached by search --cost latency ({error!r})")
    else:
        cost_name, cost = "flops", CellCosts("flops", args.width, args.stages, 32)
    budget = args.budget if args.budget is not None else cost({label: "conv_3x3" for label in LABELS}) / 2
    within = [cell for cell in (dict(zip(LABELS, ops)) for ops in itertools.product(NNI_OPS, repeat=len(LABELS)))
              if cost(cell) <= budget]
    random.Random(args.seed).shuffle(within)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    network = ScoringNetwork(path_sampling_supernet(build_space("nb201", args.width, args.stages)),
                             torch.randn(64, 3, 32, 32), seed=args.seed)
    rows = []
    for index, cell in enumerate(within[:args.cells]):
        row = {"arch": to_arch_string(cell), "accuracy": table.accuracy(cell), cost_name: cost(cell)}
        with native_pooling():  # NNI's pooling, as the frozen network and the objective's FLOPs see it
            row.update({name: network.score(cell, function) for name, function in SCORES.items()})
        rows.append(row)
        print(f"[{index + 1}/{min(args.cells, len(within))}] {row['arch']}", file=sys.stderr, flush=True)
    frame = pd.DataFrame(rows).replace([np.inf, -np.inf], np.nan)
    frame.to_csv(args.out, index=False)
    if cost_name == "latency":
        unit, equal, groups = "ms", f"{args.bucket:g}-ms buckets", (frame["latency"] / args.bucket).round()
    else:
        unit, equal, groups = "MFLOPs", "equal FLOPs", frame["flops"].round(6)
    print(f"{len(frame)} cells within {budget:.4g} {unit} (of {len(within)}), accuracy "
          f"{frame['accuracy'].min():.1f}-{frame['accuracy'].max():.1f}; Kendall's tau with the table accuracy:")
    for name in SCORES:
        tau, cells = equal_cost_tau(frame, name, groups)
        overall = stats.kendalltau(frame[name], frame["accuracy"], nan_policy="omit")[0]
        print(f"  {name:8s} all cells {overall:+.3f}   within {equal} {tau:+.3f} ({cells} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
