"""Screen (session 17): each target's search ends once its mode has probability P and passes the queries it did
not spend to the targets after it. python settle.py OUT P TARGETS [METHODS]; tuning seeds 0-5, 200/500/1000 queries,
FLOPs; run from the repository root with PYTHONPATH=. after `git apply docs/results/pareto/screen-session17/settle.patch`
(the table: NAS_BENCH_201, else /work/shared/data/...)."""
import functools
import os
import sys
from pathlib import Path

from nas_estimators import pareto
from nas_estimators.nasbench201 import read_full_table

out, settle, targets = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
methods = sys.argv[4].split(",") if len(sys.argv) > 4 else ["sf", "relax", "ram"]
pareto.sweep = functools.partial(pareto.sweep, settle=settle)
table = read_full_table(os.environ.get("NAS_BENCH_201", "/work/shared/data/nas-bench-201-cifar10.csv"))
result = pareto.run_pareto(table, "flops", methods, [0, 1, 2, 3, 4, 5], [200, 500, 1000], targets=targets,
                           progress=lambda line: print(line, flush=True))
out.mkdir(parents=True, exist_ok=True)
for name in ("results", "summary"):
    result[name].to_csv(out / f"{name}.csv", index=False)
print(result["summary"].to_string(index=False))
