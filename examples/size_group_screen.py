"""Which NAS-Bench-201 cells beat every reference cell on parameters and SynFlow, and how the NTK orders them.

If the training-free terms were rank-normalised against the objective's reference sample (64 uniformly
drawn cells, seeded like the search), every cell above all reference cells on the size terms would tie on
them, and the other terms would decide among those cells. This lists that group (the parameters of every
cell of the space, then SynFlow and the NTK of those above the reference's largest) with table accuracies.

    OMP_NUM_THREADS=1 python examples/size_group_screen.py CIFAR10_DIR TABLE_CSV OUT.csv [--seed 0] [--reference 64]
"""

from __future__ import annotations

import argparse
import itertools

import pandas as pd
import torch

from nas_estimators import objective, training_free
from nas_estimators.data import load_dataset, search_batches
from nas_estimators.distribution import ArchitectureDistribution
from nas_estimators.nasbench201 import BenchmarkTable
from nas_estimators.spaces import build_space
from nas_estimators.strategy import path_sampling_supernet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root")
    parser.add_argument("table")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", type=int, default=objective.REFERENCE_SIZE)
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = BenchmarkTable.from_csv(args.table)
    data = load_dataset("cifar10", args.data_root)
    torch.manual_seed(args.seed)
    supernet = path_sampling_supernet(build_space("nb201", 8, 1, num_classes=10))
    inputs, _ = search_batches(data, 64, device=torch.device("cpu"), seed=args.seed)[0].fixed(objective.SCORING_IMAGES)
    network = objective.ScoringNetwork(supernet, inputs, seed=args.seed)
    distribution = ArchitectureDistribution.from_model_space(supernet)
    generator = torch.Generator().manual_seed(args.seed)
    reference = [distribution.to_architecture(distribution.uniform_indices(generator)) for _ in range(args.reference)]
    largest = {name: max(network.score(cell, function) for cell in reference)
               for name, function in (("params", training_free.parameter_count), ("synflow", training_free.synflow))}
    reference_ntk = [network.score(cell, training_free.ntk_condition) for cell in reference]
    rows = []
    for combination in itertools.product(*(distribution.values[label] for label in distribution.labels)):
        cell = dict(zip(distribution.labels, combination))
        params = network.score(cell, training_free.parameter_count)
        if params < largest["params"]:
            continue
        synflow = network.score(cell, training_free.synflow)
        if synflow < largest["synflow"]:
            continue
        ntk = network.score(cell, training_free.ntk_condition)
        rows.append({"benchmark_acc": table.accuracy(cell), "params": params, "synflow": synflow, "ntk": ntk,
                     "ntk_reference_share_below": sum(x < ntk for x in reference_ntk) / len(reference_ntk),
                     "cell": "|".join(f"{k.split('/')[-1]}={v}" for k, v in cell.items())})
    frame = pd.DataFrame(rows).sort_values("ntk", ascending=False)
    frame.to_csv(args.out, index=False)
    print(f"{len(frame)} cells above every reference cell on parameters and SynFlow; table accuracy:")
    print(frame.benchmark_acc.describe().to_string())
    print(frame.head(10).to_string(index=False))


if __name__ == "__main__":
    main()
