"""The search loop's settings, declared once: each is a field of :class:`LoopSettings`.

A field holds everything about its setting: default, help, check, what NNI's strategies run with, what
a run saved before the setting existed ran with, and its Optuna range where ``tune`` draws it. From
these fields come the strategies' keywords (``SF(arc_learning_rate=...)``), the
:class:`~nas_estimators.lightning.EstimatorLightningModule`'s settings, the ``--options`` of ``search``,
``compare``, ``tune`` and ``frozen-search`` (``SearchConfig`` and ``CompareConfig`` extend this class),
compare's recorded settings and the defaults of old run folders. docs/architecture.md, "How to add an
option", shows the one edit a new setting takes.

Example:
    >>> settings = LoopSettings(arc_learning_rate=0.01).resolved(epochs=24)
    >>> settings.arc_learning_rate, settings.warmup_epochs, settings.freeze_weights
    (0.01, 20, True)
    >>> LoopSettings(rescore_images=0).check()
    Traceback (most recent call last):
    ...
    ValueError: rescore_images: expected a positive integer, got 0
"""

from __future__ import annotations

import dataclasses
import functools
from fractions import Fraction
from typing import Any, Callable

from . import checks, recipe
from .checks import positive_number, share
from .options import option
from .weight_paths import WEIGHT_PATHS

__all__ = ["LoopSettings", "loop_fields", "unset_values", "ours_only", "before", "nni_values", "tuned"]


def _integer(minimum: int, optional: bool = False) -> Callable[[str, Any], Any]:
    return functools.partial(checks.integer, minimum=minimum, optional=optional)


def _one_of(choices: tuple[str, ...]) -> Callable[[str, Any], Any]:
    return lambda name, value: checks.one_of(name, value, choices)


def _flag_or_unset(name: str, value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return value


def log_uniform(low: float, high: float) -> Callable[[Any, str], float]:
    """An Optuna range: ``trial.suggest_float(name, low, high, log=True)``."""
    return lambda trial, name: trial.suggest_float(name, low, high, log=True)


@dataclasses.dataclass
class LoopSettings:
    """How the search loop of sf, relax and ram runs; ``None`` is resolved by :meth:`resolved`.

    The defaults are the recipe (:mod:`~nas_estimators.recipe`): weights train alone on uniformly drawn
    paths for 5/6 of the epochs, then stay fixed while the logits move, and the most probable cells are
    re-scored at the end. Metadata beside each option: ``ours`` and ``nni`` (what an unset value is for
    our strategies and for NNI's), ``ours_only`` (what the setting does, which NNI's strategies refuse:
    they keep ``nni``), ``before`` (what a run saved before the setting existed ran with), ``suggest``
    (``tune``'s range).
    """

    arc_learning_rate: float = option(recipe.ARC_LEARNING_RATE, "Adam learning rate of the logits (NNI's strategies "
                                      "keep their own)", type=float, check=positive_number, before=3e-3,
                                      suggest=log_uniform(1e-4, 3e-2))
    warmup_epochs: int | None = option(None, "epochs that train weights only", type=int, check=_integer(0, optional=True),
                                       shown=f"{Fraction(recipe.WARMUP_SHARE).limit_denominator(12)} of --epochs for "
                                             "ours, 0 for NNI's", nni=0, before=0)
    uniform_weight_paths: float = option(recipe.UNIFORM_WEIGHT_PATHS, "share of steps whose weights train a uniformly "
                                         "drawn path, in [0, 1] (1: single-path one-shot; 0: paths from the learnt "
                                         "distribution)", type=float, metavar="SHARE", check=share, nni=0.0,
                                         before=0.0)
    weight_paths: str = option("uniform", "how those uniformly drawn paths are drawn: uniform, no-none (never a none "
                               "edge), fair (each candidate once in every run of steps, as FairNAS) or shrinking "
                               "(only candidates whose probability is at least half of uniform's)",
                               choices=tuple(WEIGHT_PATHS), check=_one_of(tuple(WEIGHT_PATHS)), before="uniform")
    freeze_weights: bool | None = option(None, "after the weights-only epochs keep the shared weights fixed: each step "
                                         "only updates the distribution (two stages: train the supernet, then search "
                                         "it); --no-freeze-weights trains them throughout", flag=True,
                                         shown="on for ours, off for NNI's", check=_flag_or_unset,
                                         ours=recipe.FREEZE_WEIGHTS, nni=False, ours_only="freezing the weights",
                                         before=False)
    rescore_top_k: int | None = option(None, "at the end, score the K most probable cells by the whole objective on "
                                       "--rescore-images held-out images (the same for each) and export the "
                                       "best-scored (0: export the mode)", type=int, check=_integer(0, optional=True),
                                       shown=f"{recipe.RESCORE_TOP_K} for ours, 0 for NNI's", ours=recipe.RESCORE_TOP_K,
                                       nni=0, ours_only="re-scoring", before=0)
    rescore_images: int = option(recipe.RESCORE_IMAGES, "held-out images that score each re-scored cell", type=int,
                                 check=_integer(1), before=recipe.RESCORE_IMAGES)
    max_bad_steps: int = option(20, "stop after this many consecutive non-finite steps (0: never)", type=int,
                                check=_integer(0), before=20)

    def check(self) -> "LoopSettings":
        """Raise a ValueError naming the first bad setting; returns ``self``."""
        for field in loop_fields():
            field.metadata["option"]["check"](field.name, getattr(self, field.name))
        return self

    def loop_settings(self) -> "LoopSettings":
        """These settings alone (from a configuration that extends them)."""
        return LoopSettings(**{field.name: getattr(self, field.name) for field in loop_fields()})

    def resolved(self, epochs: int | None = None, ours: bool = True) -> "LoopSettings":
        """Checked, with unset values filled (:func:`unset_values`), and the weights-only epochs from ``epochs``
        (left unset when not given: the trainer's epochs decide)."""
        values = {field.name: getattr(self, field.name) for field in loop_fields()}
        for name, value in unset_values(ours).items():
            if values.get(name, ...) is None:
                values[name] = value
        if values["warmup_epochs"] is None and epochs is not None:
            values["warmup_epochs"] = recipe.weights_only_epochs(int(epochs)) if ours else 0
        return LoopSettings(**values).check()

    def searching_epochs(self, epochs: int) -> int:
        """Of ``epochs``, those after the weights-only ones (on :meth:`resolved` settings)."""
        return int(epochs) - int(self.warmup_epochs)

    def trains_weights(self, objective: Any) -> bool:
        """Whether any step trains the shared weights: not when they are frozen from the first step and no
        term of ``objective`` (term names) reads them (resolved settings)."""
        return "supernet" in objective or not self.freeze_weights or self.warmup_epochs > 0

    def check_for_nni(self, method: str) -> None:
        """Refuse a setting that only our estimators read, set for NNI's strategy ``method``."""
        for name in ours_only():
            spec = _spec(name)
            if getattr(self, name) not in (None, spec["nni"]):
                raise ValueError(f"{name}: {method} runs as NNI runs it ({name} {spec['nni']!r}); "
                                 f"{spec['ours_only']} is for sf, relax and ram")


def unset_values(ours: bool, cost: str | None = None) -> dict[str, Any]:
    """What the settings a method's kind decides take when left unset (None): the recipe's for sf, relax and
    ram, NNI's own way for NNI's strategies (the objective among them, ``cost``: searched under a budget on
    it; see :mod:`~nas_estimators.recipe`)."""
    key = "ours" if ours else "nni"
    decided = {field.name: field.metadata["option"][key] for field in loop_fields()
               if "ours" in field.metadata["option"]}
    return {"objective": recipe.objective(cost) if ours else dict(recipe.NNI_OBJECTIVE), **decided}


def _spec(name: str) -> dict[str, Any]:
    return {field.name: field for field in loop_fields()}[name].metadata["option"]


def loop_fields() -> tuple[dataclasses.Field, ...]:
    """The search loop's settings, as the dataclass fields that declare them."""
    return dataclasses.fields(LoopSettings)


def ours_only() -> tuple[str, ...]:
    """Settings only sf, relax and ram read: NNI's strategies refuse another value than their own."""
    return tuple(field.name for field in loop_fields() if field.metadata["option"].get("ours_only"))


def before(config_class: type = LoopSettings) -> dict[str, Any]:
    """What a run saved before each setting of ``config_class`` existed ran with (a resumed one keeps it); for
    the search loop, the one-term search of the supernet's loss, weights and logits trained together."""
    return {"objective": dict(recipe.NNI_OBJECTIVE),
            **{field.name: field.metadata["option"]["before"] for field in dataclasses.fields(config_class)
               if "before" in field.metadata.get("option", {})}}


def nni_values() -> dict[str, Any]:
    """What NNI's one-shot strategies run with, where it differs from ours."""
    return {field.name: field.metadata["option"]["nni"] for field in loop_fields() if "nni" in field.metadata["option"]}


def tuned() -> dict[str, Callable[[Any, str], Any]]:
    """Settings ``tune`` draws for every estimator: name -> ``suggest(trial, name)``."""
    return {field.name: field.metadata["option"]["suggest"] for field in loop_fields()
            if field.metadata["option"].get("suggest") is not None}
