"""Shared mapping state and result shapes: `MappingContext` (one message, its sender's
settings, field accessors that raise located HL7 errors) and `Mapped` (the resources).

May import: the standard library, `adapters.hl7v2.{er7,errors,datatypes,quantity}`,
`adapters.hl7v2.mapping.codes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from adapters.hl7v2 import datatypes as dt
from adapters.hl7v2.er7 import Message, Segment
from adapters.hl7v2.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    ErrLocation,
    Hl7ContentError,
)
from adapters.hl7v2.mapping.codes import CodeTables

Json = dict[str, Any]


class CodeTranslation(Protocol):
    """The terminology service as the mapping sees it (one per message; pure lookups, no I/O
    beyond what the implementation hides): translation of coded elements to standard codes
    and UCUM checks. The ingest service supplies it (`adapters.coding.FeedCoding`)."""

    def translate(self, system: str | None, code: str, display: str | None) -> tuple[str | None, list[Json]]:
        """(system URI for the original coding, or None to keep the mapping's own; standard
        codings to add next to it). `system` is the coding's URI as mapped or a field label
        such as ``HL70001``. Records the code as unmapped when no map covers it."""
        ...

    def ucum(self, unit: str) -> bool:
        """True when `unit` (as sent in OBX-6) is valid UCUM."""
        ...


@dataclass(slots=True)
class MappedResource:
    """One resource to write with update-as-create.

    `merge`: keep top-level elements of the stored version the message did not send
    (HL7 empty = no information), except those in `nulled` (sent as ``""`` = delete);
    `link` arrays are unioned (EMPI links survive demographic updates); elements in
    `defaults` are only used when nothing is stored (e.g. an ORU's Encounter status).
    """

    resource: Json
    merge: bool = False
    nulled: frozenset[str] = frozenset()
    defaults: frozenset[str] = frozenset()

    @property
    def key(self) -> tuple[str, str]:
        return self.resource["resourceType"], self.resource["id"]


@dataclass(slots=True)
class Mapped:
    """The result of mapping one message: resources in write order, plus what the identity
    hooks need (source Patient ids; for A40 the (survivor, merged) pair)."""

    resources: list[MappedResource] = field(default_factory=list)
    source_patients: list[str] = field(default_factory=list)
    merges: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, ErrLocation | None]] = field(default_factory=list)
    coding_log: Any = None
    """The `CodeTranslation`'s unmapped-code log for this message (persisted by the ingest
    service in the write's unit of work); None when mapped without terminology."""

    def add(
        self,
        resource: Json,
        *,
        merge: bool = False,
        nulled: frozenset[str] = frozenset(),
        defaults: frozenset[str] = frozenset(),
    ) -> Json:
        """Append (or replace an earlier one with the same type and id); returns `resource`."""
        item = MappedResource(resource, merge, nulled, defaults)
        for i, existing in enumerate(self.resources):
            if existing.key == item.key:
                self.resources[i] = item
                return resource
        self.resources.append(item)
        return resource


@dataclass(slots=True)
class MappingContext:
    """One message being mapped, with its sender's configuration."""

    message: Message
    facility: str
    control_id: str
    received_at: datetime
    assume_offset: str | None = None
    mrn_system: str | None = None
    codes: CodeTables | None = None
    terminology: CodeTranslation | None = None

    @property
    def message_code(self) -> str:
        msh = self.message.msh
        return f"{msh.get(9, 1)}^{msh.get(9, 2)}"

    @property
    def facility_name(self) -> str:
        return self.message.msh.get(4, 2) or self.facility

    @property
    def source(self) -> str:
        """`meta.source` of every resource from this sender."""
        return f"urn:qyhie:facility:{self.facility}"

    def meta(self) -> Json:
        return {"source": self.source}

    def ts(self, seg: Segment, n: int, component: int = 1) -> str | None:
        """Field n as a FHIR date/dateTime (None when empty). Raises: Hl7ContentError 102."""
        value = seg.get(n, component)
        if not value or value == '""':
            return None
        try:
            return dt.dtm(value, self.assume_offset)
        except ValueError as exc:
            raise Hl7ContentError(DATA_TYPE_ERROR, f"{seg.name}-{n}: {exc}", seg.location(n)) from None

    def instant(self, seg: Segment, n: int, component: int = 1) -> str | None:
        """Field n as a FHIR instant: only when it has seconds and a known offset, else None."""
        value = self.ts(seg, n, component)
        return value if value and "T" in value else None

    def date(self, seg: Segment, n: int) -> str | None:
        """Field n as a FHIR date (None when empty). Raises: Hl7ContentError 102."""
        value = seg.get(n)
        if not value or value == '""':
            return None
        try:
            return dt.dt(value)
        except ValueError as exc:
            raise Hl7ContentError(DATA_TYPE_ERROR, f"{seg.name}-{n}: {exc}", seg.location(n)) from None

    def require(self, seg: Segment, n: int, what: str) -> str:
        """Field n component 1, or Hl7ContentError 101 (required field missing)."""
        value = seg.get(n)
        if not value or value == '""':
            raise Hl7ContentError(
                REQUIRED_FIELD_MISSING, f"{seg.name}-{n} ({what}) is required", seg.location(n)
            )
        return value

    def segment(self, name: str, *, required: bool = True) -> Segment | None:
        """The first `name` segment; Hl7ContentError 100 when required and absent."""
        seg = self.message.first(name)
        if seg is None and required:
            raise Hl7ContentError(
                SEGMENT_SEQUENCE_ERROR, f"{self.message_code} needs a {name} segment", ErrLocation(name, 1)
            )
        return seg

    def concept(self, seg: Segment, n: int, table: str | None = None, repetition: int = 1) -> Json | None:
        """CE/CWE field → CodeableConcept, normalised through the sender's table when given."""
        reps = seg.repetitions(n)
        if len(reps) < repetition:
            return None
        comps = [sub[0] for sub in reps[repetition - 1]]
        cc = dt.codeable_concept(comps, self.facility)
        if self.terminology is not None:
            return self.standardise(cc)
        if table and self.codes is not None:
            cc = self.codes.normalise(cc, self.facility, table)
        return cc

    def standardise(self, cc: Json | None) -> Json | None:
        """`cc` with the standard codings of each sent coding added after the sent ones
        (issue 5: the original is kept, never replaced); the originals get the terminology's
        system URI. Unchanged without a terminology service."""
        if not cc or self.terminology is None:
            return cc
        sent: list[Json] = []
        added: list[Json] = []
        for coding in cc.get("coding", []):
            origin, extra = self.terminology.translate(
                coding.get("system"), str(coding.get("code", "")), coding.get("display")
            )
            sent.append({**coding, "system": origin} if origin else coding)
            added += extra
        seen: set[tuple[Any, Any]] = set()
        codings = []
        for coding in [*sent, *added]:
            key = (coding.get("system"), coding.get("code"))
            if key not in seen:
                seen.add(key)
                codings.append({k: v for k, v in coding.items() if v is not None})
        return {**cc, "coding": codings}

    def table_code(self, code: str, label: str, display: str | None = None) -> Json | None:
        """A plain code from an HL7-table field (PID-8 ``M``/``男``, PV1-2 ``住院``) as a
        CodeableConcept: the code as sent under the table's system, plus its standard
        codings when a terminology service is wired. None when empty."""
        code = code.strip()
        if not code or code == '""':
            return None
        coding: Json = {"system": dt.code_system(label, self.facility), "code": code}
        if display:
            coding["display"] = display
        return self.standardise({"coding": [coding]})

    def table_concept(self, seg: Segment, n: int, label: str) -> Json | None:
        """A CE/CWE field bound to an HL7 table (PID-16 → ``HL70002``, PID-22 → ``HL70189``):
        a code sent without CWE-3 is read as a code of that table (Chinese HIS send ``20^已婚``
        or ``已婚``); with CWE-3 it is an ordinary coded element (`concept`)."""
        comps = self.components(seg, n)
        if not comps or (not dt.c(comps, 1) and not dt.c(comps, 2)):
            return None
        if dt.c(comps, 3):
            return self.concept(seg, n)
        code = dt.c(comps, 1) or dt.c(comps, 2)
        cc = self.table_code(code, label, dt.c(comps, 2) or None)
        if cc is not None and dt.c(comps, 2):
            cc["text"] = dt.c(comps, 2)
        return cc

    def valid_ucum(self, unit: str) -> bool:
        """True when the terminology service says `unit` is UCUM (False without one)."""
        return bool(unit) and self.terminology is not None and self.terminology.ucum(unit)

    def components(self, seg: Segment, n: int, repetition: int = 1) -> list[str]:
        """Components (first subcomponent each) of one repetition of field n."""
        reps = seg.repetitions(n)
        return [sub[0] for sub in reps[repetition - 1]] if len(reps) >= repetition else []

    def all_components(self, seg: Segment, n: int) -> list[list[str]]:
        """Components of every repetition of field n (explicit null → no repetitions)."""
        if seg.is_null(n):
            return []
        return [[sub[0] for sub in rep] for rep in seg.repetitions(n)]
