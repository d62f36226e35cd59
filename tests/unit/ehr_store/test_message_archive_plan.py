"""The duplicate check (MessageArchive.find_answered_many / find_processed) is an index lookup by
sender and control id on SQLite and PostgreSQL, whatever the archive holds: with the status
condition in the statement both planners walked the status index, i.e. every processed
message (15 ms a batch at 22,000 archived messages on SQLite, growing with the archive)."""

from __future__ import annotations

from typing import Any

import pytest

from ehr_store import IncomingMessage, MessageOutcome, SqlStore, StoreSettings
from ehr_store.sql_messages import _FIND_PROCESSED, _find_processed_many


def _fill(store: SqlStore, n: int) -> None:
    with store.unit_of_work(write=True) as uow:
        rows = uow.messages.add_many([
            IncomingMessage(b"MSH|^~\\&|HIS|F", "mllp", None, "HIS", f"F{i % 10}", f"C{i}", "ADT^A01", None)
            for i in range(n)
        ])
        uow.messages.finish_many([
            MessageOutcome(r.id, status="processed", ack=b"MSA|AA", ack_code="AA", charset=None, resources=[])
            for r in rows
        ])
        uow.commit()


def _plans(store: SqlStore) -> list[str]:
    many = _find_processed_many(((False, False), (False, False)))
    params: dict[str, Any] = {"a0": "HIS", "f0": "F1", "c0": "new-1", "a1": "HIS", "f1": "F2", "c1": "C2"}
    one = _FIND_PROCESSED[(False, False)]
    one_params = {"app": "HIS", "fac": "F3", "cid": "C3"}
    out = []
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE message_archive")
            prefix = "EXPLAIN "
        else:
            conn.exec_driver_sql("ANALYZE")
            prefix = "EXPLAIN QUERY PLAN "
        for stmt, p in ((many, params), (one, one_params)):
            sql = str(stmt.params(**p).compile(conn, compile_kwargs={"literal_binds": True}))
            out.append(" ".join(str(row[-1]) for row in conn.exec_driver_sql(prefix + sql)))
    return out


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_duplicate_check_uses_the_sender_index(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_store_url")
    store = SqlStore(StoreSettings(database_url=url))
    try:
        _fill(store, 3000)
        for plan in _plans(store):
            assert "ix_message_archive_status" not in plan, plan
            assert "ix_message_archive_sender_control" in plan, plan
        with store.unit_of_work() as uow:  # and the answers are still right
            found = uow.messages.find_answered_many([("HIS", "F2", "C2"), ("HIS", "F1", "new-1")])
            assert list(found) == [("HIS", "F2", "C2")] and found[("HIS", "F2", "C2")][0].ack == b"MSA|AA"
            hit = uow.messages.find_processed("HIS", "F3", "C3")
            assert hit is not None and hit.status == "processed"
            assert uow.messages.find_processed("HIS", "F3", "nope") is None
            received = IncomingMessage(b"MSH|", "mllp", None, "HIS", "F4", "R1", "ADT^A01", None)
            uow.messages.add_many([received])
            assert uow.messages.find_processed("HIS", "F4", "R1") is None  # received, not answered
            assert uow.messages.find_answered_many([("HIS", "F4", "R1")]) == {}
    finally:
        store.close()
