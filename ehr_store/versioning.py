"""Version rules shared by the SQL and in-memory repositories (FHIR R4B http §3.1.0).

`VersionedRepository` implements create/read/vread/update/delete once, on top of four
storage primitives a backend provides (`_current`, `_version`, `_insert`, `_replace`).
The rules: server-assigned ids (UUID) unless an id is given; every write validated once;
`meta.versionId`/`meta.lastUpdated` set on the stored JSON; If-Match checked against the
current version; an update equal to the current content (ignoring those two meta
elements) is a no-op, found before validating (the stored version was validated when
written); deletes are soft (a deletion version without content).

May import: orjson, the standard library, `ehr_store.errors`, `ehr_store.model`,
`ehr_store.jsonio`, `ehr_store.validation`.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from ehr_store.errors import Conflict, Gone, InvalidInput, NotFound, VersionConflict
from ehr_store.jsonio import dumps, loads
from ehr_store.model import HistoryMethod, StoredResource
from ehr_store.validation import check_id, check_resource_type, validate_resource

__all__ = ["VersionedRepository", "canonical", "format_instant", "now_utc", "stamp"]

Json = dict[str, Any]


def now_utc() -> datetime:
    """Current time, UTC, truncated to milliseconds (the precision of `meta.lastUpdated`)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_instant(value: datetime) -> str:
    """FHIR `instant` text for a UTC datetime (`2024-05-01T08:00:00.123Z`)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamp(resource: Json, id: str, version_id: int, last_updated: datetime) -> tuple[Json, bytes]:
    """The stored JSON of a version: `resource` with id, meta.versionId, meta.lastUpdated set.

    Returns the document (a shallow copy of `resource`) and its JSON bytes.
    """
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = format_instant(last_updated)
    doc: Json = {"resourceType": resource["resourceType"], "id": id}
    doc.update(resource)
    doc["id"] = id
    doc["meta"] = meta
    return doc, dumps(doc)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(type(value).__name__)


def canonical(resource: Json | bytes) -> bytes:
    """Key-sorted JSON without meta.versionId/lastUpdated: equal bytes mean equal content."""
    doc: Json = loads(resource) if isinstance(resource, bytes) else dict(resource)
    meta = {k: v for k, v in (doc.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        doc["meta"] = meta
    else:
        doc.pop("meta", None)
    return orjson.dumps(doc, default=_default, option=orjson.OPT_SORT_KEYS)


class VersionedRepository(ABC):
    """create/read/vread/update/delete on top of backend primitives (see module docstring)."""

    @abstractmethod
    def _current(self, resource_type: str, id: str, *, for_update: bool) -> StoredResource | None:
        """Current version including deletions (locked for update when asked), or None."""

    @abstractmethod
    def _version(self, resource_type: str, id: str, version_id: int) -> StoredResource | None:
        """One version from history, or None."""

    @abstractmethod
    def _insert(self, version: StoredResource, doc: Json | None) -> bool:
        """Insert the first current row and its history; False when the id already exists.

        `doc` is the stored document as a dict (None for a deletion), for the search index.
        """

    @abstractmethod
    def _replace(self, version: StoredResource, doc: Json | None, previous: int) -> bool:
        """Replace the current row at version `previous` and add history; False if it moved."""

    @abstractmethod
    def read_many(self, references: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredResource]:
        """See `ResourceRepository.read_many`."""

    def _new_version(
        self, resource: Json | None, rtype: str, id: str, version_id: int, method: HistoryMethod
    ) -> tuple[StoredResource, Json | None]:
        at = now_utc()
        doc, content = (None, b"") if resource is None else stamp(resource, id, version_id, at)
        return StoredResource(rtype, id, version_id, at, resource is None, content, method), doc

    def current_versions(self, references: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """See `ResourceRepository.current_versions` (through `read_many` unless a backend
        overrides it)."""
        return {key: version.version_id for key, version in self.read_many(references).items()}

    def prefetch(self, references: Iterable[tuple[str, str]]) -> None:
        """See `ResourceRepository.prefetch` (nothing to do unless a backend overrides it)."""
        del references

    def _fresh(self, resource_type: str, id: str) -> None:
        """Hook: `id` was just assigned by the server (a UUID), so it exists nowhere yet."""
        del resource_type, id

    def create(self, resource: Json, *, id: str | None = None) -> StoredResource:
        """See `ResourceRepository.create` (FHIR R4B http §3.1.0.7)."""
        rtype = validate_resource({k: v for k, v in resource.items() if k != "id"}
                                  if isinstance(resource, dict) else resource)
        if id is None:
            id = str(uuid.uuid4())
            self._fresh(rtype, id)
        else:
            check_id(id)
        version, doc = self._new_version(resource, rtype, id, 1, "POST")
        if not self._insert(version, doc):
            raise Conflict(f"{rtype}/{id} already exists", expression=(f"{rtype}.id",),
                           issue_code="duplicate")
        return version

    def read(self, resource_type: str, id: str) -> StoredResource:
        """See `ResourceRepository.read` (FHIR R4B http §3.1.0.2)."""
        check_resource_type(resource_type)
        current = self._current(resource_type, id, for_update=False)
        if current is None:
            raise NotFound(f"{resource_type}/{id} is not known")
        if current.deleted:
            raise Gone(f"{resource_type}/{id} was deleted", version_id=current.version_id)
        return current

    def vread(self, resource_type: str, id: str, version_id: int) -> StoredResource:
        """See `ResourceRepository.vread` (FHIR R4B http §3.1.0.3)."""
        check_resource_type(resource_type)
        found = self._version(resource_type, id, version_id)
        if found is None:
            raise NotFound(f"{resource_type}/{id}/_history/{version_id} is not known")
        if found.deleted:
            raise Gone(f"{resource_type}/{id} version {version_id} is a deletion", version_id=version_id)
        return found

    def update(
        self,
        resource_type: str,
        id: str,
        resource: Json,
        *,
        if_match: int | None = None,
        method: HistoryMethod = "PUT",
    ) -> tuple[StoredResource, bool]:
        """See `ResourceRepository.update` (FHIR R4B http §3.1.0.4, §3.1.0.5.3 If-Match).

        `method` ("PUT" or "PATCH") is recorded in history.
        """
        check_resource_type(resource_type)
        check_id(id)
        if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
            validate_resource(resource, resource_type=resource_type)  # raises the precise error
        if resource.get("id") != id:
            raise InvalidInput(f"the resource id {resource.get('id')!r} does not match {id!r}",
                               expression=(f"{resource_type}.id",))
        current = self._current(resource_type, id, for_update=True)
        self._check_if_match(resource_type, id, current, if_match)
        if current is not None and not current.deleted and canonical(current.content) == canonical(resource):
            return current, False  # equal to a stored (so validated) version: nothing is written
        validate_resource(resource, resource_type=resource_type)
        if current is None:
            version, doc = self._new_version(resource, resource_type, id, 1, method)
            if not self._insert(version, doc):
                raise VersionConflict(f"{resource_type}/{id} was created concurrently; retry")
            return version, True
        version, doc = self._new_version(resource, resource_type, id, current.version_id + 1, method)
        if not self._replace(version, doc, current.version_id):
            raise VersionConflict(f"{resource_type}/{id} was changed concurrently; retry")
        return version, current.deleted

    def delete(self, resource_type: str, id: str, *, if_match: int | None = None) -> StoredResource | None:
        """See `ResourceRepository.delete` (FHIR R4B http §3.1.0.6)."""
        check_resource_type(resource_type)
        current = self._current(resource_type, id, for_update=True)
        self._check_if_match(resource_type, id, current, if_match)
        if current is None or current.deleted:
            return None
        version, _ = self._new_version(None, resource_type, id, current.version_id + 1, "DELETE")
        if not self._replace(version, None, current.version_id):
            raise VersionConflict(f"{resource_type}/{id} was changed concurrently; retry")
        return version

    @staticmethod
    def _check_if_match(rtype: str, id: str, current: StoredResource | None, if_match: int | None) -> None:
        if if_match is None:
            return
        if current is None:
            raise VersionConflict(f"If-Match W/\"{if_match}\" but {rtype}/{id} does not exist")
        if current.version_id != if_match:
            raise VersionConflict(
                f"If-Match W/\"{if_match}\" but {rtype}/{id} is at version {current.version_id}"
            )
