"""Cron-like recurring suites, stored in the database and fired by whichever worker gets there.

A schedule is a cron expression (parsed by croniter, a maintained library), a suite and
variant name patterns. Every worker calls :func:`run_due` between jobs; each due time is
enqueued exactly once because the store has a unique key on (schedule, due time), not a
timer in one process. When no worker was up over several due times, only the latest is
enqueued, and the schedule remembers how many it skipped (``schedule list`` says so).
Every function takes ``now`` (naive UTC) so tests can move the clock.
"""
from __future__ import annotations

import fnmatch
from datetime import datetime, timedelta
from typing import Any

from ssmboard.db import jobs as store_jobs
from ssmboard.db.models import utcnow
from ssmboard.errors import JobError

_MAX_COUNT = 100_000  # due times counted when reporting missed runs (every minute for ~70 days)


def _croniter() -> Any:
    from ssmboard.extras import require

    return require("croniter", "schedules", "schedules").croniter


def check_cron(expr: str) -> str:
    """``expr`` if croniter accepts it; one-line JobError otherwise."""
    croniter = _croniter()
    if not isinstance(expr, str) or not croniter.is_valid(expr):
        raise JobError(f"bad cron expression {expr!r}; write five fields 'MIN HOUR DOM MON DOW', "
                       "e.g. '0 3 * * *' for 03:00 UTC every day")
    return expr


def latest_due(expr: str, base: datetime, now: datetime) -> tuple[datetime | None, int]:
    """The latest due time in (base, now] and how many earlier due times in that span it skips."""
    croniter = _croniter()
    latest = croniter(expr, now + timedelta(seconds=1)).get_prev(datetime)
    if latest <= base:
        return None, 0
    it = croniter(expr, base)
    missed = 0
    while missed < _MAX_COUNT:
        t = it.get_next(datetime)
        if t >= latest:
            break
        missed += 1
    return latest, missed


def next_due(expr: str, after: datetime) -> datetime:
    return _croniter()(expr, after).get_next(datetime)


def add_schedule(name: str, cron: str, suite: str, variants: list[str], params: dict[str, Any] | None = None, *,
                 now: datetime | None = None) -> dict[str, Any]:
    """Store a schedule; it first fires at the first due time after ``now``."""
    from ssmboard.jobs.queue import _plain, check_suite

    if not name or not name.strip():
        raise JobError("a schedule needs a name")
    check_cron(cron)
    check_suite(suite, params)
    if not variants:
        raise JobError("a schedule needs at least one variant name or pattern, e.g. --variants 'triton-*'")
    return store_jobs.add_schedule(name, cron=cron, suite=suite, variants=list(variants),
                                   params=_plain(params or {}), now=now or utcnow())


def remove_schedule(name: str) -> None:
    store_jobs.remove_schedule(name)


def list_schedules(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """Schedules with their next due time, the last one enqueued and how many runs were skipped
    (``last_missed``: due times no worker was up for, skipped in favour of the latest; ``due_now``
    / ``missing``: what the next worker will enqueue and skip)."""
    now = now or utcnow()
    out = []
    for sch in store_jobs.list_schedules():
        base = sch["last_due_at"] or sch["created_at"]
        due, missed = latest_due(sch["cron"], base, now)
        out.append({**sch, "next_due": next_due(sch["cron"], now), "due_now": due, "missing": missed if due else 0,
                    "note": _note(sch, due, missed)})
    return out


def _note(sch: dict[str, Any], due: datetime | None, missed: int) -> str:
    notes = []
    if sch["last_missed"]:
        notes.append(f"{sch['last_missed']} missed run(s) before {sch['last_due_at']:%Y-%m-%d %H:%M} were "
                     "skipped (only the latest was enqueued)")
    if due is not None:
        extra = f", skipping {missed} earlier missed run(s)" if missed else ""
        notes.append(f"due since {due:%Y-%m-%d %H:%M}: the next worker enqueues it{extra}")
    return "; ".join(notes)


def _matching_variants(patterns: list[str]) -> list[str]:
    from ssmboard.registry.api import list_variants

    names = [s.name for s in list_variants()]
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def run_due(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """Enqueue each schedule's latest due time that is not enqueued yet (once across all workers);
    returns what this call enqueued. Cheap when there are no schedules (croniter not needed)."""
    now = now or utcnow()
    schedules = store_jobs.list_schedules()
    fired = []
    for sch in schedules:
        base = sch["last_due_at"] or sch["created_at"]
        due, missed = latest_due(sch["cron"], base, now)
        if due is None:
            continue
        from ssmboard.jobs.queue import _job_spec

        specs = [_job_spec(name, sch["suite"], sch["params"], 3) for name in _matching_variants(sch["variants"])]
        done = store_jobs.fire_schedule(sch["id"], due, specs, missed=missed, now=now)
        if done is not None:
            fired.append({"schedule": sch["name"], **done})
    return fired


def schedule_runs(name: str) -> list[dict[str, Any]]:
    for sch in store_jobs.list_schedules():
        if sch["name"] == name:
            return store_jobs.schedule_runs(sch["id"])
    raise JobError(f"no schedule named {name!r}; see `ssmboard schedule list`")
