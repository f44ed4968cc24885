"""An Optuna pipeline as users write it, with an architecture search as one step of each trial.

The study tunes what the user already tuned (here the weights' learning rate and the batch size); each
trial runs a short NAS-Bench-201 search with our SF estimator on scikit-learn's digits and returns the
exported cell's held-out accuracy (shared weights, batch norm recalibrated). The cell is kept as a
user attribute, so the best trial says which architecture it found. The study lives in SQLite: rerun
the command and it continues; point several processes at one database and they share it; open it
with ``optuna-dashboard sqlite:///OUTPUT/study.db``::

    python examples/optuna_pipeline.py --trials 8 --output runs/optuna-pipeline
    python examples/optuna_pipeline.py --trials 2 --epochs 2 --output /tmp/x     # the tests' size
"""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna

from nas_estimators.evaluate import exported_val_accuracy
from nas_estimators.search import SearchConfig, prepare, run_search


def search_step(trial: optuna.Trial, epochs: int, output: Path) -> float:
    """The trial's architecture search: the exported cell's held-out accuracy (the value to maximise)."""
    config = SearchConfig(estimator="sf", space="nb201", dataset="digits", epochs=epochs, seed=trial.number,
                          weight_learning_rate=trial.suggest_float("weight_learning_rate", 0.005, 0.1, log=True),
                          batch_size=trial.suggest_categorical("batch_size", [32, 64, 128]),
                          device="cpu", threads=1, progress=False, output=str(output / f"trial-{trial.number}"))
    parts = prepare(config)
    result = run_search(config, parts)
    trial.set_user_attr("architecture", result["architecture"])
    trial.set_user_attr("search_seconds", result["seconds"])
    return exported_val_accuracy(result, parts, config.seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--output", default="runs/optuna-pipeline")
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name="nas-pipeline", storage=f"sqlite:///{output / 'study.db'}",
                                direction="maximize", load_if_exists=True, sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(lambda trial: search_step(trial, args.epochs, output), n_trials=args.trials)
    best = study.best_trial
    print(f"best trial {best.number}: accuracy {best.value:.4f} with {best.params}")
    print("its architecture:", best.user_attrs["architecture"])


if __name__ == "__main__":
    main()
