"""Read model of derived values per resource version (ehr_store/aggregates.py):
resource_projection, resource_projection_mark.

Revision ID: 0007_projection
Revises: 0006_code_sets
Create Date: 2026-11-29
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_projection"
down_revision: str | Sequence[str] | None = "0006_code_sets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the projection tables."""
    op.create_table(
        "resource_projection",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("resource_id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(255), nullable=True),
    )
    op.create_table(
        "resource_projection_mark",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop the projection tables."""
    op.drop_table("resource_projection_mark")
    op.drop_table("resource_projection")
