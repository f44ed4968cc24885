"""A whole search from the command line: data, space, strategy, Lightning trainer, output files.

The strategy is driven directly (``mutate_model``, ``mutate_evaluator``, ``evaluate``), not through
``NasExperiment``, which NNI 3.0 can hang on a machine without network.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import pytorch_lightning as pl
import torch

from . import _nni, methods, registry
from .budget import COSTS, CostBudget
from .checkpoints import IDENTITY, VerifiedCheckpointIO, check_belongs, read_checkpoint
from .data import DATASETS, DeviceBatches, ImageData, load_dataset, search_batches
from . import recipe
from .lightning import SearchDiverged
from .recipe import WARMUP_SHARE  # noqa: F401 (importable from here, as before)
from .nasbench201 import BenchmarkTable, benchmark_listener, check_table_space
from .objective import CALIBRATION_IMAGES, SCORING_IMAGES, Objective
from .run_folder import RunFolder
from .recorder import EpochListener, SearchInterrupted, SearchRecorder, exported
from .options import option
from .checks import integer, positive_number
from .settings import LoopSettings, unset_values
from .settings import before as saved_before
from .spaces import BATCH_NORMS, SPACES, build_space, resolve_size
from .threads import AUTO, GovernorCallback, ThreadGovernor, record_threads, resolve_threads, start_threads

__all__ = ["SupernetSettings", "SearchConfig", "SearchParts", "prepare", "run_search", "SearchDiverged", "SearchInterrupted", "EpochListener"]

PRECISIONS = ("bf16", "fp32")
# Epochs when none are asked for: the digits default finishes in minutes on a laptop CPU.
DEFAULT_EPOCHS = {"digits": 100, "cifar10": 50}


@dataclasses.dataclass
class SupernetSettings(LoopSettings):
    """What every one-shot search of a comparison shares, ours and NNI's: the data, the supernet, how its
    weights train and on what hardware, beside the search loop's settings (``compare`` passes them on)."""

    space: str = option("darts", "model space", choices=SPACES)
    dataset: str = option("digits", "digits (ships with scikit-learn) or cifar10 (needs --data-root)", choices=DATASETS)
    data_root: str | None = option(None, "CIFAR-10: torchvision's cifar-10-batches-py files or DIR/train/<class>/, "
                                         "DIR/test/<class>/ image folders")
    epochs: int | None = option(None, "search epochs", type=int,
                                shown=", ".join(f"{n} on {d}" for d, n in DEFAULT_EPOCHS.items()))
    batch_size: int = option(64, "images per batch", type=int)
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    width: int | None = option(None, "initial channels", type=int, shown="16; 8 on digits")
    cells: int | None = option(None, "DARTS: cells in the network; nb201: cells per stage", type=int,
                               shown="DARTS 8, nb201 5; on digits 5 and 1")
    weight_learning_rate: float = option(0.025, "SGD learning rate of the shared weights", type=float, before=0.025)
    batch_norm: str = option("nni", "supernet batch norm: nni (as NNI builds it) or no-affine (batch statistics "
                             "only, no affine parameters, as NAS-Bench-201's one-shot searches)", choices=BATCH_NORMS,
                             before="nni")
    precision: str = option("auto", "bf16 autocast or fp32; auto: bf16 on CUDA, fp32 on the CPU",
                            choices=("auto", *PRECISIONS))
    channels_last: bool = option(False, "channels-last memory format (CUDA)", flag=True)
    threads: int | str | None = option(None, "intra-op threads of this process; auto: one, plus the cores other "
                                       "processes leave idle, re-checked every second (numbers then depend on the "
                                       "load); see threads.resolve_threads", metavar="{auto,N}",
                                       shown="OMP_NUM_THREADS if set, else 1 on the CPU")


def supernet_settings(config: SupernetSettings) -> dict[str, Any]:
    """``config``'s :class:`SupernetSettings` (search-loop settings included), by field name."""
    return {field.name: getattr(config, field.name) for field in dataclasses.fields(SupernetSettings)}


@dataclasses.dataclass
class SearchConfig(SupernetSettings):
    """Everything a search needs; the command line's ``search`` options map one to one (the settings it
    shares with every search of a comparison are :class:`SupernetSettings`' fields)."""

    estimator: str = "sf"  # its option is the command's (search also offers NNI's one-shot strategies)
    download: bool = option(False, "let torchvision download CIFAR-10 into --data-root", flag=True)
    output: str = "runs/search"
    seed: int = option(0, "random seed", type=int)
    weight_decay: float = 3e-4
    gradient_clip: float | None = 5.0
    # What the estimators minimise: objective term name -> weight (see objective.py); None: the method's.
    objective: dict[str, float] | None = None
    cost: str | None = option(None, "search under a budget on this cost of the sampled architecture: params (millions "
                              "of parameters), flops (MFLOPs of one input as torch's FlopCounterMode counts them, "
                              "two per multiply-add) or latency (milliseconds for one input on this device and "
                              "threads, from a per-candidate table measured once and cached)", choices=tuple(COSTS))
    cost_target: float | None = option(None, "the budget: expected --cost at most this, in its units; the export is "
                                       "the most probable architecture within it (the run folder's cost record says how it went)", type=float)
    # The estimator's hyperparameters by registry name (those left out: the registry's defaults). The record
    # writes each registered one beside the fields (see to_record).
    estimator_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    top_k: int = option(5, "also write the K most probable architectures", type=int)
    benchmark_table: str | None = option(None, "nb201: NAS-Bench-201 accuracy table (arch, accuracy); scores the mode "
                                         "every epoch and the top-k architectures", metavar="CSV")
    panel_images: int = option(512, "with --benchmark-table: held-out images on which a panel of 80 architectures is "
                               "scored each epoch (Kendall's tau in the history; 0: off)", type=int)
    deterministic: bool = option(False, "deterministic algorithms only (CUDA: reproducible, slower)", flag=True)
    resume: bool = option(False, "continue the search in --output with its saved options (--epochs may extend it)",
                          flag=True)
    progress: bool = True
    # Data-parallel search (Lightning's DDP): processes per machine and machines; each process samples
    # its own architectures, and the estimator averages their estimates (see distributed.py).
    devices: int = 1
    num_nodes: int = 1

    def __post_init__(self) -> None:
        for name, value in unset_values(not _nni_oneshot(self.estimator), cost=self.cost).items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    @property
    def processes(self) -> int:
        return int(self.devices) * int(self.num_nodes)

    def with_hyperparameters(self, values: Mapping[str, Any]) -> "SearchConfig":
        """A copy with ``values`` set: settings (fields) by name, estimator hyperparameters (registry names) in
        ``estimator_options``."""
        fields = {field.name for field in dataclasses.fields(SearchConfig)}
        options = {**self.estimator_options, **{k: v for k, v in values.items() if k not in fields}}
        return dataclasses.replace(self, estimator_options=options, **{k: v for k, v in values.items() if k in fields})

    def to_record(self) -> dict[str, Any]:
        """The fields, with every registered hyperparameter's value beside them (the run folder's record)."""
        record = dataclasses.asdict(self)
        options = record.pop("estimator_options")
        return {**record, **{h.name: options.get(h.name, h.default) for h in registry.hyperparameters().values()}}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "SearchConfig":
        """The configuration :meth:`to_record` wrote (or an older layout: options nested in
        ``estimator_options``, fields it no longer has ignored, fields it did not have yet at their old value)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        options = {**record.get("estimator_options", {}),
                   **{name: record[name] for name in registry.hyperparameters() if name in record}}
        # A search saved before an option existed ran as if it were at the default of that time, not today's.
        return cls(**{**saved_before(cls), **{key: value for key, value in record.items() if key in fields},
                      "estimator_options": options})

    @classmethod
    def saved(cls, output: str | Path) -> "SearchConfig":
        """The configuration the search in ``output`` was started with (its run folder's settings)."""
        run = RunFolder(output)
        if not run.config.is_file():
            raise ValueError(f"resume: no search in {output} (no {run.config.name})")
        try:
            record = run.read_config()
        except ValueError as error:
            raise ValueError(f"resume: {error}") from None
        return cls.from_record(record)

    def __getattr__(self, name: str) -> Any:
        """A registered hyperparameter's value read as an attribute, as when each built-in one was a field."""
        if name != "estimator_options" and name in registry.hyperparameters():
            return self.estimator_options.get(name, registry.default(name))
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def hyperparameter_values(self) -> dict[str, Any]:
        """The values of ``estimator``'s hyperparameters (see :mod:`~nas_estimators.registry`)."""
        return {h.name: self.estimator_options.get(h.name, h.default) for h in registry.get(self.estimator).hyperparameters}

    def build_estimator(self, steps: int = 1) -> Any:
        """The estimator ``estimator`` names; ``steps`` is the length of its temperature schedule."""
        return registry.get(self.estimator).build(self.hyperparameter_values(), steps)

    def identity(self, width: int | None = None, cells: int | None = None) -> dict[str, Any]:
        """What a checkpoint must share with the search that resumes it (``checkpoints.IDENTITY``), with the
        resolved ``width`` and ``cells`` when given."""
        resolved = {"width": self.width if width is None else width, "cells": self.cells if cells is None else cells}
        return {name: resolved[name] if name in resolved else getattr(self, name) for name in IDENTITY}


def _init_with_hyperparameters(init: Any) -> Any:
    """A keyword naming a registered hyperparameter (and no field) goes into ``estimator_options``, as code
    written when each built-in hyperparameter was a field expects."""
    @functools.wraps(init)
    def __init__(self: SearchConfig, *args: Any, **kwargs: Any) -> None:
        named = {name: kwargs.pop(name) for name in list(kwargs)
                 if name in registry.hyperparameters() and name not in _FIELDS}
        init(self, *args, **kwargs)
        if named:
            self.estimator_options = {**self.estimator_options, **named}
    return __init__


_FIELDS = frozenset(field.name for field in dataclasses.fields(SearchConfig))
SearchConfig.__init__ = _init_with_hyperparameters(SearchConfig.__init__)  # type: ignore[method-assign]


def _nni_oneshot(name: str) -> bool:
    """Whether ``name`` is one of NNI's one-shot strategies (run as NNI runs them) rather than our estimator."""
    return name in methods.names("nni-oneshot")


def check_processes(config: SearchConfig, device: torch.device) -> None:
    """``devices`` and ``num_nodes``: positive integers, and no more devices than this machine has."""
    for name in ("devices", "num_nodes"):
        integer(name, getattr(config, name))
    available = torch.cuda.device_count() if device.type == "cuda" else (os.cpu_count() or 1)
    if config.devices > available:
        kind = "CUDA devices" if device.type == "cuda" else "CPU cores"
        raise ValueError(f"devices: {config.devices} processes asked for, this machine has {available} {kind}")
    if config.processes > 1 and device.type == "cuda" and device.index is not None:
        raise ValueError(f"device: {device} names one GPU; a search on --devices {config.devices} takes "
                         f"--device cuda (the first {config.devices} GPUs)")
    if config.processes > 1 and _nni_oneshot(config.estimator):
        raise ValueError(f"devices: NNI's own strategies run here in one process; "
                         f"{config.estimator} with {config.processes} processes is not supported")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got {device!r}") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} asked for, but no CUDA device is available here")
    return resolved


class SearchClassifier(_nni.LightningModule):
    """The evaluator's training recipe: cross-entropy, SGD with momentum, cosine learning rate (DARTS)."""

    def __init__(self, learning_rate: float, weight_decay: float, epochs: int) -> None:
        super().__init__()
        self.learning_rate, self.weight_decay, self.epochs = learning_rate, weight_decay, epochs
        self.criterion = torch.nn.CrossEntropyLoss()

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        loss = self.criterion(self(inputs), targets)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.learning_rate, momentum=0.9,
                                    weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(self.epochs, 1),
                                                              eta_min=self.learning_rate / 25)
        return [optimizer], [schedule]


@dataclasses.dataclass
class SearchParts:
    """What :func:`prepare` builds from a checked config: everything :func:`run_search` runs."""

    device: torch.device
    data: ImageData
    space: Any  # the NNI model space
    batches: tuple[DeviceBatches, DeviceBatches]  # (weights half, architecture half)
    strategy: Any  # an EstimatorStrategy, or one of NNI's strategies (baselines.make_oneshot_baseline)
    epochs: int
    settings: LoopSettings  # resolved: the weights-only epochs counted, unset values the method's
    output: Path
    width: int | None
    cells: int | None
    table: BenchmarkTable | None
    precision: str
    governor: ThreadGovernor | None = None  # a CPU search's threads, when not fixed


def supernet_space(config: SupernetSettings, width: int, cells: int, num_classes: int) -> Any:
    """The NNI model space ``config`` searches, at the resolved ``width`` and ``cells``."""
    return build_space(config.space, width, cells, num_classes=num_classes, batch_norm=config.batch_norm)


def weights_trained(config: SearchConfig, parts: SearchParts) -> bool:
    """Whether any step trains the shared weights: not when they are frozen from the first step and no term
    reads them, and then their accuracy says nothing."""
    return parts.settings.trains_weights(config.objective)


def schedule(config: SearchConfig) -> tuple[int, int]:
    """The search's epochs and weights-only epochs, defaults resolved (ValueError naming a bad one)."""
    epochs, settings = check_config(config)[:2]
    return epochs, epochs - settings.searching_epochs(epochs)


def loop_settings(config: SearchConfig, epochs: int) -> LoopSettings:
    """The search loop's settings of ``config``, checked, with the method's kind resolving unset ones."""
    return config.loop_settings().resolved(epochs, ours=not _nni_oneshot(config.estimator))


def check_config(config: SearchConfig) -> tuple[int, LoopSettings, torch.device, str]:
    """Check every option that needs no data or files (ValueError naming the option, before any work).

    Returns the epochs, the search loop's settings (resolved), device and precision the search will use.
    ``compare`` checks each of its searches with this too, so an option is checked in one place.
    """
    from .baselines import check_oneshot_baseline

    integer("batch_size", config.batch_size)
    epochs = integer("epochs", DEFAULT_EPOCHS.get(config.dataset, 10) if config.epochs is None else config.epochs)
    settings = loop_settings(config, epochs)  # checked
    integer("top_k", config.top_k)
    positive_number("weight_learning_rate", config.weight_learning_rate)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    resolve_threads(config.threads, device)
    check_processes(config, device)
    if _nni_oneshot(config.estimator):
        check_oneshot_baseline(config.estimator)
    else:
        config.build_estimator()  # checks the hyperparameters before any data is read
    Objective.from_weights(config.objective)
    if _nni_oneshot(config.estimator):
        config.check_for_nni(config.estimator)
    if _nni_oneshot(config.estimator) and dict(config.objective) != recipe.NNI_OBJECTIVE:
        raise ValueError(f"objective: {config.estimator} minimises the supernet's loss alone (as NNI runs it); "
                         "objective terms are for sf, relax and ram")
    if (config.cost is None) != (config.cost_target is None):
        raise ValueError("cost: --cost and --cost-target go together (a cost and its budget)")
    if config.cost is not None:
        if _nni_oneshot(config.estimator):
            raise ValueError(f"cost: {config.estimator} minimises the supernet's loss alone (as NNI runs it); "
                             "cost budgets are for sf, relax and ram")
        CostBudget(config.cost, config.cost_target)  # the cost's name and the target's value
    if config.batch_norm not in BATCH_NORMS:
        raise ValueError(f"batch_norm: expected one of {', '.join(BATCH_NORMS)}, got {config.batch_norm!r}")
    integer("panel_images", config.panel_images, minimum=0)
    return epochs, settings, device, precision


def prepare(config: SearchConfig, data: Any = None) -> SearchParts:
    """Check every input and build the parts; bad input raises ValueError/TypeError before any work.

    ``data`` (an :class:`~nas_estimators.data.ImageData`) replaces loading ``config.dataset``: several
    searches on one data set load it once. ``config.estimator`` may also name one of NNI's one-shot
    strategies (the ``nni-oneshot`` kind of :mod:`~nas_estimators.methods`), run with NNI's own defaults.
    """
    from .baselines import make_oneshot_baseline
    from .strategy import EstimatorStrategy

    epochs, settings, device, precision = check_config(config)
    threads = resolve_threads(config.threads, device)
    # A deterministic run keeps one thread: the count changes a reduction's order, so its numbers.
    governor = start_threads(1 if threads == AUTO and config.deterministic else threads)
    output = Path(config.output)
    run = RunFolder(output)
    checkpoint_path = run.checkpoint
    if config.resume and not checkpoint_path.is_file():
        raise ValueError(f"resume: no checkpoint at {checkpoint_path}")
    if not config.resume and run.started():
        raise ValueError(f"output: {output} already holds a search; pass --resume or choose another --output")
    checkpoint = read_checkpoint(checkpoint_path) if config.resume else None
    table = None
    if config.benchmark_table is not None:
        check_table_space(config.space)
        table = BenchmarkTable.from_csv(config.benchmark_table)

    data = load_dataset(config.dataset, config.data_root, download=config.download) if data is None else data
    width, cells = resolve_size(config.space, config.dataset, config.width, config.cells)
    if checkpoint is not None:
        check_belongs(checkpoint_path, checkpoint, config.identity(width, cells))
    pl.seed_everything(config.seed, workers=False, verbose=False)  # the supernet's initial weights
    space = supernet_space(config, width, cells, data.num_classes)
    batches = search_batches(data, int(config.batch_size), device=device, seed=config.seed,
                             channels_last=config.channels_last)
    if _nni_oneshot(config.estimator):
        strategy = make_oneshot_baseline(config.estimator, gradient_clip_val=config.gradient_clip,
                                         weights_only_epochs=epochs - settings.searching_epochs(epochs))
    else:
        estimator = config.build_estimator(steps=max(1, settings.searching_epochs(epochs) * len(batches[0])))
        strategy = EstimatorStrategy(estimator, **dataclasses.asdict(settings), gradient_clip_val=config.gradient_clip,
                                     objective=Objective.from_weights(config.objective), objective_seed=config.seed,
                                     scoring_inputs=batches[0].fixed(SCORING_IMAGES)[0],
                                     calibration_batch=batches[1].fixed(CALIBRATION_IMAGES),
                                     cost=config.cost, cost_target=config.cost_target,
                                     rescore_batch=batches[1].fixed(settings.rescore_images)
                                     if settings.rescore_top_k else None)
        if strategy.budget is not None:  # an unreachable target is refused before any training
            import copy

            from .distribution import ArchitectureDistribution
            from .strategy import path_sampling_supernet

            supernet = path_sampling_supernet(copy.deepcopy(space))
            started = time.perf_counter()
            distribution = ArchitectureDistribution.from_model_space(supernet)
            strategy.budget.bind(supernet, batches[0].fixed(SCORING_IMAGES)[0], distribution)
            strategy.budget.check_reachable(distribution)
            strategy.budget.pre_search_seconds = time.perf_counter() - started
    return SearchParts(device=device, data=data, space=space, batches=batches, strategy=strategy, epochs=epochs,
                       settings=settings, output=output, width=width, cells=cells, table=table, precision=precision,
                       governor=governor)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``bf16`` or ``fp32``; ``auto`` is bf16 autocast on CUDA and fp32 on the CPU."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected auto, {' or '.join(PRECISIONS)}, got {precision!r}")
    return precision


def run_search(config: SearchConfig, parts: SearchParts | None = None,
               listeners: Sequence[EpochListener] = (), callbacks: Sequence[pl.Callback] = ()) -> dict[str, Any]:
    """Run a search and write its run folder (:mod:`nas_estimators.run_folder`) in ``config.output``.

    ``listeners`` are called after every epoch with the history row and the search module, before
    the row is written: they can add columns (a benchmark accuracy of the mode) or raise to stop.
    SIGTERM and SIGINT finish the running step, save a checkpoint and raise :class:`SearchInterrupted`;
    too many non-finite steps in a row raise :class:`SearchDiverged` (the last checkpoint stays intact).
    ``callbacks`` are extra Lightning callbacks (``bench`` times steps with one).
    """
    from pytorch_lightning.callbacks import TQDMProgressBar

    parts = parts or prepare(config)
    output: Path = parts.output
    output.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(config.seed, workers=False, verbose=False)
    device = parts.device
    strategy = parts.strategy
    # Lightning's and NNI's start-up banners are noise on a command line.
    logging.getLogger("nni").setLevel(logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    listeners = [*listeners, record_threads(parts.governor)]
    if parts.table is not None:
        listeners.insert(0, benchmark_listener(parts.table))
        if config.panel_images:
            from .ranking import RankingPanel

            images, labels = parts.batches[1].fixed(int(config.panel_images))
            listeners.insert(1, RankingPanel.from_table(parts.table, images, labels, seed=0))
    recorder = SearchRecorder(output, RunFolder(output).checkpoint, parts.batches, device,
                              config.identity(parts.width, parts.cells), listeners, strategy=strategy)
    # The strategy's own callbacks (a baseline's view) first: the recorder reads what they observed.
    trainer_callbacks = [*getattr(strategy, "callbacks", []), recorder, *callbacks]
    if parts.governor is not None:
        trainer_callbacks.insert(0, GovernorCallback(parts.governor))
    if config.progress:
        trainer_callbacks.append(TQDMProgressBar(refresh_rate=max(1, len(parts.batches[0]) // 20)))
    trainer = _nni.Trainer(
        max_epochs=parts.epochs, accelerator="gpu" if device.type == "cuda" else "cpu",
        **_processes(config, device),
        logger=_loggers(output),
        callbacks=trainer_callbacks, enable_checkpointing=False, enable_model_summary=False,
        precision="bf16-mixed" if parts.precision == "bf16" else "32-true",
        enable_progress_bar=config.progress, num_sanity_val_steps=0, deterministic=config.deterministic or None,
        log_every_n_steps=max(1, len(parts.batches[0]) // 4), plugins=[VerifiedCheckpointIO()],
    )
    module = SearchClassifier(config.weight_learning_rate, config.weight_decay, parts.epochs)
    resume = {"ckpt_path": str(RunFolder(output).checkpoint)} if config.resume else None
    evaluator = _nni.Lightning(module, trainer, train_dataloaders=parts.batches[0],
                               val_dataloaders=parts.batches[1], fit_kwargs=resume)
    if trainer.is_global_zero:
        _write_config(RunFolder(output), config, parts)
    model = strategy.mutate_model(parts.space)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    evaluator = strategy.mutate_evaluator(evaluator)
    started = time.perf_counter()
    handlers = _catch_stop_signals(recorder)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            # Our recorder resumes the data order itself (see DeviceBatches.checkpoint_state).
            warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")
            evaluator.evaluate(model)
    finally:
        for signal_number, handler in handlers.items():
            signal.signal(signal_number, handler)
    seconds = time.perf_counter() - started

    distribution = strategy.distribution
    budget = getattr(strategy, "budget", None)
    architecture = exported(strategy.search_module) if not _nni_oneshot(config.estimator) else distribution.mode()
    result = {"architecture": architecture, "history": pd.DataFrame(recorder.rows), "seconds": seconds,
              "output": output, "strategy": strategy, "rank": trainer.global_rank}
    if not trainer.is_global_zero:  # the other processes of a data-parallel search write nothing
        return result
    run = RunFolder(output)
    run.write_architecture(architecture)
    top = distribution.top_k(min(config.top_k, distribution.num_architectures))
    top_rows = [{"rank": rank, "probability": probability, "architecture": architecture_k}
                for rank, (architecture_k, probability) in enumerate(top, 1)]
    rescored = {json.dumps(row["architecture"], sort_keys=True): row["objective"]
                for row in getattr(strategy.search_module, "rescored", None) or []}
    for row in top_rows:  # the re-scored cells carry their objective value
        key = json.dumps(row["architecture"], sort_keys=True)
        if key in rescored:
            row["rescored_objective"] = rescored[key]
    if parts.table is not None:
        for row in top_rows:
            row["benchmark_acc"] = parts.table.accuracy(row["architecture"])
    run.write_top_k(top_rows)
    if budget is not None:
        run.write_cost(budget.record(architecture))
    return result


def _processes(config: SearchConfig, device: torch.device) -> dict[str, Any]:
    """The Trainer's ``devices``, ``num_nodes`` and, for several processes, Lightning's DDP strategy.

    Each process trains its own sampled path, so a parameter may have no gradient in one process and
    one in another: DDP must look for unused parameters (their gradient counts as zero in the mean).
    """
    if config.processes == 1:
        return {"devices": 1}
    from pytorch_lightning.strategies import DDPStrategy

    backend = "nccl" if device.type == "cuda" else "gloo"
    return {"devices": config.devices, "num_nodes": config.num_nodes,
            "strategy": DDPStrategy(find_unused_parameters=True, process_group_backend=backend)}


def _catch_stop_signals(recorder: SearchRecorder) -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}  # signal handlers can only be set from the main thread
    recorder.catch_signals = True
    return {number: signal.signal(number, recorder.request_stop) for number in (signal.SIGTERM, signal.SIGINT)}


def _loggers(output: Path) -> list:
    """CSV logs in ``logs/``; TensorBoard event files in ``tensorboard/`` too when tensorboard is installed."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    loggers = [CSVLogger(str(output), name="logs")]  # logs/version_N: a resumed run adds one
    try:
        loggers.append(TensorBoardLogger(str(output), name="tensorboard", default_hp_metric=False))
    except ModuleNotFoundError:  # Lightning raises this when neither tensorboard nor tensorboardX is importable
        pass
    return loggers


def _write_config(run: RunFolder, config: SearchConfig, parts: dict[str, Any]) -> None:
    record = config.to_record()
    record.update(epochs=parts.epochs, **dataclasses.asdict(parts.settings), width=parts.width, cells=parts.cells,
                  threads=AUTO if parts.governor is not None else torch.get_num_threads(), device=str(parts.device),
                  device_name=torch.cuda.get_device_name(parts.device) if parts.device.type == "cuda" else "cpu")
    run.write_config(record)
