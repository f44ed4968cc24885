"""How well the supernet ranks architectures: a fixed panel scored with the shared weights each epoch.

An estimator can only find what the supernet's losses point to. If the supernet ranks architectures
unlike the benchmark does, no estimator finds good cells; if it ranks them well and the search still
ends on a poor cell, the estimator (or its schedule) is at fault. :class:`RankingPanel` is an epoch
listener for :func:`~nas_estimators.search.run_search` that measures the first of the two.

Example:
    >>> from nas_estimators.ranking import kendall_tau
    >>> round(kendall_tau([1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 40.0, 30.0]), 4)
    0.6667
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

#: Panel of the command line: architectures drawn uniformly from the table, plus the table's best.
PANEL_UNIFORM = 64
PANEL_BEST = 16


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two equally long sequences (ties counted as in ``scipy.stats.kendalltau``)."""
    from scipy.stats import kendalltau

    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"kendall_tau: expected two sequences of equal length >= 2, got {len(x)} and {len(y)}")
    return float(kendalltau(list(x), list(y)).statistic)


def panel_architectures(table: Any, uniform: int = PANEL_UNIFORM, best: int = PANEL_BEST,
                        seed: int = 0) -> list[dict[str, Any]]:
    """``best`` most accurate architectures of ``table`` and ``uniform`` others drawn uniformly (seeded).

    ``table`` is a :class:`~nas_estimators.nasbench201.BenchmarkTable`; the panel is the
    same for every search that uses the same table and seed, so panels of different runs compare.
    """
    from .nasbench201 import from_arch_string

    keys = sorted(table, key=lambda key: (-table.accuracy(key), key))
    chosen = keys[:best]
    rest = keys[best:]
    order = torch.randperm(len(rest), generator=torch.Generator().manual_seed(seed))[:uniform].tolist()
    chosen += [rest[i] for i in order]
    return [from_arch_string(key) for key in chosen]


class RankingPanel:
    """An epoch listener: score a fixed panel of architectures with the supernet, against a benchmark.

    Each architecture's loss and accuracy are measured with the current shared weights on the same
    fixed, un-augmented batches (``images``/``labels``, already normalised), forward only, in the mode
    the search scores architectures in (training-mode batch normalisation: batch statistics). Adds to
    the history row:

    * ``panel_tau``: Kendall's tau between the supernet's accuracy and the benchmark accuracy over the panel;
    * ``panel_loss_tau``: the same with the supernet's negated loss (what the estimators minimise);
    * ``panel_best_benchmark_acc``: the benchmark accuracy of the panel architecture with the lowest
      supernet loss (what a perfect estimator would settle on among the panel).

    Args:
        architectures: the panel (NNI sample dicts).
        benchmark: each architecture's benchmark accuracy, aligned with ``architectures``.
        images, labels: held-out inputs and targets on the supernet's device.
        batch_size: images per forward pass.
    """

    def __init__(self, architectures: Sequence[Mapping[str, Any]], benchmark: Sequence[float],
                 images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> None:
        if len(architectures) != len(benchmark) or len(architectures) < 2:
            raise ValueError("architectures and benchmark: expected two aligned sequences of at least 2")
        self.architectures = [dict(a) for a in architectures]
        self.benchmark = [float(b) for b in benchmark]
        self.batches = [(images[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(labels), batch_size)]

    @classmethod
    def from_table(cls, table: Any, images: torch.Tensor, labels: torch.Tensor, *, uniform: int = PANEL_UNIFORM,
                   best: int = PANEL_BEST, seed: int = 0, batch_size: int = 256) -> "RankingPanel":
        architectures = panel_architectures(table, uniform, best, seed)
        return cls(architectures, [table.accuracy(a) for a in architectures], images, labels, batch_size)

    def scores(self, search_module: Any) -> tuple[list[float], list[float]]:
        """Each panel architecture's (mean loss, accuracy) on the panel's batches with the current weights."""
        network, criterion = search_module.training_module, search_module.training_module.criterion
        totals = []
        with torch.inference_mode():
            for architecture in self.architectures:
                search_module.apply(architecture)
                loss_sum, correct = 0.0, 0.0
                for inputs, targets in self.batches:  # summed on the device: no read until the end
                    outputs = network(inputs)
                    loss_sum = loss_sum + criterion(outputs, targets).float() * len(targets)
                    correct = correct + (outputs.argmax(1) == targets).sum().float()
                totals.append(torch.stack([loss_sum, correct]))
        count = sum(len(targets) for _, targets in self.batches)
        values = (torch.stack(totals) / count).tolist()  # one read for the whole panel
        return [v[0] for v in values], [v[1] for v in values]

    def __call__(self, row: dict, search_module: Any) -> None:
        losses, accuracies = self.scores(search_module)
        row["panel_tau"] = kendall_tau(accuracies, self.benchmark)
        row["panel_loss_tau"] = kendall_tau([-loss for loss in losses], self.benchmark)
        best = min(range(len(losses)), key=losses.__getitem__)
        row["panel_best_benchmark_acc"] = self.benchmark[best]
