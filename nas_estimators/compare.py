"""Search quality side by side: several methods over several seeds on one space and data.

One-shot methods (ours: ``sf``, ``relax``, ``ram``; NNI's: ``nni-darts``, ``nni-gumbel``, ``nni-random``;
``nni-enas`` is refused, see :mod:`~nas_estimators.baselines`) each run :func:`~nas_estimators.search.run_search` with the same epochs, batch size and
data, into ``OUTPUT/runs/METHOD-sSEED/``. With a NAS-Bench-201 table, an epoch listener scores the
current mode architecture at every epoch. Multi-trial methods (NNI's ``RegularizedEvolution``,
``Random``, ``TPE``, ``PolicyBasedRL``) query ``budget`` architectures each, scored by table look-up
(no training), into the run folder ``OUTPUT/runs/METHOD-sSEED``.

A run whose output is complete is not redone, so an interrupted comparison continues where it
stopped; the comparison folder (:class:`~nas_estimators.run_folder.CompareFolder`) records the settings, and
a rerun with other settings is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from . import _nni, registry
from .methods import get as get_method
from .methods import names as method_names
from .data import DATASETS
from .errors import InputError
from .options import option, shared
from .run_folder import CompareFolder, RunFolder
from .search import (SearchConfig, SupernetSettings, check_config, prepare, resolve_device,
                     resolve_precision, run_search, supernet_settings)
from .settings import nni_values, unset_values
from .settings import before as settings_before
from .spaces import SPACES
from .table_search import LEARNING_RATE

DEFAULT_METHODS = ("sf", "relax", "ram", "nni-darts", "nni-gumbel", "nni-random")
# The settings a resumed comparison must share with the runs already in its output directory.
# Where the data lie and which device runs them may change; every other supernet setting may not.
SETTINGS = (*(field.name for field in dataclasses.fields(SupernetSettings) if field.name not in ("data_root", "device", "threads")),
            "benchmark_table", "budget", "table_learning_rate", "table_noise", "estimator_options", "objective",
            "method_epochs")

@dataclasses.dataclass
class CompareConfig(SupernetSettings):
    """What ``nas-estimators compare`` runs; the command line's options map one to one. Every one-shot
    search gets the :class:`~nas_estimators.search.SupernetSettings`; the search loop's
    (:class:`~nas_estimators.settings.LoopSettings`) are our methods', and NNI's keep their own."""

    methods: tuple[str, ...] = DEFAULT_METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    # The search settings every one-shot run shares: declared once, by SearchConfig (default, help, type),
    # and applied as search applies them (NNI's strategies keep their own learning rate, no warm-up by
    # default, and train the paths their own way).
    space: str = shared(SearchConfig, "space", default="nb201")  # the benchmark table's space
    epochs: int | None = shared(SearchConfig, "epochs", help="search epochs of every one-shot method")
    # Epochs of named one-shot methods instead of ``epochs``: a step of NNI's DARTS runs every candidate
    # of every edge, so equal wall-clock means fewer of its epochs (docs/search-quality.md, "Equal seconds").
    method_epochs: dict[str, int] = dataclasses.field(default_factory=dict)
    benchmark_table: str | None = option(None, "NAS-Bench-201 accuracies (arch, accuracy columns): score the mode "
                                         "every epoch; the multi-trial and table methods look every query up",
                                         metavar="CSV")
    budget: int = option(100, "architectures each multi-trial and table method queries", type=int)
    panel_images: int = shared(SearchConfig, "panel_images")
    table_learning_rate: float = option(LEARNING_RATE, "sf-table, relax-table, ram-table: Adam learning rate of the "
                                        "logits", type=float, before=0.1)
    table_noise: float = option(0.0, "table and multi-trial methods: standard deviation of Gaussian noise added to "
                                "each queried error (1 - accuracy/100); they return their best-scored query", type=float,
                                before=0.0)
    # Hyperparameters of our estimators by registry name; each
    # estimator reads its own, the rest keep the registry's defaults. Used by sf, relax, ram and the -table methods.
    estimator_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    # What sf, relax and ram minimise (objective term -> weight; None: the recipe's); NNI's strategies minimise
    # the supernet's loss.
    objective: dict[str, float] | None = None
    output: str = option("runs/compare", "output directory")
    progress: bool = True
    report_only: bool = option(False, "run nothing: write the tables and report of the runs already finished in "
                               "--output (the others are named and left out)", flag=True)

    def __post_init__(self) -> None:
        for name, value in unset_values(ours=True).items():
            if getattr(self, name) is None:
                setattr(self, name, value)


# What a comparison recorded before a setting existed ran with (the default of that time).
RECORDED_BEFORE = {"estimator_options": {}, "method_epochs": {}, **settings_before(CompareConfig)}


def check(config: CompareConfig):
    """Raise :class:`InputError` (one line naming the option) on bad input; returns the benchmark table or None."""
    from .nasbench201 import NUM_ARCHITECTURES, check_table_space, read_full_table

    if not config.methods:
        raise InputError("methods: expected at least one method")
    for method in config.methods:
        if method not in method_names():
            raise InputError(f"methods: unknown method {method!r}; expected some of {', '.join(method_names())}")
        try:
            get_method(method).check()
        except ValueError as error:
            raise InputError(str(error)) from None
        if method == "nni-rl" and not _nni.has_tianshou():
            raise InputError("nni-rl: NNI's PolicyBasedRL needs tianshou and gym, which do not import here "
                             "(pip install 'tianshou<0.5' gym)")
    if len(set(config.methods)) != len(config.methods):
        raise InputError(f"methods: each method once, got {', '.join(config.methods)}")
    for method, epochs in config.method_epochs.items():
        if method not in config.methods or not get_method(method).trains_supernet:
            raise InputError(f"method-epochs: {method!r} is not a one-shot method of this comparison; expected some of "
                             f"{', '.join(m for m in config.methods if get_method(m).trains_supernet) or 'none'}")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise InputError(f"method-epochs: {method} needs a positive integer of epochs, got {epochs!r}")
    if not config.seeds or any(isinstance(s, bool) or int(s) != s or s < 0 for s in config.seeds):
        raise InputError(f"seeds: expected one or more integers >= 0, got {list(config.seeds)}")
    unknown = sorted(set(config.estimator_options) - set(registry.hyperparameters()))
    if unknown:
        raise InputError(f"estimator options: unknown {', '.join(unknown)}; expected some of "
                         f"{', '.join(registry.hyperparameters())}")
    for method in config.methods:  # bad estimator values of the -table methods fail here, before any run starts
        if get_method(method).kind == "table":
            try:
                SearchConfig(estimator=get_method(method).estimator).with_hyperparameters(config.estimator_options).build_estimator()
            except (ValueError, TypeError) as error:
                raise InputError(f"{method}: {error}") from None
    if len(set(config.seeds)) != len(config.seeds):
        raise InputError(f"seeds: each seed once, got {list(config.seeds)}")
    if config.space not in SPACES:
        raise InputError(f"space: expected one of {', '.join(SPACES)}, got {config.space!r}")
    if config.dataset not in DATASETS:
        raise InputError(f"dataset: expected one of {', '.join(DATASETS)}, got {config.dataset!r}")
    if config.dataset == "cifar10" and config.data_root is None:
        raise InputError("data-root: cifar10 needs --data-root")
    try:
        resolve_precision(config.precision, resolve_device(config.device))
    except ValueError as error:
        raise InputError(str(error)) from None
    for method in config.methods:  # every search option is checked where search checks it
        if get_method(method).trains_supernet:
            try:
                check_config(oneshot_search_config(config, method, 0, Path(config.output)))
            except (ValueError, TypeError) as error:
                raise InputError(re.sub(r"^(\w+):", lambda m: m.group(1).replace("_", "-") + ":", str(error))) from None
    if isinstance(config.budget, bool) or int(config.budget) != config.budget or config.budget < 1:
        raise InputError(f"budget: expected a positive number of architectures, got {config.budget!r}")
    for name, value, allowed in (("table-learning-rate", config.table_learning_rate, "a positive number"),
                                 ("table-noise", config.table_noise, "a number >= 0")):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
                and (value > 0 or name == "table-noise")):
            raise InputError(f"{name}: expected {allowed}, got {value!r}")
    multi_trial = [m for m in config.methods if get_method(m).needs_table]
    if config.benchmark_table is None:
        if multi_trial:
            raise InputError(f"{multi_trial[0]}: multi-trial methods score architectures by table look-up; "
                             "pass --benchmark-table")
        return None
    try:
        check_table_space(config.space, "benchmark-table")
    except ValueError as error:
        raise InputError(str(error)) from None
    try:
        table = read_full_table(config.benchmark_table)
    except ValueError as error:
        raise InputError(str(error)) from None
    if multi_trial and config.budget > NUM_ARCHITECTURES:
        raise InputError(f"budget: at most the {NUM_ARCHITECTURES} architectures of the space, got {config.budget}")
    return table


def settings(config: CompareConfig) -> dict[str, Any]:
    record = {key: getattr(config, key) for key in SETTINGS}
    # Only what differs from the registry's defaults: a comparison recorded before an option existed, or
    # with an option at its default, has the same settings.
    record["estimator_options"] = {name: value for name, value in sorted(config.estimator_options.items())
                                   if value != registry.default(name)}
    if record["benchmark_table"] is not None:
        # The table's content, not its path: a comparison can move between machines (a GPU's, then
        # yours for the report) and continue there.
        path = Path(record["benchmark_table"])
        record["benchmark_table"] = ("sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file()
                                     else os.path.abspath(path))
    return record


def _check_settings(folder: CompareFolder, config: CompareConfig) -> None:
    if not folder.has_settings():
        return
    try:
        previous = folder.read_settings()
    except ValueError as error:
        raise InputError(f"output: {error}; choose another --output") from None
    current = settings(config)
    table = previous.get("benchmark_table")
    if isinstance(table, str) and not table.startswith("sha256:") and config.benchmark_table is not None \
            and os.path.abspath(config.benchmark_table) == table:
        previous = {**previous, "benchmark_table": current["benchmark_table"]}  # earlier versions recorded the path
    # A setting added after the comparison was recorded ran at its default then.
    previous = {key: previous.get(key, RECORDED_BEFORE.get(key)) for key in SETTINGS}
    # A method's own epochs matter only for the methods this call runs that ran before: a baseline can join
    # a comparison later with its own.
    ran = folder.methods_run() & set(config.methods)
    previous["method_epochs"] = {m: e for m, e in previous["method_epochs"].items() if m in ran}
    current = {**current, "method_epochs": {m: e for m, e in current["method_epochs"].items() if m in ran}}
    changed = [f"{key} {previous[key]!r} -> {current[key]!r}" for key in SETTINGS if previous[key] != current[key]]
    if changed:
        raise InputError(f"output: {folder.path} holds a comparison with other settings ({'; '.join(changed)}); "
                         "choose another --output")


def is_finished(directory: Path, method: str) -> bool:
    """Whether the run of ``method`` in ``directory`` wrote its answer (see ``RunFolder.finished``)."""
    return RunFolder(directory).finished(multi_trial=get_method(method).needs_table)


def run_compare(config: CompareConfig, progress: Callable[[str], None] = print,
                report: Callable[..., str] | None = None) -> dict[str, Any]:
    """Run every (method, seed) not finished yet, then write the comparison's tables and, given ``report``
    (``report(results, trials, summary, table)`` returning a page, as the command passes
    :func:`nas_estimators.integrations.compare_report.report_html`), its page (see ``CompareFolder``).

    With ``config.report_only`` nothing runs: the tables and report cover the finished runs (a
    comparison whose GPU time ran out, or one copied back from a GPU machine).
    """
    table = check(config)
    output = Path(config.output)
    folder = CompareFolder(output)
    pairs = [(method, seed) for method in config.methods for seed in config.seeds]
    if config.report_only:  # the options that say how to run do not matter: nothing runs
        if not folder.has_settings():
            raise InputError(f"output: {output} holds no comparison to report on")
        finished = [(m, s) for m, s in pairs if is_finished(folder.run(m, s).path, m)]
        missing = [f"{m} seed {s}" for m, s in pairs if (m, s) not in finished]
        if not finished:
            raise InputError(f"output: no run of {', '.join(config.methods)} with seeds "
                             f"{', '.join(map(str, config.seeds))} has finished in {output}")
        if missing:
            progress(f"not finished, left out: {', '.join(missing)}")
        return _write_outputs(output, finished, table, report)
    _check_settings(folder, config)
    record = settings(config)
    if folder.has_settings():  # keep the epochs of methods this call does not run
        record["method_epochs"] = {**folder.read_settings().get("method_epochs", {}), **record["method_epochs"]}
    folder.write_settings(record)
    data = None
    for index, (method, seed) in enumerate(pairs, 1):
        directory = folder.run(method, seed).path
        if is_finished(directory, method):
            progress(f"[{index}/{len(pairs)}] {method} seed {seed}: finished before, skipped ({directory})")
            continue
        progress(f"[{index}/{len(pairs)}] {method} seed {seed}: running -> {directory}")
        kind = get_method(method).kind
        if kind == "table":
            run_table_method(config, method, seed, table, directory)
        elif kind == "nni-multi-trial":
            run_multi_trial_method(method, seed, config.budget, table, directory, config.table_noise)
        else:
            if data is None:  # loaded once for every one-shot run
                from .data import load_dataset

                try:
                    data = load_dataset(config.dataset, config.data_root)
                except ValueError as error:  # DataError: a missing or malformed --data-root
                    raise InputError(str(error)) from None
            run_oneshot_method(config, method, seed, directory, data)
    return _write_outputs(output, pairs, table, report)


def _write_outputs(output: Path, pairs: list[tuple[str, int]], table, report) -> dict[str, Any]:
    results, trials = collect(output, pairs)
    summary = summarize(results, trials)
    CompareFolder(output).write_tables(results, trials, summary,
                                       None if report is None else report(results, trials, summary, table))
    return {"results": results, "trials": trials, "summary": summary, "output": output}


def oneshot_search_config(config: CompareConfig, method: str, seed: int, directory: Path) -> SearchConfig:
    """The search a one-shot method runs for ``seed`` in ``directory`` (ours get the estimator options)."""
    ours = get_method(method).accepts_objective
    # NNI's run as NNI runs them: their own loop settings and objective (SearchConfig resolves None by the kind)
    settings = {**supernet_settings(config), **({} if ours else nni_values()),
                "epochs": config.method_epochs.get(method, config.epochs)}
    search_config = SearchConfig(
        **settings, estimator=method, output=str(directory), seed=seed, benchmark_table=config.benchmark_table,
        panel_images=config.panel_images if ours else 0, progress=config.progress,
        objective=dict(config.objective) if ours else None, resume=RunFolder(directory).checkpoint.is_file())
    return search_config.with_hyperparameters(config.estimator_options) if ours else search_config


def run_oneshot_method(config: CompareConfig, method: str, seed: int, directory: Path, data) -> None:
    search_config = oneshot_search_config(config, method, seed, directory)
    try:
        parts = prepare(search_config, data=data)
    except (ValueError, TypeError) as error:
        raise InputError(f"{method} seed {seed}: {error}") from None
    run_search(search_config, parts)  # with the table: the mode scored every epoch, and (ours) the panel


def run_multi_trial_method(method: str, seed: int, budget: int, table, directory: Path, noise: float = 0.0) -> None:
    """Query ``budget`` architectures with NNI's strategy, each scored by look-up; writes the run's trials.

    With ``noise``, each score is the accuracy minus ``100 * noise`` times a standard normal draw (the
    same noise as the table methods' losses, in accuracy units), and ``best_so_far`` follows the best score.
    """
    from .spaces import build_space
    from .table_search import best_so_far

    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    noise_generator = torch.Generator().manual_seed(seed + 1_000_003)

    def score(sample: dict) -> float:
        accuracy = table.accuracy(sample)
        seen = accuracy - 100.0 * noise * float(torch.randn((), generator=noise_generator)) if noise else accuracy
        rows.append({"trial": len(rows) + 1, "architecture": json.dumps(sample), "benchmark_acc": accuracy,
                     "score": seen, "seconds": time.perf_counter() - started})
        return seen

    strategy = _nni.multi_trial_strategy(get_method(method).nni_class, seed, budget)
    # The labels do not depend on the network's size: the smallest network builds fastest.
    _nni.run_multi_trial(strategy, build_space("nb201", 1, 1), score, budget)
    frame = pd.DataFrame(rows, columns=["trial", "architecture", "benchmark_acc", "score", "seconds"])
    frame["best_so_far"] = best_so_far(frame["score"], frame["benchmark_acc"])
    directory.mkdir(parents=True, exist_ok=True)
    RunFolder(directory).write_trials(frame)


def run_table_method(config: CompareConfig, method: str, seed: int, table, directory: Path) -> None:
    """Our estimator on the table itself, ``budget`` queries (see :mod:`~nas_estimators.table_search`)."""
    from .nasbench201 import LABELS, NNI_OPS
    from .table_search import TableSearch

    estimator_config = SearchConfig(estimator=get_method(method).estimator).with_hyperparameters(config.estimator_options)
    try:
        estimator = estimator_config.build_estimator(steps=config.budget)
    except (ValueError, TypeError) as error:
        raise InputError(f"{method}: {error}") from None
    search = TableSearch(estimator, {label: NNI_OPS for label in LABELS}, table.accuracy,
                         learning_rate=config.table_learning_rate, noise=config.table_noise)
    frame = search.run(config.budget, seed=seed)
    directory.mkdir(parents=True, exist_ok=True)
    RunFolder(directory).write_trials(frame)


def collect(output: Path, pairs: list[tuple[str, int]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results (one row per one-shot method, seed, epoch) and trials (one row per queried architecture)."""
    histories, trial_frames = [], []
    for method, seed in pairs:
        directory = CompareFolder(output).run(method, seed).path
        if get_method(method).needs_table:
            frame = RunFolder(directory).read_trials()
            trial_frames.append(frame.assign(method=method, seed=seed))
        else:
            frame = RunFolder(directory).read_history()
            histories.append(frame.assign(method=method, seed=seed))
    columns = ["method", "seed", "epoch", "train_loss", "val_loss", "val_acc", "entropy", "benchmark_acc", "seconds",
               "panel_tau", "panel_loss_tau", "panel_best_benchmark_acc", "mode"]
    results = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(columns=columns)
    results = results.reindex(columns=columns)
    trial_columns = ["method", "seed", "trial", "architecture", "benchmark_acc", "best_so_far", "mode_acc", "seconds"]
    trials = pd.concat(trial_frames, ignore_index=True) if trial_frames else pd.DataFrame(columns=trial_columns)
    return results, trials.reindex(columns=trial_columns)


def summarize(results: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """Per method: final benchmark accuracy (mean, standard deviation over seeds) and search seconds.

    One-shot: the last epoch's values, seconds summed over epochs. Multi-trial: the best accuracy
    found within the budget, seconds until the last query. Standard deviations are sample ones (NaN
    for one seed).
    """
    rows = []
    for method, frame in results.groupby("method", sort=False):
        final = frame.sort_values("epoch").groupby("seed").tail(1)
        rows.append({"method": method, "kind": "one-shot", "runs": len(final), "epochs": int(frame["epoch"].max()) + 1,
                     "budget": math.nan,
                     "final_benchmark_acc_mean": final["benchmark_acc"].mean(),
                     "final_benchmark_acc_std": final["benchmark_acc"].std(),
                     "final_mode_acc_mean": final["benchmark_acc"].mean(),
                     "final_val_acc_mean": final["val_acc"].mean(),
                     "final_panel_tau_mean": final["panel_tau"].mean(),
                     "final_panel_best_benchmark_acc_mean": final["panel_best_benchmark_acc"].mean(),
                     "search_seconds_mean": frame.groupby("seed")["seconds"].sum().mean()})
    for method, frame in trials.groupby("method", sort=False):
        final = frame.sort_values("trial").groupby("seed").tail(1)
        kind = "table" if get_method(method).kind == "table" else "multi-trial"
        rows.append({"method": method, "kind": kind, "runs": len(final), "epochs": math.nan,
                     "budget": int(frame.groupby("seed")["trial"].max().max()),
                     "final_benchmark_acc_mean": final["best_so_far"].mean(),
                     "final_benchmark_acc_std": final["best_so_far"].std(),
                     "final_mode_acc_mean": final["mode_acc"].mean(),
                     "final_val_acc_mean": math.nan, "final_panel_tau_mean": math.nan,
                     "final_panel_best_benchmark_acc_mean": math.nan,
                     "search_seconds_mean": final["seconds"].mean()})
    summary = pd.DataFrame(rows, columns=["method", "kind", "runs", "epochs", "budget", "final_benchmark_acc_mean",
                                          "final_benchmark_acc_std", "final_mode_acc_mean", "final_val_acc_mean",
                                          "final_panel_tau_mean",
                                          "final_panel_best_benchmark_acc_mean", "search_seconds_mean"])
    return summary.astype({"epochs": "Int64", "budget": "Int64"})


def method_epochs_argument(text: str) -> dict[str, int]:
    """``"nni-darts=3,nni-random=20"`` as ``{"nni-darts": 3, "nni-random": 20}`` (InputError naming a bad part)."""
    epochs: dict[str, int] = {}
    for part in filter(None, (piece.strip() for piece in str(text).split(","))):
        method, _, value = part.partition("=")
        try:
            epochs[method.strip()] = int(value)
        except ValueError:
            raise InputError(f"method-epochs: expected METHOD=EPOCHS,..., got {part!r}") from None
    return epochs


def list_argument(values, kind: Callable[[str], Any] = str) -> tuple:
    """``--seeds 0,1 2`` -> ``(0, 1, 2)`` (commas or spaces)."""
    return tuple(kind(part.strip()) for value in values for part in str(value).split(",") if part.strip())
