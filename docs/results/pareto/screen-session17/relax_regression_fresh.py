"""RELAX with the regression surrogate in the sweep on fresh seeds 10-19 (session 17): python relax_regression_fresh.py
OUT, from the repository root with PYTHONPATH=. (the table: NAS_BENCH_201, else /work/shared/data/...)."""
import os
import sys
from pathlib import Path

from nas_estimators import pareto
from nas_estimators.estimators import Relax
from nas_estimators.nasbench201 import read_full_table

original = pareto._estimator


def regression(method, options, steps):
    estimator = original(method, options, steps)
    return Relax(surrogate_width=estimator.surrogate_width, surrogate_lr=estimator.surrogate_lr,
                 temperature=estimator.temperature, surrogate_objective="regression")


pareto._estimator = regression
table = read_full_table(os.environ.get("NAS_BENCH_201", "/work/shared/data/nas-bench-201-cifar10.csv"))
result = pareto.run_pareto(table, "flops", ["relax"], list(range(10, 20)), [200, 500, 1000],
                           progress=lambda line: print(line, flush=True))
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
for name in ("results", "summary"):
    result[name].to_csv(out / f"{name}.csv", index=False)
print(result["summary"].to_string(index=False))
