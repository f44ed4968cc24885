"""Where each method's hypervolume is lost, by cost segment, at 1000 queries (tuning seeds)."""
import sys, pandas as pd, numpy as np
from nas_estimators import pareto
from nas_estimators.nasbench201 import CellCosts, read_full_table
table = read_full_table("/work/shared/data/nas-bench-201-cifar10.csv")
costs = CellCosts("flops"); cost_of = pareto.arch_string_cost(costs)
front, ref = pareto.true_front(table, cost_of); best = pareto.hypervolume(front, ref)
def profile(fr, grid):
    # the attained accuracy at each cost (staircase), clipped at ref acc
    out=[]
    for c in grid:
        a=[acc for cc,acc in fr if cc<=c]; out.append(max([ref[1]]+a))
    return np.array(out)
grid=np.linspace(0, ref[0], 2000); dx=grid[1]-grid[0]
true=profile(front,grid)
q=pd.read_csv(sys.argv[1]); n=int(sys.argv[2]) if len(sys.argv)>2 else 1000
edges=[0,40,80,120,160,200,300,ref[0]+1]
for m,d in q[q.queries==n].groupby('method',sort=False):
    lost=np.zeros(len(grid))
    for s,ds in d.groupby('seed'):
        fr=pareto.front_of(ds); lost+= (true-profile(fr,grid))*dx
    lost/=d.seed.nunique()*best
    print(f"{m:14s} total {lost.sum():.4f} ", " ".join(f"[{a},{b}):{lost[(grid>=a)&(grid<b)].sum():.4f}" for a,b in zip(edges,edges[1:])))
