"""Flag metrics that got worse beyond noise between two runs of the same suite on one variant.

When a job finishes, each of its result rows is compared with the matching row (same
evaluator, metric and context) of the previous finished job of the same fingerprint and
suite on the same hardware (device and CPU model; the software versions may differ, which
is what a nightly run is there to catch). The rule is ``ssmboard compare``'s: a paired
bootstrap over item scores when both rows have them, else the two stored standard errors;
a row without any noise estimate is not judged. A worse verdict becomes a Regression row.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ssmboard.db import jobs as store_jobs

_VOLATILE_CONTEXT = {"effective_variant"}


def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    ctx = {k: v for k, v in row["context"].items() if k not in _VOLATILE_CONTEXT}
    return row["evaluator"], row["metric"], json.dumps(ctx, sort_keys=True, default=str)


def _hardware(rows: list[dict[str, Any]]) -> set[tuple[Any, Any]]:
    return {(r["device_name"], r["cpu_model"]) for r in rows}


def compare_rows(before: dict[str, Any], after: dict[str, Any], items: dict[int, dict[str, float]]) -> Any:
    """The Difference after - before (None when the noise is unknown)."""
    from ssmboard.evaluators.stats import paired_bootstrap, stderr_difference

    a_items, b_items = items.get(before["id"]) or {}, items.get(after["id"]) or {}
    common = sorted(set(a_items) & set(b_items))
    if len(common) >= 2:
        return paired_bootstrap([a_items[k] for k in common], [b_items[k] for k in common])
    return stderr_difference(before["value"], before["stderr"], after["value"], after["stderr"])


def check_job(job_id: int) -> list[dict[str, Any]]:
    """Compare a finished job with its predecessor and record its regressions; returns them."""
    from ssmboard.db.queries import item_scores

    job = store_jobs.get_job(job_id)
    if job["status"] != "finished":
        return []
    rows = store_jobs.job_results(job_id)
    if not rows:
        return []
    hardware = _hardware(rows)
    previous, prev_rows = None, []
    for pid in store_jobs.previous_finished_jobs(job_id):
        candidate = [r for r in store_jobs.job_results(pid) if (r["device_name"], r["cpu_model"]) in hardware]
        if candidate:
            previous, prev_rows = pid, candidate
            break
    if previous is None:
        return []
    before = {_key(r): r for r in prev_rows}
    pairs = [(before[_key(r)], r) for r in rows if _key(r) in before]
    items = item_scores([r["id"] for pair in pairs for r in pair])
    found = []
    for old, new in pairs:
        diff = compare_rows(old, new, items)
        if diff is None or diff.verdict(new["higher_is_better"]) != "worse":
            continue
        found.append({"job_id": job_id, "previous_job_id": previous, "result_id": new["id"],
                      "previous_result_id": old["id"], "variant": job["variant"], "fingerprint": job["fingerprint"],
                      "suite": job["suite"], "evaluator": new["evaluator"], "metric": new["metric"],
                      "context": new["context"], "unit": new["unit"], "higher_is_better": new["higher_is_better"],
                      "before": old["value"], "after": new["value"], "delta": diff.delta, "lo": diff.lo,
                      "hi": diff.hi, "method": diff.method})
    store_jobs.add_regressions(found)
    return found


def list_regressions(since: datetime | str | None = None) -> list[dict[str, Any]]:
    """Recorded regressions, oldest first; ``since`` a datetime or ISO date ('2026-12-01')."""
    if isinstance(since, str):
        since = parse_since(since)
    return store_jobs.list_regressions(since)


def parse_since(text: str) -> datetime:
    from datetime import timezone

    from ssmboard.errors import JobError

    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise JobError(f"bad date {text!r}; write an ISO date such as 2026-12-01 or 2026-12-01T03:00") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt
