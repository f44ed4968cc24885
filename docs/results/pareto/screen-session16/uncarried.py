"""Screen sweeps whose targets each start uniform (carry=False), tuning seeds 0-5: python uncarried.py OUT METHODS"""
import sys, functools
from pathlib import Path
from nas_estimators import pareto
from nas_estimators.nasbench201 import read_full_table
out = Path(sys.argv[1]); methods = sys.argv[2].split(",")
pareto.sweep = functools.partial(pareto.sweep, carry=False)
table = read_full_table("/work/shared/data/nas-bench-201-cifar10.csv")
res = pareto.run_pareto(table, "flops", methods, [0, 1, 2, 3, 4, 5], [200, 500, 1000], progress=lambda l: print(l, flush=True))
out.mkdir(parents=True, exist_ok=True)
for k in ("results", "summary"):
    res[k].to_csv(out / f"{k}.csv", index=False)
print(res["summary"].to_string(index=False))
