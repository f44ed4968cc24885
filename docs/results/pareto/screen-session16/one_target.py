"""One budgeted table search per seed from a uniform start (session 16): the best cell found within a loose and a tight
FLOPs target, the final mode, the distinct queries; 12 seeds. Run: python one_target.py"""
import numpy as np
import torch
from nas_estimators.budget import CostBudget
from nas_estimators.estimators import Relax, ScoreFunction
from nas_estimators.table_search import TableSearch
from nas_estimators.nasbench201 import LABELS, NNI_OPS, CellCosts, read_full_table
table = read_full_table("/work/shared/data/nas-bench-201-cifar10.csv")
costs = CellCosts("flops")
low, high = costs.bounds()
def run(make, q, target, lr, seeds=range(12)):
    best, modes, distinct = [], [], []
    for s in seeds:
        torch.manual_seed(s)
        search = TableSearch(make(), {l: list(NNI_OPS) for l in LABELS}, table.accuracy, learning_rate=lr,
                             budget=CostBudget(costs, target, name="flops"))
        f = search.run(budget=q, seed=s)
        ok = f[f.cost <= target]
        best.append(ok.benchmark_acc.max() if len(ok) else np.nan); modes.append(f.mode_acc.iloc[-1]); distinct.append(f.architecture.nunique())
    return np.nanmean(best), np.mean(modes), np.mean(distinct)
for target in [high * 0.95, low + (high-low)*0.3]:
  for q in [31, 62, 125]:
    for name, make, lr in [("sf", lambda: ScoreFunction(), 0.1), ("relax", lambda: Relax(), 0.1),
                           ("relax-b", lambda: Relax(baseline_decay=0.9), 0.1), ("relax-t1", lambda: Relax(temperature=1.0), 0.1)]:
        b, m, d = run(make, q, target, lr)
        print(f"target {target:.0f} q {q} {name}: best found {b:.2f}, final mode {m:.2f}, distinct {d:.0f}", flush=True)
