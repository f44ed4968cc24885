"""The one place that touches NNI 3.0's internals.

NNI 3.0 is the last release and is unmaintained: everything this package needs from its one-shot
machinery goes through the functions here, so a future NNI (or none) is a change to this file.
"""

from __future__ import annotations

import warnings
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
    "apply_sample", "supernet_modules",
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
                    f"label {label!r}: CategoricalMultiple with n_chosen={mutable.n_chosen} is not supported "
                    "(only n_chosen=1)"
                )
            choices[label] = list(mutable.values)
            wrapped.append(label)
        elif isinstance(mutable, Categorical):
            choices[label] = list(mutable.values)
        else:
            raise TypeError(
                f"label {label!r}: {type(mutable).__name__} is not supported; "
                "only Categorical and CategoricalMultiple(n_chosen=1) are"
            )
    return choices, wrapped


def path_sampling_hooks() -> list[Callable]:
    """NNI's own single-path mutation hooks (those of ``RandomOneShot``): one sample drives the supernet."""
    from nni.nas.oneshot.pytorch.strategy import RandomOneShot

    return RandomOneShot.default_mutation_hooks(None)  # type: ignore[arg-type]  # it reads nothing from self


def run_path_sampling_hook(hook: Callable, name: str, module: nn.Module, memo: dict) -> Any:
    from nni.nas.oneshot.pytorch.supermodule.sampling import MixedOpPathSamplingPolicy

    return hook(module, name, memo, {"mixed_op_sampling": MixedOpPathSamplingPolicy})


def supernet_modules(model: nn.Module) -> list[BaseSuperNetModule]:
    return [module for module in model.modules() if isinstance(module, BaseSuperNetModule)]


def apply_sample(modules: Iterable[BaseSuperNetModule], sample: Mapping[str, Any]) -> None:
    """Set every path-sampling module to the architecture ``sample`` (label -> value)."""
    memo = dict(sample)
    for module in modules:
        memo.update(module.resample(memo=memo))


def freeze(model_space: Any, sample: Mapping[str, Any]) -> nn.Module:
    """The fixed network of ``sample``, as NNI builds it (``model_space.freeze``)."""
    return model_space.freeze(dict(sample))
