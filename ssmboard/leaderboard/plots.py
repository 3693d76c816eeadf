"""Plotly figures of stored rows: a metric against chunk size or prompt length, KL along the
sequence, and speed against fidelity with its Pareto front. Pure: frames in, figures out.

Each point is one stored row (the latest of its variant and x), drawn with an error bar of
1.96 stored standard errors where the row has one, so a reader sees the spread the numbers
came with; a figure with nothing to draw says so in its title instead of showing empty axes.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from ssmboard.leaderboard.tables import DISPLAY_UNITS, LABELS, OOM_METRIC, pareto_front

Z95 = 1.96
X_AXES = {"chunk_size": ("x_chunk_size", "chunk size"), "prompt_len": ("ctx_prompt_len", "prompt length (tokens)")}


def _go():
    import plotly.graph_objects as go

    return go


def _empty(title: str, why: str):
    go = _go()
    fig = go.Figure()
    fig.update_layout(title=f"{title}<br><sup>{why}</sup>", template="plotly_white", height=380,
                      xaxis={"visible": False}, yaxis={"visible": False})
    return fig


PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def _colour(variants: Sequence[str], name: str) -> str:
    """The same colour for a variant in every figure of one comparison (its place in the list)."""
    return PALETTE[list(variants).index(name) % len(PALETTE)]


def _scale(unit: str) -> tuple[float, str]:
    return DISPLAY_UNITS.get(unit, (1.0, unit or ""))


def metric_vs(results: pd.DataFrame, variants: Sequence[str], metric: str, x: str,
              context: Mapping[str, Any]):
    """``metric`` of each variant against chunk size or prompt length on ``context['device']``.

    Against chunk size: the rows at the context's prompt length and batch, sweep points (rows of
    the variant run at another chunk size) included. Against prompt length: the variant's own
    spec at the context's batch.
    """
    col, xlabel = X_AXES[x]
    label = LABELS.get(metric, metric)
    title = f"{label} vs {xlabel}"
    rows = results[(results["metric"] == metric) & results["variant"].isin(list(variants))
                   & (results["device_name"] == context.get("device")) & results["ctx_chunk_index"].isna()]
    if context.get("batch") is not None:
        rows = rows[rows["ctx_batch"].isna() | (rows["ctx_batch"] == context["batch"])]
    if x == "chunk_size" and context.get("prompt_len") is not None:
        rows = rows[rows["ctx_prompt_len"] == context["prompt_len"]]
    if x == "prompt_len":
        rows = rows[rows["ctx_effective_fingerprint"].isna()]
    rows = rows.dropna(subset=[col])
    if rows.empty:
        return _empty(title, f"no {metric} rows of these variants on {context.get('device')}")
    scale, unit = _scale(rows["unit"].iloc[0])
    go = _go()
    fig = go.Figure()
    for name in variants:
        mine = rows[rows["variant"] == name].sort_values(["created_at", "id"]).groupby(col).tail(1).sort_values(col)
        if mine.empty:
            continue
        err = mine["stderr"].fillna(0.0) * Z95 * scale
        fig.add_trace(go.Scatter(x=mine[col].astype(float), y=mine["value"] * scale, mode="lines+markers", name=name,
                                 line={"color": _colour(variants, name)},
                                 error_y={"type": "data", "array": list(err), "visible": True}))
    where = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in context.items()
                      if v is not None and k != x and not (x == "prompt_len" and k == "prompt_len"))
    fig.update_layout(title=f"{title}<br><sup>{where}; bars: 95% interval from the stored standard error</sup>",
                      xaxis_title=xlabel, yaxis_title=f"{label} ({unit})" if unit else label,
                      template="plotly_white", height=380, legend_title="variant")
    fig.update_xaxes(type="log", dtick=0.30102999566) if x == "chunk_size" else None
    return fig


def chunk_metrics(results: pd.DataFrame) -> list[str]:
    """Metrics stored per chunk index (where along the sequence an approximation loses accuracy)."""
    rows = results[results["ctx_chunk_index"].notna()]
    names = sorted(set(rows["metric"]))
    return sorted(names, key=lambda n: (0 if "kl" in n.lower() else 1, n))


def by_chunk_index(results: pd.DataFrame, variants: Sequence[str], metric: str | None,
                   context: Mapping[str, Any]):
    """A per-chunk metric (KL by default) of each variant against the chunk index."""
    metric = metric or next(iter(chunk_metrics(results)), None)
    title = f"{metric or 'KL'} vs chunk index"
    if metric is None:
        return _empty(title, "no per-chunk rows stored (the fidelity evaluator writes them)")
    rows = results[(results["metric"] == metric) & results["ctx_chunk_index"].notna()
                   & results["variant"].isin(list(variants)) & (results["device_name"] == context.get("device"))]
    if context.get("prompt_len") is not None and rows["ctx_prompt_len"].notna().any():
        at = rows[rows["ctx_prompt_len"] == context["prompt_len"]]
        rows = at if not at.empty else rows
    if rows.empty:
        return _empty(title, f"no per-chunk {metric} rows of these variants on {context.get('device')}")
    go = _go()
    fig = go.Figure()
    for name in variants:
        mine = (rows[rows["variant"] == name].sort_values(["created_at", "id"])
                .groupby("ctx_chunk_index").tail(1).sort_values("ctx_chunk_index"))
        if mine.empty:
            continue
        err = mine["stderr"].fillna(0.0) * Z95
        fig.add_trace(go.Scatter(x=mine["ctx_chunk_index"].astype(int), y=mine["value"], mode="lines+markers",
                                 name=name, line={"color": _colour(variants, name)},
                                 error_y={"type": "data", "array": list(err), "visible": True}))
    unit = rows["unit"].iloc[0]
    fig.update_layout(title=f"{title}<br><sup>{context.get('device')}; where along the sequence accuracy is lost</sup>",
                      xaxis={"title": "chunk index", "dtick": 1}, yaxis_title=f"{metric} ({unit})" if unit else metric,
                      template="plotly_white", height=380, legend_title="variant")
    return fig


def speed_vs_quality(values: pd.DataFrame, x: str, y: str, *, x_label: str, y_label: str,
                     x_higher_is_better: bool, y_higher_is_better: bool, x_scale: float = 1.0,
                     y_scale: float = 1.0):
    """Every variant of a ranking (``values``: a ``variant`` column and metric columns) as a point,
    with the Pareto front (variants nothing beats on both) drawn and named."""
    title = f"{y_label} vs {x_label}"
    pts = values.set_index("variant")[[x, y]].dropna() if x in values and y in values else pd.DataFrame()
    if pts.empty:
        return _empty(title, "no variant has both metrics at this context")
    front = pareto_front(pts, x, y, x_higher_is_better=x_higher_is_better, y_higher_is_better=y_higher_is_better)
    go = _go()
    fig = go.Figure()
    rest = pts.drop(index=front)
    fig.add_trace(go.Scatter(x=rest[x] * x_scale, y=rest[y] * y_scale, mode="markers+text", name="dominated",
                             text=list(rest.index), textposition="top center",
                             marker={"size": 10, "color": "#9aa5b1"}))
    fr = pts.loc[front]
    fig.add_trace(go.Scatter(x=fr[x] * x_scale, y=fr[y] * y_scale, mode="lines+markers+text", name="Pareto front",
                             text=list(fr.index), textposition="top center",
                             marker={"size": 12, "color": "#d9480f"}, line={"dash": "dot"}))
    better = lambda hib: "higher is better" if hib else "lower is better"  # noqa: E731
    fig.update_layout(title=f"{title}<br><sup>Pareto front: variants no other beats on both axes</sup>",
                      xaxis_title=f"{x_label} ({better(x_higher_is_better)})",
                      yaxis_title=f"{y_label} ({better(y_higher_is_better)})", template="plotly_white", height=460)
    return fig


def history(results: pd.DataFrame, variant: str, metric: str, regressions: Sequence[Mapping[str, Any]] = ()):
    """One metric of one variant over time, a line per device and context, regressions marked."""
    rows = results[(results["variant"] == variant) & (results["metric"] == metric)
                   & (results["metric"] != OOM_METRIC)]
    title = f"{variant}: {metric} over time"
    if rows.empty:
        return _empty(title, "no rows")
    scale, unit = _scale(rows["unit"].iloc[0])
    go = _go()
    fig = go.Figure()
    show = lambda v: "-" if v is None or v != v else str(int(v))  # noqa: E731
    rows = rows.assign(series=[f"{d} · L={show(p)} b={show(b)}" for d, p, b in
                               zip(rows["device_name"], rows["ctx_prompt_len"], rows["ctx_batch"])])
    rows = rows[rows["ctx_effective_fingerprint"].isna()]
    for series, mine in rows.sort_values("created_at").groupby("series"):
        fig.add_trace(go.Scatter(x=pd.to_datetime(mine["created_at"]), y=mine["value"] * scale,
                                 mode="lines+markers", name=series,
                                 error_y={"type": "data", "array": list(mine["stderr"].fillna(0.0) * Z95 * scale)}))
    marked = [r for r in regressions if r.get("variant") == variant and r.get("metric") == metric]
    if marked:
        ids = {r.get("result_id") for r in marked}
        hit = results[results["id"].isin(ids)]
        if not hit.empty:
            fig.add_trace(go.Scatter(x=pd.to_datetime(hit["created_at"]), y=hit["value"] * scale, mode="markers",
                                     name="regression", marker={"symbol": "x", "size": 14, "color": "#c92a2a"}))
    fig.update_layout(title=title, xaxis_title="measured at", yaxis_title=f"{metric} ({unit})" if unit else metric,
                      template="plotly_white", height=380)
    return fig
