"""`SqlEmpiIndex` on SQLite with just the EMPI tables (the store-wide runs are in test_store_backends)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ehr_store.empi.features import Features
from ehr_store.empi.sql_index import SqlEmpiIndex
from ehr_store.empi.tables import block_table, link_table, record_table, review_table


class OneConnection:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def connection(self, *, write: bool) -> Connection:
        return self.conn


@pytest.fixture
def index() -> Iterator[SqlEmpiIndex]:
    engine = sa.create_engine("sqlite://")
    meta = sa.MetaData()
    for table in (record_table, block_table, link_table, review_table):
        table.to_metadata(meta)
    meta.create_all(engine)
    with engine.connect() as conn, conn.begin():
        yield SqlEmpiIndex(OneConnection(conn))
    engine.dispose()


def test_records_blocks_links_reviews(index: SqlEmpiIndex) -> None:
    now = datetime.now(UTC)
    feats = Features(
        family="王", given="晓东", family_py="wang", given_py="xiaodong", birth_date="1990-01-02"
    )
    index.put_record("a", "g1", feats, ["fb:wang|1990-01-02", "ph:13800001234"])
    index.put_record("b", "g1", feats, ["fb:wang|1990-01-02"])
    index.put_record("c", "g2", Features(), ["ph:13800009999"])
    assert [c.source_id for c in index.candidates(["fb:wang|1990-01-02"], limit_per_key=10)] == ["a", "b"]
    assert len(index.candidates(["fb:wang|1990-01-02"], limit_per_key=1)) == 1
    assert index.get_record("a") is not None and index.get_record("a").features == feats  # type: ignore[union-attr]
    index.put_record("a", "g1", feats, ["ph:13800001234"])  # keys replaced
    assert [c.source_id for c in index.candidates(["fb:wang|1990-01-02"], limit_per_key=10)] == ["b"]
    index.set_golden("b", "g2")
    assert index.sources_of("g2") == ["b", "c"]
    with pytest.raises(KeyError):
        index.set_golden("zz", "g2")
    first = index.add_link("b", "g1", score=30.5, rule="probabilistic", at=now, by="system")
    assert index.undo_links("b", at=now, by="tester") == 1
    index.add_link("b", "g2", score=None, rule="manual", at=now, by="tester")
    links = index.links(source_id="b")
    assert [(link.id, link.undone_by) for link in links] == [(first.id, "tester"), (first.id + 1, None)]
    item = index.add_review("c", "g1", score=12.0, rule="probabilistic", details={"levels": {}}, at=now)
    assert [r.id for r in index.reviews()] == [item.id]
    index.resolve_review(item.id, status="separated", at=now, by="tester")
    assert index.reviews() == [] and index.get_review(item.id).status == "separated"  # type: ignore[union-attr]


def test_lookup_returns_the_record_and_the_candidates_in_one_query(index: SqlEmpiIndex) -> None:
    feats = Features(family="王", given="晓东", family_py="wang", given_py="xiaodong")
    index.put_record("a", "g1", feats, ["fb:wang|1990-01-02", "ph:13800001234"])
    index.put_record("b", "g2", feats, ["fb:wang|1990-01-02"])
    record, found = index.lookup("a", ["fb:wang|1990-01-02", "ph:13800001234"], limit_per_key=10)
    assert record is not None and (record.golden_id, record.features) == ("g1", feats)
    assert [c.source_id for c in found] == [c.source_id for c in index.candidates(
        ["fb:wang|1990-01-02", "ph:13800001234"], limit_per_key=10)] == ["a", "b"]
    record, found = index.lookup("new", ["ph:13800001234"], limit_per_key=10)
    assert record is None and [c.source_id for c in found] == ["a"]
    record, found = index.lookup("b", [], limit_per_key=10)
    assert record is not None and record.golden_id == "g2" and found == []
    index.put_record("new", "g1", Features(), ["ph:13800005555"])  # first record of a looked-up source
    assert [c.source_id for c in index.candidates(["ph:13800005555"], limit_per_key=10)] == ["new"]
