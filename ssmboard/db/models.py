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

JOB_STATUSES: tuple[str, ...] = ("PENDING", "RUNNING", "FINISHED", "FAILED")


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
    """One evaluation to run for one variant: the queue that workers drain."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id"), index=True)
    suite: Mapped[Optional[str]] = mapped_column(String(128))
    evaluator: Mapped[Optional[str]] = mapped_column(String(128))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="PENDING", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[Optional[datetime]] = mapped_column(DateTime)
    finished_at: Mapped[Optional[datetime]] = mapped_column(DateTime)
    error: Mapped[Optional[str]] = mapped_column(Text)
    worker: Mapped[Optional[str]] = mapped_column(String(256))
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    variant: Mapped[Variant] = relationship()


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
