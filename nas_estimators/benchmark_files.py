"""The official NAS-Bench-201 / NATS-Bench topology files as this project's benchmark table (a CSV).

The files hold every cell's training curves on CIFAR-10, CIFAR-100 and ImageNet16-120 for several seeds;
``--benchmark-table`` needs one number a cell. :func:`read_official` asks the ``nats_bench`` package (the
benchmark authors' reader, ``pip install nats_bench``) for each cell's mean test accuracy after the last
epoch, as the NAS-Bench-201 papers report it, and returns the ``arch, <dataset>_test_accuracy`` table.

Example::

    from nas_estimators.benchmark_files import read_official
    table = read_official("NATS-tss-v1_0-3ffb9-full.pickle.pbz2")   # or the -simple directory, or a .pth
    table.to_csv("nas-bench-201-cifar10.csv", index=False)
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

__all__ = ["DATASETS", "read_official"]

# The benchmark's data sets (its names) and the split whose accuracy NAS-Bench-201 reports as "test".
DATASETS = {"cifar10": "ori-test", "cifar100": "x-test", "ImageNet16-120": "x-test"}


def read_official(path: str | os.PathLike[str], dataset: str = "cifar10", epochs: str = "200") -> pd.DataFrame:
    """The cells of an official topology file with their mean test accuracy after ``epochs`` epochs of training.

    ``path``: NATS-Bench's ``NATS-tss-*.pickle.pbz2`` file, its ``-simple`` directory (read one cell at a
    time), or NAS-Bench-201's ``.pth`` file (a dict of the same layout; its 200-epoch results are
    ``epochs="full"`` in v1_0). Raises ValueError naming what is wrong with the file or the arguments.
    """
    try:
        import nats_bench
    except ImportError:
        raise ValueError("reading the official files needs the nats_bench package: pip install nats_bench") from None
    if dataset not in DATASETS:
        raise ValueError(f"dataset: expected one of {', '.join(DATASETS)}, got {dataset!r}")
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file or directory")
    source: object = str(path)
    if path.suffix == ".pth":  # NAS-Bench-201's file: torch's pickle of the dict nats_bench reads
        import torch

        source = torch.load(path, map_location="cpu", weights_only=False)
    try:
        api = nats_bench.create(source, "tss", fast_mode=path.is_dir(), verbose=False)
    except Exception as error:  # the reader's own assertions and KeyErrors on a file of another layout
        raise ValueError(f"{path}: not a NAS-Bench-201/NATS-Bench topology file ({type(error).__name__}: "
                         f"{' '.join(str(error).split())[:200]})") from None
    rows = []
    for index in range(len(api)):
        if path.is_dir():
            api.reload(str(path), index)
        try:
            results = api.arch2infos_dict[index][str(epochs)]
        except KeyError:
            available = sorted(api.arch2infos_dict.get(index, {}))
            raise ValueError(f"epochs: {path} has no results after {epochs} epochs for cell {index}; "
                             f"it has {', '.join(available) or 'none'}") from None
        try:
            metrics = results.get_metrics(dataset, DATASETS[dataset], is_random=False)
        except KeyError:
            raise ValueError(f"dataset: {path} has no {dataset} results for cell {index}") from None
        rows.append((api.meta_archs[index], float(metrics["accuracy"])))
        if path.is_dir():
            del api.arch2infos_dict[index]  # one cell in memory at a time
    return pd.DataFrame(rows, columns=["arch", f"{dataset}_test_accuracy"])
