"""NNI one-shot strategies: thin adapters from an estimator to NNI's path-sampling supernet."""

from __future__ import annotations

import logging
from typing import Any, Iterator, Mapping

from . import _nni, recipe, registry
from .budget import COST_RATE, CostBudget
from .checks import integer
from .estimators import Estimator, Ram, Relax, ScoreFunction
from .lightning import EstimatorLightningModule
from .objective import Objective
from .schedules import Schedule
from .settings import LoopSettings, loop_fields

_logger = logging.getLogger(__name__)


class EstimatorStrategy(_nni.OneShotStrategy):
    """Stochastic single-path search with any :class:`~nas_estimators.estimators.Estimator`.

    Usable wherever NNI's ``DARTS``/``GumbelDARTS`` are: inside ``NasExperiment`` or driven directly
    (``mutate_model``, ``mutate_evaluator``, ``evaluator.evaluate(model)``). The evaluator's training
    dataloader feeds the weights and its validation dataloader the architecture, batch by batch.

    Args:
        estimator: the gradient estimator of the architecture logits.
        settings: the search loop's settings as keywords, each a field of
            :class:`~nas_estimators.settings.LoopSettings` (the logits' learning rate, the weights-only epochs,
            which paths train the weights, re-scoring at the end ...; unset: the recipe's), checked there.
            The other keywords go to NNI's ``OneShotStrategy``.
        objective: what the estimator minimises: an :class:`~nas_estimators.objective.Objective`, term weights
            or ``"supernet=1,synflow=1"`` (default: the recipe's terms, those of a FLOPs or parameter budget with ``cost``).
        gradient_clip_val: clip the weights' gradients (None: no clipping).
        log_probs_every_n_steps: log every label's probabilities every N steps (0: never).
        cost, cost_target: search under a budget (:class:`~nas_estimators.budget.CostBudget`):
            ``cost="flops"`` (MFLOPs of one input) or ``"params"`` (millions) of the sampled path, its
            expected value at most ``cost_target``; the export is then the most probable architecture
            within it. ``cost_rate``: the Lagrange multiplier's dual-ascent step.
        rescore_batch: held-out ``(inputs, targets)`` that score the re-scored cells (default: the first images
            of the last epoch's validation batches, as many as the settings ask for).

    The defaults are the recipe (:mod:`nas_estimators.recipe`), as ``nas-estimators search`` runs it: the
    weights train alone on uniformly drawn paths for 5/6 of the epochs, then stay fixed while the logits
    minimise the supernet's loss plus synflow and the parameter count (``objective``; under a FLOPs or parameter
    budget, plus NASWOT instead), and the five most
    probable architectures are re-scored at the end (``SF(**settings.before())`` is the one-term search of
    earlier versions). A step with a non-finite loss, gradient or estimate is
    skipped; too many in a row stop the search with :class:`~nas_estimators.lightning.SearchDiverged`.
    """

    def __init__(self, estimator: Estimator, *, objective: Objective | Mapping[str, float] | str | None = None,
                 objective_seed: int = 0, gradient_clip_val: float | None = None, log_probs_every_n_steps: int = 50,
                 scoring_inputs: Any = None, calibration_batch: Any = None, cost: str | None = None,
                 cost_target: float | None = None, cost_rate: float = COST_RATE, rescore_batch: Any = None,
                 **kwargs: Any) -> None:
        names = {field.name for field in loop_fields()}
        self.settings = LoopSettings(**{name: kwargs.pop(name) for name in list(kwargs) if name in names}).resolved()
        integer("log_probs_every_n_steps", log_probs_every_n_steps, minimum=0)
        if (cost is None) != (cost_target is None):
            raise ValueError("cost, cost_target: give both (a cost and its budget) or neither")
        self.budget = None if cost is None else CostBudget(cost, cost_target, rate=cost_rate)
        self.rescore_batch = rescore_batch
        if isinstance(objective, str):
            objective = Objective.parse(objective)
        elif objective is None or isinstance(objective, Mapping):
            objective = Objective.from_weights(recipe.objective(cost) if objective is None else objective)
        self.objective, self.objective_seed, self.scoring_inputs = objective, int(objective_seed), scoring_inputs
        self.calibration_batch = calibration_batch
        super().__init__(**kwargs)
        self.estimator = estimator
        self.gradient_clip_val = gradient_clip_val
        self.log_probs_every_n_steps = int(log_probs_every_n_steps)
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
            training_module, self.estimator, settings=self.settings, gradient_clip_val=self.gradient_clip_val,
            log_probs_every_n_steps=self.log_probs_every_n_steps, objective=self.objective,
            objective_seed=self.objective_seed, scoring_inputs=self.scoring_inputs,
            calibration_batch=self.calibration_batch, budget=self.budget, rescore_batch=self.rescore_batch)
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
        """The ``limit`` best architectures, best first, each frozen as NNI does for one: the re-scored ones by
        their objective, then the most probable (under a budget, only those within it).

        Unlike NNI's own one-shot strategies this honours ``limit`` (``export_top_models(top_k=k)``):
        the distribution ranks every architecture by its probability. ``limit=None`` means 1.
        """
        if not sort:
            _logger.warning("Architectures are always returned best first; sort=False is ignored.")
        self.oneshot_module.set_model(self.supernet)
        for sample in self.search_module.top_architectures(1 if limit is None else limit):
            yield self.model_space.freeze(sample)


class SF(EstimatorStrategy):
    """Score-function search with a moving-average baseline (:class:`~nas_estimators.ScoreFunction`).

    Example::

        from nni.nas.experiment import NasExperiment
        experiment = NasExperiment(model_space, evaluator, nas_estimators.SF(baseline_decay=0.9))
        experiment.run()
        experiment.export_top_models(formatter='dict')
    """

    def __init__(self, baseline_decay: float = registry.default("baseline_decay"),
                 samples: int = registry.default("samples_per_step"), **kwargs: Any) -> None:
        super().__init__(ScoreFunction(baseline_decay=baseline_decay, samples=samples), **kwargs)


class RELAX(EstimatorStrategy):
    """Search with RELAX's learned control variate (:class:`~nas_estimators.Relax`)."""

    def __init__(self, surrogate_width: int = registry.default("surrogate_width"),
                 surrogate_lr: float = registry.default("surrogate_lr"),
                 temperature: float | Schedule = registry.default("temperature"),
                 surrogate_init: str = registry.default("surrogate_init"),
                 baseline_fade_steps: int | None = registry.default("baseline_fade_steps"), **kwargs: Any) -> None:
        super().__init__(Relax(surrogate_width=surrogate_width, surrogate_lr=surrogate_lr,
                               temperature=temperature, surrogate_init=surrogate_init,
                               baseline_fade_steps=baseline_fade_steps), **kwargs)


class RAM(EstimatorStrategy):
    """Search with RAM's one-label-at-a-time marginalisation (:class:`~nas_estimators.Ram`).

    Unlike the bare estimator, the strategy marginalises one randomly chosen label per step by default:
    every label costs ``1 + sum_k (A_k - 1)`` forward passes a step (138 in the DARTS space, 25x SF's
    step time), while one label is unbiased too and costs about twice SF's step
    (``docs/bench.md``). Pass ``labels_per_step=None`` for every label.
    """

    def __init__(self, labels_per_step: int | None = registry.default("labels_per_step"), **kwargs: Any) -> None:
        super().__init__(Ram(labels_per_step=labels_per_step), **kwargs)


def path_sampling_supernet(space):
    """NNI's path-sampling supernet of the model ``space`` (in place): the network every one of our
    strategies trains, whatever its estimator (a finished search's weights load into it)."""
    return EstimatorStrategy(ScoreFunction()).mutate_model(space)
