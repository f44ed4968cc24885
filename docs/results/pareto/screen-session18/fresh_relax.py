"""RELAX (zero-initialised surrogate output when RELAX_ZERO_INIT=1) on fresh seeds 10-19: python fresh_relax.py OUT"""
import sys
from pathlib import Path
from nas_estimators import pareto
from nas_estimators.nasbench201 import read_full_table
table = read_full_table("/work/shared/data/nas-bench-201-cifar10.csv")
res = pareto.run_pareto(table, "flops", ["relax"], list(range(10, 20)), [200, 500, 1000],
                        progress=lambda line: print(line, flush=True))
Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
for k in ("results", "summary"):
    res[k].to_csv(Path(sys.argv[1]) / f"{k}.csv", index=False)
print(res["summary"].to_string(index=False))
