"""What every session-16 sweep screen shares: run `methods` on tuning seeds 0-5 at 200/500/1000 queries (FLOPs),
write results.csv and summary.csv to `out`. The table's path: the NAS_BENCH_201 environment variable."""
import os
from pathlib import Path

from nas_estimators import pareto
from nas_estimators.nasbench201 import read_full_table


def run(out, methods):
    table = read_full_table(os.environ.get("NAS_BENCH_201", "/work/shared/data/nas-bench-201-cifar10.csv"))
    res = pareto.run_pareto(table, "flops", methods, [0, 1, 2, 3, 4, 5], [200, 500, 1000],
                            progress=lambda line: print(line, flush=True))
    Path(out).mkdir(parents=True, exist_ok=True)
    for k in ("results", "summary"):
        res[k].to_csv(Path(out) / f"{k}.csv", index=False)
    print(res["summary"].to_string(index=False))
