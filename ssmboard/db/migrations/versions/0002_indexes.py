"""One active row per variant name; index results by (evaluator, metric).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "uq_variants_active_name", "variants", ["name"], unique=True,
        sqlite_where=sa.text("active = 1"), postgresql_where=sa.text("active"),
    )
    op.create_index("ix_results_evaluator_metric", "results", ["evaluator", "metric"])


def downgrade() -> None:
    op.drop_index("ix_results_evaluator_metric", table_name="results")
    op.drop_index("uq_variants_active_name", table_name="variants")
