"""Search speed, ours against NNI's: a fixed number of search steps per strategy, timed.

Every strategy runs through the same :func:`~nas_estimators.search.run_search` (Lightning trainer,
recorder, data on the device) on the same space, data, batch size, precision and device, one after the
other in one process. After ``warmup_steps`` untimed steps, ``steps`` steps are timed between two
device synchronisations; peak GPU memory is ``torch.cuda.max_memory_allocated`` over the timed steps.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pytorch_lightning as pl
import torch

from . import registry
from .baselines import ONESHOT_BASELINES, check_oneshot_baseline
from .data import ImageData, load_dataset
from .errors import InputError
from .search import DIGITS_SIZE, SearchConfig, prepare, resolve_device, resolve_precision, run_search
from .spaces import DEFAULT_SIZE, SPACES


def strategies() -> tuple[str, ...]:
    """What bench times: the registered estimators and NNI's one-shot strategies."""
    return (*registry.names(), *ONESHOT_BASELINES)


DEFAULT_STRATEGIES = ("sf", "relax", "ram", "nni-darts", "nni-gumbel", "nni-random")
REFERENCE = "nni-darts"
# Random data: CIFAR-10's shape, so that speed on the real data can be checked without it.
RANDOM_DATA_SHAPE = (3, 32, 32)
RANDOM_DATA_SIZE = 2048


@dataclasses.dataclass
class BenchConfig:
    """What ``nas-estimators bench`` measures; the command line's options map one to one."""

    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    space: str = "darts"
    width: int | None = None
    cells: int | None = None
    batch_size: int = 64
    steps: int = 20
    warmup_steps: int = 5
    device: str = "auto"
    data_root: str | None = None
    random_data: bool = False
    precision: str = "auto"
    channels_last: bool = False
    labels_per_step: int | None = 1  # RAM; None marginalises every label each step
    seed: int = 0
    threads: int | None = None  # CPU threads of torch (None: torch's default)
    repeats: int = 1  # rounds over all strategies; each strategy's median round is reported


def check(config: BenchConfig) -> None:
    """Raise :class:`InputError` (one line naming the option) on bad input, before any work."""
    if not config.strategies:
        raise InputError("strategies: expected at least one strategy")
    for name in config.strategies:
        if name not in strategies():
            raise InputError(f"strategies: unknown strategy {name!r}; expected some of {', '.join(strategies())}")
        if name in ONESHOT_BASELINES:
            try:
                check_oneshot_baseline(name)
            except ValueError as error:
                raise InputError(str(error)) from None
    if len(set(config.strategies)) != len(config.strategies):
        raise InputError(f"strategies: each strategy once, got {', '.join(config.strategies)}")
    if config.space not in SPACES:
        raise InputError(f"space: expected one of {', '.join(SPACES)}, got {config.space!r}")
    for option in ("width", "cells"):
        value = getattr(config, option)
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise InputError(f"{option}: expected a positive integer, got {value!r}")
    for option in ("batch_size", "steps", "repeats"):
        value = getattr(config, option)
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise InputError(f"{option.replace('_', '-')}: expected a positive integer, got {value!r}")
    if isinstance(config.warmup_steps, bool) or int(config.warmup_steps) != config.warmup_steps or config.warmup_steps < 0:
        raise InputError(f"warmup-steps: expected an integer >= 0, got {config.warmup_steps!r}")
    if config.threads is not None and (isinstance(config.threads, bool) or int(config.threads) != config.threads
                                       or config.threads < 1):
        raise InputError(f"threads: expected a positive integer, got {config.threads!r}")
    if config.random_data and config.data_root is not None:
        raise InputError("data: --random-data and --data-root exclude each other")
    try:
        resolve_precision(config.precision, resolve_device(config.device))
    except ValueError as error:
        raise InputError(str(error)) from None


def random_image_data(num_images: int = RANDOM_DATA_SIZE, seed: int = 0) -> ImageData:
    """Uniform random uint8 images of CIFAR-10's shape with random labels (only when asked for)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (num_images, *RANDOM_DATA_SHAPE), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (num_images,), generator=generator)
    test = num_images // 8
    return ImageData("random", images[test:], labels[test:], images[:test], labels[:test], [str(c) for c in range(10)],
                     mean=(0.5,) * 3, std=(0.29,) * 3, crop_padding=4)


class FixedLengthBatches:
    """``length`` batches a pass, taken from as many consecutive epochs of ``batches`` as needed."""

    def __init__(self, batches: Any, length: int) -> None:
        self.batches, self.length = batches, int(length)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[Any]:
        epochs = itertools.chain.from_iterable(iter(self.batches) for _ in itertools.count())
        return itertools.islice(epochs, self.length)

    @property
    def seed(self) -> int:
        return self.batches.seed

    def restore_state(self, state: dict) -> None:
        self.batches.restore_state(state)


class StepTimer(pl.Callback):
    """Times the steps after ``warmup_steps``, between device synchronisations, then stops the trainer."""

    def __init__(self, warmup_steps: int, steps: int, device: torch.device, strategy: Any) -> None:
        self.warmup_steps, self.steps, self.device, self.strategy = warmup_steps, steps, device, strategy
        self.seen = 0
        self.started: float | None = None
        self.seconds: float | None = None
        self.peak_memory_bytes: int | None = None
        self.forward_evaluations: list[float] = []

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _start(self) -> None:
        self._synchronize()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.started = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.seen == self.warmup_steps and self.started is None:  # no warm-up: start at the first step
            self._start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen += 1
        if self.seen == self.warmup_steps:
            self._start()  # the next step's batch fetch is inside the timed window, as in a search
        elif self.seen > self.warmup_steps:
            values = self.strategy.search_module.step_values()
            self.forward_evaluations.append(float(values.get("forward_evaluations", 0.0)))
        if self.seen == self.warmup_steps + self.steps:
            self._synchronize()
            self.seconds = time.perf_counter() - self.started
            if self.device.type == "cuda":
                self.peak_memory_bytes = torch.cuda.max_memory_allocated(self.device)
            trainer.should_stop = True


def _size(config: BenchConfig, dataset: str) -> tuple[int, int]:
    defaults = DIGITS_SIZE if dataset == "digits" else DEFAULT_SIZE
    width, cells = defaults[config.space]
    return (config.width or width, config.cells or cells)


def measure(config: BenchConfig, name: str, data: ImageData, dataset: str, workdir: Path) -> dict[str, Any]:
    """Run ``warmup_steps + steps`` search steps of strategy ``name`` and time the last ``steps``."""
    width, cells = _size(config, dataset)
    search_config = SearchConfig(
        estimator=name, space=config.space, dataset=dataset, data_root=config.data_root,
        output=str(workdir / name), epochs=1, batch_size=config.batch_size, seed=config.seed, device=config.device,
        width=width, cells=cells, labels_per_step=config.labels_per_step, precision=config.precision,
        channels_last=config.channels_last, progress=False)
    try:
        parts = prepare(search_config, data=data)
    except (ValueError, TypeError) as error:
        raise InputError(f"{name}: {error}") from None
    total = config.warmup_steps + config.steps
    parts.batches = tuple(FixedLengthBatches(batches, total) for batches in parts.batches)
    timer = StepTimer(config.warmup_steps, config.steps, parts.device, parts.strategy)
    run_search(search_config, parts, callbacks=[timer])
    if timer.seconds is None:
        raise RuntimeError(f"{name}: the trainer stopped after {timer.seen} of {total} steps")
    steps_per_s = config.steps / timer.seconds
    forward_evaluations = sum(timer.forward_evaluations) / max(len(timer.forward_evaluations), 1)
    return {
        "steps_per_s": steps_per_s,
        "images_per_s": steps_per_s * config.batch_size,
        "peak_memory_gib": None if timer.peak_memory_bytes is None else timer.peak_memory_bytes / 2**30,
        # The weight step's forward pass plus the architecture step's (the estimator's diagnostics).
        "forward_evals_per_step": 1.0 + forward_evaluations,
    }


def _median_round(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median steps/s (the lower middle one for an even count), whole."""
    ordered = sorted(measured, key=lambda result: result["steps_per_s"])
    result = dict(ordered[(len(ordered) - 1) // 2])
    if len(measured) > 1:
        result["steps_per_s_rounds"] = [r["steps_per_s"] for r in measured]
    return result


def run_bench(config: BenchConfig, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every strategy of ``config``; returns the JSON record (see ``docs/bench.md``)."""
    check(config)
    device = resolve_device(config.device)
    if config.threads is not None:
        torch.set_num_threads(int(config.threads))
    if config.random_data:
        data, dataset = random_image_data(seed=config.seed), "random"
    elif config.data_root is not None:
        try:
            data, dataset = load_dataset("cifar10", config.data_root), "cifar10"
        except ValueError as error:  # DataError: a missing or malformed --data-root
            raise InputError(str(error)) from None
    else:
        data, dataset = load_dataset("digits"), "digits"
    width, cells = _size(config, dataset)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in config.strategies}
    with tempfile.TemporaryDirectory(prefix="nas-estimators-bench-") as workdir:
        # Rounds interleave the strategies, so that a change in the machine's load hits them alike.
        for repeat, name in itertools.product(range(config.repeats), config.strategies):
            label = f"round {repeat + 1}/{config.repeats} " if config.repeats > 1 else ""
            progress(f"{label}[{config.strategies.index(name) + 1}/{len(config.strategies)}] {name}: "
                     f"{config.warmup_steps} warm-up + {config.steps} timed steps")
            rounds[name].append(measure(config, name, data, "cifar10" if dataset == "random" else dataset,
                                        Path(workdir) / f"round{repeat}"))
            progress(f"    {rounds[name][-1]['steps_per_s']:.3g} steps/s")
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    results = {name: _median_round(measured) for name, measured in rounds.items()}
    record: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "space": config.space, "width": width, "cells": cells, "batch_size": config.batch_size,
        "data": dataset, "image_shape": list(data.image_shape),
        "precision": resolve_precision(config.precision, device), "channels_last": config.channels_last,
        "steps": config.steps, "warmup_steps": config.warmup_steps, "repeats": config.repeats,
        "torch": torch.__version__,
        "results": results,
    }
    reference = results.get(REFERENCE)
    if reference is not None:
        record["speedup_vs_nni_darts"] = {name: r["steps_per_s"] / reference["steps_per_s"] for name, r in results.items()}
        if reference["peak_memory_gib"]:
            record["memory_vs_nni_darts"] = {name: r["peak_memory_gib"] / reference["peak_memory_gib"]
                                             for name, r in results.items() if r["peak_memory_gib"] is not None}
    if "sf" in results:
        record["time_per_step_vs_sf"] = {name: results["sf"]["steps_per_s"] / r["steps_per_s"] for name, r in results.items()}
    return record


def table(record: dict[str, Any]):
    """The record as a pandas table, one row per strategy."""
    import pandas as pd

    frame = pd.DataFrame.from_dict(record["results"], orient="index").drop(columns=["steps_per_s_rounds"],
                                                                           errors="ignore")
    frame.index.name = "strategy"
    for key, column in (("speedup_vs_nni_darts", "x nni-darts steps/s"), ("time_per_step_vs_sf", "x sf time/step"),
                        ("memory_vs_nni_darts", "x nni-darts memory")):
        if key in record:
            frame[column] = pd.Series(record[key])
    return frame


def strategies_argument(values: Iterable[str]) -> tuple[str, ...]:
    """``--strategies sf,relax nni-darts`` -> ``("sf", "relax", "nni-darts")`` (commas or spaces)."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())
