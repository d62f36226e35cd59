"""Kick-off parameters of a FHIR Bulk Data export, checked and kept as an `ExportRequest`.

Bulk Data Access v2.0 §"Query Parameters": `_outputFormat` (application/fhir+ndjson,
application/ndjson, ndjson), `_since` (instant), `_type` (comma-separated, repeatable),
`_typeFilter` (`Type?search`, repeatable; several for one type are OR-ed). Local:
`outputCompression=gzip` writes gzip files (served with `Content-Encoding: gzip`).
Not supported (400): `_elements`, `includeAssociatedData`, `patient`, `_typeFilter` chains.

May import: the standard library, `ehr_store`, `hie_server.auth` (compartment data).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

from ehr_store import InvalidInput, NotSupported, ResourceMatcher, StoreSettings, check_resource_type
from hie_server.auth.compartment import in_patient_compartment

Level = Literal["system", "patient", "group"]
NDJSON_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
UNSUPPORTED = ("_elements", "includeAssociatedData", "patient", "_typeFilter:", "organizeOutputBy")
EXCLUDED_BY_DEFAULT = frozenset({"AuditEvent"})
_FILTER_SPLIT = re.compile(r",(?=[A-Z][A-Za-z]+\?)")


@dataclass(frozen=True)
class ExportRequest:
    """A checked kick-off: level (and Group id), resource types, `_since`, type filters."""

    level: Level
    types: tuple[str, ...]
    since: datetime | None = None
    group_id: str | None = None
    type_filters: dict[str, list[list[tuple[str, str]]]] = field(default_factory=dict)
    compress: bool = False
    url: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (kept in the job record)."""
        return {
            "level": self.level,
            "types": list(self.types),
            "group_id": self.group_id,
            "since": self.since.isoformat() if self.since else None,
            "compress": self.compress,
            "type_filters": {t: [list(map(list, q)) for q in qs] for t, qs in self.type_filters.items()},
            "url": self.url,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportRequest:
        """Inverse of `to_json`."""
        return cls(
            level=data["level"],
            types=tuple(data["types"]),
            group_id=data.get("group_id"),
            since=datetime.fromisoformat(data["since"]) if data.get("since") else None,
            compress=bool(data.get("compress")),
            url=data.get("url", ""),
            type_filters={t: [[(k, v) for k, v in q] for q in qs] for t, qs in data["type_filters"].items()},
        )


def parse_instant(value: str, name: str) -> datetime:
    """A FHIR instant (with offset; `Z` allowed). Raises: InvalidInput."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name}={value!r} is not a FHIR instant", expression=(name,)) from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{name} must carry a time zone offset", expression=(name,))
    return moment.astimezone(UTC)


def _types(values: Sequence[str], level: Level, known: Sequence[str]) -> tuple[str, ...]:
    wanted = [t.strip() for v in values for t in v.split(",") if t.strip()]
    for rtype in wanted:
        check_resource_type(rtype)
        if level != "system" and not in_patient_compartment(rtype):
            raise InvalidInput(f"_type {rtype} is not in the Patient compartment", expression=("_type",))
    if wanted:
        return tuple(dict.fromkeys(wanted))
    pool = [t for t in known if t not in EXCLUDED_BY_DEFAULT]
    return tuple(t for t in pool if level == "system" or in_patient_compartment(t))


def _type_filters(values: Sequence[str], settings: StoreSettings) -> dict[str, list[list[tuple[str, str]]]]:
    filters: dict[str, list[list[tuple[str, str]]]] = {}
    for value in values:
        for part in _FILTER_SPLIT.split(value):
            rtype, sep, query = unquote(part).partition("?")
            if not sep or not query:
                raise InvalidInput(f"_typeFilter {part!r} is not Type?search", expression=("_typeFilter",))
            check_resource_type(rtype)
            pairs = parse_qsl(query, keep_blank_values=True)
            ResourceMatcher(rtype, pairs, settings)  # raises for an unknown parameter or a bad value
            filters.setdefault(rtype, []).append(pairs)
    return filters


def parse_kickoff(
    params: Sequence[tuple[str, str]],
    level: Level,
    known_types: Sequence[str],
    settings: StoreSettings,
    *,
    group_id: str | None = None,
    url: str = "",
) -> ExportRequest:
    """Check the kick-off parameters (see module docstring).

    Raises: InvalidInput (400: bad `_outputFormat`, `_since`, `_type`, `_typeFilter`),
    NotSupported (a parameter this server does not implement).
    """
    by_name: dict[str, list[str]] = {}
    for name, value in params:
        if name.startswith(UNSUPPORTED):
            raise NotSupported(f"bulk export parameter {name} is not supported")
        by_name.setdefault(name, []).append(value)
    fmt = (by_name.get("_outputFormat") or ["application/fhir+ndjson"])[-1].strip().replace(" ", "+")
    if fmt not in NDJSON_FORMATS:
        raise InvalidInput(
            f"_outputFormat {fmt!r} is not supported; use application/fhir+ndjson",
            expression=("_outputFormat",),
        )
    since = parse_instant(by_name["_since"][-1], "_since") if by_name.get("_since") else None
    filters = _type_filters(by_name.get("_typeFilter", []), settings)
    types = _types(by_name.get("_type", []), level, known_types)
    if by_name.get("_type"):
        missing = sorted(set(filters) - set(types))
        if missing:
            raise InvalidInput(
                f"_typeFilter names types not in _type: {', '.join(missing)}", expression=("_typeFilter",)
            )
    compression = (by_name.get("outputCompression") or [""])[-1].lower()
    if compression not in ("", "gzip", "none"):
        raise InvalidInput("outputCompression must be gzip or none", expression=("outputCompression",))
    return ExportRequest(level, types, since, group_id, filters, compression == "gzip", url)
