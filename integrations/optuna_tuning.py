"""Optuna tuning of the estimators' hyperparameters: search spaces, an objective, study helpers.

Each trial runs one short search (:func:`nas_estimators.search.run_search`) with hyperparameters
drawn from the estimator's search space, reports the search's validation accuracy after every
epoch (so a pruner can stop it), and returns the validation accuracy of the exported architecture
(the distribution's mode, run with the supernet's shared weights on the architecture half of the
training set, unaugmented), or its accuracy in a NAS-Bench-201 table when one is given.

Example::

    import optuna
    from nas_estimators.search import SearchConfig
    from nas_estimators.integrations.optuna_tuning import SearchObjective, open_study

    config = SearchConfig(estimator="relax", space="nb201", dataset="digits", epochs=5, progress=False)
    study = open_study("sqlite:///runs/tune/optuna.db", "relax-nb201", pruner=optuna.pruners.MedianPruner())
    study.optimize(SearchObjective(config, "runs/tune"), n_trials=20)
    study.best_trial.user_attrs["architecture"]

A trial whose search diverges (a non-finite loss or accuracy) or raises ends as FAIL with its reason
in the user attribute ``fail_reason``; the objective returns NaN instead of raising, so the study
goes on whatever ``catch=`` the caller passes. ``KeyboardInterrupt`` still stops the study.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import optuna
import pytorch_lightning as pl

from nas_estimators import registry, settings
from nas_estimators.budget import CostBudget
from nas_estimators.lightning import SearchDiverged
from nas_estimators.nasbench201 import benchmark_listener, check_table_space
from nas_estimators.evaluate import exported_val_accuracy
from nas_estimators.search import SearchConfig, prepare, run_search, schedule

__all__ = [
    "tuned_parameters", "SearchDiverged", "StudyMismatch", "suggest_hyperparameters", "SearchObjective",
    "default_storage", "make_storage", "open_study", "TRIALS_DIRECTORY",
]

_logger = logging.getLogger(__name__)

#: Where, under the objective's output directory, each trial's search writes (``trials/0007``).
TRIALS_DIRECTORY = "trials"


def tuned_parameters(estimator: str) -> tuple[str, ...]:
    """The hyperparameters a study of ``estimator`` draws (SearchConfig names), in the order it draws them:
    the search loop's settings with a range (the logits' learning rate), then the estimator's own with a
    search space in the registry."""
    spec = registry.get(estimator)
    return (*settings.tuned(), *(h.name for h in spec.hyperparameters if h.suggest is not None))


Suggest = Callable[[optuna.Trial, str, int, Mapping[str, Any]], dict[str, Any]]


class StudyMismatch(ValueError):
    """An existing study was made for another estimator, space, data set or objective."""


def suggest_hyperparameters(trial: optuna.Trial, estimator: str, num_labels: int,
                            fixed: Mapping[str, Any] = {}) -> dict[str, Any]:
    """Draw the estimator's hyperparameters from ``trial``; names in ``fixed`` are not drawn, their value is used.

    Ranges: the search-loop settings' from their :class:`~nas_estimators.settings.LoopSettings` fields (the
    logits' learning rate for every estimator), then the estimator's own from its registry entry's ``suggest``
    (:mod:`~nas_estimators.registry`; README, "Tuning with Optuna", lists them), given ``num_labels`` for ranges that
    depend on the space and the values drawn before for conditional ones.

    Returns the settings and hyperparameters to set by name (drawn and fixed together).
    """
    spec = registry.get(estimator)
    values: dict[str, Any] = dict(fixed)
    for name, suggest in settings.tuned().items():
        if name not in values:
            values[name] = suggest(trial, name)
    for hyperparameter in spec.hyperparameters:
        if hyperparameter.suggest is not None and hyperparameter.name not in values:
            value = hyperparameter.suggest(trial, num_labels, values)
            if value is not None:  # None: not drawn in this trial (a conditional hyperparameter)
                values[hyperparameter.name] = value
    return values


class _EpochReporter:
    """The search's epoch listener: checks the row is finite, reports val_acc, prunes."""

    def __init__(self, trial: optuna.Trial, weights_only_epochs: int, table: Any = None, prune: bool = True) -> None:
        self.trial, self.weights_only_epochs, self.table, self.prune = trial, weights_only_epochs, table, prune
        self.started = time.perf_counter()
        self.architecture: dict[str, Any] | None = None

    def __call__(self, row: dict, module: Any) -> None:
        epoch = int(row["epoch"])
        self.architecture = module.distribution.mode()
        # Warm-up epochs train weights only: they have no validation numbers to check or report.
        checked = ("train_loss",) if epoch < self.weights_only_epochs else ("train_loss", "val_loss", "val_acc")
        for name in checked:
            value = row.get(name)
            if value is None or not math.isfinite(value):
                raise SearchDiverged(f"epoch {epoch}: {name} is {value}")
        if self.table is not None:  # a column of the run's history: the benchmark accuracy of the epoch's mode
            benchmark_listener(self.table)(row, module)
        if epoch < self.weights_only_epochs or not self.prune:  # Optuna prunes single-objective studies only
            return
        self.trial.report(float(row["val_acc"]), epoch)
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_at_epoch", epoch)
            raise optuna.TrialPruned(f"pruned at epoch {epoch} (val_acc {row['val_acc']:.4f})")


def _table_accuracy(table: Any, architecture: Mapping[str, Any]) -> float:
    return float(table.accuracy(architecture))


class SearchObjective:
    """An Optuna objective: one short search per trial, on ``config`` with drawn hyperparameters.

    Args:
        config: the search every trial runs (dataset, space, estimator, epochs...); its estimator
            hyperparameters are replaced by the drawn ones, except those named in ``fixed``.
        output: each trial writes its search into ``output/trials/NNNN`` (NNNN: the trial number).
        table: a :class:`~nas_estimators.nasbench201.BenchmarkTable`: return the
            table accuracy of the exported architecture instead of its validation accuracy (nb201 only).
        fixed: hyperparameters not to tune (SearchConfig field names -> values).
        suggest: replaces :func:`suggest_hyperparameters` (same signature) for another search space.
        cost: ``params``, ``flops`` or ``latency``: a second objective, the exported architecture's cost
            (millions of parameters, MFLOPs of one input, milliseconds from a latency table), for a study that maximises accuracy and minimises cost
            (``directions=["maximize", "minimize"]``; optuna-dashboard then shows the Pareto front).

    Every trial stores user attributes ``architecture`` (the exported one), ``search_seconds``,
    ``output``, ``val_acc`` (of the exported architecture; finished trials), ``benchmark_acc`` (with a
    table), and ``fail_reason`` (failed trials; the traceback goes to ``error.txt`` in the trial's
    directory) or ``pruned_at_epoch`` (pruned ones).
    """

    def __init__(self, config: SearchConfig, output: str | Path, *, table: Any = None,
                 fixed: Mapping[str, Any] | None = None, suggest: Suggest | None = None,
                 cost: str | None = None) -> None:
        registry.get(config.estimator)  # a one-line ValueError for an unknown estimator
        if cost is not None:
            CostBudget(cost, 1.0)  # a one-line ValueError for an unknown cost
        self.cost = cost
        if table is not None:
            check_table_space(config.space, "table")
        known = {field.name for field in dataclasses.fields(SearchConfig)} | set(registry.hyperparameters())
        unknown = sorted(set(fixed or {}) - known)
        if unknown:
            raise ValueError(f"fixed: unknown hyperparameter(s) {', '.join(unknown)}")
        self.config = dataclasses.replace(config, progress=False, resume=False)
        self.output = Path(output)
        self.table = table
        self.fixed = dict(fixed or {})
        self.suggest = suggest or suggest_hyperparameters
        self._num_labels: int | None = None

    @property
    def num_labels(self) -> int:
        """Labels of the searched space (a hyperparameter's range may depend on it)."""
        if self._num_labels is None:
            from nas_estimators.distribution import ArchitectureDistribution
            from nas_estimators.spaces import build_space, resolve_size

            width, cells = resolve_size(self.config.space, self.config.dataset, self.config.width, self.config.cells)
            space = build_space(self.config.space, width, cells)
            self._num_labels = len(ArchitectureDistribution.from_model_space(space).labels)
        return self._num_labels

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        trial_output = self.output / TRIALS_DIRECTORY / f"{trial.number:04d}"
        trial.set_user_attr("output", str(trial_output))
        hyperparameters = self.suggest(trial, self.config.estimator, self.num_labels, self.fixed)
        config = dataclasses.replace(self.config, output=str(trial_output)).with_hyperparameters(hyperparameters)
        reporter = _EpochReporter(trial, schedule(config)[1], self.table, prune=self.cost is None)
        try:
            # prepare() initialises the supernet's and the surrogate's weights: seed first, so that every
            # trial starts from the same weights whatever ran before it in this process.
            pl.seed_everything(config.seed, workers=False, verbose=False)
            parts = prepare(config)
            result = run_search(config, parts, listeners=[reporter])
            trial.set_user_attr("architecture", result["architecture"])
            trial.set_user_attr("search_seconds", round(result["seconds"], 3))
            val_acc = exported_val_accuracy(result, parts, config.seed)
            trial.set_user_attr("val_acc", val_acc)
            value = val_acc
            if self.table is not None:
                value = _table_accuracy(self.table, result["architecture"])
                trial.set_user_attr("benchmark_acc", value)
            if self.cost is None:
                return value
            budget = CostBudget(self.cost, 1.0)  # measured on the trial's supernet, never-trained copy
            module = result["strategy"].search_module
            budget.bind(module.supernet, parts.batches[0].fixed(1)[0], module.distribution)
            cost = budget.cost(result["architecture"])
            trial.set_user_attr(self.cost, cost)
            return value, cost
        except optuna.TrialPruned:
            self._record_partial(trial, reporter)
            raise
        except Exception as error:  # a failed trial must not end the study: record why, return NaN (FAIL)
            self._record_partial(trial, reporter)
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            trial.set_user_attr("fail_reason", reason)
            _write_traceback(trial_output / "error.txt", error)
            _logger.warning("trial %d failed: %s (traceback in %s)", trial.number, reason, trial_output / "error.txt")
            return float("nan") if self.cost is None else (float("nan"), float("nan"))

    @staticmethod
    def _record_partial(trial: optuna.Trial, reporter: _EpochReporter) -> None:
        """What a stopped search had: the mode at its last epoch and the seconds it ran."""
        if reporter.architecture is not None:
            trial.set_user_attr("architecture", reporter.architecture)
        trial.set_user_attr("search_seconds", round(time.perf_counter() - reporter.started, 3))


def _write_traceback(path: Path, error: BaseException) -> None:
    import traceback

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(error)))
    except OSError:  # the reason is in the trial's user attributes anyway
        pass


def default_storage(output: str | Path) -> str:
    """The SQLite URL of ``output/optuna.db`` (what ``optuna-dashboard`` opens)."""
    return f"sqlite:///{(Path(output) / 'optuna.db').resolve()}"


# Any 64-bit number works as long as every worker uses the same one ("nas-estimators" in ASCII, truncated).
_SCHEMA_LOCK_KEY = 0x6E61732D657374


@contextlib.contextmanager
def _initialization_lock(engine: Any) -> Iterator[None]:
    """Serialise first-time set-up across workers on PostgreSQL (a session advisory lock; elsewhere a no-op).

    PostgreSQL's ``CREATE TABLE IF NOT EXISTS`` is not atomic: two workers creating Optuna's tables in
    an empty database at once make one of them fail with a duplicate-key error on ``pg_type``.
    """
    if engine is None or engine.dialect.name != "postgresql":
        yield
        return
    import sqlalchemy

    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            connection.commit()


def make_storage(url: str, heartbeat_interval: int | None = 60) -> optuna.storages.RDBStorage:
    """An RDB storage for ``url`` (``sqlite:///...``, ``postgresql://...``), ready for several workers.

    PostgreSQL connections give up after 10 s instead of the driver's default (forever on some
    networks), and workers starting together on an empty database take turns creating its tables.
    With a heartbeat, a trial whose worker died (killed, machine lost) is marked FAIL by the next
    worker instead of staying RUNNING forever.
    """
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    postgres = url.startswith("postgresql")
    engine_kwargs: dict[str, Any] = {"connect_args": {"connect_timeout": 10}} if postgres else {}
    lock_engine = sqlalchemy.create_engine(url, poolclass=NullPool, **engine_kwargs) if postgres else None
    grace_period = None if heartbeat_interval is None else 4 * heartbeat_interval
    try:
        with _initialization_lock(lock_engine), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                                              grace_period=grace_period)
    finally:
        if lock_engine is not None:
            lock_engine.dispose()


def open_study(storage: str | optuna.storages.BaseStorage, study_name: str, *,
               sampler: optuna.samplers.BaseSampler | None = None,
               pruner: optuna.pruners.BasePruner | None = None,
               metadata: Mapping[str, Any] | None = None, cost: bool = False) -> optuna.Study:
    """Create the study (maximising; with ``cost``, maximising accuracy and minimising cost) or load it if
    it exists, e.g. when another worker made it first.

    A URL is opened with :func:`make_storage`. ``metadata`` (estimator, space, dataset, objective...)
    is stored as study user attributes the first time; a later open with different values raises
    :class:`StudyMismatch`, so one study never mixes trials of two settings.
    """
    if isinstance(storage, str):
        storage = make_storage(storage)
    with _initialization_lock(getattr(storage, "engine", None)):
        return _create_or_load(storage, study_name, sampler, pruner, metadata, cost)


def _create_or_load(storage, study_name, sampler, pruner, metadata, cost=False) -> optuna.Study:
    directions = ["maximize", "minimize"] if cost else ["maximize"]
    study = optuna.create_study(storage=storage, study_name=study_name, directions=directions,
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    if [d.name.lower() for d in study.directions] != directions:
        wanted = "maximises accuracy and minimises cost" if cost else "maximises accuracy"
        raise StudyMismatch(f"study {study_name!r} has directions {[d.name.lower() for d in study.directions]}; "
                            f"the tuner {wanted}")
    existing = study.user_attrs
    for key, value in (metadata or {}).items():
        if key in existing and existing[key] != value:
            raise StudyMismatch(f"study {study_name!r} was made with {key}={existing[key]!r}, not {value!r}; "
                                f"choose another study name")
        if key not in existing:
            study.set_user_attr(key, value)
    return study
