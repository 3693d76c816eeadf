"""The store's schema as SQLAlchemy 2 typed ORM classes.

One results row holds one number, so the leaderboard can rank and filter by any metric
without knowing the evaluators. Changing these classes needs a new Alembic revision in
``ssmboard/db/migrations/versions`` (tests check that the migrated schema matches).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import (
    JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Text,
    UniqueConstraint, text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Revision 0004 made them lowercase and added "cancelled"; a job is active while pending or running.
JOB_STATUSES: tuple[str, ...] = ("pending", "running", "finished", "failed", "cancelled")
ACTIVE_JOB_STATUSES: tuple[str, ...] = ("pending", "running")


def utcnow() -> datetime:
    """Naive UTC time: what SQLite stores and gives back (no tz information survives there)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Variant(Base):
    """One (name, fingerprint): replacing a variant adds a row and keeps the old one."""

    __tablename__ = "variants"
    __table_args__ = (
        UniqueConstraint("name", "fingerprint", name="uq_variants_name_fingerprint"),
        # Revision 0002: at most one active row per name.
        Index("uq_variants_active_name", "name", unique=True,
              sqlite_where=text("active = 1"), postgresql_where=text("active")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # VariantSpec.to_dict()
    # Denormalised copies of the most-filtered spec fields, for SQL queries.
    model: Mapped[str] = mapped_column(String(512))
    scan: Mapped[str] = mapped_column(String(64))
    chunk_size: Mapped[Optional[int]] = mapped_column(Integer)
    dtype: Mapped[str] = mapped_column(String(16))
    compile: Mapped[Optional[str]] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    replaced_at: Mapped[Optional[datetime]] = mapped_column(DateTime)

    results: Mapped[list["Result"]] = relationship(back_populates="variant")


class Environment(Base):
    """Where results were measured; rows are shared and deduplicated by ``hash``."""

    __tablename__ = "environments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    device_name: Mapped[Optional[str]] = mapped_column(String(256))
    driver_version: Mapped[Optional[str]] = mapped_column(String(64))
    cuda_version: Mapped[Optional[str]] = mapped_column(String(64))
    cpu_model: Mapped[Optional[str]] = mapped_column(String(256))
    torch_version: Mapped[Optional[str]] = mapped_column(String(64))
    triton_version: Mapped[Optional[str]] = mapped_column(String(64))
    transformers_version: Mapped[Optional[str]] = mapped_column(String(64))
    ssmboard_version: Mapped[Optional[str]] = mapped_column(String(64))
    git_sha: Mapped[Optional[str]] = mapped_column(String(64))
    hostname: Mapped[Optional[str]] = mapped_column(String(256))
    python_version: Mapped[Optional[str]] = mapped_column(String(64))
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Job(Base):
    """One evaluation to run for one variant: the queue that workers drain.

    Revision 0004 made it a real queue: a worker claims a pending row (status, worker,
    lease), renews the lease by heartbeats, and finishes, fails (retried with backoff until
    ``max_attempts``) or loses it (an expired lease puts it back). ``params_key`` hashes
    fingerprint + suite + params: at most one active (pending/running) job per key.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("uq_jobs_active_params_key", "params_key", unique=True,
              sqlite_where=text("status IN ('pending', 'running')"),
              postgresql_where=text("status IN ('pending', 'running')")),
        Index("ix_jobs_status_not_before", "status", "not_before"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id"), index=True)
    suite: Mapped[Optional[str]] = mapped_column(String(128))
    evaluator: Mapped[Optional[str]] = mapped_column(String(128))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[Optional[datetime]] = mapped_column(DateTime)
    finished_at: Mapped[Optional[datetime]] = mapped_column(DateTime)
    error: Mapped[Optional[str]] = mapped_column(Text)
    worker: Mapped[Optional[str]] = mapped_column(String(256))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Revision 0004: the queue.
    fingerprint: Mapped[Optional[str]] = mapped_column(String(64), index=True)
    params_key: Mapped[Optional[str]] = mapped_column(String(64))
    max_attempts: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    heartbeat_at: Mapped[Optional[datetime]] = mapped_column(DateTime)
    lease_expires_at: Mapped[Optional[datetime]] = mapped_column(DateTime)
    not_before: Mapped[Optional[datetime]] = mapped_column(DateTime)  # retry backoff
    log_path: Mapped[Optional[str]] = mapped_column(Text)
    slurm_job_id: Mapped[Optional[str]] = mapped_column(String(64))
    slurm_state: Mapped[Optional[str]] = mapped_column(String(64))
    schedule_run_id: Mapped[Optional[int]] = mapped_column(Integer)  # the schedule_runs row that enqueued it
    history: Mapped[Optional[list[Any]]] = mapped_column(JSON, default=list)  # one dict per attempt

    variant: Mapped[Variant] = relationship()


class Schedule(Base):
    """A cron-like recurring suite (revision 0004): which variants (name patterns), which suite."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    cron: Mapped[str] = mapped_column(String(128))
    suite: Mapped[str] = mapped_column(String(128))
    variants: Mapped[list[Any]] = mapped_column(JSON, default=list)  # fnmatch patterns
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_due_at: Mapped[Optional[datetime]] = mapped_column(DateTime)  # the latest due time enqueued
    last_missed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # skipped by it


class ScheduleRun(Base):
    """One due time of a schedule that was enqueued: the unique key makes it happen once,
    whichever worker (of however many) gets there first."""

    __tablename__ = "schedule_runs"
    __table_args__ = (UniqueConstraint("schedule_id", "due_at", name="uq_schedule_runs_schedule_due"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"), index=True)
    due_at: Mapped[datetime] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    missed: Mapped[int] = mapped_column(Integer, default=0)  # earlier due times skipped in its favour
    jobs: Mapped[int] = mapped_column(Integer, default=0)  # jobs enqueued (duplicates of active ones skipped)


class Regression(Base):
    """A metric of a finished job that got worse beyond noise than the previous finished run of
    the same fingerprint, suite and hardware (revision 0004)."""

    __tablename__ = "regressions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    previous_job_id: Mapped[Optional[int]] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    result_id: Mapped[Optional[int]] = mapped_column(ForeignKey("results.id", ondelete="SET NULL"))
    previous_result_id: Mapped[Optional[int]] = mapped_column(ForeignKey("results.id", ondelete="SET NULL"))
    variant: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    suite: Mapped[Optional[str]] = mapped_column(String(128))
    evaluator: Mapped[str] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(256))
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    unit: Mapped[str] = mapped_column(String(64), default="")
    higher_is_better: Mapped[bool] = mapped_column(Boolean)
    before: Mapped[float] = mapped_column(Float)
    after: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    lo: Mapped[float] = mapped_column(Float)
    hi: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class Result(Base):
    """One number: a metric of one variant from one evaluator, in one environment."""

    __tablename__ = "results"
    __table_args__ = (
        # Revision 0002: the leaderboard's usual filter.
        Index("ix_results_evaluator_metric", "evaluator", "metric"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    row_key: Mapped[str] = mapped_column(String(128), unique=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    job_id: Mapped[Optional[int]] = mapped_column(ForeignKey("jobs.id"))
    environment_id: Mapped[Optional[int]] = mapped_column(ForeignKey("environments.id"))
    evaluator: Mapped[str] = mapped_column(String(128))
    suite: Mapped[Optional[str]] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(256))
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(64), default="")
    higher_is_better: Mapped[bool] = mapped_column(Boolean)
    stderr: Mapped[Optional[float]] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer, default=1)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    variant: Mapped[Variant] = relationship(back_populates="results")
    environment: Mapped[Optional[Environment]] = relationship()
    items: Mapped[list["ItemScore"]] = relationship(back_populates="result", cascade="all, delete-orphan")


class ItemScore(Base):
    """One item's score behind an aggregate result row (revision 0003): the paired comparison
    between two variants resamples these, item by item, on the items both were scored on."""

    __tablename__ = "item_scores"
    __table_args__ = (UniqueConstraint("result_id", "item", name="uq_item_scores_result_item"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id", ondelete="CASCADE"), index=True)
    item: Mapped[str] = mapped_column(String(256))
    value: Mapped[float] = mapped_column(Float)

    result: Mapped[Result] = relationship(back_populates="items")
