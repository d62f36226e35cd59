"""`ehr_store.bulk.bulk_insert` stores exactly what SQLAlchemy's own INSERT stores (COPY on
PostgreSQL, the driver's executemany on SQLite), and fails the same way."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from ehr_store.bulk import COPY_MIN_ROWS, bulk_insert
from ehr_store.engine import make_engine
from ehr_store.search.tables import date_index, quantity_index
from ehr_store.settings import StoreSettings
from ehr_store.tables import resource_history_table as H

CONTENT = '{"resourceType":"Patient","id":"b1","name":[{"text":"张三\\t\\\\"}],"x":1.50}'


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_store_url")
    built = make_engine(StoreSettings(database_url=url))
    try:
        yield built
    finally:
        built.dispose()


def _history(id: str, at: datetime, content: Any) -> dict[str, Any]:
    return {"resource_type": "Patient", "id": id, "version_id": 1, "last_updated": at, "deleted": False,
            "method": "PUT", "content": content}


@pytest.mark.parametrize("count", [1, COPY_MIN_ROWS])  # one INSERT / COPY on PostgreSQL
def test_bulk_rows_read_back_like_sqlalchemy_inserted_ones(engine: sa.Engine, count: int) -> None:
    at = datetime(2024, 5, 1, 8, 0, 0, 0, tzinfo=timezone(timedelta(hours=8)))
    low, high = Decimal("1.45"), Decimal("1.55")
    quantity = {"resource_type": "Observation", "resource_id": "s", "param": "value-quantity",
                "value": Decimal("1.50"), "low": low, "high": high, "system": None, "code": "mmol/L",
                "unit": "mmol/L"}
    day = {"resource_type": "Observation", "resource_id": "s", "param": "date",
           "start": datetime(2024, 5, 1, tzinfo=UTC),
           "end": datetime(2024, 5, 1, 23, 59, 59, 999999, tzinfo=UTC)}
    with engine.begin() as conn:
        bulk_insert(conn, H, [_history(f"b{n}", at, CONTENT.encode()) for n in range(count)])
        bulk_insert(conn, H, [_history("n", at, None)])
        conn.execute(H.insert(), [_history("s", at, CONTENT.encode())])
        bulk_insert(conn, quantity_index, [{**quantity, "resource_id": f"b{n}"} for n in range(count)])
        conn.execute(quantity_index.insert(), [quantity])
        bulk_insert(conn, date_index, [{**day, "resource_id": f"b{n}"} for n in range(count)])
        conn.execute(date_index.insert(), [day])
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(H))}
        quantities = {r.resource_id: r for r in conn.execute(sa.select(quantity_index))}
        dates = {r.resource_id: r for r in conn.execute(sa.select(date_index))}
        matched = conn.execute(sa.select(sa.func.count()).select_from(date_index).where(
            date_index.c.start <= datetime(2024, 5, 1, 12, tzinfo=UTC),
            date_index.c.end >= datetime(2024, 5, 1, 12, tzinfo=UTC))).scalar_one()
    assert len(rows) == count + 2 and "张三" in rows["s"].content
    for n in range(count):
        assert rows[f"b{n}"].content == rows["s"].content
        assert rows[f"b{n}"].last_updated == rows["s"].last_updated == at.astimezone(UTC)
        assert quantities[f"b{n}"][3:] == quantities["s"][3:]
        assert dates[f"b{n}"][3:] == dates["s"][3:]
    assert rows["n"].content is None and rows["n"].deleted is False
    assert matched == count + 1


@pytest.mark.parametrize("count", [1, COPY_MIN_ROWS])
def test_bulk_insert_raises_like_sqlalchemy(engine: sa.Engine, count: int) -> None:
    at = datetime(2024, 5, 1, tzinfo=UTC)
    with engine.begin() as conn:
        bulk_insert(conn, H, [_history("d1", at, None)])
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        bulk_insert(conn, H, [_history(f"d{n + 1}", at, None) for n in range(count)])
    naive = [_history(f"e{n}", datetime(2024, 5, 1), None) for n in range(count)]
    with pytest.raises((ValueError, sa.exc.StatementError)), engine.begin() as conn:
        bulk_insert(conn, H, naive)
