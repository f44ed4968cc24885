"""A run folder: the one module that names a run's files and reads and writes them.

A search writes ``config.json`` (its settings), ``history.csv`` (a row an epoch), ``probabilities.csv``,
``checkpoint.ckpt`` (each epoch), and at the end ``architecture.json`` (the answer: the distribution's
mode) and ``top_k.json``/``top_k.csv``. A multi-trial or table run writes ``trials.csv`` instead of a
checkpoint and history; a retraining writes ``retrain.csv`` and ``result.json`` beside the
architecture, config and checkpoint. Every write is atomic (:mod:`nas_estimators.files`): a kill at
any moment leaves the previous version.

Example:
    >>> import tempfile
    >>> run = RunFolder(tempfile.mkdtemp())
    >>> run.write_architecture({"cell/0_1": "skip_connect"})
    >>> run.read_architecture()
    {'cell/0_1': 'skip_connect'}
    >>> run.is_search(), run.finished()
    (False, True)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .files import atomic_write_text

if TYPE_CHECKING:  # pandas is imported where a table is read or written: the CLI's help stays fast
    import pandas as pd

__all__ = ["RunFolder", "ARCHITECTURE", "CONFIG", "HISTORY", "PROBABILITIES", "CHECKPOINT", "TOP_K_JSON",
           "TOP_K_CSV", "TRIALS", "RETRAIN_HISTORY", "RETRAIN_RESULT", "StudyFolder",
           "CompareFolder", "SweepFolder", "RESULTS", "SUMMARY", "REPORT"]

ARCHITECTURE = "architecture.json"
CONFIG = "config.json"
HISTORY = "history.csv"
PROBABILITIES = "probabilities.csv"
CHECKPOINT = "checkpoint.ckpt"
TOP_K_JSON = "top_k.json"
TOP_K_CSV = "top_k.csv"
COST = "cost.json"
TRIALS = "trials.csv"
RETRAIN_HISTORY = "retrain.csv"
RETRAIN_RESULT = "result.json"
BEST_ARCHITECTURE = "best_architecture.json"
BEST_TRIAL = "best_trial.json"
IMPORTANCES = "importances.csv"
COMPARE_SETTINGS = "compare.json"
RESULTS = "results.csv"
SUMMARY = "summary.csv"
REPORT = "report.html"


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


class RunFolder:
    """The files of one run in ``path`` (a search, a table or multi-trial run, or a retraining)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # ---------------------------------------------------------------- paths
    @property
    def architecture(self) -> Path:
        return self.path / ARCHITECTURE

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def history(self) -> Path:
        return self.path / HISTORY

    @property
    def probabilities(self) -> Path:
        return self.path / PROBABILITIES

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def top_k(self) -> Path:
        return self.path / TOP_K_JSON

    @property
    def top_k_csv(self) -> Path:
        return self.path / TOP_K_CSV

    @property
    def trials(self) -> Path:
        return self.path / TRIALS

    @property
    def retrain_history(self) -> Path:
        return self.path / RETRAIN_HISTORY

    @property
    def retrain_result(self) -> Path:
        return self.path / RETRAIN_RESULT

    # ---------------------------------------------------------------- what it holds
    def is_search(self) -> bool:
        """A search's folder: its settings and per-epoch history are here."""
        return self.config.is_file() and self.history.is_file()

    def finished(self, multi_trial: bool = False) -> bool:
        """A one-shot run is finished once it wrote its architecture, a multi-trial or table run its trials."""
        return (self.trials if multi_trial else self.architecture).is_file()

    def started(self) -> bool:
        """Something a new run would overwrite is here (a checkpoint or an answer)."""
        return self.checkpoint.exists() or self.architecture.exists()

    # ---------------------------------------------------------------- reads and writes
    def read_config(self) -> dict[str, Any]:
        """The run's settings; ValueError naming the file when it is missing, unreadable or not an object."""
        try:
            record = json.loads(self.config.read_text())
        except FileNotFoundError:
            raise ValueError(f"{self.path}: no {CONFIG} (not a run folder)") from None
        except (OSError, ValueError) as error:
            raise ValueError(f"{self.config} is unreadable: {error}") from None
        if not isinstance(record, dict):
            raise ValueError(f"{self.config}: expected a JSON object")
        return record

    def write_config(self, settings: Mapping[str, Any]) -> None:
        atomic_write_text(self.config, _json_text(dict(settings)))

    def read_history(self) -> pd.DataFrame:
        import pandas as pd

        return pd.read_csv(self.history)

    def write_history(self, history: pd.DataFrame) -> None:
        atomic_write_text(self.history, history.to_csv(index=False))

    def write_probabilities(self, probabilities: pd.DataFrame) -> None:
        atomic_write_text(self.probabilities, probabilities.to_csv(index=False))

    def read_architecture(self) -> Any:
        return json.loads(self.architecture.read_text())

    def write_architecture(self, architecture: Any) -> None:
        atomic_write_text(self.architecture, _json_text(architecture))

    @property
    def cost(self) -> Path:
        return self.path / COST

    def write_cost(self, record: dict[str, Any]) -> None:
        """``cost.json`` of a search under a budget: the cost, its target and units, the exported
        architecture's cost, and the multiplier and mean sampled cost after every step."""
        atomic_write_text(self.cost, _json_text(record))

    def write_top_k(self, rows: list[dict[str, Any]]) -> None:
        """``top_k.json`` (rows of rank, probability, architecture[, benchmark_acc]) and the same as CSV."""
        import pandas as pd

        atomic_write_text(self.top_k, _json_text(rows))
        atomic_write_text(self.top_k_csv, pd.DataFrame(
            [{**row, "architecture": json.dumps(row["architecture"])} for row in rows]).to_csv(index=False))

    def read_trials(self) -> pd.DataFrame:
        import pandas as pd

        return pd.read_csv(self.trials)

    def write_trials(self, trials: pd.DataFrame) -> None:
        atomic_write_text(self.trials, trials.to_csv(index=False))

    def write_retrain_history(self, rows: list[dict[str, Any]]) -> None:
        import pandas as pd

        atomic_write_text(self.retrain_history, pd.DataFrame(rows).to_csv(index=False))

    def write_retrain_result(self, result: Mapping[str, Any]) -> None:
        atomic_write_text(self.retrain_result, _json_text(dict(result)))


class StudyFolder:
    """The files ``tune`` writes for an Optuna study in ``path``: its trials, best trial, best
    architecture and, with two or more finished trials, the hyperparameters' importances."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def trials(self) -> Path:
        return self.path / TRIALS

    @property
    def best_architecture(self) -> Path:
        return self.path / BEST_ARCHITECTURE

    @property
    def best_trial(self) -> Path:
        return self.path / BEST_TRIAL

    @property
    def importances(self) -> Path:
        return self.path / IMPORTANCES

    def write_trials(self, trials: pd.DataFrame) -> None:
        atomic_write_text(self.trials, trials.to_csv(index=False))

    def write_best(self, architecture: Any, record: Mapping[str, Any]) -> None:
        atomic_write_text(self.best_architecture, _json_text(architecture))
        atomic_write_text(self.best_trial, _json_text(dict(record)))

    def write_importances(self, importances: Mapping[str, float]) -> None:
        import pandas as pd

        atomic_write_text(self.importances, pd.DataFrame(
            [{"parameter": k, "importance": v} for k, v in importances.items()]).to_csv(index=False))


class CompareFolder:
    """The files of a comparison in ``path``: ``compare.json`` (its settings), a :class:`RunFolder` per method
    and seed under ``runs/``, and the tables and page over them: ``results.csv``, ``trials.csv``,
    ``summary.csv`` and ``report.html``.

    >>> import tempfile
    >>> folder = CompareFolder(tempfile.mkdtemp())
    >>> folder.write_settings({"seeds": [0]}); folder.read_settings()
    {'seeds': [0]}
    >>> folder.run("sf", 0).path.name
    'sf-s0'
    """

    RUNS = "runs"  # the folder of the runs

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"CompareFolder({str(self.path)!r})"

    @property
    def settings(self) -> Path:
        return self.path / COMPARE_SETTINGS

    @property
    def results(self) -> Path:
        return self.path / RESULTS

    @property
    def trials(self) -> Path:
        return self.path / TRIALS

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY

    @property
    def report(self) -> Path:
        return self.path / REPORT

    def run(self, method: str, seed: int) -> RunFolder:
        return RunFolder(self.path / self.RUNS / f"{method}-s{seed}")

    def methods_run(self) -> set[str]:
        """The methods with a run folder here (finished or not)."""
        return {path.name.rsplit("-s", 1)[0] for path in (self.path / self.RUNS).glob("*-s*") if path.is_dir()}

    def has_settings(self) -> bool:
        return self.settings.is_file()

    def read_settings(self) -> dict[str, Any]:
        """The recorded settings; ValueError when the file is not a comparison's record."""
        try:
            return dict(json.loads(self.settings.read_text())["settings"])
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{self.settings} is not a comparison record") from None

    def write_settings(self, record: Mapping[str, Any]) -> None:
        (self.path / self.RUNS).mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.settings, _json_text({"settings": dict(record)}))

    def write_tables(self, results: pd.DataFrame, trials: pd.DataFrame, summary: pd.DataFrame,
                     report: str | None = None) -> None:
        """``results.csv``, ``summary.csv``, ``trials.csv`` when there are trials, and the page when given."""
        atomic_write_text(self.results, results.to_csv(index=False))
        if len(trials):
            atomic_write_text(self.trials, trials.to_csv(index=False))
        atomic_write_text(self.summary, summary.to_csv(index=False))
        if report is not None:
            atomic_write_text(self.report, report)


class SweepFolder:
    """The files of a cost-target sweep on the benchmark table (``nas-estimators pareto``) in ``path``: a
    table per name in :data:`SweepFolder.TABLES` (file names in :data:`SweepFolder.FILES`) and ``pareto.html``;
    ``summary.csv`` marks it finished."""

    TABLES = ("queries", "fronts", "results", "summary")
    #: The fronts (accuracy against cost, each run's and the table's) are the sweep's Pareto table.
    FILES = {"queries": "queries.csv", "fronts": "pareto.csv", "results": "results.csv", "summary": "summary.csv"}

    def files(self) -> list[Path]:
        return [self.path / self.FILES[name] for name in self.TABLES]

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def page(self) -> Path:
        return self.path / "pareto.html"

    def finished(self) -> bool:
        return (self.path / SUMMARY).exists()

    def write(self, tables: Mapping[str, pd.DataFrame], page: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        for name, path in zip(self.TABLES, self.files()):
            atomic_write_text(path, tables[name].to_csv(index=False))
        atomic_write_text(self.page, page)
