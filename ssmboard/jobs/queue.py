"""The job queue as users see it: submit, list, show, cancel and retry jobs.

A job names a variant by the fingerprint of its active spec (re-registering the name with
another spec does not change what a queued job measures), a suite and suite parameters.
The state machine lives in :mod:`ssmboard.db.jobs`; workers drain it (:mod:`ssmboard.jobs.worker`).
"""
from __future__ import annotations

from typing import Any

from ssmboard.db import jobs as store_jobs
from ssmboard.errors import EvaluationError

DEFAULT_MAX_ATTEMPTS = 3


def check_suite(suite: str, params: dict[str, Any] | None = None) -> None:
    """Refuse an unknown suite or parameters the suite does not take, before anything is queued."""
    from ssmboard.evaluators.suites import get_suite, with_params

    with_params(get_suite(suite), dict(params or {}))


def _job_spec(variant: str, suite: str, params: dict[str, Any] | None, max_attempts: int) -> dict[str, Any]:
    from ssmboard.db import queries
    from ssmboard.registry.api import ensure_builtins, get_variant

    spec = get_variant(variant)  # VariantNotFoundError with suggestions
    record = queries.active_variant(spec.name, store=ensure_builtins())
    assert record is not None
    return {"variant_id": record["id"], "fingerprint": record["fingerprint"], "suite": suite,
            "params": _plain(params or {}), "max_attempts": max_attempts}


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready parameters (tuples become lists) so equal parameters hash equal."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(params.items())}


def submit(variant: str, suite: str, params: dict[str, Any] | None = None, *,
           max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> dict[str, Any]:
    """Queue ``suite`` on ``variant``; returns ``{"job_id", "created", "status", "variant", "suite"}``.

    ``created`` is False when an identical job (same fingerprint, suite and params) is already
    pending or running: that job's id comes back and nothing new is queued.
    """
    if max_attempts < 1:
        raise EvaluationError("max_attempts must be at least 1")
    check_suite(suite, params)
    ((job, created),) = store_jobs.enqueue([_job_spec(variant, suite, params, max_attempts)])
    return {"job_id": job["id"], "created": created, "status": job["status"], "variant": job["variant"],
            "suite": suite}


def submit_many(variants: list[str], suites: list[str], params: dict[str, Any] | None = None, *,
                max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> list[dict[str, Any]]:
    """Every (variant, suite) pair, all checked before any is queued, in one transaction."""
    for suite in suites:
        check_suite(suite, params)
    specs = [_job_spec(v, s, params, max_attempts) for s in suites for v in variants]
    return [{"job_id": job["id"], "created": created, "status": job["status"], "variant": job["variant"],
             "suite": job["suite"]} for job, created in store_jobs.enqueue(specs)]


def list_jobs(status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Jobs, newest first (keys as :func:`get_job` without the history)."""
    return store_jobs.list_jobs(status, limit)


def get_job(job_id: int) -> dict[str, Any]:
    """One job: id, variant, fingerprint, suite, params, status, attempts, worker, error,
    created_at, started_at, finished_at, log_path, slurm_job_id, slurm_state, and ``history``
    (one dict per attempt: worker, start, end, outcome, error)."""
    return store_jobs.get_job(job_id)


def cancel(job_id: int) -> dict[str, Any]:
    """Cancel a pending job, or a running one (its worker kills the child process or scancels the
    Slurm job at its next heartbeat). Returns the job, with ``was`` its previous status."""
    return store_jobs.cancel(job_id)


def retry(job_id: int) -> dict[str, Any]:
    """Put a failed or cancelled job back in the queue (the same row)."""
    return store_jobs.retry(job_id)


def log_tail(job: dict[str, Any], lines: int = 20) -> list[str]:
    """The last lines of a job's log file ([] when it has none or it is gone)."""
    path = job.get("log_path")
    if not path:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]
