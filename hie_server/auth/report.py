"""Break-glass report for admins (issue 6: break-glass access is "flagged in audit, reported to
admins"): the AuditEvents recorded under policy `urn:qyhie:policy:break-glass`, as rows.

`break_glass_accesses(store, since)` is what `hie audit break-glass` prints; it reads the
store directly (the operator's own database access), not through the API.

May import: the standard library, `ehr_store` (public API), `hie_server.auth.audit`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ehr_store import Store
from hie_server.auth.audit import POLICY

BREAK_GLASS_POLICY = f"{POLICY}break-glass"
PAGE = 200


@dataclass(frozen=True, slots=True)
class BreakGlassAccess:
    """One access under break-glass: when, who (user, facility, roles), which residents,
    the stated reason, what was done (interaction, `METHOD path`) and the outcome (0/4/8)."""

    recorded: str
    user: str
    facility: str
    roles: tuple[str, ...]
    patients: tuple[str, ...]
    reason: str
    interaction: str
    request: str
    outcome: str
    event_id: str


def from_event(event: dict[str, Any], event_id: str) -> BreakGlassAccess:
    """The report row of one AuditEvent (shape of `hie_server.auth.audit.audit_event`)."""
    agent = (event.get("agent") or [{}])[0]
    who = agent.get("who", {})
    purpose = (event.get("purposeOfEvent") or [{}])[0]
    entities = event.get("entity", [])
    patients = tuple(
        e["what"]["reference"] for e in entities if e.get("role", {}).get("code") == "1" and "what" in e
    )
    request = next((e.get("description", "") for e in entities if e.get("role", {}).get("code") == "24"), "")
    return BreakGlassAccess(
        recorded=event.get("recorded", ""),
        user=agent.get("name") or who.get("display", "?"),
        facility=agent.get("location", {}).get("display", ""),
        roles=tuple(c["code"] for r in agent.get("role", []) for c in r.get("coding", [])),
        patients=patients,
        reason=purpose.get("text", ""),
        interaction=(event.get("subtype") or [{}])[0].get("code", ""),
        request=request,
        outcome=event.get("outcome", ""),
        event_id=event_id,
    )


def break_glass_accesses(
    store: Store, since: datetime | None = None, limit: int = 10_000
) -> list[BreakGlassAccess]:
    """Break-glass AuditEvents recorded at or after `since` (all when None), oldest first,
    at most `limit`. Raises: ehr_store errors (Unavailable) when the store cannot be read."""
    params: list[tuple[str, str]] = [("policy", BREAK_GLASS_POLICY), ("_sort", "date")]
    if since is not None:
        params.append(("date", "ge" + since.isoformat(timespec="seconds")))
    out: list[BreakGlassAccess] = []
    offset = 0
    with store.unit_of_work() as uow:
        while len(out) < limit:
            page = uow.resources.search(
                "AuditEvent", [*params, ("_count", str(PAGE)), ("_offset", str(offset))]
            )
            out += [from_event(json.loads(r.content), r.id) for r in page.matches]
            if not page.has_more or not page.matches:
                break
            offset += len(page.matches)
    return out[:limit]
