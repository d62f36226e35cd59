"""Plan shape on PostgreSQL when the statistics predate a resource type (no timed assertions).

The situation of `publish_many` on a loaded store: other types analyzed, then Slots written
(here committed, as after a first publication; the planner still estimates one Slot row).
The one-statement semi-join was then planned as a nested loop rescanning every Slot's
`schedule` rows for each Slot (`sql_probe.py`). Now `Slot?schedule=` reads `search_reference`
once, through an index, and the page statement reads `resource` alone, by index, with the ids
as a list (no join left for the estimates to get wrong).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from search_backends import BASE_TIME, SearchBackend
from sqlmodel import SQLModel

from ehr_store.jsonio import dumps
from ehr_store.search import execute_search, extract_index, sql_probe, write_indexes
from ehr_store.tables import resource_table


def _plan(conn: sa.Connection, statement: str, params: Any) -> str:
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute("EXPLAIN " + statement, params)
    return "\n".join(row[0] for row in cursor.fetchall())


@pytest.fixture
def stale_pg(search_pg_engine: sa.Engine) -> Iterator[SearchBackend]:
    """600 Observations analyzed, then 120 Slots of 3 schedules (not analyzed)."""
    with search_pg_engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
        conn.execute(sa.text(f"TRUNCATE {names}"))
    backend = SearchBackend("postgres", search_pg_engine)
    _load(search_pg_engine, backend, [
        {"resourceType": "Observation", "id": f"o{i}", "status": "final", "code": {"text": "x"},
         "subject": {"reference": f"Patient/p{i % 50}"}}
        for i in range(600)
    ])
    with search_pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE"))
    _load(search_pg_engine, backend, [
        {"resourceType": "Slot", "id": f"s{i}", "status": "free" if i % 3 else "busy",
         "schedule": {"reference": f"Schedule/sch{i % 3}"},
         "start": "2026-12-01T08:00:00+08:00", "end": "2026-12-01T08:30:00+08:00"}
        for i in range(120)
    ])
    yield backend


def _load(engine: sa.Engine, backend: SearchBackend, docs: list[dict[str, Any]]) -> None:
    """Resource rows and their index rows, one transaction (as the store's bulk path)."""
    rows = [
        {"resource_type": d["resourceType"], "id": d["id"], "version_id": 1, "last_updated": BASE_TIME,
         "deleted": False, "content": dumps(d)}
        for d in docs
    ]
    with engine.begin() as conn:
        conn.execute(resource_table.insert(), rows)
        items = [(d["resourceType"], d["id"], extract_index(d, backend.registry)) for d in docs]
        write_indexes(conn, items, replace=False)


def _statements(
    backend: SearchBackend, params: list[tuple[str, str]]
) -> tuple[list[str], list[tuple[str, Any]]]:
    """(ids found, SELECT statements run) of a Slot search."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append((statement, parameters))

    assert backend.engine is not None
    sa.event.listen(backend.engine, "before_cursor_execute", capture)
    try:
        with backend.engine.connect() as conn:
            settings, registry = backend.settings, backend.registry
            result = execute_search(conn, "Slot", params, settings=settings, registry=registry)
    finally:
        sa.event.remove(backend.engine, "before_cursor_execute", capture)
    return sorted(m.id for m in result.matches), seen


def test_reference_search_is_index_lookups_with_stale_statistics(stale_pg: SearchBackend) -> None:
    ids, statements = _statements(stale_pg, [("schedule", "Schedule/sch1"), ("status", "free")])
    assert ids == sorted(f"s{i}" for i in range(120) if i % 3 == 1)
    assert stale_pg.engine is not None
    with stale_pg.engine.connect() as conn:
        plans = [(s, _plan(conn, s, p)) for s, p in statements]
    probe = [plan for s, plan in plans if s.lstrip().startswith("SELECT search_reference.resource_id")]
    assert len(probe) == 1 and "Index" in probe[0] and "Seq Scan" not in probe[0], probe
    page = [plan for s, plan in plans if "FROM resource" in s]
    assert len(page) == 1
    assert "Index Scan" in page[0] and "Seq Scan" not in page[0] and "search_" not in page[0], page[0]


def test_joined_path_gives_the_same_slots(stale_pg: SearchBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    params = [("schedule", "Schedule/sch2"), ("status", "busy,free")]
    probed, _ = _statements(stale_pg, params)
    monkeypatch.setattr(sql_probe, "PROBE_LIMIT", 0)
    joined, statements = _statements(stale_pg, params)
    assert probed == joined == sorted(f"s{i}" for i in range(120) if i % 3 == 2)
    assert any("search_reference" in s and "FROM resource" in s for s, _ in statements)

