"""Where a weighted objective's minimum lies on a finished NAS-Bench-201 supernet, for many weightings at once.

Every cell's terms are computed once and cached: the supernet's loss on --images fixed held-out
images (the frozen weights), and the training-free scores in a never-trained copy seeded like the
search. Each term is standardised as the search's objective does (median and IQR of a seeded
reference sample of 64 uniformly drawn cells). For each weighting, coordinate descent over the labels
from --starts uniformly drawn cells (and the all-conv_3x3 cell) finds the objective's (local) minimum;
the table accuracy of the best one is reported. A screen, not a search: it tells in minutes which
weightings are worth a frozen-search or a full search.

    OMP_NUM_THREADS=1 python examples/objective_landscape.py runs/screen/supernet-s0 TABLE_CSV OUT.csv \\
        --weights "supernet=1" "synflow=1,params=1" "supernet=3,synflow=1,params=1"
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from nas_estimators import objective
from nas_estimators.frozen import load_supernet
from nas_estimators.nasbench201 import BenchmarkTable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet")
    parser.add_argument("table")
    parser.add_argument("out")
    parser.add_argument("--weights", nargs="+", required=True)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--starts", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = BenchmarkTable.from_csv(args.table)
    supernet = load_supernet(args.supernet, device="cpu")
    seed = supernet.config.seed
    images, labels = supernet.batches.fixed(args.images)
    network = objective.ScoringNetwork(supernet.model, supernet.scoring_inputs, seed=seed)
    distribution = supernet.distribution()
    names = sorted({name for text in args.weights for name in objective.parse_weights(text)})
    cache: dict[str, dict[str, float]] = {}
    seconds = dict.fromkeys(names, 0.0)

    def terms(cell):
        key = repr(sorted(cell.items()))
        if key not in cache:
            values = {}
            for name in names:
                started = time.perf_counter()
                if name == "supernet":
                    values[name] = sum(float(supernet.loss((images[i:i + 256], labels[i:i + 256]), cell)) *
                                       len(labels[i:i + 256]) for i in range(0, len(labels), 256)) / len(labels)
                else:
                    values[name] = network.score(cell, objective.TERMS[name].score_function)
                seconds[name] += time.perf_counter() - started
            cache[key] = values
        return cache[key]

    generator = torch.Generator().manual_seed(seed)
    reference = [terms(distribution.to_architecture(distribution.uniform_indices(generator))) for _ in range(64)]
    scale = {name: objective._robust_location_scale([r[name] for r in reference]) for name in names}

    def value(cell, weights):
        raw = terms(cell)
        total = 0.0
        for name, weight in weights.items():
            location, spread = scale[name]
            standard = (raw[name] - location) / spread
            # the supernet's loss: lower is better; training-free scores: higher is better (as in objective.py)
            total += weight * (standard if name == "supernet" else -max(min(standard, 10.0), -10.0))
        return total

    starts = [distribution.to_architecture(distribution.uniform_indices(generator)) for _ in range(args.starts)]
    starts.append({label: "conv_3x3" for label in distribution.labels})
    rows = []
    for text in args.weights:
        weights = objective.parse_weights(text)
        best = None
        for start in starts:
            cell = dict(start)
            improved = True
            while improved:
                improved = False
                for label in distribution.labels:
                    options = [{**cell, label: v} for v in distribution.values[label]]
                    choice = min(options, key=lambda c: value(c, weights))
                    if value(choice, weights) < value(cell, weights) - 1e-12:
                        cell, improved = choice, True
            if best is None or value(cell, weights) < value(best, weights):
                best = cell
        rows.append({"supernet": args.supernet, "seed": seed, "weights": text, "benchmark_acc": table.accuracy(best),
                     "cell": "|".join(f"{k.split('/')[-1]}={v}" for k, v in best.items()), "cells_scored": len(cache)})
        print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(args.out, index=False)
    print({name: round(s / len(cache), 4) for name, s in seconds.items()}, "seconds per cell")


if __name__ == "__main__":
    main()
