"""The architecture distribution: independent categoricals over a model space's labels."""

from __future__ import annotations

import heapq
import math
import warnings
from typing import Any, Hashable, Mapping, Sequence

import torch
from torch import nn

from .checks import integer

Architecture = dict  # label -> candidate value, as NNI's ``model_space.freeze`` takes it


class ArchitectureDistribution(nn.Module):
    """A product of independent categorical distributions, one per label of a model space.

    ``distribution.logits[label]`` is a 1-d :class:`torch.nn.Parameter` with one entry per candidate
    value, in the order the values were given. Samples are NNI sample dicts (label -> value), so they
    can drive a supernet or be passed to ``model_space.freeze``.

    Example:
        >>> import torch
        >>> from nas_estimators import ArchitectureDistribution
        >>> dist = ArchitectureDistribution({"a": ["x", "y", "z"], "b": [1, 2, 3, 4]})
        >>> _ = torch.manual_seed(0)
        >>> sample = dist.sample()
        >>> sorted(sample)
        ['a', 'b']
        >>> round(float(dist.log_prob(sample)), 4) == round(-math.log(12), 4)
        True
        >>> round(float(dist.entropy()), 4) == round(math.log(12), 4)
        True
    """

    def __init__(self, choices: Mapping[str, Sequence[Any]], *, wrapped: Sequence[str] = ()) -> None:
        super().__init__()
        if not choices:
            raise ValueError("choices: expected at least one label with candidate values, got none")
        self.labels: list[str] = list(choices)
        self.values: dict[str, list[Any]] = {}
        for label, values in choices.items():
            values = list(values)
            if len(values) == 0:
                raise ValueError(f"choices[{label!r}]: expected at least one candidate value, got none")
            self.values[label] = values
        # Labels whose NNI value is a one-element list (CategoricalMultiple with n_chosen=1).
        self.wrapped: frozenset[str] = frozenset(wrapped)
        unknown = self.wrapped.difference(self.labels)
        if unknown:
            raise ValueError(f"wrapped: labels {sorted(unknown)} are not among the choices")
        # ParameterDict keys may not contain '.', NNI labels may: keep our own key map.
        self._keys = {label: f"p{i}" for i, label in enumerate(self.labels)}
        self._logits = nn.ParameterDict(
            {self._keys[label]: nn.Parameter(torch.zeros(len(self.values[label]))) for label in self.labels}
        )
        self.logits = _LabelView(self)

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_model_space(cls, model_space: Any) -> "ArchitectureDistribution":
        """Build a uniform distribution over the categorical labels of an NNI model space."""
        from ._nni import categorical_choices

        choices, wrapped = categorical_choices(model_space)
        return cls(choices, wrapped=wrapped)

    # ----------------------------------------------------------------- parameters

    def parameters_by_label(self) -> dict[str, nn.Parameter]:
        return {label: self._logits[self._keys[label]] for label in self.labels}

    @property
    def device(self) -> torch.device:
        return next(iter(self._logits.values())).device

    def probs(self) -> dict[str, torch.Tensor]:
        """Per-label probabilities (detached), in the order of :attr:`values`."""
        return {label: torch.softmax(logit.detach(), dim=0) for label, logit in self.parameters_by_label().items()}

    def probs_by_value(self) -> dict[str, dict[Any, float]]:
        """Per-label probabilities keyed by candidate value, as plain floats (for logs and reports)."""
        return {
            label: {_hashable(value): float(p) for value, p in zip(self.values[label], probs.tolist())}
            for label, probs in self.probs().items()
        }

    def probabilities(self) -> dict[str, dict[Any, float]]:
        """Deprecated name of :meth:`probs_by_value` (it clashed with :meth:`probs`)."""
        warnings.warn("ArchitectureDistribution.probabilities() is now probs_by_value()", DeprecationWarning,
                      stacklevel=2)
        return self.probs_by_value()

    @property
    def num_architectures(self) -> int:
        return math.prod(len(v) for v in self.values.values())

    # ----------------------------------------------------------------- samples <-> indices

    def value_of(self, label: str, index: int) -> Any:
        value = self.values[label][index]
        return [value] if label in self.wrapped else value

    def index_of(self, label: str, value: Any) -> int:
        if label not in self.values:
            raise KeyError(f"unknown label {label!r}; labels are {self.labels}")
        if label in self.wrapped:
            if not isinstance(value, (list, tuple)) or len(value) != 1:
                raise ValueError(f"label {label!r}: expected a one-element list, got {value!r}")
            value = value[0]
        try:
            return self.values[label].index(value)
        except ValueError:
            raise ValueError(f"label {label!r}: {value!r} is not a candidate; candidates are {self.values[label]}") from None

    def to_architecture(self, indices: Mapping[str, int]) -> Architecture:
        return {label: self.value_of(label, int(indices[label])) for label in self.labels}

    def to_indices(self, architecture: Mapping[str, Any]) -> dict[str, int]:
        missing = [label for label in self.labels if label not in architecture]
        if missing:
            raise KeyError(f"architecture is missing labels {missing}")
        return {label: self.index_of(label, architecture[label]) for label in self.labels}

    # ----------------------------------------------------------------- distribution API

    def sample_indices(self, generator: torch.Generator | None = None) -> dict[str, int]:
        # One multinomial call per distinct candidate count keeps this cheap for spaces with many labels.
        indices: dict[str, int] = {}
        by_size: dict[int, list[str]] = {}
        for label in self.labels:
            by_size.setdefault(len(self.values[label]), []).append(label)
        params = self.parameters_by_label()
        for labels in by_size.values():
            probs = torch.softmax(torch.stack([params[label].detach() for label in labels]), dim=-1)
            drawn = torch.multinomial(probs, 1, generator=generator).view(-1).tolist()
            indices.update(zip(labels, drawn))
        return {label: indices[label] for label in self.labels}

    def sample(self, generator: torch.Generator | None = None) -> Architecture:
        """Draw one architecture (label -> candidate value)."""
        return self.to_architecture(self.sample_indices(generator))

    def uniform_indices(self, generator: torch.Generator | None = None) -> dict[str, int]:
        """Indices of an architecture drawn uniformly from the whole space, whatever the logits."""
        sizes = torch.tensor([len(self.values[label]) for label in self.labels], dtype=torch.float64)
        drawn = (torch.rand(len(self.labels), generator=generator, dtype=torch.float64) * sizes).long()
        return {label: min(int(index), len(self.values[label]) - 1) for label, index in zip(self.labels, drawn)}

    def log_prob(self, architecture: Mapping[str, Any]) -> torch.Tensor:
        """Log-probability of an architecture; differentiable with respect to the logits."""
        indices = self.to_indices(architecture)
        params = self.parameters_by_label()
        return torch.stack([torch.log_softmax(params[label], dim=0)[indices[label]] for label in self.labels]).sum()

    def entropy(self) -> torch.Tensor:
        """Entropy of the joint distribution (the sum of the labels' entropies); differentiable."""
        total = []
        for logit in self.parameters_by_label().values():
            log_p = torch.log_softmax(logit, dim=0)
            total.append(-(log_p.exp() * log_p).sum())
        return torch.stack(total).sum()

    def mode_indices(self) -> dict[str, int]:
        return {label: int(torch.argmax(logit.detach())) for label, logit in self.parameters_by_label().items()}

    def mode(self) -> Architecture:
        """The most probable architecture (each label's argmax; the first value wins a tie)."""
        return self.to_architecture(self.mode_indices())

    def top_k(self, k: int) -> list[tuple[Architecture, float]]:
        """The ``k`` most probable architectures with their probabilities, best first, exactly.

        Labels are independent, so the ranking is a best-first search over "which rank each label
        takes" (as in k-best assignments): no enumeration of the space. Ties break towards lower
        per-label ranks, so the order is deterministic. ``k`` larger than the space is an error.
        """
        k = integer("k", k)
        if k > self.num_architectures:
            raise ValueError(f"k: the space holds {self.num_architectures} architectures, asked for {k}")
        sorted_log_probs, sorted_indices = [], []
        for logit in self.parameters_by_label().values():
            log_p = torch.log_softmax(logit.detach().double(), dim=0)
            order = sorted(range(len(log_p)), key=lambda i: (-float(log_p[i]), i))
            sorted_indices.append(order)
            sorted_log_probs.append([float(log_p[i]) for i in order])
        start = tuple(0 for _ in self.labels)
        heap = [(-sum(lp[0] for lp in sorted_log_probs), start)]
        seen = {start}
        result: list[tuple[Architecture, float]] = []
        while heap and len(result) < k:
            neg_log_p, ranks = heapq.heappop(heap)
            indices = {label: sorted_indices[i][r] for i, (label, r) in enumerate(zip(self.labels, ranks))}
            result.append((self.to_architecture(indices), math.exp(-neg_log_p)))
            for position, rank in enumerate(ranks):
                if rank + 1 < len(sorted_log_probs[position]):
                    successor = ranks[:position] + (rank + 1,) + ranks[position + 1:]
                    if successor not in seen:
                        seen.add(successor)
                        step = sorted_log_probs[position][rank] - sorted_log_probs[position][rank + 1]
                        heapq.heappush(heap, (neg_log_p + step, successor))
        return result

    def extra_repr(self) -> str:
        return f"labels={len(self.labels)}, architectures={self.num_architectures}"


class _LabelView(Mapping):
    """``distribution.logits[label]``: the label's logit parameter."""

    def __init__(self, distribution: ArchitectureDistribution) -> None:
        self._distribution = distribution

    def __getitem__(self, label: str) -> nn.Parameter:
        try:
            key = self._distribution._keys[label]
        except KeyError:
            raise KeyError(f"unknown label {label!r}; labels are {self._distribution.labels}") from None
        return self._distribution._logits[key]

    def __iter__(self):
        return iter(self._distribution.labels)

    def __len__(self) -> int:
        return len(self._distribution.labels)


def _hashable(value: Any) -> Hashable:
    return tuple(value) if isinstance(value, list) else value


def architecture_key(architecture: Mapping[str, Any]) -> str:
    """A stable text key of an architecture (label order and value types aside): for caches of per-cell scores."""
    return repr(sorted((str(label), repr(value)) for label, value in architecture.items()))
