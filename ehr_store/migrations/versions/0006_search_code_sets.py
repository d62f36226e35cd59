"""Membership tables for the `:in`/`:not-in`/`:below`/`:above` token modifiers:
search_code_set, search_code_set_key (ehr_store/search/code_sets.py).

Revision ID: 0006_code_sets
Revises: 0005_bulk_export
Create Date: 2026-11-29
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_code_sets"
down_revision: str | Sequence[str] | None = "0005_bulk_export"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the code set tables."""
    op.create_table(
        "search_code_set",
        sa.Column("set_key", sa.String(80), primary_key=True),
        sa.Column("system", sa.String(255), primary_key=True),
        sa.Column("code", sa.String(255), primary_key=True),
    )
    op.create_table(
        "search_code_set_key",
        sa.Column("set_key", sa.String(80), primary_key=True),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    """Drop the code set tables."""
    op.drop_table("search_code_set_key")
    op.drop_table("search_code_set")
