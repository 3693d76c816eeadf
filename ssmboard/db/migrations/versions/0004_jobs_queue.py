"""The jobs table becomes a queue (lease, heartbeat, retries, log, Slurm ids); schedules,
their runs and regressions.

Existing job rows keep their data: their uppercase statuses become lowercase, and their
fingerprint is filled from their variant row. Columns are only added (no table copy), so
SQLite keeps the results -> jobs foreign keys untouched.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("status IN ('pending', 'running')")
_NEW_COLUMNS = [
    sa.Column("fingerprint", sa.String(64), nullable=True),
    sa.Column("params_key", sa.String(64), nullable=True),
    sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="3"),
    sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
    sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
    sa.Column("not_before", sa.DateTime(), nullable=True),
    sa.Column("log_path", sa.Text(), nullable=True),
    sa.Column("slurm_job_id", sa.String(64), nullable=True),
    sa.Column("slurm_state", sa.String(64), nullable=True),
    sa.Column("schedule_run_id", sa.Integer(), nullable=True),
    sa.Column("history", sa.JSON(), nullable=True),
]


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("cron", sa.String(128), nullable=False),
        sa.Column("suite", sa.String(128), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_due_at", sa.DateTime(), nullable=True),
        sa.Column("last_missed", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
        sa.UniqueConstraint("name", name="uq_schedules_name"),
    )
    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("missed", sa.Integer(), nullable=False),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["schedule_id"], ["schedules.id"], name="fk_schedule_runs_schedule_id_schedules",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_schedule_runs"),
        sa.UniqueConstraint("schedule_id", "due_at", name="uq_schedule_runs_schedule_due"),
    )
    op.create_index("ix_schedule_runs_schedule_id", "schedule_runs", ["schedule_id"])

    for column in _NEW_COLUMNS:
        op.add_column("jobs", column)
    jobs = sa.table("jobs", sa.column("status", sa.String), sa.column("fingerprint", sa.String),
                    sa.column("variant_id", sa.Integer))
    for old in ("PENDING", "RUNNING", "FINISHED", "FAILED"):
        op.execute(jobs.update().where(jobs.c.status == old).values(status=old.lower()))
    variants = sa.table("variants", sa.column("id", sa.Integer), sa.column("fingerprint", sa.String))
    op.execute(jobs.update().values(fingerprint=sa.select(variants.c.fingerprint)
                                    .where(variants.c.id == jobs.c.variant_id).scalar_subquery()))
    op.create_index("ix_jobs_fingerprint", "jobs", ["fingerprint"])
    op.create_index("ix_jobs_status_not_before", "jobs", ["status", "not_before"])
    op.create_index("uq_jobs_active_params_key", "jobs", ["params_key"], unique=True,
                    sqlite_where=_ACTIVE, postgresql_where=_ACTIVE)

    op.create_table(
        "regressions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("previous_job_id", sa.Integer(), nullable=True),
        sa.Column("result_id", sa.Integer(), nullable=True),
        sa.Column("previous_result_id", sa.Integer(), nullable=True),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("suite", sa.String(128), nullable=True),
        sa.Column("evaluator", sa.String(128), nullable=False),
        sa.Column("metric", sa.String(256), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("higher_is_better", sa.Boolean(), nullable=False),
        sa.Column("before", sa.Float(), nullable=False),
        sa.Column("after", sa.Float(), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("lo", sa.Float(), nullable=False),
        sa.Column("hi", sa.Float(), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_regressions_job_id_jobs", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["previous_job_id"], ["jobs.id"], name="fk_regressions_previous_job_id_jobs",
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["result_id"], ["results.id"], name="fk_regressions_result_id_results",
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["previous_result_id"], ["results.id"],
                                name="fk_regressions_previous_result_id_results", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_regressions"),
    )
    op.create_index("ix_regressions_job_id", "regressions", ["job_id"])
    op.create_index("ix_regressions_created_at", "regressions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_regressions_created_at", table_name="regressions")
    op.drop_index("ix_regressions_job_id", table_name="regressions")
    op.drop_table("regressions")
    op.drop_index("uq_jobs_active_params_key", table_name="jobs")
    op.drop_index("ix_jobs_status_not_before", table_name="jobs")
    op.drop_index("ix_jobs_fingerprint", table_name="jobs")
    jobs = sa.table("jobs", sa.column("status", sa.String))
    op.execute(jobs.delete().where(jobs.c.status == "cancelled"))  # 0003 had no such status
    for new in ("pending", "running", "finished", "failed"):
        op.execute(jobs.update().where(jobs.c.status == new).values(status=new.upper()))
    with op.batch_alter_table("jobs") as batch:
        for column in reversed(_NEW_COLUMNS):
            batch.drop_column(column.name)
    op.drop_index("ix_schedule_runs_schedule_id", table_name="schedule_runs")
    op.drop_table("schedule_runs")
    op.drop_table("schedules")
