"""NAS-Bench-201: NNI samples <-> benchmark architecture strings, and a table of accuracies.

NNI's :class:`nni.nas.hub.pytorch.NasBench201` space has six labels ``cell/i_j``, one per edge of the
4-node cell DAG: the op on label ``cell/i_j`` transforms node ``i`` (the source; node 0 is the cell
input) into a summand of node ``j`` (the target; node 3 is the cell output). This follows NNI's
``NasBench201Cell``, which builds ``LayerChoice(label=f'{j}_{tid}')`` for input ``j`` of node ``tid``
and applies ``layers[tid - 1][j]`` to ``tensors[j]``.

The benchmark writes the same cell as ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``: one ``+``-separated
group per target node 1, 2, 3, each listing ``op~source`` for sources 0..target-1. Both sides use the
same edge order, so the mapping is ``cell/0_1, cell/0_2, cell/1_2, cell/0_3, cell/1_3, cell/2_3``;
only two op names differ (NNI ``conv_1x1``/``conv_3x3`` are the benchmark's ``nor_conv_1x1``/``nor_conv_3x3``).

Example:

>>> sample = {"cell/0_1": "conv_3x3", "cell/0_2": "conv_3x3", "cell/1_2": "avg_pool_3x3",
...           "cell/0_3": "skip_connect", "cell/1_3": "conv_3x3", "cell/2_3": "skip_connect"}
>>> to_arch_string(sample)
'|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'
>>> from_arch_string(to_arch_string(sample)) == sample
True
"""

from __future__ import annotations

import bisect
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping, Union

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EDGES", "LABELS", "NNI_OPS", "BENCHMARK_OPS", "to_arch_string", "from_arch_string",
    "BenchmarkTable", "TableFormatError", "ArchitectureNotFoundError", "benchmark_listener", "CellCosts",
    "NUM_ARCHITECTURES", "read_full_table",
]

#: Cells in NAS-Bench-201's space: five operations on each of six edges.
NUM_ARCHITECTURES = 5 ** 6

#: (source, target) node pairs in the order both NNI and the benchmark string enumerate them.
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
#: NNI labels of the edges, aligned with :data:`EDGES` (NNI names them ``source_target``).
LABELS: tuple[str, ...] = tuple(f"cell/{i}_{j}" for i, j in EDGES)
#: NNI's candidate names (``nni.nas.hub.pytorch.nasbench201.PRIMITIVES``), aligned with BENCHMARK_OPS.
NNI_OPS: tuple[str, ...] = ("none", "skip_connect", "conv_1x1", "conv_3x3", "avg_pool_3x3")
#: The benchmark's names for the same operations.
BENCHMARK_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

_TO_BENCH = dict(zip(NNI_OPS, BENCHMARK_OPS))
_TO_NNI = dict(zip(BENCHMARK_OPS, NNI_OPS))
_NUM_NODES = 4
_EXAMPLE = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"

Architecture = Union[str, Mapping[str, str]]


def to_arch_string(sample: Mapping[str, str]) -> str:
    """The NAS-Bench-201 string of an NNI ``NasBench201`` sample.

    Keys other than the six ``cell/i_j`` labels are ignored, so a sample of a larger space works too.

    >>> to_arch_string({label: "skip_connect" for label in LABELS})
    '|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|'
    """
    if not isinstance(sample, Mapping):
        raise TypeError(f"sample: expected a mapping of NNI labels to op names, got {type(sample).__name__}")
    missing = [label for label in LABELS if label not in sample]
    if missing:
        raise ValueError(f"NNI NasBench201 sample lacks label(s) {', '.join(missing)}; "
                         f"required: {', '.join(LABELS)}")
    groups: list[list[str]] = [[] for _ in range(1, _NUM_NODES)]
    for (source, target), label in zip(EDGES, LABELS):
        op = sample[label]
        if op not in _TO_BENCH:
            raise ValueError(f"NNI NasBench201 sample has unknown op {op!r} for {label}; "
                             f"allowed: {', '.join(NNI_OPS)}")
        groups[target - 1].append(f"{_TO_BENCH[op]}~{source}")
    return "+".join("|" + "|".join(group) + "|" for group in groups)


def from_arch_string(arch: str) -> dict[str, str]:
    """The NNI ``NasBench201`` sample of a NAS-Bench-201 string (labels in :data:`LABELS` order).

    The string must be canonical: sources listed in order 0..target-1 in each group, as the
    benchmark writes them. Surrounding whitespace is ignored.

    >>> from_arch_string("|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|avg_pool_3x3~2|")["cell/0_1"]
    'conv_1x1'
    """
    if not isinstance(arch, str):
        raise TypeError(f"arch: expected a NAS-Bench-201 string, got {type(arch).__name__}")
    text = arch.strip()
    groups = text.split("+")
    if len(groups) != _NUM_NODES - 1:
        raise ValueError(f"malformed NAS-Bench-201 string {arch!r}: expected {_NUM_NODES - 1} "
                         f"'+'-separated node groups like {_EXAMPLE!r}, got {len(groups)}")
    sample: dict[str, str] = {}
    for target, group in enumerate(groups, start=1):
        # "|a~0|b~1|".split("|") == ["", "a~0", "b~1", ""]: the empty ends check the bars are there.
        tokens = group.split("|")
        if len(tokens) != target + 2 or tokens[0] or tokens[-1]:
            raise ValueError(f"malformed NAS-Bench-201 string {arch!r}: node {target} group {group!r} "
                             f"should be {target} '|'-delimited edge(s) like {_EXAMPLE!r}")
        for source, token in enumerate(tokens[1:-1]):
            op, sep, index = token.partition("~")
            if not sep or index != str(source):
                raise ValueError(f"malformed NAS-Bench-201 string {arch!r}: edge {token!r} of node {target} "
                                 f"should be 'op~{source}' (sources in order 0..{target - 1})")
            if op not in _TO_NNI:
                raise ValueError(f"unknown op {op!r} in NAS-Bench-201 string {arch!r}; "
                                 f"allowed: {', '.join(BENCHMARK_OPS)}")
            sample[f"cell/{source}_{target}"] = _TO_NNI[op]
    # Reorder to LABELS so dict equality and printing match NNI's own label order.
    return {label: sample[label] for label in LABELS}


def _canonical(arch: Architecture) -> str:
    """Canonical string of a sample or string; validates either (ValueError / TypeError)."""
    if isinstance(arch, str):
        return to_arch_string(from_arch_string(arch))
    if isinstance(arch, Mapping):
        return to_arch_string(arch)
    raise TypeError(f"expected a NAS-Bench-201 string or an NNI sample mapping, got {type(arch).__name__}")



def check_table_space(space: str, option: str = "benchmark_table") -> None:
    """A NAS-Bench-201 table scores only the ``nb201`` space: a ValueError naming ``option`` otherwise."""
    if space != "nb201":
        raise ValueError(f"{option}: a NAS-Bench-201 table scores the nb201 space, not {space!r}")


class TableFormatError(ValueError):
    """A benchmark CSV that cannot be used as is (no ``arch`` column, duplicates, bad values...)."""


class ArchitectureNotFoundError(KeyError):
    """An architecture that is valid but absent from the table."""

    def __str__(self) -> str:
        # KeyError's default str() is the repr of its argument, quoting the whole message.
        return str(self.args[0]) if self.args else ""


class BenchmarkTable:
    """Accuracy of NAS-Bench-201 architectures, looked up by NNI sample or benchmark string.

    Accuracies are kept in the CSV's units (the NAS-Bench-201 CIFAR-10 export uses percent).

    >>> table = BenchmarkTable({"|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|": 10.0})
    >>> table.accuracy({label: "none" for label in LABELS} | {"cell/0_1": "skip_connect"})
    10.0
    """

    def __init__(self, accuracies: Mapping[str, float], source: str = "<memory>",
                 accuracy_column: str | None = None) -> None:
        self.source = source
        self.accuracy_column = accuracy_column
        self._acc: dict[str, float] = {}
        for arch, acc in accuracies.items():
            key = _canonical(arch)
            if key in self._acc:
                raise TableFormatError(f"{source}: duplicate architecture {key!r}")
            self._acc[key] = float(acc)
        if not self._acc:
            raise TableFormatError(f"{source}: the table has no architectures")
        # Sorted copy for rank(): a bisection instead of a scan of 15,625 rows per call.
        self._sorted = sorted(self._acc.values())

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str], accuracy_column: str | None = None) -> "BenchmarkTable":
        """Load a CSV with an ``arch`` column of benchmark strings and one accuracy column.

        Without ``accuracy_column``, the column is the only one whose name contains ``acc``, or,
        when no name does, the only numeric column besides ``arch``; anything else is ambiguous.
        """
        import pandas as pd  # local: importing this module for the string helpers should stay cheap

        src = str(path)
        if not Path(path).is_file():
            raise FileNotFoundError(f"NAS-Bench-201 table not found: {src}")
        try:
            frame = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise TableFormatError(f"{src}: not a readable CSV ({reason})") from err
        columns = [str(c) for c in frame.columns]
        frame.columns = columns
        if "arch" not in columns:
            raise TableFormatError(f"{src}: no 'arch' column; columns are {columns}")
        column = accuracy_column if accuracy_column is not None else cls._guess_column(frame, src)
        if column not in columns or column == "arch":
            raise TableFormatError(f"{src}: accuracy column {column!r} not usable; columns are {columns}")
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raw = frame[column].iloc[row]
            what = "an empty value" if pd.isna(raw) else f"non-numeric value {str(raw)!r}"
            raise TableFormatError(f"{src}: column {column!r} has {what} at data row {row + 1}")
        accuracies: dict[str, float] = {}
        first_row: dict[str, int] = {}
        for row, (arch, acc) in enumerate(zip(frame["arch"], values), start=1):
            if not isinstance(arch, str):  # pandas reads an empty cell as NaN
                raise TableFormatError(f"{src}: data row {row}: empty 'arch' value")
            try:
                key = _canonical(arch)
            except ValueError as err:
                raise TableFormatError(f"{src}: data row {row}: {err}") from err
            if key in first_row:
                raise TableFormatError(f"{src}: duplicate architecture {key!r} at data rows "
                                       f"{first_row[key]} and {row}")
            first_row[key] = row
            accuracies[key] = float(acc)
        return cls(accuracies, source=src, accuracy_column=column)

    @staticmethod
    def _guess_column(frame: pd.DataFrame, src: str) -> str:
        from pandas.api.types import is_numeric_dtype

        others = [c for c in frame.columns if c != "arch"]
        # Names first: a mistyped cell in 'test_acc' should be reported, not silently skipped for 'params'.
        named = [c for c in others if "acc" in c.lower()]
        numeric = [c for c in others if is_numeric_dtype(frame[c])]
        if len(named) == 1:
            return named[0]
        if not named and len(numeric) == 1:
            return numeric[0]
        raise TableFormatError(f"{src}: cannot tell which column is the accuracy among {list(frame.columns)}; "
                               f"pass accuracy_column=")

    def accuracy(self, arch: Architecture) -> float:
        """Accuracy of an NNI sample or a benchmark string; absent ones are :class:`ArchitectureNotFoundError`."""
        key = _canonical(arch)
        try:
            return self._acc[key]
        except KeyError:
            raise ArchitectureNotFoundError(f"architecture {key!r} is not in {self.source} "
                                            f"({len(self)} architectures)") from None

    def rank(self, arch: Architecture) -> int:
        """1 + the number of architectures strictly more accurate (ties share a rank; 1 is best)."""
        acc = self.accuracy(arch)
        return len(self._sorted) - bisect.bisect_right(self._sorted, acc) + 1

    def best(self) -> tuple[str, float]:
        """The most accurate architecture and its accuracy (the first in table order on ties)."""
        arch = max(self._acc, key=self._acc.__getitem__)
        return arch, self._acc[arch]

    def __contains__(self, arch: object) -> bool:
        # Membership never raises: a malformed string or sample is simply not in the table.
        try:
            return _canonical(arch) in self._acc  # type: ignore[arg-type]
        except (ValueError, TypeError):
            return False

    def __len__(self) -> int:
        return len(self._acc)

    def __iter__(self) -> Iterator[str]:
        return iter(self._acc)

    def __repr__(self) -> str:
        return f"BenchmarkTable({len(self)} architectures from {self.source})"


def read_full_table(path: str | os.PathLike[str], option: str = "benchmark-table") -> BenchmarkTable:
    """The table at ``path``, which must hold every cell of the space; one-line ValueError naming ``option``."""
    try:
        table = BenchmarkTable.from_csv(path)
    except FileNotFoundError:
        raise ValueError(f"{option}: no file {path}") from None
    except TableFormatError as error:
        raise ValueError(f"{option}: {error}") from None
    if len(table) != NUM_ARCHITECTURES:
        raise ValueError(f"{option}: {path} has {len(table)} architectures; the nb201 space has "
                         f"{NUM_ARCHITECTURES}, and every one may be asked for")
    return table


def benchmark_listener(table: BenchmarkTable):
    """An epoch listener for ``run_search``: adds ``benchmark_acc``, the table's accuracy of the exported architecture
    (the current mode, unless a budget or re-scoring picks another)."""

    def listener(row: dict, search_module) -> None:
        method = getattr(search_module, "exported_architecture", None)  # ours: what the search would export
        row["benchmark_acc"] = table.accuracy(method() if method is not None else search_module.distribution.mode())

    return listener


class CellCosts:
    """The parameter count or FLOPs of every NAS-Bench-201 network, from 25 measured ones.

    Each edge's operation adds its own parameters and FLOPs (the cell sums its edges; the stem, the
    reduction blocks and the head do not depend on the cell), so a network's cost is the all-``none``
    network's plus one measured increment per (edge, operation). ``cost`` is ``params`` (millions) or
    ``flops`` (MFLOPs of one image, as torch's ``FlopCounterMode`` counts them), measured on NNI's
    ``NasBench201(width, cells per stage)`` for ``image_size`` square RGB images.

    Example::

        costs = CellCosts("flops")                 # NAS-Bench-201's own C=16, N=5 on 32x32 images
        costs(from_arch_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"))
    """

    #: The costs a network's cost is the sum of its edges' for (latency is measured whole, not per table cell).
    KINDS = ("params", "flops")

    def __init__(self, cost: str, width: int = 16, cells: int = 5, image_size: int = 32) -> None:
        import torch

        from . import training_free
        from .spaces import build_space
        from .strategy import path_sampling_supernet
        from .objective import ScoringNetwork

        functions = {"params": training_free.parameter_count, "flops": training_free.flops}
        if cost not in self.KINDS:
            raise ValueError(f"cost: expected one of {', '.join(self.KINDS)}, got {cost!r}")
        self.cost, self.width, self.cells = cost, int(width), int(cells)
        supernet = path_sampling_supernet(build_space("nb201", self.width, self.cells))
        network = ScoringNetwork(supernet, torch.zeros(1, 3, image_size, image_size))
        empty = {label: "none" for label in LABELS}
        self.base = network.score(empty, functions[cost])
        self.increments = {(label, op): network.score({**empty, label: op}, functions[cost]) - self.base
                           for label in LABELS for op in NNI_OPS}

    def __call__(self, architecture: Architecture) -> float:
        sample = from_arch_string(architecture) if isinstance(architecture, str) else architecture
        return self.base + sum(self.increments[label, sample[label]] for label in LABELS)

    def bounds(self) -> tuple[float, float]:
        """The cheapest and the dearest network's cost."""
        return (self.base + sum(min(self.increments[label, op] for op in NNI_OPS) for label in LABELS),
                self.base + sum(max(self.increments[label, op] for op in NNI_OPS) for label in LABELS))

    def levels(self) -> list[float]:
        """Every distinct cost a network of the space has, cheapest first (costs add over the edges, so
        many cells share one: 28 FLOPs levels among the 15,625 cells)."""
        sums = {0.0}
        for label in LABELS:
            sums = {round(total + self.increments[label, op], 9) for total in sums for op in NNI_OPS}
        return sorted(self.base + total for total in sums)
