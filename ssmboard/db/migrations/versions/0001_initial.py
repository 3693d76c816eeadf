"""Initial schema: variants, environments, jobs, results.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "variants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("model", sa.String(512), nullable=False),
        sa.Column("scan", sa.String(64), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=True),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.Column("compile", sa.String(64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("replaced_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_variants"),
        sa.UniqueConstraint("name", "fingerprint", name="uq_variants_name_fingerprint"),
    )
    op.create_index("ix_variants_name", "variants", ["name"])
    op.create_index("ix_variants_fingerprint", "variants", ["fingerprint"])

    op.create_table(
        "environments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("device_name", sa.String(256), nullable=True),
        sa.Column("driver_version", sa.String(64), nullable=True),
        sa.Column("cuda_version", sa.String(64), nullable=True),
        sa.Column("cpu_model", sa.String(256), nullable=True),
        sa.Column("torch_version", sa.String(64), nullable=True),
        sa.Column("triton_version", sa.String(64), nullable=True),
        sa.Column("transformers_version", sa.String(64), nullable=True),
        sa.Column("ssmboard_version", sa.String(64), nullable=True),
        sa.Column("git_sha", sa.String(64), nullable=True),
        sa.Column("hostname", sa.String(256), nullable=True),
        sa.Column("python_version", sa.String(64), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_environments"),
        sa.UniqueConstraint("hash", name="uq_environments_hash"),
    )

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("suite", sa.String(128), nullable=True),
        sa.Column("evaluator", sa.String(128), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(256), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.ForeignKeyConstraint(["variant_id"], ["variants.id"], name="fk_jobs_variant_id_variants"),
    )
    op.create_index("ix_jobs_variant_id", "jobs", ["variant_id"])
    op.create_index("ix_jobs_status", "jobs", ["status"])

    op.create_table(
        "results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("row_key", sa.String(128), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("environment_id", sa.Integer(), nullable=True),
        sa.Column("evaluator", sa.String(128), nullable=False),
        sa.Column("suite", sa.String(128), nullable=True),
        sa.Column("metric", sa.String(256), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("higher_is_better", sa.Boolean(), nullable=False),
        sa.Column("stderr", sa.Float(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_results"),
        sa.UniqueConstraint("row_key", name="uq_results_row_key"),
        sa.ForeignKeyConstraint(["variant_id"], ["variants.id"], name="fk_results_variant_id_variants"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_results_job_id_jobs"),
        sa.ForeignKeyConstraint(["environment_id"], ["environments.id"],
                                name="fk_results_environment_id_environments"),
    )
    op.create_index("ix_results_variant_id", "results", ["variant_id"])
    op.create_index("ix_results_fingerprint", "results", ["fingerprint"])


def downgrade() -> None:
    op.drop_table("results")
    op.drop_table("jobs")
    op.drop_table("environments")
    op.drop_table("variants")
