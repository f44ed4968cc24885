"""NNI one-shot strategies: thin adapters from an estimator to NNI's path-sampling supernet."""

from __future__ import annotations

import logging
from typing import Any, Iterator, Mapping

from . import _nni, recipe
from .budget import COST_RATE, CostBudget
from .estimators import Estimator, Ram, Relax, ScoreFunction
from .weight_paths import weight_paths as make_weight_paths
from .lightning import (ARC_LEARNING_RATE, UNIFORM_WEIGHT_PATHS, EstimatorLightningModule, check_rescore_images,
                        check_rescore_top_k, check_uniform_weight_paths)
from .objective import Objective
from .schedules import Schedule

_logger = logging.getLogger(__name__)


def _check_common(arc_learning_rate: float, warmup_epochs: int | None, log_probs_every_n_steps: int) -> None:
    if not (float(arc_learning_rate) > 0):
        raise ValueError(f"arc_learning_rate: expected a positive number, got {arc_learning_rate!r}")
    if warmup_epochs is not None and (isinstance(warmup_epochs, bool) or int(warmup_epochs) != warmup_epochs
                                      or warmup_epochs < 0):
        raise ValueError(f"warmup_epochs: expected an integer >= 0, got {warmup_epochs!r}")
    if int(log_probs_every_n_steps) < 0:
        raise ValueError(f"log_probs_every_n_steps: expected an integer >= 0, got {log_probs_every_n_steps!r}")


class EstimatorStrategy(_nni.OneShotStrategy):
    """Stochastic single-path search with any :class:`~nas_estimators.estimators.Estimator`.

    Usable wherever NNI's ``DARTS``/``GumbelDARTS`` are: inside ``NasExperiment`` or driven directly
    (``mutate_model``, ``mutate_evaluator``, ``evaluator.evaluate(model)``). The evaluator's training
    dataloader feeds the weights and its validation dataloader the architecture, batch by batch.

    Args:
        estimator: the gradient estimator of the architecture logits.
        arc_learning_rate: Adam learning rate of the architecture logits.
        warmup_epochs: epochs that train weights only, before the logits move.
        gradient_clip_val: clip the weights' gradients (None: no clipping).
        log_probs_every_n_steps: log every label's probabilities every N steps (0: never).
        max_bad_steps: stop with :class:`~nas_estimators.lightning.SearchDiverged` after this many
            consecutive steps with a non-finite loss, gradient or estimate (0: never stop). Such
            steps are skipped: nothing non-finite reaches the weights or the logits.
        uniform_weight_paths: the share of steps whose weight update trains a path drawn uniformly
            from the space (1, the default: every step, as single-path one-shot NAS does; 0: every path is drawn
            from the learnt distribution, as ENAS does). The estimator always scores its own draws
            from the distribution.
        weight_paths: how those paths are drawn: ``"uniform"`` (default), ``"no-none"`` (never a
            ``none`` edge) or ``"fair"`` (every candidate once in each run of steps; see
            :mod:`nas_estimators.weight_paths`).
        cost, cost_target: search under a budget (:class:`~nas_estimators.budget.CostBudget`):
            ``cost="flops"`` (MFLOPs of one input) or ``"params"`` (millions) of the sampled path, its
            expected value at most ``cost_target``; the export is then the most probable architecture
            within it. ``cost_rate``: the Lagrange multiplier's dual-ascent step.
        rescore_top_k: at the end of the last epoch, score the K most probable architectures by the whole
            objective on ``rescore_batch`` (held-out ``(inputs, targets)``; default: the first
            ``rescore_images`` images of the last epoch's validation batches) and export the best-scored
            (0: export the mode).

    The defaults are the recipe (:mod:`nas_estimators.recipe`), as ``nas-estimators search`` runs it: the
    weights train alone on uniformly drawn paths for 5/6 of the epochs, then stay fixed while the logits
    minimise the supernet's loss plus synflow and the parameter count (``objective``), and the five most
    probable architectures are re-scored at the end. ``freeze_weights=False, objective="supernet=1",
    rescore_top_k=0`` is the one-term search of earlier versions.
    """

    def __init__(self, estimator: Estimator, *, arc_learning_rate: float = ARC_LEARNING_RATE,
                 warmup_epochs: int | None = None,
                 gradient_clip_val: float | None = None, log_probs_every_n_steps: int = 50,
                 max_bad_steps: int = 20, uniform_weight_paths: float = UNIFORM_WEIGHT_PATHS,
                 objective: Objective | Mapping[str, float] | str | None = None, objective_seed: int = 0,
                 scoring_inputs: Any = None, calibration_batch: Any = None,
                 freeze_weights: bool = recipe.FREEZE_WEIGHTS, weight_paths: str = "uniform", cost: str | None = None,
                 cost_target: float | None = None, cost_rate: float = COST_RATE,
                 rescore_top_k: int = recipe.RESCORE_TOP_K, rescore_batch: Any = None,
                 rescore_images: int = recipe.RESCORE_IMAGES, **kwargs: Any) -> None:
        _check_common(arc_learning_rate, warmup_epochs, log_probs_every_n_steps)
        if (cost is None) != (cost_target is None):
            raise ValueError("cost, cost_target: give both (a cost and its budget) or neither")
        self.budget = None if cost is None else CostBudget(cost, cost_target, rate=cost_rate)
        self.rescore_top_k, self.rescore_batch = check_rescore_top_k(rescore_top_k), rescore_batch
        self.rescore_images = check_rescore_images(rescore_images)
        if isinstance(objective, str):
            objective = Objective.parse(objective)
        elif objective is None or isinstance(objective, Mapping):
            objective = Objective.from_weights(recipe.OBJECTIVE if objective is None else objective)
        self.objective, self.objective_seed, self.scoring_inputs = objective, int(objective_seed), scoring_inputs
        self.freeze_weights = bool(freeze_weights)
        self.calibration_batch = calibration_batch
        self.uniform_weight_paths = check_uniform_weight_paths(uniform_weight_paths)
        make_weight_paths(weight_paths)
        self.weight_paths = weight_paths
        super().__init__(**kwargs)
        self.estimator = estimator
        self.arc_learning_rate = float(arc_learning_rate)
        self.warmup_epochs = None if warmup_epochs is None else int(warmup_epochs)
        self.gradient_clip_val = gradient_clip_val
        self.log_probs_every_n_steps = int(log_probs_every_n_steps)
        if isinstance(max_bad_steps, bool) or int(max_bad_steps) != max_bad_steps or max_bad_steps < 0:
            raise ValueError(f"max_bad_steps: expected an integer >= 0, got {max_bad_steps!r}")
        self.max_bad_steps = int(max_bad_steps)
        self._search_module: EstimatorLightningModule | None = None

    def default_mutation_hooks(self):
        return _nni.path_sampling_hooks()

    def mutate_model(self, model):
        """NNI's path-sampling supernet of ``model`` (in place), after checking that every label is categorical.

        A mutable the distribution cannot hold is refused here, before the supernet is built: a
        ``TypeError`` naming the label, its type and what is supported.
        """
        _nni.categorical_choices(model)
        return super().mutate_model(model)

    def run_hook(self, hook, name, module, memo):
        return _nni.run_path_sampling_hook(hook, name, module, memo)

    def configure_oneshot_module(self, training_module) -> EstimatorLightningModule:
        self._search_module = EstimatorLightningModule(
            training_module, self.estimator, arc_learning_rate=self.arc_learning_rate,
            warmup_epochs=self.warmup_epochs, gradient_clip_val=self.gradient_clip_val,
            log_probs_every_n_steps=self.log_probs_every_n_steps, max_bad_steps=self.max_bad_steps,
            uniform_weight_paths=self.uniform_weight_paths, objective=self.objective,
            objective_seed=self.objective_seed, scoring_inputs=self.scoring_inputs,
            calibration_batch=self.calibration_batch, freeze_weights=self.freeze_weights,
            weight_paths=self.weight_paths, budget=self.budget, rescore_top_k=self.rescore_top_k,
            rescore_batch=self.rescore_batch, rescore_images=self.rescore_images)
        return self._search_module

    def train_dataloader(self, train_dataloader_fn, val_dataloader_fn):
        # A dict makes Lightning zip the two loaders: one weights batch and one architecture batch a step.
        return {"train": train_dataloader_fn(), "val": val_dataloader_fn()}

    def val_dataloader(self, train_dataloader_fn, val_dataloader_fn):
        return None

    @property
    def search_module(self) -> EstimatorLightningModule:
        """The running search's module (a :class:`~nas_estimators.recorder.SearchModule`)."""
        if self._search_module is None:
            raise RuntimeError("the strategy has no module yet: run it (or mutate_evaluator and evaluate) first")
        return self._search_module

    @property
    def distribution(self):
        """The learnt :class:`~nas_estimators.ArchitectureDistribution` (once the evaluator holds the model)."""
        if self._search_module is None or self._search_module.distribution is None:
            raise RuntimeError("the strategy has no distribution yet: run it (or mutate_evaluator and evaluate) first")
        return self._search_module.distribution

    def list_models(self, sort: bool = True, limit: int | None = 1) -> Iterator[Any]:
        """The ``limit`` most probable architectures, best first, each frozen as NNI does for one.

        Unlike NNI's own one-shot strategies this honours ``limit`` (``export_top_models(top_k=k)``):
        the distribution ranks every architecture by its probability. ``limit=None`` means 1.
        """
        if not sort:
            _logger.warning("Architectures are always returned best first; sort=False is ignored.")
        k = 1 if limit is None else limit
        self.oneshot_module.set_model(self.supernet)
        if self.budget is not None and self.budget.bound:  # the most probable ones within the budget
            ranked = self.distribution.top_k(min(max(1000, k), self.distribution.num_architectures))
            samples = [sample for sample, _ in ranked if self.budget.within(sample)][:k]
        else:
            samples = [sample for sample, _ in self.distribution.top_k(k)]
        for sample in samples:
            yield self.model_space.freeze(sample)


class SF(EstimatorStrategy):
    """Score-function search with a moving-average baseline (:class:`~nas_estimators.ScoreFunction`).

    Example::

        from nni.nas.experiment import NasExperiment
        experiment = NasExperiment(model_space, evaluator, nas_estimators.SF(baseline_decay=0.9))
        experiment.run()
        experiment.export_top_models(formatter='dict')
    """

    def __init__(self, baseline_decay: float = 0.9, samples: int = 1, **kwargs: Any) -> None:
        super().__init__(ScoreFunction(baseline_decay=baseline_decay, samples=samples), **kwargs)


class RELAX(EstimatorStrategy):
    """Search with RELAX's learned control variate (:class:`~nas_estimators.Relax`)."""

    def __init__(self, surrogate_width: int = 64, surrogate_lr: float = 1e-3,
                 temperature: float | Schedule = 0.5, **kwargs: Any) -> None:
        super().__init__(Relax(surrogate_width=surrogate_width, surrogate_lr=surrogate_lr,
                               temperature=temperature), **kwargs)


class RAM(EstimatorStrategy):
    """Search with RAM's one-label-at-a-time marginalisation (:class:`~nas_estimators.Ram`).

    Unlike the bare estimator, the strategy marginalises one randomly chosen label per step by default:
    every label costs ``1 + sum_k (A_k - 1)`` forward passes a step (138 in the DARTS space, 25x SF's
    step time), while one label is unbiased too and costs about twice SF's step
    (``docs/bench.md``). Pass ``labels_per_step=None`` for every label.
    """

    def __init__(self, labels_per_step: int | None = 1, **kwargs: Any) -> None:
        super().__init__(Ram(labels_per_step=labels_per_step), **kwargs)


def path_sampling_supernet(space):
    """NNI's path-sampling supernet of the model ``space`` (in place): the network every one of our
    strategies trains, whatever its estimator (a finished search's weights load into it)."""
    return EstimatorStrategy(ScoreFunction()).mutate_model(space)
