"""The search recipe: what sf, relax and ram run with when a setting is left unset, and what NNI's strategies keep.

Measured on the NAS-Bench-201 CPU proxy (docs/search-quality.md; chosen on tuning seeds 0-2, reported on
fresh seeds 10-12): train the supernet's weights alone on uniformly drawn paths for most of the epochs,
then fix them and move only the logits, minimising the supernet's loss plus two training-free terms
(synflow, the parameter count; under a FLOPs or parameter budget NASWOT instead, docs/cost-aware.md), and at the end
re-score the most probable cells on many held-out images.
The settings that carry these numbers are declared in :mod:`~nas_estimators.settings`; ``search``,
``compare``, ``tune`` and the NNI strategies (``nas_estimators.SF()`` ...) all take their defaults from there.
"""

from __future__ import annotations

#: The share of the epochs that train the weights only (20 of the proxy's 24), at least one epoch left to search.
WARMUP_SHARE = 5 / 6
ARC_LEARNING_RATE = 0.03
UNIFORM_WEIGHT_PATHS = 1.0
FREEZE_WEIGHTS = True
OBJECTIVE = {"supernet": 1.0, "synflow": 1.0, "params": 1.0}
#: Under a budget (``--cost``) "bigger is better" stops helping: synflow and the parameter count mostly rank
#: size, NASWOT ranks cells of equal cost (Kendall tau 0.40-0.45 against synflow's 0.15-0.21), so it
#: replaces both. Chosen on tuning seeds 0-2 (docs/cost-aware.md, "Session 16" and "Session 17"). Under a
#: latency budget the size terms stay: there NASWOT exported lower cells on each tuning seed (and fresh seed 10).
BUDGET_OBJECTIVE = {"supernet": 1.0, "naswot": 1.0}
BUDGET_OBJECTIVE_COSTS = ("flops", "params")
#: Most probable cells re-scored by the whole objective at the end, and the held-out images that score each.
RESCORE_TOP_K = 5
RESCORE_IMAGES = 8192

#: What NNI's one-shot strategies run with: the supernet's loss alone, weights and logits trained together.
NNI_OBJECTIVE = {"supernet": 1.0}


def objective(cost: str | None = None) -> dict[str, float]:
    """The recipe's terms (name -> weight) under a budget on ``cost`` (None: no budget): :data:`BUDGET_OBJECTIVE`
    for a cost in :data:`BUDGET_OBJECTIVE_COSTS`, else :data:`OBJECTIVE`."""
    return dict(BUDGET_OBJECTIVE if cost in BUDGET_OBJECTIVE_COSTS else OBJECTIVE)


def weights_only_epochs(epochs: int) -> int:
    """Weights-only epochs of a search of ``epochs``: WARMUP_SHARE of them, at least one left to the architecture."""
    return max(0, min(int(WARMUP_SHARE * int(epochs) + 1e-9), int(epochs) - 1))
