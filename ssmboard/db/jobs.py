"""The store side of the job queue, the schedules and the regressions: dicts in, dicts out.

Every state change of a job is one short transaction guarded by the job's current state
(and, for a running job, by the worker that holds it), so two workers can never both move
the same job: claiming takes the write lock before reading on SQLite (``BEGIN IMMEDIATE``)
and skips rows other workers hold on PostgreSQL (``FOR UPDATE SKIP LOCKED``). Times are
naive UTC; every function that looks at the clock takes ``now`` so tests can move it.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ssmboard.db import models as m
from ssmboard.db.engine import Store, get_store
from ssmboard.db.queries import _iso, save_report_rows
from ssmboard.errors import JobError

ACTIVE = m.ACTIVE_JOB_STATUSES


def params_key(fingerprint: str, suite: str, params: Mapping[str, Any]) -> str:
    """The identity of a job for deduplication: same fingerprint, suite and parameters."""
    text = json.dumps([fingerprint, suite, dict(params)], sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _now(now: datetime | None) -> datetime:
    return now or m.utcnow()


def job_record(row: m.Job, *, history: bool = False) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": row.id, "variant": row.variant.name if row.variant is not None else None,
        "fingerprint": row.fingerprint, "suite": row.suite, "params": dict(row.params or {}),
        "status": row.status, "attempts": row.attempts, "max_attempts": row.max_attempts,
        "worker": row.worker, "error": row.error, "created_at": _iso(row.created_at),
        "started_at": _iso(row.started_at), "finished_at": _iso(row.finished_at),
        "heartbeat_at": _iso(row.heartbeat_at), "lease_expires_at": _iso(row.lease_expires_at),
        "not_before": _iso(row.not_before), "log_path": row.log_path, "slurm_job_id": row.slurm_job_id,
        "slurm_state": row.slurm_state, "schedule_run_id": row.schedule_run_id,
    }
    if history:
        rec["history"] = list(row.history or [])
    return rec


def _get(s: Session, job_id: int) -> m.Job:
    row = s.get(m.Job, int(job_id))
    if row is None:
        raise JobError(f"no job {job_id}; see `ssmboard jobs` for the queue")
    return row


def _active_duplicate(s: Session, key: str) -> m.Job | None:
    return s.scalars(select(m.Job).where(m.Job.params_key == key, m.Job.status.in_(ACTIVE))).first()


# -- enqueueing ----------------------------------------------------------------------------
def enqueue_rows(s: Session, jobs: Iterable[Mapping[str, Any]], *, schedule_run_id: int | None = None,
                 now: datetime | None = None) -> list[tuple[dict[str, Any], bool]]:
    """Add jobs (dicts with variant_id, fingerprint, suite, params, max_attempts) in the caller's
    transaction; one that is already pending or running comes back with ``created`` False."""
    out = []
    for job in jobs:
        key = params_key(job["fingerprint"], job["suite"], job.get("params") or {})
        dup = _active_duplicate(s, key)
        if dup is not None:
            out.append((job_record(dup), False))
            continue
        row = m.Job(variant_id=job["variant_id"], fingerprint=job["fingerprint"], suite=job["suite"],
                    params=dict(job.get("params") or {}), status="pending", params_key=key,
                    max_attempts=int(job.get("max_attempts") or 3), attempts=0, created_at=_now(now),
                    schedule_run_id=schedule_run_id, history=[])
        s.add(row)
        s.flush()  # the partial unique index on params_key catches a concurrent twin here
        out.append((job_record(row), True))
    return out


def enqueue(jobs: list[Mapping[str, Any]], *, store: Store | None = None,
            now: datetime | None = None) -> list[tuple[dict[str, Any], bool]]:
    """:func:`enqueue_rows` in one transaction (retried when a concurrent submitter wins the race)."""
    return (store or get_store()).write(lambda s: enqueue_rows(s, jobs, now=now))


# -- workers ---------------------------------------------------------------------------------
def _lock_for_claim(s: Session) -> None:
    """Take the database's write lock before reading, on SQLite (PostgreSQL locks rows instead)."""
    if s.get_bind().dialect.name == "sqlite":
        s.connection().exec_driver_sql("BEGIN IMMEDIATE")


def _for_update(q, s: Session):
    if s.get_bind().dialect.name == "postgresql":
        return q.with_for_update(skip_locked=True)
    return q


def _end_attempt(row: m.Job, now: datetime, outcome: str, error: str | None = None) -> None:
    history = list(row.history or [])
    if history and history[-1].get("ended_at") is None:
        history[-1] = {**history[-1], "ended_at": _iso(now), "outcome": outcome, "error": error,
                       "slurm_job_id": row.slurm_job_id, "slurm_state": row.slurm_state}
    row.history = history


def _after_failure(row: m.Job, error: str, now: datetime, backoff_s: float, retry: bool = True) -> None:
    """Back to pending after a backoff, or failed for good once the attempts are spent."""
    row.error = error
    row.worker = None
    row.lease_expires_at = None
    if retry and row.attempts < row.max_attempts:
        row.status = "pending"
        row.not_before = now + timedelta(seconds=backoff_s * 2 ** max(0, row.attempts - 1))
    else:
        row.status = "failed"
        row.finished_at = now


def requeue_expired_rows(s: Session, now: datetime, backoff_s: float = 0.0) -> list[int]:
    """Running jobs whose lease ran out (their worker stopped heartbeating): back to the queue,
    or failed when that was their last attempt. Returns their ids."""
    q = _for_update(select(m.Job).where(m.Job.status == "running", m.Job.lease_expires_at < now), s)
    ids = []
    for row in s.scalars(q):
        error = (f"worker {row.worker} stopped heartbeating (lease expired at "
                 f"{_iso(row.lease_expires_at)}); re-queued")
        _end_attempt(row, now, "lost", error)
        _after_failure(row, error, now, backoff_s)
        ids.append(row.id)
    return ids


def claim(worker: str, *, lease_s: float, now: datetime | None = None, backoff_s: float = 0.0,
          store: Store | None = None) -> dict[str, Any] | None:
    """Atomically take the oldest runnable pending job for ``worker`` (None when there is none),
    after putting back the jobs of workers whose lease expired."""
    store = store or get_store()

    def write(s: Session) -> dict[str, Any] | None:
        _lock_for_claim(s)
        t = _now(now)
        requeue_expired_rows(s, t, backoff_s)
        q = (select(m.Job).where(m.Job.status == "pending",
                                 (m.Job.not_before.is_(None)) | (m.Job.not_before <= t))
             .order_by(m.Job.id).limit(1))
        row = s.scalars(_for_update(q, s)).first()
        if row is None:
            return None
        row.status = "running"
        row.worker = worker
        row.attempts += 1
        row.started_at = t
        row.heartbeat_at = t
        row.lease_expires_at = t + timedelta(seconds=lease_s)
        row.not_before = None
        row.slurm_job_id = row.slurm_state = None
        row.history = list(row.history or []) + [{"attempt": row.attempts, "worker": worker,
                                                  "started_at": _iso(t), "ended_at": None, "outcome": "running"}]
        s.flush()
        return job_record(row)

    return store.write(write)


def _held(s: Session, job_id: int, worker: str) -> m.Job | None:
    """The job row when ``worker`` still holds it (running, same worker); None otherwise."""
    row = s.get(m.Job, int(job_id))
    if row is None or row.status != "running" or row.worker != worker:
        return None
    return row


def heartbeat(job_id: int, worker: str, *, lease_s: float, now: datetime | None = None,
              store: Store | None = None, **fields: Any) -> str:
    """Renew the lease (and set fields such as slurm_state); returns the job's status as the
    store sees it, so a worker learns that its job was cancelled ('cancelled') or taken from it
    ('lost')."""
    allowed = {"log_path", "slurm_job_id", "slurm_state"}
    assert set(fields) <= allowed, set(fields) - allowed

    def write(s: Session) -> str:
        row = _held(s, job_id, worker)
        if row is None:
            current = s.get(m.Job, int(job_id))
            if current is not None and current.status == "cancelled":
                for k, v in fields.items():
                    setattr(current, k, v)
                return "cancelled"
            return "lost"
        t = _now(now)
        row.heartbeat_at = t
        row.lease_expires_at = t + timedelta(seconds=lease_s)
        for k, v in fields.items():
            setattr(row, k, v)
        return "running"

    return (store or get_store()).write(write)


def finish(job_id: int, worker: str, reports: list[tuple[Any, str, dict[str, Any]]], *,
           now: datetime | None = None, store: Store | None = None, **fields: Any) -> dict[str, Any] | None:
    """Store a job's reports and mark it finished, in ONE transaction; each report comes with its
    fingerprint and extra row context. Nothing is written (None) when the worker no longer holds
    the job (cancelled meanwhile, or re-queued after its lease expired): then no rows of this
    attempt exist, so a retry can never leave duplicates. Returns {"added", "skipped", "items"}."""

    def write(s: Session) -> dict[str, Any] | None:
        row = _held(s, job_id, worker)
        if row is None:
            return None
        added = skipped = items = 0
        for report, fingerprint, extra in reports:
            counts = save_report_rows(s, report, fingerprint=fingerprint, extra_context=extra, job_id=row.id)
            added, skipped, items = added + counts.added, skipped + counts.skipped, items + counts.items
        t = _now(now)
        for k, v in fields.items():
            setattr(row, k, v)
        row.status = "finished"
        row.finished_at = t
        row.error = None
        row.lease_expires_at = None
        _end_attempt(row, t, "finished")
        return {"added": added, "skipped": skipped, "items": items}

    return (store or get_store()).write(write)


def fail(job_id: int, worker: str, error: str, *, backoff_s: float = 30.0, retry: bool = True,
         now: datetime | None = None, store: Store | None = None, **fields: Any) -> str | None:
    """Record a failed attempt: back to pending after a backoff, or failed once the attempts are
    spent (or ``retry`` is False). Returns the new status, None if the worker no longer holds it."""

    def write(s: Session) -> str | None:
        row = _held(s, job_id, worker)
        if row is None:
            return None
        t = _now(now)
        for k, v in fields.items():
            setattr(row, k, v)
        _end_attempt(row, t, "failed", error)
        _after_failure(row, error, t, backoff_s, retry)
        return row.status

    return (store or get_store()).write(write)


def release(job_id: int, worker: str, *, reason: str = "worker stopped", now: datetime | None = None,
            store: Store | None = None) -> bool:
    """Give a running job back to the queue without counting the attempt (Ctrl-C on a worker)."""

    def write(s: Session) -> bool:
        row = _held(s, job_id, worker)
        if row is None:
            return False
        _end_attempt(row, _now(now), "released", reason)
        row.status = "pending"
        row.worker = None
        row.lease_expires_at = None
        row.attempts = max(0, row.attempts - 1)
        return True

    return (store or get_store()).write(write)


def mark_cancelled_done(job_id: int, *, now: datetime | None = None, store: Store | None = None,
                        **fields: Any) -> None:
    """The worker stopped a cancelled job: close its attempt and keep the final Slurm state."""

    def write(s: Session) -> None:
        row = s.get(m.Job, int(job_id))
        if row is None or row.status != "cancelled":
            return
        for k, v in fields.items():
            setattr(row, k, v)
        _end_attempt(row, _now(now), "cancelled")

    (store or get_store()).write(write)


# -- users -----------------------------------------------------------------------------------
def cancel(job_id: int, *, now: datetime | None = None, store: Store | None = None) -> dict[str, Any]:
    """Cancel a pending or running job (a running one's worker stops it at its next heartbeat)."""

    def write(s: Session) -> dict[str, Any]:
        row = _get(s, job_id)
        if row.status not in ACTIVE:
            raise JobError(f"job {job_id} is {row.status}; only a pending or running job can be cancelled")
        was = row.status
        row.status = "cancelled"
        row.finished_at = _now(now)
        row.lease_expires_at = None
        if was == "pending":
            row.worker = None
        return {**job_record(row), "was": was}

    return (store or get_store()).write(write)


def retry(job_id: int, *, store: Store | None = None) -> dict[str, Any]:
    """Re-queue a failed (or cancelled) job as the same row, with its attempts counted afresh."""

    def write(s: Session) -> dict[str, Any]:
        row = _get(s, job_id)
        if row.status not in ("failed", "cancelled"):
            raise JobError(f"job {job_id} is {row.status}; only a failed or cancelled job can be retried")
        twin = _active_duplicate(s, row.params_key) if row.params_key else None
        if twin is not None:
            raise JobError(f"an identical job ({twin.id}) is already {twin.status}; nothing to retry")
        row.status = "pending"
        row.attempts = 0
        row.not_before = None
        row.finished_at = None
        row.worker = None
        s.flush()
        return job_record(row)

    return (store or get_store()).write(write)


def get_job(job_id: int, *, store: Store | None = None) -> dict[str, Any]:
    with (store or get_store()).session() as s:
        return job_record(_get(s, job_id), history=True)


def list_jobs(status: str | None = None, limit: int | None = None, *,
              store: Store | None = None) -> list[dict[str, Any]]:
    """Jobs, newest first; ``status`` one of models.JOB_STATUSES."""
    if status is not None and status not in m.JOB_STATUSES:
        raise JobError(f"unknown job status {status!r}; choose one of {', '.join(m.JOB_STATUSES)}")
    q = select(m.Job).order_by(m.Job.id.desc())
    if status is not None:
        q = q.where(m.Job.status == status)
    if limit is not None:
        q = q.limit(int(limit))
    with (store or get_store()).session() as s:
        return [job_record(r) for r in s.scalars(q)]


def status_counts(*, store: Store | None = None) -> dict[str, int]:
    from sqlalchemy import func

    with (store or get_store()).session() as s:
        return dict(s.execute(select(m.Job.status, func.count()).group_by(m.Job.status)).all())


# -- schedules -------------------------------------------------------------------------------
def _schedule_record(row: m.Schedule) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "cron": row.cron, "suite": row.suite,
            "variants": list(row.variants or []), "params": dict(row.params or {}),
            "created_at": row.created_at, "last_due_at": row.last_due_at, "last_missed": row.last_missed}


def add_schedule(name: str, *, cron: str, suite: str, variants: list[str], params: Mapping[str, Any],
                 now: datetime | None = None, store: Store | None = None) -> dict[str, Any]:
    def write(s: Session) -> dict[str, Any]:
        if s.scalars(select(m.Schedule).where(m.Schedule.name == name)).first() is not None:
            raise JobError(f"a schedule named {name!r} exists; remove it first (`ssmboard schedule remove {name}`)")
        row = m.Schedule(name=name, cron=cron, suite=suite, variants=list(variants), params=dict(params),
                         created_at=_now(now), last_missed=0)
        s.add(row)
        s.flush()
        return _schedule_record(row)

    return (store or get_store()).write(write)


def remove_schedule(name: str, *, store: Store | None = None) -> None:
    def write(s: Session) -> None:
        row = s.scalars(select(m.Schedule).where(m.Schedule.name == name)).first()
        if row is None:
            raise JobError(f"no schedule named {name!r}; see `ssmboard schedule list`")
        s.execute(update(m.Job).where(m.Job.schedule_run_id.in_(
            select(m.ScheduleRun.id).where(m.ScheduleRun.schedule_id == row.id))).values(schedule_run_id=None))
        s.delete(row)

    (store or get_store()).write(write)


def list_schedules(*, store: Store | None = None) -> list[dict[str, Any]]:
    with (store or get_store()).session() as s:
        return [_schedule_record(r) for r in s.scalars(select(m.Schedule).order_by(m.Schedule.name))]


def fire_schedule(schedule_id: int, due_at: datetime, jobs: list[Mapping[str, Any]], *, missed: int,
                  now: datetime | None = None, store: Store | None = None) -> dict[str, Any] | None:
    """Enqueue one due time of a schedule, once: the (schedule, due time) row and its jobs commit
    together, and a due time another worker already took (the unique key) gives None."""

    def write(s: Session) -> dict[str, Any] | None:
        sched = s.get(m.Schedule, schedule_id)
        if sched is None:
            return None
        taken = s.scalars(select(m.ScheduleRun).where(m.ScheduleRun.schedule_id == schedule_id,
                                                      m.ScheduleRun.due_at == due_at)).first()
        if taken is not None or (sched.last_due_at is not None and sched.last_due_at >= due_at):
            return None
        run = m.ScheduleRun(schedule_id=schedule_id, due_at=due_at, created_at=_now(now), missed=missed, jobs=0)
        s.add(run)
        s.flush()  # a concurrent worker's insert of the same due time fails here; write() re-reads
        made = enqueue_rows(s, jobs, schedule_run_id=run.id, now=now)
        run.jobs = sum(1 for _, created in made if created)
        sched.last_due_at = due_at
        sched.last_missed = missed
        return {"run_id": run.id, "due_at": due_at, "missed": missed, "jobs": [j["id"] for j, _ in made],
                "created": run.jobs}

    return (store or get_store()).write(write)


def schedule_runs(schedule_id: int, *, store: Store | None = None) -> list[dict[str, Any]]:
    with (store or get_store()).session() as s:
        q = select(m.ScheduleRun).where(m.ScheduleRun.schedule_id == schedule_id).order_by(m.ScheduleRun.due_at)
        return [{"id": r.id, "due_at": r.due_at, "missed": r.missed, "jobs": r.jobs} for r in s.scalars(q)]


# -- regressions -----------------------------------------------------------------------------
def _result_dict(r: m.Result, env: m.Environment | None) -> dict[str, Any]:
    return {"id": r.id, "evaluator": r.evaluator, "metric": r.metric, "value": r.value, "unit": r.unit,
            "higher_is_better": r.higher_is_better, "stderr": r.stderr, "n": r.n,
            "context": dict(r.context or {}), "environment_id": r.environment_id,
            "device_name": env.device_name if env else None, "cpu_model": env.cpu_model if env else None}


def job_results(job_id: int, *, store: Store | None = None) -> list[dict[str, Any]]:
    """The result rows a job produced, with the hardware they ran on."""
    q = (select(m.Result, m.Environment).outerjoin(m.Environment, m.Result.environment_id == m.Environment.id)
         .where(m.Result.job_id == job_id).order_by(m.Result.id))
    with (store or get_store()).session() as s:
        return [_result_dict(r, e) for r, e in s.execute(q)]


def previous_finished_jobs(job_id: int, *, store: Store | None = None) -> list[int]:
    """Earlier finished jobs of the same fingerprint and suite, newest first."""
    with (store or get_store()).session() as s:
        row = _get(s, job_id)
        q = (select(m.Job.id).where(m.Job.fingerprint == row.fingerprint, m.Job.suite == row.suite,
                                    m.Job.status == "finished", m.Job.id != row.id,
                                    m.Job.finished_at <= row.finished_at)
             .order_by(m.Job.finished_at.desc(), m.Job.id.desc()))
        return list(s.scalars(q))


def add_regressions(rows: list[Mapping[str, Any]], *, now: datetime | None = None,
                    store: Store | None = None) -> int:
    def write(s: Session) -> int:
        for r in rows:
            s.add(m.Regression(**dict(r), created_at=_now(now)))
        return len(rows)

    return (store or get_store()).write(write) if rows else 0


def list_regressions(since: datetime | None = None, *, store: Store | None = None) -> list[dict[str, Any]]:
    q = select(m.Regression).order_by(m.Regression.created_at, m.Regression.id)
    if since is not None:
        q = q.where(m.Regression.created_at >= since)
    cols = ("id", "job_id", "previous_job_id", "result_id", "previous_result_id", "variant", "fingerprint",
            "suite", "evaluator", "metric", "context", "unit", "higher_is_better", "before", "after", "delta",
            "lo", "hi", "method")
    with (store or get_store()).session() as s:
        return [{**{c: getattr(r, c) for c in cols}, "created_at": _iso(r.created_at)} for r in s.scalars(q)]


def job_spec(job_id: int, *, store: Store | None = None) -> dict[str, Any]:
    """The stored spec dict of the variant row a job measures (what the worker hands its child)."""
    with (store or get_store()).session() as s:
        return dict(_get(s, job_id).variant.spec)
