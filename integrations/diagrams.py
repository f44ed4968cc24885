"""Cell diagrams in the DARTS drawing convention: Graphviz DOT (SVG/PNG with Graphviz) and plotly.

The convention is that of DARTS' ``visualize.py`` and NNI's DARTS tutorial: the cell inputs
``c_{k-2}`` and ``c_{k-1}`` (green), intermediate nodes ``0..3`` (blue), the output ``c_{k}`` (yellow)
that concatenates the intermediate nodes, and one edge per chosen input labelled with its operation.
A NAS-Bench-201 cell is drawn the same way: input ``c_{k-1}``, nodes ``1``, ``2``, output ``c_{k}``
(the benchmark's node 3, a sum), six labelled edges; ``none`` edges are dashed (they carry zeros).

This module only draws the :class:`CellGraph` it is given; ``export.cell_graphs`` builds them from an
architecture. The DOT text comes from the ``graphviz`` package, which quotes and escapes every name
and label, and SVG, PNG or PDF from Graphviz's ``dot`` binary.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Sequence

import graphviz

from nas_estimators.files import atomic_write_bytes

__all__ = ["CellGraph", "Edge", "GraphvizMissing", "graphviz_available", "plotly_figure", "render",
           "require_graphviz", "to_digraph", "to_dot", "to_svg"]

GRAPHVIZ_HINT = "install Graphviz (Debian: apt-get install graphviz)"
GRAPHVIZ_MISSING = f"Graphviz's dot is not on the PATH; {GRAPHVIZ_HINT}, or use --format dot or html"
# DARTS visualize.py's colours: inputs, intermediate nodes, output.
COLOURS = {"input": "darkseagreen2", "node": "lightblue", "output": "palegoldenrod"}
_RGB = {"darkseagreen2": "#b4eeb4", "lightblue": "#add8e6", "palegoldenrod": "#eee8aa"}
# DARTS visualize.py's graph, node and edge attributes; ``none`` edges are dashed and grey.
GRAPH_ATTRIBUTES = {"rankdir": "LR", "labelloc": "t", "fontname": "helvetica", "fontsize": "22"}
NODE_ATTRIBUTES = {"style": "filled,rounded", "shape": "rect", "align": "center", "fontsize": "20", "height": "0.5",
                   "width": "0.5", "penwidth": "2", "fontname": "helvetica"}
EDGE_ATTRIBUTES = {"fontsize": "20", "fontname": "times"}
NONE_EDGE_ATTRIBUTES = {"style": "dashed", "color": "gray50", "fontcolor": "gray50"}


class GraphvizMissing(RuntimeError):
    """SVG or PNG asked for without Graphviz's ``dot`` on the PATH."""


@dataclasses.dataclass(frozen=True)
class Edge:
    """``source -> target``; ``operation`` is None for the concatenation edges into the cell output."""

    source: str
    target: str
    operation: str | None

    def describe(self) -> str:
        return f"{self.source} -> {self.target}" + (f": {self.operation}" if self.operation else " (concat)")


@dataclasses.dataclass
class CellGraph:
    """One cell: its node names by kind and its edges, in drawing order."""

    name: str
    inputs: list[str]
    nodes: list[str]
    output: str
    edges: list[Edge]

    @property
    def title(self) -> str:
        return "NAS-Bench-201 cell" if self.name == "cell" else f"{self.name} cell"

    def kind(self, node: str) -> str:
        return "input" if node in self.inputs else "output" if node == self.output else "node"

    @property
    def operation_edges(self) -> list[Edge]:
        return [edge for edge in self.edges if edge.operation is not None]


# ----------------------------------------------------------------------------------------- Graphviz


def to_digraph(cell: CellGraph) -> graphviz.Digraph:
    """A ``graphviz.Digraph`` of a cell, with DARTS ``visualize.py``'s node and edge attributes.

    Every name and label goes through ``graphviz.escape``: quotes, backslashes, braces and ``<...>``
    are drawn as written, never read as DOT syntax, escape sequences or HTML labels.
    """
    escape = graphviz.escape
    graph = graphviz.Digraph(escape(cell.name), graph_attr={**GRAPH_ATTRIBUTES, "label": escape(cell.title)},
                             node_attr=NODE_ATTRIBUTES, edge_attr=EDGE_ATTRIBUTES)
    for node in [*cell.inputs, *cell.nodes, cell.output]:
        graph.node(escape(node), fillcolor=COLOURS[cell.kind(node)])
    for edge in cell.edges:
        label = None if edge.operation is None else escape(edge.operation)
        style = NONE_EDGE_ATTRIBUTES if edge.operation == "none" else {}
        graph.edge(escape(edge.source), escape(edge.target), label=label, fillcolor="gray", **style)
    return graph


def to_dot(cell: CellGraph) -> str:
    """Graphviz DOT text of a cell (:func:`to_digraph`'s source)."""
    return to_digraph(cell).source


def graphviz_available() -> bool:
    return shutil.which("dot") is not None


def require_graphviz() -> None:
    if not graphviz_available():
        raise GraphvizMissing(GRAPHVIZ_MISSING)


def _run_dot(dot: str, fmt: str) -> bytes:
    """DOT text laid out and rendered by Graphviz's ``dot`` into format ``fmt``; errors are one line."""
    require_graphviz()
    try:
        return graphviz.pipe("dot", fmt, dot.encode(), quiet=True)
    except graphviz.ExecutableNotFound:
        raise GraphvizMissing(GRAPHVIZ_MISSING) from None
    except graphviz.CalledProcessError as error:
        message = (error.stderr or b"").decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"dot -T{fmt} failed: {message[0] if message else error.returncode}") from None
    except ValueError as error:  # a format that the graphviz package does not know
        raise RuntimeError(f"dot -T{fmt} failed: {str(error).split(' (')[0]}") from None


def to_svg(dot: str) -> str:
    """Graphviz's SVG of DOT text, without the XML prologue, ready to inline in HTML."""
    svg = _run_dot(dot, "svg").decode()
    return svg[svg.index("<svg"):]


def render(dot: str, target: str | os.PathLike[str], fmt: str | None = None) -> Path:
    """Render DOT text with Graphviz into ``target`` (format from its suffix: svg, png, pdf)."""
    target = Path(target)
    data = _run_dot(dot, fmt or target.suffix.lstrip("."))
    return atomic_write_bytes(target, data)  # an interrupted render never leaves half a file


# ----------------------------------------------------------------------------------------- plotly


def _layout(cell: CellGraph) -> dict[str, tuple[float, float]]:
    """Columns by longest path from the inputs (as Graphviz's LR ranks), rows spread within a column;
    a column of one node sits alternately above and below the middle so that chains do not hide edges."""
    depth = {node: 0 for node in cell.inputs}
    for node in cell.nodes:  # nodes only take inputs from earlier nodes, so one pass in order suffices
        depth[node] = 1 + max((depth[e.source] for e in cell.edges if e.target == node), default=0)
    depth[cell.output] = 1 + max(depth[node] for node in cell.nodes)
    columns: dict[int, list[str]] = {}
    for node, column in depth.items():
        columns.setdefault(column, []).append(node)
    positions = {}
    for column, members in columns.items():
        shift = 0.0
        if len(members) == 1 and members[0] in cell.nodes:
            shift = 0.5 if column % 2 else -0.5
        for row, node in enumerate(members):
            positions[node] = (1.6 * column, 1.2 * ((len(members) - 1) / 2 - row) + shift)
    return positions


def _curve(start: tuple[float, float], end: tuple[float, float], bend: float, points: int = 15):
    """A quadratic Bezier from ``start`` to ``end`` whose middle is ``bend`` off the straight line."""
    (x0, y0), (x1, y1) = start, end
    length = max(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5, 1e-9)
    # Control point: twice the wanted offset of the midpoint, perpendicular to the chord.
    cx, cy = (x0 + x1) / 2 - 2 * bend * (y1 - y0) / length, (y0 + y1) / 2 + 2 * bend * (x1 - x0) / length
    ts = [k / (points - 1) for k in range(points)]
    xs = [(1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t ** 2 * x1 for t in ts]
    ys = [(1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t ** 2 * y1 for t in ts]
    return xs, ys


def plotly_figure(cells: Sequence[CellGraph], title: str | None = None):
    """A plotly figure of the cells side by side; needs no Graphviz.

    Every operation edge is a line trace named ``"source -> target: operation"`` (its hover text)
    with the operation written at its middle; concatenation edges are grey and unlabelled.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=len(cells), subplot_titles=[cell.title for cell in cells],
                           horizontal_spacing=0.04)
    for column, cell in enumerate(cells, 1):
        positions = _layout(cell)
        xref, yref = ("x", "y") if column == 1 else (f"x{column}", f"y{column}")
        seen: dict[tuple[str, str], int] = {}
        for edge in cell.edges:
            start, end = positions[edge.source], positions[edge.target]
            index = seen.get((edge.source, edge.target), 0)
            seen[(edge.source, edge.target)] = index + 1
            # Edges that skip columns bend away from the nodes between; a second edge between the same
            # two nodes (both inputs of a node from one source) bends the other way so both labels show.
            span = abs(end[0] - start[0]) / 1.6
            bend = 0.35 * max(span - 1, 0) * (1 if (end[1] >= start[1]) == (edge.target > edge.source) else -1)
            if index:
                bend = -bend if bend else 0.3 * (1 if index % 2 else -1)
            if edge.operation is None:
                bend = 0.0
            xs, ys = _curve(start, end, bend)
            concat = edge.operation is None
            colour = "#bbbbbb" if concat or edge.operation == "none" else "#555555"
            figure.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines", name=edge.describe(), hoverinfo="text", text=edge.describe(),
                line=dict(color=colour, width=1.5, dash="dash" if edge.operation == "none" else None),
                showlegend=False, meta=dict(source=edge.source, target=edge.target, operation=edge.operation)),
                row=1, col=column)
            figure.add_annotation(x=xs[-1], y=ys[-1], ax=xs[-3], ay=ys[-3], xref=xref, yref=yref, axref=xref,
                                  ayref=yref, showarrow=True, arrowhead=2, arrowsize=1.3, arrowcolor=colour,
                                  standoff=20, text="")
            if not concat:
                middle = len(xs) // 2
                figure.add_annotation(x=xs[middle], y=ys[middle], xref=xref, yref=yref, text=edge.operation,
                                      showarrow=False, font=dict(size=11, color="#222222"),
                                      bgcolor="rgba(255,255,255,0.85)")
        for node in [*cell.inputs, *cell.nodes, cell.output]:
            x, y = positions[node]
            figure.add_annotation(x=x, y=y, xref=xref, yref=yref, text=node, showarrow=False,
                                  font=dict(size=14, color="#111111"), bgcolor=_RGB[COLOURS[cell.kind(node)]],
                                  bordercolor="#333333", borderwidth=2, borderpad=6)
        xs_all = [x for x, _ in positions.values()]
        ys_all = [y for _, y in positions.values()]
        figure.update_xaxes(visible=False, range=[min(xs_all) - 0.5, max(xs_all) + 0.5], row=1, col=column)
        figure.update_yaxes(visible=False, range=[min(ys_all) - 1.0, max(ys_all) + 1.0], row=1, col=column)
    figure.update_layout(title=title, height=440, width=620 * len(cells), plot_bgcolor="white",
                         margin=dict(l=10, r=10, t=80 if title else 40, b=10))
    return figure
