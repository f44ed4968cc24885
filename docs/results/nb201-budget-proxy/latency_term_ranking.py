"""Session 17: do the training-free terms rank cells of equal latency? As examples/budget_term_ranking.py does for
FLOPs, but cells are drawn within a latency budget of a cached latency table, and grouped by its prediction rounded
to --bucket ms. Run from the repository root with PYTHONPATH=.:examples:
    OMP_NUM_THREADS=1 python docs/results/nb201-budget-proxy/latency_term_ranking.py TABLE LATENCY_JSON --out CSV"""
import argparse
import itertools
import json
import random
import sys

import numpy as np
import pandas as pd
import torch
from scipy import stats

from budget_term_ranking import SCORES, equal_cost_tau
from nas_estimators.latency import LatencyTable
from nas_estimators.nasbench201 import LABELS, NNI_OPS, read_full_table, to_arch_string
from nas_estimators.objective import ScoringNetwork
from nas_estimators.pooling import native_pooling
from nas_estimators.spaces import build_space
from nas_estimators.strategy import path_sampling_supernet

parser = argparse.ArgumentParser()
parser.add_argument("table")
parser.add_argument("latency", help="a cached latency table (JSON) of the C=4, N=5 proxy")
parser.add_argument("--budget", type=float, default=1.8176)
parser.add_argument("--bucket", type=float, default=0.05)
parser.add_argument("--cells", type=int, default=300)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", required=True)
args = parser.parse_args()
table = read_full_table(args.table)
latency = LatencyTable.from_dict(json.load(open(args.latency))["table"])
cells = [dict(zip(LABELS, ops)) for ops in itertools.product(NNI_OPS, repeat=len(LABELS))]
within = [cell for cell in cells if latency.predict(cell) <= args.budget]
random.Random(args.seed).shuffle(within)
torch.set_num_threads(1)
torch.manual_seed(args.seed)
network = ScoringNetwork(path_sampling_supernet(build_space("nb201", 4, 5)), torch.randn(64, 3, 32, 32), seed=args.seed)
rows = []
for index, cell in enumerate(within[:args.cells]):
    row = {"arch": to_arch_string(cell), "accuracy": table.accuracy(cell), "latency": latency.predict(cell)}
    with native_pooling():
        row.update({name: network.score(cell, function) for name, function in SCORES.items()})
    rows.append(row)
    print(f"[{index + 1}/{min(args.cells, len(within))}]", file=sys.stderr, flush=True)
frame = pd.DataFrame(rows).replace([np.inf, -np.inf], np.nan)
frame.to_csv(args.out, index=False)
frame["flops"] = (frame["latency"] / args.bucket).round()  # equal_cost_tau groups by this column
print(f"{len(frame)} cells within {args.budget} ms (of {len(within)}), accuracy "
      f"{frame['accuracy'].min():.1f}-{frame['accuracy'].max():.1f}; Kendall's tau with the table accuracy:")
for name in SCORES:
    tau, count = equal_cost_tau(frame, name)
    overall = stats.kendalltau(frame[name], frame["accuracy"], nan_policy="omit")[0]
    print(f"  {name:8s} all cells {overall:+.3f}   within {args.bucket} ms buckets {tau:+.3f} ({count} cells)")
