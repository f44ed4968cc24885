"""The search loop: one LightningModule serves every estimator.

Each step samples an architecture, trains that single path's weights on the training batch, then
updates the architecture logits with the estimator on the validation batch (forward passes only).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch

from . import _nni, distributed
from .distribution import Architecture, ArchitectureDistribution
from .estimators import Estimator, host_values
from .budget import CostBudget
from .objective import Objective
from .recipe import weights_only_epochs
from .settings import LoopSettings
from .weight_paths import weight_paths as make_weight_paths

CHECKPOINT_KEY = "nas_estimators"
# Logits are kept within this distance of each label's largest: softmax cannot tell further apart in
# float32 (e^-50 ~ 2e-22), and it keeps them finite under any learning rate.
LOGIT_RANGE = 50.0
PROGRESS_BAR_METRICS = ("val_acc", "entropy")

class SearchDiverged(RuntimeError):
    """Too many consecutive steps had a non-finite loss, gradient or estimate."""


def arc_optimizer(distribution: ArchitectureDistribution, learning_rate: float) -> torch.optim.Optimizer:
    """The logits' optimizer: Adam with DARTS's architecture betas."""
    return torch.optim.Adam(distribution.parameters(), lr=learning_rate, betas=(0.5, 0.999))


def arc_update(distribution: ArchitectureDistribution, optimizer: torch.optim.Optimizer,
               gradients: Mapping[str, torch.Tensor]) -> None:
    """One optimizer step of the logits along an estimator's ``gradients`` (label -> tensor)."""
    optimizer.zero_grad(set_to_none=True)
    for label, parameter in distribution.logits.items():
        parameter.grad = gradients[label].to(parameter.device, parameter.dtype)
    optimizer.step()
    with torch.no_grad():
        for parameter in distribution.parameters():
            # Softmax is shift-invariant: centring on the largest logit changes no probability.
            parameter.sub_(parameter.max()).clamp_(min=-LOGIT_RANGE)


class EstimatorLightningModule(_nni.BaseOneShotLightningModule):
    """Stochastic single-path search driven by an :class:`~nas_estimators.estimators.Estimator`.

    The architecture distribution and its optimizer stay on the host (the sampled path decides
    Python control flow, so it must be known there); their state travels in Lightning checkpoints.
    """

    # No defaults here: the strategy (strategy.EstimatorStrategy) owns them, and builds this module.
    def __init__(self, training_module: _nni.LightningModule, estimator: Estimator, *, settings: LoopSettings,
                 gradient_clip_val: float | None, log_probs_every_n_steps: int, objective: Objective,
                 objective_seed: int, budget: CostBudget | None = None, scoring_inputs: torch.Tensor | None = None,
                 calibration_batch: Any = None, rescore_batch: Any = None) -> None:
        super().__init__(training_module)
        self.settings = settings.check()
        self.budget = budget
        self.__dict__["_rescore_batch"] = rescore_batch  # None: the last epoch's first rescore_images held-out images
        self.__dict__["_rescore_pool"] = []
        self._rescore_pooled = 0
        self.rescored: list[dict[str, Any]] | None = None  # the top-k with their objective values, once scored
        self.weight_paths = make_weight_paths(settings.weight_paths)
        self.objective = objective
        self.objective_seed = int(objective_seed)
        self.__dict__["_scoring_inputs"] = scoring_inputs  # None: the first architecture step's training batch
        self.__dict__["_calibration_batch"] = calibration_batch  # None: the first architecture batch
        self.__dict__["_supernet"] = None
        self.estimator = estimator
        self.gradient_clip_val = gradient_clip_val
        self.log_probs_every_n_steps = log_probs_every_n_steps
        self.consecutive_bad_steps = 0
        # Kept out of the module tree so that Lightning does not move them to the accelerator.
        self.__dict__["distribution"] = None
        self.__dict__["arc_optimizer"] = None
        self._path_modules: list = []
        self._weight_parameters: list | None = None
        self.skipped_steps = 0
        self._last_validation: dict[str, float] = {}
        self._sampled_validation: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._epoch_logs: dict[str, tuple[float, float, bool]] = {}  # name -> (sum or max, weight, is max)

    # ---------------------------------------------------------------- model and distribution

    def set_model(self, model) -> None:
        super().set_model(model)
        self.__dict__["_supernet"] = model
        self._path_modules = _nni.supernet_modules(model)
        if self.distribution is None:  # NNI calls set_model again before export: keep what was learnt
            distribution = ArchitectureDistribution.from_model_space(model)
            self.__dict__["distribution"] = distribution
            self.__dict__["arc_optimizer"] = arc_optimizer(distribution, self.settings.arc_learning_rate)

    @property
    def supernet(self):
        """NNI's path-sampling supernet this module searches (set by ``set_model``)."""
        return self._supernet

    def setup(self, stage: str) -> None:
        """In a data-parallel search, give each process its own random stream and the estimator its peers.

        Lightning seeds every process alike (``seed_everything``); sampled architectures must differ
        between processes, while the weights start equal anyway (DDP copies rank 0's). A resumed search
        then restores each process's own generator from the checkpoint.
        """
        super().setup(stage)
        rank, processes = distributed.world()
        if processes > 1:
            torch.manual_seed((torch.initial_seed() + 1_000_003 * rank) % (2 ** 63))
            self.estimator.collectives = distributed

    @property
    def resolved_warmup_epochs(self) -> int:
        """``warmup_epochs``, or the recipe's share of the trainer's ``max_epochs`` when it was not given."""
        if self.settings.warmup_epochs is not None:
            return int(self.settings.warmup_epochs)
        epochs = getattr(self.trainer, "max_epochs", None)
        return weights_only_epochs(epochs) if epochs and epochs > 0 else 0

    def apply(self, architecture: Mapping[str, Any]) -> None:
        """Make the supernet run ``architecture`` until the next call."""
        _nni.apply_sample(self._path_modules, architecture)

    def resample(self) -> Architecture:
        """Set the supernet to the path the shared weights train on this step, and return it.

        With probability ``uniform_weight_paths`` the path is drawn by the ``weight_paths`` rule (uniformly
        from the space by default, see :mod:`nas_estimators.weight_paths`), otherwise
        from the learnt distribution (see ``docs/estimators.md``, "Which paths train the weights").
        """
        share = self.settings.uniform_weight_paths
        uniform = share >= 1.0 or (share > 0.0 and float(torch.rand(())) < share)
        if uniform:
            architecture = self.distribution.to_architecture(self.weight_paths.sample(self.distribution))
        else:
            architecture = self.distribution.sample()
        self.apply(architecture)
        return architecture

    def step_values(self) -> dict[str, Any]:
        """The last step's validation numbers and the estimator's diagnostics (see ``recorder.SearchModule``)."""
        budget = {} if self.budget is None or self.budget.last_cost is None else {
            "cost/multiplier": self.budget.multiplier, "cost/sampled": self.budget.last_cost}
        return {**self._last_validation, **self.estimator.diagnostics, **self.objective.step_values(), **budget}

    def export(self) -> Architecture:
        """The mode; under a cost budget the most probable architecture within it (the mode if none of
        the 1,000 most probable is); after re-scoring, the best-scored of the top k."""
        if self.rescored:
            return min(self.rescored, key=lambda row: row["objective"])["architecture"]
        if self.budget is not None and self.budget.bound:
            return self.budget.export(self.distribution) or self.distribution.mode()
        return self.distribution.mode()

    def top_architectures(self, k: int) -> list[Architecture]:
        """The ``k`` architectures the search ranks first: the re-scored ones by their objective (the first is
        :meth:`export`'s), then the most probable; under a cost budget only those within it (none if none of
        the 1,000 most probable is)."""
        first = [row["architecture"] for row in self.rescored or []]
        within = self.budget is not None and self.budget.bound
        count = max(1000, k) if within else k + len(first)
        ranked = [a for a, _ in self.distribution.top_k(min(count, self.distribution.num_architectures))
                  if (not within or self.budget.within(a)) and a not in first]
        return (first + ranked)[:k]

    def exported_architecture(self) -> Architecture:
        """What the search exports now (see :meth:`export`): the recorder's and the benchmark's architecture."""
        return self.export()

    def rescore(self, batch: Any) -> list[dict[str, Any]]:
        """Score the ``rescore_top_k`` most probable architectures (within the budget, if any) by the whole
        objective, the supernet term on all of ``batch`` at once (the same images for each): a close call
        between cells is then not decided by one step's batch. Returns rows best first."""
        within, top_k = self.budget is not None and self.budget.bound, self.settings.rescore_top_k
        ranked = self.distribution.top_k(min(max(top_k, 1000) if within else top_k, self.distribution.num_architectures))
        if within:
            ranked = [(a, p) for a, p in ranked if self.budget.within(a)] or ranked
        loss = self.objective.loss_fn(lambda architecture: self._score(batch, architecture))
        rows = [{"architecture": architecture, "probability": float(probability), "objective": float(loss(architecture))}
                for architecture, probability in ranked[:top_k]]
        self.rescored = sorted(rows, key=lambda row: row["objective"])
        return self.rescored

    def _pool_rescore_images(self, batch: Any) -> None:
        if self._rescore_pooled < self.settings.rescore_images:
            inputs, targets = batch
            left = self.settings.rescore_images - self._rescore_pooled
            self._rescore_pool.append((inputs[:left].detach(), targets[:left].detach()))
            self._rescore_pooled += len(self._rescore_pool[-1][1])

    def _pooled_rescore_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = zip(*self._rescore_pool)
        self._rescore_pool.clear()
        self._rescore_pooled = 0
        return torch.cat(inputs), torch.cat(targets)

    def export_probs(self) -> dict[str, dict[Any, float]]:
        return self.distribution.probs_by_value()

    # ---------------------------------------------------------------- the step
    #
    # On a GPU the step is bound by the host (Python, NNI's dispatch, kernel launches), so the host must
    # not wait on the device while the step's work is still to be queued: the training forward and
    # backward and the validation forward(s) are all queued before the first value is read, and what the
    # step reads (validation losses and accuracy, whether the weight step was finite) comes in at most
    # two transfers. The architecture is therefore scored at the weights before this step's update, as NNI's
    # DARTS does (architecture step first).

    def validation_loss(self, batch: Any, architecture: Architecture) -> torch.Tensor:
        """Loss of ``architecture`` on ``batch``, forward only (what the estimators call).

        A 0-dim tensor on the model's device, so that an estimator can queue several evaluations
        before it reads them.
        """
        self.apply(architecture)
        inputs, targets = batch
        with torch.inference_mode():
            outputs = self.training_module(inputs)
            loss = self.training_module.criterion(outputs, targets)
            if self._sampled_validation is None:  # the first call is the sampled architecture itself
                accuracy = None
                if outputs.dim() == 2 and targets.dim() == 1:
                    accuracy = (outputs.argmax(1) == targets).float().mean()
                self._sampled_validation = (loss, accuracy)
        return loss

    def _score(self, batch: Any, architecture: Architecture, chunk: int = 256) -> torch.Tensor:
        """``architecture``'s mean loss on ``batch``, recording nothing (the objective's calibration)."""
        self.apply(architecture)
        inputs, targets = batch
        with torch.inference_mode():
            total = sum(self.training_module.criterion(self.training_module(inputs[i:i + chunk]), targets[i:i + chunk])
                        * len(targets[i:i + chunk]) for i in range(0, len(targets), chunk))
        return total / len(targets)

    def objective_loss_fn(self, batch: Any) -> Callable[[Architecture], Any]:
        """The objective the estimator minimises, scored on ``batch`` (its terms bound on first use)."""
        if not self.objective.bound:
            self.objective.bind(self._supernet, self._scoring_inputs, self.distribution, self.objective_seed,
                                supernet_loss=lambda arch: self._score(self._calibration_batch or batch, arch))
        return self.objective.loss_fn(lambda arch: self.validation_loss(batch, arch))

    def architecture_step(self, batch: Any, weights_finite: torch.Tensor | None = None) -> tuple[bool, bool]:
        """One estimator update of the logits on ``batch``.

        ``weights_finite`` (from :meth:`weights_backward`) is read in the same transfer as the validation
        numbers. Returns whether the weight step and this step were finite (a non-finite one is skipped).
        """
        self._sampled_validation = None
        loss_fn = self.objective_loss_fn(batch)
        if self.budget is not None:
            if not self.budget.bound:
                self.budget.bind(self._supernet, self._scoring_inputs, self.distribution)
            loss_fn = self.budget.wrap(loss_fn)
        gradients = self.estimator.estimate(self.distribution, loss_fn)
        if self.budget is not None:
            self.budget.end_step()
        # Every process applies the mean of all processes' estimates: the same logits everywhere.
        distributed.mean_(list(gradients.values()))
        loss, accuracy = self._sampled_validation or (None, None)
        weights_good, loss, accuracy = host_values([weights_finite, loss, accuracy])
        self._last_validation = {key: value for key, value in (("val_loss", loss), ("val_acc", accuracy))
                                 if value is not None}
        if not all(torch.isfinite(g).all() for g in gradients.values()):
            return weights_good != 0.0, False
        arc_update(self.distribution, self.arc_optimizer, gradients)
        return weights_good != 0.0, True

    def _weight_optimizer(self):
        optimizer = self.optimizers()
        if isinstance(optimizer, list):
            [optimizer] = [o for o in optimizer if not getattr(o, "is_arch_optimizer", False)]
        return optimizer

    def weights_backward(self, loss: torch.Tensor) -> torch.Tensor:
        """Backward pass and gradient clipping of the sampled path's loss, nothing applied yet.

        Returns, on the device and unread, whether the loss and the gradient norm were finite.
        """
        optimizer = self._weight_optimizer()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self._weight_parameters is None:
            self._weight_parameters = [p for group in optimizer.param_groups for p in group["params"]]
        norm = torch.nn.utils.clip_grad_norm_(self._weight_parameters, self.gradient_clip_val or float("inf"))
        return torch.isfinite(loss.detach()) & torch.isfinite(norm)

    def weights_update(self, finite: bool) -> None:
        """Apply the gradients of :meth:`weights_backward`, or drop them if they were not finite."""
        optimizer = self._weight_optimizer()
        if finite:
            optimizer.step()
        else:
            optimizer.zero_grad(set_to_none=True)

    def _count(self, good: bool, where: str) -> None:
        if good:
            self.consecutive_bad_steps = 0
            return
        self.skipped_steps += 1
        self.consecutive_bad_steps += 1
        if self.settings.max_bad_steps and self.consecutive_bad_steps >= self.settings.max_bad_steps:
            raise SearchDiverged(
                f"{self.consecutive_bad_steps} consecutive steps had a non-finite {where} "
                f"(epoch {self.trainer.current_epoch}, step {self.global_step}); nothing of them was applied")

    def _log_host(self, name: str, value: float, weight: float = 1.0, largest: bool = False) -> None:
        """Add a host number to the epoch's aggregate; :meth:`_flush_epoch_logs` hands them to Lightning.

        Lightning's ``log`` costs about half a millisecond a call (4-6% of a small step on the CPU), and
        for a float it copies to the model's device, a host synchronisation each on a GPU.
        """
        total, weights, _ = self._epoch_logs.get(name, (0.0, 0.0, largest))
        if largest:
            self._epoch_logs[name] = (max(total, float(value)) if weights else float(value), 1.0, True)
        else:
            self._epoch_logs[name] = (total + weight * float(value), weights + weight, False)

    def _flush_epoch_logs(self) -> None:
        for name, (total, weights, largest) in self._epoch_logs.items():
            value = total if largest else total / max(weights, 1e-12)
            # Several processes: Lightning's logs show their mean (one small collective an epoch per metric).
            self.log(name, torch.tensor(value), on_step=False, on_epoch=True, prog_bar=name in PROGRESS_BAR_METRICS,
                     sync_dist=self.trainer.world_size > 1)
        self._epoch_logs = {}

    def training_step(self, batch, batch_idx):
        train_batch, val_batch = batch["train"], batch["val"]
        if self._scoring_inputs is None and isinstance(train_batch, (tuple, list)):
            self.__dict__["_scoring_inputs"] = train_batch[0]
        searching = self.trainer.current_epoch >= self.resolved_warmup_epochs
        if searching and self.settings.freeze_weights:
            # Two stages: the supernet trained in the weights-only epochs is fixed; the step only moves the logits.
            output = None
            _, architecture_good = self.architecture_step(val_batch)
            self._log_search_metrics(val_batch)
            self._count(architecture_good, "validation loss or architecture estimate")
        else:
            self.resample()
            output = self.training_module.training_step(train_batch, batch_idx)
            loss = output["loss"] if isinstance(output, dict) else output
            weights_finite = self.weights_backward(loss)
            if searching:
                weights_good, architecture_good = self.architecture_step(val_batch, weights_finite)
                self._log_search_metrics(val_batch)
            else:
                [finite] = host_values([weights_finite])
                weights_good, architecture_good = finite != 0.0, True
            self.weights_update(weights_good)
            self._count(weights_good and architecture_good,
                        "training loss or weight gradient" if not weights_good else "validation loss or architecture estimate")
        last_batch = batch_idx + 1 >= self.trainer.num_training_batches
        if searching and self.settings.rescore_top_k and self.trainer.current_epoch + 1 >= self.trainer.max_epochs:
            if self._rescore_batch is None:
                self._pool_rescore_images(val_batch)
            if last_batch:  # inside the last epoch: its seconds count
                self.rescore(self._rescore_batch or self._pooled_rescore_images())
        with torch.no_grad():
            entropy = float(self.distribution.entropy())
        self._log_host("entropy", entropy)
        self._log_host("skipped_steps", self.skipped_steps, largest=True)
        if batch_idx + 1 >= self.trainer.num_training_batches:
            self._flush_epoch_logs()
        self.advance_lr_schedulers(batch_idx)
        if self.log_probs_every_n_steps and self.global_step % self.log_probs_every_n_steps == 0:
            self.log_probs(self.export_probs())
        return output

    def _log_search_metrics(self, val_batch: Any) -> None:
        metrics = {**self._last_validation,
                   **{f"estimator/{k}": v for k, v in self.estimator.diagnostics.items()
                      if isinstance(v, float) and math.isfinite(v)}}
        if self.budget is not None and self.budget.last_cost is not None:  # to Lightning's logs and TensorBoard
            metrics.update({"cost/multiplier": self.budget.multiplier, "cost/sampled": self.budget.last_cost})
        batch_size = len(val_batch[1]) if isinstance(val_batch, (tuple, list)) else 1
        for name, value in metrics.items():
            self._log_host(name, value, weight=batch_size)

    # ---------------------------------------------------------------- checkpoints

    def search_state(self) -> dict[str, Any]:
        return {
            "labels": {label: list(map(repr, values)) for label, values in self.distribution.values.items()},
            "estimator": self.estimator.name,
            "distribution": self.distribution.state_dict(),
            "arc_optimizer": self.arc_optimizer.state_dict(),
            "estimator_state": self.estimator.state_dict(),
            "skipped_steps": self.skipped_steps,
            "consecutive_bad_steps": self.consecutive_bad_steps,
            "epoch_logs": dict(self._epoch_logs),  # a checkpoint taken mid-epoch resumes the aggregates
            "objective": self.objective.state_dict(),
            "weight_paths": self.weight_paths.state_dict(),
            **({"budget": self.budget.state_dict()} if self.budget is not None else {}),
            "rescored": self.rescored,
        }

    def load_search_state(self, state: Mapping[str, Any]) -> None:
        expected = {label: list(map(repr, values)) for label, values in self.distribution.values.items()}
        if state.get("labels") != expected:
            raise ValueError("the checkpoint belongs to another search space (its labels or candidates differ)")
        if state.get("estimator") != self.estimator.name:
            raise ValueError(f"the checkpoint was written by estimator {state.get('estimator')!r}, "
                             f"not {self.estimator.name!r}")
        self.distribution.load_state_dict(state["distribution"])
        self.arc_optimizer.load_state_dict(state["arc_optimizer"])
        self.estimator.load_state_dict(state["estimator_state"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.consecutive_bad_steps = int(state.get("consecutive_bad_steps", 0))
        self._epoch_logs = {name: tuple(value) for name, value in state.get("epoch_logs", {}).items()}
        if "objective" in state:  # checkpoints written before objectives existed ran the supernet term alone
            self.objective.load_state_dict(state["objective"])
        self.weight_paths.load_state_dict(state.get("weight_paths", {}))
        self.rescored = state.get("rescored")
        if self.budget is not None:
            if "budget" not in state:
                raise ValueError("the checkpoint's search ran without a cost budget")
            self.budget.load_state_dict(state["budget"])

    def on_fit_end(self):
        _nni.report_held_out_metrics(self.trainer, self.training_module)
        return super().on_fit_end()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self.search_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if CHECKPOINT_KEY in checkpoint:
            self.load_search_state(checkpoint[CHECKPOINT_KEY])
