"""The one place that touches NNI 3.0's internals.

NNI 3.0 is the last release and is unmaintained: everything this package needs from its one-shot
machinery goes through the functions here, so a future NNI (or none) is a change to this file.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Any, Callable, Iterable, Mapping

from torch import nn

with warnings.catch_warnings():
    # NNI 3.0 warns that torch's Buffer "is not a nn.Module" on import; it is harmless.
    warnings.simplefilter("ignore", RuntimeWarning)
    from nni.mutable import Categorical, CategoricalMultiple, Mutable
    from nni.nas.evaluator.pytorch import Lightning, LightningModule, Trainer
    from nni.nas.nn.pytorch import ModelSpace
    from nni.nas.oneshot.pytorch.base_lightning import BaseOneShotLightningModule
    from nni.nas.oneshot.pytorch.strategy import OneShotStrategy
    from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule

__all__ = [
    "BaseOneShotLightningModule", "BaseSuperNetModule", "Lightning", "LightningModule", "ModelSpace",
    "OneShotStrategy", "Trainer", "categorical_choices", "path_sampling_hooks", "run_path_sampling_hook",
    "apply_sample", "supernet_modules", "keep_constant_operation", "ONESHOT_STRATEGIES", "MULTI_TRIAL_STRATEGIES",
    "has_tianshou", "oneshot_strategy_class", "noiseless_export_probs", "multi_trial_strategy", "run_multi_trial",
]


def categorical_choices(model_space: Any) -> tuple[dict[str, list[Any]], list[str]]:
    """Labels and candidate values of a model space (or of a ``simplify()`` result).

    Returns ``(choices, wrapped)``: ``wrapped`` lists the labels that are ``CategoricalMultiple`` with
    ``n_chosen=1``, whose NNI value is a one-element list. Any other mutable is a ``TypeError``.
    """
    mutables: Mapping[str, Any]
    if isinstance(model_space, Mapping):
        mutables = model_space
    elif hasattr(model_space, "simplify"):
        mutables = model_space.simplify()
    else:
        raise TypeError(f"model_space: expected an NNI model space or a simplified mapping, got {type(model_space).__name__}")
    choices: dict[str, list[Any]] = {}
    wrapped: list[str] = []
    for label, mutable in mutables.items():
        if isinstance(mutable, CategoricalMultiple):
            if mutable.n_chosen != 1:
                raise TypeError(
                    f"label {label!r}: CategoricalMultiple with n_chosen={mutable.n_chosen} is not supported; "
                    "only n_chosen=1 (an InputChoice of one input) is"
                )
            choices[label] = list(mutable.values)
            wrapped.append(label)
        elif isinstance(mutable, Categorical):
            choices[label] = list(mutable.values)
        else:
            raise TypeError(
                f"label {label!r}: {type(mutable).__name__} is not supported; only Categorical "
                "(LayerChoice, nni.choice, a Repeat depth) and CategoricalMultiple(n_chosen=1) (InputChoice) are"
            )
    return choices, wrapped


def path_sampling_hooks() -> list[Callable]:
    """NNI's own single-path mutation hooks (those of ``RandomOneShot``): one sample drives the supernet.

    Two hooks run first: :func:`keep_constant_operation`, and the path-sampling stage of NNI's cell
    spaces (``DARTS``, ``ENAS``, ``NASNet``, ``AmoebaNet``, ``PNAS``) for a depth choice. NNI hands the
    latter only to ``RandomOneShot`` itself (``extra_oneshot_hooks`` checks the strategy's class, and
    that check fails whenever ``nni.nas.hub`` is imported before ``nni.nas.oneshot``); it only acts on
    an ``NDSStage`` whose depth is a choice.
    """
    from nni.nas.hub.pytorch.nasnet import NDSStagePathSampling
    from nni.nas.oneshot.pytorch.strategy import RandomOneShot

    return [keep_constant_operation, NDSStagePathSampling.mutate,
            *RandomOneShot.default_mutation_hooks(None)]  # type: ignore[arg-type]


def keep_constant_operation(module: nn.Module, name: str, memo: dict, mutate_kwargs: dict) -> bool:
    """Mutation hook: leave a parametrised operation without mutable arguments as it is.

    NNI replaces every ``MutableConv2d``/``MutableBatchNorm2d``/``MutableLinear`` with a mixed operation,
    mutable or not (the DARTS space at width 8 with 5 cells has 793, none mutable), and a mixed
    operation re-slices its weights in Python at every forward (about a sixth of an SF step on the CPU,
    by cProfile). The plain module computes the same function at native speed. (True: no other hook
    sees this module.)
    """
    from nni.nas.nn.pytorch.base import ParametrizedModule

    return (isinstance(module, ParametrizedModule) and not module.mutables
            and not any(isinstance(value, Mutable) for value in module.trace_kwargs.values()))


def run_path_sampling_hook(hook: Callable, name: str, module: nn.Module, memo: dict) -> Any:
    from nni.nas.oneshot.pytorch.supermodule.sampling import MixedOpPathSamplingPolicy

    return hook(module, name, memo, {"mixed_op_sampling": MixedOpPathSamplingPolicy})


def supernet_modules(model: nn.Module) -> list[BaseSuperNetModule]:
    return [module for module in model.modules() if isinstance(module, BaseSuperNetModule)]


# A one-shot search's Lightning checkpoint keeps the supernet under NNI's two wrappers: the one-shot
# module's ``training_module`` and the evaluator module's ``_model``.
_SUPERNET_PREFIX = "training_module._model."


def supernet_state(search_state: Mapping[str, Any]) -> dict[str, Any]:
    """The supernet's own ``state_dict`` out of a one-shot search checkpoint's ``state_dict``."""
    state = {key[len(_SUPERNET_PREFIX):]: value for key, value in search_state.items()
             if key.startswith(_SUPERNET_PREFIX)}
    if not state:
        raise ValueError("the checkpoint holds no supernet weights (not a one-shot search checkpoint)")
    return state


def apply_sample(modules: Iterable[BaseSuperNetModule], sample: Mapping[str, Any]) -> None:
    """Set every path-sampling module to the architecture ``sample`` (label -> value)."""
    memo = dict(sample)
    for module in modules:
        labels = _cell_labels(module)
        if labels is not None and all(label in memo for label in labels):
            # What PathSamplingCell.resample does with a full sample, minus its walk over every
            # descendant module (``simplify()``) on each call: ~5 ms a cell in the DARTS space.
            module._sampled = {label: memo[label] for label in labels}
        else:
            memo.update(module.resample(memo=memo))


_CELL_LABELS: "weakref.WeakKeyDictionary[nn.Module, list[str]]" = weakref.WeakKeyDictionary()


def _cell_labels(module: nn.Module) -> list[str] | None:
    """The labels of a path-sampling cell (computed once per module), or None for any other module."""
    from nni.nas.oneshot.pytorch.supermodule.sampling import PathSamplingCell

    if not isinstance(module, PathSamplingCell):
        return None
    if module not in _CELL_LABELS:
        _CELL_LABELS[module] = list(module.simplify())
    return _CELL_LABELS[module]


# ---------------------------------------------------------------- NNI's own strategies, as baselines

#: NNI's one-shot strategy classes by their NNI names (ENAS needs ``tianshou``, and see baselines.py).
ONESHOT_STRATEGIES = ("DARTS", "GumbelDARTS", "RandomOneShot", "ENAS")
#: NNI's multi-trial strategy classes by their NNI names; PolicyBasedRL also needs ``tianshou``.
MULTI_TRIAL_STRATEGIES = ("RegularizedEvolution", "Random", "TPE", "PolicyBasedRL")


def freeze(model_space: Any, sample: Mapping[str, Any]) -> nn.Module:
    """The fixed network of ``sample``, as NNI builds it (``model_space.freeze``)."""
    return model_space.freeze(dict(sample))


def has_tianshou() -> bool:
    """Whether NNI's reinforcement-learning strategies (ENAS, PolicyBasedRL) can run here."""
    try:
        from nni.nas.strategy._rl_impl import TuningTrajectoryGenerator  # noqa: F401  (imports tianshou and gym)
    except Exception:  # ImportError, or an old gym failing on a new numpy: either way, not usable
        return False
    return True


def oneshot_strategy_class(name: str) -> type:
    """NNI's one-shot strategy class ``name`` (one of :data:`ONESHOT_STRATEGIES`)."""
    from nni.nas.oneshot.pytorch import strategy  # nni.nas.strategy hides import errors behind a stub

    if name not in ONESHOT_STRATEGIES:
        raise ValueError(f"NNI one-shot strategy: expected one of {', '.join(ONESHOT_STRATEGIES)}, got {name!r}")
    return getattr(strategy, name)


def noiseless_export_probs(module: nn.Module) -> dict[str, dict[Any, float]]:
    """``module.export_probs()`` with any Gumbel softmax read as a plain softmax.

    GumbelDARTS exports ``gumbel_softmax(alpha)``, a fresh random draw each call; the learnt
    distribution is ``softmax(alpha)``, which is what an entropy or a probability table should show.
    """
    import torch
    from nni.nas.oneshot.pytorch.supermodule.differentiable import GumbelSoftmax

    swapped = [(owner, owner._softmax) for owner in module.modules()
               if isinstance(getattr(owner, "_softmax", None), GumbelSoftmax)]
    try:
        for owner, softmax in swapped:
            owner._softmax = torch.nn.Softmax(softmax.dim)
        return module.export_probs()
    finally:
        for owner, softmax in swapped:
            owner._softmax = softmax


def multi_trial_strategy(name: str, seed: int, budget: int) -> Any:
    """NNI's multi-trial strategy ``name`` (one of :data:`MULTI_TRIAL_STRATEGIES`), seeded.

    Regularized evolution keeps a population of ``min(20, budget)`` and tournaments of a quarter of
    it: NNI's defaults (100 and 25) would spend a budget of a few hundred on the random population.
    """
    import nni.nas.strategy as strategies

    if name == "RegularizedEvolution":
        population = max(1, min(20, budget))
        return strategies.RegularizedEvolution(population_size=population, sample_size=max(1, population // 4),
                                               seed=seed)
    if name == "Random":
        return strategies.Random(seed=seed)
    if name == "TPE":
        return strategies.TPE(seed=seed)
    if name == "PolicyBasedRL":
        import torch

        torch.manual_seed(seed)  # its policy network draws from torch's global generator
        return strategies.PolicyBasedRL()
    raise ValueError(f"NNI multi-trial strategy: expected one of {', '.join(MULTI_TRIAL_STRATEGIES)}, got {name!r}")


def run_multi_trial(strategy: Any, model_space: Any, score: Callable[[dict], float], budget: int,
                    free: Callable[[dict], bool] | None = None, most_free: int = 0) -> None:
    """Run an NNI multi-trial ``strategy`` in this process for ``budget`` architectures.

    A sample for which ``free(sample)`` holds (one already known) does not count in ``budget``; at most
    ``most_free`` do.

    Every architecture the strategy submits goes to ``score(sample)`` (a table look-up: no network is
    built or trained), and the score goes back to the strategy as the trial's final metric. This is
    what ``NasExperiment`` does with a sequential engine, without its manager process and web server
    (which this project does not rely on: NNI 3.0's experiment can hang on a machine without network).
    """
    import logging
    import types

    import nni
    import nni.nas.strategy.hpo as hpo
    from nni.nas.evaluator import FunctionalEvaluator
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.space import SimplifiedModelSpace

    class LookupModelSpace(SimplifiedModelSpace):
        # The evaluator receives the sample itself instead of a network built from it.
        def executable_model(self) -> Any:
            return dict(self.sample)

    def evaluate(sample: dict) -> None:
        if free is not None and free(sample) and engine.max_model_count < budget + most_free:
            engine.max_model_count += 1  # read by the engine at each submission
        nni.report_final_result(float(score(sample)))

    space = LookupModelSpace.from_model(model_space, FunctionalEvaluator(evaluate))
    engine = SequentialExecutionEngine(max_model_count=int(budget))
    nni_logger = logging.getLogger("nni")
    level = nni_logger.level
    nni_logger.setLevel(logging.WARNING)  # NNI logs every sample and metric at INFO
    # NNI's tuner-backed strategies (TPE) sleep a second after each submission, waiting for a
    # concurrent engine; the sequential engine has already run the trial by then.
    hpo_time = hpo.time
    hpo.time = types.SimpleNamespace(sleep=lambda seconds: None)
    try:
        strategy(space, engine)
    finally:
        hpo.time = hpo_time
        nni_logger.setLevel(level)


def build_fixed(factory: Callable[[], nn.Module], sample: Mapping[str, Any]) -> nn.Module:
    """``factory()`` built inside NNI's ``model_context(sample)``: the fixed network of ``sample``.

    Unlike ``model_space.freeze``, this also works for modules that only exist in fixed networks
    (the DARTS auxiliary head asserts it is not in a model space).
    """
    from nni.nas.nn.pytorch import model_context

    with model_context(dict(sample)):
        return factory()


def report_held_out_metrics(trainer: Any, training_module: Any) -> None:
    """Before NNI's final report: with the weights fixed from the start no training step logged
    ``train_<metric>``, which NNI reports (our strategies have no validation loop); report the
    sampled paths' held-out ``val_<metric>`` in its place."""
    metrics = trainer.callback_metrics
    for name in getattr(training_module, "metrics", {}) or {}:
        if f"train_{name}" not in metrics and f"val_{name}" in metrics:
            metrics[f"train_{name}"] = metrics[f"val_{name}"]
