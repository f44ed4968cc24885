"""Screen a sweep whose carried distribution is tempered toward uniform at each new target (logits x SHARE),
tuning seeds 0-5: python tempered.py OUT METHODS SHARE"""
import sys
from pathlib import Path
import torch
from nas_estimators import pareto
from nas_estimators.table_search import TableSearch
from screen import run

out, methods, share = Path(sys.argv[1]), sys.argv[2].split(","), float(sys.argv[3])


class Tempered(TableSearch):
    def run(self, budget, seed=0, distribution=None):
        if distribution is not None:
            with torch.no_grad():
                for p in distribution.parameters():
                    p.mul_(share)
        return super().run(budget, seed=seed, distribution=distribution)


pareto.TableSearch = Tempered
run(out, methods)
