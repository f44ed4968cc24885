"""``nas-estimators tune``: an Optuna study over an estimator's hyperparameters, one short search a trial.

Estimator hyperparameters given on the command line are fixed; the others are tuned. The study is
created or resumed (same ``--storage`` and ``--study-name``); several processes on one database URL
share it. Writes the study's trials, best trial, best architecture and, with two or more finished
trials, the importances into ``--output`` (:class:`~nas_estimators.run_folder.StudyFolder`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import warnings
from pathlib import Path
from typing import Any

from .. import registry, run_folder, settings
from ..budget import COSTS
from .common import UsageError, add_search_arguments, search_config

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``tune`` subcommand to ``nas-estimators``' subparsers."""
    parser = commands.add_parser("tune", help="tune an estimator's hyperparameters with Optuna",
                                 description="Tune an estimator's hyperparameters with Optuna, one short search "
                                 "a trial. The hyperparameters given on the "
                                 "command line are fixed; the others are tuned. Creates or resumes the study "
                                 "(--storage, --study-name); writes "
                                 f"{run_folder.BEST_ARCHITECTURE}, {run_folder.BEST_TRIAL}, {run_folder.TRIALS} "
                                 f"and {run_folder.IMPORTANCES} to --output.")
    add_search_arguments(parser)
    # None marks "not given": those are drawn by the sampler (the search command's defaults do not apply).
    parser.set_defaults(**{name: None for name in _tunable()})
    parser.add_argument("--n-trials", type=int, default=20, help="trials this process runs (default: 20)")
    parser.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    parser.add_argument("--study-name", help="study to create or resume (default: ESTIMATOR-SPACE-DATASET)")
    parser.add_argument("--storage", help="Optuna storage URL, e.g. postgresql://user:pass@host/db "
                                          "(default: sqlite:///OUTPUT/optuna.db)")
    parser.add_argument("--output", help="output directory (default: runs/tune-STUDY_NAME)")
    parser.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="Optuna sampler (default: tpe)")
    parser.add_argument("--sampler-seed", type=int,
                        help="seed of the sampler (default: none; give each worker of a shared study its own)")
    parser.add_argument("--pruner", choices=PRUNERS, default="median",
                        help="stop trials whose validation accuracy lags (default: median, from half the "
                             "epochs on, after 5 trials)")
    parser.add_argument("--benchmark", metavar="CSV",
                        help="NAS-Bench-201 table (arch + accuracy columns): maximise the exported "
                             "architecture's table accuracy instead of its validation accuracy (nb201 only)")
    parser.add_argument("--benchmark-column", help="accuracy column of --benchmark (default: guessed)")
    parser.add_argument("--cost-objective", choices=tuple(COSTS),
                        help="also minimise this cost of the exported architecture (as search's --cost: millions "
                             "of parameters, MFLOPs of one input, or milliseconds from a latency table): a "
                             "two-objective study whose Pareto front optuna-dashboard shows; trials are not pruned "
                             "(Optuna prunes single-objective studies only)")
    parser.set_defaults(handler=tune)
    return parser


def _tunable() -> tuple[str, ...]:
    """What tune draws unless the command line fixes it: the search loop's settings with a range and every
    registered estimator hyperparameter with a search space."""
    return (*settings.tuned(), *(h.name for h in registry.hyperparameters().values() if h.suggest is not None))


def _search_config(args: argparse.Namespace, output: Path):
    tunable = _tunable()
    fixed = {name: getattr(args, name) for name in tunable if getattr(args, name, None) is not None}
    # Not given: left out, so the config holds the defaults until a trial draws them.
    given = argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in tunable or v is not None})
    return search_config(given, output=str(output), progress=False), fixed


def _check_config(config) -> None:
    """Bad options (data, device, fixed hyperparameters) are one usage error now, not N failed trials."""
    from ..search import prepare

    try:
        # Points at a directory that is never created: prepare() only checks and builds, writes nothing.
        prepare(dataclasses.replace(config, output=str(Path(config.output) / "trials" / "check")))
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise UsageError(str(error)) from None


def _hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: nothing to hide
        return url


def _open_study(args: argparse.Namespace, storage_url: str, study_name: str, metadata: dict) -> Any:
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    from ..integrations.optuna_tuning import StudyMismatch, make_storage, open_study

    sampler = (optuna.samplers.RandomSampler(seed=args.sampler_seed) if args.sampler == "random"
               else optuna.samplers.TPESampler(seed=args.sampler_seed))
    epochs = metadata["epochs"]
    # Early epochs say little about the exported architecture, and the median of the trials that
    # finished is biased upwards (the pruned ones are left out): judge from half way on.
    pruner = {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=epochs // 2),
              "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs),
              "none": optuna.pruners.NopPruner}["none" if args.cost_objective else args.pruner]()
    shown = _hide_password(storage_url)
    try:
        storage = make_storage(storage_url)
        return open_study(storage, study_name, sampler=sampler, pruner=pruner, metadata=metadata,
                          cost=args.cost_objective is not None)
    except StudyMismatch as error:
        raise UsageError(f"study-name: {error}") from None
    except ImportError as error:
        cause = f" ({error.__cause__})" if error.__cause__ else ""
        raise UsageError(f"storage: no database driver for {shown}{cause}; for PostgreSQL: "
                         f"pip install 'psycopg[binary]'") from None
    except (SQLAlchemyError, ValueError, OSError) as error:
        reason = " ".join(str(error).split("\n")[0].split()) or type(error).__name__
        raise UsageError(f"storage: cannot open {shown}: {reason}") from None


def _progress(total: int):
    """A callback printing one line per finished trial."""
    import optuna

    done = [0]

    def report(study: Any, trial: Any) -> None:
        done[0] += 1
        seconds = trial.user_attrs.get("search_seconds")
        took = f"  {seconds:.1f} s" if seconds is not None else ""
        if trial.state == optuna.trial.TrialState.COMPLETE and len(trial.values) > 1:
            what = (f"values {trial.values[0]:.4f}, cost {trial.values[1]:.4g}  "
                    f"(Pareto front: {len(study.best_trials)} trials)")
        elif trial.state == optuna.trial.TrialState.COMPLETE:
            best = study.best_trial
            what = f"value {trial.value:.4f}  (best {best.value:.4f}, trial {best.number})"
        elif trial.state == optuna.trial.TrialState.PRUNED:
            what = f"pruned at epoch {trial.user_attrs.get('pruned_at_epoch', '?')}"
        else:
            what = f"failed: {trial.user_attrs.get('fail_reason', 'see the log above')}"
        params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        print(f"[{done[0]}/{total}] trial {trial.number} {what}{took}  {params}", flush=True)

    return report


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _write_results(study: Any, output: Path) -> int:
    import optuna

    from ..run_folder import StudyFolder

    folder = StudyFolder(output)
    folder.write_trials(study.trials_dataframe())
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        print(f"no trial of study {study.study_name!r} finished; reasons in {folder.trials} "
              f"(user_attrs_fail_reason)")
        return 1
    if len(study.directions) > 1:  # accuracy and cost: the Pareto front, the most accurate of it first
        front = sorted(study.best_trials, key=lambda t: -t.values[0])
        best = front[0]
        record = {"study": study.study_name, "pareto_front": [
            {"trial": t.number, "values": t.values, "params": t.params, "user_attrs": t.user_attrs} for t in front],
            "complete_trials": len(complete), "trials": len(study.trials)}
        folder.write_best(best.user_attrs.get("architecture"), record)
        for t in front:
            print(f"Pareto front: trial {t.number}  accuracy {t.values[0]:.4f}  cost {t.values[1]:.4g}")
        print(f"most accurate of the front: {folder.best_architecture}")
        return 0
    best = study.best_trial
    architecture = best.user_attrs.get("architecture")
    record = {"study": study.study_name, "trial": best.number, "value": best.value, "params": best.params,
              "user_attrs": best.user_attrs, "complete_trials": len(complete), "trials": len(study.trials)}
    folder.write_best(architecture, record)
    print(f"best: trial {best.number}  value {best.value:.4f}  "
          + ", ".join(f"{k}={_short(v)}" for k, v in best.params.items()))
    print(f"best architecture: {folder.best_architecture}")
    importances = _importances(study, complete)
    if importances:
        folder.write_importances(importances)
        print("parameter importance (fANOVA): " + ", ".join(f"{k} {v:.3f}" for k, v in importances.items()))
    return 0


def _importances(study: Any, complete: list) -> dict[str, float]:
    import optuna

    if len(complete) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # fANOVA, seeded: steadier than Optuna's default (PED-ANOVA, which looks at the top 10% of
            # trials, two of a 20-trial study). It skips conditional parameters (temperature_final).
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
            return {name: float(value) for name, value in importances.items()}
    except (RuntimeError, ValueError) as error:  # e.g. every trial scored the same: nothing to rank
        print(f"parameter importance: not available ({error})")
        return {}


def tune(args: argparse.Namespace) -> int:
    """The ``tune`` command's handler."""
    import optuna

    from ..nasbench201 import BenchmarkTable, check_table_space
    from ..integrations.optuna_tuning import SearchObjective, default_storage
    from ..search import DEFAULT_EPOCHS

    if args.n_trials < 1:
        raise UsageError(f"n-trials: expected a positive integer, got {args.n_trials}")
    if args.timeout is not None and not (args.timeout > 0 and math.isfinite(args.timeout)):
        raise UsageError(f"timeout: expected a positive number of seconds, got {args.timeout}")
    study_name = args.study_name or f"{args.estimator}-{args.space}-{args.dataset}"
    if not study_name.strip():
        raise UsageError("study-name: expected a non-empty name")
    output = Path(args.output or f"runs/tune-{study_name}")
    config, fixed = _search_config(args, output)
    table = None
    if args.benchmark is not None:
        try:
            check_table_space(args.space, "benchmark")
        except ValueError as error:
            raise UsageError(str(error)) from None
        try:
            table = BenchmarkTable.from_csv(args.benchmark, accuracy_column=args.benchmark_column)
        except (ValueError, FileNotFoundError) as error:
            raise UsageError(f"benchmark: {error}") from None
    _check_config(config)
    if args.storage is None:  # the default SQLite file lives in the output directory
        output.mkdir(parents=True, exist_ok=True)
    storage_url = args.storage or default_storage(output)
    objective_name = "val_acc" if table is None else f"benchmark:{table.accuracy_column}"
    if args.cost_objective:
        objective_name += f",{args.cost_objective}"
    metadata = {"estimator": args.estimator, "space": args.space, "dataset": args.dataset,
                "epochs": config.epochs or DEFAULT_EPOCHS.get(args.dataset), "objective": objective_name}
    # Optuna's own per-trial log lines repeat ours, and its warnings for failed trials are misleading
    # ("the value nan is not acceptable"): our lines carry the reason.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("nas_estimators.integrations.optuna_tuning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = _open_study(args, storage_url, study_name, metadata)
    output.mkdir(parents=True, exist_ok=True)
    objective = SearchObjective(config, output, table=table, fixed=fixed, cost=args.cost_objective)
    previous = len(study.trials)
    print(f"study {study_name!r} in {_hide_password(storage_url)}: {previous} trial(s) so far, "
          f"running {args.n_trials} more; tuning {', '.join(_tuned(args.estimator, fixed)) or 'nothing'}", flush=True)
    if storage_url.startswith("sqlite:"):
        print(f"watch it: optuna-dashboard {storage_url}", flush=True)
    study.optimize(objective, n_trials=args.n_trials, timeout=args.timeout, callbacks=[_progress(args.n_trials)],
                   gc_after_trial=True)
    return _write_results(study, output)


def _tuned(estimator: str, fixed: dict) -> list[str]:
    from ..integrations.optuna_tuning import tuned_parameters

    return [name for name in tuned_parameters(estimator) if name not in fixed]
