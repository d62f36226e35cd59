"""Conditional create, update and delete built on search + CRUD (FHIR R4B http §3.1.0.8–3.1.0.10).

`criteria` are search parameters as received (`[("identifier", "urn:x|123")]`); a query
string can be split with `parse_criteria`. Run these inside one unit of work so that the
search and the write see the same data (SQLite write units serialise; see `SqlStore`).

May import: the standard library, `ehr_store.errors`, `ehr_store.model`, `ehr_store.repository`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from ehr_store.errors import InvalidInput, PreconditionFailed
from ehr_store.model import StoredResource
from ehr_store.repository import ResourceRepository, SearchParams

__all__ = ["conditional_create", "conditional_delete", "conditional_update", "parse_criteria"]

Json = dict[str, Any]
_PAGING = {"_count", "_offset", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total"}


def parse_criteria(query: str) -> list[tuple[str, str]]:
    """Split a query string (`identifier=a|b&active=true`, with or without `Type?`) into pairs.

    Raises: InvalidInput (empty criteria).
    """
    if "?" in query:
        query = query.split("?", 1)[1]
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs:
        raise InvalidInput("conditional criteria are empty")
    return pairs


def _matches(
    repo: ResourceRepository, resource_type: str, criteria: SearchParams, limit: int
) -> list[StoredResource]:
    criteria = [(k, v) for k, v in criteria if k.split(":", 1)[0] not in _PAGING]
    if not criteria:
        raise InvalidInput("conditional criteria are empty")
    result = repo.search(resource_type, [*criteria, ("_count", str(limit))], strict=True)
    return result.matches


def conditional_create(
    repo: ResourceRepository, resource: Json, criteria: SearchParams
) -> tuple[StoredResource, bool]:
    """Create unless a resource matches (`If-None-Exist`, FHIR R4B http §3.1.0.8).

    Returns (stored, created): no match → created; one match → (that one, False).
    Raises: PreconditionFailed (several matches), InvalidInput (bad criteria or resource).
    """
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(resource_type, str):
        raise InvalidInput("resourceType is missing", expression=("resourceType",))
    found = _matches(repo, resource_type, criteria, 2)
    if len(found) > 1:
        raise PreconditionFailed(f"If-None-Exist matched more than one {resource_type}")
    if found:
        return found[0], False
    return repo.create(resource), True


def conditional_update(
    repo: ResourceRepository,
    resource_type: str,
    resource: Json,
    criteria: SearchParams,
    if_match: int | None = None,
) -> tuple[StoredResource, bool]:
    """Update the one resource matching `criteria` (FHIR R4B http §3.1.0.9).

    No match: create (with the body's id if it has one, else a server id). One match: update
    it (a body id must equal the match's id). Returns (stored, created).
    Raises: PreconditionFailed (several matches), InvalidInput (id mismatch), VersionConflict.
    """
    found = _matches(repo, resource_type, criteria, 2)
    if len(found) > 1:
        raise PreconditionFailed(f"the conditional update criteria matched more than one {resource_type}")
    body_id = resource.get("id")
    if not found:
        if body_id is not None:
            return repo.update(resource_type, str(body_id), resource, if_match=if_match)
        if resource.get("resourceType") != resource_type:
            raise InvalidInput(f"resourceType must be {resource_type}", expression=("resourceType",))
        return repo.create(resource), True
    match = found[0]
    if body_id is not None and body_id != match.id:
        raise InvalidInput(
            f"the resource id {body_id!r} differs from the matching resource {match.reference}",
            expression=(f"{resource_type}.id",),
        )
    return repo.update(resource_type, match.id, {**resource, "id": match.id}, if_match=if_match)


def conditional_delete(
    repo: ResourceRepository, resource_type: str, criteria: SearchParams, *, multiple: bool = False
) -> list[StoredResource]:
    """Delete what matches `criteria` (FHIR R4B http §3.1.0.10); returns the deletion versions.

    No match: nothing happens (empty list). Several matches without `multiple`: refused.
    Raises: PreconditionFailed (several matches, `multiple` False), InvalidInput (bad criteria).
    """
    found = _matches(repo, resource_type, criteria, 500 if multiple else 2)
    if len(found) > 1 and not multiple:
        raise PreconditionFailed(f"the conditional delete criteria matched more than one {resource_type}")
    deleted: list[StoredResource] = []
    while found:
        for match in found:
            version = repo.delete(resource_type, match.id)
            if version is not None:
                deleted.append(version)
        found = _matches(repo, resource_type, criteria, 500) if multiple and len(found) == 500 else []
    return deleted
