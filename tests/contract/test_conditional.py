"""Contract: conditional create, update and delete (FHIR R4B http §3.1.0.8–3.1.0.10)."""

from __future__ import annotations

import pytest
from contract_data import patient

from ehr_store import (
    InvalidInput,
    PreconditionFailed,
    Store,
    conditional_create,
    conditional_delete,
    conditional_update,
    json_loads,
    parse_criteria,
)


def test_conditional_create(store: Store) -> None:
    with store.unit_of_work(write=True) as uow:
        first, created = conditional_create(uow.resources, patient(mrn="C-1"), [("identifier", "C-1")])
        again, created_again = conditional_create(uow.resources, patient(mrn="C-1"), [("identifier", "C-1")])
        uow.commit()
    assert created and not created_again and again.id == first.id
    with store.unit_of_work(write=True) as uow:
        uow.resources.create(patient(mrn="C-1"))
        with pytest.raises(PreconditionFailed):
            conditional_create(uow.resources, patient(mrn="C-1"), parse_criteria("Patient?identifier=C-1"))


def test_conditional_update(store: Store) -> None:
    with store.unit_of_work(write=True) as uow:
        criteria = [("identifier", "U-1")]
        made, created = conditional_update(uow.resources, "Patient", patient(mrn="U-1"), criteria)
        assert created and made.version_id == 1
        female = {**patient(mrn="U-1"), "gender": "female"}
        changed, created = conditional_update(uow.resources, "Patient", female, criteria, if_match=1)
        assert not created and changed.id == made.id and changed.version_id == 2
        assert json_loads(changed.content)["gender"] == "female"
        with pytest.raises(InvalidInput):
            conditional_update(uow.resources, "Patient", {**patient(mrn="U-1"), "id": "other"},
                               [("identifier", "U-1")])
        uow.resources.create(patient(mrn="U-1"))
        with pytest.raises(PreconditionFailed):
            conditional_update(uow.resources, "Patient", patient(mrn="U-1"), [("identifier", "U-1")])
        with_id, created = conditional_update(uow.resources, "Patient", {**patient(mrn="U-9"), "id": "u9"},
                                              [("identifier", "U-9")])
        assert created and with_id.id == "u9"


def test_conditional_delete(store: Store) -> None:
    with store.unit_of_work(write=True) as uow:
        for n in range(3):
            uow.resources.create(patient(mrn="D-many"), id=f"dm{n}")
        uow.resources.create(patient(mrn="D-one"), id="d1")
        assert conditional_delete(uow.resources, "Patient", [("identifier", "nothing")]) == []
        gone = conditional_delete(uow.resources, "Patient", [("identifier", "D-one")])
        assert [g.id for g in gone] == ["d1"] and gone[0].deleted
        with pytest.raises(PreconditionFailed):
            conditional_delete(uow.resources, "Patient", [("identifier", "D-many")])
        many = conditional_delete(uow.resources, "Patient", [("identifier", "D-many")], multiple=True)
        assert sorted(g.id for g in many) == ["dm0", "dm1", "dm2"]
        assert uow.resources.search("Patient", [("identifier", "D-many")]).matches == []
        with pytest.raises(InvalidInput):
            conditional_delete(uow.resources, "Patient", [])
