"""AuditEvents (FHIR R4B AuditEvent, IHE Basic Audit Log Patterns style) and their writer.

`audit_event(record)` builds one AuditEvent (pure) from an `AccessRecord`: who (user, roles,
facility, client, address), what (resources, patients, the query), when, outcome, purpose of
use (`BTG` for break-glass, flagged with the policy `urn:qyhie:policy:break-glass`).

`AuditWriter` stores AuditEvents of reads and refusals off the request path: a bounded queue
(a full queue makes the request wait, it never drops an event) drained by one thread that
writes batches in one unit of work each, every `flush_interval_seconds` (50 ms by default).
Durability trade-off: an event is on disk within about one flush interval after the response;
a crash of the process can lose at most that window; a clean shutdown (`close()`) flushes.
Writes are audited inside their own unit of work instead (`hie_server.auth.middleware`).

May import: the standard library, `ehr_store`, `hie_server.auth.*`.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ehr_store import Store, UnitOfWork
from hie_server.auth.principal import Principal

log = logging.getLogger("hie_server.audit")
Json = dict[str, Any]

EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
ROLE_SYSTEM = "urn:qyhie:role"
POLICY = "urn:qyhie:policy:"
ACTION = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "search": "E",
    "history": "R",
    "everything": "E",
    "operation-read": "E",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "transaction": "E",
    "hl7v2": "C",
    "operation-write": "E",
    "capabilities": "R",
    "login": "E",
}
MAX_ENTITIES = 200


@dataclass
class AccessRecord:
    """Everything one audited request contributes; filled in as the request proceeds."""

    interaction: str
    method: str
    path: str
    query: str = ""
    principal: Principal | None = None
    address: str | None = None
    request_id: str | None = None
    status: int = 0
    outcome_text: str = ""
    rule: str | None = None
    break_glass_reason: str | None = None
    patients: set[str] = field(default_factory=set)
    resources: list[str] = field(default_factory=list)
    recorded: datetime = field(default_factory=lambda: datetime.now(UTC))


def _outcome(status: int) -> str:
    """AuditEvent.outcome: 0 success, 4 minor failure (4xx), 8 serious (5xx), 12 major (none)."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def _purpose(record: AccessRecord) -> str:
    p = record.principal
    if record.break_glass_reason:
        return "BTG"
    if p is not None and p.has("cdc-staff"):
        return "PUBHLTH"
    if p is not None and p.has("clinic-feed", "hie-admin"):
        return "HOPERAT"
    return "TREAT"


def _agent(record: AccessRecord, purpose: Json) -> Json:
    p = record.principal
    agent: Json = {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "IRCP",
                    "display": "information recipient",
                }
            ]
        },
        "requestor": True,
        "purposeOfUse": [purpose],
    }
    if p is None:
        agent["who"] = {"display": "unauthenticated"}
    else:
        agent["who"] = {
            "identifier": {"system": "urn:qyhie:keycloak:sub", "value": p.subject},
            "display": p.display,
        }
        agent["altId"] = p.client_id or "-"
        agent["name"] = p.username
        agent["role"] = [
            {"coding": [{"system": ROLE_SYSTEM, "code": r}]}
            for r in sorted(p.roles)
            if r != "default-roles-qingyuan"
        ]
        if p.facility:
            agent["location"] = {"reference": f"Location/facility-{p.facility}", "display": p.facility}
    policies = [f"{POLICY}{record.rule}"] if record.rule else []
    if record.break_glass_reason:
        policies.append(f"{POLICY}break-glass")
    if p is not None and p.token_id:
        policies.append(f"urn:qyhie:token:{p.token_id}")
    if policies:
        agent["policy"] = policies
    if record.address:
        agent["network"] = {"address": record.address, "type": "2"}
    return agent


def _entities(record: AccessRecord) -> list[Json]:
    entities: list[Json] = [
        {
            "what": {"reference": f"Patient/{pid}"},
            "type": {"system": ENTITY_TYPE, "code": "1"},
            "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
        }
        for pid in sorted(record.patients)[:MAX_ENTITIES]
    ]
    for ref in list(dict.fromkeys(record.resources))[:MAX_ENTITIES]:
        if not ref.startswith("Patient/") or ref.split("/", 1)[1] not in record.patients:
            entities.append(
                {
                    "what": {"reference": ref},
                    "type": {"system": ENTITY_TYPE, "code": "2"},
                    "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
                }
            )
    if record.query or record.interaction in ("search", "everything", "operation-read"):
        query = {
            "type": {"system": ENTITY_TYPE, "code": "2"},
            "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
            "description": f"{record.method} {record.path}",
        }
        if record.query:
            query["query"] = base64.b64encode(record.query.encode("utf-8")).decode("ascii")
        entities.append(query)
    return entities


def audit_event(record: AccessRecord, site: str) -> Json:
    """One AuditEvent for one request (FHIR R4B AuditEvent; IHE BALP RESTful/query patterns)."""
    purpose: Json = {"coding": [{"system": ACT_REASON, "code": _purpose(record)}]}
    if record.break_glass_reason:
        purpose["text"] = record.break_glass_reason[:500]
    event: Json = {
        "resourceType": "AuditEvent",
        "type": {"system": EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": INTERACTION, "code": record.interaction}],
        "action": ACTION.get(record.interaction, "E"),
        "recorded": record.recorded.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "outcome": _outcome(record.status),
        "purposeOfEvent": [purpose],
        "agent": [_agent(record, purpose)],
        "source": {
            "site": site,
            "observer": {"display": "hie-server"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}],
        },
    }
    desc = f"HTTP {record.status}" + (f": {record.outcome_text[:500]}" if record.outcome_text else "")
    event["outcomeDesc"] = desc + (f" (request {record.request_id})" if record.request_id else "")
    if record.interaction == "login":
        event["type"] = {
            "system": "http://dicom.nema.org/resources/ontology/DCM",
            "code": "110114",
            "display": "User Authentication",
        }
        event["subtype"] = [
            {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110122", "display": "Login"}
        ]
    entities = _entities(record)
    if entities:
        event["entity"] = entities
    return event


class AuditWriter:
    """Background batched writer of AuditEvents (see module docstring)."""

    def __init__(
        self, store: Store, *, queue_size: int = 10_000, batch_size: int = 200, flush_interval: float = 0.05
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._queue: queue.Queue[Json | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._closed = False
        self.written = 0
        self.failures = 0
        self._thread.start()

    def submit(self, event: Json) -> None:
        """Queue one AuditEvent (blocks while the queue is full). Raises: RuntimeError after close()."""
        if self._closed:
            raise RuntimeError("audit writer is closed")
        self._queue.put(event)

    def _drain(self) -> tuple[list[Json], bool]:
        batch: list[Json] = []
        stop = False
        try:
            first = self._queue.get(timeout=self.flush_interval)
        except queue.Empty:
            return batch, stop
        if first is None:
            return batch, True
        batch.append(first)
        while len(batch) < self.batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _write(self, batch: list[Json]) -> None:
        for attempt in range(5):
            try:
                with self.store.unit_of_work(write=True) as uow:
                    write_events(uow, batch)
                    uow.commit()
                self.written += len(batch)
                return
            except Exception:  # keep the events and retry: audit must not be dropped silently
                self.failures += 1
                log.exception("writing %d AuditEvents failed (attempt %d)", len(batch), attempt + 1)
                time.sleep(0.2 * (attempt + 1))
        log.error("dropping %d AuditEvents after 5 failed attempts", len(batch))

    def _run(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._drain()
            if batch:
                self._write(batch)
                for _ in batch:
                    self._queue.task_done()
            if stop:
                self._queue.task_done()

    def flush(self) -> None:
        """Block until every queued event is written."""
        self._queue.join()

    def close(self) -> None:
        """Flush and stop the writer thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)


def write_events(uow: UnitOfWork, events: Iterable[Json]) -> None:
    """Create the AuditEvents in `uow` (the caller commits)."""
    for event in events:
        uow.resources.create(event)
