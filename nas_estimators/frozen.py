"""The supernet's own preference: an estimator run on a finished search's frozen shared weights.

A search can end on a poor architecture for two reasons: its supernet prefers poor architectures,
or the estimator did not find what the supernet prefers. :func:`frozen_search` tells them apart. It
loads a finished search, fixes its shared weights, and runs an estimator from the uniform
distribution on them. It uses forward passes only, on the held-out architecture half of the data.
The objective no longer moves, so the distribution settles on what this supernet prefers. If that
mode is no better than the search's, no estimator can do better on this supernet.

Example (a finished search in ``runs/search``; writes ``runs/search/frozen-sf``)::

    nas-estimators search --epochs 4 --output runs/search
    nas-estimators frozen-search runs/search --epochs 2

or from Python, ``frozen_search("runs/search", epochs=2)["architecture"]``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
import torch
from torch import nn

from . import _nni
from .checks import integer, positive_number
from .budget import CostBudget
from .checkpoints import read_checkpoint
from .data import DeviceBatches, load_dataset, search_batches
from .distribution import ArchitectureDistribution
from .lightning import arc_optimizer, arc_update
from .nasbench201 import BenchmarkTable, check_table_space
from .objective import CALIBRATION_IMAGES, SCORING_IMAGES, Objective
from .options import option, shared
from .run_folder import RunFolder
from .threads import AUTO, ThreadGovernor, record_threads, resolve_threads, start_threads
from .search import SearchConfig, SupernetSettings, resolve_device, supernet_space


@dataclasses.dataclass
class FrozenConfig:
    """``frozen-search``'s settings (its command-line options map one to one); unset ones are the search's."""

    epochs: int = option(4, "passes over the architecture half", type=int)
    arc_learning_rate: float | None = shared(SupernetSettings, "arc_learning_rate", default=None,
                                             help="Adam learning rate of the logits", shown="the search's")
    seed: int = option(0, "random seed of the sampled architectures", type=int)
    data_root: str | None = option(None, "the data set's location", shown="the search's")
    benchmark_table: str | None = option(None, "nb201: a NAS-Bench-201 table that scores the mode every epoch",
                                         metavar="CSV", shown="the search's")
    device: str = shared(SupernetSettings, "device")
    cost: str | None = shared(SearchConfig, "cost")
    cost_target: float | None = shared(SearchConfig, "cost_target")
    threads: int | str | None = shared(SearchConfig, "threads")

    def check(self) -> None:
        integer("epochs", self.epochs)
        if self.arc_learning_rate is not None:
            positive_number("arc_learning_rate", self.arc_learning_rate)
        if (self.cost is None) != (self.cost_target is None):
            raise ValueError("cost: --cost and --cost-target go together (a cost and its budget)")


@dataclasses.dataclass
class FrozenSupernet:
    """A finished search's supernet with its weights fixed: it scores architectures, forward only.

    Batch normalisation uses batch statistics, as the search does when it scores an architecture.
    """

    config: SearchConfig
    model: nn.Module
    batches: DeviceBatches  # the architecture half: held out from the weights
    table: BenchmarkTable | None
    scoring_inputs: torch.Tensor | None = None  # training-free terms' batch: the search's (weights half, fixed)

    def __post_init__(self) -> None:
        self.model.requires_grad_(False).train()
        self._modules = _nni.supernet_modules(self.model)
        self._criterion = nn.CrossEntropyLoss()

    def distribution(self) -> ArchitectureDistribution:
        """A uniform distribution over this supernet's choices."""
        return ArchitectureDistribution.from_model_space(self.model)

    def apply(self, architecture: Mapping[str, Any]) -> None:
        """Set the supernet to run ``architecture`` until the next call (its forward then runs that path)."""
        _nni.apply_sample(self._modules, architecture)

    def outputs(self, inputs: torch.Tensor, architecture: Mapping[str, Any]) -> torch.Tensor:
        """The logits of ``architecture`` on ``inputs`` with the frozen weights."""
        self.apply(architecture)
        with torch.inference_mode():
            return self.model(inputs)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor], architecture: Mapping[str, Any]) -> torch.Tensor:
        """Cross-entropy of ``architecture`` on ``batch`` with the frozen weights (a 0-dim tensor)."""
        inputs, targets = batch
        return self._criterion(self.outputs(inputs, architecture), targets)


def load_supernet(output: str | Path, *, data_root: str | None = None, device: str = "auto",
                  benchmark_table: str | None = None) -> FrozenSupernet:
    """The supernet of the search in ``output`` (its run folder's settings and checkpoint).

    ``data_root`` replaces the search's own (a search moved to another machine); ``benchmark_table``
    (a NAS-Bench-201 CSV) replaces or adds the search's. Raises ValueError
    (or :class:`~nas_estimators.data.DataError`, :class:`~nas_estimators.checkpoints.CheckpointError`)
    naming what is missing or wrong.
    """
    from .strategy import path_sampling_supernet

    output = Path(output)
    config = SearchConfig.saved(output)
    if config.estimator not in _registered_estimators():
        raise ValueError(f"{output}: a search by {config.estimator!r}; a frozen search needs one of our "
                         f"estimators' supernets ({', '.join(_registered_estimators())})")
    checkpoint_path = RunFolder(output).checkpoint
    if not checkpoint_path.is_file():
        raise ValueError(f"{output}: no {checkpoint_path.name} (the search's weights)")
    checkpoint = read_checkpoint(checkpoint_path)
    data = load_dataset(config.dataset, data_root or config.data_root, download=False)
    space = supernet_space(config, config.width, config.cells, data.num_classes)
    model = path_sampling_supernet(space)
    model.load_state_dict(_nni.supernet_state(checkpoint["state_dict"]))
    torch_device = resolve_device(device)
    model.to(torch_device)
    weights_half, architecture_half = search_batches(data, int(config.batch_size), device=torch_device, seed=config.seed)
    benchmark_table = benchmark_table or config.benchmark_table
    if benchmark_table:
        check_table_space(config.space)
    table = BenchmarkTable.from_csv(benchmark_table) if benchmark_table else None
    return FrozenSupernet(config, model, architecture_half, table, weights_half.fixed(SCORING_IMAGES)[0])


def frozen_search(output: str | Path, *, estimator: str | None = None, destination: str | Path | None = None,
                  options: Mapping[str, Any] | None = None, objective: Mapping[str, float] | None = None,
                  progress: Callable[[str], None] | None = None, **settings: Any) -> dict[str, Any]:
    """Run ``estimator`` (default: the search's own) for ``epochs`` on the frozen supernet of ``output``.

    ``settings`` are :class:`FrozenConfig`'s fields by name (``epochs=2, seed=1, data_root=..., threads=...``).

    Writes a run folder (:class:`~nas_estimators.run_folder.RunFolder`): the history (a row an epoch: the
    mode, its benchmark accuracy with a table, the entropy, the mean loss of the sampled architectures,
    seconds), the architecture and the settings that ran, to ``destination``
    (default ``OUTPUT/frozen-ESTIMATOR``), which must not exist yet. The estimator's hyperparameters
    (``options``, by name: ``{"samples_per_step": 4}``) and the arc learning rate are the search's
    unless given; ``objective`` (term name -> weight) defaults to the supernet's loss alone, and its
    training-free terms score on a never-trained copy seeded by ``seed``. ``cost`` and ``cost_target`` search
    under a budget as ``search --cost`` does (:class:`~nas_estimators.budget.CostBudget`; the export is the most
    probable architecture within it, and the folder gets the cost record). Returns ``architecture``,
    ``history``, ``seconds`` and ``output``.
    """
    frozen = FrozenConfig(**settings)
    frozen.check()
    epochs, seed = frozen.epochs, frozen.seed
    objective_terms = Objective.from_weights(objective)  # checked before anything is loaded
    budget = None if frozen.cost is None else CostBudget(frozen.cost, frozen.cost_target)
    saved = SearchConfig.saved(output)
    estimator = estimator or saved.estimator
    if estimator not in _registered_estimators():
        raise ValueError(f"estimator: expected one of {', '.join(_registered_estimators())}, got {estimator!r}")
    destination = Path(destination) if destination is not None else Path(output) / f"frozen-{estimator}"
    if destination.exists():
        raise ValueError(f"output: {destination} already exists; choose another --output")
    governor = start_threads(resolve_threads(frozen.threads, resolve_device(frozen.device)))
    supernet = load_supernet(output, data_root=frozen.data_root, device=frozen.device,
                             benchmark_table=frozen.benchmark_table)
    config = dataclasses.replace(supernet.config, estimator=estimator).with_hyperparameters(dict(options or {}))
    gradient_estimator = config.build_estimator(steps=epochs * len(supernet.batches))
    learning_rate = frozen.arc_learning_rate or config.arc_learning_rate
    if budget is not None:
        budget.bind(supernet.model, supernet.scoring_inputs, supernet.distribution())
        budget.check_reachable(supernet.distribution())
    started = time.perf_counter()
    distribution, rows = search_frozen(supernet, gradient_estimator, epochs=epochs, arc_learning_rate=learning_rate,
                                       seed=seed, progress=progress, objective=objective_terms, budget=budget,
                                       governor=governor)
    architecture = (budget.export(distribution) if budget is not None else None) or distribution.mode()
    history = pd.DataFrame(rows)
    settings = {"search": str(output), "estimator": estimator, "options": config.hyperparameter_values(), "epochs": epochs,
                "arc_learning_rate": learning_rate, "seed": seed, "objective": objective_terms.weights(),
                "cost": frozen.cost, "cost_target": frozen.cost_target,
                "threads": AUTO if governor is not None else torch.get_num_threads()}
    # Written beside, then renamed: a kill leaves either the whole folder or none of it.
    partial = destination.with_name(destination.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    run = RunFolder(partial)
    run.write_config(settings)
    run.write_history(history)
    run.write_architecture(architecture)
    if budget is not None:
        run.write_cost(budget.record(architecture))
    os.replace(partial, destination)
    return {"architecture": architecture, "history": history, "seconds": time.perf_counter() - started,
            "output": destination}


def search_frozen(supernet: Any, estimator: Any, *, epochs: int, arc_learning_rate: float, seed: int = 0,
                  progress: Callable[[str], None] | None = None, objective: Objective | None = None,
                  budget: CostBudget | None = None,
                  governor: ThreadGovernor | None = None) -> tuple[ArchitectureDistribution, list[dict]]:
    """The loop of :func:`frozen_search`: ``estimator`` on ``supernet``'s losses, from the uniform distribution.

    ``supernet`` is a :class:`FrozenSupernet` or anything with its ``batches``, ``loss``, ``distribution``
    and ``table``; ``governor`` (if any) re-checks the threads after every step. Returns the final
    distribution and a row an epoch.
    """
    torch.manual_seed(seed)
    distribution = supernet.distribution()
    optimizer = arc_optimizer(distribution, arc_learning_rate)
    objective = objective or Objective.from_weights()

    rows, started = [], time.perf_counter()
    for epoch in range(epochs):
        loss_sum, steps = 0.0, 0
        for batch in supernet.batches:
            sampled: list[torch.Tensor] = []

            def loss(architecture, batch=batch):
                value = supernet.loss(batch, architecture)
                sampled.append(value)
                return value

            if not objective.bound:  # as the search does: held-out images calibrate the supernet term
                fixed = getattr(supernet.batches, "fixed", None)
                calibration = fixed(CALIBRATION_IMAGES) if fixed is not None else batch
                objective.bind(getattr(supernet, "model", None), getattr(supernet, "scoring_inputs", None),
                               distribution, seed, supernet_loss=lambda architecture: supernet.loss(calibration, architecture))
            loss_fn = objective.loss_fn(loss)
            gradients = estimator.estimate(distribution, budget.wrap(loss_fn) if budget is not None else loss_fn)
            if budget is not None:
                budget.end_step()
            if sampled:  # the first call scores the sampled architecture
                loss_sum = loss_sum + sampled[0]
            steps += 1
            arc_update(distribution, optimizer, gradients)
            if governor is not None:
                governor.update()
        mode = distribution.mode()
        row = {"epoch": epoch, "entropy": float(distribution.entropy().detach()),
               "sampled_loss": float(loss_sum) / max(steps, 1),
               "seconds": time.perf_counter() - started, "mode": json.dumps(mode),
               **{f"seconds/{name}": value for name, value in objective.seconds().items()}}
        if budget is not None:  # what would be exported now, and the multiplier
            mode = budget.export(distribution) or mode
            row.update({"mode": json.dumps(mode), "cost/multiplier": budget.multiplier, "cost/sampled": budget.last_cost,
                        "cost/mode": budget.cost(mode), "seconds/cost": budget.seconds})
        if supernet.table is not None:
            row["benchmark_acc"] = supernet.table.accuracy(mode)
        record_threads(governor)(row, None)
        rows.append(row)
        if progress is not None:
            accuracy = f", mode's benchmark accuracy {row['benchmark_acc']:.2f}" if "benchmark_acc" in row else ""
            progress(f"frozen {estimator.name} epoch {epoch + 1}/{epochs}: entropy {row['entropy']:.2f}, "
                     f"sampled loss {row['sampled_loss']:.4f}{accuracy} ({row['seconds']:.0f} s)")
    return distribution, rows


def _registered_estimators() -> list[str]:
    from . import registry

    return list(registry.names())
