"""Bulk Data export job records: bulk_export_job (ehr_store/export.py).

Revision ID: 0005_bulk_export
Revises: 0004_merge
Create Date: 2026-11-29
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_bulk_export"
down_revision: str | Sequence[str] | None = "0004_merge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the export job table."""
    op.create_table(
        "bulk_export_job",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("transaction_time", UTC, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=True),
        sa.Column("progress", sa.String(255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
    )
    op.create_index("ix_bulk_export_job_status", "bulk_export_job", ["status"])


def downgrade() -> None:
    """Drop the export job table."""
    op.drop_index("ix_bulk_export_job_status", table_name="bulk_export_job")
    op.drop_table("bulk_export_job")
