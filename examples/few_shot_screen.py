"""Few-shot split of a finished NAS-Bench-201 supernet on one label: does it rank the cells better?

Few-shot NAS (Zhao et al., 2021): after the one-shot warm-up, copy the supernet once per candidate of a
label; each copy trains on, for a few more epochs, with that label fixed to its candidate (the other
labels uniformly drawn, SGD as the search's weights). A cell is then scored by the copy of its own
candidate. For each label in --labels (every label by default, one split at a time), this prints and
appends to OUT.csv what ``supernet_ranking.py`` reports for the unsplit supernet: Kendall's tau of the
panel by loss, the table accuracy of the panel's lowest-loss cell, and the one-edge change of the
all-conv_3x3 cell the split supernet prefers. Its cost is one epoch of the weights half per candidate
and epoch (``seconds``), beside the supernet's own.

    OMP_NUM_THREADS=1 python examples/few_shot_screen.py runs/paths/uniform-s0 TABLE_CSV OUT.csv \\
        [--labels cell/0_3,cell/1_3] [--epochs 1] [--images 1024]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import pandas as pd
import torch

from nas_estimators.data import load_dataset, search_batches
from nas_estimators.frozen import FrozenSupernet, load_supernet
from nas_estimators.nasbench201 import BenchmarkTable
from nas_estimators.ranking import kendall_tau, panel_architectures


def fine_tune(base: FrozenSupernet, label: str, value: str, batches, epochs: int, learning_rate: float,
              seed: int) -> FrozenSupernet:
    """A copy of ``base`` trained ``epochs`` more epochs with ``label`` fixed to ``value``."""
    model = copy.deepcopy(base.model).requires_grad_(True).train()
    split = FrozenSupernet(base.config, model, base.batches, base.table, base.scoring_inputs)
    model.requires_grad_(True).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9, weight_decay=3e-4)
    distribution = base.distribution()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for inputs, targets in batches:
            path = {**distribution.to_architecture(distribution.uniform_indices(generator)), label: value}
            split.apply(path)
            loss = torch.nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
    model.requires_grad_(False)
    return split


def score(supernets: dict[str, FrozenSupernet], label: str | None, cells, images, labels) -> list[float]:
    losses = []
    for cell in cells:
        supernet = supernets[cell[label]] if label else supernets[None]
        total = 0.0
        for i in range(0, len(labels), 256):
            outputs = supernet.outputs(images[i:i + 256], cell)
            total += float(torch.nn.functional.cross_entropy(outputs, labels[i:i + 256], reduction="sum"))
        losses.append(total / len(labels))
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet")
    parser.add_argument("table")
    parser.add_argument("out")
    parser.add_argument("--labels", help="comma-separated labels to split on, one at a time (default: every label)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=0.005, help="SGD of the copies (the cosine's tail)")
    parser.add_argument("--images", type=int, default=1024)
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = BenchmarkTable.from_csv(args.table)
    base = load_supernet(args.supernet, device="cpu")
    config = base.config
    data = load_dataset(config.dataset, config.data_root)
    weights_half, _ = search_batches(data, int(config.batch_size), device="cpu", seed=config.seed)
    images, labels = base.batches.fixed(args.images)
    distribution = base.distribution()
    trivial = {label: "conv_3x3" for label in distribution.labels}
    panel = panel_architectures(table, 200, 50, seed=config.seed)
    neighbours = [trivial] + [{**trivial, label: op} for label in distribution.labels
                              for op in distribution.values[label] if op != "conv_3x3"]
    splits = args.labels.split(",") if args.labels else [None, *distribution.labels]
    rows = []
    for label in splits:
        started = time.perf_counter()
        supernets = {None: base} if label is None else {
            value: fine_tune(base, label, value, weights_half, args.epochs, args.learning_rate, config.seed)
            for value in distribution.values[label]}
        trained = time.perf_counter() - started
        panel_losses = score(supernets, label, panel, images, labels)
        near_losses = score(supernets, label, neighbours, images, labels)
        accuracies = [table.accuracy(cell) for cell in panel]
        best_near = min(range(len(neighbours)), key=near_losses.__getitem__)
        change = [f"{k.split('/')[-1]}={v}" for k, v in neighbours[best_near].items() if v != "conv_3x3"]
        order = sorted(range(len(neighbours)), key=near_losses.__getitem__)
        skip_rank = 1 + order.index(next(i for i, c in enumerate(neighbours) if c["cell/0_3"] == "skip_connect"))
        rows.append({"supernet": args.supernet, "seed": config.seed, "split": label or "(none)", "epochs": args.epochs,
                     "loss_tau": kendall_tau([-x for x in panel_losses], accuracies),
                     "panel_best_by_loss": accuracies[min(range(len(panel)), key=panel_losses.__getitem__)],
                     "neighbour_best_change": ",".join(change) or "(all conv_3x3)",
                     "neighbour_best_by_loss": table.accuracy(neighbours[best_near]),
                     "rank_of_0_3_skip": skip_rank, "seconds": trained, "images": len(labels)})
        print(rows[-1], flush=True)
        path = Path(args.out)
        pd.DataFrame([rows[-1]]).to_csv(path, mode="a", header=not path.exists(), index=False)


if __name__ == "__main__":
    main()
