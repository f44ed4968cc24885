"""Latency as a cost: a per-candidate lookup table, measured once per device and network, cached on disk.

Timing a whole sampled network at every step is slow and noisy. As ProxylessNAS and nn-Meter do, an
architecture's latency is predicted as a sum: a reference architecture's measured latency plus, for each
label, what its chosen candidate adds over the reference's candidate. Each entry is measured end to end on
the network it will predict (the search's own path-sampling network, in evaluation mode, one input, this
process's threads): the median of ``repeats`` forward passes with that one label changed, less the reference
measured just before and just after that label's passes (their mean: a slow drift of the machine does not
enter the differences).
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

#: Forward passes a table entry is the median of.
REPEATS = 15


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
                time_forward: Callable[[Callable[[], Any], torch.device, int], float] | None = None) -> "LatencyTable":
        """Measure the table on ``network`` for one of ``inputs``; ``apply(architecture)`` sets its path.

        The reference is each label's first candidate. ``time_forward(forward, device, repeats)`` times a
        forward pass (default :func:`measure_latency`).
        """
        time_forward = time_forward or measure_latency
        device = inputs.device
        one = inputs[:1]
        reference = distribution.to_architecture({label: 0 for label in distribution.labels})
        was_training = network.training
        network.eval()

        def timed(architecture: Architecture) -> float:
            apply(architecture)
            with torch.no_grad(), native_pooling():  # the frozen network's pooling, not the search's stand-in
                return time_forward(lambda: network(one), device, repeats)

        try:
            references, entries = [], {}
            for label in distribution.labels:
                before = timed(reference)
                changed = [timed({**reference, label: distribution.value_of(label, index)})
                           for index in range(1, len(distribution.values[label]))]
                after = timed(reference)
                references += [before, after]
                entries[label] = [0.0] + [ms - (before + after) / 2 for ms in changed]
        finally:
            apply(reference)
            network.train(was_training)
        return cls(distribution.values, reference, statistics.median(references), entries)

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
            "input_shape": list(inputs[:1].shape), "torch": torch.__version__, "repeats": repeats}


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
