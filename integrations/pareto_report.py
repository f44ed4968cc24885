"""``pareto``'s figure: each method's front of accuracy against cost beside the table's own (plotly)."""

from __future__ import annotations

import pandas as pd


def pareto_html(fronts: pd.DataFrame, cost_units: str) -> str:
    """One plotly page: the table's front and, for the largest query budget, every method's front per seed."""
    import plotly.graph_objects as go

    figure = go.Figure()
    table = fronts[fronts["method"] == "table"]
    figure.add_trace(go.Scatter(x=table["cost"], y=table["benchmark_acc"], mode="lines+markers", name="the table's front",
                                line={"shape": "hv", "color": "black"}))
    runs = fronts[fronts["method"] != "table"]
    if len(runs):
        largest = runs[runs["queries"] == runs["queries"].max()]
        for (method, seed), front in largest.groupby(["method", "seed"], sort=False):
            figure.add_trace(go.Scatter(x=front["cost"], y=front["benchmark_acc"], mode="lines+markers",
                                        name=f"{method} seed {int(seed)}", line={"shape": "hv"}, opacity=0.7))
    figure.update_layout(title="Benchmark accuracy against cost: the fronts found", xaxis_title=cost_units,
                         yaxis_title="benchmark accuracy (%)", template="plotly_white")
    if len(table):  # the table's front spans the accuracies that matter; a stray cheap, poor cell would flatten it
        low, high = table["benchmark_acc"].min(), table["benchmark_acc"].max()
        figure.update_yaxes(range=[low - 0.1 * (high - low), high + 0.05 * (high - low)])
    return figure.to_html(include_plotlyjs=True, full_html=True)  # opens offline, as the other pages do
