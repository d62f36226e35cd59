"""Core tables: resource, resource_history, message_archive.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-29
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_core"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.Text().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the current-version, history and HL7 v2 archive tables."""
    op.create_table(
        "resource",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("content", JSON_DOCUMENT, nullable=True),
    )
    op.create_index("ix_resource_type_last_updated", "resource", ["resource_type", "last_updated"])
    op.create_table(
        "resource_history",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer(), primary_key=True),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("content", JSON_DOCUMENT, nullable=True),
    )
    op.create_index("ix_resource_history_last_updated", "resource_history", ["last_updated"])
    op.create_index(
        "ix_resource_history_type_last_updated", "resource_history", ["resource_type", "last_updated"]
    )
    op.create_table(
        "message_archive",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("transport", sa.String(32), nullable=False),
        sa.Column("peer", sa.String(255), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("sending_application", sa.String(255), nullable=True),
        sa.Column("sending_facility", sa.String(255), nullable=True),
        sa.Column("control_id", sa.String(255), nullable=True),
        sa.Column("message_type", sa.String(32), nullable=True),
        sa.Column("charset", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ack", sa.LargeBinary(), nullable=True),
        sa.Column("ack_code", sa.String(2), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("resources", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_message_archive_sender_control",
        "message_archive",
        ["sending_application", "sending_facility", "control_id"],
    )
    op.create_index("ix_message_archive_status", "message_archive", ["status"])


def downgrade() -> None:
    """Drop the core tables."""
    op.drop_table("message_archive")
    op.drop_table("resource_history")
    op.drop_table("resource")
