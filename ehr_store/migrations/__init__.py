"""Alembic migrations of the store schema (run through `ehr_store.schema.upgrade_schema`)."""
