"""Architectures as NNI sample dicts: checks against a space, DARTS genotypes, and search outputs read back.

An architecture is NNI's sample dict (label -> value), the format ``export_top_models(formatter='dict')``
returns and ``model_space.freeze(sample)`` takes. For NNI's DARTS space (``nni.nas.hub.pytorch.DARTS``)
the labels are ``{normal,reduce}/op_{i}_{j}`` (the operation on the j-th input of node i, i in 2..5,
j in 0..1) and ``{normal,reduce}/input_{i}_{j}`` (a one-element list: which earlier node feeds it;
0 is c_{k-2}, 1 is c_{k-1}, 2..i-1 are the cell's own nodes). NNI builds that space with
``merge_op='all'``, so the cell output concatenates nodes 2..5 (``nni.nas.nn.pytorch.Cell``).

DARTS' genotype lists the same cell as ``[(op, input node), ...]``, two entries per node in node
order, so entry ``2*(i-2)+j`` is ``(op_{i}_{j}, input_{i}_{j}[0])`` and ``concat`` is ``[2, 3, 4, 5]``:

>>> darts_v2 = parse_genotype(DARTS_V2_GENOTYPE)
>>> from_genotype(darts_v2)["normal/input_5_1"]
[2]
>>> to_genotype(from_genotype(darts_v2)) == darts_v2
True
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

from .nasbench201 import LABELS as NB201_LABELS
from .nasbench201 import NNI_OPS as NB201_OPS
from .run_folder import RunFolder
from .spaces import SPACES

__all__ = [
    "ArchitectureError", "CELL_TYPES", "DARTS_NODES", "DARTS_OPS", "DARTS_SHAPE_LABELS", "DARTS_V2_GENOTYPE",
    "Genotype", "INPUTS_PER_NODE", "SearchOutput", "check_architecture", "darts_shape", "detect_space",
    "format_genotype", "from_genotype", "load_architectures", "load_search", "parse_genotype", "space_choices",
    "to_genotype",
]

#: ``nni.nas.hub.pytorch.DARTS.DARTS_OPS`` (a test checks the copy against NNI).
DARTS_OPS: tuple[str, ...] = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                              "dil_conv_3x3", "dil_conv_5x5")
CELL_TYPES: tuple[str, ...] = ("normal", "reduce")
#: Intermediate nodes of a DARTS cell; nodes 0 and 1 are its inputs c_{k-2} and c_{k-1}.
DARTS_NODES: tuple[int, ...] = (2, 3, 4, 5)
INPUTS_PER_NODE = 2
#: The DARTS paper's final cell (``DARTS_V2`` in quark0/darts ``genotypes.py``), for docs and tests.
DARTS_V2_GENOTYPE = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])"
)

#: Labels of NNI's hub DARTS space outside its cells, present when it is built with a width or a depth
#: range (``DARTS(width=(16, 24), num_cells=(4, 8))``): the searched network's shape. A genotype and a
#: cell diagram describe the cells only; :func:`darts_shape` reads these.
DARTS_SHAPE_LABELS: tuple[str, ...] = ("width", "depth")

Architecture = dict


class ArchitectureError(ValueError):
    """An architecture, genotype or search directory that cannot be exported; the message is one line."""


# ----------------------------------------------------------------------------------------- spaces


def space_choices(space: str) -> dict[str, list[Any]]:
    """Every label of a space and its candidate values, as NNI's ``model_space.simplify()`` lists them."""
    if space == "darts":
        choices: dict[str, list[Any]] = {}
        for cell in CELL_TYPES:
            for node in DARTS_NODES:
                for j in range(INPUTS_PER_NODE):
                    choices[f"{cell}/op_{node}_{j}"] = list(DARTS_OPS)
                    choices[f"{cell}/input_{node}_{j}"] = [[source] for source in range(node)]
        return choices
    if space == "nb201":
        return {label: list(NB201_OPS) for label in NB201_LABELS}
    raise ArchitectureError(f"space: expected one of {', '.join(SPACES)}, got {space!r}")


def detect_space(architecture: Mapping[str, Any]) -> str:
    """``'darts'`` or ``'nb201'`` from an architecture's labels."""
    if not isinstance(architecture, Mapping) or not architecture:
        raise ArchitectureError(f"architecture: expected a non-empty dict of NNI labels to values, "
                                f"got {type(architecture).__name__}")
    labels = set(architecture)
    if any(label.split("/", 1)[0] in CELL_TYPES for label in labels):
        return "darts"
    if labels & set(NB201_LABELS):
        return "nb201"
    raise ArchitectureError(f"architecture: labels {sorted(labels)[:3]}... belong to neither the darts space "
                            f"(normal/op_2_0, ...) nor the nb201 space (cell/0_1, ...)")


def check_architecture(architecture: Mapping[str, Any], space: str | None = None) -> str:
    """Check that ``architecture`` is one point of ``space`` (detected when None); return the space's name."""
    space = space or detect_space(architecture)
    choices = space_choices(space)
    if not isinstance(architecture, Mapping):
        raise ArchitectureError(f"architecture: expected a dict of NNI labels to values, got {type(architecture).__name__}")
    if space == "darts":
        darts_shape(architecture)  # checks the optional shape labels
        architecture = {label: value for label, value in architecture.items() if label not in DARTS_SHAPE_LABELS}
    unknown = [label for label in architecture if label not in choices]
    if unknown:
        raise ArchitectureError(f"architecture: label {unknown[0]!r} is not in the {space} space "
                                f"(labels look like {next(iter(choices))!r})")
    for label, value in architecture.items():  # wrong values first: they say more than missing labels
        if value not in choices[label]:
            shown = ", ".join(json.dumps(candidate) for candidate in choices[label])
            raise ArchitectureError(f"architecture: {label} = {json.dumps(value)} is not a candidate "
                                    f"of the {space} space (candidates: {shown})")
    missing = [label for label in choices if label not in architecture]
    if missing:
        raise ArchitectureError(f"architecture: the {space} space needs label {missing[0]!r}, which is missing "
                                f"({len(missing)} of {len(choices)} labels missing)")
    return space


def darts_shape(architecture: Mapping[str, Any]) -> dict[str, int]:
    """The searched ``width`` and ``depth`` of a DARTS-space architecture (empty when the space fixed both)."""
    shape = {label: architecture[label] for label in DARTS_SHAPE_LABELS if label in architecture}
    for label, value in shape.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArchitectureError(f"architecture: {label} = {json.dumps(value)} is not a positive integer "
                                    f"(the {label} of NNI's DARTS space built with a {label} range)")
    return shape


# ----------------------------------------------------------------------------------------- genotypes


class Genotype(NamedTuple):
    """DARTS' ``Genotype``: per cell, ``[(operation, input node), ...]`` two per node, and the concat nodes."""

    normal: list[tuple[str, int]]
    normal_concat: list[int]
    reduce: list[tuple[str, int]]
    reduce_concat: list[int]


def to_genotype(architecture: Mapping[str, Any]) -> Genotype:
    """The DARTS genotype of an NNI DARTS-space sample."""
    check_architecture(architecture, "darts")
    cells = {cell: [(architecture[f"{cell}/op_{node}_{j}"], int(architecture[f"{cell}/input_{node}_{j}"][0]))
                    for node in DARTS_NODES for j in range(INPUTS_PER_NODE)] for cell in CELL_TYPES}
    return Genotype(normal=cells["normal"], normal_concat=list(DARTS_NODES),
                    reduce=cells["reduce"], reduce_concat=list(DARTS_NODES))


def from_genotype(genotype: Genotype | Sequence[Any]) -> Architecture:
    """The NNI DARTS-space sample of a DARTS genotype (checked: 8 edges a cell, concat of nodes 2..5)."""
    genotype = Genotype(*genotype)
    architecture: Architecture = {}
    for cell in CELL_TYPES:
        edges, concat = getattr(genotype, cell), list(getattr(genotype, f"{cell}_concat"))
        if concat != list(DARTS_NODES):
            raise ArchitectureError(f"genotype: {cell}_concat is {concat}; NNI's DARTS space always "
                                    f"concatenates nodes {list(DARTS_NODES)}")
        if len(edges) != len(DARTS_NODES) * INPUTS_PER_NODE:
            raise ArchitectureError(f"genotype: {cell} has {len(edges)} edges; a DARTS cell has "
                                    f"{len(DARTS_NODES) * INPUTS_PER_NODE} (two per node)")
        for position, edge in enumerate(edges):
            node, j = DARTS_NODES[position // INPUTS_PER_NODE], position % INPUTS_PER_NODE
            try:
                operation, source = edge
            except (TypeError, ValueError):
                raise ArchitectureError(f"genotype: {cell} edge {position} is {edge!r}, not (operation, input node)") from None
            architecture[f"{cell}/op_{node}_{j}"] = operation
            architecture[f"{cell}/input_{node}_{j}"] = [source]
    check_architecture(architecture, "darts")
    return architecture


def format_genotype(genotype: Genotype) -> str:
    """One line, as DARTS' ``genotypes.py`` writes it (concat as a list)."""
    return (f"Genotype(normal={list(genotype.normal)!r}, normal_concat={list(genotype.normal_concat)!r}, "
            f"reduce={list(genotype.reduce)!r}, reduce_concat={list(genotype.reduce_concat)!r})")


def parse_genotype(text: str) -> Genotype:
    """Read ``Genotype(normal=[...], normal_concat=range(2, 6), ...)`` without evaluating code."""
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ArchitectureError(f"genotype: not a Genotype(...) expression: {text.strip()[:60]!r}") from None
    if not isinstance(call, ast.Call) or getattr(call.func, "id", getattr(call.func, "attr", None)) != "Genotype":
        raise ArchitectureError(f"genotype: expected Genotype(normal=..., normal_concat=..., reduce=..., "
                                f"reduce_concat=...), got {text.strip()[:60]!r}")
    fields: dict[str, Any] = {}
    for name, node in zip(Genotype._fields, call.args):
        fields[name] = _literal(node)
    for keyword in call.keywords:
        if keyword.arg not in Genotype._fields:
            raise ArchitectureError(f"genotype: unknown field {keyword.arg!r}; fields are {', '.join(Genotype._fields)}")
        fields[keyword.arg] = _literal(keyword.value)
    missing = [name for name in Genotype._fields if name not in fields]
    if missing:
        raise ArchitectureError(f"genotype: field {missing[0]} is missing")
    return Genotype(**{name: [tuple(edge) for edge in fields[name]] if name in CELL_TYPES else list(fields[name])
                       for name in Genotype._fields})


def _literal(node: ast.AST) -> Any:
    # DARTS writes concat as range(2, 6); everything else is a plain literal.
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "range":
        return list(range(*[_literal(argument) for argument in node.args]))
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ArchitectureError(f"genotype: {ast.unparse(node)[:40]!r} is not a literal") from None


# ----------------------------------------------------------------------------------------- search outputs


@dataclasses.dataclass
class SearchOutput:
    """What a search directory holds: the top-k architectures (best first) and the search's records."""

    directory: Path | None
    space: str
    architectures: list[Architecture]
    probabilities: list[float | None]
    config: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.directory.name if self.directory is not None else "architecture"


def load_search(path: str | os.PathLike[str], space: str | None = None) -> SearchOutput:
    """A search output directory (its top-k, else its architecture) or a JSON file of architectures.

    A JSON file may hold one sample dict, a list of them (``export_top_models(formatter='dict')``) or
    top-k rows (``rank``, ``probability``, ``architecture``). Every architecture is checked
    against the space (from the run's settings, ``space`` or the labels).
    """
    path = Path(path)
    if not path.exists():
        raise ArchitectureError(f"{path}: no such file or directory")
    config: dict[str, Any] = {}
    run = RunFolder(path)
    if path.is_dir():
        if run.config.is_file():
            config = _read_json(run.config)
            if not isinstance(config, dict):
                raise ArchitectureError(f"{run.config}: expected a JSON object")
        source = run.top_k if run.top_k.is_file() else run.architecture
        if not source.is_file():
            raise ArchitectureError(f"{path}: no {run.architecture.name} or {run.top_k.name} here; "
                                    "is it a search output directory?")
    else:
        source = path
    architectures, probabilities = load_architectures(source)
    space = space or config.get("space") or detect_space(architectures[0])
    for rank, architecture in enumerate(architectures, 1):
        try:
            check_architecture(architecture, space)
        except ArchitectureError as error:
            where = f"{source}" + (f" (rank {rank})" if len(architectures) > 1 else "")
            raise ArchitectureError(f"{where}: {str(error).removeprefix('architecture: ')}") from None
    if path.is_dir() and source == run.top_k and run.architecture.is_file():
        # The search's answer (the mode, or the best re-scored of the top k) is rank 1 of what is exported.
        best = _read_json(run.architecture)
        if best != architectures[0]:
            rows = list(zip(architectures, probabilities))
            probability = next((p for a, p in rows if a == best), None)
            rows = [(best, probability), *[(a, p) for a, p in rows if a != best]]
            architectures, probabilities = [a for a, _ in rows], [p for _, p in rows]
    return SearchOutput(directory=path if path.is_dir() else None, space=space, architectures=architectures,
                        probabilities=probabilities, config=config)


def load_architectures(path: Path) -> tuple[list[Architecture], list[float | None]]:
    """Architectures (and their probabilities where recorded) from one JSON file, best first."""
    data = _read_json(path)
    rows = data if isinstance(data, list) else [data]
    if not rows:
        raise ArchitectureError(f"{path}: holds an empty list, no architecture")
    architectures, probabilities = [], []
    for row in rows:
        if isinstance(row, dict) and "architecture" in row and isinstance(row["architecture"], dict):
            architectures.append(row["architecture"])
            probabilities.append(row.get("probability"))
        elif isinstance(row, dict):
            architectures.append(row)
            probabilities.append(None)
        else:
            raise ArchitectureError(f"{path}: expected architecture dicts (label -> value), found {type(row).__name__}")
    return architectures, probabilities


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ArchitectureError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ArchitectureError(f"{path}: cannot be read ({error})") from None
