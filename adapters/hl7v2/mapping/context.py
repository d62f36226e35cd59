"""Shared mapping state and result shapes: `MappingContext` (one message, its sender's
settings, field accessors that raise located HL7 errors) and `Mapped` (the resources).

May import: the standard library, `adapters.hl7v2.{er7,errors,datatypes,quantity}`,
`adapters.hl7v2.mapping.codes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
        if table and self.codes is not None:
            cc = self.codes.normalise(cc, self.facility, table)
        return cc

    def components(self, seg: Segment, n: int, repetition: int = 1) -> list[str]:
        """Components (first subcomponent each) of one repetition of field n."""
        reps = seg.repetitions(n)
        return [sub[0] for sub in reps[repetition - 1]] if len(reps) >= repetition else []

    def all_components(self, seg: Segment, n: int) -> list[list[str]]:
        """Components of every repetition of field n (explicit null → no repetitions)."""
        if seg.is_null(n):
            return []
        return [[sub[0] for sub in rep] for rep in seg.repetitions(n)]
