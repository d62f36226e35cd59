"""EMPI tables: empi_record, empi_block, empi_link, empi_review (ehr_store/empi/tables.py).

Revision ID: 0003_empi
Revises: 0001_core
Create Date: 2026-11-29
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_empi"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(64)
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the candidate index, link history and review queue tables."""
    op.create_table(
        "empi_record",
        sa.Column("source_id", ID, primary_key=True),
        sa.Column("golden_id", ID, nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
    )
    op.create_index("ix_empi_record_golden_id", "empi_record", ["golden_id"])
    op.create_table(
        "empi_block",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("source_id", ID, primary_key=True),
    )
    op.create_index("ix_empi_block_source", "empi_block", ["source_id"])
    op.create_table(
        "empi_link",
        sa.Column("id", BIGINT_PK, primary_key=True),
        sa.Column("source_id", ID, nullable=False),
        sa.Column("golden_id", ID, nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("undone_at", UTC, nullable=True),
        sa.Column("undone_by", sa.String(128), nullable=True),
    )
    op.create_index("ix_empi_link_source", "empi_link", ["source_id"])
    op.create_index("ix_empi_link_golden", "empi_link", ["golden_id"])
    op.create_table(
        "empi_review",
        sa.Column("id", BIGINT_PK, primary_key=True),
        sa.Column("source_id", ID, nullable=False),
        sa.Column("golden_id", ID, nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("resolved_at", UTC, nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
    )
    op.create_index("ix_empi_review_source_id", "empi_review", ["source_id"])
    op.create_index("ix_empi_review_status", "empi_review", ["status", "id"])


def downgrade() -> None:
    """Drop the EMPI tables."""
    for table in ("empi_review", "empi_link", "empi_block", "empi_record"):
        op.drop_table(table)
