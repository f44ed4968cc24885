"""An NNI pipeline as users write it, with our strategy where NNI's DARTS would go.

NAS-Bench-201's cell space from NNI's hub, NNI's ``Classification`` evaluator on scikit-learn's digits
(8x8 images, no download), ``NasExperiment`` with ``nas_estimators.SF()``, then the top architectures
and a drawing of the best cell (an interactive plotly HTML, and Graphviz DOT text)::

    python examples/nni_pipeline.py --output runs/nni-pipeline            # about a minute on one CPU core
    python examples/nni_pipeline.py --epochs 2 --width 4 --output /tmp/x  # the tests' size

Swap ``nas_estimators.SF()`` for ``RELAX()`` or ``RAM()``, or back for ``nni.nas.strategy.DARTS()``.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch
from sklearn.datasets import load_digits

import nas_estimators
from nas_estimators.integrations.diagrams import plotly_figure, to_dot
from nas_estimators.integrations.export import cell_graphs

with warnings.catch_warnings():  # NNI 3.0 imports modules that warn on today's libraries
    warnings.simplefilter("ignore")
    from nni.nas.evaluator.pytorch import Classification, DataLoader
    from nni.nas.experiment import NasExperiment
    from nni.nas.hub.pytorch import NasBench201


def digits_loaders(batch_size: int = 64) -> tuple[DataLoader, DataLoader]:
    """Digits as 3-channel 8x8 images, split in halves: one trains the weights, the other scores architectures."""
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).div(16.0).unsqueeze(1).repeat(1, 3, 1, 1)
    labels = torch.tensor(digits.target)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    half = len(order) // 2
    train = torch.utils.data.TensorDataset(images[order[:half]], labels[order[:half]])
    valid = torch.utils.data.TensorDataset(images[order[half:]], labels[order[half:]])
    return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(valid, batch_size=batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--width", type=int, default=8, help="NAS-Bench-201's stem channels")
    parser.add_argument("--output", default="runs/nni-pipeline")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a small supernet: one thread is fastest, and kind to other jobs
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    train_loader, valid_loader = digits_loaders()
    space = NasBench201(stem_out_channels=args.width, num_modules_per_stack=1, num_labels=10)
    evaluator = Classification(train_dataloaders=train_loader, val_dataloaders=valid_loader, max_epochs=args.epochs,
                               num_classes=10, learning_rate=0.025, logger=False, enable_checkpointing=False,
                               enable_progress_bar=False, enable_model_summary=False)
    strategy = nas_estimators.SF()  # the search recipe: 60% of the epochs train the weights only
    experiment = NasExperiment(space, evaluator, strategy)
    experiment.config.experiment_working_directory = str(output / "nni-experiments")  # not ~/nni-experiments
    experiment.run()

    best = experiment.export_top_models(formatter="dict")[0]
    top = experiment.export_top_models(top_k=5, formatter="dict")
    (output / "top5.json").write_text(json.dumps(top, indent=2) + "\n")
    cells = cell_graphs(best, "nb201")
    plotly_figure(cells, title="the most probable cell").write_html(output / "cell.html", include_plotlyjs="cdn")
    (output / "cell.dot").write_text(to_dot(cells[0]))
    print("best architecture:", best)
    print(f"entropy of the distribution: {float(strategy.distribution.entropy()):.3f} "
          f"(uniform: {float(nas_estimators.ArchitectureDistribution(strategy.distribution.values).entropy()):.3f})")
    print(f"top 5: {output / 'top5.json'}; the cell: {output / 'cell.html'} and {output / 'cell.dot'}")


if __name__ == "__main__":
    main()
