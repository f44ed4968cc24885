"""``compare``'s figures and pages: the report of a comparison (plotly) and its summary as Markdown.

``nas-estimators compare`` passes :func:`report_html` to :func:`nas_estimators.compare.run_compare`, which
writes it beside the comparison's tables (see :class:`nas_estimators.run_folder.CompareFolder`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from nas_estimators.html_report import HtmlPage

FIGURES = {"validation-accuracy": "Validation accuracy of the sampled architectures",
           "entropy": "Entropy of the architecture distribution",
           "benchmark-accuracy": "Benchmark accuracy of the mode architecture",
           "panel-tau": "Supernet ranking quality: Kendall's tau of the panel against the table",
           "panel-best": "Benchmark accuracy of the panel architecture the supernet scores best",
           "final-comparison": "Final comparison", "multi-trial": "Multi-trial search: best benchmark accuracy so far"}


def _mean_curves(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    curves = frame.groupby(["method", x], sort=False)[y].agg(["mean", "std", "count"]).reset_index()
    return curves.rename(columns={"mean": y, "std": f"{y}_std"})


def figures(results: pd.DataFrame, trials: pd.DataFrame, summary: pd.DataFrame, table=None) -> dict[str, Any]:
    """The report's plotly figures by id (see :data:`FIGURES`); means over seeds, bars one standard deviation."""
    import plotly.express as px
    import plotly.graph_objects as go

    made: dict[str, Any] = {}
    curves = [("validation-accuracy", "val_acc", "validation accuracy"), ("entropy", "entropy", "entropy (nats)")]
    if table is not None:
        curves.append(("benchmark-accuracy", "benchmark_acc", "benchmark accuracy of the mode"))
        curves.append(("panel-tau", "panel_tau", "Kendall's tau"))
        curves.append(("panel-best", "panel_best_benchmark_acc", "benchmark accuracy"))
    for figure_id, column, label in curves:
        if not len(results) or results[column].isna().all():
            continue
        frame = _mean_curves(results.dropna(subset=[column]), "epoch", column)
        figure = px.line(frame, x="epoch", y=column, color="method", error_y=f"{column}_std", markers=True,
                         labels={column: label}, title=FIGURES[figure_id])
        if figure_id == "benchmark-accuracy":
            best_arch, best_accuracy = table.best()
            figure.add_hline(y=best_accuracy, line_dash="dot", annotation_text=f"best in table {best_accuracy:g}")
        made[figure_id] = figure
    final = summary.dropna(subset=["final_benchmark_acc_mean"])
    value, error, label = "final_benchmark_acc_mean", "final_benchmark_acc_std", "final benchmark accuracy"
    if not len(final):
        final, value, error, label = summary.dropna(subset=["final_val_acc_mean"]), "final_val_acc_mean", None, \
            "final validation accuracy"
    if len(final):
        names = [f"{m} ({int(b)} archs)" if k in ("multi-trial", "table") else m
                 for m, k, b in zip(final["method"], final["kind"], final["budget"])]
        made["final-comparison"] = go.Figure(
            go.Bar(x=names, y=final[value], error_y=dict(type="data", array=final[error]) if error else None,
                   text=[f"{v:.4g}" for v in final[value]], textposition="outside"),
            layout=dict(title=FIGURES["final-comparison"] + " (mean over seeds)", yaxis_title=label))
    if len(trials):
        frame = _mean_curves(trials, "trial", "best_so_far")
        made["multi-trial"] = px.line(frame, x="trial", y="best_so_far", color="method", title=FIGURES["multi-trial"],
                                      labels={"trial": "queried architectures", "best_so_far": "best benchmark accuracy"})
    return made


def report_html(results: pd.DataFrame, trials: pd.DataFrame, summary: pd.DataFrame, table=None) -> str:
    """One self-contained HTML page: the summary table and every figure (plotly.js inlined once)."""
    page = HtmlPage("Search comparison")
    body = [page.section("summary", "Summary", "", page.table(summary, float_format="%.4g"))]
    for figure_id, figure in figures(results, trials, summary, table).items():
        body.append(f"<h2>{FIGURES[figure_id]}</h2>" + page.figure(figure, div_id=figure_id))
    return page.render(body)


def markdown_table(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table (for a README), accuracy as mean ± std."""
    lines = ["| method | kind | runs | epochs / budget | final benchmark accuracy | search time (s) |",
             "|---|---|---|---|---|---|"]
    for row in summary.itertuples(index=False):
        size = f"{int(row.budget)} archs" if row.kind in ("multi-trial", "table") else f"{int(row.epochs)} epochs"
        accuracy = "n/a" if pd.isna(row.final_benchmark_acc_mean) else (
            f"{row.final_benchmark_acc_mean:.2f}" + ("" if pd.isna(row.final_benchmark_acc_std)
                                                     else f" ± {row.final_benchmark_acc_std:.2f}"))
        lines.append(f"| {row.method} | {row.kind} | {row.runs} | {size} | {accuracy} | {row.search_seconds_mean:.0f} |")
    return "\n".join(lines) + "\n"
