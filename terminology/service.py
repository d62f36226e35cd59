"""`TerminologyService`: the terminology index over a `Store`, loading content, remapping.

Holds one `TerminologyIndex` built from the stored CodeSystem, ValueSet and ConceptMap
resources; at most every `TerminologySettings.check_seconds` it compares the newest stored
version of those types with the one it was built from and rebuilds when they differ (so a
ConceptMap edited over REST or by `hie terminology load` in another process is picked up);
`invalidate()` forces a rebuild.

The service is also the store's resolver of the `:in`/`:not-in`/`:below`/`:above` token
modifiers of resource search: built on a store, it attaches `code_set` to it
(`ehr_store.use_code_set_resolver`); the store materialises the sets (no SQL `IN` list).

May import: the standard library, pydantic, `ehr_store` (public API), `terminology.*`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ehr_store import (
    CodeSet,
    Gone,
    NotFound,
    NotSupported,
    ResourceRepository,
    Store,
    make_code_set,
    use_code_set_resolver,
)
from terminology import content
from terminology.canonical import check_sender, conceptmap_url, normalize_system
from terminology.conceptmap import conceptmap_from_rows, rows_from_conceptmap, rows_from_csv
from terminology.expand import codes_above, codes_below, valueset_codes
from terminology.index import TerminologyIndex
from terminology.ingest import LOCAL_PREFIX, Translator, standard_codings
from terminology.unmapped import (
    ThrottledPersister,
    UnmappedCode,
    UnmappedLog,
    current_resources,
    record_id,
    stored_unmapped,
)

Json = dict[str, Any]
TERMINOLOGY_TYPES = ("CodeSystem", "ValueSet", "ConceptMap")
REMAP_TYPES = (
    "Observation",
    "DiagnosticReport",
    "Condition",
    "Encounter",
    "Patient",
    "Immunization",
    "Procedure",
    "ServiceRequest",
    "AllergyIntolerance",
    "MedicationRequest",
    "DocumentReference",
    "Appointment",
    "ChargeItem",
    "RelatedPerson",
    "Coverage",
)
"""Types whose coded elements the HL7 v2 mapping fills from feeds (ORU, ADT, ORM, VXU, MDM,
SIU, DFT): `remap` looks at all of them."""


class TerminologySettings(BaseModel):
    """Terminology settings section (`HIE_TERMINOLOGY__CHECK_SECONDS`)."""

    model_config = ConfigDict(frozen=True)

    check_seconds: float = Field(
        default=5.0, ge=0, description="How often to look for changed terminology resources in the store"
    )
    unmapped_flush_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Ingestion writes an unmapped code's count at most this often (its first "
        "occurrence at once); 0 writes every batch (terminology.unmapped.ThrottledPersister)",
    )


@dataclass(frozen=True, slots=True)
class LoadReport:
    """Resources written by a load: created, updated (new version) and unchanged."""

    created: list[str]
    updated: list[str]
    unchanged: list[str]


class TerminologyService:
    """Terminology index and maintenance over a store (thread-safe)."""

    def __init__(self, store: Store, settings: TerminologySettings | None = None) -> None:
        self._store = store
        self._settings = settings or TerminologySettings()
        self._index: TerminologyIndex | None = None
        self._unmapped = ThrottledPersister(self._settings.unmapped_flush_seconds)
        self._marker: tuple[tuple[str, int, str], ...] = ()
        self._checked = 0.0
        self._lock = threading.Lock()
        self._code_sets: dict[tuple[str, str | None, str], CodeSet] = {}
        self._code_sets_of: TerminologyIndex | None = None
        with contextlib.suppress(NotSupported):  # a store without code-set search (a test double)
            use_code_set_resolver(store, self.code_set)

    @property
    def settings(self) -> TerminologySettings:
        """This service's settings section."""
        return self._settings

    def index(self) -> TerminologyIndex:
        """The current index: built from the store on first use, after `invalidate()`, and
        when a check (at most every `check_seconds`) finds a newer terminology resource
        version (a ConceptMap edited over REST, say)."""
        with self._lock:
            now = time.monotonic()
            if self._index is not None and now - self._checked < self._settings.check_seconds:
                return self._index
            with self._store.unit_of_work() as uow:
                marker = _newest_versions(uow.resources)
                if self._index is None or marker != self._marker:
                    docs = [d for t in TERMINOLOGY_TYPES for d in current_resources(uow.resources, t)]
                    self._index = TerminologyIndex.from_resources(docs)
                    self._marker = marker
            self._checked = now
            return self._index

    def invalidate(self) -> None:
        """Forget the index; the next use rebuilds it from the store."""
        with self._lock:
            self._index = None

    def translator(self, log: UnmappedLog | None = None) -> Translator:
        """A `Translator` for one message or batch (its own in-memory unmapped log by default)."""
        return Translator(self.index(), log)

    def load_content(self, senders: Iterable[str] | None = None) -> LoadReport:
        """Store the shipped content (FHIR `update` by id: unchanged resources keep their
        version). A sender's ConceptMap is written only when the store has none: once there,
        it belongs to the administrators (`load --conceptmap`) and is kept. `senders` limits
        the sender ConceptMaps (default: all shipped).
        Raises: domain errors of the store (nothing is written then).
        """
        wanted = set(senders) if senders is not None else None
        docs = [*content.codesystems(), *content.valuesets(), content.notifiable_conceptmap()]
        maps = [
            content.sender_conceptmap(s) for s in content.shipped_senders() if wanted is None or s in wanted
        ]
        return self._write(docs, keep_existing=maps)

    def load_conceptmap_csv(self, sender: str, text: str) -> tuple[Json, bool]:
        """Store the sender's ConceptMap built from mapping CSV text; bump its version when
        the mappings changed (the store keeps earlier versions as history).
        Returns (ConceptMap, changed). Raises: ValueError (bad CSV or sender).
        """
        check_sender(sender)
        rows = rows_from_csv(text)
        rid = f"local-{sender}"
        with self._store.unit_of_work(write=True) as uow:
            try:
                old: Json | None = uow.resources.read("ConceptMap", rid).as_dict()
            except NotFound:
                old = None
            date = datetime.now(UTC).date().isoformat()
            version = "1"
            if old is not None:
                candidate = conceptmap_from_rows(sender, rows, version=old.get("version", "0"), date=date)
                if _same_rows(rows_from_conceptmap(candidate), rows_from_conceptmap(old)):
                    return old, False
                version = (
                    str(int(old.get("version", "0")) + 1) if str(old.get("version", "0")).isdigit() else "1"
                )
            resource = conceptmap_from_rows(sender, rows, version=version, date=date)
            uow.resources.update("ConceptMap", rid, resource)
            uow.commit()
        self.invalidate()
        return resource, True

    def _write(self, docs: list[Json], keep_existing: list[Json]) -> LoadReport:
        report = LoadReport([], [], [])
        with self._store.unit_of_work(write=True) as uow:
            for doc in [*docs, *keep_existing]:
                ref = f"{doc['resourceType']}/{doc['id']}"
                try:
                    before: int | None = uow.resources.read(doc["resourceType"], doc["id"]).version_id
                except (NotFound, Gone):
                    before = None
                if before is not None and doc in keep_existing:
                    report.unchanged.append(ref)
                    continue
                stored, created = uow.resources.update(doc["resourceType"], doc["id"], doc)
                if created:
                    report.created.append(ref)
                elif stored.version_id == before:
                    report.unchanged.append(ref)
                else:
                    report.updated.append(ref)
            uow.commit()
        self.invalidate()
        return report

    def persist_unmapped(self, repo: ResourceRepository, log: UnmappedLog) -> int:
        """Merge a translator's unmapped codes into the store within the caller's unit of work:
        new codes at once, counts at most every `unmapped_flush_seconds` per code (see
        `terminology.unmapped.ThrottledPersister`). Returns records written."""
        return self._unmapped.persist(repo, log)

    def unmapped_unit(self) -> AbstractContextManager[object]:
        """Enter with the unit of work whose `persist_unmapped` calls it covers, `uow.commit()`
        being the last statement inside: `with store.unit_of_work(write=True) as uow,
        service.unmapped_unit():`. A normal exit confirms the unit committed; an exception
        (the unit rolled back) puts back the earlier batches' counts it carried and makes its
        codes due at once, so nothing committed is lost (`ThrottledPersister.unit`)."""
        return self._unmapped.unit()

    def flush_unmapped(self) -> int:
        """Write the unmapped-code counts still held in memory (on shutdown, or before a
        report that must be exact). Returns records written. Raises: the store's errors."""
        if not self._unmapped.pending:
            return 0
        with self._store.unit_of_work(write=True) as uow, self._unmapped.unit():
            written = self._unmapped.flush(uow.resources)
            uow.commit()
        return written

    def unmapped(self, sender: str | None = None) -> list[UnmappedCode]:
        """Stored unmapped codes (of one sender, or all), most frequent first; codes that a
        map now covers are left out."""
        index = self.index()
        self.flush_unmapped()  # counts held in memory by this process first
        with self._store.unit_of_work() as uow:
            records = stored_unmapped(uow.resources, sender)
        return [r for r in records if not standard_codings(index, r.sender, r.system, r.code)[1]]

    def remap(self, sender: str, resource_types: Iterable[str] = REMAP_TYPES) -> list[str]:
        """Add standard codings, by the current maps, to stored resources holding the sender's
        local codes (never removing a coding); drop the unmapped records now mapped.
        Returns the references updated (one transaction). Raises: ValueError (bad sender).
        """
        prefix = f"{LOCAL_PREFIX}{check_sender(sender)}/"
        index = self.index()
        changed: list[str] = []
        with self._store.unit_of_work(write=True) as uow:
            for rtype in resource_types:
                for doc in list(current_resources(uow.resources, rtype)):
                    if _add_codings(doc, index, sender, prefix):
                        uow.resources.update(rtype, doc["id"], _strip_meta(doc))
                        changed.append(f"{rtype}/{doc['id']}")
            for record in stored_unmapped(uow.resources, sender):
                if standard_codings(index, sender, record.system, record.code)[1]:
                    uow.resources.delete("Basic", record_id(record.sender, record.system, record.code))
            uow.commit()
        return changed

    def valueset_codes(self, url: str) -> frozenset[tuple[str, str]]:
        """(system, code) pairs of a value set: the resolver for `:in`/`:not-in` in resource
        search (pass this bound method to the search layer). Raises: NotFound, TooCostly."""
        return valueset_codes(self.index(), url)

    def codes_below(self, system: str, code: str) -> frozenset[str]:
        """A code and its descendants: the resolver for `:below` on hierarchical systems (ICD-10)."""
        return codes_below(self.index(), system, code)

    def code_set(self, kind: str, system: str | None, value: str) -> CodeSet:
        """Resolver of the code-set token modifiers (FHIR R4B search §3.1.1.5.5), cached per
        index: kind "in" → the expansion of ValueSet `value` (`url` or `url|version`);
        "below"/"above" → `value` and its descendants/ancestors in `system` (ICD-10).
        Raises: NotFound (unknown value set or code system), NotSupported, TooCostly.
        """
        index = self.index()
        key = (kind, system, value)
        with self._lock:
            if self._code_sets_of is not index:
                self._code_sets, self._code_sets_of = {}, index
            found = self._code_sets.get(key)
        if found is not None:
            return found
        if kind == "in":
            url, _, version = value.partition("|")
            pairs: Iterable[tuple[str, str]] = valueset_codes(index, url, version or None)
        elif system is not None and kind in ("below", "above"):
            near = codes_below if kind == "below" else codes_above
            pairs = ((system, code) for code in near(index, system, value))
        else:
            raise NotSupported(f"code set kind {kind!r} is not supported")
        found = make_code_set(f"{kind}:{system or ''}|{value}", pairs)
        with self._lock:
            if self._code_sets_of is index:
                self._code_sets[key] = found
        return found

    def conceptmap_url(self, sender: str) -> str:
        """Canonical URL of a sender's local-code ConceptMap."""
        return conceptmap_url(sender)


def _newest_versions(repo: ResourceRepository) -> tuple[tuple[str, int, str], ...]:
    """(id, version, lastUpdated) of the newest version of each terminology type (type history)."""
    marker = []
    for rtype in TERMINOLOGY_TYPES:
        newest = repo.history(rtype, count=1).entries
        if newest:
            marker.append((newest[0].id, newest[0].version_id, newest[0].last_updated.isoformat()))
    return tuple(marker)


def _same_rows(a: list[dict[str, str]], b: list[dict[str, str]]) -> bool:
    def key(rows: list[dict[str, str]]) -> list[tuple[str, ...]]:
        return sorted(tuple(r.get(c, "") for c in sorted(r)) for r in rows)

    return key(a) == key(b)


def _strip_meta(doc: Json) -> Json:
    meta = doc.get("meta")
    if isinstance(meta, dict):
        meta.pop("versionId", None)
        meta.pop("lastUpdated", None)
        if not meta:
            doc.pop("meta")
    return doc


def _add_codings(node: Any, index: TerminologyIndex, sender: str, prefix: str) -> bool:
    """Walk a resource; next to each local coding of the sender add its standard codings."""
    changed = False
    if isinstance(node, dict):
        codings = node.get("coding")
        if isinstance(codings, list):
            present = {(c.get("system"), c.get("code")) for c in codings if isinstance(c, dict)}
            for coding in list(codings):
                if not isinstance(coding, dict) or not coding.get("code"):
                    continue
                system = normalize_system(sender, str(coding.get("system", "")))
                if not system.startswith(prefix):
                    continue
                for extra in standard_codings(index, sender, system, str(coding["code"]))[0]:
                    if (extra["system"], extra["code"]) not in present:
                        codings.append(extra)
                        present.add((extra["system"], extra["code"]))
                        changed = True
        for value in node.values():
            changed |= _add_codings(value, index, sender, prefix)
    elif isinstance(node, list):
        for value in node:
            changed |= _add_codings(value, index, sender, prefix)
    return changed


def unmapped_unit(service: TerminologyService | None) -> AbstractContextManager[object]:
    """`service.unmapped_unit()`, or a no-op without a terminology service (ingestion without
    terminology): `with store.unit_of_work(write=True) as uow, unmapped_unit(service):`."""
    return contextlib.nullcontext() if service is None else service.unmapped_unit()
