import numpy as np
from nas_estimators import pareto
from nas_estimators.nasbench201 import CellCosts, read_full_table
table = read_full_table("/work/shared/data/nas-bench-201-cifar10.csv")
costs = CellCosts("flops"); cost_of = pareto.arch_string_cost(costs)
front, ref = pareto.true_front(table, cost_of); best = pareto.hypervolume(front, ref)
cells = [(cost_of(a), table.accuracy(a)) for a in table]
allc = np.array([c for c, _ in cells])
def cap(targets):
    chosen = [max((c for c in cells if c[0] <= t), key=lambda c: c[1]) for t in targets]
    return pareto.hypervolume(chosen, ref) / best, len(set(chosen))
low, high = costs.bounds()
print('levels', len(np.unique(allc.round(3))))
for n in (16, 24):
    print(n, 'even', cap(pareto.default_targets(costs, n)))
    print(n, 'geometric', cap(pareto.default_targets(costs, n, 'geometric')))
    print(n, 'quantile', cap(list(np.quantile(allc, [(i + 1) / (n + 1) for i in range(n)]))))
    sq = [low + (high - low) * ((i + 1) / (n + 1)) ** 2 for i in range(n)]
    print(n, 'square', cap(sq))
