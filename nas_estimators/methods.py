"""Every search method by name, and what each is and supports: the one place that decides a method's kind.

Four kinds:

* ``estimator``: one of our registered estimators (:mod:`nas_estimators.registry`) on a supernet;
* ``nni-oneshot``: NNI's own one-shot strategies (DARTS, GumbelDARTS, RandomOneShot, ENAS), run as NNI runs them;
* ``nni-multi-trial``: NNI's multi-trial strategies, each architecture scored by benchmark-table look-up;
* ``table``: our estimators searching a benchmark table itself (``sf-table``, ...), no supernet.

``search`` and ``bench`` run the one-shot kinds, ``compare`` all four, ``tune`` the estimators.

Example:
    >>> get("nni-darts").kind, get("nni-darts").trains_supernet, get("nni-darts").accepts_objective
    ('nni-oneshot', True, False)
    >>> get("sf-table").estimator, get("sf-table").needs_table
    ('sf', True)
    >>> names("nni-multi-trial")
    ('nni-evolution', 'nni-random-search', 'nni-tpe', 'nni-rl')
"""

from __future__ import annotations

import dataclasses

from . import registry

__all__ = ["Method", "KINDS", "methods", "get", "names", "check"]

KINDS = ("estimator", "nni-oneshot", "nni-multi-trial", "table")

#: Command-line name -> NNI one-shot strategy class name.
NNI_ONESHOT = {"nni-darts": "DARTS", "nni-gumbel": "GumbelDARTS", "nni-random": "RandomOneShot", "nni-enas": "ENAS"}
#: Command-line name -> NNI multi-trial strategy class name.
NNI_MULTI_TRIAL = {"nni-evolution": "RegularizedEvolution", "nni-random-search": "Random", "nni-tpe": "TPE",
                   "nni-rl": "PolicyBasedRL"}
TABLE_SUFFIX = "-table"
# Why a method cannot run, when it cannot. NNI 3.0's ENAS module expects Lightning 1.x's (batch, mode)
# or 2.0's (batch, index, loader) from its sequential loader; Lightning 2.6 hands it the bare batch, so
# an (images, labels) batch reads as (batch=images, mode=labels) and every step takes the controller
# branch. Checked with tianshou 0.4.11, gym 0.26.2, pytorch-lightning 2.6.6.
_UNAVAILABLE = {"nni-enas": "NNI 3.0's ENAS does not run with pytorch-lightning 2.6 (its training_step misreads "
                            "the batches of its sequential loader)"}


@dataclasses.dataclass(frozen=True)
class Method:
    """A search method: its name, kind, what builds it and what it supports."""

    name: str
    kind: str
    nni_class: str | None = None  # the NNI strategy class (the nni-* kinds)
    estimator: str | None = None  # the registered estimator (estimator and table kinds)
    unavailable: str | None = None  # why it cannot run here, when it cannot

    @property
    def trains_supernet(self) -> bool:
        """A one-shot method: it trains shared weights (``search``, ``bench``), epoch by epoch."""
        return self.kind in ("estimator", "nni-oneshot")

    @property
    def needs_table(self) -> bool:
        """It queries architectures one by one, each scored by benchmark-table look-up, up to a budget."""
        return self.kind in ("nni-multi-trial", "table")

    @property
    def accepts_objective(self) -> bool:
        """Objective terms, frozen weights, the recipe's uniform weight paths and several processes: ours only."""
        return self.kind == "estimator"

    def check(self) -> None:
        """Raise ``ValueError`` (one line) when this method cannot run here."""
        if self.unavailable:
            raise ValueError(f"{self.name}: {self.unavailable}")


def methods() -> dict[str, Method]:
    """Every method by name, in the order commands list them (the registry's estimators as registered now)."""
    found = {name: Method(name, "estimator", estimator=name) for name in registry.names()}
    found.update({name: Method(name, "nni-oneshot", nni_class=cls, unavailable=_UNAVAILABLE.get(name))
                  for name, cls in NNI_ONESHOT.items()})
    found.update({name: Method(name, "nni-multi-trial", nni_class=cls) for name, cls in NNI_MULTI_TRIAL.items()})
    found.update({f"{name}{TABLE_SUFFIX}": Method(f"{name}{TABLE_SUFFIX}", "table", estimator=name)
                  for name in registry.names()})
    return found


def names(*kinds: str) -> tuple[str, ...]:
    """The names of the methods of ``kinds`` (every method without)."""
    return tuple(name for name, method in methods().items() if not kinds or method.kind in kinds)


def get(name: str) -> Method:
    """The method called ``name``; ``ValueError`` naming the choices when there is none."""
    found = methods()
    if name not in found:
        raise ValueError(f"method: unknown {name!r}; expected one of {', '.join(found)}")
    return found[name]


def check(name: str, *kinds: str) -> Method:
    """The method called ``name`` if it is of ``kinds`` and can run here, else a one-line ``ValueError``."""
    allowed = names(*kinds)
    if name not in allowed:
        raise ValueError(f"expected one of {', '.join(allowed)}, got {name!r}")
    method = get(name)
    method.check()
    return method
