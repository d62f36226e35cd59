"""Contract: migrations create exactly the tables in the metadata; an old schema is refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ehr_store import (
    SqlStore,
    StoreSettings,
    Unprocessable,
    current_revision,
    head_revision,
    upgrade_schema,
)
from ehr_store.schema import target_metadata


def _differences(url: str) -> list[object]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, target_metadata())
    finally:
        engine.dispose()
    return [d for d in diffs if not (isinstance(d, tuple) and d[0] == "remove_table"
                                      and d[1].name == "alembic_version")]


def _check_old_schema_refused(url: str) -> None:
    upgrade_schema(url, "0001_core")
    store = SqlStore(StoreSettings(database_url=url))
    try:
        with pytest.raises(Unprocessable) as info:
            store.check_schema()
        assert "hie db upgrade" in info.value.diagnostics
        assert "older schema" in info.value.diagnostics
        assert upgrade_schema(url) == head_revision()
        assert upgrade_schema(url) == head_revision()  # idempotent
        store.check_schema()
        assert current_revision(store.engine) == head_revision()
    finally:
        store.close()


def test_sqlite_migration_matches_metadata(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'empty.db'}"
    assert upgrade_schema(url) == head_revision()
    assert _differences(url) == []


def test_sqlite_empty_and_old_schema_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = SqlStore(StoreSettings(database_url=url))
    try:
        with pytest.raises(Unprocessable) as info:
            store.check_schema()
        assert "hie db upgrade" in info.value.diagnostics
    finally:
        store.close()
    _check_old_schema_refused(url)


def test_postgres_migration_matches_metadata(make_postgres_database: Callable[[], str]) -> None:
    url = make_postgres_database()
    assert upgrade_schema(url) == head_revision()
    assert _differences(url) == []


def test_postgres_old_schema_refused(make_postgres_database: Callable[[], str]) -> None:
    _check_old_schema_refused(make_postgres_database())


def test_content_is_jsonb_on_postgres(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            kinds = dict(conn.execute(sa.text(
                "SELECT table_name, data_type FROM information_schema.columns "
                "WHERE column_name = 'content' AND table_name IN ('resource', 'resource_history')")).all())
    finally:
        engine.dispose()
    assert kinds == {"resource": "jsonb", "resource_history": "jsonb"}
