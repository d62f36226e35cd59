"""The access guard: applies `policy` to one request before the app runs and to its response after.

Before: endpoint rule (`policy.authorize`), HL7 v2 sender (MSH-4 = facility claim), write
checks on the body (feed facility, the resident being visible to a clinician), `$everything`
on a visible resident, and count-only searches only for named, visible residents.
After (GET-like answers): every resource in the answer (search matches, `_include`d and
`_revinclude`d resources, `$everything` pages, `$match` results, history entries, a single
read) is checked against the resident rules; hidden ones are dropped, a hidden single
resource is a 403. A filtered search loses `Bundle.total` (so a count never reveals hidden
records); `_elements` is widened with the compartment elements so filtering always sees them.

Break-glass: header `X-Break-Glass-Reason` (>= 8 characters) by a doctor or specialist opens
the residents of that read for `break_glass_minutes`; every such access is audited as `BTG`.

May import: starlette (thread pool), orjson, `ehr_store`, `hie_server.auth.*`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool

from ehr_store import InvalidInput, Store, json_loads_resource
from hie_server.auth.audit import AccessRecord
from hie_server.auth.classify import hl7_sending_facilities
from hie_server.auth.compartment import (
    DIRECTORY_TYPES,
    in_patient_compartment,
    own_patient_id,
    patient_refs,
    resource_facility,
)
from hie_server.auth.policy import (
    BREAK_GLASS_ROLES,
    Action,
    Decision,
    ResidentFacts,
    authorize,
    deny,
    resident_decision,
    resource_visible,
    write_decision,
)
from hie_server.auth.principal import Principal
from hie_server.auth.resolver import resident_facts

Json = dict[str, Any]
T = TypeVar("T")
BREAK_GLASS_HEADER = "x-break-glass-reason"
PATIENT_PARAMS = frozenset({"patient", "subject", "_id", "beneficiary"})
WIDEN_ELEMENTS = (
    "subject,patient,beneficiary,link,managingOrganization,serviceProvider,target,participant,meta"
)
FACT_TYPES = ("Patient", "Consent", "ServiceRequest")
WRITE_INTERACTIONS = frozenset(
    {"create", "update", "patch", "delete", "transaction", "operation-write", "hl7v2"}
)
FILTERED = frozenset({"read", "vread", "search", "history", "everything", "operation-read"})


@dataclass
class RequestState:
    """What `before` learnt that `after` needs."""

    principal: Principal
    action: Action
    query: list[tuple[str, str]]
    break_glass_reason: str | None = None
    decisions: dict[str, Decision] = field(default_factory=dict)


class AccessGuard:
    """Policy enforcement around the app for one store (see module docstring)."""

    def __init__(self, store: Store, break_glass_minutes: int = 60, facts_cache_seconds: float = 5.0) -> None:
        self.store = store
        self.break_glass_seconds = break_glass_minutes * 60
        self.facts_cache_seconds = facts_cache_seconds
        self._break_glass: dict[tuple[str, str], tuple[float, str]] = {}
        self._facts: dict[str, tuple[float, ResidentFacts]] = {}

    async def _read(self, work: Callable[[Any], T]) -> T:
        def run() -> T:
            with self.store.unit_of_work() as uow:
                return work(uow.resources)

        return await run_in_threadpool(run)

    async def facts(self, patient_ids: set[str]) -> dict[str, ResidentFacts]:
        """Facts per Patient id, cached `facts_cache_seconds` (a write through this API to a
        Patient, Consent or ServiceRequest empties the cache; other changes show within the TTL)."""
        now = time.monotonic()
        found = {pid: hit[1] for pid in patient_ids if (hit := self._facts.get(pid)) and hit[0] > now}
        missing = patient_ids - found.keys()
        if missing:
            fresh = await self._read(lambda repo: resident_facts(repo, missing))
            if self.facts_cache_seconds > 0:
                if len(self._facts) > 50_000:
                    self._facts.clear()
                for pid, facts in fresh.items():
                    self._facts[pid] = (now + self.facts_cache_seconds, facts)
            found.update(fresh)
        return found

    def forget_facts(self) -> None:
        """Drop cached resident facts (after a write that may change who may see whom)."""
        self._facts.clear()

    # -- before ---------------------------------------------------------------------------
    async def before(self, state: RequestState, headers: dict[str, str], body: bytes) -> None:
        """Check the request. Raises: Forbidden (naming the rule), InvalidInput (unreadable body)."""
        p, a = state.principal, state.action
        authorize(p, a).require()
        reason = headers.get(BREAK_GLASS_HEADER, "").strip()
        if reason:
            if not p.roles & BREAK_GLASS_ROLES or a.interaction not in FILTERED:
                deny("break-glass", "break-glass is for doctors and specialists reading records").require()
            if len(reason) < 8:
                deny("break-glass", "state the emergency in X-Break-Glass-Reason (8+ characters)").require()
            state.break_glass_reason = reason
        if a.interaction in WRITE_INTERACTIONS and a.resource_type in (None, *FACT_TYPES):
            self.forget_facts()
        if a.interaction == "transaction" and _touches_audit(body):
            deny("audit-immutable", "AuditEvents cannot be written through a batch/transaction").require()
        if p.is_admin:
            return
        if a.interaction == "hl7v2":
            senders = set(hl7_sending_facilities(body))
            if not senders or senders != {p.facility}:
                deny(
                    "feed-own-facility",
                    f"MSH-4 {sorted(senders)} must be the feed's own facility {p.facility!r}",
                ).require()
        elif a.interaction in ("create", "update", "patch", "transaction"):
            await self._check_write(state, body)
        elif a.interaction == "everything" and a.resource_id:
            await self._require_resident(state, a.resource_id)
        elif a.interaction == "search":
            await self._check_search(state)

    async def _require_resident(self, state: RequestState, patient_id: str) -> Decision:
        facts = (await self.facts({patient_id})).get(patient_id)
        decision = self.decide(state, facts or ResidentFacts(frozenset({patient_id})))
        state.decisions[patient_id] = decision
        return decision.require()

    async def _check_search(self, state: RequestState) -> None:
        pairs = state.query
        count_only = any(k == "_summary" and v == "count" for k, v in pairs) or ("_count", "0") in pairs
        if not count_only:
            return
        named = {
            v.split("/")[-1] for k, v in pairs if k.split(":")[0] in PATIENT_PARAMS for v in v.split(",")
        }
        if not named:
            deny("count-needs-patient", "counts are answered only for named residents you may see").require()
        for pid in named:
            decision = await self._require_resident(state, pid)
            if decision.own_facility_only:
                deny("count-needs-patient", "the resident's sharing choice hides part of the count").require()

    async def _check_write(self, state: RequestState, body: bytes) -> None:
        p, a = state.principal, state.action
        if a.interaction == "patch":
            resources: list[Json] = []
        else:
            try:
                document = json_loads_resource(body)
            except InvalidInput:
                return  # the app answers 400 for an unreadable body; nothing is written
            resources = [document]
            if a.interaction == "transaction":
                resources = self._bundle_resources(document)
        if a.resource_id and a.resource_type:
            rtype, rid = a.resource_type, a.resource_id
            current = await self._read(lambda repo: repo.read_many([(rtype, rid)]).get((rtype, rid)))
            if current is not None and not current.deleted:
                resources.append(json_loads_resource(current.content))
        ids = {pid for r in resources for pid in own_patient_id(r)}
        facts = await self.facts(ids)
        for resource in resources:
            pids = own_patient_id(resource)
            known = [facts[i] for i in pids if i in facts and facts[i].facilities | facts[i].counties]
            if not known:
                write_decision(p, resource, None).require()
            for f in known:
                write_decision(p, resource, f).require()

    def _bundle_resources(self, bundle: Json) -> list[Json]:
        out = []
        for entry in bundle.get("entry", []):
            method = str((entry.get("request") or {}).get("method", "")).upper()
            if method in ("GET", "HEAD", "DELETE", "PATCH"):
                deny("batch-entries", f"{method} entries in a batch/transaction are for hie-admin").require()
            resource = entry.get("resource")
            if isinstance(resource, dict):
                out.append(resource)
        return out

    # -- decisions and break-glass ----------------------------------------------------------
    def decide(self, state: RequestState, facts: ResidentFacts) -> Decision:
        """resident_decision with break-glass (this request's reason or a still-open one)."""
        p = state.principal
        key = (p.subject, min(facts.patient_ids) if facts.patient_ids else "")
        now = time.monotonic()
        open_until, reason = self._break_glass.get(key, (0.0, ""))
        glass = state.break_glass_reason or (reason if open_until > now else None)
        decision = resident_decision(p, facts, break_glass=bool(glass))
        if decision.break_glass:
            if state.break_glass_reason:
                self._break_glass[key] = (now + self.break_glass_seconds, state.break_glass_reason)
            state.break_glass_reason = state.break_glass_reason or f"(break-glass opened earlier) {reason}"
        return decision

    # -- after ----------------------------------------------------------------------------
    def rewrite_query(self, state: RequestState) -> list[tuple[str, str]] | None:
        """Widened `_elements` for a non-admin search (None when nothing changes)."""
        if state.principal.is_admin or not any(k == "_elements" for k, _ in state.query):
            return None
        return [(k, f"{v},{WIDEN_ELEMENTS}" if k == "_elements" else v) for k, v in state.query]

    async def after(self, state: RequestState, body: bytes, record: AccessRecord) -> bytes | None:
        """Filter a JSON answer; return new bytes when changed. Raises: Forbidden (hidden read)."""
        document = orjson.loads(body)
        if not isinstance(document, dict):
            return None
        admin = state.principal.is_admin
        if document.get("resourceType") != "Bundle":
            if not admin:
                await self._check_resources(state, [document], single=True)
            self._note(record, [document])
            return None
        entries = document.get("entry", [])
        resources = [e["resource"] for e in entries if isinstance(e.get("resource"), dict)]
        if admin:
            self._note(record, resources)
            return None
        keep = await self._check_resources(state, resources, single=False)
        kept = [e for e in entries if not isinstance(e.get("resource"), dict) or id(e["resource"]) in keep]
        self._note(record, [e["resource"] for e in kept if isinstance(e.get("resource"), dict)])
        removed = len(kept) != len(entries)
        named = any(k.split(":")[0] in PATIENT_PARAMS for k, _ in state.query)
        if not removed and "total" not in document:
            return None
        if removed or not named or any(d.own_facility_only for d in state.decisions.values()):
            document.pop("total", None)
            document["entry"] = kept
            return orjson.dumps(document)
        return None

    async def _check_resources(self, state: RequestState, resources: list[Json], single: bool) -> set[int]:
        p = state.principal
        refs = {
            r_id: own_patient_id(r) if r.get("resourceType") == "Patient" else patient_refs(r)
            for r_id, r in ((id(r), r) for r in resources)
        }
        wanted = {pid for ids in refs.values() for pid in ids} - set(state.decisions)
        facts = await self.facts(wanted)
        for pid in wanted:
            state.decisions[pid] = self.decide(state, facts.get(pid) or ResidentFacts(frozenset({pid})))
        visible: set[int] = set()
        refusal: Decision | None = None
        for resource in resources:
            ids = refs[id(resource)]
            rtype = str(resource.get("resourceType", ""))
            if rtype == "OperationOutcome":
                visible.add(id(resource))
                continue
            if not ids:
                ok = (
                    not in_patient_compartment(rtype)
                    or rtype in DIRECTORY_TYPES
                    or resource_facility(resource) == p.facility
                )
                refusal = refusal or (None if ok else deny("no-resident", "a record without a resident"))
            else:
                decisions = [state.decisions[i] for i in ids]
                ok = all(resource_visible(p, d, resource) for d in decisions)
                refusal = (
                    refusal
                    or next((d for d in decisions if not d.allowed), None)
                    or (
                        None
                        if ok
                        else deny("consent-opt-out", "the resident's sharing choice hides this record")
                    )
                )
            if ok:
                visible.add(id(resource))
        if single and not visible and refusal is not None:
            refusal.require()
        return visible

    @staticmethod
    def _note(record: AccessRecord, resources: list[Json]) -> None:
        for r in resources:
            if r.get("resourceType") and r.get("id"):
                record.resources.append(f"{r['resourceType']}/{r['id']}")
            record.patients.update(
                own_patient_id(r) if r.get("resourceType") == "Patient" else patient_refs(r)
            )


def _touches_audit(body: bytes) -> bool:
    """True when a batch/transaction Bundle has an entry on AuditEvent (by resource or URL)."""
    try:
        bundle = json_loads_resource(body)
    except InvalidInput:
        return False
    for entry in bundle.get("entry", []) if isinstance(bundle.get("entry"), list) else []:
        url = str((entry.get("request") or {}).get("url", "")).lstrip("/")
        resource = entry.get("resource") if isinstance(entry.get("resource"), dict) else {}
        if url.startswith("AuditEvent") or resource.get("resourceType") == "AuditEvent":
            return True
    return False
