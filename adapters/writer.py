"""Writing mapped resources through a unit of work (update-as-create with deterministic ids)
and calling the identity hooks — the only place ingestion touches the repository.

Merge rule for resources mapped with `merge=True` (source Patients): top-level elements of
the stored version that the message did not send are kept (HL7 v2.5 §2.5.3: an empty field
means "no information"), except those sent as ``""`` (delete); `link` and `identifier`
arrays are unioned (EMPI links and older identifiers survive demographic updates).

May import: the standard library, orjson, `ehr_store` (public API), `adapters.hl7v2.mapping`,
`adapters.identity`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from decimal import Decimal
from threading import Lock
from typing import Any

import orjson

from adapters.hl7v2.mapping import Mapped, MappedResource
from adapters.identity import IdentityHooks
from ehr_store import Gone, NotFound, ResourceRepository, StoredResource, json_loads

Json = dict[str, Any]
_NEVER_KEPT = {"resourceType", "id", "meta", "text"}


def _link_key(x: Json) -> object:
    return x.get("other", {}).get("reference")


def _identifier_key(x: Json) -> object:
    return (x.get("system"), x.get("value"))


_UNIONED: dict[str, Callable[[Json], object]] = {"link": _link_key, "identifier": _identifier_key}


def merge_resource(
    stored: Json, new: Json, nulled: frozenset[str], defaults: frozenset[str] = frozenset()
) -> Json:
    """`new` completed with what `stored` has and the message left empty (see module doc)."""
    out = dict(new)
    for key, value in stored.items():
        if key in _NEVER_KEPT or key in nulled:
            continue
        if key not in out or key in defaults:
            out[key] = value
        elif key in _UNIONED and isinstance(value, list):
            keyf = _UNIONED[key]
            seen = {keyf(x) for x in out[key]}
            out[key] = list(out[key]) + [x for x in value if keyf(x) not in seen]
    return out


def _prepare(repo: ResourceRepository, item: MappedResource) -> Json:
    if not item.merge:
        return item.resource
    rtype, rid = item.key
    try:
        current = repo.read(rtype, rid)
    except (NotFound, Gone):
        return item.resource
    return merge_resource(json_loads(current.content), item.resource, item.nulled, item.defaults)


def write_mapped(
    repo: ResourceRepository,
    mapped: Mapped,
    hooks: IdentityHooks | None = None,
    skip: frozenset[tuple[str, str]] = frozenset(),
) -> list[StoredResource]:
    """Write every mapped resource (`repo.update`, update-as-create), then call the identity
    hooks for the source Patients and merges. Returns the stored versions in write order.

    Hooks that offer `write_source_patient` (see `adapters.identity.SourcePatientWriter`) write
    the source Patients themselves (one version with the EMPI link, not two); the others get
    `on_source_patient` after the writes. A40's merged Patient always goes through `on_merge`.
    `skip`: keys of resources known to be stored unchanged (see `ReferenceCache`); their
    identity hook is not called again.
    Raises: whatever the repository raises (InvalidInput/Unprocessable for resources that do
    not validate, Unavailable, Conflict); the caller rolls the unit of work back.
    """
    stored: dict[tuple[str, str], StoredResource] = {}
    merged_ids = {old for _survivor, old in mapped.merges}
    write_source: Callable[[ResourceRepository, Json], StoredResource] | None = getattr(
        hooks, "write_source_patient", None
    )
    own = {("Patient", p) for p in mapped.source_patients if p not in merged_ids} if write_source else set()
    for item in mapped.resources:
        if item.key in skip:
            continue
        if write_source is not None and item.key in own:
            stored[item.key] = write_source(repo, _prepare(repo, item))
            continue
        version, _created = repo.update(item.key[0], item.key[1], _prepare(repo, item))
        stored[item.key] = version
    if hooks is not None:
        for pid in mapped.source_patients:
            key = ("Patient", pid)
            if pid not in merged_ids and key not in own and key in stored:  # skipped: unchanged, hook ran
                hooks.on_source_patient(repo, stored[key])
        for survivor, old in mapped.merges:
            hooks.on_merge(repo, repo.read("Patient", survivor), repo.read("Patient", old))
    return list(stored.values())


def _json_number(value: object) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"not JSON: {type(value).__name__}")


class ReferenceCache:
    """What this process last committed for Organization, Practitioner, source Patient and
    Encounter: per resource, the digest of the resource as mapped (before merging) and the
    version that commit left current. A resource mapped identically again is not rewritten by
    every message (a rewrite costs a read, a validation, a compare and, for a Patient, the
    identity hook; about half the Patients in a feed recur unchanged in later ORU/ORM/VXU
    messages) - but only while that version is still the current one: a write by anyone else
    (another MLLP process, the FHIR API, the EMPI) makes the next message that maps it write it
    again (`fresh` is given the current version ids). Bounded LRU; thread-safe."""

    TYPES = frozenset({"Organization", "Practitioner", "Patient", "Encounter"})

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._digests: OrderedDict[tuple[str, str], tuple[bytes, int]] = OrderedDict()
        self._lock = Lock()

    @staticmethod
    def _digest(resource: Json) -> bytes:
        # canonical JSON (keys sorted at every level, decimals as written): 1 us, repr was 8
        text = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS, default=_json_number)
        return hashlib.blake2b(text, digest_size=16).digest()

    def candidates(self, mapped: Mapped) -> dict[tuple[str, str], int]:
        """`mapped`'s reference resources identical to what this process last committed, with
        the version id that commit left (check it is still current before skipping: `fresh`)."""
        out: dict[tuple[str, str], int] = {}
        with self._lock:
            for item in mapped.resources:
                if item.key[0] in self.TYPES:
                    known = self._digests.get(item.key)
                    if known is not None and known[0] == self._digest(item.resource):
                        out[item.key] = known[1]
        return out

    @staticmethod
    def fresh(
        candidates: dict[tuple[str, str], int], current: Mapping[tuple[str, str], int]
    ) -> frozenset[tuple[str, str]]:
        """Keys of `candidates` whose remembered version is still the current one (`current`:
        version ids as `ResourceRepository.current_versions` gives them)."""
        return frozenset(k for k, v in candidates.items() if current.get(k) == v)

    def remember(self, mapped: Mapped, versions: Mapping[tuple[str, str], int]) -> None:
        """Record `mapped`'s reference resources after their unit of work committed:
        `versions` are the version ids the unit left current for the ones it wrote; one it
        skipped keeps the version remembered before."""
        with self._lock:
            for item in mapped.resources:
                if item.key[0] not in self.TYPES:
                    continue
                version = versions.get(item.key)
                if version is None:
                    known = self._digests.get(item.key)
                    if known is None:
                        continue
                    version = known[1]
                self._digests[item.key] = (self._digest(item.resource), version)
                self._digests.move_to_end(item.key)
            while len(self._digests) > self._size:
                self._digests.popitem(last=False)
