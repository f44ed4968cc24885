"""The exported architecture scored with the supernet's shared weights, after a search."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from .data import DeviceBatches, split_halves
from .search import SearchParts

__all__ = ["exported_val_accuracy", "uniform_val_accuracies"]


def exported_val_accuracy(result: Mapping[str, Any], parts: SearchParts, seed: int,
                          batch_size: int = 256, architecture: Mapping[str, Any] | None = None) -> float:
    """Accuracy of the exported architecture (or ``architecture``) with the supernet's weights on the
    architecture half, unaugmented.

    Batch-norm statistics are first recalibrated for that one path on the weights half (as one-shot
    NAS does before evaluating a path): a short single-path search updates each op's running
    statistics only when the op is sampled, too rarely for them to be usable. The supernet's own
    statistics are restored afterwards.

    ``result`` and ``parts`` are what :func:`~nas_estimators.search.run_search` and
    :func:`~nas_estimators.search.prepare` returned; ``seed`` is the search's (it picks the halves).
    """
    data, device = parts.data, parts.device
    module = result["strategy"].search_module
    network = module.training_module
    weights_idx, arch_idx = split_halves(len(data.train_labels), seed)

    def batches(indices: torch.Tensor) -> DeviceBatches:
        return DeviceBatches(data.train_images[indices], data.train_labels[indices], batch_size, mean=data.mean,
                             std=data.std, device=device, augment=False, shuffle=False, drop_last=False)

    network.to(device)  # Lightning hands the module back on the CPU after fit
    module.apply(result["architecture"] if architecture is None else architecture)
    norms = [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats]
    saved = [({k: v.clone() for k, v in m.state_dict().items()}, m.momentum) for m in norms]
    was_training = network.training
    correct = 0
    try:
        with torch.inference_mode():
            for norm in norms:
                norm.reset_running_stats()
                norm.momentum = None  # a plain average over the recalibration batches
            network.train()
            for inputs, _ in batches(weights_idx):
                network(inputs)
            network.eval()
            for inputs, targets in batches(arch_idx):
                correct += int((network(inputs).argmax(1) == targets).sum())
    finally:
        for norm, (state, momentum) in zip(norms, saved):
            norm.load_state_dict(state)
            norm.momentum = momentum
        network.train(was_training)
    return correct / len(arch_idx)


def uniform_val_accuracies(result: Mapping[str, Any], parts: SearchParts, seed: int, draws: int,
                           batch_size: int = 256) -> list[float]:
    """Accuracies of ``draws`` architectures drawn uniformly from the space (seeded by ``seed``), each scored
    as :func:`exported_val_accuracy` scores the exported one: the chance level a search should clear.
    """
    distribution = result["strategy"].search_module.distribution
    generator = torch.Generator().manual_seed(seed)
    drawn = [distribution.to_architecture(distribution.uniform_indices(generator)) for _ in range(draws)]
    return [exported_val_accuracy(result, parts, seed, batch_size, architecture=sample) for sample in drawn]
