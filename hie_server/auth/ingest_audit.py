"""AuditEvents of HL7 v2 messages ingested outside the HTTP middleware (MLLP, `hie replay`):
one AuditEvent per message, written by `IngestService` in the unit of work that records the
message's outcome (issue 6: written in the same transaction as the writes; refusals and
errors in the unit of work that archives them).

Who: the sending facility (MSH-4) and application (MSH-3) as a `clinic-feed` agent, from the
peer address; what: the source Patients written, the message's Provenance (whose `target`
lists every resource the message wrote: the list is kept once, where FHIR puts it) and the
message itself (archive id, MSH-10, MSH-9); interaction `create` (every resource new) or
`update`; outcome 0 processed, 4 rejected/failed by the sender's fault (AE, refused AR),
8 store/internal failure (AR 206/207).
HL7 over HTTP is audited by the middleware (with the token's principal), so `transport="http"`
messages are skipped here unless replayed.

May import: the standard library, `adapters` (public API), `ehr_store`, `hie_server.auth.*`.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters import MessageHook, MessageRecord
from ehr_store import UnitOfWork
from hie_server.auth.audit import AccessRecord, Json, audit_event, write_events
from hie_server.auth.principal import Principal

FACILITY_SYSTEM = "urn:qyhie:facility"
ARCHIVE_SYSTEM = "urn:qyhie:hl7v2:archive"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
TRANSPORT_SYSTEM = "urn:qyhie:transport"
INTERNAL_ERRORS = ("206", "207")  # record locked / application internal error (HL7 Table 0357)
REFUSED = "sender not authorised"
AUDITED_TYPES = ("Patient", "Provenance")
"""Written resources named as AuditEvent entities: the Patient(s) (so `AuditEvent?patient=`
finds the import) and the Provenance (`Provenance.target` = every resource written). Listing
each Observation again made the event cost 25 us per resource to validate and index."""


def _status(record: MessageRecord) -> int:
    """An HTTP-like status for `AccessRecord` (its outcome mapping): 201/200, 403, 422, 500."""
    if record.status == "processed":
        return 201 if record.written and all(created for *_k, created in record.written) else 200
    error = record.error or ""
    if REFUSED in error:
        return 403
    return 500 if error.startswith(INTERNAL_ERRORS) else 422


def message_event(record: MessageRecord, site: str) -> Json:
    """One AuditEvent (FHIR R4B, DICOM 110107 Import) for one ingested message (see module
    docstring)."""
    facility = record.sending_facility or "(no MSH-4)"
    application = record.sending_application or "(no MSH-3)"
    created = bool(record.written) and all(c for *_k, c in record.written)
    access = AccessRecord(
        interaction="create" if created or record.status != "processed" else "update",
        method=record.transport.upper(),
        path=f"{record.message_type or '-'} {record.control_id or '-'}",
        principal=Principal(
            f"facility:{facility}",
            application,
            record.transport,
            frozenset({"clinic-feed"}),
            facility=facility,
        ),
        address=record.peer,
        status=_status(record),
        resources=[f"{t}/{i}" for t, i, _c in record.written if t in AUDITED_TYPES],
    )
    event = audit_event(access, site)
    event["type"] = {"system": DCM, "code": "110107", "display": "Import"}
    event["subtype"] = [
        *event["subtype"],
        {"system": TRANSPORT_SYSTEM, "code": "replay" if record.replay else record.transport},
    ]
    agent = event["agent"][0]
    agent["who"] = {"identifier": {"system": FACILITY_SYSTEM, "value": facility}, "display": facility}
    agent["altId"] = application
    event["source"]["observer"] = {"display": f"hie-server {record.transport.upper()}"}
    desc = f"MSA {record.ack_code or '-'} ({record.status})"
    event["outcomeDesc"] = desc + (f": {record.error[:500]}" if record.error else "")
    message: Json = {
        "what": {"identifier": {"system": ARCHIVE_SYSTEM, "value": str(record.message_id or "-")}},
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
        "name": record.control_id or "-",
        "description": f"HL7 v2 {record.message_type or '-'} MSH-10 {record.control_id or '-'}",
    }
    event["entity"] = [*event.get("entity", []), message]
    return event


def ingest_audit_hook(site: str) -> MessageHook:
    """The `IngestService(before_commit=...)` hook writing `message_event`s into the unit of
    work about to commit (HTTP messages skipped: the middleware audits them)."""

    def hook(uow: UnitOfWork, records: Sequence[MessageRecord]) -> None:
        write_events(uow, [message_event(r, site) for r in records if r.transport != "http" or r.replay])

    return hook
