"""How the CLI shows things: JSON, aligned tables, metric rows, and parsing NAME=VALUE text."""
from __future__ import annotations

import json
from typing import Any, Sequence

from ssmboard.errors import SsmboardError

# How each unit is shown: (scale, shown unit).
DISPLAY_UNITS = {"s": (1e3, "ms"), "bytes": (1 / 2**20, "MiB"), "tokens/s": (1.0, "tok/s")}
_CONTEXT_COLUMNS = ("mode", "batch", "prompt_len", "new_tokens", "chunk_size")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))


def cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v)) or "-"
    if isinstance(v, dict):
        return ",".join(f"{k}={x}" for k, x in v.items()) or "-"
    return str(v)


def print_table(rows: list[dict[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None) -> None:
    """A plain aligned text table (no extra dependency)."""
    headers = list(headers or columns)
    table = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(h)] + [len(t[i]) for t in table]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for t in table:
        print("  ".join(x.ljust(w) for x, w in zip(t, widths)).rstrip())


def parse_option_value(text: str) -> bool | int | float | str:
    """'true'/'false' -> bool, '3' -> int, '0.5' -> float, anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_assignments(items: Sequence[str] | None, flag: str, example: str, *,
                      lists: bool = False) -> dict[str, Any]:
    """``NAME=VALUE`` options as a dict; with ``lists`` a comma-separated value becomes a tuple."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SsmboardError(f"invalid {flag} {item!r}: write NAME=VALUE, e.g. {example}")
        if lists and "," in value:
            out[key.strip()] = tuple(parse_option_value(v.strip()) for v in value.split(","))
        else:
            out[key.strip()] = parse_option_value(value.strip())
    return out


def metric_rows(reports: list[Any]) -> list[dict[str, Any]]:
    """Flat display rows (variant, context, metric, value, unit, n) from reports."""
    rows = []
    for report in reports:
        for m in report.metrics:
            scale, unit = DISPLAY_UNITS.get(m.unit, (1.0, m.unit))
            row = {"variant": report.variant["name"], "metric": m.name, "value": f"{m.value * scale:.4g}",
                   "unit": unit, "n": m.n}
            row.update({k: m.context.get(k) for k in _CONTEXT_COLUMNS})
            rows.append(row)
    return rows


def print_metric_rows(reports: list[Any]) -> None:
    columns = ("variant", "mode", "batch", "prompt_len", "new_tokens", "chunk_size", "metric", "value", "unit", "n")
    print_table(metric_rows(reports), columns, [c.upper() for c in columns])
