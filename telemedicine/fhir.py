"""FHIR shapes shared by the telemedicine modules: canonical URLs, codes, small builders.

Extensions the platform defines live under `terminology.canonical.BASE`/StructureDefinition;
the video link uses the FHIR R5 cross-version extension for `Appointment.virtualService`
(FHIR R5 §8.1 VirtualServiceDetail, carried into R4B by the cross-version extension rules).

May import: the standard library, `ehr_store`, `terminology` (public APIs).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from ehr_store import InvalidInput, ResourceRepository, StoredResource, format_instant, json_loads
from terminology import canonical

Json = dict[str, Any]
SD = f"{canonical.BASE}/StructureDefinition"
CS = f"{canonical.BASE}/CodeSystem"

EXT_CAPACITY = f"{SD}/slot-capacity"
EXT_BOOKED = f"{SD}/slot-booked"
EXT_PROVIDER = f"{SD}/slot-provider"
EXT_ORGANIZATION = f"{SD}/slot-organization"
EXT_AREA = f"{SD}/schedule-area"
EXT_SESSION = f"{SD}/slot-session"
EXT_BOOKED_BY = f"{SD}/appointment-booked-by"
EXT_RESCHEDULED_FROM = f"{SD}/appointment-rescheduled-from"
EXT_RESCHEDULED_TO = f"{SD}/appointment-rescheduled-to"
EXT_CONSENT = f"{SD}/consultation-consent"
EXT_VIRTUAL_SERVICE = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.virtualService"
EXT_STATE = f"{SD}/telemedicine-state"

POOL_SYSTEM = f"{CS}/slot-pool"
"""Slot.serviceCategory: `general` (anyone) or `referral` (reserved for 分级诊疗 referrals)."""
PARTICIPANT_ROLE = f"{CS}/consultation-participant"
"""Appointment.participant.type: `inviting` (邀请方) and `invited` (受邀方) institutions."""
EVENT_SYSTEM = f"{CS}/telemedicine-event"
"""Communication.topic / category codes of the state changes (booked, cancelled, ...)."""
FEE_SYSTEM = f"{CS}/registration-fee"
BOOKING_ID_SYSTEM = "urn:qyhie:telemedicine:booking"
SNOMED = "http://snomed.info/sct"
CONSULTATION = {"system": SNOMED, "code": "11429006", "display": "Consultation"}
REFERRAL = {"system": SNOMED, "code": "3457005", "display": "Patient referral"}
CONSULT_NOTE = {"system": "http://loinc.org", "code": "11488-4", "display": "Consult note"}
CANCEL_REASON = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
CNY = "CNY"
PAGE = 1000


def now_utc() -> datetime:
    """Now, UTC, milliseconds."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def instant(moment: datetime) -> str:
    """FHIR instant (UTC, `Z`)."""
    return format_instant(moment)


def local_instant(moment: datetime) -> str:
    """FHIR instant keeping the moment's own offset (`2026-03-02T08:00:00+08:00`)."""
    return moment.isoformat(timespec="seconds")


def parse_instant(text: str, what: str) -> datetime:
    """A timezone-aware datetime from a FHIR dateTime/instant. Raises: InvalidInput."""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{what} {text!r} is not a FHIR instant", expression=(what,)) from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{what} {text!r} needs a timezone offset", expression=(what,))
    return moment


def load(stored: StoredResource) -> Json:
    """The JSON object of a stored resource (decimals kept)."""
    doc: Json = json_loads(stored.content)
    return doc


def strip_meta(resource: Json) -> Json:
    """A copy without `meta.versionId`/`lastUpdated` (ready to write back)."""
    out = dict(resource)
    meta = {k: v for k, v in (out.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return out


def ext_value(resource: Json, url: str, kind: str) -> Any:
    """`value<kind>` of the first extension with `url`, or None."""
    for ext in resource.get("extension", []):
        if ext.get("url") == url:
            return ext.get(f"value{kind}")
    return None


def set_ext(resource: Json, url: str, kind: str, value: Any) -> None:
    """Set (replace) the extension `url` with `value<kind>`."""
    others = [e for e in resource.get("extension", []) if e.get("url") != url]
    resource["extension"] = [*others, {"url": url, f"value{kind}": value}]


def stable_id(prefix: str, *parts: str) -> str:
    """A FHIR id (≤ 64 chars, FHIR R4B datatypes §2.24.0.1) derived from `parts`."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:40]
    return f"{prefix}-{digest}"


def ref_id(reference: str, rtype: str, what: str) -> str:
    """`Patient/x` (or `x`) -> `x` when the type matches. Raises: InvalidInput."""
    ref = str(reference or "")
    if "/" in ref:
        kind, _, rid = ref.rpartition("/")
        if kind.split("/")[-1] != rtype or not rid:
            raise InvalidInput(f"{what} must reference a {rtype}, not {ref!r}", expression=(what,))
        return rid
    if not ref:
        raise InvalidInput(f"{what} (a {rtype} reference) is required", expression=(what,))
    return ref


def narrative(text: str) -> Json:
    """A generated Narrative with `text` escaped into an XHTML div."""
    from html import escape

    body = "<br/>".join(escape(line) for line in text.splitlines()) or escape(text)
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}


def search_all(repo: ResourceRepository, rtype: str, params: list[tuple[str, str]]) -> list[StoredResource]:
    """Every match of a search, page by page (FHIR R4B search §3.1.1.5.6 `_count`/`_offset`)."""
    out: list[StoredResource] = []
    offset = 0
    while True:
        page = repo.search(rtype, [*params, ("_count", str(PAGE)), ("_offset", str(offset))])
        out.extend(page.matches)
        if not page.has_more or not page.matches:
            return out
        offset += len(page.matches)
