"""Tune RELAX's hyperparameters on NAS-Bench-201 / digits with Optuna, then open the study in optuna-dashboard.

    python examples/tune_relax.py --n-trials 20 --epochs 5
    optuna-dashboard sqlite:///runs/tune-relax-example/optuna.db

Run it again to add trials to the same study; start it in two shells at once with a shared
``--storage postgresql://...`` to tune on two workers.
"""

import argparse

import optuna

from nas_estimators.integrations.optuna_tuning import SearchObjective, default_storage, make_storage, open_study
from nas_estimators.search import SearchConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--output", default="runs/tune-relax-example")
    parser.add_argument("--storage", help="Optuna storage URL (default: sqlite:///OUTPUT/optuna.db)")
    args = parser.parse_args()

    config = SearchConfig(estimator="relax", space="nb201", dataset="digits", epochs=args.epochs,
                          width=args.width, cells=1, progress=False)
    storage = args.storage or default_storage(args.output)
    if args.storage is None:
        from pathlib import Path

        Path(args.output).mkdir(parents=True, exist_ok=True)
    study = open_study(make_storage(storage), "relax-example",
                       sampler=optuna.samplers.TPESampler(n_startup_trials=5),
                       pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
                       metadata={"estimator": "relax", "space": "nb201", "epochs": args.epochs})
    print(f"watch it: optuna-dashboard {storage}")
    study.optimize(SearchObjective(config, args.output), n_trials=args.n_trials)
    best = study.best_trial
    print(f"best value {best.value:.4f} (trial {best.number}): {best.params}")
    print(f"architecture: {best.user_attrs['architecture']}")


if __name__ == "__main__":
    main()
