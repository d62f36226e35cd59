"""`ehr_store.bulk.bulk_insert` stores exactly what SQLAlchemy's own INSERT stores (COPY on
PostgreSQL, the driver's executemany on SQLite), and fails the same way."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from ehr_store.bulk import bulk_insert
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


def test_bulk_rows_read_back_like_sqlalchemy_inserted_ones(engine: sa.Engine) -> None:
    at = datetime(2024, 5, 1, 8, 0, 0, 0, tzinfo=timezone(timedelta(hours=8)))
    with engine.begin() as conn:
        bulk_insert(conn, H, [_history("b1", at, CONTENT.encode()), _history("b2", at, None)])
        conn.execute(H.insert(), [_history("s1", at, CONTENT.encode())])
        low, high = Decimal("1.45"), Decimal("1.55")
        quantity = {"resource_type": "Observation", "resource_id": "o1", "param": "value-quantity",
                    "value": Decimal("1.50"), "low": low, "high": high, "system": None, "code": "mmol/L",
                    "unit": "mmol/L"}
        bulk_insert(conn, quantity_index, [quantity])
        conn.execute(quantity_index.insert(), [{**quantity, "resource_id": "o2"}])
        day = {"resource_type": "Observation", "resource_id": "o1", "param": "date",
               "start": datetime(2024, 5, 1, tzinfo=UTC),
               "end": datetime(2024, 5, 1, 23, 59, 59, 999999, tzinfo=UTC)}
        bulk_insert(conn, date_index, [day])
        conn.execute(date_index.insert(), [{**day, "resource_id": "o2"}])
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(H))}
        quantities = conn.execute(sa.select(quantity_index).order_by(quantity_index.c.resource_id)).all()
        dates = conn.execute(sa.select(date_index).order_by(date_index.c.resource_id)).all()
        matched = conn.execute(sa.select(sa.func.count()).select_from(date_index).where(
            date_index.c.start <= datetime(2024, 5, 1, 12, tzinfo=UTC),
            date_index.c.end >= datetime(2024, 5, 1, 12, tzinfo=UTC))).scalar_one()
    assert rows["b1"].content == rows["s1"].content and "张三" in rows["b1"].content
    assert rows["b1"].last_updated == rows["s1"].last_updated == at.astimezone(UTC)
    assert rows["b2"].content is None and rows["b2"].deleted is False
    assert quantities[0][3:] == quantities[1][3:]
    assert dates[0][3:] == dates[1][3:] and matched == 2


def test_bulk_insert_raises_like_sqlalchemy(engine: sa.Engine) -> None:
    at = datetime(2024, 5, 1, tzinfo=UTC)
    with engine.begin() as conn:
        bulk_insert(conn, H, [_history("d1", at, None)])
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        bulk_insert(conn, H, [_history("d1", at, None)])
    with pytest.raises(ValueError), engine.begin() as conn:
        bulk_insert(conn, H, [_history("d2", datetime(2024, 5, 1), None)])
