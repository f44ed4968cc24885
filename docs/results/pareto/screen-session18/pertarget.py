import sys, pandas as pd, numpy as np
from nas_estimators import pareto
from nas_estimators.nasbench201 import CellCosts, read_full_table
table = read_full_table("/work/shared/data/nas-bench-201-cifar10.csv")
costs = CellCosts("flops"); cost_of = pareto.arch_string_cost(costs)
cells = sorted(((cost_of(a), table.accuracy(a)) for a in table))
def best_within(t): return max(a for c,a in cells if c<=t)
q=pd.read_csv(sys.argv[1]); m=sys.argv[2]; n=int(sys.argv[3])
d=q[(q.method==m)&(q.queries==n)]
rows=[]
for (s,t),g in d.groupby(['seed','target']):
    w=g[g.cost<=t]
    rows.append(dict(seed=s,target=round(t,1),n=len(g),gap_best=best_within(t)-(w.benchmark_acc.max() if len(w) else np.nan),
                     gap_mode=best_within(t)-g.mode_acc.iloc[-1]))
r=pd.DataFrame(rows)
print(r.pivot(index='target',columns='seed',values='gap_best').round(2).iloc[::-1].to_string())
print('mean n', r.groupby('target').n.mean().round(0).iloc[::-1].tolist())
