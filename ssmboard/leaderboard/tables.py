"""The ranking and the comparison: pure functions of the frames ``leaderboard.data`` reads.

One ranking is at one context (device, prompt length, batch): rows measured on different
devices are never put in one ranking, and the table says which device it is for and which
others have results. A cell is the latest stored row of its variant, metric and context;
an out-of-memory point shows "OOM", a missing one "-", never 0. A cell whose difference
from its column's best is within noise (the 95% interval of the difference covers 0: a
paired bootstrap over item scores when both rows have them, else the stored standard
errors, as ``compare.compare_records`` decides) is marked, so a user does not read noise as
a ranking.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from ssmboard.errors import SsmboardError

GROUPS: tuple[str, ...] = ("performance", "fidelity", "tasks", "spec", "detail")
DEFAULT_GROUPS: tuple[str, ...] = ("performance", "fidelity", "tasks", "spec")
EVALUATOR_GROUPS = {"perf": "performance", "fidelity": "fidelity", "gptscore": "fidelity"}
# the perf metrics shown by default, in this order; the other perf rows go to "detail"
HEADLINE = ("ttft", "prefill_tokens_per_s", "decode_tpot", "decode_tokens_per_s", "prefill_max_allocated",
            "prefill_peak_rss", "decode_max_allocated", "decode_peak_rss")
FIDELITY_HEADLINE = ("kl_mean", "top1_agreement", "greedy_token_agreement", "gptscore_mean", "gptscore_f")
LABELS = {"ttft": "TTFT", "prefill_tokens_per_s": "prefill", "decode_tpot": "TPOT",
          "decode_tokens_per_s": "decode", "prefill_max_allocated": "prefill peak mem",
          "prefill_peak_rss": "prefill peak RSS", "decode_max_allocated": "decode peak mem",
          "decode_peak_rss": "decode peak RSS"}
# how a stored unit is shown: (scale, shown unit)
DISPLAY_UNITS = {"s": (1e3, "ms"), "bytes": (1 / 2**20, "MiB"), "tokens/s": (1.0, "tok/s")}
OOM_METRIC = "out_of_memory"
OOM, MISSING = "OOM", "-"
BEST_MARK, NOISE_MARK = "★", "≈"
LEGEND = (f"{BEST_MARK} best in its column; {NOISE_MARK} within noise of the best (the 95% interval of "
          "the difference covers 0); OOM: ran out of memory; -: not measured")
# variant fields a user filters on: filter name -> variants-frame column
FILTERS = {"model": "model", "backend": "scan", "chunk_size": "chunk_size", "dtype": "dtype",
           "compile": "compile", "decoder": "decoder"}
SPEC_COLUMNS = {"model": "model", "scan": "backend", "chunk_size": "chunk", "dtype": "dtype",
                "compile": "compile", "decoder": "decoder", "fingerprint": "fingerprint"}
CONTEXT_KEYS = ("device", "prompt_len", "batch")


class BoardError(SsmboardError):
    """A leaderboard request that cannot be met (unknown metric, device or context key)."""


@dataclass(frozen=True)
class Column:
    """One metric column: its key (metric, or task/metric), how it is shown, which way is better."""

    key: str
    metric: str
    label: str
    unit: str  # shown unit
    scale: float
    higher_is_better: bool
    group: str
    evaluator: str

    @property
    def header(self) -> str:
        arrow = "↑" if self.higher_is_better else "↓"
        return f"{self.label} ({self.unit}) {arrow}" if self.unit else f"{self.label} {arrow}"


@dataclass(frozen=True)
class Selection:
    """What the user chose: the context, the ranking metric, filters, search, groups, sort."""

    device: str | None = None
    prompt_len: int | None = None
    batch: int | None = None
    metric: str | None = None
    filters: Mapping[str, Sequence[Any]] = field(default_factory=dict)  # FILTERS key -> allowed values
    search: str = ""
    groups: Sequence[str] = DEFAULT_GROUPS
    sort_by: str | None = None  # a column key, "variant" or a spec field; default: the rank
    descending: bool | None = None  # default: best first for a metric, ascending otherwise


@dataclass
class Ranking:
    """The ranking table: ``values`` (numbers, NaN where missing), ``display`` (the strings shown)."""

    context: dict[str, Any]
    metric: str | None
    columns: list[Column]
    values: pd.DataFrame
    display: pd.DataFrame
    notes: list[str]
    other_devices: list[str]
    marks: dict[tuple[str, str], str] = field(default_factory=dict)  # (variant, key) -> "best" | "noise"

    @property
    def order(self) -> list[str]:
        return list(self.values["variant"])


# -- choosing the context --------------------------------------------------------------------
def _num(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _ranked_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Rows a ranking may use: not a sweep point of another spec, not a per-chunk breakdown."""
    keep = results["ctx_effective_fingerprint"].isna() & results["ctx_chunk_index"].isna()
    return results[keep]


def devices(results: pd.DataFrame) -> list[str]:
    """Devices with results, the one with the most variants first."""
    if results.empty:
        return []
    counts = results.groupby("device_name")["variant"].nunique()
    return sorted(counts.index, key=lambda d: (-counts[d], d))


def _most_common(rows: pd.DataFrame, column: str) -> int | None:
    vals = rows.dropna(subset=[column])
    if vals.empty:
        return None
    counts = vals.groupby(column)["variant"].nunique()
    return int(sorted(counts.index, key=lambda v: (-counts[v], v))[0])


def context_options(results: pd.DataFrame, device: str | None = None) -> dict[str, list]:
    """The values each context key takes on ``device`` (all devices for the device key)."""
    rows = _ranked_rows(results)
    if device is not None:
        rows = rows[rows["device_name"] == device]
    return {"device": devices(results),
            "prompt_len": sorted(int(v) for v in rows["ctx_prompt_len"].dropna().unique()),
            "batch": sorted(int(v) for v in rows["ctx_batch"].dropna().unique())}


def resolve_context(results: pd.DataFrame, sel: Selection) -> dict[str, Any]:
    """The context a ranking is at: what the selection names, else the most measured values."""
    all_devices = devices(results)
    device = sel.device
    if device is None:
        device = all_devices[0] if all_devices else None
    elif device not in all_devices:
        raise BoardError(f"no results on device {device!r}; devices with results: "
                         f"{', '.join(all_devices) or 'none'}")
    rows = _ranked_rows(results)
    rows = rows[rows["device_name"] == device]
    perf = rows[rows["evaluator"] == "perf"]
    base = perf if not perf.empty else rows
    prompt_len = sel.prompt_len if sel.prompt_len is not None else _most_common(base, "ctx_prompt_len")
    if prompt_len is not None:
        base = base[base["ctx_prompt_len"].isna() | (base["ctx_prompt_len"] == prompt_len)]
    batch = sel.batch if sel.batch is not None else _most_common(base, "ctx_batch")
    return {"device": device, "prompt_len": prompt_len, "batch": batch}


def at_context(results: pd.DataFrame, context: Mapping[str, Any]) -> pd.DataFrame:
    """The ranked rows measured at ``context``. The device always matches exactly; prompt length and
    batch select perf rows only (a fidelity or task row's prompt length is its own axis: it
    becomes part of its column, see :func:`column_key`), and a row without the key matches."""
    rows = _ranked_rows(results)
    rows = rows[rows["device_name"] == context["device"]]
    perf = rows["evaluator"] == "perf"
    for key in ("prompt_len", "batch"):
        if context.get(key) is not None:
            col = rows[f"ctx_{key}"]
            rows = rows[~perf | col.isna() | (col == context[key])]
            perf = rows["evaluator"] == "perf"
    return rows


# -- columns and cells ------------------------------------------------------------------------
def column_key(metric: str, task: Any = None, prompt_len: Any = None) -> str:
    """``metric``, ``task/metric`` for a task score, with `` @L<n>`` for a non-perf row measured
    at a prompt length (KL over 512-token prompts is another number than over 2048)."""
    named = isinstance(task, str) and task and not metric.startswith(f"{task}/")  # lmeval names carry it
    key = f"{task}/{metric}" if named else metric
    return f"{key} @L{int(prompt_len)}" if _num(prompt_len) else key


def _group(evaluator: str, metric: str, single_chunk: Any = None) -> str:
    group = EVALUATOR_GROUPS.get(evaluator, "tasks")
    if group == "performance" and metric not in HEADLINE:
        return "detail"
    if group == "fidelity" and (metric not in FIDELITY_HEADLINE or single_chunk is True):
        return "detail"
    return group


def _with_keys(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.copy()
    rows["key"] = [column_key(m, t, None if e == "perf" else p) for m, t, e, p in
                   zip(rows["metric"], rows["ctx_task"], rows["evaluator"], rows["ctx_prompt_len"])]
    return rows


def columns_of(rows: pd.DataFrame) -> list[Column]:
    """One column per metric key in ``rows`` (OOM markers excluded): headline perf metrics first."""
    out: dict[str, Column] = {}
    for r in rows.itertuples(index=False):
        if r.metric == OOM_METRIC or r.key in out:
            continue
        scale, unit = DISPLAY_UNITS.get(r.unit, (1.0, r.unit or ""))
        label = LABELS.get(r.metric, r.metric) + r.key[len(r.metric):] if r.key.startswith(r.metric) else r.key
        out[r.key] = Column(key=r.key, metric=r.metric, label=label, unit=unit, scale=scale,
                            higher_is_better=bool(r.higher_is_better),
                            group=_group(r.evaluator, r.metric, r.ctx_single_chunk),
                            evaluator=r.evaluator)
    order = {g: i for i, g in enumerate(GROUPS)}

    def sort_key(c: Column):
        heads = HEADLINE + FIDELITY_HEADLINE
        head = heads.index(c.metric) if c.metric in heads else len(heads)
        return (order[c.group], head, c.key)
    return sorted(out.values(), key=sort_key)


Cell = dict  # the result record behind one table cell (the keys compare.compare_records reads)
_CELL_FIELDS = ("id", "value", "stderr", "n", "evaluator", "metric", "unit", "higher_is_better", "context", "spec",
                "device_name")


def latest_cells(rows: pd.DataFrame) -> dict[tuple[str, str], Cell]:
    """The newest row of each (variant, key): a re-run replaces, it does not average."""
    rows = rows[rows["metric"] != OOM_METRIC].sort_values(["created_at", "id"])
    last = rows.groupby(["variant", "key"], sort=False).tail(1)
    out = {}
    for rec in zip(last["variant"], last["key"], *(last[f] for f in _CELL_FIELDS)):
        cell = dict(zip(_CELL_FIELDS, rec[2:]))
        cell["id"], cell["value"] = int(cell["id"]), float(cell["value"])
        cell["stderr"] = float(cell["stderr"]) if _num(cell["stderr"]) else None
        out[(rec[0], rec[1])] = cell
    return out


def oom_variants(rows: pd.DataFrame) -> set[str]:
    return set(rows.loc[rows["metric"] == OOM_METRIC, "variant"])


# -- noise -------------------------------------------------------------------------------------
ItemsFor = Callable[[list[int]], Mapping[int, Mapping[str, float]]]


def difference(a: Cell, b: Cell, items: Mapping[int, Mapping[str, float]]) -> dict[str, Any] | None:
    """B minus A for two cells, by ``compare.compare_records`` (the one pairing and statistics
    rule: a paired bootstrap over common item scores, else the stored standard errors): its row
    (delta, lo, hi, method, verdict), or None when the two rows do not measure the same thing."""
    from ssmboard.leaderboard.compare import compare_records

    rows = [r for r in compare_records([a], [b], dict(items)) if r["method"] != "none" or r["delta"] is not None]
    return rows[0] if rows else None


def _within_noise(d: Mapping[str, Any] | None) -> bool:
    return d is not None and d["lo"] is not None and d["lo"] <= 0.0 <= d["hi"]


def _best(values: pd.Series, higher_is_better: bool) -> list[str]:
    """The variants holding the best value of a column (several when tied)."""
    vals = values.dropna()
    if vals.empty:
        return []
    top = vals.max() if higher_is_better else vals.min()
    return list(vals.index[vals == top])


# -- the ranking --------------------------------------------------------------------------------
def filter_variants(variants: pd.DataFrame, filters: Mapping[str, Sequence[Any]], search: str = "") -> pd.DataFrame:
    """Variants whose fields are among the allowed values of every filter, and match the search."""
    out = variants
    for name, allowed in (filters or {}).items():
        if name not in FILTERS:
            raise BoardError(f"unknown filter {name!r}; filters: {', '.join(FILTERS)}")
        if not allowed:
            continue
        allowed_text = {_text(v) for v in allowed}
        out = out[[_text(v) in allowed_text for v in out[FILTERS[name]]]]
    words = search.strip().lower().split()
    if words:
        hay = (out["name"].astype(str) + " " + out["model"].astype(str) + " " + out["scan"].astype(str) + " "
               + out["description"].fillna("").astype(str) + " " + out["tags"].map(_text) + " "
               + out["fingerprint"].astype(str)).str.lower()
        out = out[[all(w in h for w in words) for h in hay]]
    return out


def _text(v: Any) -> str:
    """How a field value is shown and matched in filters (None as "none", lists joined)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "none"
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def filter_options(variants: pd.DataFrame) -> dict[str, list[str]]:
    """The values each filter can take, as shown."""
    return {name: sorted({_text(v) for v in variants[col]}, key=lambda s: (len(s), s))
            for name, col in FILTERS.items()}


def _format(value: float, col: Column) -> str:
    return f"{value * col.scale:.4g}"


def ranking(results: pd.DataFrame, variants: pd.DataFrame, sel: Selection = Selection(),
            items_for: ItemsFor | None = None) -> Ranking:
    """The leaderboard at one context: one row per variant, ranked by ``sel.metric``."""
    context = resolve_context(results, sel)
    others = [d for d in devices(results) if d != context["device"]]
    rows = _with_keys(at_context(results, context)) if context["device"] is not None else \
        _with_keys(results.iloc[0:0])
    chosen = filter_variants(variants, sel.filters, sel.search)
    rows = rows[rows["variant"].isin(set(chosen["name"]))]
    columns = columns_of(rows)
    by_key = {c.key: c for c in columns}
    metric = sel.metric
    if metric is not None and metric not in by_key:
        raise BoardError(f"no metric {metric!r} at this context; metrics: {', '.join(by_key) or 'none'}")
    if metric is None and columns:
        metric = next((c.key for c in columns if c.metric in HEADLINE), columns[0].key)
    cells = latest_cells(rows)
    ooms = oom_variants(rows)
    measured = set(rows["variant"])
    names = [n for n in chosen["name"] if n in measured]

    values = pd.DataFrame({"variant": names})
    for c in columns:
        values[c.key] = [cells[(n, c.key)]["value"] if (n, c.key) in cells else math.nan for n in names]
    values = values.set_index("variant")

    marks = _marks(values, columns, cells, items_for)
    if metric is not None:
        col = by_key[metric]
        order = values[metric].rank(ascending=not col.higher_is_better, method="min")
        values.insert(0, "rank", order)
    else:
        values.insert(0, "rank", math.nan)
    spec = chosen.set_index("name").reindex(values.index)
    for field_name in SPEC_COLUMNS:
        values[field_name] = spec[field_name]
    values = values.reset_index()
    values = _sort(values, sel, by_key, metric)

    display = _display(values, columns, marks, ooms, sel.groups)
    notes = [f"Ranked on **{context['device']}**" + "".join(
        f", {k.replace('_', ' ')} {context[k]}" for k in ("prompt_len", "batch") if context[k] is not None)
        + (f", by {by_key[metric].header}" if metric else "") + "."] if context["device"] else []
    if others:
        notes.append("Other devices with results (never ranked together with this one): " + ", ".join(others)
                     + ". Pick one in the device box to rank on it.")
    missing = sorted(set(chosen["name"]) - set(names))
    if missing and context["device"]:
        notes.append(f"{len(missing)} variant(s) have no results at this context: " + ", ".join(missing[:12])
                     + (" ..." if len(missing) > 12 else ""))
    return Ranking(context=context, metric=metric, columns=columns, values=values, display=display,
                   notes=notes, other_devices=others, marks=marks)


def _marks(values: pd.DataFrame, columns: list[Column], cells: Mapping[tuple[str, str], Cell],
           items_for: ItemsFor | None) -> dict[tuple[str, str], str]:
    """Which cells are the best of their column and which are within noise of it."""
    marks: dict[tuple[str, str], str] = {}
    bests = {c.key: _best(values[c.key], c.higher_is_better) for c in columns}
    # item scores only matter for the columns that have them; one query for all of them
    if items_for is not None and _has_item_columns(columns):
        rel = [cells[(n, c.key)]["id"] for c in columns if c.group in ("fidelity", "tasks")
               for n in values.index if (n, c.key) in cells]
        items = items_for(sorted(set(rel)))
    else:
        items = {}
    for c in columns:
        tied = bests[c.key]
        if not tied:
            continue
        for n in tied:
            marks[(n, c.key)] = "best"
        brow = cells[(tied[0], c.key)]
        for n in values.index:
            if n in tied or (n, c.key) not in cells:
                continue
            if _within_noise(difference(brow, cells[(n, c.key)], items)):
                marks[(n, c.key)] = "noise"
    return marks


def _sort(values: pd.DataFrame, sel: Selection, by_key: Mapping[str, Column], metric: str | None) -> pd.DataFrame:
    key = sel.sort_by or "rank"
    if key not in values.columns:
        raise BoardError(f"cannot sort by {key!r}; columns: {', '.join(values.columns)}")
    if key == "rank":
        descending = bool(sel.descending) if sel.descending is not None else False
    elif key in by_key:
        descending = sel.descending if sel.descending is not None else by_key[key].higher_is_better
    else:
        descending = bool(sel.descending)
    col = values[key]
    if key not in by_key and key != "rank":
        col = col.map(_text)
    order = col.sort_values(ascending=not descending, na_position="last", kind="stable").index
    # ties and missing values in a stable, readable order: by name
    return values.loc[order].reset_index(drop=True)


def _display(values: pd.DataFrame, columns: list[Column], marks: Mapping[tuple[str, str], str],
             ooms: set[str], groups: Sequence[str]) -> pd.DataFrame:
    shown = [c for c in columns if c.group in groups]
    out = pd.DataFrame({"rank": [str(int(r)) if _num(r) else MISSING for r in values["rank"]],
                        "variant": values["variant"]})
    for c in shown:
        cells = []
        for n, v in zip(values["variant"], values[c.key]):
            if not _num(v):
                cells.append(OOM if n in ooms and c.group in ("performance", "detail") else MISSING)
                continue
            mark = marks.get((n, c.key))
            text = _format(v, c)
            cells.append(f"{text} {BEST_MARK}" if mark == "best" else f"{text} {NOISE_MARK}" if mark == "noise"
                         else text)
        out[c.header] = cells
    if "spec" in groups:
        for field_name, header in SPEC_COLUMNS.items():
            out[header] = [_text(v) if field_name != "chunk_size" or _num(v) else "model's"
                           for v in values[field_name]]
    return out


def ranking_records(r: Ranking) -> list[dict[str, Any]]:
    """The ranking as plain rows (numbers in stored units), for JSON and CSV output."""
    out = []
    for row in r.values.to_dict(orient="records"):
        rec = {"rank": int(row["rank"]) if _num(row["rank"]) else None, "variant": row["variant"],
               "device": r.context["device"], "prompt_len": r.context["prompt_len"], "batch": r.context["batch"]}
        for c in r.columns:
            v = row[c.key]
            rec[c.key] = float(v) if _num(v) else None
        out.append(rec)
    return out


# -- comparing variants ---------------------------------------------------------------------
def comparison(results: pd.DataFrame, variants: Sequence[str], context: Mapping[str, Any],
               items_for: ItemsFor | None = None, groups: Iterable[str] = GROUPS) -> pd.DataFrame:
    """Variants side by side at one context: per metric, each value and, for the second to
    last variant, its difference from the first with the 95% interval and the verdict.

    Columns: metric, unit, higher_is_better, one per variant (value in shown units), then
    per other variant ``Δ <name>``, ``95% CI <name>``, ``verdict <name>`` and the method used.
    """
    names = list(dict.fromkeys(variants))
    if not 2 <= len(names) <= 4:
        raise BoardError(f"compare 2 to 4 variants (got {len(names)})")
    rows = _with_keys(at_context(results, context))
    rows = rows[rows["variant"].isin(names)]
    cells = latest_cells(rows)
    ooms = oom_variants(rows)
    columns = [c for c in columns_of(rows) if c.group in set(groups)]
    ids = [c["id"] for c in cells.values()] if _has_item_columns(columns) and items_for else []
    items = items_for(ids) if ids else {}
    base = names[0]
    out = []
    for c in columns:
        rec: dict[str, Any] = {"metric": c.label if c.label == c.key else f"{c.label} [{c.key}]",
                               "unit": c.unit, "better": "higher" if c.higher_is_better else "lower"}
        for n in names:
            if (n, c.key) in cells:
                rec[n] = _format(cells[(n, c.key)]["value"], c)
            else:
                rec[n] = OOM if n in ooms and c.group in ("performance", "detail") else MISSING
        for n in names[1:]:
            d = None
            if (base, c.key) in cells and (n, c.key) in cells:
                a, b = cells[(base, c.key)], cells[(n, c.key)]
                d = difference(a, b, items)
                rec[f"Δ {n}"] = f"{(b['value'] - a['value']) * c.scale:+.4g}"
            else:
                rec[f"Δ {n}"] = MISSING
            if d is None or d["lo"] is None:
                rec[f"95% CI {n}"] = MISSING
                rec[f"verdict {n}"] = (MISSING if rec[f"Δ {n}"] == MISSING else
                                       "not paired (different measurements)" if d is None else d["verdict"])
            else:
                rec[f"95% CI {n}"] = f"[{d['lo'] * c.scale:+.3g}, {d['hi'] * c.scale:+.3g}]"
                rec[f"verdict {n}"] = f"{d['verdict']} ({d['method']})"
        out.append(rec)
    return pd.DataFrame(out)


def _has_item_columns(columns: Iterable[Column]) -> bool:
    return any(c.group in ("fidelity", "tasks") for c in columns)


# -- Pareto front ------------------------------------------------------------------------------
def pareto_front(points: pd.DataFrame, x: str, y: str, *, x_higher_is_better: bool,
                 y_higher_is_better: bool) -> list[str]:
    """The points (index labels) no other point beats on both ``x`` and ``y``, sorted along x.

    A point is dominated when another is at least as good on both and better on one; points
    missing either value are left out.
    """
    pts = points[[x, y]].dropna()
    sx = 1.0 if x_higher_is_better else -1.0
    sy = 1.0 if y_higher_is_better else -1.0
    front = []
    for i, (px, py) in pts.iterrows():
        dominated = any((sx * qx >= sx * px and sy * qy >= sy * py) and (qx != px or qy != py)
                        for j, (qx, qy) in pts.iterrows() if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: pts.loc[i, x])
