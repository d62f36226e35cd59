"""`:in` / `:not-in` / `:below` / `:above` token modifiers through a store (memory, SQLite,
PostgreSQL) with a resolver of our own: a value set of 1,500 codes (past any 1,000-item
`IN` list limit), a small hierarchy, unknown value sets, and the membership table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ehr_store import (
    CodeSet,
    InvalidInput,
    NotFound,
    NotSupported,
    SqlStore,
    Store,
    make_code_set,
    use_code_set_resolver,
)

LAB = "http://example.org/fhir/CodeSystem/lab"
OTHER = "http://example.org/fhir/CodeSystem/other"
BIG_VS = "http://example.org/fhir/ValueSet/big"
SMALL_VS = "http://example.org/fhir/ValueSet/small"
BIG_CODES = [f"C{i:04d}" for i in range(1500)]
TREE = {"ROOT": ["A", "B"], "A": ["A1", "A2"], "B": ["B1"]}  # parent -> children


class Resolver:
    """A code-set resolver over fixed content, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, kind: str, system: str | None, value: str) -> CodeSet:
        self.calls += 1
        if kind == "in":
            url = value.partition("|")[0]
            if url == BIG_VS:
                return make_code_set(value, ((LAB, c) for c in BIG_CODES))
            if url == SMALL_VS:
                return make_code_set(value, [(LAB, "C0001"), (OTHER, "C0002")])
            raise NotFound(f"ValueSet {value} is not known")
        if system != LAB:
            raise NotFound(f"CodeSystem {system} is not known")
        if kind == "below":
            found, stack = [], [value]
            while stack:
                code = stack.pop()
                found.append(code)
                stack.extend(TREE.get(code, ()))
            return make_code_set(f"below:{value}", ((LAB, c) for c in found))
        parents = {child: parent for parent, kids in TREE.items() for child in kids}
        chain = [value]
        while chain[-1] in parents:
            chain.append(parents[chain[-1]])
        return make_code_set(f"above:{value}", ((LAB, c) for c in chain))


def _obs(id: str, system: str, code: str) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
    }


@pytest.fixture
def coded(store: Store) -> Iterator[tuple[Store, Resolver]]:
    """The store with Observations coded in and out of the sets, and the resolver attached."""
    resolver = Resolver()
    use_code_set_resolver(store, resolver)
    with store.unit_of_work(write=True) as uow:
        for id, system, code in [
            ("first", LAB, "C0000"),
            ("last", LAB, "C1499"),  # beyond the first 1,000 codes
            ("outside", LAB, "D0001"),
            ("elsewhere", OTHER, "C0002"),  # right code, other system
            ("root", LAB, "ROOT"),
            ("a", LAB, "A"),
            ("a2", LAB, "A2"),
            ("b1", LAB, "B1"),
        ]:
            uow.resources.update("Observation", id, _obs(id, system, code))
        uow.commit()
    yield store, resolver


def _ids(store: Store, params: list[tuple[str, str]]) -> set[str]:
    with store.unit_of_work() as uow:
        result = uow.resources.search("Observation", [*params, ("_count", "100")], strict=True)
    return {m.id for m in result.matches}


def test_in_and_not_in_a_large_value_set(coded: tuple[Store, Resolver]) -> None:
    store, _ = coded
    assert _ids(store, [("code:in", BIG_VS)]) == {"first", "last"}
    assert _ids(store, [("code:not-in", BIG_VS)]) == {"outside", "elsewhere", "root", "a", "a2", "b1"}
    assert _ids(store, [("code:in", f"{BIG_VS},{SMALL_VS}")]) == {"first", "last", "elsewhere"}
    assert _ids(store, [("code:in", BIG_VS), ("code:not-in", SMALL_VS)]) == {"first", "last"}
    with store.unit_of_work() as uow:
        assert uow.resources.count("Observation", [("code:in", BIG_VS)]) == 2


def test_below_and_above_in_a_hierarchy(coded: tuple[Store, Resolver]) -> None:
    store, _ = coded
    assert _ids(store, [("code:below", f"{LAB}|A")]) == {"a", "a2"}
    assert _ids(store, [("code:below", f"{LAB}|ROOT")]) == {"root", "a", "a2", "b1"}
    assert _ids(store, [("code:above", f"{LAB}|A2")]) == {"a2", "a", "root"}


def test_code_set_in_a_chain(coded: tuple[Store, Resolver]) -> None:
    store, _ = coded
    with store.unit_of_work(write=True) as uow:
        report = {
            "resourceType": "DiagnosticReport",
            "id": "r1",
            "status": "final",
            "code": {"text": "panel"},
            "result": [{"reference": "Observation/last"}],
        }
        uow.resources.update("DiagnosticReport", "r1", report)
        uow.commit()
    with store.unit_of_work() as uow:
        found = uow.resources.search("DiagnosticReport", [("result:Observation.code:in", BIG_VS)])
    assert [m.id for m in found.matches] == ["r1"]


def test_unknown_value_set_and_bad_values_name_the_parameter(coded: tuple[Store, Resolver]) -> None:
    store, _ = coded
    with store.unit_of_work() as uow:
        with pytest.raises(InvalidInput) as unknown:
            uow.resources.search("Observation", [("code:in", "http://example.org/ValueSet/nope")])
        assert unknown.value.issues[0].expression == ("code:in",)
        assert "nope" in unknown.value.diagnostics
        with pytest.raises(InvalidInput) as below:
            uow.resources.search("Observation", [("code:below", "A")])
        assert below.value.issues[0].expression == ("code:below",)
        with pytest.raises(InvalidInput):
            uow.resources.search("Observation", [("code:below", f"{OTHER}|A")])


def test_without_a_resolver_the_modifiers_are_not_supported(store: Store) -> None:
    with store.unit_of_work() as uow, pytest.raises(NotSupported) as info:
        uow.resources.search("Observation", [("code:in", BIG_VS)])
    assert info.value.issues[0].expression == ("code:in",)


def test_sql_sets_are_materialised_once(coded: tuple[Store, Resolver]) -> None:
    store, _ = coded
    if not isinstance(store, SqlStore):
        pytest.skip("the membership table is SQL only")
    for _ in range(3):
        assert _ids(store, [("code:in", BIG_VS)]) == {"first", "last"}
    with store.engine.connect() as conn:
        sets = conn.execute(sa.text("SELECT set_key, label, size FROM search_code_set_key")).all()
        rows = conn.execute(sa.text("SELECT count(*) FROM search_code_set")).scalar_one()
    assert [(s.label, s.size) for s in sets] == [(f"in:|{BIG_VS}", 1500)]
    assert rows == 1500


def test_code_set_search_inside_a_write_unit(coded: tuple[Store, Resolver]) -> None:
    """A unit holding SQLite's write lock materialises the set in its own transaction."""
    store, _ = coded
    with store.unit_of_work(write=True) as uow:
        uow.resources.update("Observation", "new", _obs("new", LAB, "C0500"))
        found = uow.resources.search("Observation", [("code:in", BIG_VS), ("_count", "10")])
        assert {m.id for m in found.matches} == {"first", "last", "new"}
        uow.commit()
    assert _ids(store, [("code:in", BIG_VS)]) == {"first", "last", "new"}
