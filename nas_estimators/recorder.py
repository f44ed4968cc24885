"""The search's Lightning callback: history tables, checkpoints each epoch and on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import pandas as pd
import pytorch_lightning as pl
import torch

from . import distributed
from .checkpoints import SEARCH_KEY
from .run_folder import RunFolder



class SearchModule(Protocol):
    """What the recorder, ``bench`` and the epoch listeners read from a running search, whatever the strategy.

    Our :class:`~nas_estimators.lightning.EstimatorLightningModule` implements it; for NNI's own strategies
    :class:`~nas_estimators.baselines.BaselineView` implements it from outside NNI's module.
    """

    skipped_steps: int  # steps whose update was dropped (non-finite)

    @property
    def distribution(self) -> Any:
        """``entropy()``, ``probs_by_value()``, ``mode()``, ``top_k(k)`` of the architecture distribution now."""

    def step_values(self) -> Mapping[str, Any]:
        """The last step's validation numbers (``val_loss``, ``val_acc``) and estimator diagnostics
        (floats, or 0-dim tensors left on the device)."""


# Called at the end of every epoch with the history row (a dict it may extend) and the search module.
EpochListener = Callable[[dict, SearchModule], None]
DIAGNOSTICS = ("baseline", "surrogate_loss", "temperature", "forward_evaluations", "samples")


def exported(search_module: Any) -> Any:
    """The architecture a search module exports now: ours may re-score or keep to a budget, NNI's export the mode."""
    method = getattr(search_module, "exported_architecture", None)
    return method() if method is not None else search_module.distribution.mode()


class SearchInterrupted(RuntimeError):
    """The search stopped on a signal after saving a checkpoint it can resume from."""

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.signal_number = signal_number


class SearchRecorder(pl.Callback):
    """Writes the run folder's history, probabilities and checkpoint each epoch; stops cleanly on a signal.

    Everything a resumed search needs beyond Lightning's own state (the history so far, how far into
    its epoch the data is, the random generators, the half-finished epoch's sums) travels in the
    checkpoint, so a resumed CPU search reproduces the uninterrupted one exactly.
    """

    def __init__(self, output: Path, checkpoint_path: Path, batches: Sequence[Any], device: torch.device,
                 config: Mapping[str, Any], listeners: Sequence[EpochListener] = (), strategy: Any = None) -> None:
        self.output = output
        self.checkpoint_path = checkpoint_path
        self.batches = list(batches)
        self.device = device
        self.config = dict(config)
        self.listeners = list(listeners)
        self.strategy = strategy  # its ``search_module`` is read (None: the Lightning module is the search module)
        self.rows: list[dict[str, Any]] = []
        self.probability_rows: list[dict[str, Any]] = []
        self.stop_signal: int | None = None
        self.catch_signals = False  # set by the search that installed request_stop for SIGTERM and SIGINT
        self._batches_done: int | None = None  # within the running epoch, for a mid-epoch checkpoint
        self._reset_epoch()

    def _reset_epoch(self) -> None:
        self._elapsed = 0.0
        self._epoch_start = time.perf_counter()
        self._train_loss = torch.zeros((), device=self.device)
        self._train_steps = torch.zeros((), device=self.device)
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    # ------------------------------------------------------------------ signals

    def request_stop(self, signal_number: int, frame: Any = None) -> None:
        """Signal handler: finish the running step, save a checkpoint, then stop."""
        self.stop_signal = signal_number

    # ------------------------------------------------------------------ processes

    def on_train_start(self, trainer, pl_module):
        # Lightning (2.x) puts its own SIGTERM handler in place once fit has started, and in a
        # data-parallel search that handler runs a collective inside the signal handler: it hangs unless
        # every process is signalled at the same point. Ours only sets a flag, which the processes
        # agree on at the end of the step (on_train_batch_end). Lightning puts ours back at teardown.
        if self.catch_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)

    def setup(self, trainer, pl_module, stage):
        """In a data-parallel search each process reads its own share of every epoch's batches."""
        if trainer.world_size > 1:
            for batches in self.batches:
                batches.shard(trainer.global_rank, trainer.world_size)

    # ------------------------------------------------------------------ epochs and steps

    def on_train_epoch_start(self, trainer, pl_module):
        if self._batches_done is None:  # not the second half of an epoch resumed mid-way
            self._reset_epoch()
        self._epoch_start = time.perf_counter()
        # The data order follows the trainer's epoch, not how often Lightning called iter() on it.
        for batches in self.batches:
            batches.restore_state({"epoch": trainer.current_epoch, "batch": self._batches_done or 0,
                                   "seed": batches.seed})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            # Stays on the device (no host sync per step); skipped non-finite steps are not averaged.
            finite = torch.isfinite(loss.detach())
            self._train_loss += torch.where(finite, loss.detach(), 0.0)
            self._train_steps += finite
        values = self._search_module(pl_module).step_values()
        for key, value in values.items():
            # A device tensor (NNI's strategies keep their validation numbers there) is summed there:
            # reading it a step would add a host synchronisation to their steps.
            value = value.detach().double() if isinstance(value, torch.Tensor) else float(value)
            self._sums[key] = self._sums.get(key, 0.0) + value
            self._counts[key] = self._counts.get(key, 0) + 1
        self._batches_done = (self._batches_done or 0) + 1
        if trainer.world_size > 1:  # a signal to any process stops all of them at the same step
            self.stop_signal = distributed.largest(self.stop_signal or 0) or None
        # After an epoch's last batch the stop waits for on_train_epoch_end: its row must be written first.
        if self.stop_signal is not None and self._batches_done < trainer.num_training_batches:
            trainer.save_checkpoint(self.checkpoint_path)  # atomic, see VerifiedCheckpointIO
            self._stop(trainer)

    def _stop(self, trainer) -> None:
        name = signal.Signals(self.stop_signal).name
        raise SearchInterrupted(
            f"stopped by {name} in epoch {trainer.current_epoch}; checkpoint saved to {self.checkpoint_path}, "
            "continue with --resume", self.stop_signal)

    def _search_module(self, pl_module) -> SearchModule:
        return pl_module if self.strategy is None else self.strategy.search_module

    def on_train_epoch_end(self, trainer, pl_module):
        search_module = self._search_module(pl_module)
        distribution = search_module.distribution
        with torch.no_grad():
            entropy = float(distribution.entropy())
        row = {
            "epoch": trainer.current_epoch,
            "train_loss": float(self._train_loss) / max(float(self._train_steps), 1.0),
            "val_loss": self._mean("val_loss"),
            "val_acc": self._mean("val_acc"),
            "entropy": entropy,
            "seconds": self._elapsed + time.perf_counter() - self._epoch_start,
            "skipped_steps": search_module.skipped_steps,
        }
        row.update({key: self._mean(key) for key in DIAGNOSTICS if key in self._counts})
        row.update({key: self._mean(key) for key in self._counts if key.startswith(("objective/", "cost/"))})
        objective = getattr(search_module, "objective", None)
        if objective is not None:  # every term's cost is part of the search's time
            row.update({f"seconds/{name}": seconds for name, seconds in objective.seconds().items()})
        budget = getattr(search_module, "budget", None)
        if budget is not None:  # measuring the sampled cells' cost is too
            row["seconds"] += budget.pre_search_seconds
            budget.pre_search_seconds = 0.0
            row["seconds/cost"] = budget.seconds
        if trainer.is_global_zero:  # one search's tables, whatever the number of processes
            for listener in self.listeners:  # they may add columns (a benchmark score) or raise (pruning)
                listener(row, search_module)
        # What the search exports: the mode, or under a budget or after re-scoring the cell it picks.
        row["mode"] = json.dumps(exported(search_module))
        self.rows.append(row)
        for label, probabilities in distribution.probs_by_value().items():
            for value, probability in probabilities.items():
                self.probability_rows.append({"epoch": trainer.current_epoch, "label": label,
                                              "value": json.dumps(value), "probability": probability})
        if trainer.is_global_zero:
            self.write_tables()
        self._batches_done = None
        trainer.save_checkpoint(self.checkpoint_path)  # atomic, see VerifiedCheckpointIO
        if self.stop_signal is not None and trainer.current_epoch + 1 < trainer.max_epochs:
            self._stop(trainer)

    def _mean(self, key: str) -> float:
        return float(self._sums.get(key, float("nan"))) / max(self._counts.get(key, 0), 1)

    def write_tables(self) -> None:
        run = RunFolder(self.output)
        run.write_history(pd.DataFrame(self.rows))
        run.write_probabilities(pd.DataFrame(self.probability_rows))

    # ------------------------------------------------------------------ checkpoint state

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint[SEARCH_KEY] = {
            "config": self.config,
            "rows": self.rows,
            "probability_rows": self.probability_rows,
            "partial_epoch": None if self._batches_done is None else {
                "batches_done": self._batches_done, "sums": {key: float(value) for key, value in self._sums.items()},
                "counts": self._counts,
                "train_loss": float(self._train_loss), "train_steps": float(self._train_steps),
                "elapsed": self._elapsed + time.perf_counter() - self._epoch_start},
            # One per process in a data-parallel search (each samples its own architectures).
            "torch_rng": torch.get_rng_state() if distributed.world()[1] == 1 else distributed.gather_bytes(
                torch.get_rng_state()),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "python_rng": random.getstate(),
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        state = checkpoint[SEARCH_KEY]
        # Searches saved before the benchmark column had one name called it benchmark_accuracy.
        self.rows = [{("benchmark_acc" if key == "benchmark_accuracy" else key): value for key, value in row.items()}
                     for row in state["rows"]]
        self.probability_rows = list(state["probability_rows"])
        partial = state.get("partial_epoch")
        if partial is not None:
            self._batches_done = partial["batches_done"]
            self._sums, self._counts = dict(partial["sums"]), dict(partial["counts"])
            self._train_loss = torch.tensor(partial["train_loss"], device=self.device)
            self._train_steps = torch.tensor(partial["train_steps"], device=self.device)
            self._elapsed = partial["elapsed"]
            self._epoch_start = time.perf_counter()
            # Lightning does not call on_train_epoch_start for an epoch resumed mid-way.
            for batches in self.batches:
                batches.restore_state({"epoch": checkpoint["epoch"], "batch": self._batches_done, "seed": batches.seed})
        torch_rng = state["torch_rng"]
        rank, processes = distributed.world()
        saved = len(torch_rng) if isinstance(torch_rng, (list, tuple)) else 1
        if saved != processes:
            raise ValueError(f"resume: the checkpoint was written by a search on {saved} processes, "
                             f"this one runs {processes}")
        torch.set_rng_state(torch_rng[rank] if isinstance(torch_rng, (list, tuple)) else torch_rng)
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        random.setstate(state["python_rng"])
