"""`open_store`: the one place that picks a `Store` implementation from settings.

May import: the standard library, `ehr_store` modules.
"""

from __future__ import annotations

from ehr_store.memory import MemoryStore
from ehr_store.repository import Store
from ehr_store.settings import StoreSettings
from ehr_store.sql import SqlStore

__all__ = ["open_store"]


def open_store(settings: StoreSettings) -> Store:
    """`memory://` → `MemoryStore`; `sqlite:///…` or `postgresql://…` → `SqlStore`.

    The SQL store connects lazily; call `check_schema()` to refuse an old schema.
    Raises: InvalidInput (unsupported database URL).
    """
    if settings.database_url.startswith("memory:"):
        return MemoryStore(settings)
    return SqlStore(settings)
