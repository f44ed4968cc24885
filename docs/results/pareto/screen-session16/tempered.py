"""Screen a sweep whose carried distribution is tempered toward uniform at each new target (logits x SHARE),
tuning seeds 0-5: python tempered.py OUT METHODS SHARE"""
import sys
from pathlib import Path
import torch
from nas_estimators import pareto
from nas_estimators.nasbench201 import read_full_table
from nas_estimators.table_search import TableSearch

out, methods, share = Path(sys.argv[1]), sys.argv[2].split(","), float(sys.argv[3])


class Tempered(TableSearch):
    def run(self, budget, seed=0, distribution=None):
        if distribution is not None:
            with torch.no_grad():
                for p in distribution.parameters():
                    p.mul_(share)
        return super().run(budget, seed=seed, distribution=distribution)


pareto.TableSearch = Tempered
table = read_full_table("/work/shared/data/nas-bench-201-cifar10.csv")
res = pareto.run_pareto(table, "flops", methods, [0, 1, 2, 3, 4, 5], [200, 500, 1000], progress=lambda l: print(l, flush=True))
out.mkdir(parents=True, exist_ok=True)
for k in ("results", "summary"):
    res[k].to_csv(out / f"{k}.csv", index=False)
print(res["summary"].to_string(index=False))
