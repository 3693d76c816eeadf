"""A worker: claim a job, run it in a child (local process or Slurm job), import its report.

One job at a time per worker; run as many workers as you like, on one machine (SQLite) or
many (PostgreSQL). While the child runs, the worker renews the job's lease by heartbeats
(and learns of a cancel through them), enforces the per-job timeout, and keeps the child's
output in the job's log file. When the child ends well, its report file and the job's
``finished`` status commit in one transaction; otherwise the job is retried with backoff
until its attempts are spent. Evaluator code runs only in the child.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from ssmboard import config
from ssmboard.db import jobs as store_jobs
from ssmboard.db.models import utcnow
from ssmboard.jobs.executors import Outcome, make_executor

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 60.0
DEFAULT_TIMEOUT_S = 4 * 3600.0
DEFAULT_BACKOFF_S = 30.0


@dataclass
class WorkerSummary:
    worker: str
    finished: int = 0
    failed: int = 0  # attempts that failed (retried or not)
    cancelled: int = 0
    lost: int = 0  # jobs taken from this worker (its lease expired meanwhile)
    released: int = 0
    interrupted: bool = False
    jobs: list[dict[str, Any]] = field(default_factory=list)  # {"id", "outcome", "seconds", "error"}

    @property
    def done(self) -> int:
        return len(self.jobs)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def jobs_folder() -> Path:
    """Where task files, logs and report files go (SSMBOARD_JOBS_DIR, default SSMBOARD_HOME/jobs).
    For Slurm it must be a folder the compute nodes see too."""
    return Path(os.environ.get("SSMBOARD_JOBS_DIR") or config.home() / "jobs").expanduser().resolve()


class Worker:
    """Drains the queue; see :func:`run_worker` for the knobs."""

    def __init__(self, *, executor: str = "local", device: str | None = None, poll: float = 2.0,
                 lease_s: float = DEFAULT_LEASE_S, timeout_s: float = DEFAULT_TIMEOUT_S,
                 backoff_s: float = DEFAULT_BACKOFF_S, worker_id: str | None = None,
                 folder: str | os.PathLike | None = None, slurm: dict[str, Any] | None = None,
                 clock: Callable[[], datetime] = utcnow, schedules: bool = True,
                 on_event: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.folder = Path(folder).resolve() if folder else jobs_folder()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.executor = make_executor(executor, folder=self.folder, settings=slurm)
        self.device = device
        self.poll = poll
        self.lease_s = lease_s
        self.heartbeat_s = max(0.2, min(lease_s / 4, 5.0))
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.id = worker_id or default_worker_id()
        self.clock = clock
        self.schedules = schedules
        self.on_event = on_event or (lambda kind, job: None)
        self.summary = WorkerSummary(self.id)

    # -- the loop --------------------------------------------------------------------------
    def run(self, *, max_jobs: int | None = None, once: bool = False, until_empty: bool = False) -> WorkerSummary:
        """Claim and run jobs until ``max_jobs`` ran, after one claim attempt (``once``), when no job
        is pending or running (``until_empty``), or on Ctrl-C / SIGTERM (the running job is released)."""
        with _sigterm_as_interrupt():
            try:
                while max_jobs is None or self.summary.done < max_jobs:
                    self._tick_schedules()
                    job = store_jobs.claim(self.id, lease_s=self.lease_s, now=self.clock(), backoff_s=self.backoff_s)
                    if job is None:
                        if once or (until_empty and not self._pending_left()):
                            break
                        time.sleep(self.poll)
                        continue
                    self.run_job(job)
                    if once:
                        break
            except KeyboardInterrupt:
                self.summary.interrupted = True
        return self.summary

    def _pending_left(self) -> bool:
        """Jobs still to come: pending ones (maybe backing off) and running ones (whose worker may
        die and leave them to be re-queued after their lease)."""
        counts = store_jobs.status_counts()
        return bool(counts.get("pending") or counts.get("running"))

    def _tick_schedules(self) -> None:
        if not self.schedules:
            return
        from ssmboard.jobs.schedules import run_due

        try:
            run_due(now=self.clock())
        except Exception as exc:  # noqa: BLE001 - a bad schedule must not stop the queue
            log.warning("schedules: %s", exc)

    # -- one job ---------------------------------------------------------------------------
    def run_job(self, job: dict[str, Any]) -> str:
        """Run one claimed job to its end; returns its outcome (finished, retry, failed, cancelled,
        lost, released)."""
        t0 = time.monotonic()
        jid, attempt = job["id"], job["attempts"]
        where = self.folder / f"job-{jid}"
        where.mkdir(parents=True, exist_ok=True)
        task, report, logfile = where / f"task-{attempt}.json", where / f"report-{attempt}.json", where / "job.log"
        for stale in (report, Path(str(report) + ".error")):
            stale.unlink(missing_ok=True)
        task.write_text(json.dumps({"spec": store_jobs.job_spec(jid), "suite": job["suite"],
                                    "params": job["params"], "job_id": jid, "device": self.device,
                                    "report": str(report), "log": str(logfile)}, indent=1))
        with open(logfile, "a") as fh:
            fh.write(f"--- attempt {attempt} of job {jid} on {self.id} ({self.executor.name}) at "
                     f"{self.clock().isoformat(timespec='seconds')}Z\n")
        self._cancel_orphan(jid)
        self.on_event("start", job)
        handle = None
        try:
            handle = self.executor.start(task, logfile, report)
            status = store_jobs.heartbeat(jid, self.id, lease_s=self.lease_s, now=self.clock(),
                                          log_path=str(logfile), **handle.fields)
            outcome = self._wait(jid, handle, status)
        except KeyboardInterrupt:
            if handle is not None:
                handle.stop()
            store_jobs.release(jid, self.id, reason="the worker was interrupted (Ctrl-C / SIGTERM)",
                               now=self.clock())
            self._record(job, "released", t0)
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. sbatch refused the job
            if handle is not None:
                handle.stop()
            outcome = Outcome(False, f"could not run the job: {type(exc).__name__}: {exc}")
        fields = dict(handle.fields) if handle is not None else {}
        if isinstance(outcome, str):  # cancelled / lost, already handled
            return self._record(job, outcome, t0)
        if outcome.ok:
            return self._import(job, report, fields, t0)
        status = store_jobs.fail(jid, self.id, outcome.error or "failed", backoff_s=self.backoff_s,
                                 now=self.clock(), **fields)
        if status is None:
            return self._record(job, "lost", t0)
        return self._record(job, "retry" if status == "pending" else "failed", t0, outcome.error)

    def _cancel_orphan(self, jid: int) -> None:
        """A Slurm job left by a worker that was lost (lease expired) would run on unwatched: scancel it."""
        history = store_jobs.get_job(jid)["history"]
        lost = [h for h in history[:-1] if h.get("outcome") == "lost" and h.get("slurm_job_id")]
        if lost and shutil.which("scancel"):
            for h in lost:
                subprocess.run(["scancel", str(h["slurm_job_id"])], capture_output=True, timeout=30)

    def _wait(self, jid: int, handle: Any, status: str) -> Outcome | str:
        start = time.monotonic()
        last_beat = start
        while True:
            if status != "running":
                handle.stop()
                return self._stopped(jid, handle, status)
            outcome = handle.poll()
            if outcome is not None:
                return outcome
            if time.monotonic() - start > self.timeout_s:
                handle.stop()
                return Outcome(False, f"timed out after {self.timeout_s:g} s")
            time.sleep(min(0.2, self.heartbeat_s))
            if time.monotonic() - last_beat >= self.heartbeat_s:
                last_beat = time.monotonic()
                status = store_jobs.heartbeat(jid, self.id, lease_s=self.lease_s, now=self.clock(), **handle.fields)

    def _stopped(self, jid: int, handle: Any, status: str) -> str:
        if status == "cancelled":
            store_jobs.mark_cancelled_done(jid, now=self.clock(), **handle.fields)
            return "cancelled"
        log.warning("job %s was taken from this worker (its lease expired); its child was stopped", jid)
        return "lost"

    def _import(self, job: dict[str, Any], report: Path, fields: dict[str, Any], t0: float) -> str:
        from ssmboard.evaluators.report import Report
        from ssmboard.jobs.sinks import report_keys

        try:
            reports = Report.load(report)
            triples = [(r, *report_keys(r)) for r in reports]
        except Exception as exc:  # noqa: BLE001 - a bad report is the job's failure
            status = store_jobs.fail(job["id"], self.id, f"its report could not be read: {exc}",
                                     backoff_s=self.backoff_s, now=self.clock(), **fields)
            return self._record(job, "retry" if status == "pending" else "failed", t0, str(exc))
        counts = store_jobs.finish(job["id"], self.id, triples, now=self.clock(), **fields)
        if counts is None:  # cancelled or taken meanwhile: its rows are not imported
            current = store_jobs.get_job(job["id"])
            return self._record(job, "cancelled" if current["status"] == "cancelled" else "lost", t0)
        try:
            from ssmboard.jobs.regressions import check_job

            check_job(job["id"])
        except Exception as exc:  # noqa: BLE001 - flagging regressions must not undo a finished job
            log.warning("regression check of job %s failed: %s", job["id"], exc)
        return self._record(job, "finished", t0, rows=counts["added"])

    def _record(self, job: dict[str, Any], outcome: str, t0: float, error: str | None = None, rows: int = 0) -> str:
        s = self.summary
        if outcome == "finished":
            s.finished += 1
        elif outcome in ("retry", "failed"):
            s.failed += 1
        elif outcome == "cancelled":
            s.cancelled += 1
        elif outcome == "lost":
            s.lost += 1
        elif outcome == "released":
            s.released += 1
        entry = {"id": job["id"], "variant": job["variant"], "suite": job["suite"], "outcome": outcome,
                 "seconds": round(time.monotonic() - t0, 3), "error": error, "rows": rows}
        s.jobs.append(entry)
        log.info("job %s %s/%s: %s%s", job["id"], job["variant"], job["suite"], outcome,
                 f" ({error})" if error else "")
        self.on_event(outcome, entry)
        return outcome


class _sigterm_as_interrupt:
    """SIGTERM behaves like Ctrl-C (release the running job, then stop), in the main thread."""

    def __enter__(self):
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)
        return False


def run_worker(*, executor: str = "local", max_jobs: int | None = None, once: bool = False,
               until_empty: bool = False, **options: Any) -> WorkerSummary:
    """Run a worker in this process (its jobs in child processes or Slurm jobs).

    Options: device, poll (seconds between claims when idle), lease_s (a job whose worker has
    not heartbeated for this long is re-queued by any worker), timeout_s (per job), backoff_s
    (first retry delay, doubled per attempt), worker_id, folder (task/log/report files), slurm
    (partition, gpus, cpus, mem_gb, time_min, ...), clock (for schedules and tests), schedules.
    """
    return Worker(executor=executor, **options).run(max_jobs=max_jobs, once=once, until_empty=until_empty)


def drain(executor: str = "local", *, progress: bool = True, **options: Any) -> WorkerSummary:
    """Run every queued job, then return (what ``make demo`` calls): one local worker in this
    process, each job in a child process, a progress bar over the jobs."""
    from tqdm.auto import tqdm

    total = store_jobs.status_counts().get("pending", 0)
    bar = tqdm(total=total, desc="jobs", unit="job", disable=not progress)

    def on_event(kind: str, job: dict[str, Any]) -> None:
        if kind == "start":
            bar.set_postfix_str(f"{job['variant']} [{job['suite']}]")
        elif kind in ("finished", "failed", "cancelled"):
            bar.update(1)
        elif kind == "retry":
            bar.set_postfix_str(f"job {job['id']} failed, will retry: {job['error']}")

    options.setdefault("poll", 0.5)
    try:
        with bar:
            return Worker(executor=executor, on_event=on_event, **options).run(until_empty=True)
    finally:
        bar.close()
