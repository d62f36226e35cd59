"""Contract: create, read, vread, read_many, update, delete on every backend (FHIR R4B http §3.1.0)."""

from __future__ import annotations

import pytest
from contract_data import observation, patient

from ehr_store import (
    Conflict,
    Gone,
    InvalidInput,
    NotFound,
    NotSupported,
    Store,
    VersionConflict,
    json_loads,
)


def test_create_assigns_id_version_and_meta(store: Store) -> None:
    with store.unit_of_work() as uow:
        stored = uow.resources.create({**patient(), "id": "ignored-client-id"})
        uow.commit()
    assert stored.version_id == 1 and stored.id != "ignored-client-id"
    doc = json_loads(stored.content)
    assert doc["id"] == stored.id
    assert doc["meta"]["versionId"] == "1"
    assert doc["meta"]["lastUpdated"].endswith("Z")
    assert stored.last_updated.tzinfo is not None
    with store.unit_of_work() as uow:
        read = uow.resources.read("Patient", stored.id)
    assert json_loads(read.content) == doc
    assert read.version_id == 1 and read.etag == 'W/"1"'


def test_create_with_given_id_and_duplicate(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.resources.create(patient(), id="p-1")
        with pytest.raises(Conflict):
            uow.resources.create(patient(), id="p-1")
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.resources.read("Patient", "p-1").id == "p-1"


@pytest.mark.parametrize("bad_id", ["a b", "", "x" * 65, "é"])
def test_bad_ids_are_invalid_input(store: Store, bad_id: str) -> None:
    with store.unit_of_work() as uow, pytest.raises(InvalidInput):
        uow.resources.create(patient(), id=bad_id)


def test_decimal_precision_kept(store: Store) -> None:
    with store.unit_of_work() as uow:
        obs = uow.resources.create(observation("Patient/p-1", value="1.50"))
        uow.commit()
    assert b'"value":1.50' in obs.content
    with store.unit_of_work() as uow:
        read = uow.resources.read("Observation", obs.id)
        again = uow.resources.vread("Observation", obs.id, 1)
    for stored in (read, again):
        assert str(json_loads(stored.content)["valueQuantity"]["value"]) == "1.50"


def test_validation_errors_carry_expressions(store: Store) -> None:
    bad = {**patient(), "birthDate": "1980-13-45", "name": [{"given": "not-a-list"}], "colour": "blue"}
    with store.unit_of_work() as uow, pytest.raises(InvalidInput) as info:
        uow.resources.create(bad)
    expressions = {e for issue in info.value.issues for e in issue.expression}
    assert {"Patient.birthDate", "Patient.name[0].given", "Patient.colour"} <= expressions
    assert len(info.value.issues) == 3


def test_unknown_or_wrong_type(store: Store) -> None:
    with store.unit_of_work() as uow:
        with pytest.raises(NotSupported):
            uow.resources.create({"resourceType": "Spaceship"})
        with pytest.raises(NotSupported):
            uow.resources.read("Spaceship", "1")
        with pytest.raises(InvalidInput):
            uow.resources.update("Observation", "x", {**patient(), "id": "x"})
        with pytest.raises(InvalidInput):
            uow.resources.create(["not", "an", "object"])  # type: ignore[arg-type]


def test_read_unknown_is_not_found(store: Store) -> None:
    with store.unit_of_work() as uow:
        with pytest.raises(NotFound):
            uow.resources.read("Patient", "nobody")
        with pytest.raises(NotFound):
            uow.resources.vread("Patient", "nobody", 1)


def test_update_versions_and_if_match(store: Store) -> None:
    with store.unit_of_work() as uow:
        created = uow.resources.create(patient(), id="p-2")
        doc = json_loads(created.content)
        doc["gender"] = "female"
        second, was_created = uow.resources.update("Patient", "p-2", doc, if_match=1)
        assert (second.version_id, was_created) == (2, False)
        with pytest.raises(VersionConflict):
            uow.resources.update("Patient", "p-2", {**doc, "gender": "other"}, if_match=1)
        uow.commit()
    with store.unit_of_work() as uow:
        assert json_loads(uow.resources.read("Patient", "p-2").content)["gender"] == "female"
        assert json_loads(uow.resources.vread("Patient", "p-2", 1).content)["gender"] == "male"
        with pytest.raises(NotFound):
            uow.resources.vread("Patient", "p-2", 3)


def test_update_identical_content_is_a_no_op(store: Store) -> None:
    with store.unit_of_work() as uow:
        first = uow.resources.create(patient(), id="p-3")
        same, created = uow.resources.update("Patient", "p-3", {**patient(), "id": "p-3"})
        assert (same.version_id, created) == (1, False)
        assert same.content == first.content or json_loads(same.content) == json_loads(first.content)
        assert uow.resources.history("Patient", "p-3").total == 1


def test_update_as_create_and_id_mismatch(store: Store) -> None:
    with store.unit_of_work() as uow:
        stored, created = uow.resources.update("Patient", "new-1", {**patient(), "id": "new-1"})
        assert created and stored.version_id == 1
        with pytest.raises(InvalidInput):
            uow.resources.update("Patient", "new-2", {**patient(), "id": "other"})
        with pytest.raises(InvalidInput):
            uow.resources.update("Patient", "new-2", patient())
        with pytest.raises(VersionConflict):
            uow.resources.update("Patient", "new-3", {**patient(), "id": "new-3"}, if_match=1)


def test_delete_is_soft_and_gone(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.resources.create(patient(), id="p-4")
        with pytest.raises(VersionConflict):
            uow.resources.delete("Patient", "p-4", if_match=7)
        deletion = uow.resources.delete("Patient", "p-4", if_match=1)
        assert deletion is not None and deletion.deleted and deletion.version_id == 2
        assert uow.resources.delete("Patient", "p-4") is None
        assert uow.resources.delete("Patient", "never-was") is None
        uow.commit()
    with store.unit_of_work() as uow:
        with pytest.raises(Gone) as info:
            uow.resources.read("Patient", "p-4")
        assert info.value.version_id == 2
        with pytest.raises(Gone):
            uow.resources.vread("Patient", "p-4", 2)
        assert uow.resources.vread("Patient", "p-4", 1).version_id == 1
        assert uow.resources.read_many([("Patient", "p-4")]) == {}
        back, created = uow.resources.update("Patient", "p-4", {**patient(), "id": "p-4"})
        assert created and back.version_id == 3
        assert uow.resources.read("Patient", "p-4").version_id == 3


def test_read_many(store: Store) -> None:
    with store.unit_of_work() as uow:
        for i in range(5):
            uow.resources.create(patient(mrn=f"M{i}"), id=f"rm-{i}")
        uow.resources.create(observation("Patient/rm-0"), id="rm-0")
        uow.commit()
    with store.unit_of_work() as uow:
        found = uow.resources.read_many([("Patient", "rm-1"), ("Patient", "rm-3"), ("Observation", "rm-0"),
                                         ("Patient", "missing")])
    assert set(found) == {("Patient", "rm-1"), ("Patient", "rm-3"), ("Observation", "rm-0")}
    assert found[("Observation", "rm-0")].resource_type == "Observation"
