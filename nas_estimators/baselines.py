"""NNI's own one-shot strategies as baselines, run by the same search loop as the estimators.

``make_oneshot_baseline("nni-darts")`` is NNI's ``DARTS`` strategy, unchanged in what it computes,
whose Lightning module also offers the read-only views :class:`~nas_estimators.search.SearchRecorder`
reads from our own module: ``distribution`` (entropy, probabilities and mode from NNI's
``export_probs()``/``export()``), ``estimator.diagnostics``, ``skipped_steps`` and ``_last_validation``.
So ``run_search`` (history.csv, probabilities.csv, epoch listeners, checkpoints) and ``bench`` treat
NNI's strategies and ours alike.

What the views mean for NNI's strategies:

* ``entropy``/``probabilities``: of the distribution NNI exports (DARTS and GumbelDARTS: the softmax of
  their logits, Gumbel noise left out; on the DARTS space NNI exports one distribution per cell edge,
  not per space label). ``nni-random`` samples uniformly: the uniform distribution over the space.
* ``mode``: NNI's ``export()``: the argmax for DARTS/GumbelDARTS; for ``nni-random`` NNI's export is
  **a random architecture** (NNI says so itself), drawn once per training step seen.
* ``val_loss``/``val_acc``: of the forward pass the strategy's architecture step makes on the
  validation batch (DARTS/GumbelDARTS: the weighted supernet); ``nni-random`` has no such step (NaN).
* ``forward_evaluations``: forward passes of the architecture step (1 for DARTS/GumbelDARTS, 0 for
  ``nni-random``), as for our estimators, where the weight step's own forward is not counted either.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from . import _nni

#: Command-line name -> NNI strategy class name.
ONESHOT_BASELINES: dict[str, str] = {
    "nni-darts": "DARTS", "nni-gumbel": "GumbelDARTS", "nni-random": "RandomOneShot", "nni-enas": "ENAS",
}
# Why a baseline cannot run, when it cannot. NNI 3.0's ENAS module expects Lightning 1.x's (batch, mode)
# or 2.0's (batch, index, loader) from its sequential loader; Lightning 2.6 hands it the bare batch, so
# an (images, labels) batch reads as (batch=images, mode=labels) and every step takes the controller
# branch. Checked with tianshou 0.4.11, gym 0.26.2, pytorch-lightning 2.6.6.
_UNAVAILABLE = {"nni-enas": "NNI 3.0's ENAS does not run with pytorch-lightning 2.6 (its training_step misreads "
                            "the batches of its sequential loader)"}


def available_oneshot_baselines() -> tuple[str, ...]:
    """The baselines that can run here."""
    return tuple(name for name in ONESHOT_BASELINES if name not in _UNAVAILABLE)


def check_oneshot_baseline(name: str) -> None:
    """Raise ``ValueError`` (one line) unless ``name`` is a baseline that can run here."""
    if name not in ONESHOT_BASELINES:
        raise ValueError(f"NNI baseline: expected one of {', '.join(ONESHOT_BASELINES)}, got {name!r}")
    if name in _UNAVAILABLE:
        raise ValueError(f"{name}: {_UNAVAILABLE[name]}")


class ExportedDistribution:
    """A snapshot of what an NNI one-shot module exports, with the distribution interface search.py reads."""

    def __init__(self, probabilities: Mapping[str, Mapping[Any, float]], mode: Mapping[str, Any],
                 num_architectures: int) -> None:
        # NNI's labels are a str subclass; plain strings keep checkpoints loadable with weights_only=True.
        self._probabilities = {str(label): dict(values) for label, values in probabilities.items()}
        self._mode = {str(label): value for label, value in mode.items()}
        self.num_architectures = int(num_architectures)

    def probabilities(self) -> dict[str, dict[Any, float]]:
        return {label: dict(values) for label, values in self._probabilities.items()}

    def entropy(self) -> torch.Tensor:
        total = 0.0
        for values in self._probabilities.values():
            total -= sum(p * math.log(p) for p in values.values() if p > 0)
        return torch.tensor(total, dtype=torch.float64)

    def mode(self) -> dict[str, Any]:
        return dict(self._mode)

    def top_k(self, k: int) -> list[tuple[dict[str, Any], float]]:
        """Only the export: NNI's one-shot strategies rank no other architecture (as their ``list_models``)."""
        probability = 1.0
        for label, value in self._mode.items():
            values = self._probabilities.get(label, {})
            try:
                probability *= values[value]
            except (KeyError, TypeError):  # a label NNI exports under another name, or a list value
                probability = float("nan")
        return [(self.mode(), probability)][: max(0, int(k))]


class _Diagnostics:
    """Stands in for an estimator: the recorder reads ``diagnostics`` (and checkpoints read ``name``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.diagnostics: dict[str, float] = {}


class _RecorderViews:
    """Mixed into NNI's one-shot Lightning module class: views of it that the search recorder reads."""

    def _attach_views(self, name: str) -> None:
        self.estimator = _Diagnostics(name)
        self.skipped_steps = 0
        self._last_validation: dict[str, Any] = {}
        self._validation_batch: Any = None
        self._validation_forwards = 0
        self._steps_seen = 0
        self._snapshot: tuple[int, ExportedDistribution] | None = None
        self._num_architectures: int | None = None
        self.training_module.register_forward_hook(self._record_validation)

    def training_step(self, batch, batch_idx):
        self._last_validation = {}
        self._validation_forwards = 0
        # DARTS-like strategies get {"train": batch, "val": batch}; the architecture step runs on "val".
        self._validation_batch = batch.get("val") if isinstance(batch, Mapping) else None
        output = super().training_step(batch, batch_idx)
        self._steps_seen += 1
        self.estimator.diagnostics = {"forward_evaluations": float(self._validation_forwards)}
        return output

    def _record_validation(self, module, args, output) -> None:
        batch = self._validation_batch
        if batch is None or not args or args[0] is not batch[0] or not isinstance(output, torch.Tensor):
            return
        self._validation_forwards += 1
        if not self._last_validation:  # kept on the device: the recorder reads them once a step
            logits, targets = output.detach().float(), batch[1]
            self._last_validation = {"val_loss": F.cross_entropy(logits, targets),
                                     "val_acc": (logits.argmax(1) == targets).float().mean()}

    @property
    def distribution(self) -> ExportedDistribution:
        """What NNI exports now; one snapshot per training step, so a random export stays one architecture."""
        if self._snapshot is None or self._snapshot[0] != self._steps_seen:
            self._snapshot = (self._steps_seen, self._export())
        return self._snapshot[1]

    def _export(self) -> ExportedDistribution:
        choices, _ = _nni.categorical_choices(self.model)
        if self._num_architectures is None:
            self._num_architectures = math.prod(len(values) for values in choices.values())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # RandomOneShot warns that its export is arbitrary
            mode = self.export()
            probabilities = _nni.noiseless_export_probs(self)
        if not probabilities:  # RandomOneShot exports none: it samples uniformly
            probabilities = {label: {_key(v): 1.0 / len(values) for v in values} for label, values in choices.items()}
        return ExportedDistribution(probabilities, mode, self._num_architectures)


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@functools.lru_cache(maxsize=None)
def _with_views(module_class: type) -> type:
    return type(module_class.__name__, (_RecorderViews, module_class), {"__module__": __name__})


class _BaselineStrategy:
    """Mixed into an NNI one-shot strategy class: its module gets the recorder views."""

    baseline_name = "nni"

    def configure_oneshot_module(self, training_module):
        module = super().configure_oneshot_module(training_module)
        # NNI builds its module with its own arguments; retyping the instance to a subclass that only
        # adds the views above leaves what NNI computes untouched and needs no copy of NNI's constructors.
        module.__class__ = _with_views(type(module))
        module._attach_views(self.baseline_name)
        self._search_module = module
        return module

    @property
    def distribution(self) -> ExportedDistribution:
        module = getattr(self, "_search_module", None)
        if module is None:
            raise RuntimeError("the strategy has no module yet: run it (or mutate_evaluator and evaluate) first")
        return module.distribution


@functools.lru_cache(maxsize=None)
def _strategy_class(name: str) -> type:
    nni_class = _nni.oneshot_strategy_class(ONESHOT_BASELINES[name])
    return type(nni_class.__name__, (_BaselineStrategy, nni_class),
                {"__module__": __name__, "baseline_name": name})


def make_oneshot_baseline(name: str, *, gradient_clip_val: float | None = None, warmup_epochs: int = 0) -> Any:
    """NNI's one-shot strategy ``name`` (``nni-darts``, ``nni-gumbel``, ``nni-random``).

    Every other hyperparameter is NNI's default (DARTS: Adam with learning rate 3e-4 on the logits;
    GumbelDARTS: temperature 1 -> 0.33), as a user of NNI gets it.
    """
    check_oneshot_baseline(name)
    strategy_class = _strategy_class(name)
    if name in ("nni-darts", "nni-gumbel"):
        return strategy_class(gradient_clip_val=gradient_clip_val, warmup_epochs=warmup_epochs)
    return strategy_class()
