"""Schema migrations (Alembic, in `ehr_store/migrations/`) run programmatically.

`upgrade_schema(url)` brings a database (empty SQLite file, empty PostgreSQL database, or
an older schema) to the current revision; `current_revision`/`head_revision` say where a
database and the code stand; `check_schema(engine)` refuses a database that is not at the
head revision, naming the command to run (`hie db upgrade`).

May import: alembic, sqlalchemy, sqlmodel, the standard library, `ehr_store` modules
(`ehr_store.search` for its tables on the shared metadata).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from ehr_store.errors import Unavailable, Unprocessable
from ehr_store.settings import StoreSettings

__all__ = ["check_schema", "current_revision", "head_revision", "target_metadata", "upgrade_schema"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
UPGRADE_COMMAND = "hie db upgrade"


def target_metadata() -> sa.MetaData:
    """`SQLModel.metadata` with every store table registered (core, search index, EMPI)."""
    import ehr_store.empi.tables
    import ehr_store.search
    import ehr_store.tables  # noqa: F401

    return SQLModel.metadata


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest migration revision id shipped with this code."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found in ehr_store/migrations/versions")
    return head


def _engine(database_url: str) -> Engine:
    from ehr_store.engine import make_engine

    return make_engine(StoreSettings(database_url=database_url))


def upgrade_schema(database_url: str, revision: str = "head") -> str:
    """Migrate the database at `database_url` to `revision` (default: head); idempotent.

    Returns the revision the database is at afterwards.
    Raises: Unavailable (cannot connect), InvalidInput (unsupported URL).
    """
    engine = _engine(database_url)
    try:
        with engine.begin() as conn:
            cfg = _config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision() or ""
    except sa.exc.OperationalError as exc:
        raise Unavailable(f"cannot migrate the database: {exc.orig}") from exc
    finally:
        engine.dispose()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, None for an empty (never migrated) database.

    Raises: Unavailable (cannot connect).
    """
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except sa.exc.OperationalError as exc:
        raise Unavailable(f"cannot connect to the database: {exc.orig}") from exc


def check_schema(engine: Engine) -> None:
    """Refuse a database that is not at the head revision.

    Raises: Unavailable (cannot connect), Unprocessable (older, newer or no schema; the
    diagnostics say to run `hie db upgrade`).
    """
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise Unprocessable(f"the database has no schema yet; run `{UPGRADE_COMMAND}`")
    known = {rev.revision for rev in ScriptDirectory.from_config(_config()).walk_revisions()}
    if current in known:
        raise Unprocessable(
            f"the database is at an older schema revision {current} (current is {head}); "
            f"run `{UPGRADE_COMMAND}`"
        )
    raise Unprocessable(
        f"the database is at schema revision {current}, which this version of the software "
        f"does not know (current is {head}); upgrade the software or run `{UPGRADE_COMMAND}`"
    )
