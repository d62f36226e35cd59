"""Telemedicine operations over FHIR REST: remote registration and remote consultation.

`telemedicine_module(service)` returns the `FhirModule` for `create_app(..., modules=[...])`.
Every route goes through the auth middleware (token, endpoint rule, AuditEvent); the routes
then apply the resident rules themselves (`hie_server.auth.resident_decision`): a doctor books
and asks for consultations only for residents they may see; only the invited institution
answers, schedules and gives the opinion; schedules are published by hie-admin or the
hospital's own feed client.

- `GET|POST Appointment/$find` — `specialty`, `organization`, `county`, `township`,
  `practitioner-role`, `start`, `end` (dates), `referral` (adds the reserved pool), `_count`
  → searchset Bundle of Slots.
- `POST Appointment/$book` — `slot`, `patient`, `identifier`, `referral`, `reason`, `comment`
  → 201 Appointment (200 with the first one on an idempotent retry); 409 SlotUnavailable.
- `POST Appointment/{id}/$cancel` (`reasonCode`, `reason`), `$reschedule` (`slot`, `reasonCode`,
  `reason`, `identifier`), `$status` (`status`: arrived | fulfilled | noshow).
- `POST Schedule/$publish` (`template` JSON string, `start` date, `days`), `Schedule/{id}/$stop-clinic`
  (`date`, `session`, `reason`).
- `POST ServiceRequest/$request-consultation` (`patient`, `performer`, `specialist`, `reason`,
  `question`, `urgency`, `shared`*, `consent`); `ServiceRequest/{id}/$accept`, `$decline`
  (`reason`), `$schedule` (`start`, `end`, `meetingUrl`, `participant`*), `$opinion` (`opinion`,
  `diagnosis`), `$refer` (`direction`, `target`, `reason`), `GET …/$consultation-record` (WS/T 483.19).

May import: fastapi/starlette, `ehr_store`, `telemedicine` (public API), `hie_server.*`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ehr_store import (
    Forbidden,
    InvalidInput,
    UnitOfWork,
    VersionConflict,
    json_loads,
    json_loads_resource,
)
from hie_server.app import FhirModule
from hie_server.auth import AccessRecord, Principal, resident_decision
from hie_server.auth.resolver import resident_facts
from hie_server.bundles import searchset
from hie_server.capability import FhirOperation
from hie_server.context import FhirContext, check_id, fhir_context
from hie_server.formats import check_body_media_type, fhir_response, read_body
from telemedicine import (
    Actor,
    BookRequest,
    ConsultationRequest,
    FindQuery,
    Result,
    RetryBooking,
    SlotUnavailable,
    TelemedicineService,
    book,
    cancel,
    consultation_record,
    find_slots,
    publish,
    record_opinion,
    refer,
    request_consultation,
    reschedule,
    respond,
    schedule,
    set_status,
    stop_clinic,
    template_from_json,
)
from telemedicine.fhir import now_utc, parse_instant

Json = dict[str, Any]
Ctx = Depends(fhir_context)
BASE_DEF = "http://qingyuan-hie.cn/fhir/OperationDefinition"


class Params:
    """FHIR Parameters (or a query string) read by name (FHIR R4B §2.1.0 Parameters)."""

    def __init__(self, parameters: list[Json]) -> None:
        self.items = parameters

    def all(self, name: str) -> list[Json]:
        return [p for p in self.items if p.get("name") == name]

    def value(self, name: str, required: bool = False) -> Any:
        for p in self.all(name):
            for key, value in p.items():
                if key.startswith("value"):
                    return value
        if required:
            raise InvalidInput(
                f"parameter {name} is required", expression=(f"Parameters.parameter.where(name='{name}')",)
            )
        return None

    def ref(self, name: str, rtype: str, required: bool = False) -> str | None:
        value = self.value(name, required)
        if value is None:
            return None
        text = str(value.get("reference", "") if isinstance(value, dict) else value)
        kind, _, rid = text.rpartition("/")
        if (kind and kind.split("/")[-1] != rtype) or not rid:
            raise InvalidInput(
                f"parameter {name} must reference a {rtype}",
                expression=(f"Parameters.parameter.where(name='{name}')",),
            )
        return check_id(rid)

    def text(self, name: str, required: bool = False) -> str | None:
        value = self.value(name, required)
        return None if value is None else str(value)


async def _params(request: Request, ctx: FhirContext) -> Params:
    if request.method == "GET":
        return Params([{"name": k, "valueString": v} for k, v in request.query_params.multi_items()])
    check_body_media_type(request)
    body = json_loads_resource(await read_body(request, ctx.settings.http.max_body_bytes))
    if body.get("resourceType") != "Parameters":
        raise InvalidInput("the operation expects a Parameters resource", expression=("resourceType",))
    return Params(list(body.get("parameter", [])))


def _any_ref(value: Any) -> str | None:
    return str(value.get("reference")) if isinstance(value, dict) and value.get("reference") else None


def _principal(request: Request) -> Principal | None:
    principal = getattr(request.state, "principal", None)
    return principal if isinstance(principal, Principal) else None


def _actor(request: Request) -> Actor:
    p = _principal(request)
    if p is None or (p.is_admin and not p.facility):
        return Actor(None, None, p.display if p else "local", admin=True)
    reference = f"PractitionerRole/{p.facility}-{p.username}" if p.facility and p.username else None
    return Actor(reference, p.facility, p.display, admin=p.is_admin)


async def _require_resident(request: Request, ctx: FhirContext, patient_id: str) -> None:
    """The resident rule (docs/security.md) for the caller and this Patient. Raises: Forbidden."""
    p = _principal(request)
    if p is None or p.is_admin:
        return

    def facts(uow: UnitOfWork) -> Any:
        return resident_facts(uow.resources, {patient_id}).get(patient_id)

    record = _access_record(request)
    if record is not None:  # the AuditEvent names the resident, allowed or refused
        record.patients.add(patient_id)
    found = await ctx.run(facts, commit=False)
    if found is None:
        from hie_server.auth import ResidentFacts

        found = ResidentFacts(frozenset({patient_id}))
    resident_decision(p, found).require()


def _require_publisher(request: Request, organization: str) -> None:
    p = _principal(request)
    if p is None or p.is_admin or (p.has("clinic-feed") and f"org-{p.facility}" == organization):
        return
    raise Forbidden(
        "access refused by rule 'schedule-publisher': schedules are published by hie-admin "
        "or the hospital's own feed client"
    )


async def _write(
    ctx: FhirContext, service: TelemedicineService, work: Callable[[UnitOfWork], Result]
) -> Result:
    """Run a workflow step in one unit of work, again after an optimistic-concurrency loss;
    dispatch its Communications after the commit."""
    attempts = service.settings.book_attempts
    for attempt in range(attempts):
        try:
            written: tuple[list[Any], Result] = await ctx.run(
                lambda uow: (lambda r: (r.written, r))(work(uow))
            )
        except (VersionConflict, RetryBooking):
            await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
            continue
        result = written[1]
        service.dispatcher.dispatch(result.communications)
        return result
    raise SlotUnavailable("the resource is in heavy demand; try again")


def _answer(request: Request, ctx: FhirContext, result: Result, status: int = 200) -> Response:
    stored = result.main
    headers = {
        "ETag": stored.etag,
        "Location": f"{ctx.base_url(request)}/{stored.reference}/_history/{stored.version_id}",
    }
    return fhir_response(request, stored.content, status=status, headers=headers)


def _date(params: Params, name: str, default: date | None = None) -> date:
    text = params.text(name)
    if text is None:
        if default is None:
            raise InvalidInput(
                f"parameter {name} (a date) is required",
                expression=(f"Parameters.parameter.where(name='{name}')",),
            )
        return default
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise InvalidInput(
            f"parameter {name} {text!r} is not a date",
            expression=(f"Parameters.parameter.where(name='{name}')",),
        ) from None


def _identifier(params: Params) -> tuple[str, str] | None:
    value = params.value("identifier")
    if value is None:
        return None
    if not isinstance(value, dict) or not value.get("value"):
        raise InvalidInput(
            "parameter identifier must be an Identifier with a value",
            expression=("Parameters.parameter.where(name='identifier')",),
        )
    return str(value.get("system") or "urn:qyhie:telemedicine:booking"), str(value["value"])


def registration_routes(router: APIRouter, service: TelemedicineService) -> None:
    """`$find`, `$book`, `$cancel`, `$reschedule`, `$status`, `$publish`, `$stop-clinic`."""
    settings = service.settings

    @router.api_route("/Appointment/$find", methods=["GET", "POST"])
    async def appointment_find(request: Request, ctx: FhirContext = Ctx) -> Response:
        params = await _params(request, ctx)
        today = datetime.now().date()
        start = _date(params, "start", today)
        query = FindQuery(
            start=start,
            end=_date(params, "end", start),
            specialty=params.text("specialty"),
            organization=params.ref("organization", "Organization"),
            county=params.text("county"),
            township=params.text("township"),
            practitioner_role=params.ref("practitioner-role", "PractitionerRole"),
            include_reserved=params.value("referral") is not None,
            count=min(int(params.text("_count") or 50), settings.find_max_results),
        )
        now = now_utc()
        slots = await ctx.run(
            lambda uow: find_slots(uow.resources, query, now=now, tz=service.tz), commit=False
        )
        return fhir_response(request, searchset(ctx.base_url(request), slots, [], links=[], total=None))

    @router.post("/Appointment/$book")
    async def appointment_book(request: Request, ctx: FhirContext = Ctx) -> Response:
        params = await _params(request, ctx)
        req = BookRequest(
            slot=str(params.ref("slot", "Slot", required=True)),
            patient=str(params.ref("patient", "Patient", required=True)),
            identifier=_identifier(params),
            referral=params.ref("referral", "ServiceRequest"),
            reason=params.text("reason"),
            comment=params.text("comment"),
        )
        await _require_resident(request, ctx, req.patient)
        actor = _actor(request)
        result = await _write(
            ctx,
            service,
            lambda uow: book(uow.resources, req, actor, now=now_utc(), default_fee=settings.registration_fee),
        )
        return _answer(request, ctx, result, 201 if result.created else 200)

    async def _appointment_patient(ctx: FhirContext, appt_id: str) -> str:
        def work(uow: UnitOfWork) -> str:
            doc = json_loads_resource(uow.resources.read("Appointment", appt_id).content)
            return next(
                (
                    str(p["actor"]["reference"]).split("/")[-1]
                    for p in doc.get("participant", [])
                    if str((p.get("actor") or {}).get("reference", "")).startswith("Patient/")
                ),
                "",
            )

        return await ctx.run(work, commit=False)

    @router.post("/Appointment/{id}/$cancel")
    async def appointment_cancel(id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
        check_id(id)
        params = await _params(request, ctx)
        await _require_resident(request, ctx, await _appointment_patient(ctx, id))
        actor, code, text = _actor(request), params.text("reasonCode"), params.text("reason")
        result = await _write(
            ctx,
            service,
            lambda uow: cancel(uow.resources, id, actor, now=now_utc(), reason_code=code, reason_text=text),
        )
        return _answer(request, ctx, result)

    @router.post("/Appointment/{id}/$reschedule")
    async def appointment_reschedule(id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
        check_id(id)
        params = await _params(request, ctx)
        await _require_resident(request, ctx, await _appointment_patient(ctx, id))
        actor, slot = _actor(request), str(params.ref("slot", "Slot", required=True))
        code, text, ident = params.text("reasonCode"), params.text("reason"), _identifier(params)
        result = await _write(
            ctx,
            service,
            lambda uow: reschedule(
                uow.resources,
                id,
                slot,
                actor,
                now=now_utc(),
                reason_code=code,
                reason_text=text,
                identifier=ident,
                default_fee=settings.registration_fee,
            ),
        )
        return _answer(request, ctx, result, 201 if result.created else 200)

    @router.post("/Appointment/{id}/$status")
    async def appointment_status(id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
        check_id(id)
        params = await _params(request, ctx)
        await _require_resident(request, ctx, await _appointment_patient(ctx, id))
        actor, status = _actor(request), str(params.text("status", required=True))
        result = await _write(ctx, service, lambda uow: set_status(uow.resources, id, status, actor))
        return _answer(request, ctx, result)

    @router.post("/Schedule/$publish")
    async def schedule_publish(request: Request, ctx: FhirContext = Ctx) -> Response:
        params = await _params(request, ctx)
        raw = params.value("template", required=True)
        template = template_from_json(json_loads(raw) if isinstance(raw, str) else raw)
        _require_publisher(request, template.organization)
        first = _date(params, "start")
        days = int(params.text("days") or 28)
        if not 1 <= days <= 120:
            raise InvalidInput(
                "days must be 1 … 120", expression=("Parameters.parameter.where(name='days')",)
            )
        from datetime import timedelta

        def work(uow: UnitOfWork) -> Any:
            report = publish(
                uow.resources, template, first, first + timedelta(days=days - 1), service.calendar, service.tz
            )
            kind, _, sid = report.schedule.partition("/")
            return report, uow.resources.read(kind, sid)  # the Schedule: an entity of the AuditEvent

        report, _ = await ctx.run(work)
        out = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "schedule", "valueReference": {"reference": report.schedule}},
                {"name": "created", "valueInteger": len(report.created)},
                {"name": "closed", "valueInteger": len(report.closed)},
                {"name": "unchanged", "valueInteger": report.unchanged},
                *({"name": "orphaned", "valueReference": {"reference": r}} for r in report.orphaned),
            ],
        }
        return fhir_response(request, out)

    @router.post("/Schedule/{id}/$stop-clinic")
    async def schedule_stop(id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
        check_id(id)
        params = await _params(request, ctx)
        org = await ctx.run(lambda uow: _schedule_org(uow, id), commit=False)
        _require_publisher(request, org)
        day, session = _date(params, "date"), params.text("session")
        reason, actor = str(params.text("reason", required=True)), _actor(request)

        def work(uow: UnitOfWork) -> Result:
            results = stop_clinic(
                uow.resources, id, day, session, reason, actor, now=now_utc(), tz=service.tz
            )
            main = uow.resources.read("Schedule", id)
            return Result(
                main, [w for r in results for w in r.written], [c for r in results for c in r.communications]
            )

        result = await _write(ctx, service, work)
        out = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "cancelled", "valueInteger": sum(1 for c in result.communications)},
                *({"name": "changed", "valueReference": {"reference": w.reference}} for w in result.written),
            ],
        }
        return fhir_response(request, out)


def _schedule_org(uow: UnitOfWork, schedule_id: str) -> str:
    from telemedicine.fhir import EXT_ORGANIZATION

    doc = json_loads_resource(uow.resources.read("Schedule", schedule_id).content)
    for ext in doc.get("extension", []):
        if ext.get("url") == EXT_ORGANIZATION:
            return str(ext["valueReference"]["reference"]).split("/")[-1]
    return ""


def consultation_routes(router: APIRouter, service: TelemedicineService) -> None:
    """`$request-consultation`, `$accept`, `$decline`, `$schedule`, `$opinion`, `$refer`,
    `$consultation-record`."""

    async def _subject(ctx: FhirContext, sr_id: str) -> str:
        def work(uow: UnitOfWork) -> str:
            doc = json_loads_resource(uow.resources.read("ServiceRequest", sr_id).content)
            return str((doc.get("subject") or {}).get("reference", "")).split("/")[-1]

        return await ctx.run(work, commit=False)

    @router.post("/ServiceRequest/$request-consultation")
    async def consultation_request(request: Request, ctx: FhirContext = Ctx) -> Response:
        params = await _params(request, ctx)
        req = ConsultationRequest(
            patient=str(params.ref("patient", "Patient", required=True)),
            performer=str(params.ref("performer", "Organization", required=True)),
            specialist=params.ref("specialist", "PractitionerRole"),
            reason=str(params.text("reason", required=True)),
            question=str(params.text("question", required=True)),
            urgency=params.text("urgency") or "routine",
            consent=str(params.ref("consent", "Consent", required=True)),
            requester=_any_ref(params.value("requester")),
            shared=tuple(
                str((p.get("valueReference") or {}).get("reference", "")) for p in params.all("shared")
            ),
        )
        await _require_resident(request, ctx, req.patient)
        actor = _actor(request)
        result = await _write(
            ctx, service, lambda uow: request_consultation(uow.resources, req, actor, now=now_utc())
        )
        return _answer(request, ctx, result, 201)

    @router.post("/ServiceRequest/{id}/$accept")
    async def consultation_accept(id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
        check_id(id)
        actor = _actor(request)
        result = await _write(
            ctx,
            service,
            lambda uow: respond(uow.resources, id, actor, accept=True, reason=None, now=now_utc()),
        )
        return _answer(request, ctx, result)

    @router.post("/ServiceRequest/{id}/$decline")
    async def consultation_decline(id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
        check_id(id)
        params = await _params(request, ctx)
        actor, reason = _actor(request), params.text("reason", required=True)
        result = await _write(
            ctx,
            service,
            lambda uow: respond(uow.resources, id, actor, accept=False, reason=reason, now=now_utc()),
        )
        return _answer(request, ctx, result)

    @router.post("/ServiceRequest/{id}/$schedule")
    async def consultation_schedule(id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
        check_id(id)
        params = await _params(request, ctx)
        start = parse_instant(str(params.text("start", required=True)), "start")
        end = parse_instant(str(params.text("end", required=True)), "end")
        url = str(params.text("meetingUrl", required=True))
        people = tuple(
            str((p.get("valueReference") or {}).get("reference", "")) for p in params.all("participant")
        )
        actor = _actor(request)
        result = await _write(
            ctx,
            service,
            lambda uow: schedule(
                uow.resources,
                id,
                actor,
                start=start,
                end=end,
                meeting_url=url,
                participants=people,
                now=now_utc(),
            ),
        )
        return _answer(request, ctx, result, 201)

    @router.post("/ServiceRequest/{id}/$opinion")
    async def consultation_opinion(id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
        check_id(id)
        params = await _params(request, ctx)
        await _require_resident(request, ctx, await _subject(ctx, id))
        actor, text, diagnosis = (
            _actor(request),
            str(params.text("opinion", required=True)),
            params.text("diagnosis"),
        )
        result = await _write(
            ctx,
            service,
            lambda uow: record_opinion(
                uow.resources, id, actor, opinion=text, diagnosis=diagnosis, now=now_utc()
            ),
        )
        return _answer(request, ctx, result, 201)

    @router.post("/ServiceRequest/{id}/$refer")
    async def consultation_refer(id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
        check_id(id)
        params = await _params(request, ctx)
        await _require_resident(request, ctx, await _subject(ctx, id))
        actor = _actor(request)
        direction = str(params.text("direction", required=True))
        target = str(params.ref("target", "Organization", required=True))
        reason = str(params.text("reason", required=True))
        result = await _write(
            ctx,
            service,
            lambda uow: refer(
                uow.resources, id, actor, direction=direction, target=target, reason=reason, now=now_utc()
            ),
        )
        return _answer(request, ctx, result, 201)

    @router.get("/ServiceRequest/{id}/$consultation-record")
    async def consultation_export(id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
        check_id(id)
        await _require_resident(request, ctx, await _subject(ctx, id))
        record = await ctx.run(lambda uow: consultation_record(uow.resources, id), commit=False)
        return fhir_response(request, record)


def _access_record(request: Request) -> AccessRecord | None:
    record = getattr(request.state, "access_record", None)
    return record if isinstance(record, AccessRecord) else None


async def _audit_refusals(request: Request) -> AsyncIterator[None]:
    """Route dependency: a refusal raised by a telemedicine rule (`doctor-own-facility`,
    `consultation-invited`, `schedule-publisher`, ...) names its rule in the request's
    AuditEvent (`agent.policy`), as the middleware's own refusals do (docs/security.md)."""
    try:
        yield
    except Forbidden as exc:
        record = _access_record(request)
        marker = "rule '"
        if record is not None and marker in exc.diagnostics:
            record.rule = exc.diagnostics.split(marker, 1)[1].split("'", 1)[0]
        raise


def build_router(service: TelemedicineService) -> APIRouter:
    """Routes of the telemedicine operations bound to `service`."""
    router = APIRouter(dependencies=[Depends(_audit_refusals)])
    registration_routes(router, service)
    consultation_routes(router, service)
    return router


OPERATIONS = (
    FhirOperation("find", f"{BASE_DEF}/Appointment-find", ("Appointment",)),
    FhirOperation("book", f"{BASE_DEF}/Appointment-book", ("Appointment",)),
    FhirOperation("cancel", f"{BASE_DEF}/Appointment-cancel", ("Appointment",)),
    FhirOperation("reschedule", f"{BASE_DEF}/Appointment-reschedule", ("Appointment",)),
    FhirOperation("status", f"{BASE_DEF}/Appointment-status", ("Appointment",)),
    FhirOperation("publish", f"{BASE_DEF}/Schedule-publish", ("Schedule",)),
    FhirOperation("stop-clinic", f"{BASE_DEF}/Schedule-stop-clinic", ("Schedule",)),
    FhirOperation(
        "request-consultation", f"{BASE_DEF}/ServiceRequest-request-consultation", ("ServiceRequest",)
    ),
    FhirOperation("accept", f"{BASE_DEF}/ServiceRequest-accept", ("ServiceRequest",)),
    FhirOperation("decline", f"{BASE_DEF}/ServiceRequest-decline", ("ServiceRequest",)),
    FhirOperation("schedule", f"{BASE_DEF}/ServiceRequest-schedule", ("ServiceRequest",)),
    FhirOperation("opinion", f"{BASE_DEF}/ServiceRequest-opinion", ("ServiceRequest",)),
    FhirOperation("refer", f"{BASE_DEF}/ServiceRequest-refer", ("ServiceRequest",)),
    FhirOperation(
        "consultation-record", f"{BASE_DEF}/ServiceRequest-consultation-record", ("ServiceRequest",)
    ),
)


def telemedicine_module(service: TelemedicineService) -> FhirModule:
    """The telemedicine operations as a module for `create_app(settings, store, modules=[...])`."""
    return FhirModule(build_router(service), OPERATIONS)
