"""What a sweep's targets allow (session 17): the hypervolume ratio of a sweep whose search under each target finds
the table's best cell within it, for an even grid of T targets and for the below-found walk (each target at or above
the last cell found moves just below it). python oracle.py [TABLE]; FLOPs."""
import sys

from nas_estimators import pareto
from nas_estimators.nasbench201 import CellCosts, read_full_table

table = read_full_table(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/nas-bench-201-cifar10.csv")
costs = CellCosts("flops")
cost_of = pareto.arch_string_cost(costs)
front, reference = pareto.true_front(table, cost_of)
best = pareto.hypervolume(front, reference)
cells = [(cost_of(arch), table.accuracy(arch)) for arch in table]
print(f"the table's front: {len(front)} cells")
for count in (8, 16, 24, 32):
    for walk in ("grid", "below-found"):
        chosen, last = [], None
        for target in sorted(pareto.default_targets(costs, count), reverse=True):
            if walk == "below-found" and last is not None and target >= last:
                target = last * (1 - 1e-9)
            within = [cell for cell in cells if cell[0] <= target]
            if not within:
                break
            chosen.append(max(within, key=lambda cell: cell[1]))
            last = chosen[-1][0]
        print(f"{count} targets, {walk}: {len(set(chosen))} distinct cells, "
              f"hypervolume ratio {pareto.hypervolume(chosen, reference) / best:.3f}")
