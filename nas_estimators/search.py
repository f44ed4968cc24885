"""A whole search from the command line: data, space, strategy, Lightning trainer, output files.

The strategy is driven directly (``mutate_model``, ``mutate_evaluator``, ``evaluate``), not through
``NasExperiment``, which NNI 3.0 can hang on a machine without network.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import pytorch_lightning as pl
import torch

from . import _nni
from .data import load_dataset, search_batches
from .estimators import Ram, Relax, ScoreFunction
from .schedules import make_schedule
from .spaces import build_space

ESTIMATOR_NAMES = ("sf", "relax", "ram")
# Called at the end of every epoch with the history row (a dict it may extend) and the search module.
EpochListener = Callable[[dict, Any], None]
CHECKPOINT_NAME = "checkpoint.ckpt"
# Epochs when none are asked for: the digits default finishes in minutes on a laptop CPU.
DEFAULT_EPOCHS = {"digits": 10, "cifar10": 50}
# Width and cells for the digits default (8x8 images): small enough for a 2-core CPU.
DIGITS_SIZE = {"darts": (8, 5), "nb201": (8, 1)}


@dataclasses.dataclass
class SearchConfig:
    """Everything a search needs; the command line's ``search`` options map one to one."""

    estimator: str = "sf"
    space: str = "darts"
    dataset: str = "digits"
    data_root: str | None = None
    download: bool = False
    output: str = "runs/search"
    epochs: int | None = None
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    width: int | None = None
    cells: int | None = None
    weight_learning_rate: float = 0.025
    weight_decay: float = 3e-4
    arc_learning_rate: float = 3e-3
    warmup_epochs: int = 0
    gradient_clip: float | None = 5.0
    baseline_decay: float = 0.9
    surrogate_width: int = 64
    surrogate_lr: float = 1e-3
    temperature: float = 0.5
    temperature_final: float | None = None
    temperature_schedule: str = "constant"
    labels_per_step: int | None = None
    top_k: int = 5
    resume: bool = False
    progress: bool = True


def make_estimator(config: SearchConfig, steps: int = 1):
    """The estimator the config names; ``steps`` is the length of the temperature schedule."""
    if config.estimator == "sf":
        return ScoreFunction(baseline_decay=config.baseline_decay)
    if config.estimator == "relax":
        return Relax(surrogate_width=config.surrogate_width, surrogate_lr=config.surrogate_lr,
                     temperature=make_schedule(config.temperature_schedule, config.temperature,
                                               config.temperature_final, steps=steps))
    if config.estimator == "ram":
        return Ram(labels_per_step=config.labels_per_step)
    raise ValueError(f"estimator: expected one of {', '.join(ESTIMATOR_NAMES)}, got {config.estimator!r}")


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


class SearchRecorder(pl.Callback):
    """Per-epoch history and probabilities, and an atomic checkpoint each epoch."""

    def __init__(self, output: Path, batches: tuple, device: torch.device,
                 listeners: Sequence[EpochListener] = ()) -> None:
        self.output = output
        self.listeners = list(listeners)
        self.batches = batches
        self.device = device
        self.rows: list[dict[str, Any]] = []
        self.probability_rows: list[dict[str, Any]] = []
        self._epoch_start = 0.0
        self._train_loss = None
        self._train_steps = 0
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_start = time.perf_counter()
        self._train_loss = torch.zeros((), device=self.device)
        self._train_steps = 0
        self._sums, self._counts = {}, {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self._train_loss += loss.detach()  # stays on the device: no host sync per step
            self._train_steps += 1
        values = dict(pl_module._last_validation)
        values.update(pl_module.estimator.diagnostics)
        for key, value in values.items():
            self._sums[key] = self._sums.get(key, 0.0) + float(value)
            self._counts[key] = self._counts.get(key, 0) + 1

    def on_train_epoch_end(self, trainer, pl_module):
        distribution = pl_module.distribution
        row = {
            "epoch": trainer.current_epoch,
            "train_loss": float(self._train_loss) / max(self._train_steps, 1),
            "val_loss": self._mean("val_loss"),
            "val_acc": self._mean("val_acc"),
            "entropy": float(distribution.entropy().detach()),
            "seconds": time.perf_counter() - self._epoch_start,
            "skipped_steps": pl_module.skipped_steps,
        }
        for key in ("baseline", "surrogate_loss", "temperature", "forward_evaluations"):
            if key in self._counts:
                row[key] = self._mean(key)
        for listener in self.listeners:  # they may add columns (a benchmark score) or raise (pruning)
            listener(row, pl_module)
        row["mode"] = json.dumps(distribution.mode())
        self.rows.append(row)
        for label, probabilities in distribution.probabilities().items():
            for value, probability in probabilities.items():
                self.probability_rows.append({"epoch": trainer.current_epoch, "label": label,
                                              "value": json.dumps(value), "probability": probability})
        self.write_tables()
        save_checkpoint(trainer, self.output / CHECKPOINT_NAME)

    def _mean(self, key: str) -> float:
        return self._sums.get(key, float("nan")) / max(self._counts.get(key, 0), 1)

    def write_tables(self) -> None:
        _atomic_write_text(self.output / "history.csv", pd.DataFrame(self.rows).to_csv(index=False))
        _atomic_write_text(self.output / "probabilities.csv",
                           pd.DataFrame(self.probability_rows).to_csv(index=False))

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "probability_rows": self.probability_rows,
                "batches": [b.state_dict() for b in self.batches], "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = list(state["rows"])
        self.probability_rows = list(state["probability_rows"])
        for batches, batches_state in zip(self.batches, state["batches"]):
            batches.load_state_dict(batches_state)
        torch.set_rng_state(state["torch_rng"])


def _atomic_write_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def save_checkpoint(trainer, path: Path) -> None:
    """Write the trainer's checkpoint atomically: a kill at any moment leaves the previous one readable."""
    temporary = path.with_name(path.name + ".tmp")
    trainer.save_checkpoint(temporary)
    os.replace(temporary, path)


def prepare(config: SearchConfig) -> dict[str, Any]:
    """Check every input and build the parts; bad input raises ValueError/TypeError before any work."""
    from .strategy import EstimatorStrategy

    if int(config.batch_size) != config.batch_size or config.batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {config.batch_size!r}")
    epochs = DEFAULT_EPOCHS.get(config.dataset, 10) if config.epochs is None else config.epochs
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs: expected a positive integer, got {epochs!r}")
    if int(config.top_k) != config.top_k or config.top_k < 1:
        raise ValueError(f"top_k: expected a positive integer, got {config.top_k!r}")
    for name in ("weight_learning_rate", "arc_learning_rate"):
        if not float(getattr(config, name)) > 0:
            raise ValueError(f"{name}: expected a positive number, got {getattr(config, name)!r}")
    device = resolve_device(config.device)
    make_estimator(config)  # checks the hyperparameters before any data is read
    output = Path(config.output)
    checkpoint = output / CHECKPOINT_NAME
    if config.resume and not checkpoint.is_file():
        raise ValueError(f"resume: no checkpoint at {checkpoint}")
    if not config.resume and (checkpoint.exists() or (output / "architecture.json").exists()):
        raise ValueError(f"output: {output} already holds a search; pass --resume or choose another --output")

    data = load_dataset(config.dataset, config.data_root, download=config.download)
    width, cells = config.width, config.cells
    if config.dataset == "digits":
        width = DIGITS_SIZE[config.space][0] if width is None and config.space in DIGITS_SIZE else width
        cells = DIGITS_SIZE[config.space][1] if cells is None and config.space in DIGITS_SIZE else cells
    space = build_space(config.space, width, cells, num_classes=data.num_classes)
    batches = search_batches(data, int(config.batch_size), device=device, seed=config.seed)
    estimator = make_estimator(config, steps=max(1, (int(epochs) - config.warmup_epochs) * len(batches[0])))
    strategy = EstimatorStrategy(estimator, arc_learning_rate=config.arc_learning_rate,
                                 warmup_epochs=config.warmup_epochs, gradient_clip_val=config.gradient_clip)
    return {"device": device, "data": data, "space": space, "batches": batches, "strategy": strategy,
            "epochs": int(epochs), "output": output, "width": width, "cells": cells}


def run_search(config: SearchConfig, parts: dict[str, Any] | None = None,
               listeners: Sequence[EpochListener] = ()) -> dict[str, Any]:
    """Run a search and write ``architecture.json``, ``history.csv``, ``probabilities.csv``,
    ``top_k.csv``/``top_k.json``, ``config.json`` and ``checkpoint.ckpt`` into ``config.output``.

    ``listeners`` are called after every epoch with the history row and the search module, before
    the row is written: they can add columns (a benchmark accuracy of the mode) or raise to stop.
    """
    from pytorch_lightning.callbacks import TQDMProgressBar

    parts = parts or prepare(config)
    output: Path = parts["output"]
    output.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(config.seed, workers=False, verbose=False)
    device = parts["device"]
    strategy = parts["strategy"]
    # Lightning's and NNI's start-up banners are noise on a command line.
    logging.getLogger("nni").setLevel(logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    recorder = SearchRecorder(output, parts["batches"], device, listeners)
    callbacks = [recorder]
    if config.progress:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, len(parts["batches"][0]) // 20)))
    trainer = _nni.Trainer(
        max_epochs=parts["epochs"], accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
        logger=_loggers(output), callbacks=callbacks,
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=config.progress,
        num_sanity_val_steps=0, log_every_n_steps=max(1, len(parts["batches"][0]) // 4),
    )
    module = SearchClassifier(config.weight_learning_rate, config.weight_decay, parts["epochs"])
    evaluator = _nni.Lightning(module, trainer, train_dataloaders=parts["batches"][0],
                               val_dataloaders=parts["batches"][1],
                               fit_kwargs={"ckpt_path": str(output / CHECKPOINT_NAME)} if config.resume else None)
    _write_config(output / "config.json", config, parts)
    model = strategy.mutate_model(parts["space"])
    evaluator = strategy.mutate_evaluator(evaluator)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        evaluator.evaluate(model)
    seconds = time.perf_counter() - started

    distribution = strategy.distribution
    architecture = distribution.mode()
    _atomic_write_text(output / "architecture.json", json.dumps(architecture, indent=2) + "\n")
    top = distribution.top_k(min(config.top_k, distribution.num_architectures))
    top_rows = [{"rank": rank, "probability": probability, "architecture": architecture_k}
                for rank, (architecture_k, probability) in enumerate(top, 1)]
    _atomic_write_text(output / "top_k.json", json.dumps(top_rows, indent=2) + "\n")
    _atomic_write_text(output / "top_k.csv", pd.DataFrame(
        [{**row, "architecture": json.dumps(row["architecture"])} for row in top_rows]).to_csv(index=False))
    return {"architecture": architecture, "history": pd.DataFrame(recorder.rows), "seconds": seconds,
            "output": output, "strategy": strategy}


def _loggers(output: Path) -> list:
    """CSV logs in ``logs/``; TensorBoard event files in ``tensorboard/`` too when tensorboard is installed."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    loggers = [CSVLogger(str(output), name="logs", version="")]
    try:
        loggers.append(TensorBoardLogger(str(output), name="tensorboard", version="", default_hp_metric=False))
    except ModuleNotFoundError:  # Lightning raises this when neither tensorboard nor tensorboardX is importable
        pass
    return loggers


def _write_config(path: Path, config: SearchConfig, parts: dict[str, Any]) -> None:
    record = dataclasses.asdict(config)
    record.update(epochs=parts["epochs"], width=parts["width"], cells=parts["cells"], device=str(parts["device"]),
                  device_name=torch.cuda.get_device_name(parts["device"]) if parts["device"].type == "cuda" else "cpu")
    _atomic_write_text(path, json.dumps(record, indent=2) + "\n")
