"""Access rules: who may do what to which resident's record. Pure functions, table-tested.

Three questions, asked in this order by the auth middleware:
1. `authorize(principal, action)`: may this role (narrowed by SMART scopes) use this endpoint
   at all? (AuditEvent is read-only and admin-only; type/system history and EMPI $merge/$unlink
   are admin-only; CDC staff never write; only admins delete.)
2. `resident_decision(principal, facts, break_glass)`: may the principal see this resident?
   - `hie-admin`: yes.
   - doctors (`village-doctor`, `township-doctor`): residents registered at their facility (a
     source Patient from it) or referred from it (a ServiceRequest whose requester is there).
   - `specialist`: an active referral/consultation (ServiceRequest, performer at their facility)
     AND the resident's consent (an active Consent with a `permit` provision, not opted out).
   - doctors and specialists otherwise only with a recorded break-glass reason (time-limited).
   - `cdc-staff`: residents living in their county (`county` claim; `4418` = the whole city).
   - `clinic-feed`: residents registered at its own facility, and only that facility's data.
   A resident who opted out of cross-facility sharing (Consent with a `deny` provision) is
   visible to a doctor only in the doctor's own facility's data, except under break-glass.
3. `resource_visible(principal, decision, resource)` and `write_decision(...)`: per resource
   (own-facility filtering; a feed writes only as its own facility, `meta.source`/MSH-4).

Each refusal names its rule (`Decision.rule`), which the 403 OperationOutcome quotes.

May import: the standard library, `ehr_store` (error kinds), `hie_server.auth.*` (pure modules).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ehr_store import Forbidden
from hie_server.auth.compartment import DIRECTORY_TYPES, in_patient_compartment, resource_facility
from hie_server.auth.principal import CITY_COUNTY, DOCTOR_ROLES, Principal
from hie_server.auth.smart import scope_allows

READS = frozenset({"read", "vread", "search", "history", "everything", "operation-read"})
WRITES = frozenset({"create", "update", "patch", "delete", "transaction", "hl7v2", "operation-write"})
ADMIN_OPERATIONS = frozenset(
    {
        "$merge",
        "$unlink",
        "$build-cohort",
        "$ingest-errors",
        "$ingest-replay",
        "$feed-stats",
        "$empi-review",
        "$empi-review-decide",
        "$unmapped-codes",
        "$map-local-code",
    }
)
CDC_EXTRACTS = frozenset({"bulk-export", "surveillance"})
BREAK_GLASS_ROLES = DOCTOR_ROLES | {"specialist"}


@dataclass(frozen=True, slots=True)
class Action:
    """What a request does. `interaction`: a key of READS/WRITES or `capabilities`.
    `level`: `instance`, `type` or `system`; `operation`: e.g. `$everything`."""

    interaction: str
    resource_type: str | None = None
    resource_id: str | None = None
    level: str = "type"
    operation: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """An answer with the rule that gave it. `own_facility_only`: show only data whose facility
    is the principal's (consent opt-out, feed clients). `break_glass`: allowed by break-glass."""

    allowed: bool
    rule: str
    reason: str = ""
    break_glass: bool = False
    own_facility_only: bool = False

    def require(self) -> Decision:
        """Return self when allowed. Raises: Forbidden naming the rule."""
        if not self.allowed:
            raise Forbidden(f"access refused by rule {self.rule!r}: {self.reason}")
        return self


@dataclass(frozen=True)
class ResidentFacts:
    """What the rules need to know about one resident (all their Patient records)."""

    patient_ids: frozenset[str]
    facilities: frozenset[str] = frozenset()
    counties: frozenset[str] = frozenset()
    referred_from: frozenset[str] = frozenset()
    consulting: frozenset[str] = frozenset()
    consent_permit: bool = False
    opted_out: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def allow(rule: str, **kw: Any) -> Decision:
    return Decision(True, rule, **kw)


def deny(rule: str, reason: str) -> Decision:
    return Decision(False, rule, reason)


def authorize(principal: Principal, action: Action) -> Decision:
    """Endpoint-level rule (question 1 of the module docstring), then SMART scope narrowing."""
    decision = _role_rule(principal, action)
    if decision.allowed and not scope_allows(principal.scopes, action.resource_type, action.interaction):
        return deny(
            "smart-scope",
            f"the token's scopes do not grant {action.interaction} on {action.resource_type or 'the system'}",
        )
    return decision


def _role_rule(p: Principal, a: Action) -> Decision:
    if a.interaction == "capabilities":
        return allow("public")
    if a.resource_type == "AuditEvent":
        if a.interaction in WRITES:
            return deny("audit-immutable", "AuditEvents cannot be changed or deleted")
        return (
            allow("hie-admin") if p.is_admin else deny("audit-admin-only", "only hie-admin reads AuditEvents")
        )
    if p.is_admin:
        return allow("hie-admin")
    if a.interaction == "hl7v2":
        return (
            allow("feed-hl7v2")
            if p.has("clinic-feed")
            else deny("feed-hl7v2", "only feed clients send HL7 v2")
        )
    if a.interaction in CDC_EXTRACTS:
        if p.has("cdc-staff"):
            return allow("cdc-extract")
        return deny("cdc-extract", "bulk export and surveillance extracts are for CDC staff and hie-admin")
    if a.interaction == "history" and a.level != "instance":
        return deny("history-admin-only", "type and system history are for hie-admin")
    if a.operation in ADMIN_OPERATIONS:
        return deny("admin-operation", f"{a.operation} is for hie-admin")
    if a.interaction == "delete":
        return deny("delete-admin-only", "only hie-admin deletes")
    if not p.roles & (DOCTOR_ROLES | {"specialist", "cdc-staff", "clinic-feed"}):
        return deny("no-role", "the token carries no HIE role")
    if a.interaction in WRITES:
        return _write_rule(p, a)
    if a.operation == "$everything" and p.has("cdc-staff") and not p.roles & (DOCTOR_ROLES | {"specialist"}):
        return deny("cdc-no-everything", "CDC staff use the extract and search endpoints, not $everything")
    return allow("role-read")


def _write_rule(p: Principal, a: Action) -> Decision:
    if p.has("clinic-feed"):
        return allow("feed-own-facility")
    if not p.roles & (DOCTOR_ROLES | {"specialist"}):
        return deny("cdc-read-only", "CDC staff do not write records")
    directory = a.resource_type in DIRECTORY_TYPES
    if (
        a.resource_type
        and (directory or not in_patient_compartment(a.resource_type))
        and a.interaction != "transaction"
    ):
        return deny("reference-data-admin-only", f"{a.resource_type} is reference data kept by hie-admin")
    return allow("clinician-write")


def resident_decision(principal: Principal, facts: ResidentFacts, break_glass: bool = False) -> Decision:
    """May `principal` see this resident's record (question 2 of the module docstring)?"""
    p, f = principal, facts
    if p.is_admin:
        return allow("hie-admin")
    if p.has("clinic-feed") and p.facility in f.facilities:
        return allow("feed-own-facility", own_facility_only=True)
    if p.roles & DOCTOR_ROLES and p.facility:
        if p.facility in f.facilities:
            return allow("doctor-registered-here", own_facility_only=f.opted_out)
        if p.facility in f.referred_from and not f.opted_out:
            return allow("doctor-referred-from")
    if p.has("specialist") and p.facility in f.consulting and f.consent_permit and not f.opted_out:
        return allow("specialist-referral-consent")
    if break_glass and p.roles & BREAK_GLASS_ROLES:
        return allow("break-glass", break_glass=True)
    if (
        p.has("cdc-staff")
        and p.county
        and (p.county == CITY_COUNTY or any(c.startswith(p.county) for c in f.counties))
    ):
        return allow("cdc-county")
    return _refusal(p, f)


def _refusal(p: Principal, f: ResidentFacts) -> Decision:
    if p.has("specialist"):
        if f.opted_out:
            return deny(
                "consent-opt-out", "the resident opted out of cross-facility sharing (break-glass only)"
            )
        if p.facility not in f.consulting:
            return deny("specialist-needs-referral", "no active referral/consultation to your facility")
        return deny("specialist-needs-consent", "no active consent of the resident")
    if p.roles & DOCTOR_ROLES:
        if f.opted_out and p.facility in f.referred_from:
            return deny("consent-opt-out", "the resident opted out of cross-facility sharing")
        return deny(
            "doctor-own-facility", "the resident is neither registered at nor referred from your facility"
        )
    if p.has("cdc-staff"):
        return deny("cdc-county", "the resident does not live in your county")
    if p.has("clinic-feed"):
        return deny("feed-own-facility", "the resident is not registered at your facility")
    return deny("no-role", "the token carries no HIE role")


def resource_visible(principal: Principal, decision: Decision, resource: dict[str, Any]) -> bool:
    """Whether one resource of an allowed resident is shown (own-facility filtering)."""
    if not decision.allowed:
        return False
    if not decision.own_facility_only:
        return True
    facility = resource_facility(resource)
    return facility is None or facility == principal.facility


def write_decision(principal: Principal, resource: dict[str, Any], facts: ResidentFacts | None) -> Decision:
    """May `principal` write `resource` (of the resident `facts`, None for a new resident)?

    Feed clients: `meta.source` must name their own facility. Clinicians: the resident must be
    visible to them without break-glass; a new Patient must be registered at their facility.
    """
    facility = resource_facility(resource)
    if principal.is_admin:
        return allow("hie-admin")
    if principal.has("clinic-feed"):
        if facility != principal.facility:
            return deny(
                "feed-own-facility",
                f"a feed of {principal.facility} writes only as its own "
                f"facility (meta.source urn:qyhie:facility:{principal.facility}), not {facility!r}",
            )
        return allow("feed-own-facility")
    if facts is None:
        if resource.get("resourceType") == "Patient" and facility not in (None, principal.facility):
            return deny("register-own-facility", "a Patient is registered only at your own facility")
        return allow("clinician-write")
    decision = resident_decision(principal, facts)
    if not decision.allowed:
        return decision
    return allow("clinician-write")
