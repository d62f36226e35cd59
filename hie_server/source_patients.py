"""Source Patients written through the FHIR REST API join the EMPI like HL7-borne ones.

A clinic system that speaks FHIR instead of HL7 v2 creates and updates its Patients through
`POST /fhir/Patient`, `PUT /fhir/Patient/{id}`, PATCH, conditional writes and Bundles. Wrapped
around the unit of work's repository (`linking_unit_of_work`), every such write of a source
Patient (not a golden one) goes through `EmpiService.write_source_patient`: the match is
decided first and the Patient is stored once, carrying its `link refer` to the resident's
golden Patient (a new resident record when nobody matches; a review item for an uncertain
match), exactly as ingestion does. The response is the stored version, link included (FHIR
R4B http §3.1.0.4: the server may add content). Other types pass through untouched.

May import: the standard library, `ehr_store` (public API), `ehr_store.empi`.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from ehr_store import (
    Gone,
    HistoryMethod,
    NotFound,
    ResourceRepository,
    StoredResource,
    UnitOfWork,
    validate_resource,
)
from ehr_store.empi import EmpiService, is_golden

Json = dict[str, Any]


class SourcePatientLinking:
    """A `ResourceRepository` whose Patient writes go through the EMPI (module docstring)."""

    def __init__(self, inner: ResourceRepository, empi: EmpiService) -> None:
        self._inner = inner
        self._empi = empi

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @staticmethod
    def _source(resource: Any) -> bool:
        patient = isinstance(resource, dict) and resource.get("resourceType") == "Patient"
        return patient and not is_golden(resource)

    def create(self, resource: Json, *, id: str | None = None) -> StoredResource:
        """See `ResourceRepository.create`; a source Patient is matched and linked first.
        Raises: InvalidInput (validation), as the store's create."""
        if not self._source(resource):
            return self._inner.create(resource, id=id)
        validate_resource({k: v for k, v in resource.items() if k != "id"}, resource_type="Patient")
        return self._empi.write_source_patient(self._inner, {**resource, "id": id or str(uuid.uuid4())})

    def update(
        self,
        resource_type: str,
        id: str,
        resource: Json,
        *,
        if_match: int | None = None,
        method: HistoryMethod = "PUT",
    ) -> tuple[StoredResource, bool]:
        """See `ResourceRepository.update`; a source Patient keeps (or gets) its resident link and
        is matched again when its identifying features change.
        Raises: InvalidInput, VersionConflict (If-Match stale), as the store's update."""
        if resource_type != "Patient" or not self._source(resource):
            return self._inner.update(resource_type, id, resource, if_match=if_match, method=method)
        validate_resource(resource, resource_type="Patient")
        if resource.get("id") != id:  # the store's own check and message
            return self._inner.update(resource_type, id, resource, if_match=if_match, method=method)
        try:
            before: StoredResource | None = self._inner.read("Patient", id)
        except (NotFound, Gone):  # new, or a deleted Patient brought back
            before = None
        stored = self._empi.write_source_patient(self._inner, resource, if_match=if_match, method=method)
        return stored, before is None


class _LinkingUnitOfWork:
    """A unit of work whose `resources` is `SourcePatientLinking`; the rest is the inner one's."""

    def __init__(self, inner: UnitOfWork, empi: EmpiService) -> None:
        self._inner = inner
        self.resources = SourcePatientLinking(inner.resources, empi)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def linking_unit_of_work(uow: UnitOfWork, empi: EmpiService | None) -> UnitOfWork:
    """`uow` with source Patient writes linked by `empi` (unchanged when `empi` is None)."""
    if empi is None:
        return uow
    return cast(UnitOfWork, _LinkingUnitOfWork(uow, empi))  # a UnitOfWork by its interface
