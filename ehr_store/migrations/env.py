"""Alembic environment: runs on the connection handed over by `ehr_store.schema`.

May import: alembic, sqlalchemy, `ehr_store.schema` (for the metadata).
"""

from __future__ import annotations

from alembic import context

from ehr_store.schema import target_metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through ehr_store.schema.upgrade_schema (or `hie db upgrade`)")

context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
