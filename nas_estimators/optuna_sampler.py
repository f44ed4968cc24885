"""The estimators as an Optuna sampler: categorical parameters drawn from a learnt distribution.

:class:`EstimatorSampler` keeps an :class:`~nas_estimators.ArchitectureDistribution` over the study's
categorical parameters and trains it with SF, RELAX or RAM (Adam on the logits, as the searches do) from the
values of finished trials; other parameters go to an independent sampler (Optuna's ``RandomSampler`` by
default), as Optuna's own relative samplers do.

**One state for every worker.** The distribution is never stored: each worker rebuilds it by replaying
the study's finished trials in the order they finished, from the same seeded start, so every worker
on one storage (SQLite, PostgreSQL, a JournalStorage) and every restarted one holds the same logits.
A trial records the random seed of its draw and how many updates its distribution had seen. When the
replay reaches it with the same count (the trial finished before any other trial sampled after it,
always so with one worker), the estimator itself replays the draw with that seed and receives the
trial's value: the update is exactly the estimator's. A trial sampled before other trials finished (several
workers, or ``n_jobs > 1``), or by another sampler, updates by the score function at its recorded
parameters (SF's update on a sample from a slightly older distribution). Failed and pruned trials are
skipped. The learnt probabilities are each trial's ``nas_estimators:probabilities`` user attribute.

Example:
    >>> import optuna
    >>> sampler = EstimatorSampler("sf", seed=0)
    >>> study = optuna.create_study(sampler=sampler)
    >>> study.optimize(lambda t: {"a": 1.0, "b": 0.0, "c": 2.0}[t.suggest_categorical("x", ["a", "b", "c"])],
    ...                n_trials=60)
    >>> probabilities = sampler.probabilities()["x"]
    >>> max(probabilities, key=probabilities.get)
    'b'
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

import optuna
import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from . import registry
from .checks import integer, positive_number
from .distribution import ArchitectureDistribution
from .lightning import arc_optimizer, arc_update

__all__ = ["EstimatorSampler"]

_SEED = "nas_estimators:seed"
_UPDATES = "nas_estimators:updates"
_PROBABILITIES = "nas_estimators:probabilities"
_GROUP = "nas_estimators:group"  # a RAM trial's group: the number of the trial that drew it
_GROUP_SIZE = "nas_estimators:group_size"
#: SF and RELAX score one architecture a step: one trial, one update. RAM scores one label's every value:
#: a group of trials (the draw and one enqueued trial for each other value of the label), one update.
SAMPLER_ESTIMATORS = ("sf", "relax", "ram")


class EstimatorSampler(BaseSampler):
    """An Optuna sampler whose categorical parameters follow a distribution trained by SF, RELAX or RAM.

    Args:
        estimator: ``"sf"``, ``"relax"`` or ``"ram"``. RAM's extra evaluations are trials of their own: the
            trial it draws, and one enqueued trial for each other value of one label, which Optuna runs
            next (on any worker); the update comes when the whole group has finished.
        seed: seeds the draws and the replay; workers of one study must use the same seed.
        learning_rate: Adam learning rate of the logits.
        independent_sampler: samples the non-categorical parameters (default: ``RandomSampler(seed)``).
        estimator_options: the estimator's hyperparameters by registry name (see :mod:`~nas_estimators.registry`).
        redraws: when a draw repeats the categorical values of a trial the study already holds (running or
            finished), draw up to this many more from the distribution and take the first new one (0: never
            redraw). A settled distribution then tries the configurations next to its mode instead of its
            mode again. Such a trial updates by the score function at its values, as a trial of an older
            distribution does. The default, 100, was chosen on tuning seeds (``docs/optuna-sampler.md``).
            SF and RELAX only: RAM's groups are built around its own draw.
    """

    def __init__(self, estimator: str = "sf", *, seed: int | None = None, learning_rate: float = 0.1,
                 independent_sampler: BaseSampler | None = None,
                 estimator_options: Mapping[str, Any] | None = None, redraws: int = 100) -> None:
        integer("redraws", redraws, minimum=0)
        self.redraws = redraws
        if estimator not in SAMPLER_ESTIMATORS:
            raise ValueError(f"estimator: expected one of {', '.join(SAMPLER_ESTIMATORS)}, got {estimator!r}")
        positive_number("learning_rate", learning_rate)
        if seed is not None and (isinstance(seed, bool) or int(seed) != seed):
            raise ValueError(f"seed: expected an integer or None, got {seed!r}")
        self.estimator_name = estimator
        self.seed = int(seed) if seed is not None else int(torch.randint(0, 2 ** 31 - 1, ()).item())
        self.learning_rate = float(learning_rate)
        self.estimator_options = dict(estimator_options or {})
        spec = registry.get(estimator)
        defaults = {h.name: h.default for h in spec.hyperparameters}
        unknown = sorted(set(self.estimator_options) - set(defaults))
        if unknown:
            raise ValueError(f"estimator_options: unknown {', '.join(unknown)} for {estimator}; expected some of "
                             f"{', '.join(defaults)}")
        self._spec, self._defaults = spec, defaults
        spec.build({**defaults, **self.estimator_options}, 1)  # bad values fail here, not in a worker
        self._independent = independent_sampler or RandomSampler(seed=self.seed)
        self._space: dict[str, CategoricalDistribution] | None = None
        self._reset()

    def _reset(self) -> None:
        self.distribution: ArchitectureDistribution | None = None
        self._optimizer = None
        self._estimator = None
        self._replayed: list[int] = []  # trial numbers, in the order they were applied
        self._finished_keys: set[tuple] = set()  # their categorical values (what redraws avoid)
        self._steps = 0  # updates applied (a trial each for SF and RELAX, a group each for RAM)
        self._groups: dict[int, dict[int, tuple[FrozenTrial, float]]] = {}  # RAM groups still running

    # -------------------------------------------------------------- Optuna's sampler interface

    def reseed_rng(self) -> None:
        self._independent.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self._space is not None:
            return dict(self._space)
        # The categorical parameters of the first finished trial fix the space (a define-by-run study
        # shows them only once a trial ran); until then everything goes to the independent sampler.
        for finished in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            space = {name: d for name, d in sorted(finished.distributions.items())
                     if isinstance(d, CategoricalDistribution) and len(d.choices) > 1}
            if space:
                self._space = space
                return dict(space)
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        if _GROUP in trial.user_attrs:  # an enqueued value of a RAM group: its values are fixed
            return {}
        self._catch_up(study)
        seed = (self.seed * 1_000_003 + trial.number) % (2 ** 63)
        generator = torch.Generator().manual_seed(seed)
        if self.estimator_name == "ram":
            return self._sample_group(study, trial, seed, generator)
        indices = self._draw(generator)
        if self.redraws:
            held = self._held(study, trial)
            if self._key(self._values(indices)) in held:
                unheld = self._unheld_draw(generator, held)
                if unheld is not None:  # not the estimator's own draw: no replay
                    indices, seed = unheld, None
        if seed is not None:
            study._storage.set_trial_system_attr(trial._trial_id, _SEED, seed)
        self._record(study, trial)
        return self._values(indices)

    def _record(self, study: optuna.Study, trial: FrozenTrial) -> None:
        study._storage.set_trial_system_attr(trial._trial_id, _UPDATES, self._steps)
        study._storage.set_trial_user_attr(trial._trial_id, _PROBABILITIES, json.dumps(
            {name: {str(choice): round(p, 6) for choice, p in values.items()}
             for name, values in self.probabilities().items()}))

    def _values(self, indices: Mapping[str, int]) -> dict[str, Any]:
        return {name: self._space[name].choices[index] for name, index in indices.items()}

    def _sample_group(self, study: optuna.Study, trial: FrozenTrial, seed: int,
                      generator: torch.Generator) -> dict[str, Any]:
        """RAM's draw for this trial, and one enqueued trial for each other value of the label it marginalises."""
        requested: list[dict[str, int]] = []
        self._estimator.estimate(self.distribution, lambda architecture: requested.append(architecture) or 0.0,
                                 generator=generator)
        study._storage.set_trial_system_attr(trial._trial_id, _SEED, seed)
        study._storage.set_trial_system_attr(trial._trial_id, _GROUP_SIZE, len(requested))
        self._record(study, trial)
        for other in requested[1:]:
            study.enqueue_trial(self._values(other), user_attrs={_GROUP: trial.number}, skip_if_exists=False)
        return self._values(requested[0])

    def _key(self, values: Mapping[str, Any]) -> tuple:
        return tuple(values.get(name) for name in self._space)

    def _held(self, study: optuna.Study, trial: FrozenTrial) -> set[tuple]:
        """The categorical values of every finished trial and of every running one but ``trial``."""
        running = {self._key(t.params) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if t.number != trial.number}
        return self._finished_keys | running

    def _unheld_draw(self, generator: torch.Generator, held: set[tuple]) -> dict[str, int] | None:
        """The first of ``redraws`` draws from the distribution (sampled at once) not in ``held``, or None."""
        draws = {name: torch.multinomial(p, self.redraws, replacement=True, generator=generator).tolist()
                 for name, p in self.distribution.probs().items()}
        for k in range(self.redraws):
            indices = {name: values[k] for name, values in draws.items()}
            if self._key(self._values(indices)) not in held:
                return indices
        return None

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    # -------------------------------------------------------------- the learnt distribution

    def _start(self) -> None:
        assert self._space is not None
        choices = {name: list(range(len(d.choices))) for name, d in self._space.items()}
        self.distribution = ArchitectureDistribution(choices)
        self._optimizer = arc_optimizer(self.distribution, self.learning_rate)
        self._estimator = self._spec.build({**self._defaults, **self.estimator_options}, 1)
        with torch.random.fork_rng(devices=[]):  # a RELAX surrogate's first weights: the same in every worker
            torch.manual_seed(self.seed)
            self._draw(torch.Generator().manual_seed(self.seed))

    def _draw(self, generator: torch.Generator) -> dict[str, int]:
        """The architecture the estimator would score first with this generator (its own draw)."""
        captured: dict[str, int] = {}

        class _Drawn(Exception):
            pass

        def capture(architecture):
            captured.update(architecture)
            raise _Drawn

        state = self._estimator.state_dict()
        try:
            self._estimator.estimate(self.distribution, capture, generator=generator)
        except _Drawn:
            pass
        self._estimator.load_state_dict(state)  # drawing must not move the estimator (RELAX's step count)
        return captured

    def _catch_up(self, study: optuna.Study) -> None:
        """Apply, in finishing order, every finished trial not applied yet (all of them after a restart)."""
        if self.distribution is None:
            self._start()
        finished = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                    if t.datetime_complete is not None and t.values is not None and len(t.values) == 1]
        finished.sort(key=lambda t: (t.datetime_complete, t.number))
        if [t.number for t in finished[:len(self._replayed)]] != self._replayed:
            self._reset()  # another worker's trial finished earlier than one we applied: replay from the start
            self._start()
        sign = 1.0 if study.direction == StudyDirection.MINIMIZE else -1.0
        for trial in finished[len(self._replayed):]:
            self._replayed.append(trial.number)
            self._finished_keys.add(self._key(trial.params))
            if self.estimator_name != "ram":
                self._apply(trial, sign * float(trial.values[0]))
                self._steps += 1
                continue
            if _GROUP not in trial.user_attrs and _GROUP_SIZE not in trial.system_attrs:
                continue  # not RAM's (the first trial, or one the user enqueued): no group to complete
            leader = trial.user_attrs.get(_GROUP, trial.number)
            group = self._groups.setdefault(leader, {})
            group[trial.number] = (trial, sign * float(trial.values[0]))
            first = group.get(leader)
            if first is not None and len(group) == first[0].system_attrs.get(_GROUP_SIZE, 1):
                self._apply_group(first[0], list(group.values()))
                del self._groups[leader]
                self._steps += 1

    def _apply_group(self, leader: FrozenTrial, members: list[tuple[FrozenTrial, float]]) -> None:
        """RAM's update from a finished group: its own estimate when the logits are still those it was drawn
        from, else its formula at today's probabilities for the label the group varied."""
        losses = {self._key(trial.params): loss for trial, loss in members}
        if not all(math.isfinite(loss) for loss in losses.values()):
            return
        if leader.system_attrs.get(_UPDATES) == self._steps:
            gradients = self._estimator.estimate(
                self.distribution, lambda architecture: losses.get(self._key(self._values(architecture)), math.nan),
                generator=torch.Generator().manual_seed(int(leader.system_attrs[_SEED])))
        else:
            varied = [name for name in self._space
                      if len({trial.params.get(name) for trial, _ in members}) > 1]
            gradients = {name: torch.zeros_like(p) for name, p in self.distribution.probs().items()}
            if len(varied) == 1:
                name = varied[0]
                p = self.distribution.probs()[name]
                by_value = {trial.params[name]: loss for trial, loss in members}
                values = torch.tensor([by_value[choice] for choice in self._space[name].choices], dtype=p.dtype)
                gradients[name] = len(self._space) * p * (values - (p * values).sum())
        if all(torch.isfinite(g).all() for g in gradients.values()):
            arc_update(self.distribution, self._optimizer, gradients)

    def _apply(self, trial: FrozenTrial, loss: float) -> None:
        if not math.isfinite(loss) or any(name not in trial.params for name in self._space):
            return
        indices = {name: self._space[name].choices.index(trial.params[name]) for name in self._space}
        seed, updates = trial.system_attrs.get(_SEED), trial.system_attrs.get(_UPDATES)
        if seed is not None and updates == self._steps:
            # The logits are those the trial was drawn from: the estimator replays its own draw.
            generator = torch.Generator().manual_seed(int(seed))
            gradients = self._estimator.estimate(
                self.distribution, lambda architecture: loss if architecture == indices else math.nan,
                generator=generator)
        else:  # drawn from an older distribution, or by another sampler: the score function at its parameters
            gradients = self._score_function(indices, loss)
        if all(torch.isfinite(g).all() for g in gradients.values()):
            arc_update(self.distribution, self._optimizer, gradients)

    def _score_function(self, indices: dict[str, int], loss: float) -> dict[str, torch.Tensor]:
        baseline = getattr(self._estimator, "baseline", None)
        advantage = loss - (baseline or 0.0)
        gradients = {}
        for name, p in self.distribution.probs().items():
            score = -p
            score[indices[name]] += 1.0
            gradients[name] = advantage * score
        self._estimator.update_baseline(loss)
        return gradients

    def sync(self, study: optuna.Study) -> dict[str, dict[Any, float]]:
        """Catch up with every trial of ``study`` finished so far; returns :meth:`probabilities`."""
        if self._space is None and not self.infer_relative_search_space(study, None):
            return {}
        self._catch_up(study)
        return self.probabilities()

    def probabilities(self) -> dict[str, dict[Any, float]]:
        """Each categorical parameter's learnt probabilities by choice (as of this worker's last catch-up)."""
        if self.distribution is None or self._space is None:
            return {}
        return {name: {self._space[name].choices[int(index)]: p for index, p in values.items()}
                for name, values in self.distribution.probs_by_value().items()}
