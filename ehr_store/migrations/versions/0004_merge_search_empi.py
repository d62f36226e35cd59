"""Merge the search index branch (0002_search) and the EMPI branch (0003_empi).

Revision ID: 0004_merge
Revises: 0002_search, 0003_empi
Create Date: 2026-11-29
"""
from collections.abc import Sequence

revision: str = "0004_merge"
down_revision: str | Sequence[str] | None = ("0002_search", "0003_empi")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to do: joins the two branches."""


def downgrade() -> None:
    """Nothing to do: splits the two branches."""
