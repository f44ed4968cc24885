"""Latency as a cost: a per-candidate lookup table, measured once per device and network, cached on disk.

Timing a whole sampled network at every step is slow and noisy. As ProxylessNAS and nn-Meter do, an
architecture's latency is predicted as a sum: a reference architecture's measured latency plus, for each
label, what its chosen candidate adds over the reference's candidate. The table is fitted end to end on
the network it will predict (the search's own path-sampling network, in evaluation mode, one input, this
process's threads): each of a few hundred architectures (the reference, every architecture one label away
from it, then uniformly drawn ones) is timed by the median of ``repeats`` forward passes, and the entries are
their least-squares fit, with a steady drift of the machine fitted apart (:meth:`LatencyTable.measure`).
The table is kept in the user's cache directory (:func:`cache_directory`), keyed by the device, the thread
count, the network's structure and the input's shape, so a second search on the same machine reuses it.
``docs/cost-aware.md`` says how well its sums predict measured latency.

Example:
    >>> import torch
    >>> from nas_estimators import ArchitectureDistribution
    >>> dist = ArchitectureDistribution({"op": ["small", "large"]})
    >>> table = LatencyTable(dist.values, {"op": "small"}, 1.0, {"op": [0.0, 2.5]})
    >>> table.predict({"op": "large"})
    3.5
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from .distribution import Architecture, ArchitectureDistribution
from .files import atomic_write_text
from .pooling import native_pooling

__all__ = ["LatencyTable", "measure_latency", "cache_directory", "device_name", "cached_table"]

#: Forward passes each architecture the table is fitted on is timed by (their median).
REPEATS = 5


def device_name(device: torch.device) -> str:
    """The processor or GPU that runs ``device``: the cache's first key."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_directory() -> Path:
    """``$NAS_ESTIMATORS_CACHE/latency``, else ``$XDG_CACHE_HOME/nas-estimators/latency``, else
    ``~/.cache/nas-estimators/latency``."""
    root = os.environ.get("NAS_ESTIMATORS_CACHE")
    if root:
        return Path(root) / "latency"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nas-estimators" / "latency"


def measure_latency(forward: Callable[[], Any], device: torch.device, repeats: int = REPEATS) -> float:
    """Median milliseconds of ``repeats`` calls of ``forward`` after two untimed ones."""
    times = []
    for index in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        forward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index >= 2:
            times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


class LatencyTable:
    """``predict(architecture)``: the reference's milliseconds plus each label's entry for its candidate.

    Args:
        values: each label's candidates (``ArchitectureDistribution.values``).
        reference: the architecture every entry is measured against.
        reference_ms: its latency.
        entries: per label, what each candidate adds over the reference's (0 for the reference's own), in
            milliseconds, in the order of ``values``.
    """

    def __init__(self, values: Mapping[str, Sequence[Any]], reference: Architecture, reference_ms: float,
                 entries: Mapping[str, Sequence[float]]) -> None:
        self.values = {label: list(candidates) for label, candidates in values.items()}
        self.reference = dict(reference)
        self.reference_ms = float(reference_ms)
        self.entries = {label: [float(ms) for ms in entries[label]] for label in self.values}

    def predict(self, architecture: Architecture) -> float:
        total = self.reference_ms
        for label, candidates in self.values.items():
            value = architecture[label]
            if value not in candidates and isinstance(value, list) and len(value) == 1:
                value = value[0]  # a wrapped label's one-element list (DARTS's inputs)
            total += self.entries[label][candidates.index(value)]
        return total

    @classmethod
    def measure(cls, network: nn.Module, inputs: torch.Tensor, distribution: ArchitectureDistribution,
                apply: Callable[[Architecture], None], repeats: int = REPEATS,
                time_forward: Callable[[Callable[[], Any], torch.device, int], float] | None = None,
                architectures: int | None = None, seed: int = 0) -> "LatencyTable":
        """Fit the table on ``network`` for one of ``inputs``; ``apply(architecture)`` sets its path.

        Times end to end the reference (each label's first candidate), each architecture one label away from
        it, then ``architectures`` uniformly drawn ones (default: twice the table's entries plus two), and fits
        the reference's milliseconds and every entry by least squares, with a term linear in the order of
        timing that the table leaves out (a machine slowing steadily does not enter the entries). On NNI's
        DARTS cells a candidate's cost depends on the others (one changed label at a time mispredicted random
        cells by 123%; the fit by 11%: docs/cost-aware.md). ``time_forward(forward, device, repeats)`` times a
        forward pass (default :func:`measure_latency`).
        """
        time_forward = time_forward or measure_latency
        device = inputs.device
        one = inputs[:1]
        columns = [(label, index) for label in distribution.labels
                   for index in range(1, len(distribution.values[label]))]
        reference = {label: 0 for label in distribution.labels}
        drawn = [reference, *({**reference, label: index} for label, index in columns)]
        generator = torch.Generator().manual_seed(seed)
        count = 2 * (len(columns) + 2) if architectures is None else int(architectures)
        drawn += [{label: int(value) for label, value in distribution.sample_indices(generator).items()}
                  for _ in range(count)]
        was_training = network.training
        network.eval()
        try:
            times = []
            for indices in drawn:
                apply(distribution.to_architecture(indices))
                with torch.no_grad(), native_pooling():  # the frozen network's pooling, not the search's stand-in
                    times.append(time_forward(lambda: network(one), device, repeats))
        finally:
            apply(distribution.to_architecture(reference))
            network.train(was_training)
        position = {column: offset for offset, column in enumerate(columns, 2)}
        design = torch.zeros(len(drawn), len(columns) + 2, dtype=torch.float64)
        design[:, 0] = 1.0
        design[:, 1] = torch.arange(len(drawn), dtype=torch.float64) - (len(drawn) - 1) / 2  # the drift
        for row, indices in enumerate(drawn):
            for label, index in indices.items():
                if index:
                    design[row, position[(label, index)]] = 1.0
        solution = torch.linalg.lstsq(design, torch.tensor(times, dtype=torch.float64).unsqueeze(1),
                                      driver="gelsd").solution.squeeze(1).tolist()
        entries = {label: [0.0] + [solution[position[(label, index)]]
                                   for index in range(1, len(distribution.values[label]))]
                   for label in distribution.labels}
        return cls(distribution.values, distribution.to_architecture(reference), solution[0], entries)

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "reference_ms": self.reference_ms,
                "values": self.values, "entries": self.entries}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "LatencyTable":
        return cls(record["values"], record["reference"], record["reference_ms"], record["entries"])


def table_key(network: nn.Module, inputs: torch.Tensor, repeats: int = REPEATS) -> dict[str, Any]:
    """What a cached table must share with the search that reuses it."""
    return {"device": device_name(inputs.device), "threads": torch.get_num_threads(),
            "network": hashlib.sha256(repr(network).encode()).hexdigest()[:16],
            "input_shape": list(inputs[:1].shape), "torch": torch.__version__, "repeats": repeats,
            "fit": "least squares over random architectures"}


def cached_table(network: nn.Module, inputs: torch.Tensor, distribution: ArchitectureDistribution,
                 apply: Callable[[Architecture], None], directory: Path | None = None,
                 repeats: int = REPEATS, time_forward: Callable | None = None) -> tuple[LatencyTable, Path]:
    """The table of ``network`` on this device: read from ``directory`` (default :func:`cache_directory`)
    when measured before, else measured and written there. Returns it and its file."""
    key = table_key(network, inputs, repeats)
    directory = cache_directory() if directory is None else Path(directory)
    path = directory / (hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20] + ".json")
    if path.is_file():
        try:
            record = json.loads(path.read_text())
            if record.get("key") == key:
                return LatencyTable.from_dict(record["table"]), path
        except (ValueError, KeyError, TypeError):
            pass  # a damaged file is measured again and replaced
    table = LatencyTable.measure(network, inputs, distribution, apply, repeats, time_forward)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"key": key, "table": table.to_dict()}, indent=2) + "\n")
    except OSError as error:  # the cache only saves time: a search goes on with the table it measured
        warnings.warn(f"latency table not cached ({error}); set NAS_ESTIMATORS_CACHE to a writable folder")
    return table, path
