"""Guard against deleting a resident record (golden Patient) through the generic FHIR API.

A golden Patient is owned by the EMPI: its source Patients point at it (`link refer`) and
the next message about one of them would bring it back. It leaves only through
`Patient/{id}/$unlink` (its sources get records of their own) or `Patient/$merge` (into
another resident record), which keep the link history. The REST layer calls these checks
where deletes are decided (instance delete, conditional delete, Bundle DELETE entries).

May import: the standard library, `ehr_store` (errors, model, repository, jsonio), `ehr_store.empi.golden`.
"""

from __future__ import annotations

from collections.abc import Iterable

from ehr_store.empi.golden import is_golden
from ehr_store.errors import Conflict, Gone, NotFound
from ehr_store.jsonio import loads_resource
from ehr_store.model import StoredResource
from ehr_store.repository import ResourceRepository


def _refusal(patient_id: str) -> Conflict:
    return Conflict(
        f"Patient/{patient_id} is a resident record (golden Patient) kept by the EMPI and cannot be "
        "deleted: its source Patients still refer to it. Use Patient/$merge to fold it into another "
        f"resident record, or Patient/{patient_id}/$unlink on its sources",
        expression=("Patient",),
    )


def refuse_golden_delete(repo: ResourceRepository, resource_type: str, id: str) -> None:
    """Call before deleting `resource_type/id`: a golden Patient may not be deleted.

    Deleting a missing or already deleted resource is left to the caller (FHIR R4B http
    §3.1.0.6: 204 either way). Raises: Conflict (409, OperationOutcome code `conflict`).
    """
    if resource_type != "Patient":
        return
    try:
        current = repo.read("Patient", id)
    except (NotFound, Gone):
        return
    if not current.deleted and is_golden(loads_resource(current.content)):
        raise _refusal(id)


def refuse_golden_deleted(repo: ResourceRepository, deleted: Iterable[StoredResource]) -> None:
    """Call after a conditional delete, inside the same unit of work: if one of the deleted
    versions was a golden Patient, raise so the unit of work rolls back (nothing is deleted).

    Raises: Conflict (409).
    """
    for version in deleted:
        if version.resource_type != "Patient" or version.version_id < 2:
            continue
        prior = repo.vread("Patient", version.id, version.version_id - 1)
        if not prior.deleted and is_golden(loads_resource(prior.content)):
            raise _refusal(version.id)
