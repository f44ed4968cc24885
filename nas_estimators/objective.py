"""What the estimators minimise: a weighted sum of named terms, each a score of a sampled architecture.

The estimators need no gradient of the objective, only its value for a sampled architecture, so any
score can enter it. Today's terms:

* ``supernet`` (:class:`SupernetLoss`): the sampled path's validation loss with the shared weights, on
  the step's architecture batch (the only term before objectives existed, and the default; beside
  other terms it is standardised by the reference sample's losses on 512 held-out images);
* ``synflow``, ``naswot``, ``params``, ``flops`` (:class:`TrainingFreeTerm`): scores of the path in a
  never-trained copy of the supernet on one fixed batch (:mod:`~nas_estimators.training_free`),
  cached per architecture. Each is standardised against a reference sample of uniformly drawn
  architectures (``-(score - median) / (IQR / 1.349)``, clamped to +-10), so that one scale does not
  dominate and higher scores mean a lower loss.

The objective is a fixed function of the architecture at fixed weights (the reference sample and the
scoring copy are drawn once, seeded), so every estimator stays unbiased for its expectation.

Example:
    >>> obj = Objective.parse("supernet=1,params=0.5")
    >>> [(term.name, term.weight) for term in obj.terms]
    [('supernet', 1.0), ('params', 0.5)]
    >>> obj.weights()
    {'supernet': 1.0, 'params': 0.5}
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch
from torch import nn

from . import _nni, training_free
from .distribution import Architecture, ArchitectureDistribution, architecture_key
from .estimators import host_values

__all__ = ["ObjectiveTerm", "SupernetLoss", "TrainingFreeTerm", "Objective", "ScoringNetwork", "TERMS",
           "DEFAULT_OBJECTIVE", "REFERENCE_SIZE", "register", "unregister", "parse_weights"]

#: The objective when none is given: the supernet's validation loss alone.
DEFAULT_OBJECTIVE = {"supernet": 1.0}
#: Uniformly drawn architectures whose training-free scores set each term's location and scale.
REFERENCE_SIZE = 64
#: Images in the fixed batch the training-free terms score on.
SCORING_IMAGES = 64
#: Held-out images on which the reference sample calibrates the supernet term beside others: one
#: batch of 64 adds its own noise to the spread between architectures, and the weights would then
#: depend on the batch size.
CALIBRATION_IMAGES = 512
_CLAMP = 10.0


class ScoringNetwork:
    """A never-trained copy of a supernet, initialised from ``seed``, and one fixed batch.

    Training-free terms score architectures here: the copy is set to the path, then scored.
    """

    def __init__(self, supernet: nn.Module, inputs: torch.Tensor, seed: int = 0) -> None:
        self.network = copy.deepcopy(supernet)
        with torch.random.fork_rng(devices=[]):  # the search's own random stream is left as it was
            torch.manual_seed(seed)
            for module in self.network.modules():
                if hasattr(module, "reset_parameters") and module is not self.network:
                    module.reset_parameters()
        self.network.requires_grad_(False)
        self.inputs = inputs.detach().to(next(self.network.parameters()).device, torch.float32)
        self._modules = _nni.supernet_modules(self.network)

    def apply(self, architecture: Architecture) -> None:
        """Set the copy to ``architecture``'s path."""
        _nni.apply_sample(self._modules, architecture)

    def score(self, architecture: Architecture, function: Callable[[nn.Module, torch.Tensor], float]) -> float:
        self.apply(architecture)
        return function(self.network, self.inputs)


class ObjectiveTerm:
    """One named term: ``value(architecture)`` (lower is better) enters the objective times ``weight``.

    ``cached`` terms are computed once per architecture. ``seconds`` counts every second spent on the
    term (its reference sample too): it is part of the search's time.
    """

    name: ClassVar[str] = "term"
    cached: ClassVar[bool] = True
    needs_scoring_network: ClassVar[bool] = False

    def __init__(self, weight: float = 1.0) -> None:
        weight = float(weight)
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"objective: the weight of {self.name} must be a finite number >= 0, got {weight!r}")
        self.weight = weight
        self.seconds = 0.0
        self.evaluations = 0

    def state_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "evaluations": self.evaluations}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.seconds = float(state.get("seconds", 0.0))
        self.evaluations = int(state.get("evaluations", 0))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weight={self.weight})"


class SupernetLoss(ObjectiveTerm):
    """The sampled path's loss on the step's architecture batch with the shared weights (not cached).

    Alone it enters as it is. Beside other terms it is standardised like them, by the median and
    spread of the reference sample's losses on :data:`CALIBRATION_IMAGES` held-out images (:meth:`calibrate`).
    """

    name = "supernet"
    cached = False

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.location, self.scale = 0.0, 1.0
        self.calibrated = False

    def calibrate(self, losses: Sequence[float]) -> None:
        self.location, self.scale = _robust_location_scale(losses)
        self.calibrated = True

    def standardise(self, loss: Any) -> Any:
        return (loss - self.location) / self.scale if self.calibrated else loss

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "location": self.location, "scale": self.scale, "calibrated": self.calibrated}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.location, self.scale = float(state.get("location", 0.0)), float(state.get("scale", 1.0))
        self.calibrated = bool(state.get("calibrated", False))


def _robust_location_scale(values: Sequence[float]) -> tuple[float, float]:
    """Median and interquartile range / 1.349 (the standard deviation of a normal sample) of the finite values."""
    finite = torch.tensor([v for v in values if math.isfinite(v)] or [0.0], dtype=torch.float64)
    location = float(finite.median())
    quartiles = torch.quantile(finite, torch.tensor([0.25, 0.75], dtype=torch.float64))
    spread = float(quartiles[1] - quartiles[0]) / 1.349
    if spread <= 0:
        spread = float(finite.std()) if len(finite) > 1 and float(finite.std()) > 0 else 1.0
    return location, spread


class TrainingFreeTerm(ObjectiveTerm):
    """A training-free score, standardised against a reference sample and cached per architecture."""

    needs_scoring_network = True
    score_function: ClassVar[Callable[[nn.Module, torch.Tensor], float]]

    def __init__(self, weight: float = 1.0, reference_size: int = REFERENCE_SIZE) -> None:
        super().__init__(weight)
        self.reference_size = int(reference_size)
        self.cache: dict[str, float] = {}  # key of the architecture -> raw score
        self.location: float | None = None
        self.scale: float = 1.0
        self._network: ScoringNetwork | None = None

    def bind(self, network: ScoringNetwork, distribution: ArchitectureDistribution, seed: int = 0) -> None:
        """Score on ``network``; draw the reference sample (seeded) unless a checkpoint already set it."""
        self._network = network
        if self.location is not None:
            return
        generator = torch.Generator().manual_seed(seed)
        raw = [self.raw(distribution.to_architecture(distribution.uniform_indices(generator)))
               for _ in range(self.reference_size)]
        self.location, self.scale = _robust_location_scale(raw)

    def raw(self, architecture: Architecture) -> float:
        """The unstandardised score (higher is better), from the cache when it was scored before."""
        key = _key(architecture)
        if key not in self.cache:
            if self._network is None:
                raise RuntimeError(f"objective term {self.name} is not bound to a scoring network yet")
            started = time.perf_counter()
            self.cache[key] = float(self._network.score(architecture, type(self).score_function))
            self.seconds += time.perf_counter() - started
            self.evaluations += 1
        return self.cache[key]

    def value(self, architecture: Architecture) -> float:
        raw = self.raw(architecture)
        if math.isnan(raw):
            return _CLAMP
        standard = (raw - (self.location or 0.0)) / self.scale
        return float(min(max(-standard, -_CLAMP), _CLAMP))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "cache": dict(self.cache), "location": self.location, "scale": self.scale}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.cache = dict(state.get("cache", {}))
        self.location = state.get("location")
        self.scale = float(state.get("scale", 1.0))


class Synflow(TrainingFreeTerm):
    name = "synflow"
    score_function = staticmethod(training_free.synflow)


class Naswot(TrainingFreeTerm):
    name = "naswot"
    score_function = staticmethod(training_free.naswot)


class Params(TrainingFreeTerm):
    """More parameters score better: on NAS-Bench-201 size alone ranks cells about as well as any proxy."""

    name = "params"
    score_function = staticmethod(training_free.parameter_count)


class Flops(TrainingFreeTerm):
    name = "flops"
    score_function = staticmethod(training_free.flops)


class NtkCondition(TrainingFreeTerm):
    """A better-conditioned tangent kernel at initialisation scores better (TE-NAS's trainability)."""

    name = "ntk"
    score_function = staticmethod(training_free.ntk_condition)


#: The objective terms by name (``--objective NAME=WEIGHT,...``); :func:`register` adds one.
TERMS: dict[str, type[ObjectiveTerm]] = {term.name: term for term in (SupernetLoss, Synflow, Naswot, Params, Flops,
                                                                       NtkCondition)}


def register(term: type[ObjectiveTerm]) -> type[ObjectiveTerm]:
    """Make ``term`` (an :class:`ObjectiveTerm` subclass with a unique ``name``) available by name everywhere.

    A training-free score is a :class:`TrainingFreeTerm` with a ``score_function(network, inputs)``
    (higher is better); it is cached, standardised and timed like the built-in ones::

        class Depth(TrainingFreeTerm):
            name = "depth"
            score_function = staticmethod(lambda network, inputs: float(count_convolutions(network, inputs)))

        objective.register(Depth)   # then: nas-estimators search --objective supernet=1,depth=0.5
    """
    if not (isinstance(term, type) and issubclass(term, ObjectiveTerm)):
        raise TypeError(f"register: expected an ObjectiveTerm subclass, got {term!r}")
    if term.name in TERMS and TERMS[term.name] is not term:
        raise ValueError(f"register: an objective term named {term.name!r} exists already")
    TERMS[term.name] = term
    return term


def unregister(name: str) -> None:
    TERMS.pop(name, None)


_key = architecture_key  # the cache's key: checkpoints hold caches keyed by it


class Objective:
    """The weighted sum of ``terms`` that the estimators minimise.

    :meth:`loss_fn` turns the supernet's loss function into the objective's; after each estimate,
    :meth:`step_values` holds the sampled architecture's value of every term (``objective/NAME``).
    """

    def __init__(self, terms: Sequence[ObjectiveTerm]) -> None:
        if not terms:
            raise ValueError("objective: expected at least one term")
        names = [term.name for term in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"objective: a term is named twice in {','.join(names)}")
        if not any(term.weight > 0 for term in terms):
            raise ValueError("objective: at least one term needs a positive weight")
        self.terms = list(terms)
        self._last: dict[str, float] = {}
        self._bound = False
        self.inputs: torch.Tensor | None = None  # the scoring batch, kept in checkpoints

    @classmethod
    def from_weights(cls, weights: Mapping[str, float] | None = None) -> "Objective":
        """The objective of ``{name: weight}`` (default: :data:`DEFAULT_OBJECTIVE`)."""
        weights = dict(DEFAULT_OBJECTIVE if weights is None else weights)
        unknown = [name for name in weights if name not in TERMS]
        if unknown:
            raise ValueError(f"objective: unknown term {unknown[0]!r}; expected names from {', '.join(TERMS)}")
        return cls([TERMS[name](weight) for name, weight in weights.items()])

    @classmethod
    def parse(cls, text: str) -> "Objective":
        """``"supernet=1,synflow=0.5"`` (a name alone weighs 1)."""
        return cls.from_weights(parse_weights(text))

    def weights(self) -> dict[str, float]:
        return {term.name: term.weight for term in self.terms}

    @property
    def uses_supernet(self) -> bool:
        return any(isinstance(term, SupernetLoss) and term.weight > 0 for term in self.terms)

    @property
    def needs_scoring_network(self) -> bool:
        return any(term.needs_scoring_network for term in self.terms)

    @property
    def bound(self) -> bool:
        supernet_term = self._supernet_term()
        calibrating = supernet_term is not None and len([t for t in self.terms if t.weight > 0]) > 1
        return self._bound or not (self.needs_scoring_network or calibrating)

    def bind(self, supernet: nn.Module | None, inputs: torch.Tensor | None, distribution: ArchitectureDistribution,
             seed: int = 0, supernet_loss: Callable[[Architecture], Any] | None = None) -> None:
        """Build the scoring copy of ``supernet`` on ``inputs`` and the terms' reference samples (seeded).

        A checkpoint's scoring batch (:meth:`load_state_dict`) wins over ``inputs``: a resumed search
        scores new architectures as the interrupted one did.
        """
        if self.needs_scoring_network:
            if self.inputs is None:
                self.inputs = inputs[:SCORING_IMAGES].detach().cpu().clone()
            network = ScoringNetwork(supernet, self.inputs, seed)
            for term in self.terms:
                if isinstance(term, TrainingFreeTerm):
                    term.bind(network, distribution, seed)
        supernet_term = self._supernet_term()
        combined = sum(term.weight > 0 for term in self.terms) > 1
        if supernet_term is not None and combined and not supernet_term.calibrated and supernet_loss is not None:
            started = time.perf_counter()
            generator = torch.Generator().manual_seed(seed)
            draws = [distribution.to_architecture(distribution.uniform_indices(generator))
                     for _ in range(REFERENCE_SIZE)]
            supernet_term.calibrate(host_values([supernet_loss(architecture) for architecture in draws]))
            supernet_term.seconds += time.perf_counter() - started
        self._bound = True

    def _supernet_term(self) -> SupernetLoss | None:
        return next((term for term in self.terms if isinstance(term, SupernetLoss) and term.weight > 0), None)

    def loss_fn(self, supernet_loss: Callable[[Architecture], Any] | None) -> Callable[[Architecture], Any]:
        """The objective's loss function; ``supernet_loss`` scores the ``supernet`` term (may stay lazy on a device)."""
        if not self.bound:
            raise RuntimeError("objective: bind() the training-free terms to a scoring network first")
        first = [True]

        def loss(architecture: Architecture) -> Any:
            total: Any = None  # the supernet's loss alone stays the very tensor it was: no extra kernel a step
            values = {}
            for term in self.terms:
                if isinstance(term, SupernetLoss):
                    if term.weight == 0:
                        continue
                    if supernet_loss is None:
                        raise RuntimeError("objective: the supernet term needs a supernet loss")
                    started = time.perf_counter()
                    value = term.standardise(supernet_loss(architecture))
                    term.seconds += time.perf_counter() - started
                    term.evaluations += 1
                else:
                    value = term.value(architecture)
                    values[f"objective/{term.name}"] = value
                weighted = value if term.weight == 1.0 else term.weight * value
                total = weighted if total is None else total + weighted
            if first[0]:  # the estimators score their sampled architecture first
                self._last, first[0] = values, False
            return 0.0 if total is None else total

        return loss

    def step_values(self) -> dict[str, float]:
        """The sampled architecture's training-free term values of the last :meth:`loss_fn` use."""
        return dict(self._last)

    def seconds(self) -> dict[str, float]:
        """Seconds spent on each term so far."""
        return {term.name: term.seconds for term in self.terms}

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.weights(), "terms": {term.name: term.state_dict() for term in self.terms},
                "inputs": self.inputs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("weights") != self.weights():
            raise ValueError(f"the checkpoint's objective {state.get('weights')} is not this search's {self.weights()}")
        for term in self.terms:
            term.load_state_dict(state["terms"].get(term.name, {}))
        self.inputs = state.get("inputs")

    def __repr__(self) -> str:
        return f"Objective({', '.join(map(repr, self.terms))})"


def parse_weights(text: str) -> dict[str, float]:
    """``"supernet=1,synflow=0.5"`` as ``{"supernet": 1.0, "synflow": 0.5}`` (ValueError naming a bad part)."""
    weights: dict[str, float] = {}
    for part in filter(None, (piece.strip() for piece in str(text).split(","))):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in TERMS:
            raise ValueError(f"objective: unknown term {name!r}; expected NAME[=WEIGHT],... with names from "
                             f"{', '.join(TERMS)}")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"objective: the weight of {name} must be a number, got {weight!r}") from None
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"objective: the weight of {name} must be a finite number >= 0, got {weight!r}")
        weights[name] = value
    if not weights:
        raise ValueError(f"objective: expected NAME[=WEIGHT],... with names from {', '.join(TERMS)}, got {text!r}")
    if not any(weights.values()):
        raise ValueError("objective: at least one term needs a positive weight")
    return weights
