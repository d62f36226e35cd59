"""Read model of one row per resource and fact name (ehr_store/read_model.py): resource_fact.
The read-model watermarks now mean "every change stamped before it is applied": the marks of the
0007 projections are dropped, so their next refresh re-checks every resource once (by version).

Revision ID: 0008_fact
Revises: 0007_projection
Create Date: 2026-11-29
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_fact"
down_revision: str | Sequence[str] | None = "0007_projection"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create resource_fact (clustered on its key on SQLite) and its indexes; reset the projection
    watermarks."""
    op.create_table(
        "resource_fact",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("resource_id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("link", sa.String(255), nullable=True),
        sa.Column("code", sa.String(255), nullable=True),
        sa.Column("codes", sa.Text(), nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_resource_fact_name_end", "resource_fact", ["name", "end", "start", "code", "subject"])
    op.create_index("ix_resource_fact_name_link", "resource_fact", ["name", "link"])
    op.execute("DELETE FROM resource_projection_mark")


def downgrade() -> None:
    """Drop resource_fact."""
    op.drop_index("ix_resource_fact_name_link", table_name="resource_fact")
    op.drop_index("ix_resource_fact_name_end", table_name="resource_fact")
    op.drop_table("resource_fact")
