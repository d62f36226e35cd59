"""Administrative FHIR operations the workbench's admin pages use (hie-admin only), mounted
under the FHIR base so they pass the same auth middleware, endpoint rule (`ADMIN_OPERATIONS`
in `hie_server.auth.policy`) and AuditEvents as every other API call:

- `GET  [base]/$ingest-errors?_count=&_offset=` → Parameters, one `message` part per queued
  HL7 v2 message (id, received, facility, type, control id, status, ACK code, error).
- `POST [base]/$ingest-replay` (`message` integer) → Parameters (`status`, `ackCode`, `error`).
- `GET  [base]/$feed-stats?days=7` → Parameters, one `day` part per (facility, date, status) count
  of archived messages received in the last `days` days (Asia/Shanghai dates).
- `GET  [base]/$empi-review?_count=` → Parameters, one `item` per open review (source and candidate
  Patient references, score, rule, field agreement levels).
- `POST [base]/$empi-review-decide` (`item` integer, `decision` link|separate).
- `GET  [base]/$unmapped-codes[?sender=]` → Parameters, one `code` per local code still unmapped.
- `POST [base]/$map-local-code` (`sender`, `system`, `code`, `display`, `targetSystem`, `targetCode`,
  `targetDisplay`, `equivalence`) → adds the row to the sender's ConceptMap (new version) and
  re-codes stored resources (`TerminologyService.remap`); Parameters (`conceptMapVersion`, `updated`).

`admin_module(ingest, empi, terminology)` returns the `FhirModule`; any service may be None
(its operations then answer 501 NotSupported).

May import: fastapi/starlette, `ehr_store`, `ehr_store.empi`, `terminology`, `adapters`, `hie_server.*`.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from adapters import IngestService
from ehr_store import Forbidden, InvalidInput, NotSupported, UnitOfWork, json_loads_resource
from ehr_store.empi import EmpiService
from hie_server.app import FhirModule
from hie_server.auth import Principal
from hie_server.capability import FhirOperation
from hie_server.context import FhirContext, fhir_context
from hie_server.formats import fhir_response, read_body
from terminology import CSV_COLUMNS, TerminologyService, rows_from_conceptmap

Json = dict[str, Any]
Ctx = Depends(fhir_context)
BASE_DEF = "http://qingyuan-hie.cn/fhir/OperationDefinition"
NAMES = (
    "$ingest-errors",
    "$ingest-replay",
    "$feed-stats",
    "$empi-review",
    "$empi-review-decide",
    "$unmapped-codes",
    "$map-local-code",
)


def _admin(request: Request) -> str:
    """The caller's display name. Raises: Forbidden unless hie-admin (or the local operator)."""
    p = getattr(request.state, "principal", None)
    if isinstance(p, Principal) and not p.is_admin:
        raise Forbidden("access refused by rule 'workbench-admin': administration is for hie-admin")
    return p.display if isinstance(p, Principal) else "local"


def _part(name: str, **values: Any) -> Json:
    parts = []
    for key, value in values.items():
        if value is None:
            continue
        kind = (
            "valueInteger"
            if isinstance(value, int) and not isinstance(value, bool)
            else ("valueDecimal" if isinstance(value, float) else "valueString")
        )
        parts.append({"name": key, kind: value})
    return {"name": name, "part": parts}


def _parameters(parts: list[Json]) -> Json:
    return {"resourceType": "Parameters", "parameter": parts}


async def _body(request: Request, ctx: FhirContext) -> dict[str, Any]:
    doc = json_loads_resource(await read_body(request, ctx.settings.http.max_body_bytes))
    if doc.get("resourceType") != "Parameters":
        raise InvalidInput("the operation expects a Parameters resource", expression=("resourceType",))
    out: dict[str, Any] = {}
    for p in doc.get("parameter", []):
        out[str(p.get("name"))] = next((v for k, v in p.items() if k.startswith("value")), None)
    return out


def _int(values: dict[str, Any], name: str) -> int:
    try:
        return int(values[name])
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(
            f"parameter {name} (an integer) is required",
            expression=(f"Parameters.parameter.where(name='{name}')",),
        ) from None


def _need(service: Any, what: str) -> Any:
    if service is None:
        raise NotSupported(f"{what} is not configured on this server")
    return service


def ingest_routes(router: APIRouter, ingest: IngestService | None, tz: ZoneInfo) -> None:
    """`$ingest-errors`, `$ingest-replay`, `$feed-stats`."""

    @router.get("/$ingest-errors")
    async def errors(request: Request) -> Response:
        _admin(request)
        service: IngestService = _need(ingest, "HL7 v2 ingestion")
        q = request.query_params
        queue = await run_in_threadpool(
            service.error_queue, int(q.get("_count", 50)), int(q.get("_offset", 0))
        )
        parts = [
            _part(
                "message",
                id=m.id,
                received=m.received_at.isoformat(),
                facility=m.sending_facility,
                application=m.sending_application,
                type=m.message_type,
                controlId=m.control_id,
                status=m.status,
                ackCode=m.ack_code,
                error=m.error,
                attempts=m.attempts,
            )
            for m in queue
        ]
        return fhir_response(request, _parameters(parts))

    @router.post("/$ingest-replay")
    async def replay(request: Request, ctx: FhirContext = Ctx) -> Response:
        _admin(request)
        service: IngestService = _need(ingest, "HL7 v2 ingestion")
        message_id = _int(await _body(request, ctx), "message")
        result = await run_in_threadpool(service.replay, message_id)
        archived = await ctx.run(lambda uow: uow.messages.get(message_id), commit=False)
        parts: list[Json] = [
            {"name": "message", "valueInteger": message_id},
            {"name": "status", "valueString": archived.status},
            {"name": "ackCode", "valueString": result.ack_code},
            {"name": "outcome", "valueString": result.outcome},
        ]
        if archived.error:
            parts.append({"name": "error", "valueString": archived.error})
        return fhir_response(request, _parameters(parts))

    @router.get("/$feed-stats")
    async def feed_stats(request: Request, ctx: FhirContext = Ctx) -> Response:
        _admin(request)
        days = max(1, min(int(request.query_params.get("days", 7)), 92))
        since = datetime.now(UTC) - timedelta(days=days)

        def work(uow: UnitOfWork) -> Counter[tuple[str, str, str]]:
            counts: Counter[tuple[str, str, str]] = Counter()
            for facility, received, status in uow.messages.received_since(since, limit=50_000):
                counts[(facility or "?", received.astimezone(tz).date().isoformat(), status)] += 1
            return counts

        counts = await ctx.run(work, commit=False)
        parts = [
            _part("day", facility=f, date=d, status=s, count=n) for (f, d, s), n in sorted(counts.items())
        ]
        return fhir_response(request, _parameters(parts))


def empi_routes(router: APIRouter, empi: EmpiService | None) -> None:
    """`$empi-review`, `$empi-review-decide`."""

    @router.get("/$empi-review")
    async def reviews(request: Request, ctx: FhirContext = Ctx) -> Response:
        _admin(request)
        service: EmpiService = _need(empi, "the EMPI")
        limit = min(int(request.query_params.get("_count", 20)), 200)
        items = await ctx.run(lambda uow: service.index(uow.resources).reviews(limit=limit), commit=False)
        parts = []
        for item in items:
            levels = item.details.get("levels", {}) if isinstance(item.details, dict) else {}
            part = _part(
                "item",
                id=item.id,
                source=f"Patient/{item.source_id}",
                candidate=f"Patient/{item.golden_id}",
                score=float(item.score),
                rule=item.rule,
                created=item.created_at.isoformat(),
            )
            part["part"] += [{"name": f"level-{k}", "valueString": str(v)} for k, v in sorted(levels.items())]
            parts.append(part)
        return fhir_response(request, _parameters(parts))

    @router.post("/$empi-review-decide")
    async def decide(request: Request, ctx: FhirContext = Ctx) -> Response:
        by = _admin(request)
        service: EmpiService = _need(empi, "the EMPI")
        values = await _body(request, ctx)
        item, decision = _int(values, "item"), str(values.get("decision") or "")
        if decision not in ("link", "separate"):
            raise InvalidInput(
                "decision must be link or separate",
                expression=("Parameters.parameter.where(name='decision')",),
            )
        await ctx.run(lambda uow: service.decide_review(uow.resources, item, decision, by=by))
        return fhir_response(
            request,
            _parameters(
                [{"name": "item", "valueInteger": item}, {"name": "decision", "valueString": decision}]
            ),
        )


def terminology_routes(router: APIRouter, terminology: TerminologyService | None) -> None:
    """`$unmapped-codes`, `$map-local-code`."""

    @router.get("/$unmapped-codes")
    async def unmapped(request: Request) -> Response:
        _admin(request)
        service: TerminologyService = _need(terminology, "the terminology service")
        codes = await run_in_threadpool(service.unmapped, request.query_params.get("sender") or None)
        parts = [
            _part(
                "code",
                sender=c.sender,
                system=c.system,
                code=c.code,
                display=c.display,
                count=c.count,
                firstSeen=c.first_seen.isoformat(),
                lastSeen=c.last_seen.isoformat(),
            )
            for c in codes
        ]
        return fhir_response(request, _parameters(parts))

    @router.post("/$map-local-code")
    async def map_code(request: Request, ctx: FhirContext = Ctx) -> Response:
        _admin(request)
        service: TerminologyService = _need(terminology, "the terminology service")
        v = await _body(request, ctx)
        for name in ("sender", "system", "code", "targetSystem", "targetCode"):
            if not str(v.get(name) or "").strip():
                raise InvalidInput(
                    f"parameter {name} is required",
                    expression=(f"Parameters.parameter.where(name='{name}')",),
                )
        sender = str(v["sender"]).strip()
        row = {
            "source_system": str(v["system"]).strip(),
            "source_code": str(v["code"]).strip(),
            "source_display": str(v.get("display") or ""),
            "target_system": str(v["targetSystem"]).strip(),
            "target_code": str(v["targetCode"]).strip(),
            "target_display": str(v.get("targetDisplay") or ""),
            "equivalence": str(v.get("equivalence") or "equivalent"),
        }

        def current_rows(uow: UnitOfWork) -> list[dict[str, str]]:
            from ehr_store import NotFound

            try:
                doc = uow.resources.read("ConceptMap", f"local-{sender}").as_dict()
            except NotFound:
                return []
            return list(rows_from_conceptmap(doc))

        rows = [
            r
            for r in await ctx.run(current_rows, commit=False)
            if (r["source_system"], r["source_code"]) != (row["source_system"], row["source_code"])
        ]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows([*rows, row])
        try:
            cmap, _ = await run_in_threadpool(service.load_conceptmap_csv, sender, text.getvalue())
            updated = await run_in_threadpool(service.remap, sender)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        return fhir_response(
            request,
            _parameters(
                [
                    {"name": "conceptMapVersion", "valueString": str(cmap.get("version", ""))},
                    {"name": "updated", "valueInteger": len(updated)},
                ]
            ),
        )


OPERATIONS = tuple(FhirOperation(n[1:], f"{BASE_DEF}/{n[1:]}", ()) for n in NAMES)


def admin_module(
    ingest: IngestService | None,
    empi: EmpiService | None,
    terminology: TerminologyService | None,
    timezone: str = "Asia/Shanghai",
) -> FhirModule:
    """The admin operations above as a module for `create_app(settings, store, modules=[...])`."""
    router = APIRouter()
    ingest_routes(router, ingest, ZoneInfo(timezone))
    empi_routes(router, empi)
    terminology_routes(router, terminology)
    return FhirModule(router, OPERATIONS)
