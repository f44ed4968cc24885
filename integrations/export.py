"""Architecture files from a search: NNI sample dicts, DARTS genotypes, NAS-Bench-201 strings, cell drawings.

Reading and checking architectures is :mod:`nas_estimators.architectures`; this module writes them out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from nas_estimators.architectures import (CELL_TYPES, DARTS_NODES, INPUTS_PER_NODE, ArchitectureError, SearchOutput,
                                          check_architecture, format_genotype, to_genotype)
from nas_estimators.files import atomic_write_text
from nas_estimators.nasbench201 import EDGES as NB201_EDGES
from nas_estimators.nasbench201 import LABELS as NB201_LABELS
from nas_estimators.nasbench201 import to_arch_string

from nas_estimators.integrations import diagrams
from nas_estimators.integrations.diagrams import CellGraph, Edge

__all__ = ["FORMATS", "cell_graphs", "export"]

FORMATS: tuple[str, ...] = ("json", "genotype", "dot", "svg", "png", "html")


# ----------------------------------------------------------------------------------------- cell drawings
# The cells of an architecture in the DARTS drawing convention (see ``diagrams``), which diagrams draws.


def cell_graphs(architecture: Mapping[str, Any], space: str | None = None) -> list[CellGraph]:
    """The cells of an architecture: ``normal`` and ``reduce`` for darts, ``cell`` for nb201."""
    space = check_architecture(architecture, space)
    if space == "nb201":
        return [_nb201_cell(architecture)]
    return [_darts_cell(architecture, cell) for cell in CELL_TYPES]


def _darts_cell(architecture: Mapping[str, Any], cell: str) -> CellGraph:
    inputs = ["c_{k-2}", "c_{k-1}"]

    def name(index: int) -> str:  # NNI's node index: 0, 1 are the inputs; 2.. are drawn as 0..
        return inputs[index] if index < len(inputs) else str(index - len(inputs))

    edges = [Edge(name(int(architecture[f"{cell}/input_{node}_{j}"][0])), name(node),
                  architecture[f"{cell}/op_{node}_{j}"])
             for node in DARTS_NODES for j in range(INPUTS_PER_NODE)]
    nodes = [name(node) for node in DARTS_NODES]
    edges += [Edge(node, "c_{k}", None) for node in nodes]  # merge_op='all': every node is concatenated
    return CellGraph(cell, inputs, nodes, "c_{k}", edges)


def _nb201_cell(architecture: Mapping[str, Any]) -> CellGraph:
    names = {0: "c_{k-1}", 1: "1", 2: "2", 3: "c_{k}"}
    edges = [Edge(names[source], names[target], architecture[label])
             for (source, target), label in zip(NB201_EDGES, NB201_LABELS)]
    return CellGraph("cell", [names[0]], [names[1], names[2]], names[3], edges)


# ----------------------------------------------------------------------------------------- export


def export(search: SearchOutput, fmt: str, output: str | os.PathLike[str], top: int = 1) -> list[Path]:
    """Write the ``top`` best architectures of ``search`` in format ``fmt`` into folder ``output``.

    ``json``: ``architectures.json``, a list of NNI sample dicts, best first (``export_top_models``'
    dict format). ``genotype``: ``genotypes.txt``, one DARTS ``Genotype(...)`` a line, or for nb201
    ``arch_strings.txt``, one NAS-Bench-201 string a line. ``dot``/``svg``/``png``: one drawing per cell,
    ``rank{r}-{cell}.{fmt}``. ``html``: ``rank{r}-cells.html``, a plotly figure of the cells.
    """
    if fmt not in FORMATS:
        raise ArchitectureError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= len(search.architectures):
        raise ArchitectureError(f"top: expected 1..{len(search.architectures)} (architectures recorded), got {top!r}")
    if fmt in ("svg", "png"):
        diagrams.require_graphviz()
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    chosen = search.architectures[:top]
    if fmt == "json":
        return [atomic_write_text(folder / "architectures.json", json.dumps(chosen, indent=2) + "\n")]
    if fmt == "genotype":
        if search.space == "nb201":
            return [atomic_write_text(folder / "arch_strings.txt", "".join(to_arch_string(a) + "\n" for a in chosen))]
        return [atomic_write_text(folder / "genotypes.txt", "".join(format_genotype(to_genotype(a)) + "\n" for a in chosen))]
    written = []
    for rank, architecture in enumerate(chosen, 1):
        cells = cell_graphs(architecture, search.space)
        if fmt == "html":
            figure = diagrams.plotly_figure(cells, title=f"{search.name}: rank {rank}")
            written.append(atomic_write_text(folder / f"rank{rank}-cells.html", figure.to_html(include_plotlyjs=True)))
            continue
        for cell in cells:
            dot = diagrams.to_dot(cell)
            target = folder / f"rank{rank}-{cell.name}.{fmt}"
            written.append(atomic_write_text(target, dot) if fmt == "dot" else diagrams.render(dot, target))
    return written
