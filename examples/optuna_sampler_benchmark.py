"""EstimatorSampler against Optuna's own samplers on categorical objectives nobody tuned for.

Objectives (minimised): ``nb201``, the NAS-Bench-201 table's test error (six categorical parameters of five
choices; needs the table's CSV), and ``synthetic``, a seeded random categorical problem with pairwise
interactions (ten parameters of four to six choices; each choice and each pair of choices of
neighbouring parameters adds a Gaussian term). Each sampler runs every seed to the largest budget; the
best value after 100, 300 and 1,000 trials and the sampler's seconds per trial (all the study's time
but the objective's) are written per run, and their means per sampler.

    OMP_NUM_THREADS=1 python examples/optuna_sampler_benchmark.py --table TABLE_CSV --seeds 10,11,12 \\
        --out docs/results/optuna-sampler
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from nas_estimators.nasbench201 import LABELS, NNI_OPS, BenchmarkTable
from nas_estimators.optuna_sampler import EstimatorSampler

SAMPLERS = {
    "sf": lambda seed: EstimatorSampler("sf", seed=seed),
    "relax": lambda seed: EstimatorSampler("relax", seed=seed),
    "ram": lambda seed: EstimatorSampler("ram", seed=seed),
    "sf-redraws10": lambda seed: EstimatorSampler("sf", seed=seed, redraws=10),
    "sf-no-redraws": lambda seed: EstimatorSampler("sf", seed=seed, redraws=0),
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "tpe-multivariate": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed),
    # Gaussian-process BO, which accepts categoricals; its time a trial grows with the trials (run to 300)
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
}


# An objective is (suggest, value): the sampler's time is everything but ``value`` (the suggestions run the
# sampler, which Optuna calls lazily at the first one).
def nb201_objective(table: BenchmarkTable):
    return (lambda trial: {label: trial.suggest_categorical(label, list(NNI_OPS)) for label in LABELS},
            lambda params: 100.0 - table.accuracy(params))


def synthetic_objective(seed: int = 12345):
    rng = np.random.default_rng(seed)
    sizes = [4, 5, 6, 4, 5, 6, 4, 5, 6, 4]
    unary = [rng.normal(size=k) for k in sizes]
    pairs = {(i, i + 1): rng.normal(scale=0.7, size=(sizes[i], sizes[i + 1])) for i in range(len(sizes) - 1)}

    def suggest(trial: optuna.Trial) -> list[int]:
        return [trial.suggest_categorical(f"p{i}", list(range(k))) for i, k in enumerate(sizes)]

    def value(x: list[int]) -> float:
        return float(sum(unary[i][v] for i, v in enumerate(x)) + sum(w[x[i], x[j]] for (i, j), w in pairs.items()))

    # The optimum of a chain, by dynamic programming: the best total ending in each choice of parameter i.
    best = unary[0].copy()
    for i in range(1, len(sizes)):
        best = (best[:, None] + pairs[i - 1, i]).min(axis=0) + unary[i]
    return (suggest, value), float(best.min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True)
    parser.add_argument("--seeds", default="10,11,12")
    parser.add_argument("--budgets", default="100,300,1000")
    parser.add_argument("--samplers", default=",".join(name for name in SAMPLERS if name != "gp"),
                        help="comma-separated (default: all but gp, which is slow past a few hundred trials)")
    parser.add_argument("--objectives", default="nb201,synthetic")
    parser.add_argument("--out", required=True, help="folder; a study already in its results.csv is not run again")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budgets = [int(b) for b in args.budgets.split(",")]
    table = BenchmarkTable.from_csv(args.table)
    synthetic, synthetic_best = synthetic_objective()
    objectives = {"nb201": (nb201_objective(table), 100.0 - max(table.accuracy(a) for a in table)),
                  "synthetic": (synthetic, synthetic_best)}
    objectives = {name: objectives[name] for name in args.objectives.split(",")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done = pd.read_csv(out / "results.csv") if (out / "results.csv").is_file() else pd.DataFrame()
    rows = done.to_dict("records")
    finished = {(row["objective"], row["sampler"], row["seed"]) for row in rows}
    for (name, (objective, optimum)), sampler_name, seed in itertools.product(
            objectives.items(), args.samplers.split(","), map(int, args.seeds.split(","))):
        if (name, sampler_name, seed) in finished:
            continue
        spent = [0.0]

        def timed(trial, objective=objective):
            params = objective[0](trial)
            started = time.perf_counter()
            try:
                return objective[1](params)
            finally:
                spent[0] += time.perf_counter() - started

        study = optuna.create_study(sampler=SAMPLERS[sampler_name](seed))
        started = time.perf_counter()
        study.optimize(timed, n_trials=max(budgets))
        total = time.perf_counter() - started
        values = [t.value for t in study.trials if t.value is not None]  # RAM may leave enqueued trials unrun
        for budget in budgets:
            rows.append({"objective": name, "sampler": sampler_name, "seed": seed, "trials": budget,
                         "best": min(values[:budget]), "optimum": optimum,
                         "sampler_seconds_per_trial": (total - spent[0]) / len(values)})
        print(rows[-1], flush=True)
        pd.DataFrame(rows).to_csv(out / "results.csv", index=False)  # each study as it finishes: resumable
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "results.csv", index=False)
    summary = frame.groupby(["objective", "trials", "sampler"], sort=False).agg(
        best_mean=("best", "mean"), best_std=("best", "std"), optimum=("optimum", "first"),
        sampler_seconds_per_trial=("sampler_seconds_per_trial", "mean")).reset_index()
    summary.to_csv(out / "summary.csv", index=False)
    print(summary.to_string(index=False))


if __name__ == "__main__":
    main()
