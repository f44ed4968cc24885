"""Search speed, ours against NNI's: a fixed number of search steps per strategy, timed.

Every strategy runs through the same :func:`~nas_estimators.search.run_search` (Lightning trainer,
recorder, data on the device) on the same space, data, batch size, precision and device, one after the
other in one process. After ``warmup_steps`` untimed steps, ``steps`` steps are timed between two
device synchronisations; peak GPU memory is ``torch.cuda.max_memory_allocated`` over the timed steps.
"""

from __future__ import annotations

import copy
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

from . import methods
from .options import option, shared
from .data import ImageData, load_dataset
from .errors import InputError
from .checks import integer
from .settings import unset_values
from .search import (SearchConfig, check_processes, prepare, resolve_device, resolve_precision,
                     run_search)
from .spaces import SPACES, resolve_size
from .threads import resolve_threads


def strategies() -> tuple[str, ...]:
    """What bench times: the one-shot methods (the registered estimators and NNI's one-shot strategies)."""
    return methods.names("estimator", "nni-oneshot")


DEFAULT_STRATEGIES = ("sf", "relax", "ram", "nni-darts", "nni-gumbel", "nni-random")
REFERENCE = "nni-darts"
# Random data: CIFAR-10's shape, so that speed on the real data can be checked without it.
RANDOM_DATA_SHAPE = (3, 32, 32)
RANDOM_DATA_SIZE = 2048


@dataclasses.dataclass
class BenchConfig:
    """What ``nas-estimators bench`` measures; the command line's options map one to one."""

    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    space: str = shared(SearchConfig, "space")
    width: int | None = shared(SearchConfig, "width")
    cells: int | None = shared(SearchConfig, "cells")
    batch_size: int = shared(SearchConfig, "batch_size")
    steps: int = option(20, "timed steps per strategy", type=int)
    warmup_steps: int = option(5, "untimed steps before them", type=int)
    device: str = shared(SearchConfig, "device")
    data_root: str | None = option(None, "real CIFAR-10 (as for search --data-root); default: scikit-learn's digits")
    random_data: bool = option(False, "random uint8 images of CIFAR-10's shape instead", flag=True)
    precision: str = shared(SearchConfig, "precision")
    channels_last: bool = shared(SearchConfig, "channels_last")
    seed: int = shared(SearchConfig, "seed")
    threads: int | str | None = shared(SearchConfig, "threads", help="intra-op threads of each timed search, as "
                                       "search's --threads")
    repeats: int = option(1, "rounds over all strategies, interleaved; the median round is reported", type=int)
    variance_estimates: int = option(100, "estimates each of our estimators draws after the timed steps at the "
                                     "final logits and weights, none applied: its variance at fixed logits "
                                     "(0: not measured)", type=int)
    # Processes of a data-parallel search to time (ours only): K > 1 runs K processes (Lightning's DDP,
    # gloo on the CPU), each sampling its own architectures; rows are named "sf-k2".
    devices: tuple[int, ...] = (1,)
    # Our estimators' hyperparameters by registry name (the command line's --labels-per-step, ...); others: defaults.
    estimator_options: dict[str, Any] = dataclasses.field(default_factory=dict)


def check(config: BenchConfig) -> None:
    """Raise :class:`InputError` (one line naming the option) on bad input, before any work."""
    if not config.strategies:
        raise InputError("strategies: expected at least one strategy")
    for name in config.strategies:
        if name not in strategies():
            raise InputError(f"strategies: unknown strategy {name!r}; expected some of {', '.join(strategies())}")
        try:
            methods.get(name).check()
            if name not in methods.names("nni-oneshot"):  # a bad hyperparameter fails before any timing
                SearchConfig(estimator=name, estimator_options=dict(config.estimator_options)).build_estimator()
        except ValueError as error:
            raise InputError(f"{name}: {error}") from None
    if len(set(config.strategies)) != len(config.strategies):
        raise InputError(f"strategies: each strategy once, got {', '.join(config.strategies)}")
    if config.space not in SPACES:
        raise InputError(f"space: expected one of {', '.join(SPACES)}, got {config.space!r}")
    try:
        for name in ("width", "cells"):
            integer(name, getattr(config, name), optional=True)
        resolve_threads(config.threads, resolve_device(config.device))
        for name in ("batch_size", "steps", "repeats"):
            integer(name.replace("_", "-"), getattr(config, name))
        integer("warmup-steps", config.warmup_steps, minimum=0)
    except ValueError as error:
        raise InputError(str(error)) from None
    if isinstance(config.variance_estimates, bool) or int(config.variance_estimates) != config.variance_estimates \
            or config.variance_estimates < 0 or config.variance_estimates == 1:
        raise InputError(f"variance-estimates: expected 0 or an integer >= 2, got {config.variance_estimates!r}")
    if not config.devices or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in config.devices):
        raise InputError(f"devices: expected positive integers (processes), got {config.devices!r}")
    if max(config.devices) > 1:
        baselines = [name for name in config.strategies if methods.get(name).kind == "nni-oneshot"]
        if baselines:
            raise InputError(f"devices: NNI's strategies run in one process here; time {', '.join(baselines)} "
                             f"with --devices 1")
        try:
            check_processes(SearchConfig(devices=max(config.devices)), resolve_device(config.device))
        except ValueError as error:
            raise InputError(str(error)) from None
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

    def shard(self, rank: int, shards: int) -> None:
        self.batches.shard(rank, shards)


class StepTimer(pl.Callback):
    """Times the steps after ``warmup_steps``, between device synchronisations, then stops the trainer."""

    def __init__(self, warmup_steps: int, steps: int, device: torch.device, strategy: Any) -> None:
        self.warmup_steps, self.steps, self.device, self.strategy = warmup_steps, steps, device, strategy
        self.seen = 0
        self.started: float | None = None
        self.seconds: float | None = None
        self.peak_memory_bytes: int | None = None
        self.forward_evaluations: list[float] = []
        self.arc_gradients: list[torch.Tensor] = []  # the estimate applied to the logits, each timed step

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
            logits = getattr(getattr(self.strategy.search_module, "distribution", None), "logits", None)
            if logits is not None and all(p.grad is not None for p in logits.values()):
                self.arc_gradients.append(torch.cat([p.grad.detach().reshape(-1).cpu() for p in logits.values()]))
        if self.seen == self.warmup_steps + self.steps:
            self._synchronize()
            self.seconds = time.perf_counter() - self.started
            if self.device.type == "cuda":
                self.peak_memory_bytes = torch.cuda.max_memory_allocated(self.device)
            trainer.should_stop = True


def fixed_logits_variance(module: Any, batches: Any, estimates: int) -> float | None:
    """Total variance (summed over the logits) of ``estimates`` estimates at the module's logits and weights.

    A copy of the search's estimator draws them, each on the next architecture batch, and none is applied:
    the estimator's own noise, without the drift of the logits and weights that the spread over a run
    also holds. Its baseline or surrogate keeps adapting, as in a search. None for NNI's strategies.
    """
    estimator = getattr(module, "estimator", None)
    if estimator is None or estimates < 2:
        return None
    estimator = copy.deepcopy(estimator)
    stream = itertools.chain.from_iterable(iter(batches) for _ in itertools.count())
    draws = []
    for batch in itertools.islice(stream, estimates):
        batch = tuple(tensor.to(module.device) for tensor in batch)
        gradients = estimator.estimate(module.distribution, module.objective_loss_fn(batch))
        draws.append(torch.cat([g.detach().reshape(-1).double().cpu() for g in gradients.values()]))
    return float(torch.stack(draws).var(0).sum())


def _size(config: BenchConfig, dataset: str) -> tuple[int, int]:
    return resolve_size(config.space, dataset, config.width, config.cells, concrete=True)


def measure(config: BenchConfig, name: str, data: ImageData, dataset: str, workdir: Path,
            devices: int = 1) -> dict[str, Any]:
    """Run ``warmup_steps + steps`` search steps of strategy ``name`` and time the last ``steps``.

    With ``devices > 1`` this is one of the search's processes (see :func:`measure_processes`).
    """
    width, cells = _size(config, dataset)
    search_config = SearchConfig(
        estimator=name, space=config.space, dataset=dataset, data_root=config.data_root,
        output=str(workdir / (name if devices == 1 else f"{name}-k{devices}")), epochs=1,
        batch_size=config.batch_size, seed=config.seed, device=config.device,
        width=width, cells=cells, estimator_options=dict(config.estimator_options), precision=config.precision,
        channels_last=config.channels_last, progress=False, devices=devices, threads=config.threads,
        # the step every strategy shares, weights and architecture alike (one epoch: no weights-only epochs): the
        # supernet term alone, no re-scoring
        **({} if name in methods.names("nni-oneshot") else unset_values(ours=False)))
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
    gradients = torch.stack(timer.arc_gradients).double() if len(timer.arc_gradients) > 1 else None
    return {
        "processes": devices,
        "steps_per_s": steps_per_s,
        "images_per_s": steps_per_s * config.batch_size * devices,
        "peak_memory_gib": None if timer.peak_memory_bytes is None else timer.peak_memory_bytes / 2**30,
        # The weight step's forward pass plus the architecture step's (the estimator's diagnostics), per process.
        "forward_evals_per_step": 1.0 + forward_evaluations,
        # Total variance (summed over the logits) of the estimate applied each timed step: with K processes
        # it is their mean. The logits and weights move meanwhile, alike for every K.
        "arc_gradient_variance": None if gradients is None else float(gradients.var(0).sum()),
        "arc_gradient_variance_fixed_logits": None if devices > 1 else fixed_logits_variance(
            parts.strategy.search_module, parts.batches[1], config.variance_estimates),
    }


def measure_processes(config: BenchConfig, name: str, devices: int, workdir: Path) -> dict[str, Any]:
    """:func:`measure` in a ``devices``-process search: a separate command (Lightning starts the others
    by running it again), whose rank 0 writes the result as JSON."""
    import json
    import os
    import subprocess
    import sys

    result = workdir / f"{name}-k{devices}.json"
    request = {"config": {**dataclasses.asdict(config), "devices": [devices]}, "name": name,
               "devices": devices, "workdir": str(workdir), "result": str(result)}
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    completed = subprocess.run([sys.executable, "-m", "nas_estimators.bench", json.dumps(request)],
                               capture_output=True, text=True, env=env)
    if completed.returncode != 0 or not result.is_file():
        raise RuntimeError(f"{name} on {devices} processes failed: {completed.stderr.strip()[-2000:]}")
    return json.loads(result.read_text())


def _measure_in_processes(request: dict[str, Any]) -> None:
    """The command :func:`measure_processes` runs (``python -m nas_estimators.bench REQUEST_JSON``)."""
    import json

    from . import distributed

    config = BenchConfig(**{**request["config"], "strategies": tuple(request["config"]["strategies"]),
                            "devices": tuple(request["config"]["devices"])})
    data, dataset = _data(config)
    measured = measure(config, request["name"], data, "cifar10" if dataset == "random" else dataset,
                       Path(request["workdir"]), devices=int(request["devices"]))
    if distributed.world()[0] == 0:
        Path(request["result"]).write_text(json.dumps(measured))


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
    threads = resolve_threads(config.threads, device)
    data, dataset = _data(config)
    width, cells = _size(config, dataset)
    runs = [(name, k) for name in config.strategies for k in config.devices]
    rows = {(name, k): name if k == 1 else f"{name}-k{k}" for name, k in runs}
    rounds: dict[str, list[dict[str, Any]]] = {row: [] for row in rows.values()}
    with tempfile.TemporaryDirectory(prefix="nas-estimators-bench-") as workdir:
        # Rounds interleave the strategies, so that a change in the machine's load hits them alike.
        for repeat, (index, (name, k)) in itertools.product(range(config.repeats), enumerate(runs)):
            label = f"round {repeat + 1}/{config.repeats} " if config.repeats > 1 else ""
            processes = f" on {k} processes" if k > 1 else ""
            progress(f"{label}[{index + 1}/{len(runs)}] {name}{processes}: "
                     f"{config.warmup_steps} warm-up + {config.steps} timed steps")
            round_dir = Path(workdir) / f"round{repeat}"
            if k == 1:
                measured = measure(config, name, data, "cifar10" if dataset == "random" else dataset, round_dir)
            else:
                round_dir.mkdir(parents=True, exist_ok=True)
                measured = measure_processes(config, name, k, round_dir)
            rounds[rows[(name, k)]].append(measured)
            progress(f"    {measured['steps_per_s']:.3g} steps/s")
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    results = {name: _median_round(measured) for name, measured in rounds.items()}
    record: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()}, {threads} threads)",
        "space": config.space, "width": width, "cells": cells, "batch_size": config.batch_size,
        "data": dataset, "image_shape": list(data.image_shape),
        "precision": resolve_precision(config.precision, device), "channels_last": config.channels_last,
        "steps": config.steps, "warmup_steps": config.warmup_steps, "repeats": config.repeats,
        "estimator_options": dict(config.estimator_options), "torch": torch.__version__,
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


def _data(config: BenchConfig) -> tuple[ImageData, str]:
    if config.random_data:
        return random_image_data(seed=config.seed), "random"
    if config.data_root is not None:
        try:
            return load_dataset("cifar10", config.data_root), "cifar10"
        except ValueError as error:  # DataError: a missing or malformed --data-root
            raise InputError(str(error)) from None
    return load_dataset("digits"), "digits"


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


if __name__ == "__main__":  # one process of measure_processes's search
    import json
    import sys

    _measure_in_processes(json.loads(sys.argv[1]))
