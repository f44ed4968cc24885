"""The search loop: one LightningModule serves every estimator.

Each step samples an architecture, trains that single path's weights on the training batch, then
updates the architecture logits with the estimator on the validation batch (forward passes only).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from . import _nni
from .distribution import Architecture, ArchitectureDistribution
from .estimators import Estimator

CHECKPOINT_KEY = "nas_estimators"
# Logits are kept within this distance of each label's largest: softmax cannot tell further apart in
# float32 (e^-50 ~ 2e-22), and it keeps them finite under any learning rate.
LOGIT_RANGE = 50.0


class SearchDiverged(RuntimeError):
    """Too many consecutive steps had a non-finite loss, gradient or estimate."""


class EstimatorLightningModule(_nni.BaseOneShotLightningModule):
    """Stochastic single-path search driven by an :class:`~nas_estimators.estimators.Estimator`.

    The architecture distribution and its optimizer stay on the host (the sampled path decides
    Python control flow, so it must be known there); their state travels in Lightning checkpoints.
    """

    def __init__(self, training_module: _nni.LightningModule, estimator: Estimator, *,
                 arc_learning_rate: float = 3e-3, warmup_epochs: int = 0,
                 gradient_clip_val: float | None = None, log_probs_every_n_steps: int = 50,
                 max_bad_steps: int = 20) -> None:
        super().__init__(training_module)
        self.estimator = estimator
        self.arc_learning_rate = arc_learning_rate
        self.warmup_epochs = warmup_epochs
        self.gradient_clip_val = gradient_clip_val
        self.log_probs_every_n_steps = log_probs_every_n_steps
        self.max_bad_steps = max_bad_steps
        self.consecutive_bad_steps = 0
        # Kept out of the module tree so that Lightning does not move them to the accelerator.
        self.__dict__["distribution"] = None
        self.__dict__["arc_optimizer"] = None
        self._path_modules: list = []
        self.skipped_steps = 0
        self._last_validation: dict[str, float] = {}

    # ---------------------------------------------------------------- model and distribution

    def set_model(self, model) -> None:
        super().set_model(model)
        self._path_modules = _nni.supernet_modules(model)
        if self.distribution is None:  # NNI calls set_model again before export: keep what was learnt
            distribution = ArchitectureDistribution.from_model_space(model)
            self.__dict__["distribution"] = distribution
            self.__dict__["arc_optimizer"] = torch.optim.Adam(
                distribution.parameters(), lr=self.arc_learning_rate, betas=(0.5, 0.999))

    def apply(self, architecture: Mapping[str, Any]) -> None:
        """Make the supernet run ``architecture`` until the next call."""
        _nni.apply_sample(self._path_modules, architecture)

    def resample(self) -> Architecture:
        architecture = self.distribution.sample()
        self.apply(architecture)
        return architecture

    def export(self) -> Architecture:
        return self.distribution.mode()

    def export_probs(self) -> dict[str, dict[Any, float]]:
        return self.distribution.probabilities()

    # ---------------------------------------------------------------- the step

    def validation_loss(self, batch: Any, architecture: Architecture) -> float:
        """Loss of ``architecture`` on ``batch``, forward only (what the estimators call)."""
        self.apply(architecture)
        inputs, targets = batch
        with torch.inference_mode():
            outputs = self.training_module(inputs)
            loss = self.training_module.criterion(outputs, targets)
            if not self._last_validation:  # the first call is the sampled architecture itself
                self._last_validation = {"val_loss": float(loss)}
                if outputs.dim() == 2 and targets.dim() == 1:
                    self._last_validation["val_acc"] = float((outputs.argmax(1) == targets).float().mean())
        return float(loss)

    def architecture_step(self, batch: Any) -> bool:
        """One estimator update of the logits; returns False if the step was skipped as non-finite."""
        self._last_validation = {}
        gradients = self.estimator.estimate(self.distribution, lambda arch: self.validation_loss(batch, arch))
        if not all(torch.isfinite(g).all() for g in gradients.values()):
            return False
        self.arc_optimizer.zero_grad(set_to_none=True)
        for label, parameter in self.distribution.logits.items():
            parameter.grad = gradients[label].to(parameter.device, parameter.dtype)
        self.arc_optimizer.step()
        with torch.no_grad():
            for parameter in self.distribution.parameters():
                # Softmax is shift-invariant: centring on the largest logit changes no probability.
                parameter.sub_(parameter.max()).clamp_(min=-LOGIT_RANGE)
        return True

    def weights_step(self, loss: torch.Tensor) -> bool:
        """One optimizer step of the sampled path's weights; False (and no update) if non-finite."""
        if not torch.isfinite(loss.detach()):
            return False
        optimizer = self.optimizers()
        if isinstance(optimizer, list):
            [optimizer] = [o for o in optimizer if not getattr(o, "is_arch_optimizer", False)]
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        parameters = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(parameters, self.gradient_clip_val or float("inf"))
        if not torch.isfinite(norm):
            optimizer.zero_grad(set_to_none=True)
            return False
        optimizer.step()
        return True

    def _count(self, good: bool, where: str) -> None:
        if good:
            self.consecutive_bad_steps = 0
            return
        self.skipped_steps += 1
        self.consecutive_bad_steps += 1
        if self.max_bad_steps and self.consecutive_bad_steps >= self.max_bad_steps:
            raise SearchDiverged(
                f"{self.consecutive_bad_steps} consecutive steps had a non-finite {where} "
                f"(epoch {self.trainer.current_epoch}, step {self.global_step}); nothing of them was applied")

    def training_step(self, batch, batch_idx):
        train_batch, val_batch = batch["train"], batch["val"]

        self.resample()
        output = self.training_module.training_step(train_batch, batch_idx)
        loss = output["loss"] if isinstance(output, dict) else output
        weights_good = self.weights_step(loss)
        architecture_good = True
        if self.trainer.current_epoch >= self.warmup_epochs:
            architecture_good = self.architecture_step(val_batch)
            metrics = {**self._last_validation,
                       **{f"estimator/{k}": v for k, v in self.estimator.diagnostics.items()
                          if isinstance(v, float) and math.isfinite(v)}}
            batch_size = len(val_batch[1]) if isinstance(val_batch, (tuple, list)) else None
            if "val_acc" in metrics:
                self.log("val_acc", metrics.pop("val_acc"), on_step=False, on_epoch=True, prog_bar=True,
                         batch_size=batch_size)
            self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=batch_size)
        with torch.no_grad():
            entropy = float(self.distribution.entropy())
        self.log("entropy", entropy, on_step=False, on_epoch=True, prog_bar=True)
        self.log("skipped_steps", float(self.skipped_steps), on_step=False, on_epoch=True, reduce_fx="max")

        self._count(weights_good and architecture_good,
                    "training loss or weight gradient" if not weights_good else "validation loss or architecture estimate")
        self.advance_lr_schedulers(batch_idx)
        if self.log_probs_every_n_steps and self.global_step % self.log_probs_every_n_steps == 0:
            self.log_probs(self.export_probs())
        return output

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

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self.search_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if CHECKPOINT_KEY in checkpoint:
            self.load_search_state(checkpoint[CHECKPOINT_KEY])
