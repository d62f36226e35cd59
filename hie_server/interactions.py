"""FHIR write interactions on a unit of work, shared by the REST routes and Bundle processing.

Each function takes the repository, does one interaction (FHIR R4B http §3.1.0: create,
conditional create, update, conditional update, patch, delete, conditional delete) and
returns an `Outcome` (the version written or found, HTTP status). No HTTP objects here.

May import: jsonpatch, `ehr_store`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonpatch

from ehr_store import (
    InvalidInput,
    ResourceRepository,
    SearchParams,
    StoredResource,
    Unprocessable,
    json_loads,
)
from ehr_store import conditional_create as store_conditional_create
from ehr_store import conditional_delete as store_conditional_delete
from ehr_store import conditional_update as store_conditional_update
from ehr_store.empi import refuse_golden_delete, refuse_golden_deleted

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of a write: the version (None after deleting nothing) and the HTTP status."""

    stored: StoredResource | None
    status: int


def find_matches(
    repo: ResourceRepository, resource_type: str, criteria: SearchParams
) -> list[StoredResource]:
    """Up to two matches of conditional criteria (strict: an unknown parameter is an error,
    never a match-everything). FHIR R4B http §3.1.0.8 conditional interactions.

    Raises: InvalidInput (bad or unknown parameter, empty criteria).
    """
    if not criteria:
        raise InvalidInput("conditional criteria are empty")
    result = repo.search(resource_type, [*criteria, ("_count", "2")], strict=True)
    return result.matches


def create(repo: ResourceRepository, resource: Json, *, if_none_exist: SearchParams | None = None) -> Outcome:
    """Create (server-assigned id; any id in the body is ignored), or conditional create.

    Conditional: no match -> create (201); one -> that resource (200); several -> 412.
    Raises: InvalidInput, Unprocessable (validation), PreconditionFailed.
    """
    if if_none_exist is not None:
        stored, created = store_conditional_create(repo, resource, if_none_exist)
        return Outcome(stored, 201 if created else 200)
    return Outcome(repo.create(resource), 201)


def update(
    repo: ResourceRepository, resource_type: str, id: str, resource: Json, *, if_match: int | None = None
) -> Outcome:
    """Update or create-on-update `resource_type/id` (201 when created, else 200).

    Raises: InvalidInput (no id or id differs from the URL), VersionConflict (412), validation errors.
    """
    body_id = resource.get("id")
    if body_id is None:
        raise InvalidInput("an update must carry the resource id in the body", expression=("id",))
    if body_id != id:
        raise InvalidInput(f"body id {body_id!r} does not match the URL id {id!r}", expression=("id",))
    stored, created = repo.update(resource_type, id, resource, if_match=if_match)
    return Outcome(stored, 201 if created else 200)


def conditional_update(
    repo: ResourceRepository,
    resource_type: str,
    criteria: SearchParams,
    resource: Json,
    *,
    if_match: int | None = None,
) -> Outcome:
    """`PUT Type?criteria`: no match -> create (with the body's id if any); one -> update it;
    several -> 412. Raises: InvalidInput (body id names another resource), PreconditionFailed.
    """
    stored, created = store_conditional_update(repo, resource_type, resource, criteria, if_match)
    return Outcome(stored, 201 if created else 200)


def patch(
    repo: ResourceRepository, resource_type: str, id: str, operations: Any, *, if_match: int | None = None
) -> Outcome:
    """Apply a JSON Patch (RFC 6902) to the current version (FHIR R4B http §3.1.0.7); the new
    version is recorded in history as a PATCH (http §3.1.0.4.1).

    Raises: NotFound/Gone, InvalidInput (not a patch document; it changes id or resourceType),
    Unprocessable (a `test` fails or a path does not exist), VersionConflict.
    """
    if not isinstance(operations, list):
        raise InvalidInput("a JSON Patch document is a JSON array of operations")
    current = repo.read(resource_type, id)
    document = json_loads(current.content)
    try:
        patched = jsonpatch.JsonPatch(operations).apply(document)
    except jsonpatch.InvalidJsonPatch as exc:
        raise InvalidInput(f"invalid JSON Patch: {exc}") from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise Unprocessable(f"JSON Patch could not be applied: {exc}") from None
    if (
        not isinstance(patched, dict)
        or patched.get("resourceType") != resource_type
        or patched.get("id") != id
    ):
        raise InvalidInput("a patch may not change resourceType or id")
    version = if_match if if_match is not None else current.version_id
    stored, _ = repo.update(resource_type, id, patched, if_match=version, method="PATCH")
    return Outcome(stored, 200)


def delete(repo: ResourceRepository, resource_type: str, id: str, *, if_match: int | None = None) -> Outcome:
    """Soft delete (204; deleting nothing is also 204, FHIR R4B http §3.1.0.6).
    Raises: Conflict (a golden Patient: use $unlink/$merge)."""
    refuse_golden_delete(repo, resource_type, id)
    return Outcome(repo.delete(resource_type, id, if_match=if_match), 204)


def conditional_delete(repo: ResourceRepository, resource_type: str, criteria: SearchParams) -> Outcome:
    """`DELETE Type?criteria` (single mode): none -> 204; one -> delete it; several -> 412."""
    deleted = store_conditional_delete(repo, resource_type, criteria)
    refuse_golden_deleted(repo, deleted)  # raises before the unit of work commits
    return Outcome(deleted[0] if deleted else None, 204)
