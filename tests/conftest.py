"""Shared fixtures: a real PostgreSQL for the session, and `store` over memory/SQLite/PostgreSQL.

PostgreSQL: `HIE_TEST_POSTGRES_URL` (a superuser or a role that may CREATE DATABASE) when
set; otherwise a throwaway cluster (`tests/pgcluster.py`) on 127.0.0.1, stopped at the end.
When no PostgreSQL can be had the tests needing it are skipped, except under `CI=true`,
where a test skipped for a missing service is a failure (see `service_unavailable` and the
`pytest_runtest_makereport` hook: a skip whose reason starts with "service unavailable"
fails under CI).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pgcluster import (
    PostgresUnavailable,
    ThrowawayCluster,
    create_database,
    drop_database,
)

from ehr_store import MemoryStore, SqlStore, Store, StoreSettings, upgrade_schema

SERVICE_UNAVAILABLE = "service unavailable"


def in_ci() -> bool:
    """True under `CI=true` (or 1/yes)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def service_unavailable(reason: str) -> None:
    """Skip the test for a missing service; under CI fail it instead."""
    message = f"{SERVICE_UNAVAILABLE}: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(message)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    """Under CI, turn skips for a missing service into failures (whatever raised them)."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if SERVICE_UNAVAILABLE in reason:
            report.outcome = "failed"
            report.longrepr = f"{reason} (CI=true: a missing service is a failure)"


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL URL allowed to create databases (env or throwaway cluster)."""
    given = os.environ.get("HIE_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    cluster = ThrowawayCluster()
    try:
        admin = cluster.start()
    except PostgresUnavailable as exc:
        cluster.stop()
        service_unavailable(f"PostgreSQL could not be started: {exc}")
        return
    try:
        yield admin
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def make_postgres_database(postgres_admin_url: str) -> Iterator[Callable[[], str]]:
    """Factory of empty PostgreSQL databases (dropped at the end of the session)."""
    made: list[str] = []

    def make() -> str:
        try:
            url = create_database(postgres_admin_url)
        except (PostgresUnavailable, sa.exc.DBAPIError) as exc:
            service_unavailable(f"cannot create a PostgreSQL database: {exc}")
            raise
        made.append(url)
        return url

    yield make
    for url in made:
        with contextlib.suppress(sa.exc.DBAPIError):
            drop_database(postgres_admin_url, url)


@pytest.fixture(scope="session")
def postgres_url(make_postgres_database: Callable[[], str]) -> str:
    """A PostgreSQL database for this session, migrated to the current schema."""
    url = make_postgres_database()
    upgrade_schema(url)
    return url


def truncate_postgres(url: str) -> None:
    """Empty every table of the database except `alembic_version` (identities restarted)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            names = [r[0] for r in conn.execute(sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename <> 'alembic_version'"))]
            if names:
                quoted = ", ".join(f'"{n}"' for n in names)
                conn.execute(sa.text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the current schema, copied for each test that needs one."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade_schema(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh migrated SQLite database file for this test."""
    path = tmp_path / "hie.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def pg_store_url(request: pytest.FixtureRequest) -> str:
    """The session PostgreSQL database, emptied for this test."""
    url: str = request.getfixturevalue("postgres_url")
    truncate_postgres(url)
    return url


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A `Store` per backend: in-memory, SQLite (temp file), PostgreSQL (emptied per test)."""
    backend: str = request.param
    opened: Store
    if backend == "memory":
        opened = MemoryStore(StoreSettings(database_url="memory://"))
    elif backend == "sqlite":
        opened = SqlStore(StoreSettings(database_url=request.getfixturevalue("sqlite_url")))
    else:
        opened = SqlStore(StoreSettings(database_url=request.getfixturevalue("pg_store_url"), pool_size=4))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def backend(store: Store) -> str:
    """Name of the `store` fixture's backend: memory, sqlite or postgresql."""
    if isinstance(store, SqlStore):
        return str(store.engine.dialect.name)
    return "memory"


@pytest.fixture(scope="session")
def keycloak() -> Iterator[Any]:
    """One real Keycloak (tests/kcserver.py: dev mode on loopback, our realm imported) for the
    whole session, shared by the integration and workbench tests; stopped at the end."""
    import kcserver

    try:
        server = kcserver.start()
    except kcserver.KeycloakUnavailable as exc:
        service_unavailable(f"Keycloak could not be started: {exc}")
        raise
    try:
        yield server
    finally:
        server.stop()
