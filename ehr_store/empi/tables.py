"""EMPI tables: candidate record + blocking keys, link history, review queue.

On the shared `SQLModel.metadata` (Alembic revision `empi_0001`).

- `empi_record`: one row per source Patient: its current golden Patient and its normalised
  matching features (JSON), so a match never re-parses candidate Patients.
- `empi_block`: (blocking key, source Patient) pairs; the primary key serves the lookup by key.
- `empi_link`: every link ever made between a source and a golden Patient, with score, the
  rule that fired, when and who; an unlink sets `undone_at`/`undone_by` (never deletes).
- `empi_review`: the review queue (score between the thresholds, or conflicting 身份证号s).

May import: sqlalchemy, sqlmodel, the standard library, `ehr_store.tables` (column types).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ehr_store.tables import UtcDateTime

__all__ = ["EmpiBlockRow", "EmpiLinkRow", "EmpiRecordRow", "EmpiReviewRow"]

_ID = sa.String(64)
_BIGINT_PK = sa.BigInteger().with_variant(sa.Integer, "sqlite")


class EmpiRecordRow(SQLModel, table=True):
    """A source Patient known to the EMPI."""

    __tablename__ = "empi_record"

    source_id: str = Field(sa_column=sa.Column(_ID, primary_key=True))
    golden_id: str = Field(sa_column=sa.Column(_ID, nullable=False, index=True))
    features: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


class EmpiBlockRow(SQLModel, table=True):
    """One blocking key of one source Patient."""

    __tablename__ = "empi_block"
    __table_args__ = (sa.Index("ix_empi_block_source", "source_id"),)

    key: str = Field(sa_column=sa.Column(sa.String(128), primary_key=True))
    source_id: str = Field(sa_column=sa.Column(_ID, primary_key=True))


class EmpiLinkRow(SQLModel, table=True):
    """A source ↔ golden link with its evidence; undone links stay with `undone_at` set."""

    __tablename__ = "empi_link"
    __table_args__ = (
        sa.Index("ix_empi_link_source", "source_id"),
        sa.Index("ix_empi_link_golden", "golden_id"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(_BIGINT_PK, primary_key=True))
    source_id: str = Field(sa_column=sa.Column(_ID, nullable=False))
    golden_id: str = Field(sa_column=sa.Column(_ID, nullable=False))
    score: float | None = Field(default=None, sa_column=sa.Column(sa.Float, nullable=True))
    rule: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    undone_at: datetime | None = Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=True))
    undone_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(128), nullable=True))


class EmpiReviewRow(SQLModel, table=True):
    """A possible match waiting for a person: `status` open | linked | separated | merged."""

    __tablename__ = "empi_review"
    __table_args__ = (sa.Index("ix_empi_review_status", "status", "id"),)

    id: int | None = Field(default=None, sa_column=sa.Column(_BIGINT_PK, primary_key=True))
    source_id: str = Field(sa_column=sa.Column(_ID, nullable=False, index=True))
    golden_id: str = Field(sa_column=sa.Column(_ID, nullable=False))
    score: float = Field(sa_column=sa.Column(sa.Float, nullable=False))
    rule: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    details: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    resolved_at: datetime | None = Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=True))
    resolved_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(128), nullable=True))


record_table: sa.Table = EmpiRecordRow.__table__  # type: ignore[attr-defined]
block_table: sa.Table = EmpiBlockRow.__table__  # type: ignore[attr-defined]
link_table: sa.Table = EmpiLinkRow.__table__  # type: ignore[attr-defined]
review_table: sa.Table = EmpiReviewRow.__table__  # type: ignore[attr-defined]
