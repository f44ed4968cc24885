"""The HTML report of one or more searches: probabilities, curves, estimator diagnostics, cell diagrams.

The page is one self-contained file (plotly.js inlined once, diagrams as inline SVG), so it opens
offline and can be mailed. Sections, each an HTML ``<section id=...>``: ``summary``, ``top-k``,
``probabilities`` (per-label heatmaps over the epochs), ``curves`` (entropy and validation accuracy
against epoch), ``diagnostics`` (baseline, surrogate loss, gradient variance, ... where recorded)
and ``cells`` (the found cells, Graphviz SVG when Graphviz is installed, else plotly).
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from nas_estimators.architectures import ArchitectureError, SearchOutput, darts_shape, load_search
from nas_estimators.html_report import HtmlPage
from nas_estimators.nasbench201 import to_arch_string
from nas_estimators.run_folder import RunFolder

from nas_estimators.integrations import diagrams
from nas_estimators.integrations.export import cell_graphs

__all__ = ["DIAGNOSTIC_COLUMNS", "SECTIONS", "SearchRecord", "load_record", "write_report"]

SECTIONS: tuple[str, ...] = ("summary", "top-k", "probabilities", "curves", "diagnostics", "cells")
#: History columns the estimators record; any other column whose name mentions variance is added.
DIAGNOSTIC_COLUMNS: tuple[str, ...] = ("baseline", "surrogate_loss", "gradient_variance", "temperature",
                                       "forward_evaluations", "skipped_steps", "train_loss", "val_loss")
HEATMAP_COLUMNS = 4


class SearchRecord:
    """One search directory's tables, read once."""

    def __init__(self, search: SearchOutput, history: pd.DataFrame, probabilities: pd.DataFrame) -> None:
        self.search, self.history, self.probabilities = search, history, probabilities

    @property
    def name(self) -> str:
        return self.search.name

    @property
    def directory(self) -> Path:
        assert self.search.directory is not None
        return self.search.directory


def load_record(directory: str | os.PathLike[str]) -> SearchRecord:
    """Read a search output directory (its history, probabilities, top-k and settings; see ``RunFolder``)."""
    path = Path(directory)
    run = RunFolder(path)
    if not path.is_dir():
        raise ArchitectureError(f"{path}: no such directory")
    search = load_search(path)
    tables = {}
    for file in (run.history, run.probabilities):
        name = file.name
        if not file.is_file():
            raise ArchitectureError(f"{path}: no {name}; is it a finished search output directory?")
        try:
            tables[name] = pd.read_csv(file)
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as error:
            raise ArchitectureError(f"{file}: not a readable CSV ({str(error).splitlines()[0]})") from None
    needed = {run.history.name: ("epoch", "val_acc", "entropy"),
              run.probabilities.name: ("epoch", "label", "value", "probability")}
    for name, columns in needed.items():
        missing = [column for column in columns if column not in tables[name].columns]
        if missing:
            raise ArchitectureError(f"{path / name}: column {missing[0]!r} is missing")
    return SearchRecord(search, tables[run.history.name], tables[run.probabilities.name])


def write_report(directories: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str],
                 diagram_style: str = "auto") -> Path:
    """Write the report of the searches in ``directories`` to ``output`` (an .html file); return its path.

    ``diagram_style``: ``svg`` (Graphviz), ``plotly``, or ``auto`` (svg when Graphviz is installed).
    """
    if not directories:
        raise ArchitectureError("directories: expected at least one search output directory")
    if diagram_style not in ("auto", "svg", "plotly"):
        raise ArchitectureError(f"diagram_style: expected auto, svg or plotly, got {diagram_style!r}")
    if diagram_style == "svg":
        diagrams.require_graphviz()
    use_svg = diagram_style == "svg" or (diagram_style == "auto" and diagrams.graphviz_available())
    records = [load_record(directory) for directory in directories]
    title = "Search report: " + ", ".join(r.name for r in records)
    page = HtmlPage(title)
    body = [
        _summary(records),
        _top_k(records),
        HtmlPage.section("probabilities", "Architecture probabilities over the epochs",
                 "Each panel is one label: its candidates (rows) against the epoch (columns), coloured by the "
                 "probability the search gives them.",
                 "".join(f"<h3>{html.escape(r.name)}</h3>" + page.figure(_heatmaps(r)) for r in records)),
        HtmlPage.section("curves", "Entropy and validation accuracy",
                 "Entropy of the architecture distribution (nats) and the validation accuracy of the sampled "
                 "architectures, per epoch.", page.figure(_curves(records))),
        _diagnostics(records, page),
        HtmlPage.section("cells", "Found cells",
                 "The most probable architecture of each search, drawn as in DARTS: inputs c_{k-2} and "
                 "c_{k-1}, intermediate nodes, output c_{k}, edges labelled with operations.",
                 "".join(_cells(r, page, use_svg) for r in records)),
    ]
    return page.write(output, body)


def _summary(records: Sequence[SearchRecord]) -> str:
    rows = []
    for record in records:
        config, history = record.search.config, record.history
        last = history.iloc[-1] if len(history) else {}
        rows.append({
            "search": record.name, "estimator": config.get("estimator", ""), "space": record.search.space,
            "dataset": config.get("dataset", ""), "epochs": len(history),
            "final val_acc": _number(last.get("val_acc")), "best val_acc": _number(history["val_acc"].max()),
            "final entropy": _number(last.get("entropy")),
            "search seconds": _number(history["seconds"].sum()) if "seconds" in history else "",
        })
    tensorboard = [f"tensorboard --logdir {r.directory / 'tensorboard'}" for r in records
                   if (r.directory / "tensorboard").is_dir()]
    hint = ("<p class=\"note\">Training curves in TensorBoard: <code>" + html.escape(tensorboard[0]) + "</code></p>"
            if tensorboard else "")
    return HtmlPage.section("summary", "Summary", "One row per search (from its settings and history).",
                    HtmlPage.table(pd.DataFrame(rows)) + hint)


def _number(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(value) else f"{value:.4g}"


def _architecture_text(architecture: dict, space: str) -> str:
    if space == "nb201":
        return to_arch_string(architecture)
    from nas_estimators.architectures import format_genotype, to_genotype

    return format_genotype(to_genotype(architecture))


def _top_k(records: Sequence[SearchRecord]) -> str:
    parts = []
    for record in records:
        search = record.search
        frame = pd.DataFrame({
            "rank": range(1, len(search.architectures) + 1),
            "probability": [("" if p is None else f"{p:.3g}") for p in search.probabilities],
            "architecture": [_architecture_text(a, search.space) for a in search.architectures],
        })
        parts.append(f"<h3>{html.escape(record.name)}</h3>" + HtmlPage.table(frame))
    return HtmlPage.section("top-k", "Most probable architectures",
                    "What each search exports (rank 1: the mode, or the best re-scored of the most probable), "
                    "then its k most probable architectures: DARTS genotypes or NAS-Bench-201 strings; "
                    "`nas-estimators export DIR --top K` writes them as files.",
                    "".join(parts))


def _heatmaps(record: SearchRecord):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    frame = record.probabilities
    labels = list(dict.fromkeys(frame["label"]))
    rows = math.ceil(len(labels) / HEATMAP_COLUMNS)
    figure = make_subplots(rows=rows, cols=min(HEATMAP_COLUMNS, len(labels)), subplot_titles=labels,
                           vertical_spacing=min(0.3 / max(rows - 1, 1), 0.12), horizontal_spacing=0.12)
    for index, label in enumerate(labels):
        table = frame[frame["label"] == label].pivot_table(index="value", columns="epoch", values="probability",
                                                           sort=False)
        candidates = [_candidate(value) for value in table.index]
        figure.add_trace(go.Heatmap(
            z=table.to_numpy(), x=list(table.columns), y=candidates, coloraxis="coloraxis", name=label,
            hovertemplate=f"{label}<br>%{{y}} at epoch %{{x}}: %{{z:.3f}}<extra></extra>"),
            row=index // HEATMAP_COLUMNS + 1, col=index % HEATMAP_COLUMNS + 1)
    figure.update_layout(coloraxis=dict(colorscale="Viridis", cmin=0, cmax=1, colorbar=dict(title="p")),
                         height=max(260, 190 * rows), margin=dict(l=90, r=10, t=40, b=10))
    figure.update_annotations(font_size=11)
    figure.update_yaxes(tickfont=dict(size=9))
    figure.update_xaxes(tickfont=dict(size=9), title_text=None)
    return figure


def _candidate(value: Any) -> str:
    try:
        parsed = json.loads(value)
    except (TypeError, json.JSONDecodeError):
        return str(value)
    return f"input {parsed[0]}" if isinstance(parsed, list) and len(parsed) == 1 else str(parsed)


#: Per-epoch curves of the report: history column -> subplot title (the optional ones when recorded).
CURVES = {"entropy": "entropy (nats)", "val_acc": "validation accuracy",
          "benchmark_acc": "benchmark accuracy of the mode",
          "panel_tau": "supernet ranking: Kendall's tau of the panel",
          "panel_best_benchmark_acc": "benchmark accuracy of the supernet's best panel cell"}


def _curves(records: Sequence[SearchRecord]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    keys = [key for key in CURVES if any(key in r.history and r.history[key].notna().any() for r in records)]
    keys = keys or ["entropy", "val_acc"]
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    figure = make_subplots(rows=rows, cols=cols, subplot_titles=[CURVES[key] for key in keys])
    for index, record in enumerate(records):
        colour = _colour(index)
        for position, key in enumerate(keys):
            if key not in record.history:
                continue
            figure.add_trace(go.Scatter(x=record.history["epoch"], y=record.history[key], mode="lines+markers",
                                        name=record.name, legendgroup=record.name, showlegend=position == 0,
                                        line=dict(color=colour)), row=position // cols + 1, col=position % cols + 1)
    figure.update_xaxes(title_text="epoch")
    figure.update_layout(height=380 * rows, margin=dict(l=10, r=10, t=40, b=10))
    return figure


def _diagnostic_columns(records: Sequence[SearchRecord]) -> list[str]:
    present = []
    for record in records:
        for column in record.history.columns:
            known = column in DIAGNOSTIC_COLUMNS or "variance" in column
            if known and record.history[column].notna().any() and column not in present:
                present.append(column)
    order = {name: index for index, name in enumerate(DIAGNOSTIC_COLUMNS)}
    return sorted(present, key=lambda name: order.get(name, 2.5))  # variances right after the surrogate loss


def _diagnostics(records: Sequence[SearchRecord], page: HtmlPage) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    columns = _diagnostic_columns(records)
    text = ("Per-epoch means of what the estimators record: SF's moving-average baseline, RELAX's surrogate "
            "loss (the variance it minimises) and temperature, gradient variance where measured, forward "
            "evaluations per step (RAM), skipped steps, and the losses.")
    if not columns:
        return HtmlPage.section("diagnostics", "Estimator diagnostics", text, "<p>No diagnostics were recorded.</p>")
    cols = min(3, len(columns))
    rows = math.ceil(len(columns) / cols)
    figure = make_subplots(rows=rows, cols=cols, subplot_titles=columns, vertical_spacing=0.18 if rows > 1 else 0.1)
    for index, record in enumerate(records):
        for position, column in enumerate(columns):
            if column not in record.history or not record.history[column].notna().any():
                continue
            figure.add_trace(go.Scatter(x=record.history["epoch"], y=record.history[column], mode="lines+markers",
                                        name=record.name, legendgroup=record.name, showlegend=position == 0,
                                        line=dict(color=_colour(index))),
                             row=position // cols + 1, col=position % cols + 1)
    figure.update_xaxes(title_text="epoch")
    figure.update_layout(height=300 * rows, margin=dict(l=10, r=10, t=40, b=10))
    return HtmlPage.section("diagnostics", "Estimator diagnostics", text, page.figure(figure))


def _cells(record: SearchRecord, page: HtmlPage, use_svg: bool) -> str:
    architecture = record.search.architectures[0]
    cells = cell_graphs(architecture, record.search.space)
    shape = darts_shape(architecture) if record.search.space == "darts" else {}
    searched = f" (searched network: {', '.join(f'{k} {v}' for k, v in shape.items())})" if shape else ""
    heading = f"<h3>{html.escape(record.name + searched)}</h3>"
    if not use_svg:
        return heading + page.figure(diagrams.plotly_figure(cells))
    drawings = []
    for cell in cells:
        svg = diagrams.to_svg(diagrams.to_dot(cell))
        drawings.append(f'<figure class="cell" data-cell="{html.escape(cell.name)}">{svg}</figure>')
    return heading + '<div class="cells">' + "".join(drawings) + "</div>"


def _colour(index: int) -> str:
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
    return palette[index % len(palette)]
