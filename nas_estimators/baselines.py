"""NNI's own one-shot strategies as baselines, run by the same search loop as the estimators.

``make_oneshot_baseline("nni-darts")`` is NNI's ``DARTS`` strategy, unchanged in what it computes. A
:class:`BaselineView` observes its Lightning module from outside (a callback and a forward hook) and offers
what :class:`~nas_estimators.recorder.SearchModule` promises: ``distribution`` (entropy, probabilities and
mode from NNI's ``export_probs()``/``export()``), ``step_values()`` and ``skipped_steps``. So ``run_search``
(the run folder's history and probabilities, epoch listeners, checkpoints) and ``bench`` treat NNI's strategies and
ours alike.

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

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from . import _nni, methods

def check_oneshot_baseline(name: str) -> None:
    """Raise ``ValueError`` (one line) unless ``name`` is an NNI one-shot baseline that can run here."""
    try:
        methods.check(name, "nni-oneshot")
    except ValueError as error:
        raise ValueError(f"NNI baseline: {error}" if name not in methods.names("nni-oneshot") else str(error)) from None


class ExportedDistribution:
    """A snapshot of what an NNI one-shot module exports, with the distribution interface search.py reads."""

    def __init__(self, probabilities: Mapping[str, Mapping[Any, float]], mode: Mapping[str, Any],
                 num_architectures: int) -> None:
        # NNI's labels are a str subclass; plain strings keep checkpoints loadable with weights_only=True.
        self._probabilities = {str(label): dict(values) for label, values in probabilities.items()}
        self._mode = {str(label): value for label, value in mode.items()}
        self.num_architectures = int(num_architectures)

    def probs_by_value(self) -> dict[str, dict[Any, float]]:
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


class BaselineView(pl.Callback):
    """The :class:`~nas_estimators.recorder.SearchModule` of one of NNI's one-shot modules, observed from outside.

    A Lightning callback (so it sees each step's batches) plus a forward hook on the network (so it sees the
    architecture step's forward pass on the validation batch); NNI's module itself is not changed.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.module: Any = None
        self.skipped_steps = 0  # NNI's strategies skip no step
        self.diagnostics: dict[str, float] = {}
        self._last_validation: dict[str, Any] = {}
        self._validation_batch: Any = None
        self._validation_forwards = 0
        self._steps_seen = 0
        self._snapshot: tuple[int, ExportedDistribution] | None = None
        self._num_architectures: int | None = None

    def bind(self, module: Any) -> None:
        """Observe ``module`` (NNI's one-shot Lightning module, once the strategy has built it)."""
        self.module = module
        module.training_module.register_forward_hook(self._record_validation)

    @property
    def training_module(self) -> Any:
        return self.module.training_module

    def step_values(self) -> dict[str, Any]:
        return {**self._last_validation, **self.diagnostics}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._last_validation = {}
        self._validation_forwards = 0
        # DARTS-like strategies get {"train": batch, "val": batch}; the architecture step runs on "val".
        self._validation_batch = batch.get("val") if isinstance(batch, Mapping) else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._steps_seen += 1
        self.diagnostics = {"forward_evaluations": float(self._validation_forwards)}

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
        choices, _ = _nni.categorical_choices(self.module.model)
        if self._num_architectures is None:
            self._num_architectures = math.prod(len(values) for values in choices.values())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # RandomOneShot warns that its export is arbitrary
            mode = self.module.export()
            probabilities = _nni.noiseless_export_probs(self.module)
        if not probabilities:  # RandomOneShot exports none: it samples uniformly
            probabilities = {label: {_key(v): 1.0 / len(values) for v in values} for label, values in choices.items()}
        return ExportedDistribution(probabilities, mode, self._num_architectures)


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class _BaselineStrategy:
    """Mixed into an NNI one-shot strategy class: a :class:`BaselineView` observes the module NNI builds."""

    baseline_name = "nni"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.view = BaselineView(self.baseline_name)
        self._search_module = None

    def configure_oneshot_module(self, training_module):
        module = super().configure_oneshot_module(training_module)
        self.view.bind(module)
        self._search_module = module
        return module

    @property
    def callbacks(self) -> list[pl.Callback]:
        """Lightning callbacks the search's trainer must run (before the recorder, which reads the view)."""
        return [self.view]

    @property
    def search_module(self) -> BaselineView:
        if self._search_module is None:
            raise RuntimeError("the strategy has no module yet: run it (or mutate_evaluator and evaluate) first")
        return self.view

    @property
    def distribution(self) -> ExportedDistribution:
        return self.search_module.distribution


@functools.lru_cache(maxsize=None)
def _strategy_class(name: str) -> type:
    nni_class = _nni.oneshot_strategy_class(methods.get(name).nni_class)
    return type(nni_class.__name__, (_BaselineStrategy, nni_class),
                {"__module__": __name__, "baseline_name": name})


def make_oneshot_baseline(name: str, *, gradient_clip_val: float | None = None, weights_only_epochs: int = 0) -> Any:
    """NNI's one-shot strategy ``name`` (``nni-darts``, ``nni-gumbel``, ``nni-random``).

    Every other hyperparameter is NNI's default (DARTS: Adam with learning rate 3e-4 on the logits;
    GumbelDARTS: temperature 1 -> 0.33), as a user of NNI gets it.
    """
    check_oneshot_baseline(name)
    strategy_class = _strategy_class(name)
    if name in ("nni-darts", "nni-gumbel"):
        return strategy_class(gradient_clip_val=gradient_clip_val, warmup_epochs=weights_only_epochs)  # NNI's name
    return strategy_class()
