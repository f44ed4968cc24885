"""The search recipe: what sf, relax and ram run with when a setting is left unset, and what NNI's strategies keep.

Measured on the NAS-Bench-201 CPU proxy (docs/search-quality.md; chosen on tuning seeds 0-2, reported on
fresh seeds 10-12): train the supernet's weights alone on uniformly drawn paths for most of the epochs,
then fix them and move only the logits, minimising the supernet's loss plus two training-free terms
(synflow, the parameter count), and at the end re-score the most probable cells on many held-out images.
``search``, ``compare``, ``tune`` and the NNI strategies (``nas_estimators.SF()`` ...) all take their
defaults from here; NNI's own strategies run as NNI runs them.
"""

from __future__ import annotations

#: The share of the epochs that train the weights only (20 of the proxy's 24), at least one epoch left to search.
WARMUP_SHARE = 5 / 6
ARC_LEARNING_RATE = 0.03
UNIFORM_WEIGHT_PATHS = 1.0
FREEZE_WEIGHTS = True
OBJECTIVE = {"supernet": 1.0, "synflow": 1.0, "params": 1.0}
#: Most probable cells re-scored by the whole objective at the end, and the held-out images that score each.
RESCORE_TOP_K = 5
RESCORE_IMAGES = 8192

#: What NNI's one-shot strategies run with: the supernet's loss alone, weights and logits trained together.
NNI_OBJECTIVE = {"supernet": 1.0}

#: What a search saved before a setting existed ran with: a resumed one keeps it.
BEFORE_RECIPE = {"arc_learning_rate": 3e-3, "warmup_epochs": 0, "uniform_weight_paths": 0.0,
                 "objective": NNI_OBJECTIVE, "freeze_weights": False, "rescore_top_k": 0}


def warmup_epochs(epochs: int) -> int:
    """Weights-only epochs of a search of ``epochs``: WARMUP_SHARE of them, at least one left to the architecture."""
    return max(0, min(int(WARMUP_SHARE * int(epochs) + 1e-9), int(epochs) - 1))


def defaults(ours: bool) -> dict:
    """The settings a search leaves unset (``None``) take: the recipe for ours, NNI's way for NNI's strategies."""
    if ours:
        return {"objective": dict(OBJECTIVE), "freeze_weights": FREEZE_WEIGHTS, "rescore_top_k": RESCORE_TOP_K}
    return {"objective": dict(NNI_OBJECTIVE), "freeze_weights": False, "rescore_top_k": 0}
