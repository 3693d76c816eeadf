"""Per-item scores behind accuracy results, for paired comparisons between variants.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("item", sa.String(256), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["result_id"], ["results.id"], name="fk_item_scores_result_id_results",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_item_scores"),
        sa.UniqueConstraint("result_id", "item", name="uq_item_scores_result_item"),
    )
    op.create_index("ix_item_scores_result_id", "item_scores", ["result_id"])


def downgrade() -> None:
    op.drop_index("ix_item_scores_result_id", table_name="item_scores")
    op.drop_table("item_scores")
