"""SQL tables of the store: current resources, version history, HL7 v2 message archive.

All tables live on `SQLModel.metadata` (the search index tables in `ehr_store.search`
join `resource` on `(resource_type, id)` and register on the same metadata).

Column types that differ per dialect are declared here once:
- `JsonDocument`: JSONB on PostgreSQL, TEXT on SQLite. Values are bound as JSON text
  (UTF-8 `bytes` or `str`) and read back as `str` without any re-serialisation
  (PostgreSQL: `CAST(content AS TEXT)`), so reads never pass through the FHIR models.
- `UtcDateTime`: timezone-aware UTC datetimes on both dialects (SQLite stores naive UTC).

May import: sqlalchemy, sqlmodel, the standard library.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeEngine
from sqlmodel import Field, SQLModel

__all__ = ["JsonDocument", "MessageArchiveRow", "ResourceHistoryRow", "ResourceRow", "UtcDateTime"]


class _JsonIn(FunctionElement[Any]):
    """Bound JSON text: `CAST(:p AS JSONB)` on PostgreSQL, the plain parameter elsewhere."""

    inherit_cache = True
    name = "json_in"


class _JsonOut(FunctionElement[Any]):
    """Stored JSON read as text: `CAST(col AS TEXT)` on PostgreSQL, the column elsewhere."""

    inherit_cache = True
    name = "json_out"


@compiles(_JsonIn)
def _json_in_default(element: _JsonIn, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_JsonIn, "postgresql")
def _json_in_pg(element: _JsonIn, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS JSONB)"


@compiles(_JsonOut)
def _json_out_default(element: _JsonOut, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_JsonOut, "postgresql")
def _json_out_pg(element: _JsonOut, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS TEXT)"


class JsonDocument(sa.types.TypeDecorator[str]):
    """A JSON document stored as JSONB (PostgreSQL) or TEXT (SQLite), moved as JSON text.

    Bind: `bytes` (UTF-8) or `str` JSON text. Result: `str` JSON text (None for NULL).
    """

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.Text())

    def bind_processor(self, dialect: Dialect) -> Any:
        def process(value: Any) -> Any:
            if isinstance(value, bytes | bytearray | memoryview):
                return bytes(value).decode("utf-8")
            return value

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        return None

    def bind_expression(self, bindvalue: Any) -> ColumnElement[Any]:
        return _JsonIn(bindvalue)

    def column_expression(self, column: Any) -> ColumnElement[Any]:
        return _JsonOut(column)


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetime; naive values are refused on bind."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class ResourceRow(SQLModel, table=True):
    """Current version of every resource (deleted ones kept with `deleted` and no content)."""

    __tablename__ = "resource"
    __table_args__ = (sa.Index("ix_resource_type_last_updated", "resource_type", "last_updated"),)

    resource_type: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    version_id: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    last_updated: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    deleted: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False, default=False))
    content: str | None = Field(default=None, sa_column=sa.Column(JsonDocument(), nullable=True))


class ResourceHistoryRow(SQLModel, table=True):
    """Every version of every resource (FHIR R4B http §3.1.0.3 vread, §3.1.0.4 history)."""

    __tablename__ = "resource_history"
    __table_args__ = (
        sa.Index("ix_resource_history_last_updated", "last_updated"),
        sa.Index("ix_resource_history_type_last_updated", "resource_type", "last_updated"),
    )

    resource_type: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    version_id: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True))
    last_updated: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    deleted: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False, default=False))
    method: str = Field(sa_column=sa.Column(sa.String(8), nullable=False))
    content: str | None = Field(default=None, sa_column=sa.Column(JsonDocument(), nullable=True))


class MessageArchiveRow(SQLModel, table=True):
    """Raw inbound HL7 v2 messages with their outcome and ACK (see `ArchivedMessage`)."""

    __tablename__ = "message_archive"
    __table_args__ = (
        sa.Index(
            "ix_message_archive_sender_control", "sending_application", "sending_facility", "control_id"
        ),
        sa.Index("ix_message_archive_status", "status"),
    )

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    )
    received_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    transport: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    peer: str | None = Field(default=None, sa_column=sa.Column(sa.String(255), nullable=True))
    raw: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    sending_application: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    sending_facility: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    control_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    message_type: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    charset: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    ack: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary, nullable=True))
    ack_code: str | None = Field(default=None, sa_column=sa.Column(sa.String(2)))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    resources: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    attempts: int = Field(default=1, sa_column=sa.Column(sa.Integer, nullable=False, default=1))


resource_table: sa.Table = ResourceRow.__table__  # type: ignore[attr-defined]
resource_history_table: sa.Table = ResourceHistoryRow.__table__  # type: ignore[attr-defined]
message_archive_table: sa.Table = MessageArchiveRow.__table__  # type: ignore[attr-defined]
